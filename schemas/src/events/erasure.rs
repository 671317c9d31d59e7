use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::OrderId;

/// `CustomerErased` v1: a customer's personal data was erased by destroying their data keys
/// (crypto-shredding). Lives in the stream `erasure-<customer digest>`. Holds nothing
/// personal: the customer appears only as a digest, the orders by id. Every view re-projects
/// `orders` when it applies this event, so the erased fields leave the views too. A guest
/// (checkouts without a customer id, erased by their email) is recorded the same way, with
/// `guest` set (added later: absent means false, so still v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerErased {
    /// Digest of the channel customer id (`waybill_schemas::access::customer_digest`); for a
    /// guest, the key store's keyed digest (HMAC) of the normalised email.
    pub customer_digest: String,
    /// True when the erased subject was a guest, identified by email.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guest: bool,
    /// The orders whose personal fields were sealed under the destroyed keys.
    pub orders: Vec<OrderId>,
    /// Data keys destroyed by this erasure (0: the customer had been erased already).
    pub keys_destroyed: u32,
    /// The admin client that asked.
    pub requested_by: String,
    pub erased_at: DateTime<Utc>,
}
