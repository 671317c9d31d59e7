//! The webhook signature receivers check: `Waybill-Signature: t=<unix seconds>,v1=<hex>` where
//! the hex is HMAC-SHA256 under the subscription's secret of `"<t>.<body>"`. The timestamp is
//! inside the MAC, so a receiver refusing old timestamps refuses replays; several `v1=` may
//! appear (one per secret while a secret is rotated) and one matching is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "waybill-signature";
/// The event id header receivers de-duplicate on (deliveries are at least once).
pub const EVENT_ID_HEADER: &str = "waybill-event-id";
/// The event type header.
pub const EVENT_TYPE_HEADER: &str = "waybill-event-type";
/// The subscription the delivery is for.
pub const SUBSCRIPTION_HEADER: &str = "waybill-subscription-id";
/// Which attempt this is (1 for the first).
pub const ATTEMPT_HEADER: &str = "waybill-delivery-attempt";

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Why a receiver refuses a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is more than {0} s away from now")]
    Stale(i64),
    #[error("no signature matches")]
    Mismatch,
}

/// Checks `header` for `body` under `secret`, refusing timestamps more than `tolerance_secs`
/// from `now` (unix seconds). Constant-time comparison.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?)
            }
            Some(("v1", v)) => {
                candidates.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > tolerance_secs {
        return Err(SignatureError::Stale(tolerance_secs));
    }
    let expected = mac(secret, timestamp, body);
    if candidates
        .iter()
        .any(|c| expected.clone().verify_slice(c).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_for_its_body_secret_and_time_only() {
        let header = sign("whsec_1", 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify("whsec_1", &header, b"{\"a\":1}", 1_700_000_010, 300),
            Ok(())
        );
        assert_eq!(
            verify("whsec_2", &header, b"{\"a\":1}", 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec_1", &header, b"{\"a\":2}", 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec_1", &header, b"{\"a\":1}", 1_700_001_000, 300),
            Err(SignatureError::Stale(300))
        );
        // A forged timestamp breaks the MAC.
        let forged = header.replace("t=1700000000", "t=1700000900");
        assert_eq!(
            verify("whsec_1", &forged, b"{\"a\":1}", 1_700_000_900, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec_1", "v1=zz", b"", 0, 300),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn one_matching_signature_of_several_is_enough() {
        let old = sign("old", 100, b"x");
        let new = sign("new", 100, b"x");
        let both = format!(
            "{old},{}",
            new.split_once(',').map(|(_, v)| v).unwrap_or("")
        );
        assert_eq!(verify("new", &both, b"x", 100, 300), Ok(()));
        assert_eq!(verify("old", &both, b"x", 100, 300), Ok(()));
    }
}
