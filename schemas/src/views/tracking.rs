use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::values::Channel;

/// The customer-facing tracking view of one order, kept in Redis by the tracking projector.
///
/// Fields added after the first version (`payment`, `stock`, `confirmed_at`) have serde
/// defaults, so views written before them still read.
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
    #[serde(default)]
    pub payment: TrackingPayment,
    #[serde(default)]
    pub stock: TrackingStock,
    #[serde(default)]
    pub confirmed_at: Option<DateTime<Utc>>,
    pub timeline: Vec<TimelineEntry>,
    /// How far the goods got, across all parcels and pickups (`none` until a parcel ships or
    /// a pickup is collected).
    #[serde(default)]
    pub delivery: DeliveryState,
    /// Parcels, one per node that ships part of the order.
    #[serde(default)]
    pub shipments: Vec<TrackingShipment>,
    /// Where and how to collect a buy-online-pick-up-in-store order: the store the customer chose,
    /// from placement on (null for shipped orders).
    #[serde(default)]
    pub pickup: Option<TrackingPickup>,
    /// Returns the customer started (later issue; empty until then).
    #[serde(default)]
    pub returns: Vec<TrackingReturn>,
    /// Who may find this order, as digests (see `waybill_schemas::access`). Kept in Redis for the
    /// projector's indexes; the query API never serves it.
    #[serde(default, skip_serializing_if = "TrackingAccess::is_empty")]
    #[schema(ignore)]
    pub access: TrackingAccess,
}

/// Digests the tracking projector indexes an order by. Never personal data in plain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TrackingAccess {
    /// `customer_digest` of the order's customer id (absent for guest checkouts).
    #[serde(default)]
    pub customer: Option<String>,
    /// `lookup_digest`s of order number + email and order number + postcode.
    #[serde(default)]
    pub lookup: Vec<String>,
}

impl TrackingAccess {
    pub fn is_empty(&self) -> bool {
        self.customer.is_none() && self.lookup.is_empty()
    }
}

/// One parcel. Times UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackingShipment {
    pub shipment_id: String,
    pub carrier: String,
    pub tracking_number: Option<String>,
    /// The carrier's tracking page for this parcel.
    pub tracking_url: Option<String>,
    pub status: ShipmentStatus,
    /// Estimated delivery.
    pub eta: Option<DateTime<Utc>>,
    /// Order lines (and units) in this parcel.
    #[serde(default)]
    pub lines: Vec<TrackingShipmentLine>,
    /// Carrier scans, oldest first.
    #[serde(default)]
    pub progress: Vec<ShipmentProgress>,
    /// Proof of delivery: who received the parcel or where it was left.
    #[serde(default)]
    pub delivered_to: Option<String>,
}

/// The goods of the whole order: partially shipped/delivered until every unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    #[default]
    None,
    PartiallyShipped,
    Shipped,
    PartiallyDelivered,
    Delivered,
    /// Delivered and closed after the auto-close period.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    LabelCreated,
    PickedUp,
    InTransit,
    OutForDelivery,
    Delivered,
    Exception,
    ReturnedToSender,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackingShipmentLine {
    pub line_no: u32,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShipmentProgress {
    pub at: DateTime<Utc>,
    /// "Departed Leeds hub".
    pub description: String,
    pub location: Option<String>,
}

/// Buy online, pick up in store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackingPickup {
    pub store_name: String,
    pub address: String,
    /// What to bring and where to go, in words for the customer.
    pub instructions: String,
    pub ready: bool,
    pub ready_at: Option<DateTime<Utc>>,
    /// Until when the order is held.
    pub collect_by: Option<DateTime<Utc>>,
    /// The pickup code's last characters ("••••42"); the code itself is sent to the customer.
    #[serde(default)]
    pub code_hint: Option<String>,
    #[serde(default)]
    pub picked_up_at: Option<DateTime<Utc>>,
    /// Order lines (and units) to collect.
    #[serde(default)]
    pub lines: Vec<TrackingShipmentLine>,
}

/// One return (RMA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackingReturn {
    pub rma: String,
    pub status: ReturnStatus,
    #[serde(default)]
    pub lines: Vec<TrackingShipmentLine>,
    /// Refunded so far, minor units of the order currency.
    #[serde(default)]
    pub refunded_minor: i64,
    /// The prepaid return label and its tracking link, once the carrier issued it.
    #[serde(default)]
    pub label_url: Option<String>,
    #[serde(default)]
    pub tracking_url: Option<String>,
    /// How to send the parcel back.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Fees kept from the refund (return shipping, restocking), minor units.
    #[serde(default)]
    pub fees_minor: i64,
    /// The refund if every unit is accepted.
    #[serde(default)]
    pub expected_refund_minor: i64,
    /// The refund decided after inspection (before the gateway pays it out).
    #[serde(default)]
    pub refund_minor: Option<i64>,
    /// Units accepted and not accepted at inspection.
    #[serde(default)]
    pub accepted_units: u32,
    #[serde(default)]
    pub rejected_units: u32,
    /// The refund's id, to match the gateway's payout to this return.
    #[serde(default)]
    pub refund_id: Option<String>,
    /// The replacement, when the return is an exchange and its replacement was agreed.
    #[serde(default)]
    pub exchange: Option<TrackingExchange>,
    pub updated_at: DateTime<Utc>,
}

/// An exchange's replacement as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackingExchange {
    /// Replacement units (their own line numbers, from 1001) and SKUs.
    pub lines: Vec<TrackingExchangeLine>,
    /// Replacements' value − the returned units' value, minor units: positive is charged to
    /// the card, negative refunded.
    pub difference_minor: i64,
    /// The fulfillment order and parcel sending it, once routed and shipped.
    #[serde(default)]
    pub fulfillment_id: Option<String>,
    #[serde(default)]
    pub shipment_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackingExchangeLine {
    pub line_no: u32,
    pub for_line_no: u32,
    pub sku: String,
    pub quantity: u32,
}

/// requested → label_issued → received → inspected → refunded, or rejected (nothing accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnStatus {
    Requested,
    /// Not used since label_issued exists; kept so stored views still read.
    Approved,
    LabelIssued,
    Received,
    Inspected,
    Refunded,
    Rejected,
}

/// Where the order stands, as a customer may see it. `in_review` reads "We're checking your
/// order": the view never carries risk scores or the rules that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackingStatus {
    /// Received and going through checkout (stock, payment).
    Placed,
    /// Held for a manual check.
    InReview,
    /// Waiting for the customer: their bank asks them to confirm the payment
    /// (`payment.action_url`).
    AwaitingPayment,
    /// Stock allocated and payment secured; the order will be fulfilled.
    Confirmed,
    Cancelled,
}

/// The order's payment as the customer sees it. Amounts in minor units of the order currency.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct TrackingPayment {
    pub state: PaymentState,
    /// The amount held on the card (0 until authorized).
    #[serde(default)]
    pub authorized_minor: i64,
    /// The amount taken so far (partial captures add up).
    #[serde(default)]
    pub captured_minor: i64,
    /// The amount refunded to the card so far (partial refunds add up).
    #[serde(default)]
    pub refunded_minor: i64,
    /// The amount taken back by the card holder's bank after a lost card dispute.
    #[serde(default)]
    pub reversed_minor: i64,
    /// Taken from the card after the order's payment (an exchange's price difference); also
    /// counted in `captured_minor`.
    #[serde(default)]
    pub extra_charged_minor: i64,
    /// Given back as store credit instead of to the card.
    #[serde(default)]
    pub store_credit_minor: i64,
    /// Each store credit issued on this order (the projector also indexes them under the
    /// customer for `GET /v1/me/store-credit`).
    #[serde(default)]
    pub store_credits: Vec<TrackingStoreCredit>,
    /// The 3-D Secure challenge link while the customer's action is required, else null.
    #[serde(default)]
    pub action_url: Option<String>,
    /// Why the payment was refused, in words for the customer ("insufficient funds").
    #[serde(default)]
    pub decline_message: Option<String>,
}

/// One store credit issued on an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackingStoreCredit {
    #[schema(value_type = String, format = Uuid)]
    pub credit_id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The return it resolves, if any.
    #[serde(default)]
    pub return_id: Option<String>,
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    #[default]
    None,
    ActionRequired,
    Authorized,
    Declined,
    Captured,
    Voided,
    Expired,
    /// The gateway refused for good to capture the authorization: nothing was charged, and the
    /// order is held until an agent resolves the payment.
    CaptureFailed,
}

/// The order's stock as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct TrackingStock {
    pub state: StockState,
    /// When held items go back to stock unless the order is confirmed first.
    #[serde(default)]
    pub reserved_until: Option<DateTime<Utc>>,
    /// Units no location had, kept on back-order.
    #[serde(default)]
    pub backordered: Vec<TrackingBackorder>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockState {
    #[default]
    None,
    Reserved,
    Allocated,
    Released,
    Unavailable,
}

/// Units of one order line on back-order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackingBackorder {
    pub line_no: u32,
    pub sku: String,
    pub quantity: u32,
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
    /// Units of this line cancelled during fulfillment (no node could supply them).
    #[serde(default)]
    pub cancelled_quantity: u32,
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
    /// One line a customer can read ("Payment authorized", "Order cancelled: requested by the
    /// customer").
    pub summary: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_stored_before_payment_and_stock_existed_still_reads() {
        let stored = serde_json::json!({
            "order_id": "0190f0c4-0000-7000-8000-000000000001",
            "version": 2,
            "status": "cancelled",
            "channel": "web",
            "channel_order_ref": "WEB-1",
            "currency": "USD",
            "lines": [],
            "totals": {"subtotal_minor": 0, "discount_minor": 0, "tax_minor": 0,
                       "shipping_minor": 0, "grand_total_minor": 0},
            "shipping_method": "standard",
            "placed_at": "2026-11-25T10:00:00Z",
            "updated_at": "2026-11-25T10:01:00Z",
            "cancellation_reason": "customer_request",
            "timeline": []
        });
        let view: TrackingView = serde_json::from_value(stored).expect("old view reads");
        assert_eq!(view.status, TrackingStatus::Cancelled);
        assert_eq!(view.payment, TrackingPayment::default());
        assert_eq!(view.payment.state, PaymentState::None);
        assert_eq!(view.stock.state, StockState::None);
        assert_eq!(view.stock.backordered, Vec::new());
        assert_eq!(view.confirmed_at, None);
        assert!(view.shipments.is_empty() && view.returns.is_empty() && view.pickup.is_none());
        assert!(view.access.is_empty());
        let served = serde_json::to_value(&view).expect("encode");
        assert!(
            served.get("access").is_none(),
            "empty access is not written"
        );
    }

    #[test]
    fn new_states_serialize_in_snake_case() {
        let json = serde_json::to_value((
            TrackingStatus::AwaitingPayment,
            PaymentState::ActionRequired,
            StockState::Unavailable,
        ))
        .expect("encode");
        assert_eq!(
            json,
            serde_json::json!(["awaiting_payment", "action_required", "unavailable"])
        );
    }
}
