use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::payment::PaymentMethod;
use crate::values::{Channel, Currency, Email, Money, OrderId, Quantity, Sku};

/// `OrderPlaced` v4: an order was captured from a channel. Carries everything the order was
/// priced with, so no consumer has to look anything up to understand it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    pub channel: Channel,
    /// The order's id in the channel (web checkout id, marketplace order number, POS receipt).
    pub channel_order_ref: String,
    pub customer: Customer,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    /// Order-level discounts (codes, promotions); line discounts sit on the lines.
    pub discounts: Vec<Discount>,
    pub shipping_address: Address,
    pub billing_address: Option<Address>,
    pub shipping: Shipping,
    pub totals: Totals,
    /// New in v3: how the customer pays (`None` only for orders captured before v3).
    pub payment: Option<PaymentMethod>,
    /// New in v3: what the channel knows about the buyer's session, for risk scoring.
    pub risk_context: Option<RiskContext>,
    /// New in v4: the store the customer chose to collect a `pickup` order at, as it was
    /// offered at placement (`None` for shipped orders and orders captured before v4).
    pub pickup_store: Option<PickupStore>,
    pub placed_at: DateTime<Utc>,
}

/// The store a pickup order is collected at: the inventory location the customer chose, with
/// what the customer is told about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupStore {
    /// The inventory location (routing node) id, e.g. `store-soho`.
    pub location_id: String,
    pub store_name: String,
    pub address: String,
    /// Where to go and what to bring, in words for the customer.
    pub instructions: String,
}

/// The buyer's session as the channel saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskContext {
    /// The buyer's IP address (v4 or v6), as text.
    pub ip: Option<String>,
    /// The channel's device fingerprint, if any.
    pub device_id: Option<String>,
}

/// New in v2: the customer is one object (v1 had flat `customer_name`/`customer_email`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// The channel's customer id, absent for guest checkouts.
    pub customer_id: Option<String>,
    pub name: String,
    pub email: Email,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    /// 1-based position, stable for the life of the order.
    pub line_no: u32,
    pub sku: Sku,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
    /// Discount on this line as a whole (not per unit).
    pub discount: Money,
    /// Tax on this line as a whole, after discount.
    pub tax: Money,
    /// quantity × unit_price − discount + tax.
    pub total: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Discount {
    pub code: String,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    /// ISO-3166 alpha-2.
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shipping {
    pub method: String,
    pub price: Money,
    pub tax: Money,
}

/// grand_total = subtotal − discount_total + tax_total + shipping_total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Σ quantity × unit_price.
    pub subtotal: Money,
    /// Line discounts plus order discounts.
    pub discount_total: Money,
    /// Line taxes plus shipping tax.
    pub tax_total: Money,
    pub shipping_total: Money,
    pub grand_total: Money,
}
