//! The event feed view (durable consumer `feed`): gives every event of the log its feed
//! position, in the event store's database (`event_feed`, owned by
//! `waybill_write_side::subscriptions::feed`). The shared runtime hands it each stream's events
//! in version order with duplicates dropped and gaps filled from the log, so a stream's events
//! get increasing positions; the store appends a batch's entries with one compare-and-set per
//! stream and positions taken from the one head row, in one transaction. The pull feed
//! (`GET /v1/events`) and the webhook delivery workers read the feed.

use sqlx::PgPool;
use waybill_schemas::EventEnvelope;
use waybill_write_side::subscriptions::feed::{self, FeedEntry, StreamAppend};

use crate::runtime::{View, ViewWrite};

/// The feed view's consumer name.
pub const VIEW_NAME: &str = "feed";

/// Why the feed could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("event feed database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A stream's place in the feed, and the entries applied since it was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedState {
    /// The last stream version in the feed (after `pending`).
    pub version: i64,
    /// Entries to append, in version order.
    pub pending: Vec<FeedEntry>,
}

/// The feed view.
#[derive(Debug, Clone)]
pub struct FeedProjection {
    pool: PgPool,
}

impl FeedProjection {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// The state after `event` (pure).
pub fn apply(state: Option<&FeedState>, event: &EventEnvelope) -> FeedState {
    let mut pending = state.map(|s| s.pending.clone()).unwrap_or_default();
    pending.push(FeedEntry {
        stream_id: event.stream_id.clone(),
        stream_version: event.stream_version,
        event_type: event.event_type.clone(),
    });
    FeedState {
        version: event.stream_version,
        pending,
    }
}

impl View for FeedProjection {
    type State = FeedState;
    type Error = FeedError;

    fn name(&self) -> &str {
        VIEW_NAME
    }

    /// Every stream: the feed is the whole log.
    fn handles(&self, _stream_id: &str) -> bool {
        true
    }

    fn version_of(state: &FeedState) -> i64 {
        state.version
    }

    async fn load(&self, stream_ids: &[String]) -> Result<Vec<Option<FeedState>>, FeedError> {
        let versions = feed::versions(&self.pool, stream_ids).await?;
        Ok(versions
            .into_iter()
            .map(|version| {
                (version > 0).then(|| FeedState {
                    version,
                    pending: Vec::new(),
                })
            })
            .collect())
    }

    fn apply(
        &self,
        state: Option<&FeedState>,
        event: &EventEnvelope,
    ) -> Result<FeedState, FeedError> {
        Ok(apply(state, event))
    }

    async fn store(&self, writes: Vec<ViewWrite<FeedState>>) -> Result<Vec<bool>, FeedError> {
        let appends: Vec<StreamAppend> = writes
            .into_iter()
            .map(|w| StreamAppend {
                stream_id: w.stream_id,
                expected_version: w.expected_version,
                version: w.state.version,
                entries: w.state.pending,
            })
            .collect();
        Ok(feed::append(&self.pool, &appends).await?)
    }
}

#[cfg(test)]
mod tests;
