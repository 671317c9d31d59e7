//! A customer's store credit as the tracking projector indexes it: one entry per credit issued
//! (hash field = credit id, so a redelivered event rewrites the same entry), read by the query
//! API's `GET /v1/me/store-credit`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One credit on the customer's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreCreditEntry {
    #[schema(value_type = String, format = Uuid)]
    pub credit_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub order_id: String,
    /// The order number the customer knows.
    pub order_number: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The return it resolves, if any.
    #[serde(default)]
    pub return_id: Option<String>,
    pub issued_at: DateTime<Utc>,
}

/// `<prefix>:store-credit:<customer digest>`: a hash of credit id → [`StoreCreditEntry`] JSON.
pub fn store_credit_key(prefix: &str, customer_digest: &str) -> String {
    format!("{prefix}:store-credit:{customer_digest}")
}
