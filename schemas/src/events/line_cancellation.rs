//! Cancelling some units of a confirmed order (or all of them): the decision, and the stock
//! and node work that follows it. The money follows from the order's current total (see
//! `write-side/EDITS.md`): units cancelled after capture are refunded, units cancelled before
//! it are simply not captured.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::order_cancelled::CancelReason;
use crate::values::{Money, OrderId, Quantity, Sku};

/// Units of one line taken out of the order, and where they were when that was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelledUnits {
    pub line_no: u32,
    pub sku: Sku,
    pub quantity: Quantity,
    /// The fulfillment order the units were routed to; `None` while they were not routed yet.
    pub fulfillment_id: Option<String>,
}

/// `OrderLinesCancelled` v1: a customer, agent or service cancelled units of a confirmed order
/// that had not shipped. `value` is what the customer paid for them (line price after
/// discounts, with their tax share; shipping too when nothing of the order is left to ship).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLinesCancelled {
    pub order_id: OrderId,
    pub cancellation_id: Uuid,
    pub lines: Vec<CancelledUnits>,
    pub reason: CancelReason,
    pub note: Option<String>,
    pub value: Money,
    /// The API client that asked.
    pub requested_by: String,
    pub cancelled_at: DateTime<Utc>,
}

/// `CancelledUnitsReleased` v1: the units of a cancellation were withdrawn: their node's task
/// was amended (`nodes_amended`, fulfillment ids) and their stock given back to the inventory
/// (`released_units`: units that were still held for the order, 0 if none were).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelledUnitsReleased {
    pub order_id: OrderId,
    pub cancellation_id: Uuid,
    pub nodes_amended: Vec<String>,
    pub released_units: u32,
    pub released_at: DateTime<Utc>,
}
