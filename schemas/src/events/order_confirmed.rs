use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::OrderId;

/// `OrderConfirmed` v1: risk accepted, payment authorized (or prepaid) and stock allocated; the
/// order will be fulfilled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderConfirmed {
    pub order_id: OrderId,
    pub capture_mode: CaptureMode,
    pub confirmed_at: DateTime<Utc>,
}

/// When the authorized amount is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMode {
    /// Right after confirmation.
    Immediate,
    /// When the goods ship (the authorization's expiry is then a durable deadline).
    OnShipment,
}

impl CaptureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Immediate => "immediate",
            Self::OnShipment => "on_shipment",
        }
    }
}
