//! Waybill's shared language: the event envelope, the event payloads with their versioned JSON
//! Schemas, the upcasters that lift old payload versions on read, the value types every event is
//! made of (money, quantities, ids), and the view DTOs the projectors write and the query API
//! serves.
//!
//! In the ARCHITECTURE.md diagram this crate sits under all three boxes: the write side appends
//! these events, the projectors consume them, the query API serves the views built from them.
//! It does no I/O.

pub mod access;
pub mod api_keys;
pub mod envelope;
pub mod events;
pub mod fees;
pub mod json_body;
pub mod jwt;
pub mod notifications;
pub mod payload;
pub mod problem;
pub mod subject;
pub mod upcast;
pub mod values;
pub mod views;

pub use envelope::{Actor, EventEnvelope, NewEvent};
pub use events::{OrderEvent, OrderEventKind};
pub use payload::Payload;
pub use problem::ProblemType;
pub use values::{
    Channel, Currency, Email, IdempotencyKey, Money, OrderId, Quantity, Sku, ValueError,
};
