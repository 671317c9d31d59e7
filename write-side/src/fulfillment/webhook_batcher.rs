//! Group commit for node and carrier webhooks: the webhooks that arrive together are decided
//! together and stored in one SERIALIZABLE transaction, each with its receipt.
//!
//! A worker takes what is queued (up to `max_batch`, lingering at most `linger` for more),
//! drops what was already applied (a receipt in the table, or the same id earlier in the
//! batch: those answer `duplicate`), reads every order's stream in one query, decides the
//! webhooks of one order one after the other on its folded state, and writes the receipts,
//! events, outbox rows, flow wake-ups and transit samples of all of them at once. If that
//! transaction is refused for anything but a serialization failure (retried whole) — a stream
//! another writer moved, a receipt a concurrent redelivery stored first — every webhook of the
//! batch is applied alone by [`webhooks::apply`], which re-reads and decides again. A caller
//! is answered only once its rows committed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use waybill_schemas::{Actor, OrderId};

use crate::domain::fulfillment::Fulfillment;
use crate::domain::returns::ReturnsPolicy;
use crate::event_store::{self, retry, EventMeta, EventStore, EventStoreError};

use super::append::{self, OrderRows, Receipt, TransitSample};
use super::webhooks::{self, WebhookOutcome};

/// How webhooks are grouped.
#[derive(Debug, Clone)]
pub struct WebhookBatcherConfig {
    /// Most webhooks per transaction.
    pub max_batch: usize,
    /// How long the first webhook of a batch waits for others.
    pub linger: Duration,
    /// Batches written concurrently.
    pub workers: usize,
}

impl Default for WebhookBatcherConfig {
    fn default() -> Self {
        Self {
            max_batch: 256,
            linger: Duration::from_millis(1),
            workers: 2,
        }
    }
}

/// One verified webhook to apply.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub provider: &'static str,
    pub webhook_id: String,
    pub order_id: OrderId,
    pub command: webhooks::WebhookCommand,
}

type Answer = Result<WebhookOutcome, EventStoreError>;

struct Pending {
    request: WebhookRequest,
    reply: oneshot::Sender<Answer>,
}

/// Submits webhooks to the batch workers. Cheap to clone; the workers stop once every clone is
/// dropped and the queue is drained.
#[derive(Clone)]
pub struct WebhookBatcher {
    queue: mpsc::Sender<Pending>,
    pool: PgPool,
    store: EventStore,
    returns: Arc<ReturnsPolicy>,
}

impl WebhookBatcher {
    /// Starts the workers on the current runtime.
    /// `returns` is the policy return reports are decided under.
    pub fn spawn(
        pool: PgPool,
        returns: Arc<ReturnsPolicy>,
        config: WebhookBatcherConfig,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let (queue, rx) = mpsc::channel(4096);
        let rx = Arc::new(Mutex::new(rx));
        let config = Arc::new(config);
        let store = EventStore::new(pool.clone());
        let workers = (0..config.workers.max(1))
            .map(|_| {
                tokio::spawn(worker(
                    rx.clone(),
                    pool.clone(),
                    store.clone(),
                    returns.clone(),
                    config.clone(),
                ))
            })
            .collect();
        (
            Self {
                queue,
                pool,
                store,
                returns,
            },
            workers,
        )
    }

    /// Applies `request` once (batched with others) and says what became of it.
    pub async fn apply(&self, request: WebhookRequest) -> Answer {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { request, reply };
        if let Err(mpsc::error::SendError(pending)) = self.queue.send(pending).await {
            // The workers are gone (shutting down): apply it alone.
            return apply_alone(&self.pool, &self.store, &self.returns, &pending.request).await;
        }
        match answer.await {
            Ok(answer) => answer,
            Err(_) => Err(EventStoreError::Database(sqlx::Error::Protocol(
                "the webhook batcher dropped the webhook".into(),
            ))),
        }
    }
}

async fn worker(
    rx: Arc<Mutex<mpsc::Receiver<Pending>>>,
    pool: PgPool,
    store: EventStore,
    returns: Arc<ReturnsPolicy>,
    config: Arc<WebhookBatcherConfig>,
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            match collect(&mut rx, &config).await {
                Some(batch) => batch,
                None => return,
            }
        };
        let requests: Vec<&WebhookRequest> = batch.iter().map(|p| &p.request).collect();
        let answers = apply_batch(&pool, &store, &returns, &requests, Utc::now()).await;
        for (pending, answer) in batch.into_iter().zip(answers) {
            let _ = pending.reply.send(answer);
        }
    }
}

/// Waits for one webhook, then gathers more until the batch is full or `linger` has passed.
async fn collect(
    rx: &mut mpsc::Receiver<Pending>,
    config: &WebhookBatcherConfig,
) -> Option<Vec<Pending>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + config.linger;
    while batch.len() < config.max_batch.max(1) {
        match rx.try_recv() {
            Ok(next) => {
                batch.push(next);
                continue;
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if config.linger.is_zero() => break,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(next)) => batch.push(next),
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

async fn apply_alone(
    pool: &PgPool,
    store: &EventStore,
    returns: &ReturnsPolicy,
    request: &WebhookRequest,
) -> Answer {
    webhooks::apply(
        pool,
        store,
        request.provider,
        &request.webhook_id,
        request.order_id,
        &request.command,
        returns,
        Utc::now(),
    )
    .await
}

/// One order's share of a batch: its state after the webhooks decided so far.
struct OrderFold {
    state: Fulfillment,
    stored_version: i64,
    meta: EventMeta,
    events: Vec<waybill_schemas::OrderEvent>,
    samples: Vec<TransitSample>,
    /// Indexes into the batch of the webhooks whose receipts this order stores.
    receipts: Vec<(usize, String)>,
}

/// Applies a batch of webhooks, each at most once, and answers each (in order).
pub async fn apply_batch(
    pool: &PgPool,
    store: &EventStore,
    returns: &ReturnsPolicy,
    requests: &[&WebhookRequest],
    now: DateTime<Utc>,
) -> Vec<Answer> {
    metrics::histogram!("waybill_logistics_webhook_batch_size").record(requests.len() as f64);
    match decide_and_write(pool, store, returns, requests, now).await {
        Ok(Some(answers)) => answers,
        Ok(None) => {
            metrics::counter!("waybill_logistics_webhook_batch_fallbacks_total").increment(1);
            let mut answers = Vec::with_capacity(requests.len());
            for request in requests {
                answers.push(apply_alone(pool, store, returns, request).await);
            }
            answers
        }
        Err(error) => {
            tracing::warn!(%error, size = requests.len(), "webhook batch failed; applying one by one");
            let mut answers = Vec::with_capacity(requests.len());
            for request in requests {
                answers.push(apply_alone(pool, store, returns, request).await);
            }
            answers
        }
    }
}

/// Decides the batch and writes it in one transaction. `Ok(None)`: the transaction was refused
/// (a moved stream, a receipt stored meanwhile), nothing written: apply one by one.
async fn decide_and_write(
    pool: &PgPool,
    store: &EventStore,
    returns: &ReturnsPolicy,
    requests: &[&WebhookRequest],
    now: DateTime<Utc>,
) -> Result<Option<Vec<Answer>>, EventStoreError> {
    let mut outcomes: Vec<Option<WebhookOutcome>> = vec![None; requests.len()];
    // Ids earlier in the batch, and receipts already stored, are duplicates.
    let mut first: HashMap<(&str, &str), usize> = HashMap::new();
    let mut follows: Vec<Option<usize>> = vec![None; requests.len()];
    for (i, r) in requests.iter().enumerate() {
        match first.get(&(r.provider, r.webhook_id.as_str())) {
            Some(&leader) => follows[i] = Some(leader),
            None => {
                first.insert((r.provider, r.webhook_id.as_str()), i);
            }
        }
    }
    let stored = stored_receipts(pool, requests).await?;
    for (i, r) in requests.iter().enumerate() {
        if follows[i].is_none() && stored.contains(&(r.provider.to_owned(), r.webhook_id.clone())) {
            outcomes[i] = Some(WebhookOutcome::Duplicate);
        }
    }

    let mut wanted: Vec<String> = requests
        .iter()
        .enumerate()
        .filter(|(i, _)| follows[*i].is_none() && outcomes[*i].is_none())
        .map(|(_, r)| r.order_id.stream_id())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let streams = store.read_streams(&wanted).await?;
    let mut folds: HashMap<OrderId, OrderFold> = HashMap::new();
    let mut order_of_first_use: Vec<OrderId> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        if follows[i].is_some() || outcomes[i].is_some() {
            continue;
        }
        let Some(envelopes) = streams.get(&r.order_id.stream_id()) else {
            outcomes[i] = Some(WebhookOutcome::Ignored(format!(
                "order {} is unknown",
                r.order_id
            )));
            continue;
        };
        let fold = match folds.entry(r.order_id) {
            std::collections::hash_map::Entry::Occupied(fold) => fold.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let state = Fulfillment::from_events(&append::decode(envelopes)?);
                order_of_first_use.push(r.order_id);
                slot.insert(OrderFold {
                    stored_version: state.version,
                    state,
                    meta: append::meta_of(envelopes, Actor::service(r.provider)),
                    events: Vec::new(),
                    samples: Vec::new(),
                    receipts: Vec::new(),
                })
            }
        };
        let (outcome, label) = match webhooks::decide(&fold.state, &r.command, returns, now) {
            webhooks::Decision::NotYetKnown(why) => {
                outcomes[i] = Some(WebhookOutcome::NotYetKnown(why));
                continue;
            }
            webhooks::Decision::Record {
                events,
                outcome,
                label,
            } => {
                fold.samples
                    .extend(append::transit_samples(&fold.state, &events));
                for event in &events {
                    fold.state.apply(event);
                }
                fold.events.extend(events);
                (outcome, label)
            }
        };
        fold.receipts.push((i, label));
        outcomes[i] = Some(outcome);
    }

    let rows: Vec<OrderRows> = order_of_first_use
        .iter()
        .filter_map(|id| folds.get(id).map(|fold| (id, fold)))
        .map(|(id, fold)| OrderRows {
            order_id: *id,
            envelopes: event_store::stamp(
                &id.stream_id(),
                fold.stored_version,
                event_store::new_events(fold.events.clone(), now),
                &fold.meta,
                now,
            ),
            receipts: fold
                .receipts
                .iter()
                .map(|(i, label)| Receipt {
                    provider: requests[*i].provider,
                    event_id: &requests[*i].webhook_id,
                    outcome: label,
                })
                .collect(),
            samples: fold.samples.clone(),
        })
        .collect();
    if !rows.is_empty() {
        match append::write_all(pool, &rows, now).await {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) if event_store::is_stream_conflict(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }

    let answers = (0..requests.len())
        .map(|i| match follows[i] {
            // A repeat of a webhook earlier in the batch: applied once, by the first.
            Some(leader) => Ok(match &outcomes[leader] {
                Some(WebhookOutcome::Applied | WebhookOutcome::Ignored(_))
                    if stored_by(leader, &folds) =>
                {
                    WebhookOutcome::Duplicate
                }
                Some(other) => other.clone(),
                None => WebhookOutcome::Duplicate,
            }),
            None => Ok(outcomes[i].clone().unwrap_or(WebhookOutcome::Duplicate)),
        })
        .collect();
    Ok(Some(answers))
}

/// Whether the webhook at `index` had its receipt written in this batch.
fn stored_by(index: usize, folds: &HashMap<OrderId, OrderFold>) -> bool {
    folds
        .values()
        .any(|f| f.receipts.iter().any(|(i, _)| *i == index))
}

/// The receipts among `requests` already stored.
async fn stored_receipts(
    pool: &PgPool,
    requests: &[&WebhookRequest],
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let providers: Vec<&str> = requests.iter().map(|r| r.provider).collect();
    let ids: Vec<&str> = requests.iter().map(|r| r.webhook_id.as_str()).collect();
    let rows: Vec<(String, String)> = retry::serializable(|| {
        sqlx::query_as(
            "SELECT w.provider, w.event_id FROM webhook_receipts w \
             JOIN UNNEST($1::text[], $2::text[]) AS x(p, e) \
               ON w.provider = x.p AND w.event_id = x.e",
        )
        .bind(&providers)
        .bind(&ids)
        .fetch_all(pool)
    })
    .await?;
    Ok(rows.into_iter().collect())
}
