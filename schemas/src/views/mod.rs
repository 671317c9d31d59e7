//! Read-model DTOs: what projectors write and the query API serves.

mod consistency;
mod search;
mod store_credit;
mod tracking;

pub use consistency::ConsistencyToken;
pub use search::{
    FacetCount, Highlight, OrderDocument, SearchAddress, SearchCustomer, SearchFacets, SearchHit,
    SearchLine,
};
pub use store_credit::{store_credit_key, StoreCreditEntry};
pub use tracking::{
    DeliveryState, PaymentState, ReturnStatus, ShipmentProgress, ShipmentStatus, StockState,
    TimelineEntry, TrackingAccess, TrackingBackorder, TrackingExchange, TrackingExchangeLine,
    TrackingLine, TrackingPayment, TrackingPickup, TrackingReturn, TrackingShipment,
    TrackingShipmentLine, TrackingStatus, TrackingStock, TrackingStoreCredit, TrackingTotals,
    TrackingView,
};
