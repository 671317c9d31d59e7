//! The tracking view's Redis layout, owned here and nowhere else: the writer ([`super::store`])
//! and every reader (the query API's tracking answer, page, `/track` form, `/v1/me`) build
//! their keys and read their fields through these functions.
//!
//! - `<prefix>:tracking:{<order uuid>}`: hash with `version` (the last stream version applied,
//!   the compare-and-set field) and `view` (the [`TrackingView`] JSON);
//! - `<prefix>:customer-orders:<customer digest>`: sorted set of order ids scored by placement
//!   time in milliseconds;
//! - `<prefix>:tracking-lookup:<lookup digest>`: the order id an order number + email or
//!   postcode finds;
//! - `<prefix>:store-credit:<customer digest>`: hash of credit id → store credit entry;
//! - `<prefix>:tracking-changes`: the pub/sub channel announcing `<order uuid> <version>` after
//!   each view write ([`super::changes`]);
//! - `<prefix>:view-store:tracking`: the store's generation marker (and `…:filler`, the lease
//!   of the instance filling it), [`crate::views::store_marker`]: gone means the store lost
//!   its data and is being filled again from the event log.

use std::fmt::Display;

use waybill_schemas::views::TrackingView;

/// The key segment of the view's hashes.
pub const VIEW_SEGMENT: &str = "tracking";
/// Hash field holding the last applied stream version.
pub const VERSION_FIELD: &str = "version";
/// Hash field holding the view's JSON.
pub const VIEW_FIELD: &str = "view";

/// `<prefix>:tracking:{<order uuid>}` (the order id is the Redis Cluster hash tag).
pub fn view_key(prefix: &str, order_id: impl Display) -> String {
    crate::views::order_hashes::order_key(prefix, VIEW_SEGMENT, order_id)
}

/// `<prefix>:customer-orders:<customer digest>`: a customer's orders by placement time.
pub fn customer_orders_key(prefix: &str, customer_digest: &str) -> String {
    format!("{prefix}:customer-orders:{customer_digest}")
}

/// `<prefix>:tracking-lookup:<lookup digest>`: the order an order number + email/postcode finds.
pub fn lookup_key(prefix: &str, lookup_digest: &str) -> String {
    format!("{prefix}:tracking-lookup:{lookup_digest}")
}

pub use waybill_schemas::views::store_credit_key;

/// `<prefix>:tracking-changes`: the channel on which the projector announces written views.
pub fn changes_channel(prefix: &str) -> String {
    format!("{prefix}:tracking-changes")
}

/// `<prefix>:view-store:tracking`: the generation marker of the store holding these keys.
pub fn store_marker_key(prefix: &str) -> String {
    format!("{prefix}:view-store:{VIEW_SEGMENT}")
}

/// A view read back from its hash fields: the `version` field (what the projector
/// compares-and-sets) wins over the version inside the JSON. `None` when the view is absent.
pub fn decode_view(
    version: Option<i64>,
    view: Option<&str>,
) -> Result<Option<TrackingView>, serde_json::Error> {
    let Some(raw) = view else {
        return Ok(None);
    };
    let mut decoded: TrackingView = serde_json::from_str(raw)?;
    if let Some(version) = version {
        decoded.version = version;
    }
    Ok(Some(decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        assert_eq!(view_key("w", "abc"), "w:tracking:{abc}");
        assert_eq!(customer_orders_key("w", "d"), "w:customer-orders:d");
        assert_eq!(lookup_key("w", "d"), "w:tracking-lookup:d");
        assert_eq!(store_credit_key("w", "d"), "w:store-credit:d");
        assert_eq!(store_marker_key("w"), "w:view-store:tracking");
        // Outside the view's own key pattern (`w:tracking:*`), which scans and deletes walk.
        assert!(!store_marker_key("w").starts_with("w:tracking:"));
    }
}
