//! Customer access to one order without an account: a tracking token is an HMAC of the order id
//! under a secret from config. The write side hands it out with the order (and in the
//! confirmation notification); the query API checks it in constant time.
//!
//! The digests below are how the tracking projector indexes orders without putting personal data
//! in Redis key names: a customer's orders by a digest of their customer id, and the `/track`
//! lookup form by a digest of order number + email, or order number + postcode. Both sides (the
//! projector writing the index, the query API reading it) normalise and hash the same way here.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::values::OrderId;

/// Hex characters of the MAC kept in a token (128 bits).
const TOKEN_HEX_LEN: usize = 32;

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
