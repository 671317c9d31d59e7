//! Customer notifications: a view on the shared consumer runtime (durable consumer
//! `notifications`) that turns order events into messages for the customer and hands them to a
//! [`NotificationSink`]: order received, action required (3-D Secure, with the challenge link),
//! order confirmed (with the signed tracking link), payment failed, order cancelled, shipped,
//! out for delivery, ready for pickup, delivered, refund issued, and any of those again when an
//! agent asks ([`NotificationResendRequested`](waybill_schemas::events::NotificationResendRequested)).
//! Email always; a short text message too when the customer gave a phone number; each customer's
//! preferences (media, locale: English or German, [`templates`]) apply at delivery.
//!
//! Sending for real is [`Delivery`]: email over SMTP ([`SmtpMailer`], lettre), text messages
//! over an SMS provider's HTTP API ([`SmsClient`]; ours is the simulated
//! [`crate::sms_sandbox`]), with retries and backoff, and a sent-once [`ledger`] in Postgres:
//! a message goes out once per event and medium whatever happens to Redis or NATS.
//!
//! The view keeps, per order, the contact details from `OrderPlaced` and the last version applied,
//! in Redis at `<prefix>:notifications:<order uuid>`, so later events need no event-store lookup
//! (after a lost state, the runtime's gap filling replays the order from the event store).
//! Messages are decided in the pure [`apply`] and delivered by [`View::store`] before the state is
//! written with a compare-and-set, and the events are acknowledged only after that: delivery is
//! at least once, and the sink de-duplicates by [`Notification::id`]. Events older than
//! [`NotificationsConfig::stale_after`] when first seen (a new consumer reading the whole
//! history) update the state but send nothing.
//!
//! In development the channels can be [`FileSink`]: messages become files in a directory with an
//! `index.html`; nothing is sent anywhere (the ledger still records them).

mod apply;
pub mod channel;
mod delivery;
#[cfg(test)]
mod delivery_tests;
mod email_html;
pub mod ledger;
mod rebuild;
pub mod render;
mod sink;
pub mod sms;
pub mod smtp;
mod store;
pub mod templates;
#[cfg(test)]
mod tests;

pub use apply::{apply, NotificationState};
pub use channel::{Accepted, Channel, RetryPolicy, SendError};
pub use delivery::Delivery;
pub use ledger::{Claim, DeliveryRecord, Ledger};
pub use rebuild::{
    rebuild_notifications, NotificationsRebuildError, NotificationsRebuildReport, Withheld,
};
pub use render::{
    address, render, Draft, Links, Locale, Medium, Message, Notification, NotificationKind,
    OrderContact,
};
pub use sink::{FileSink, NotificationSink, SinkError};
pub use sms::{SmsClient, SmsConfig};
pub use smtp::{SmtpConfig, SmtpMailer, SmtpSecurity};
pub use store::NotificationStore;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use waybill_schemas::access::TrackingKeys;
use waybill_schemas::events::DecodeError;
use waybill_schemas::{EventEnvelope, OrderId};

use crate::runtime::{View, ViewWrite};

/// The durable consumer and dead-letter name of this view.
pub const VIEW_NAME: &str = "notifications";

/// Notification settings; the tracking keys are the ones the query API checks tokens with.
#[derive(Clone)]
pub struct NotificationsConfig {
    /// Where [`FileSink`] writes messages (development).
    pub dir: PathBuf,
    /// Public base URL of the customer tracking page; links are `<base>/track/<id>?token=..`.
    pub public_tracking_base_url: String,
    pub tracking: TrackingKeys,
    /// Messages for events older than this when first processed are not delivered; `None`
    /// delivers everything.
    pub stale_after: Option<Duration>,
    /// Email over SMTP; `None`: emails go to files in `dir`.
    pub smtp: Option<SmtpConfig>,
    /// Text messages to the SMS provider; `None`: to files in `dir`.
    pub sms: Option<SmsConfig>,
    /// Retries of a provider call.
    pub retry: RetryPolicy,
}

impl NotificationsConfig {
    /// Messages in `dir`, no message for events more than a day old.
    pub fn new(
        dir: impl Into<PathBuf>,
        public_tracking_base_url: impl Into<String>,
        tracking_secret: impl Into<Arc<[u8]>>,
    ) -> Self {
        Self {
            dir: dir.into(),
            public_tracking_base_url: public_tracking_base_url.into(),
            tracking: TrackingKeys::new(tracking_secret),
            stale_after: Some(Duration::from_secs(24 * 3600)),
            smtp: None,
            sms: None,
            retry: RetryPolicy::default(),
        }
    }

    /// The sink that sends for real: the configured channels (files where none is set) behind
    /// the sent-once ledger in `pool`'s database.
    pub fn delivery(&self, pool: sqlx::PgPool) -> anyhow::Result<Delivery> {
        let files = FileSink::new(self.dir.clone());
        let email: Arc<dyn Channel> = match &self.smtp {
            Some(smtp) => Arc::new(SmtpMailer::new(smtp)?),
            None => Arc::new(files.clone()),
        };
        let sms: Arc<dyn Channel> = match &self.sms {
            Some(sms) => Arc::new(SmsClient::new(sms.clone())?),
            None => Arc::new(files),
        };
        Ok(Delivery::new(pool, email, sms).with_retry(self.retry))
    }

    pub fn links(&self) -> Links {
        Links {
            public_tracking_base_url: self.public_tracking_base_url.clone(),
            tracking: self.tracking.clone(),
        }
    }
}

impl std::fmt::Debug for NotificationsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationsConfig")
            .field("dir", &self.dir)
            .field("public_tracking_base_url", &self.public_tracking_base_url)
            .field("tracking", &self.tracking)
            .field("stale_after", &self.stale_after)
            .field("smtp", &self.smtp)
            .field("sms", &self.sms)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("event {event_type} v{version} of {stream_id} cannot be decoded: {source}")]
    Decode {
        stream_id: String,
        event_type: String,
        version: i64,
        source: DecodeError,
    },
    #[error("{stream_id} v{version}: {event_type} before the order was placed")]
    NotPlaced {
        stream_id: String,
        event_type: String,
        version: i64,
    },
    #[error("{stream_id} v{version}: OrderPlaced for an order that is already placed")]
    AlreadyPlaced { stream_id: String, version: i64 },
    #[error("{stream_id} is not an order stream")]
    NotAnOrder { stream_id: String },
    #[error("stored notification state {key} is unreadable: {source}")]
    CorruptState {
        key: String,
        source: serde_json::Error,
    },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// The notifications view plugged into the consumer runtime, delivering to `S`.
#[derive(Clone)]
pub struct NotificationsProjection<S> {
    store: NotificationStore,
    sink: S,
    links: Links,
    stale_after: Option<Duration>,
    replaying: bool,
}

impl<S: NotificationSink> NotificationsProjection<S> {
    pub fn new(store: NotificationStore, sink: S, config: &NotificationsConfig) -> Self {
        Self {
            store,
            sink,
            links: config.links(),
            stale_after: config.stale_after,
            replaying: false,
        }
    }

    /// The view as a rebuild runs it: states are written, messages are decided and dropped,
    /// never handed to the sink (a replay of the log must not mail anyone again).
    pub fn replaying(mut self) -> Self {
        self.replaying = true;
        self
    }

    pub fn store(&self) -> &NotificationStore {
        &self.store
    }
}

impl<S: NotificationSink> View for NotificationsProjection<S> {
    type State = NotificationState;
    type Error = NotificationError;

    fn name(&self) -> &str {
        VIEW_NAME
    }

    fn handles(&self, stream_id: &str) -> bool {
        OrderId::from_stream_id(stream_id).is_some()
    }

    fn scrubs_on_erasure(&self) -> bool {
        true
    }

    async fn forget(&self, stream_ids: &[String]) -> Result<(), NotificationError> {
        let orders = stream_ids
            .iter()
            .filter_map(|s| OrderId::from_stream_id(s))
            .collect();
        self.sink
            .forget(orders)
            .await
            .map_err(NotificationError::from)
    }

    fn version_of(state: &NotificationState) -> i64 {
        state.version
    }

    fn load(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<NotificationState>>, NotificationError>> + Send
    {
        self.store.load_streams(stream_ids)
    }

    fn apply(
        &self,
        state: Option<&NotificationState>,
        event: &EventEnvelope,
    ) -> Result<NotificationState, NotificationError> {
        apply(state, event, &self.links)
    }

    async fn store(
        &self,
        writes: Vec<ViewWrite<NotificationState>>,
    ) -> Result<Vec<bool>, NotificationError> {
        let mut outgoing = Vec::new();
        let mut states = Vec::with_capacity(writes.len());
        for mut write in writes {
            outgoing.append(&mut write.state.outgoing);
            states.push((write.expected_version, write.state));
        }
        if self.replaying {
            metrics::counter!("waybill_notifications_replayed_total")
                .increment(outgoing.len() as u64);
            outgoing.clear();
        }
        let (fresh, stale) = split_stale(outgoing, Utc::now(), self.stale_after);
        if stale > 0 {
            tracing::info!(stale, "notifications for old events not delivered");
            metrics::counter!("waybill_notifications_stale_total").increment(stale as u64);
        }
        for message in &fresh {
            tracing::debug!(
                order_id = %message.order_id,
                kind = message.kind.as_str(),
                medium = message.medium.as_str(),
                "notification delivered to the sink"
            );
            metrics::counter!(
                "waybill_notifications_delivered_total",
                "kind" => message.kind.as_str(),
                "medium" => message.medium.as_str()
            )
            .increment(1);
        }
        // Delivered before the state moves on: a crash in between re-delivers (the sink
        // de-duplicates: `Delivery` by its ledger), it never loses a message.
        self.sink.deliver(fresh).await?;
        self.store.compare_and_set(&states).await
    }
}

/// Splits off messages whose event is older than `stale_after` at `now`; returns the ones to
/// deliver and how many were dropped.
pub fn split_stale(
    messages: Vec<Notification>,
    now: DateTime<Utc>,
    stale_after: Option<Duration>,
) -> (Vec<Notification>, usize) {
    let Some(limit) = stale_after.and_then(|d| chrono::Duration::from_std(d).ok()) else {
        return (messages, 0);
    };
    let total = messages.len();
    let fresh: Vec<Notification> = messages
        .into_iter()
        .filter(|m| now - m.occurred_at <= limit)
        .collect();
    let stale = total - fresh.len();
    (fresh, stale)
}
