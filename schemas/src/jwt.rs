//! Bearer JWTs for people who sign in elsewhere (customers of a storefront, staff through an
//! identity provider): compact JWS, HS256 only, under one secret from config
//! (`WAYBILL_JWT_SECRET`). Claims: `sub` (for a customer, the channel's customer id as placed on
//! `OrderPlaced.customer.customer_id`), `role` (customer, agent, finance, admin, service) and `exp`
//! (seconds since the epoch, required). Hand-rolled on `hmac` + `sha2`: the header must name
//! `HS256` exactly (no `none`, no algorithm picked by the token), the signature is checked in
//! constant time before any claim is read, and an expired token is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::api_keys::{Principal, Role};

/// Why a token was refused. Callers answer all of them with the same 401; the variants are for
/// logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not three base64url parts")]
    Malformed,
    #[error("header does not name alg HS256")]
    WrongAlgorithm,
    #[error("signature does not verify")]
    BadSignature,
    #[error("claims are not sub, role, exp")]
    BadClaims,
    #[error("unknown role '{0}'")]
    UnknownRole(String),
    #[error("expired at {exp}, now {now}")]
    Expired { exp: i64, now: i64 },
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
}

/// The claims Waybill reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
}

/// Verifies (and, for the demo, tests and benchmarks, issues) HS256 tokens under one secret.
#[derive(Clone)]
pub struct JwtKey {
    /// The keyed MAC, ready to clone per use (`None` cannot happen: HMAC takes any key length).
    mac: Option<Hmac<Sha256>>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey(<redacted>)")
    }
}

impl JwtKey {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: Hmac::<Sha256>::new_from_slice(secret).ok(),
        }
    }

    fn sign(&self, signing_input: &str) -> Option<Hmac<Sha256>> {
        let mut mac = self.mac.clone()?;
        mac.update(signing_input.as_bytes());
        Some(mac)
    }

    /// A signed token for `claims`.
    pub fn issue(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let signature = self
            .sign(&signing_input)
            .map(|mac| URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
            .unwrap_or_default();
        format!("{signing_input}.{signature}")
    }

    /// The principal a token names, if it is well formed, HS256, signed with this key and not
    /// expired at `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Principal, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or(JwtError::Malformed)?;
        if header.alg != "HS256" {
            return Err(JwtError::WrongAlgorithm);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwtError::Malformed)?;
        let mac = self
            .sign(&token[..header_and_payload_len(token)])
            .ok_or(JwtError::BadSignature)?;
        // `verify_slice` compares in constant time.
        mac.verify_slice(&signature)
            .map_err(|_| JwtError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or(JwtError::BadClaims)?;
        if claims.sub.is_empty() {
            return Err(JwtError::BadClaims);
        }
        let role =
            Role::parse(&claims.role).ok_or_else(|| JwtError::UnknownRole(claims.role.clone()))?;
        if now >= claims.exp {
            return Err(JwtError::Expired {
                exp: claims.exp,
                now,
            });
        }
        Ok(Principal {
            client_id: claims.sub,
            role,
        })
    }
}

/// Length of `<header>.<payload>`, the signed part of a three-part token.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

/// Whether a bearer credential has the shape of a compact JWS (three dot-separated parts), as
/// opposed to an opaque API key.
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.bytes().filter(|b| *b == b'.').count() == 2
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn claims(role: &str, exp: i64) -> Claims {
        Claims {
            sub: "cust-42".into(),
            role: role.into(),
            exp,
        }
    }

    #[test]
    fn a_valid_token_names_its_subject_and_role() {
        let key = JwtKey::new(b"secret");
        let token = key.issue(&claims("customer", NOW + 60));
        assert!(looks_like_jwt(&token));
        let principal = key.verify(&token, NOW).unwrap();
        assert_eq!(principal.client_id, "cust-42");
        assert_eq!(principal.role, Role::Customer);
        for role in ["agent", "finance", "admin", "service"] {
            let token = key.issue(&claims(role, NOW + 60));
            assert_eq!(key.verify(&token, NOW).unwrap().role.as_str(), role);
        }
    }

    #[test]
    fn an_expired_token_is_refused_from_its_exp_second_on() {
        let key = JwtKey::new(b"secret");
        let token = key.issue(&claims("customer", NOW));
        assert_eq!(
            key.verify(&token, NOW),
            Err(JwtError::Expired { exp: NOW, now: NOW })
        );
        assert!(key.verify(&token, NOW - 1).is_ok());
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let token = JwtKey::new(b"other").issue(&claims("admin", NOW + 60));
        assert_eq!(
            JwtKey::new(b"secret").verify(&token, NOW),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn tokens_naming_another_algorithm_are_refused_before_the_signature() {
        let key = JwtKey::new(b"secret");
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("admin", NOW + 60)).unwrap());
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"hs256"}"#,
        ] {
            let header = URL_SAFE_NO_PAD.encode(header);
            let signing_input = format!("{header}.{payload}");
            let mac = key.sign(&signing_input).unwrap();
            let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
            for token in [
                format!("{signing_input}.{signature}"),
                format!("{signing_input}."),
            ] {
                assert_eq!(
                    key.verify(&token, NOW),
                    Err(JwtError::WrongAlgorithm),
                    "{token}"
                );
            }
        }
    }

    #[test]
    fn a_tampered_payload_or_signature_is_refused() {
        let key = JwtKey::new(b"secret");
        let token = key.issue(&claims("customer", NOW + 60));
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let (header, _) = signed.split_once('.').unwrap();
        // Same signature, payload promoting the customer to admin.
        let forged_payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("admin", NOW + 60)).unwrap());
        let forged = format!("{header}.{forged_payload}.{signature}");
        assert_eq!(key.verify(&forged, NOW), Err(JwtError::BadSignature));
        // One flipped signature character.
        let mut chars: Vec<char> = signature.chars().collect();
        chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
        let flipped = format!("{signed}.{}", chars.into_iter().collect::<String>());
        assert_eq!(key.verify(&flipped, NOW), Err(JwtError::BadSignature));
        // Truncated signature, extra part, garbage.
        assert_eq!(
            key.verify(&format!("{signed}.AAAA"), NOW),
            Err(JwtError::BadSignature)
        );
        assert_eq!(
            key.verify(&format!("{token}.x"), NOW),
            Err(JwtError::Malformed)
        );
        assert_eq!(key.verify("abc", NOW), Err(JwtError::Malformed));
        assert_eq!(key.verify("a.b.c", NOW), Err(JwtError::Malformed));
    }

    #[test]
    fn unknown_roles_and_missing_claims_are_refused() {
        let key = JwtKey::new(b"secret");
        let token = key.issue(&claims("root", NOW + 60));
        assert_eq!(
            key.verify(&token, NOW),
            Err(JwtError::UnknownRole("root".into()))
        );
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","role":"admin"}"#);
        let signing_input = format!("{header}.{payload}");
        let mac = key.sign(&signing_input).unwrap();
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            key.verify(&format!("{signing_input}.{signature}"), NOW),
            Err(JwtError::BadClaims),
            "a token without exp never expires, so it is refused"
        );
    }
}
