use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{Money, OrderId};

/// Why money goes back to the customer. Returns (issue 4) and cancellations after capture use
/// the same refund path as an agent's goodwill gesture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundKind {
    Goodwill,
    Return,
    Cancellation,
}

impl RefundKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Goodwill => "goodwill",
            Self::Return => "return",
            Self::Cancellation => "cancellation",
        }
    }
}

/// `RefundRequested` v1: Waybill decided to give `amount` back (never more than is still
/// refundable, checked by the ledger). The checkout process manager then asks the gateway with
/// the idempotency key `<order_id>:refund:<refund_id>` and records `PaymentRefunded` or
/// `RefundFailed`. `reason` is internal (agents, finance); the customer sees only the amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequested {
    pub order_id: OrderId,
    pub refund_id: Uuid,
    pub amount: Money,
    pub kind: RefundKind,
    pub reason: String,
    /// The API client (agent, service) that asked.
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

/// `PaymentRefunded` v1: the gateway moved `amount` back to the customer's card from
/// `capture_id`. Money out of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRefunded {
    pub order_id: OrderId,
    pub refund_id: Uuid,
    pub capture_id: String,
    /// The gateway's id of the refund (`re_…` in the sandbox); settlement report lines of type
    /// `refund` carry it as their transaction id.
    pub gateway_refund_id: String,
    pub amount: Money,
    pub refunded_at: DateTime<Utc>,
}

/// `RefundFailed` v1: the gateway refused the refund; nothing moved, and the amount is
/// refundable again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundFailed {
    pub order_id: OrderId,
    pub refund_id: Uuid,
    pub code: String,
    pub message: String,
    pub failed_at: DateTime<Utc>,
}
