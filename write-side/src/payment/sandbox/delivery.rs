//! Webhook delivery: every event the ledger produces is recorded here and POSTed, signed, to the
//! configured `webhook_url` by a background task, retried with doubling backoff until a 2xx or
//! the attempt limit. The record (with each attempt) is what `GET /v1/_sandbox/webhooks` shows,
//! and a resend delivers the same bytes under the same event id again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};
use uuid::Uuid;

use crate::payment::webhook::{self, GatewayEvent, GatewayEventKind, SIGNATURE_HEADER};

/// Deliveries running at once.
const CONCURRENT_DELIVERIES: usize = 32;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where and how webhooks go.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub url: Option<String>,
    pub secret: Vec<u8>,
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub request_timeout: Duration,
}

/// One attempt to deliver an event.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// An event as the sandbox controls show it.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookView {
    pub id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub created_at: DateTime<Utc>,
    /// `pending`, `delivered`, `failed` (attempts exhausted) or `not_sent` (no webhook_url).
    pub status: &'static str,
    /// Successful deliveries (a resend adds one).
    pub deliveries: u32,
    pub attempts: Vec<Attempt>,
    pub event: serde_json::Value,
}

#[derive(Debug)]
struct Record {
    id: String,
    type_name: String,
    created_at: DateTime<Utc>,
    body: Bytes,
    status: &'static str,
    deliveries: u32,
    attempts: Vec<Attempt>,
}

#[derive(Debug, Default)]
struct Records {
    list: Vec<Record>,
    by_id: HashMap<String, usize>,
}

/// The sandbox's webhook log and delivery queue.
#[derive(Debug)]
pub struct Webhooks {
    records: Mutex<Records>,
    queue: mpsc::UnboundedSender<usize>,
    enabled: bool,
}

impl Webhooks {
    /// Starts the delivery task (it ends when the returned value is dropped). Needs a Tokio
    /// runtime.
    pub fn start(settings: DeliverySettings) -> Arc<Self> {
        let (queue, receiver) = mpsc::unbounded_channel();
        let webhooks = Arc::new(Self {
            records: Mutex::new(Records::default()),
            queue,
            enabled: settings.url.is_some(),
        });
        if let Some(url) = settings.url.clone() {
            tokio::spawn(deliver_queued(
                Arc::downgrade(&webhooks),
                receiver,
                url,
                settings,
            ));
        }
        webhooks
    }

    /// Records `kind` as a new event (`evt_<uuid>`) and queues its delivery.
    pub fn emit(&self, kind: GatewayEventKind, now: DateTime<Utc>) -> String {
        let event = GatewayEvent {
            id: format!("evt_{}", Uuid::now_v7()),
            created_at: now,
            kind,
        };
        let body = Bytes::from(webhook::encode(&event));
        let index = {
            let mut records = self.lock();
            let index = records.list.len();
            records.by_id.insert(event.id.clone(), index);
            records.list.push(Record {
                id: event.id.clone(),
                type_name: event.kind.type_name().to_owned(),
                created_at: now,
                body,
                status: if self.enabled { "pending" } else { "not_sent" },
                deliveries: 0,
                attempts: Vec::new(),
            });
            index
        };
        if self.enabled {
            // Fails only when the delivery task is gone, i.e. during shutdown.
            let _ = self.queue.send(index);
        }
        event.id
    }

    /// Delivers event `id` again (same id, same body). False when there is no such event.
    pub fn resend(&self, id: &str) -> bool {
        let index = {
            let mut records = self.lock();
            let Some(&index) = records.by_id.get(id) else {
                return false;
            };
            if self.enabled {
                records.list[index].status = "pending";
            }
            index
        };
        if self.enabled {
            let _ = self.queue.send(index);
        }
        true
    }

    /// Every event so far, oldest first.
    pub fn list(&self) -> Vec<WebhookView> {
        self.lock()
            .list
            .iter()
            .map(|record| WebhookView {
                id: record.id.clone(),
                type_name: record.type_name.clone(),
                created_at: record.created_at,
                status: record.status,
                deliveries: record.deliveries,
                attempts: record.attempts.clone(),
                event: serde_json::from_slice(&record.body).unwrap_or_default(),
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn body(&self, index: usize) -> Option<(String, Bytes)> {
        self.lock()
            .list
            .get(index)
            .map(|record| (record.id.clone(), record.body.clone()))
    }

    fn record_attempt(&self, index: usize, attempt: Attempt, outcome: Option<&'static str>) {
        let mut records = self.lock();
        if let Some(record) = records.list.get_mut(index) {
            record.attempts.push(attempt);
            if let Some(status) = outcome {
                record.status = status;
                if status == "delivered" {
                    record.deliveries += 1;
                }
            }
        }
    }
}

async fn deliver_queued(
    webhooks: Weak<Webhooks>,
    mut receiver: mpsc::UnboundedReceiver<usize>,
    url: String,
    settings: DeliverySettings,
) {
    let client = match reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "sandbox webhook client could not be built; no webhooks will be sent");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    let settings = Arc::new(settings);
    while let Some(index) = receiver.recv().await {
        let Some(webhooks) = webhooks.upgrade() else {
            break;
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let client = client.clone();
        let url = url.clone();
        let settings = settings.clone();
        tokio::spawn(async move {
            deliver(&webhooks, index, &client, &url, &settings).await;
            drop(permit);
        });
    }
}

async fn deliver(
    webhooks: &Webhooks,
    index: usize,
    client: &reqwest::Client,
    url: &str,
    settings: &DeliverySettings,
) {
    let Some((event_id, body)) = webhooks.body(index) else {
        return;
    };
    let mut backoff = settings.initial_backoff;
    for attempt in 1..=settings.max_attempts.max(1) {
        let now = Utc::now();
        let signature = webhook::sign(&settings.secret, now.timestamp(), &body);
        let sent = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body.clone())
            .send()
            .await;
        let (status, error) = match sent {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) => (None, Some(error.to_string())),
        };
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        let last = attempt >= settings.max_attempts;
        let outcome = match (delivered, last) {
            (true, _) => Some("delivered"),
            (false, true) => Some("failed"),
            (false, false) => None,
        };
        webhooks.record_attempt(
            index,
            Attempt {
                at: now,
                status,
                error,
            },
            outcome,
        );
        if delivered {
            return;
        }
        if last {
            tracing::warn!(
                event_id,
                attempts = attempt,
                "sandbox webhook not delivered; giving up"
            );
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
