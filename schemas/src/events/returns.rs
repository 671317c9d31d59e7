//! Return events (RMA): a customer or an agent asks to send delivered units back, the carrier
//! issues a return label, the receiving node reports receipt and inspection, accepted resellable
//! units go back into stock, and the return is resolved (a refund of what the accepted units
//! cost, minus the policy's fees). Return ids are `<order id>-R<n>`, n counting from 1 in the
//! order's stream; everything lives in the order's stream, so one fold gives the unit accounting.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::fulfillment::FulfillmentLine;
use crate::values::{Money, OrderId, Quantity, Sku};

/// Why the customer sends units back. Seller-fault reasons waive the return shipping fee.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReturnReason {
    WrongSize,
    Damaged,
    NotAsDescribed,
    WrongItem,
    ChangedMind,
    ArrivedLate,
    Other,
}

impl ReturnReason {
    pub const ALL: [ReturnReason; 7] = [
        Self::WrongSize,
        Self::Damaged,
        Self::NotAsDescribed,
        Self::WrongItem,
        Self::ChangedMind,
        Self::ArrivedLate,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WrongSize => "wrong_size",
            Self::Damaged => "damaged",
            Self::NotAsDescribed => "not_as_described",
            Self::WrongItem => "wrong_item",
            Self::ChangedMind => "changed_mind",
            Self::ArrivedLate => "arrived_late",
            Self::Other => "other",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

/// A unit the customer wants instead of a returned one (exchanges).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplacementLine {
    /// The returned order line this replaces.
    pub for_line_no: u32,
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price: Money,
}

/// What the customer gets for the accepted units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReturnResolution {
    /// Money back to the card the order was paid with.
    Refund,
    /// The value as store credit.
    StoreCredit,
    /// Other units instead.
    Exchange { replacements: Vec<ReplacementLine> },
}

impl ReturnResolution {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Refund => "refund",
            Self::StoreCredit => "store_credit",
            Self::Exchange { .. } => "exchange",
        }
    }
}

/// Units of one order line being returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLine {
    pub line_no: u32,
    pub sku: Sku,
    pub quantity: Quantity,
    pub reason: ReturnReason,
    #[serde(default)]
    pub note: Option<String>,
    /// What the customer paid for these units: their share of the line after its discounts and
    /// of the order discounts, plus their tax share.
    pub paid: Money,
    /// The node that delivered or handed over these units.
    pub origin_node_id: String,
}

/// Which fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnFeeKind {
    /// Per return, unless a line's reason is the seller's fault.
    ReturnShipping,
    /// Basis points of the value of the line's units, for some reasons.
    Restocking,
}

/// One fee kept from the refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnFee {
    pub kind: ReturnFeeKind,
    /// The line a restocking fee is for; none for the return shipping fee.
    #[serde(default)]
    pub line_no: Option<u32>,
    pub amount: Money,
}

/// `ReturnRequested` v1: the return was authorized. The fees are those the policy sets for all
/// requested units; the refund is decided after inspection, for the accepted units only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequested {
    pub order_id: OrderId,
    /// `<order id>-R<n>`.
    pub return_id: String,
    pub lines: Vec<ReturnLine>,
    pub resolution: ReturnResolution,
    pub fees: Vec<ReturnFee>,
    /// An agent waived every fee.
    #[serde(default)]
    pub fees_waived: bool,
    /// Σ paid − fees, never below zero: the refund if every unit is accepted (before the cap
    /// of what is still refundable).
    pub expected_refund: Money,
    /// The API client (customer, agent, service) that asked.
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

/// `ReturnLabelIssued` v1: the carrier issued a prepaid return label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLabelIssued {
    pub order_id: OrderId,
    pub return_id: String,
    pub carrier: String,
    pub tracking_number: String,
    pub tracking_url: String,
    pub label_url: String,
    /// Where to send the parcel, in words for the customer.
    pub instructions: String,
    pub issued_at: DateTime<Utc>,
}

/// `ReturnReceived` v1: the receiving node has the parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnReceived {
    pub order_id: OrderId,
    pub return_id: String,
    pub node_id: String,
    pub received_at: DateTime<Utc>,
}

/// What inspection found for one returned line. `accepted + rejected` is the line's returned
/// quantity; `resellable ≤ accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectedLine {
    pub line_no: u32,
    pub sku: Sku,
    pub accepted: u32,
    pub rejected: u32,
    /// Accepted units that go back into stock.
    pub resellable: u32,
    #[serde(default)]
    pub note: Option<String>,
}

/// `ReturnInspected` v1: the node (or an agent) inspected the returned units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnInspected {
    pub order_id: OrderId,
    pub return_id: String,
    pub lines: Vec<InspectedLine>,
    /// The node, or the agent's client id.
    pub inspected_by: String,
    pub inspected_at: DateTime<Utc>,
}

/// `ReturnRestocked` v1: accepted resellable units are on hand again at `location_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRestocked {
    pub order_id: OrderId,
    pub return_id: String,
    pub location_id: String,
    pub lines: Vec<FulfillmentLine>,
    pub restocked_at: DateTime<Utc>,
}

/// `ReturnRefundDecided` v1: the refund resolution of an inspected return. `amount` = value of
/// the accepted units − fees on them, never below zero, capped at what the ledger still
/// allows. A positive amount comes with a `RefundRequested` (kind `return`, id `refund_id`, a
/// UUID v5 of the return id) in the same append; zero refunds nothing and has no refund id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRefundDecided {
    pub order_id: OrderId,
    pub return_id: String,
    /// What the customer paid for the accepted units.
    pub accepted_value: Money,
    /// Fees kept, for the accepted units.
    pub fees: Vec<ReturnFee>,
    pub amount: Money,
    #[serde(default)]
    pub refund_id: Option<Uuid>,
    pub decided_at: DateTime<Utc>,
}
