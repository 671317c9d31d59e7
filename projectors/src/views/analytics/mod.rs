//! The analytics view: order facts, line facts and ledger entries in the ClickHouse warehouse
//! ([`crate::warehouse`]), for the finance API and reconciliation. It runs on the shared consumer
//! runtime (durable consumer `analytics`) with large batches (1,000 messages or a 250 ms linger,
//! whichever first), because ClickHouse wants few large inserts.
//!
//! The view's state per order is its `order_facts` row (its `version` is the stream version
//! applied last) plus the rows the current batch adds; per settlement report or payout stream
//! (`settlement-…`, `payout-…`) it is the version in `stream_positions` plus the report lines,
//! fee entries and payout rows the batch adds. ClickHouse has no compare-and-set: the
//! runtime's duplicate and gap handling keeps each event applied once in order, and every table
//! is a ReplacingMergeTree keyed by its natural key, so a redelivered batch rewrites identical
//! rows instead of adding to them.

mod apply;
mod marker;
pub mod rebuild;
mod store;
#[cfg(test)]
mod tests;

pub use apply::{apply, entry_kind, status};
pub use marker::AnalyticsStoreMarker;
pub use rebuild::{rebuild_analytics, AnalyticsRebuildError, AnalyticsRebuildReport};
pub(crate) use store::string_list;
pub use store::{AnalyticsStore, TABLES};

use waybill_schemas::events::settlement::{PAYOUT_STREAM_PREFIX, SETTLEMENT_STREAM_PREFIX};
use waybill_schemas::events::DecodeError;
use waybill_schemas::{EventEnvelope, OrderId};

use crate::runtime::{View, ViewWrite};
use crate::warehouse::rows::{
    LedgerEntryRow, LineFactRow, OrderFactRow, PayoutRow, ReturnRow, SettlementLineRow, ShipmentRow,
};
use crate::warehouse::WarehouseError;

/// The durable consumer and dead-letter name of this view.
pub const VIEW_NAME: &str = "analytics";

/// Messages per batch of this view.
pub const BATCH: usize = 1_000;

/// How long a batch waits to fill up.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
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
    #[error("{stream_id} v{version}: {event_type} does not belong in this stream")]
    WrongStream {
        stream_id: String,
        event_type: String,
        version: i64,
    },
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// One stream's state in this view. (Orders are nearly all of the streams, so boxing the
/// larger variant would only add an allocation per order.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnalyticsState {
    Order(OrderAnalytics),
    Settlement(SettlementAnalytics),
}

/// A settlement report's or payout's stream: its position and the rows the batch adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettlementAnalytics {
    pub stream_id: String,
    pub version: u64,
    pub lines: Vec<SettlementLineRow>,
    pub fees: Vec<LedgerEntryRow>,
    pub payouts: Vec<PayoutRow>,
}

/// One order's analytics: its fact row, and the rows the batch being applied adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderAnalytics {
    pub fact: OrderFactRow,
    pub lines: Vec<LineFactRow>,
    pub ledger: Vec<LedgerEntryRow>,
    /// Every parcel of the order: loaded with the state (a scan needs the carrier and ship time
    /// its label recorded) and written whole with each batch that touches the order.
    pub shipments: Vec<ShipmentRow>,
    /// Returned lines the batch adds (one row per return and line).
    pub returns: Vec<ReturnRow>,
}

/// The analytics view plugged into the consumer runtime.
#[derive(Clone)]
pub struct AnalyticsProjection {
    store: AnalyticsStore,
    name: String,
}

impl AnalyticsProjection {
    pub fn new(store: AnalyticsStore) -> Self {
        Self::named(store, VIEW_NAME)
    }
    /// The view under another consumer name (a second copy, e.g. a benchmark's).
    pub fn named(store: AnalyticsStore, name: impl Into<String>) -> Self {
        Self {
            store,
            name: name.into(),
        }
    }
    pub fn store(&self) -> &AnalyticsStore {
        &self.store
    }
}

impl View for AnalyticsProjection {
    type State = AnalyticsState;
    type Error = AnalyticsError;

    fn name(&self) -> &str {
        &self.name
    }

    fn handles(&self, stream_id: &str) -> bool {
        OrderId::from_stream_id(stream_id).is_some()
            || stream_id.starts_with(SETTLEMENT_STREAM_PREFIX)
            || stream_id.starts_with(PAYOUT_STREAM_PREFIX)
    }

    fn version_of(state: &AnalyticsState) -> i64 {
        let version = match state {
            AnalyticsState::Order(order) => order.fact.version,
            AnalyticsState::Settlement(settlement) => settlement.version,
        };
        i64::try_from(version).unwrap_or(i64::MAX)
    }

    async fn load(
        &self,
        stream_ids: &[String],
    ) -> Result<Vec<Option<AnalyticsState>>, AnalyticsError> {
        self.store.load_streams(stream_ids).await
    }

    fn apply(
        &self,
        state: Option<&AnalyticsState>,
        event: &EventEnvelope,
    ) -> Result<AnalyticsState, AnalyticsError> {
        apply(state, event)
    }

    /// Writes every state; ClickHouse cannot compare-and-set, and needs not: a stale or repeated
    /// write is replaced by (or equal to) the newest version of each row.
    async fn store(
        &self,
        writes: Vec<ViewWrite<AnalyticsState>>,
    ) -> Result<Vec<bool>, AnalyticsError> {
        let count = writes.len();
        let states: Vec<AnalyticsState> = writes.into_iter().map(|w| w.state).collect();
        let rows = self.store.write(&states).await?;
        metrics::counter!("waybill_analytics_rows_written_total").increment(rows as u64);
        Ok(vec![true; count])
    }
}
