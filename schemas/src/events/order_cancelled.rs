use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::OrderId;

/// `OrderCancelled` v1: the whole order was cancelled before fulfilment. (`reservation_expired`
/// and `timeout` were added to `reason` later: additive, so still v1.)
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
    /// The stock reservation lapsed before the order was confirmed.
    ReservationExpired,
    /// A step waited past its deadline (3-D Secure challenge, fraud review).
    Timeout,
    Other,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CustomerRequest => "customer_request",
            Self::Fraud => "fraud",
            Self::OutOfStock => "out_of_stock",
            Self::PaymentFailed => "payment_failed",
            Self::ReservationExpired => "reservation_expired",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }
}
