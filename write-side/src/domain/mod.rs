//! The pure order domain: parsing raw requests into validated commands, enrichment and pricing,
//! risk scoring, the order aggregate's state machine (with its money [`ledger`]: captures,
//! refunds, chargebacks) and the checkout flow's next-step decision.
//! No async, no SQL, no clock reads: time and ids come in as data, so the same code runs in unit
//! tests, property tests and production.

pub mod cancel;
pub mod cancel_lines;
pub mod checkout_flow;
pub mod edit_request;
pub mod fields;
pub mod fulfillment;
pub mod ledger;
pub mod order;
pub mod place;
pub mod place_typed;
pub mod pricing;
pub mod returns;
pub mod risk;

pub use cancel::{parse_cancel_order, CancelOrder};
pub use cancel_lines::parse_cancel_lines;
pub use checkout_flow::{next_step, FlowPolicy, OutOfStockPolicy, Step};
pub use edit_request::parse_edit_order;
pub use fields::{FieldError, ValidationErrors};
pub use order::{
    Order, OrderCommand, OrderError, OrderState, OrderStatus, PaymentState, ReservationState,
    RiskState,
};
pub use place::{choose_pickup_store, parse_place_order, PlaceOrder};
pub use place_typed::parse_place_order_bytes;
