//! `rebuild notifications`: rebuilds every order's notification state (contact details and the
//! last version applied) from the event log into a staging prefix, then switches it in order
//! by order ([`crate::runtime::replay::rebuild_into`]), sending nothing: both the replay and
//! the switch run the view [`replaying`](super::NotificationsProjection::replaying), so the
//! messages it decides are dropped, and the sink it holds ([`Withheld`]) refuses anything it
//! is handed. The live projector keeps running and keeps sending what is new.

use sqlx::PgPool;
use uuid::Uuid;
use waybill_write_side::event_store::{EventStore, EventStoreError};

use super::{
    Notification, NotificationError, NotificationSink, NotificationStore, NotificationsConfig,
    NotificationsProjection, SinkError,
};
use crate::runtime::replay::rebuild_into;
use crate::runtime::{ProjectorConfig, ReplayError};

#[derive(Debug, thiserror::Error)]
pub enum NotificationsRebuildError {
    #[error("reading the event log failed: {0}")]
    EventStore(#[from] EventStoreError),
    #[error("writing notification states failed: {0}")]
    Notifications(#[from] NotificationError),
    #[error("notification states kept changing under the switch: {0}")]
    Contended(String),
}

impl From<ReplayError<NotificationError>> for NotificationsRebuildError {
    fn from(error: ReplayError<NotificationError>) -> Self {
        match error {
            ReplayError::EventStore(error) => Self::EventStore(error),
            ReplayError::View(error) => Self::Notifications(error),
            contended @ ReplayError::Contended { .. } => Self::Contended(contended.to_string()),
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationsRebuildReport {
    /// Events read from the log.
    pub events: u64,
    /// Order states rebuilt.
    pub states: u64,
    /// Live states replaced by their rebuilt copy.
    pub switched: u64,
    /// Orders whose events do not apply (their live state is left as it is).
    pub unappliable: u64,
}

/// The sink of a rebuild: a replaying view hands it nothing, and anything it were handed is
/// refused rather than sent.
#[derive(Debug, Clone, Copy)]
pub struct Withheld;

impl NotificationSink for Withheld {
    async fn deliver(&self, messages: Vec<Notification>) -> Result<(), SinkError> {
        match messages.first() {
            None => Ok(()),
            Some(message) => Err(SinkError::Refused(format!(
                "a rebuild sends nothing (was handed {} for order {})",
                message.id(),
                message.order_id
            ))),
        }
    }
}

/// Rebuilds every order's notification state from the log and switches it in, sending
/// nothing. `progress` gets the number of events replayed so far after every page.
pub async fn rebuild_notifications(
    config: &ProjectorConfig,
    notifications: &NotificationsConfig,
    pool: PgPool,
    redis: crate::redis_connection::RedisConnection,
    progress: impl FnMut(u64),
) -> Result<NotificationsRebuildReport, NotificationsRebuildError> {
    let events = EventStore::new(pool);
    let view = |store| NotificationsProjection::new(store, Withheld, notifications).replaying();
    let live = view(NotificationStore::new(
        redis.clone(),
        config.redis_prefix.clone(),
    ));
    let staging = NotificationStore::new(
        redis,
        format!(
            "{}:rebuild-{}",
            config.redis_prefix,
            Uuid::now_v7().simple()
        ),
    );
    let green = view(staging.clone());
    let result = rebuild_into(&events, &green, &live, config.rebuild_page, progress).await;
    // The staging copy goes either way; a failed rebuild leaves the live states as they were.
    staging.delete_all().await?;
    let (replayed, switched) = result?;
    let report = NotificationsRebuildReport {
        events: replayed.events,
        states: replayed.streams,
        switched: switched.switched,
        unappliable: replayed.unappliable + switched.unappliable,
    };
    tracing::info!(?report, "notifications rebuild finished");
    Ok(report)
}
