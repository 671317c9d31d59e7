use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::OrderId;

/// `OrderCancelled` v1: the whole order was cancelled before fulfilment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    pub order_id: OrderId,
    pub reason: CancelReason,
    pub note: Option<String>,
    pub cancelled_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    CustomerRequest,
    Fraud,
    OutOfStock,
    PaymentFailed,
    Other,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CustomerRequest => "customer_request",
            Self::Fraud => "fraud",
            Self::OutOfStock => "out_of_stock",
            Self::PaymentFailed => "payment_failed",
            Self::Other => "other",
        }
    }
}
