//! The return policy as data (`write-side/returns-policy.json`, or `WAYBILL_RETURNS_POLICY`):
//! the window, what may not be returned, the allowed reasons, the fees and where accepted units
//! go back into stock. `RETURNS.md` documents the format.

use std::collections::BTreeMap;

use chrono::Duration;
use serde::Deserialize;
use waybill_schemas::events::ReturnReason;
use waybill_schemas::Sku;

/// Where accepted resellable units are restocked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RestockTo {
    /// The node that shipped (or handed over) the units.
    Origin,
    /// One fixed inventory location, e.g. a returns centre.
    Location { location_id: String },
}

/// The return policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnsPolicy {
    /// Days after the delivery (or pickup) of the units during which they may be returned.
    /// Fractions allowed (tests use minutes).
    pub window_days: f64,
    /// SKU patterns that may not be returned; `*` matches any run of characters.
    #[serde(default)]
    pub non_returnable_skus: Vec<String>,
    /// Reasons a customer may give.
    pub reasons: Vec<ReturnReason>,
    /// Reasons that are the seller's fault: a return with one of them pays no shipping fee.
    #[serde(default)]
    pub seller_fault_reasons: Vec<ReturnReason>,
    /// Return shipping fee per return, in minor units of the order's currency.
    #[serde(default)]
    pub return_shipping_fee_minor: i64,
    /// Restocking fee per reason, in basis points of the value of the line's returned units.
    #[serde(default)]
    pub restocking_fee_bps: BTreeMap<ReturnReason, u32>,
    pub restock_to: RestockTo,
    /// Label instructions for the customer; `{carrier}` is replaced by the carrier's name.
    #[serde(default)]
    pub instructions: String,
}

impl Default for ReturnsPolicy {
    /// 30 days, every reason, no fees, restock where the units came from.
    fn default() -> Self {
        Self {
            window_days: 30.0,
            non_returnable_skus: Vec::new(),
            reasons: ReturnReason::ALL.to_vec(),
            seller_fault_reasons: Vec::new(),
            return_shipping_fee_minor: 0,
            restocking_fee_bps: BTreeMap::new(),
            restock_to: RestockTo::Origin,
            instructions: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReturnsPolicyError {
    #[error("return policy is not valid JSON for its schema: {0}")]
    Parse(String),
    #[error("return policy: {0}")]
    Invalid(&'static str),
}

impl ReturnsPolicy {
    /// Parses and checks the policy.
    pub fn parse(json: &str) -> Result<Self, ReturnsPolicyError> {
        let policy: Self =
            serde_json::from_str(json).map_err(|e| ReturnsPolicyError::Parse(e.to_string()))?;
        if !(policy.window_days.is_finite() && policy.window_days >= 0.0) {
            return Err(ReturnsPolicyError::Invalid(
                "window_days must be a number ≥ 0",
            ));
        }
        if policy.return_shipping_fee_minor < 0 {
            return Err(ReturnsPolicyError::Invalid(
                "return_shipping_fee_minor must be ≥ 0",
            ));
        }
        if policy.restocking_fee_bps.values().any(|bps| *bps > 10_000) {
            return Err(ReturnsPolicyError::Invalid(
                "restocking_fee_bps must be at most 10000",
            ));
        }
        if policy.reasons.is_empty() {
            return Err(ReturnsPolicyError::Invalid("reasons must not be empty"));
        }
        Ok(policy)
    }

    /// The policy checked into the repository.
    pub fn bundled() -> Result<Self, ReturnsPolicyError> {
        Self::parse(include_str!("../../../returns-policy.json"))
    }

    pub fn window(&self) -> Duration {
        Duration::milliseconds((self.window_days * 86_400_000.0).round() as i64)
    }

    /// The window in words: "30 days", or hours or minutes for short (test) windows.
    pub fn window_words(&self) -> String {
        let w = self.window();
        if w.num_days() >= 1 {
            format!("{} days", w.num_days())
        } else if w.num_hours() >= 1 {
            format!("{} hours", w.num_hours())
        } else {
            format!("{} minutes", w.num_minutes())
        }
    }

    pub fn allows_reason(&self, reason: ReturnReason) -> bool {
        self.reasons.contains(&reason)
    }

    pub fn is_seller_fault(&self, reason: ReturnReason) -> bool {
        self.seller_fault_reasons.contains(&reason)
    }

    pub fn restocking_bps(&self, reason: ReturnReason) -> u32 {
        self.restocking_fee_bps.get(&reason).copied().unwrap_or(0)
    }

    /// The first non-returnable pattern `sku` matches.
    pub fn non_returnable(&self, sku: &Sku) -> Option<&str> {
        self.non_returnable_skus
            .iter()
            .find(|p| glob_matches(p, sku.as_str()))
            .map(String::as_str)
    }

    /// Where units shipped from `origin_node_id` are restocked.
    pub fn restock_location<'a>(&'a self, origin_node_id: &'a str) -> &'a str {
        match &self.restock_to {
            RestockTo::Origin => origin_node_id,
            RestockTo::Location { location_id } => location_id,
        }
    }

    pub fn instructions_for(&self, carrier: &str) -> String {
        self.instructions.replace("{carrier}", carrier)
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (ASCII case
/// insensitive, as SKUs are).
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_ascii_uppercase();
    let text = text.to_ascii_uppercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_policy_parses_with_a_thirty_day_window() {
        let policy = ReturnsPolicy::bundled().expect("bundled policy parses");
        assert_eq!(policy.window(), Duration::days(30));
        assert!(policy
            .non_returnable(&Sku::parse("GIFT-CARD-50").unwrap())
            .is_some());
        assert!(policy
            .non_returnable(&Sku::parse("TEE-RED-M").unwrap())
            .is_none());
        assert!(policy.is_seller_fault(ReturnReason::Damaged));
        assert_eq!(policy.restocking_bps(ReturnReason::ChangedMind), 1000);
        assert_eq!(policy.restock_location("wh-east"), "wh-east");
    }

    #[test]
    fn sku_patterns_match_with_stars_anywhere() {
        assert!(glob_matches("GIFT-*", "gift-card"));
        assert!(glob_matches("*-FINAL", "TEE-FINAL"));
        assert!(glob_matches("A*B*C", "AXXBYYC"));
        assert!(!glob_matches("A*B*C", "AXXBYY"));
        assert!(!glob_matches("GIFT-*", "TEE-GIFT-1"));
        assert!(glob_matches("TEE-RED-M", "TEE-RED-M"));
    }

    #[test]
    fn a_policy_with_a_fee_above_100_percent_is_refused() {
        let json = include_str!("../../../returns-policy.json").replace("1000", "20000");
        assert!(matches!(
            ReturnsPolicy::parse(&json),
            Err(ReturnsPolicyError::Invalid(_))
        ));
    }
}
