//! Changing a confirmed order before any node is involved: new quantities, removed and added
//! lines, a new shipping address. The order is re-priced with the placement rules, and the
//! event carries the whole new line list so every reader can replace what it had.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::order_placed::{Address, Discount, OrderLine, Shipping, Totals};
use crate::values::{Money, OrderId};

/// What an edit does with the customer's money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EditMoneyAction {
    /// The total did not change, or the order was paid to the channel (which settles it).
    None,
    /// Nothing captured yet and the total went down: the capture simply takes less.
    CaptureLess,
    /// Nothing captured yet and the higher total is still covered by the card authorization.
    WithinAuthorization,
    /// Captured already and the total went up: the difference is charged to the card
    /// (`ExtraChargeRequested` in the same commit, its id derived from the edit id).
    ExtraCharge,
    /// Captured already and the total went down: the checkout flow refunds the difference
    /// (`RefundRequested`, kind `cancellation`).
    Refund,
}

impl EditMoneyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::CaptureLess => "capture_less",
            Self::WithinAuthorization => "within_authorization",
            Self::ExtraCharge => "extra_charge",
            Self::Refund => "refund",
        }
    }
}

/// `OrderEdited` v1: a confirmed order was changed while it waited in the fulfillment hold.
/// `lines`, `discounts`, `shipping` and `totals` replace the order's (priced exactly as
/// placement prices); `shipping_address` is present when it changed. `difference` is the new
/// grand total minus the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderEdited {
    pub order_id: OrderId,
    pub edit_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub discounts: Vec<Discount>,
    pub shipping: Shipping,
    pub totals: Totals,
    pub shipping_address: Option<Address>,
    pub previous_total: Money,
    pub difference: Money,
    pub money_action: EditMoneyAction,
    /// The API client (or customer) that asked.
    pub requested_by: String,
    pub edited_at: DateTime<Utc>,
}
