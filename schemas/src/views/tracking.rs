use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::values::Channel;

/// The customer-facing tracking view of one order, kept in Redis by the tracking projector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrackingView {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: String,
    /// The last stream version applied to this view.
    pub version: i64,
    pub status: TrackingStatus,
    pub channel: Channel,
    pub channel_order_ref: String,
    pub currency: String,
    pub lines: Vec<TrackingLine>,
    pub totals: TrackingTotals,
    pub shipping_method: String,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub cancellation_reason: Option<String>,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackingStatus {
    Placed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrackingLine {
    pub line_no: u32,
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    /// Minor units of the order currency.
    pub unit_price_minor: i64,
    pub total_minor: i64,
}

/// All amounts in minor units of the order currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrackingTotals {
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub tax_minor: i64,
    pub shipping_minor: i64,
    pub grand_total_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub version: i64,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// One line a customer can read ("Order placed", "Order cancelled: customer request").
    pub summary: String,
}
