use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tracking::{PaymentState, TrackingStatus};
use crate::values::Channel;

/// One order as the support search index holds it: everything an agent may search for,
/// including the customer's personal data (so only agents and admins may read it).
/// Kept by the search projector; `version` is the last stream version applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderDocument {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: String,
    pub version: i64,
    pub channel: Channel,
    pub channel_order_ref: String,
    pub customer: SearchCustomer,
    pub shipping_address: SearchAddress,
    pub billing_address: Option<SearchAddress>,
    pub lines: Vec<SearchLine>,
    pub status: TrackingStatus,
    /// Where the order is in its lifecycle: `checkout`, `fraud_review`, `awaiting_payment`,
    /// `confirmed`, `captured`, `cancelled`.
    pub stage: String,
    pub currency: String,
    /// Minor units of `currency`.
    pub grand_total_minor: i64,
    pub payment_state: PaymentState,
    /// Carrier tracking numbers (none until fulfillment exists).
    pub tracking_numbers: Vec<String>,
    /// Return authorizations (none until returns exist).
    pub rma_numbers: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Markers agents filter on: `fraud_review`, `risk_rejected`, `payment_declined`,
    /// `payment_action_required`, `out_of_stock`, `backordered`, `authorization_expired`,
    /// `cancelled`, `exception` (something went wrong), `return` (an RMA exists).
    pub tags: Vec<String>,
}

impl OrderDocument {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchCustomer {
    pub customer_id: Option<String>,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchAddress {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchLine {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
}

/// One search hit: the document and which of its fields matched, with the matching words
/// wrapped in `<em>…</em>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    pub document: OrderDocument,
    pub highlights: Vec<Highlight>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Highlight {
    /// Dotted path of the field (`customer.name`, `lines.name`, `shipping_address.city`).
    pub field: String,
    pub fragment: String,
}

/// Number of matching orders per value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct SearchFacets {
    pub status: Vec<FacetCount>,
    pub channel: Vec<FacetCount>,
}
