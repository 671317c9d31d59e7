//! Read-model DTOs: what projectors write and the query API serves.

mod consistency;
mod tracking;

pub use consistency::ConsistencyToken;
pub use tracking::{
    PaymentState, StockState, TimelineEntry, TrackingBackorder, TrackingLine, TrackingPayment,
    TrackingStatus, TrackingStock, TrackingTotals, TrackingView,
};
