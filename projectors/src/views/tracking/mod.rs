//! The customer tracking view: one Redis hash per order at `<prefix>:tracking:{<order uuid>}` with
//! the fields `version` (the last stream version applied) and `view` (the
//! [`waybill_schemas::views::TrackingView`] JSON); [`keys`] owns the layout, for this
//! projector (the only writer) and the query API (which reads through it). Writes go through a compare-and-set script so a stale or duplicate write never regresses it.

mod apply;
mod cancellation;
pub mod changes;
mod edit;
mod fulfillment;
pub mod keys;
mod returns;
mod store;
#[cfg(test)]
mod tests;

pub use apply::{apply, cancel_reason_words, decline_words, fold};
pub use changes::{ChangeFeed, Watch};
pub use keys::{customer_orders_key, lookup_key};
pub use store::{TrackingStore, TrackingWrite};

use std::future::Future;

use waybill_schemas::events::DecodeError;
use waybill_schemas::views::TrackingView;
use waybill_schemas::{EventEnvelope, OrderId};

use crate::runtime::{View, ViewWrite};

/// The durable consumer and dead-letter name of this view.
pub const VIEW_NAME: &str = "tracking";

/// The generation marker of the tracking views under `prefix`: the projector keeps the store
/// filled through it, readers ask it whether a missing view means "not found" or "catching up".
pub fn store_marker(
    redis: crate::RedisConnection,
    prefix: &str,
) -> crate::views::store_marker::RedisStoreMarker {
    crate::views::store_marker::RedisStoreMarker::new(redis, keys::store_marker_key(prefix))
}

#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
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
    #[error("stored tracking view {key} is unreadable: {source}")]
    CorruptView {
        key: String,
        source: serde_json::Error,
    },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The tracking view plugged into the consumer runtime.
#[derive(Clone)]
pub struct TrackingProjection {
    store: TrackingStore,
    indexing: bool,
}

impl TrackingProjection {
    pub fn new(store: TrackingStore) -> Self {
        Self {
            store,
            indexing: true,
        }
    }
    /// The view writing a rebuild's staging copy: views only, no customer or lookup index
    /// entries (the switch writes those under the live prefix).
    pub fn staging(store: TrackingStore) -> Self {
        Self {
            store,
            indexing: false,
        }
    }
    pub fn store(&self) -> &TrackingStore {
        &self.store
    }
}

impl View for TrackingProjection {
    type State = TrackingView;
    type Error = TrackingError;

    fn name(&self) -> &str {
        VIEW_NAME
    }

    fn scrubs_on_erasure(&self) -> bool {
        true
    }

    /// The `/track` lookups of the erased orders go: they were digests of the email and
    /// postcodes. The re-projection then rewrites the views with the stand-ins.
    async fn forget(&self, stream_ids: &[String]) -> Result<(), TrackingError> {
        let views: Vec<TrackingView> = self
            .store
            .load_streams(stream_ids)
            .await?
            .into_iter()
            .flatten()
            .collect();
        self.store.forget_lookups(&views).await
    }

    fn handles(&self, stream_id: &str) -> bool {
        OrderId::from_stream_id(stream_id).is_some()
    }

    fn version_of(state: &TrackingView) -> i64 {
        state.version
    }

    fn load(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<TrackingView>>, TrackingError>> + Send {
        self.store.load_streams(stream_ids)
    }

    fn versions(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<Vec<i64>, TrackingError>> + Send {
        self.store.versions(stream_ids)
    }

    fn apply(
        &self,
        state: Option<&TrackingView>,
        event: &EventEnvelope,
    ) -> Result<TrackingView, TrackingError> {
        apply(state, event)
    }

    async fn store(
        &self,
        writes: Vec<ViewWrite<TrackingView>>,
    ) -> Result<Vec<bool>, TrackingError> {
        // A view written for the first time carries its OrderPlaced, and a view with store
        // credit may carry a new one: index them first (idempotent writes), so a crash before
        // the view write is repaired by the redelivery that writes both again.
        let indexed: Vec<&TrackingView> = writes
            .iter()
            .filter(|w| {
                self.indexing
                    && (w.expected_version == 0 || !w.state.payment.store_credits.is_empty())
            })
            .map(|w| &w.state)
            .collect();
        self.store.index(&indexed).await?;
        let writes: Vec<TrackingWrite> = writes
            .into_iter()
            .map(|w| TrackingWrite {
                expected_version: w.expected_version,
                view: w.state,
            })
            .collect();
        let written = self.store.compare_and_set(&writes).await?;
        if self.indexing {
            // Open pages and waiting requests re-read these views now. A failed announcement
            // costs them only freshness (they re-read when the feed reconnects), so it is
            // logged, not retried: the views are written.
            let changed: Vec<(&str, i64)> = writes
                .iter()
                .zip(&written)
                .filter(|(_, written)| **written)
                .map(|(w, _)| (w.view.order_id.as_str(), w.view.version))
                .collect();
            let mut redis = self.store.connection();
            if let Err(error) = changes::announce(&mut redis, self.store.prefix(), &changed).await {
                tracing::warn!(%error, views = changed.len(), "tracking changes not announced");
            }
        }
        Ok(written)
    }

    async fn confirm_stored(&self) -> Result<(), TrackingError> {
        Ok(self.store.connection().await_replicas().await?)
    }
}
