//! Customer access to one order without an account: a tracking token is an HMAC of the order id
//! and an expiry under a secret from config ([`TrackingKeys`]). The write side hands it out with
//! the order (and in the notifications); the query API checks it in constant time.
//!
//! Tokens (`<expiry, Unix seconds>.<32 hex>`) stop working at their expiry
//! (`WAYBILL_TRACKING_TOKEN_TTL_DAYS` after they were made). The secret is rotated by moving it
//! to `WAYBILL_TRACKING_SECRET_PREVIOUS` and setting a new `WAYBILL_TRACKING_SECRET`: new links
//! are signed with the new one, links already sent keep working until they expire. Tokens of
//! the first format (32 hex, no expiry, [`tracking_token`]) are in emails already sent, so they
//! are still accepted, under either secret, until `WAYBILL_TRACKING_LEGACY_UNTIL` if that is
//! set (forever if not: set it to the deploy date plus the TTL).
//!
//! The digests below are how the tracking projector indexes orders without putting personal data
//! in Redis key names: a customer's orders by a digest of their customer id, and the `/track`
//! lookup form by a digest of order number + email, or order number + postcode. Both sides (the
//! projector writing the index, the query API reading it) normalise and hash the same way here.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::values::OrderId;

/// Hex characters of the MAC kept in a token (128 bits).
const TOKEN_HEX_LEN: usize = 32;

/// A token of the first format: no expiry (still accepted, see the module docs; new links use
/// [`TrackingKeys::token`]).
pub fn tracking_token(secret: &[u8], order_id: OrderId) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(b"waybill-tracking-v1:");
    mac.update(order_id.as_uuid().as_bytes());
    let mut token = hex::encode(mac.finalize().into_bytes());
    token.truncate(TOKEN_HEX_LEN);
    token
}

pub fn verify_tracking_token(secret: &[u8], order_id: OrderId, token: &str) -> bool {
    let expected = tracking_token(secret, order_id);
    !expected.is_empty() && expected.as_bytes().ct_eq(token.as_bytes()).into()
}

/// Default lifetime of a tracking link: long enough for a return window after delivery.
pub const DEFAULT_TRACKING_TOKEN_TTL_DAYS: i64 = 180;

/// The secrets and policy tracking tokens are made and checked with. Cheap to clone.
#[derive(Clone)]
pub struct TrackingKeys {
    current: Arc<[u8]>,
    previous: Option<Arc<[u8]>>,
    ttl: Duration,
    legacy_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for TrackingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackingKeys")
            .field("previous", &self.previous.is_some())
            .field("ttl", &self.ttl)
            .field("legacy_until", &self.legacy_until)
            .finish_non_exhaustive()
    }
}

impl TrackingKeys {
    /// Tokens signed with `secret`, valid for the default TTL; first-format tokens accepted.
    pub fn new(secret: impl Into<Arc<[u8]>>) -> Self {
        Self {
            current: secret.into(),
            previous: None,
            ttl: Duration::days(DEFAULT_TRACKING_TOKEN_TTL_DAYS),
            legacy_until: None,
        }
    }
    /// Also accept tokens signed with the secret used before a rotation.
    pub fn with_previous(mut self, previous: Option<impl Into<Arc<[u8]>>>) -> Self {
        self.previous = previous
            .map(Into::into)
            .filter(|p: &Arc<[u8]>| !p.is_empty());
        self
    }
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
    /// Refuse first-format tokens (no expiry) from `until` on.
    pub fn with_legacy_until(mut self, until: Option<DateTime<Utc>>) -> Self {
        self.legacy_until = until;
        self
    }
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The token for `order_id` made at `issued_at` (the time of the event it is sent for,
    /// so the same event always gives the same link).
    pub fn token(&self, order_id: OrderId, issued_at: DateTime<Utc>) -> String {
        let expires = (issued_at + self.ttl).timestamp();
        format!(
            "{expires}.{}",
            expiring_mac(&self.current, order_id, expires)
        )
    }

    /// Whether `token` opens `order_id` at `now`: signed with the current or the previous
    /// secret and not expired, or of the first format while that is still accepted.
    pub fn verify(&self, order_id: OrderId, token: &str, now: DateTime<Utc>) -> bool {
        let secrets = std::iter::once(&self.current).chain(&self.previous);
        let Some((expires, mac)) = token.split_once('.') else {
            let legacy_ok = self.legacy_until.is_none_or(|until| now < until);
            let mut any = false;
            for secret in secrets {
                any |= verify_tracking_token(secret, order_id, token);
            }
            return legacy_ok && any;
        };
        let Some(expires) = expires.parse::<i64>().ok().filter(|e| *e > now.timestamp()) else {
            return false;
        };
        let mut any = false;
        for secret in secrets {
            let expected = expiring_mac(secret, order_id, expires);
            any |= bool::from(expected.as_bytes().ct_eq(mac.as_bytes()));
        }
        any
    }
}

fn expiring_mac(secret: &[u8], order_id: OrderId, expires: i64) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(b"waybill-tracking-v2:");
    mac.update(order_id.as_uuid().as_bytes());
    mac.update(&expires.to_be_bytes());
    let mut token = hex::encode(mac.finalize().into_bytes());
    token.truncate(TOKEN_HEX_LEN);
    token
}

/// Hex SHA-256 of a channel customer id: the key of that customer's order list.
pub fn customer_digest(customer_id: &str) -> String {
    digest(&[b"waybill-customer-v1", customer_id.as_bytes()])
}

/// What a customer may type, besides the order number, to find an order on `/track`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupProof<'a> {
    Email(&'a str),
    Postcode(&'a str),
}

/// Hex SHA-256 of an order number with the email or postcode given with it, normalised (order
/// number trimmed and upper-cased, email trimmed and lower-cased, postcode upper-cased without
/// spaces or dashes). `None` when either part is empty after normalising.
pub fn lookup_digest(order_number: &str, proof: LookupProof<'_>) -> Option<String> {
    let number = order_number.trim().to_uppercase();
    let (kind, value) = match proof {
        LookupProof::Email(email) => ("email", email.trim().to_lowercase()),
        LookupProof::Postcode(code) => (
            "postcode",
            code.chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .flat_map(char::to_uppercase)
                .collect(),
        ),
    };
    if number.is_empty() || value.is_empty() {
        return None;
    }
    Some(digest(&[
        b"waybill-lookup-v1",
        number.as_bytes(),
        kind.as_bytes(),
        value.as_bytes(),
    ]))
}

/// SHA-256 over length-prefixed parts, so no two part lists hash alike.
fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_verifies_only_for_its_order_and_secret() {
        let order = OrderId::new_v7();
        let other = OrderId::new_v7();
        let token = tracking_token(b"s3cret", order);
        assert_eq!(token.len(), TOKEN_HEX_LEN);
        assert!(verify_tracking_token(b"s3cret", order, &token));
        assert!(!verify_tracking_token(b"s3cret", other, &token));
        assert!(!verify_tracking_token(b"other", order, &token));
        assert!(!verify_tracking_token(b"s3cret", order, ""));
    }

    #[test]
    fn tokens_expire_and_survive_a_secret_rotation() {
        let order = OrderId::new_v7();
        let issued = "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let old = TrackingKeys::new(b"old".as_slice()).with_ttl(Duration::days(30));
        let token = old.token(order, issued);
        assert!(old.verify(order, &token, issued + Duration::days(29)));
        assert!(
            !old.verify(order, &token, issued + Duration::days(30)),
            "expired"
        );
        assert!(!old.verify(OrderId::new_v7(), &token, issued));

        // Rotated: the new secret signs, the old one still opens links already sent.
        let rotated = TrackingKeys::new(b"new".as_slice())
            .with_previous(Some(b"old".as_slice()))
            .with_ttl(Duration::days(30));
        assert!(rotated.verify(order, &token, issued + Duration::days(1)));
        assert_ne!(rotated.token(order, issued), token);
        let dropped = TrackingKeys::new(b"new".as_slice());
        assert!(!dropped.verify(order, &token, issued));

        // A token with its expiry pushed out no longer matches its MAC.
        let (_, mac) = token.split_once('.').unwrap();
        let forged = format!("{}.{mac}", (issued + Duration::days(999)).timestamp());
        assert!(!old.verify(order, &forged, issued + Duration::days(40)));
        assert!(!old.verify(order, "x.y", issued) && !old.verify(order, "", issued));
    }

    #[test]
    fn first_format_tokens_work_until_the_legacy_cutoff() {
        let order = OrderId::new_v7();
        let now = Utc::now();
        let legacy = tracking_token(b"old", order);
        let keys = TrackingKeys::new(b"new".as_slice()).with_previous(Some(b"old".as_slice()));
        assert!(keys.verify(order, &legacy, now));
        let cut = keys.with_legacy_until(Some(now));
        assert!(!cut.verify(order, &legacy, now));
    }

    #[test]
    fn lookup_digests_ignore_case_and_spacing_but_not_the_order_number() {
        let a = lookup_digest("web-1001", LookupProof::Email(" Ann@Example.com ")).unwrap();
        let b = lookup_digest(" WEB-1001", LookupProof::Email("ann@example.com")).unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a,
            lookup_digest("WEB-1002", LookupProof::Email("ann@example.com")).unwrap()
        );
        let p1 = lookup_digest("WEB-1001", LookupProof::Postcode("sw1a 1aa")).unwrap();
        let p2 = lookup_digest("WEB-1001", LookupProof::Postcode("SW1A1AA")).unwrap();
        assert_eq!(p1, p2);
        assert_ne!(p1, a);
        assert_eq!(lookup_digest("WEB-1", LookupProof::Postcode(" - ")), None);
        assert_eq!(lookup_digest("  ", LookupProof::Email("a@b.c")), None);
        assert_eq!(a.len(), 64);
        assert!(!a.contains("ann"));
        assert_ne!(customer_digest("c1"), customer_digest("c2"));
    }
}
