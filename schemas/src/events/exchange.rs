//! Exchanges: a return resolved with other units instead of money. Once the returned units are
//! received and inspected as accepted, the replacements are asked of fulfillment as lines of
//! their own (line numbers from 1001), routed as a new fulfillment order linked to the return
//! (`RouteCause::Exchange`). The price difference is charged to the card (`ExtraChargeRequested`)
//! or refunded (`RefundRequested`) in the same append.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{Money, OrderId, Quantity, Sku};

/// First line number given to replacement units; the n-th replacement line of the order is
/// `1000 + n`, so replacements never collide with the order's own lines.
pub const FIRST_REPLACEMENT_LINE: u32 = 1001;

/// Units sent instead of returned ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplacementUnit {
    /// The replacement's own line number (from 1001).
    pub line_no: u32,
    /// The returned order line it replaces.
    pub for_line_no: u32,
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price: Money,
}

/// `ExchangeReplacementRequested` v1: the exchange of an inspected return was agreed: the
/// replacements go to fulfillment. `difference` = replacements' value − the accepted returned
/// units' value (positive: charged to the card under `charge_id`; negative: refunded under
/// `refund_id`; zero: nothing). Fees do not apply to an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeReplacementRequested {
    pub order_id: OrderId,
    pub return_id: String,
    pub lines: Vec<ReplacementUnit>,
    pub replacements_value: Money,
    pub accepted_value: Money,
    /// Signed, minor units of the order currency.
    pub difference: Money,
    #[serde(default)]
    pub charge_id: Option<Uuid>,
    #[serde(default)]
    pub refund_id: Option<Uuid>,
    pub requested_at: DateTime<Utc>,
}
