//! `rebuild tracking`: replays the whole event log into a fresh key prefix (the green copy),
//! then switches it in order by order.
//!
//! The rebuild is the runtime's ([`crate::runtime::replay::rebuild_into`]): the replay: it builds every view under
//! `<prefix>:rebuild-<id>:tracking:*`, reporting progress after each page; the switch then writes each rebuilt view over the live one with
//! a compare-and-set on the live version, first bringing it level from the log where the live
//! projector moved on during the rebuild; the live view's customer and lookup index entries are
//! written with it. Each order switches atomically, never to an older version, so a reader
//! sees the old view or the whole rebuilt one; the staging keys are deleted at the end. The
//! live projector keeps running throughout.

use crate::redis_connection::RedisConnection;
use sqlx::PgPool;
use uuid::Uuid;
use waybill_write_side::event_store::{EventStore, EventStoreError};

use crate::runtime::replay::rebuild_into;
use crate::runtime::{ProjectorConfig, ReplayError};
use crate::views::tracking::{TrackingError, TrackingProjection, TrackingStore};

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("reading the event log failed: {0}")]
    EventStore(#[from] EventStoreError),
    #[error("writing tracking views failed: {0}")]
    Tracking(#[from] TrackingError),
    #[error("tracking views kept changing under the switch: {0}")]
    Contended(String),
}

impl From<ReplayError<TrackingError>> for RebuildError {
    fn from(error: ReplayError<TrackingError>) -> Self {
        match error {
            ReplayError::EventStore(error) => Self::EventStore(error),
            ReplayError::View(error) => Self::Tracking(error),
            contended @ ReplayError::Contended { .. } => Self::Contended(contended.to_string()),
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Events read from the log.
    pub events: u64,
    /// Views rebuilt.
    pub views: u64,
    /// Live views replaced by their rebuilt copy.
    pub swapped: u64,
    /// Orders whose events do not apply (their live view is left as it is).
    pub unappliable: u64,
}

/// Rebuilds every tracking view from the event log and switches the result in. `progress`
/// gets the number of events replayed so far after every page.
pub async fn rebuild_tracking(
    config: &ProjectorConfig,
    pool: PgPool,
    redis: RedisConnection,
    progress: impl FnMut(u64),
) -> Result<RebuildReport, RebuildError> {
    let events = EventStore::new(pool);
    let live = TrackingProjection::new(TrackingStore::new(
        redis.clone(),
        config.redis_prefix.clone(),
    ));
    let staging = TrackingStore::new(
        redis,
        format!(
            "{}:rebuild-{}",
            config.redis_prefix,
            Uuid::now_v7().simple()
        ),
    );
    let green = TrackingProjection::staging(staging.clone());
    let result = async {
        let (replayed, switched) =
            rebuild_into(&events, &green, &live, config.rebuild_page, progress).await?;
        Ok::<_, RebuildError>(RebuildReport {
            events: replayed.events,
            views: replayed.streams,
            swapped: switched.switched,
            unappliable: replayed.unappliable + switched.unappliable,
        })
    }
    .await;
    // The staging copy goes either way; a failed rebuild leaves the live views as they were.
    staging.delete_all().await?;
    let report = result?;
    tracing::info!(?report, "tracking rebuild finished");
    Ok(report)
}
