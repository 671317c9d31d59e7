//! Customer access to one order without an account: a tracking token is an HMAC of the order id
//! under a secret from config. The write side hands it out with the order (and in the
//! confirmation notification); the query API checks it in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
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
}
