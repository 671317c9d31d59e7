use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{OrderId, Quantity, Sku};

/// Units of one order line held at one location. A line may be split over several locations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservedLine {
    pub line_no: u32,
    pub sku: Sku,
    pub location_id: String,
    pub quantity: Quantity,
}

/// Units of one order line that no location had, kept on back-order (policy `backorder`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackorderedLine {
    pub line_no: u32,
    pub sku: Sku,
    pub quantity: Quantity,
}

/// `InventoryReserved` v1: stock was soft-reserved for the order; released automatically at
/// `expires_at` unless the order is confirmed (allocated) first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryReserved {
    pub order_id: OrderId,
    pub lines: Vec<ReservedLine>,
    pub backordered: Vec<BackorderedLine>,
    pub expires_at: DateTime<Utc>,
    pub reserved_at: DateTime<Utc>,
}

/// One line the locations could not cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shortage {
    pub line_no: u32,
    pub sku: Sku,
    pub requested: u32,
    pub available: u32,
}

/// `InventoryReservationFailed` v1: not enough stock and the policy is to reject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryReservationFailed {
    pub order_id: OrderId,
    pub shortages: Vec<Shortage>,
    pub failed_at: DateTime<Utc>,
}

/// `InventoryAllocated` v1: at confirmation the soft reservation became a hard allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryAllocated {
    pub order_id: OrderId,
    pub lines: Vec<ReservedLine>,
    pub allocated_at: DateTime<Utc>,
}

/// `InventoryReleased` v1: the order's reserved or allocated units went back to stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryReleased {
    pub order_id: OrderId,
    pub reason: ReleaseReason,
    pub released_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The reservation's deadline passed before the order was confirmed.
    Expired,
    PaymentDeclined,
    OrderCancelled,
    RiskRejected,
    /// Allocation at confirmation failed for part of the order; the rest is given back.
    AllocationFailed,
}

impl ReleaseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::PaymentDeclined => "payment_declined",
            Self::OrderCancelled => "order_cancelled",
            Self::RiskRejected => "risk_rejected",
            Self::AllocationFailed => "allocation_failed",
        }
    }
}
