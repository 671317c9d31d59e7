//! Store credit: money given back to the customer's account with the merchant instead of to
//! their card (a return resolved as store credit, or an agent's goodwill gesture). Redeeming
//! credit at checkout is not built; the balance is shown to the customer.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{Money, OrderId};

/// `StoreCreditIssued` v1: `amount` was credited to the account of `customer_id` (the
/// order's customer). The order's ledger counts it as money given back, so card refunds and
/// credit together never exceed what was captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreCreditIssued {
    pub order_id: OrderId,
    pub credit_id: Uuid,
    pub customer_id: String,
    pub amount: Money,
    /// Internal (agents, finance).
    pub reason: String,
    pub issued_by: String,
    /// The return this credit resolves, if any.
    #[serde(default)]
    pub return_id: Option<String>,
    pub issued_at: DateTime<Utc>,
}
