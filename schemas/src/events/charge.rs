//! Extra charges: money taken from the customer's card after the order's own capture, for
//! instance the price difference of an exchange for a dearer item. Each charge is a new
//! authorization and capture with the card token the order was placed with, asked by the
//! checkout process manager under the idempotency key `<order_id>:charge:<charge_id>`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{Money, OrderId};

/// `ExtraChargeRequested` v1: Waybill decided to charge `amount` more to the order's card.
/// `reason` is internal (agents, finance); `return_id` names the exchange it pays for, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtraChargeRequested {
    pub order_id: OrderId,
    pub charge_id: Uuid,
    pub amount: Money,
    pub reason: String,
    /// The API client (agent, service) or flow that asked.
    pub requested_by: String,
    #[serde(default)]
    pub return_id: Option<String>,
    pub requested_at: DateTime<Utc>,
}

/// `ExtraChargeCaptured` v1: the gateway authorized and captured the charge. Money into the
/// ledger, refundable like the order's own capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtraChargeCaptured {
    pub order_id: OrderId,
    pub charge_id: Uuid,
    pub authorization_id: String,
    /// The gateway's capture id; refunds of this money name it.
    pub capture_id: String,
    pub amount: Money,
    pub captured_at: DateTime<Utc>,
}

/// `ExtraChargeDeclined` v1: the card refused the charge (or asked for 3-D Secure, which an
/// extra charge without the customer present cannot complete). Nothing moved; an agent decides
/// what happens next (a new charge, or another resolution).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtraChargeDeclined {
    pub order_id: OrderId,
    pub charge_id: Uuid,
    pub code: String,
    pub message: String,
    pub declined_at: DateTime<Utc>,
}
