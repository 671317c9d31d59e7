//! Bearer JWTs for people who sign in elsewhere: customers of a storefront signed in with its
//! identity provider, and staff signed in through one. Verified with the `jsonwebtoken` crate:
//!
//! - **HS256** under Waybill's own secret (`WAYBILL_JWT_SECRET`, [`JwtKey`]): the tokens the demo,
//!   the tests and small deployments issue;
//! - **RS256 and ES256** under the identity provider's public keys, published as a JWKS
//!   ([`JwksKeys`], kept fresh by the write side's `jwks` fetcher: this crate does no I/O). The
//!   token's `kid` picks the key, and the key's type fixes the algorithm: a token cannot pick
//!   HS256 for an RSA key (the "alg confusion" attack) or any algorithm Waybill does not allow.
//!
//! Every token, whatever signed it, is then held to one [`JwtPolicy`]: issuer and audience (when
//! configured), `exp` required and `nbf` honoured, both with a leeway for clock skew, `sub` the
//! caller (for a customer, the customer id orders were placed under), and the role read from a
//! configured claim ([`JwtPolicy::role_claim`]): a string or an array of strings, a dotted path
//! for nested claims (`realm_access.roles`). No role claim means `customer`, the least privilege;
//! a claim that names no Waybill role is refused; several roles give the most privileged one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api_keys::{Principal, Role};

/// Why a token was refused. Callers answer all of them with the same 401; the variants are for
/// logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not three base64url parts with a JSON header")]
    Malformed,
    #[error("header names an algorithm this key source does not allow")]
    WrongAlgorithm,
    #[error("no key with kid '{0}' in the identity provider's key set")]
    UnknownKey(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("claims are not sub, exp (numbers of seconds), role")]
    BadClaims,
    #[error("issuer is not the configured one")]
    WrongIssuer,
    #[error("audience is not the configured one")]
    WrongAudience,
    #[error("role claim names no Waybill role ('{0}')")]
    UnknownRole(String),
    #[error("expired at {exp}, now {now}")]
    Expired { exp: i64, now: i64 },
    #[error("not valid before {nbf}, now {now}")]
    NotYetValid { nbf: i64, now: i64 },
}

/// The claims Waybill's own HS256 tokens carry (what [`JwtKey::issue`] signs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
}

/// Waybill's own HS256 secret: verifies tokens, and issues them for the demo, tests and
/// benchmarks.
#[derive(Clone)]
pub struct JwtKey {
    decoding: DecodingKey,
    encoding: EncodingKey,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey(<redacted>)")
    }
}

impl JwtKey {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            decoding: DecodingKey::from_secret(secret),
            encoding: EncodingKey::from_secret(secret),
        }
    }

    /// A signed HS256 token for `claims`.
    pub fn issue(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .unwrap_or_default()
    }

    /// The principal a token names, under the default policy (no issuer or audience, no leeway):
    /// HS256 only, signed with this key, not expired at `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Principal, JwtError> {
        JwtVerifier::new(JwtPolicy::default())
            .with_secret_key(self.clone())
            .verify(token, now)
    }
}

/// The checks every token is held to, whatever key signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPolicy {
    /// Accepted `iss` values; empty: not checked. When set, a token without `iss` is refused.
    pub issuers: Vec<String>,
    /// Accepted `aud` values (a token's `aud` must name one); empty: tokens naming an audience
    /// are refused, since they were meant for another service.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Where the role is: a claim name or a dotted path into nested objects.
    pub role_claim: String,
}

impl Default for JwtPolicy {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway_secs: 0,
            role_claim: "role".to_owned(),
        }
    }
}

/// One verifying key of the identity provider and the algorithm it is for.
#[derive(Clone)]
struct PublicKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The algorithms a JWKS key may verify.
const JWKS_ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, PublicKey>,
    /// Keys published without a `kid` (a provider with a single key may omit it).
    unnamed: Vec<PublicKey>,
}

/// The identity provider's current public keys (its JWKS), shared by every verifier of the
/// process and replaced whole on each fetch, so a key the provider removed stops verifying.
#[derive(Clone, Default)]
pub struct JwksKeys(Arc<RwLock<Arc<KeySet>>>);

impl std::fmt::Debug for JwksKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.snapshot();
        f.debug_struct("JwksKeys")
            .field("kids", &set.by_kid.keys().collect::<Vec<_>>())
            .field("unnamed", &set.unnamed.len())
            .finish()
    }
}

/// A JWKS document that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("not a JWKS document (an object with a `keys` array)")]
    NotAKeySet,
    #[error("no RS256 or ES256 (P-256) signing key in the key set")]
    NoUsableKey,
}

impl JwksKeys {
    /// Replaces the keys with the signing keys of a JWKS document (`{"keys": [...]}`); keys of
    /// other types, algorithms or uses are skipped. Returns how many keys are now known. A
    /// document without a single usable key is refused and the current keys are kept.
    pub fn replace_from_json(&self, document: &[u8]) -> Result<usize, JwksError> {
        let document: Value =
            serde_json::from_slice(document).map_err(|_| JwksError::NotAKeySet)?;
        let keys = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotAKeySet)?;
        let mut set = KeySet::default();
        for raw in keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                continue;
            };
            let Some(key) = public_key(&jwk) else {
                continue;
            };
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid, key);
                }
                None => set.unnamed.push(key),
            }
        }
        let count = set.by_kid.len() + set.unnamed.len();
        if count == 0 {
            return Err(JwksError::NoUsableKey);
        }
        if let Ok(mut current) = self.0.write() {
            *current = Arc::new(set);
        }
        Ok(count)
    }

    /// Whether a key with this `kid` is known.
    pub fn knows(&self, kid: &str) -> bool {
        self.snapshot().by_kid.contains_key(kid)
    }

    /// How many keys are known.
    pub fn len(&self) -> usize {
        let set = self.snapshot();
        set.by_kid.len() + set.unnamed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.0
            .read()
            .map(|set| Arc::clone(&set))
            .unwrap_or_default()
    }

    /// The key that verifies a token with this header.
    fn key_for(&self, algorithm: Algorithm, kid: Option<&str>) -> Result<PublicKey, JwtError> {
        let set = self.snapshot();
        let key = match kid {
            Some(kid) => set
                .by_kid
                .get(kid)
                .ok_or_else(|| JwtError::UnknownKey(kid.chars().take(64).collect()))?,
            None => {
                let mut candidates = set.unnamed.iter().filter(|k| k.algorithm == algorithm);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => only,
                    _ => return Err(JwtError::UnknownKey(String::new())),
                }
            }
        };
        if key.algorithm != algorithm {
            return Err(JwtError::WrongAlgorithm);
        }
        Ok(key.clone())
    }
}

/// The verifying key of a JWK, if it is an RS256 or ES256 (P-256) signing key.
fn public_key(jwk: &Jwk) -> Option<PublicKey> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(PublicKey { algorithm, key })
}

/// Fetches the identity provider's keys again when a token names a `kid` not seen yet (the
/// provider rotated its keys). Implemented by the write side's fetcher, which rate-limits it.
pub trait JwksSource: Send + Sync {
    /// The keys as last fetched.
    fn keys(&self) -> &JwksKeys;
    /// Fetch again because of `kid`, unless it was fetched too recently.
    fn refresh_for<'a>(&'a self, kid: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// Verifies Bearer JWTs: HS256 under Waybill's secret, RS256/ES256 under the identity
/// provider's keys, then the [`JwtPolicy`].
#[derive(Clone)]
pub struct JwtVerifier {
    secret: Option<JwtKey>,
    jwks: Option<Arc<dyn JwksSource>>,
    policy: JwtPolicy,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.secret.is_some())
            .field("jwks", &self.jwks.as_ref().map(|s| s.keys().len()))
            .field("policy", &self.policy)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

impl JwtVerifier {
    /// A verifier that accepts no token until a key source is added.
    pub fn new(policy: JwtPolicy) -> Self {
        Self {
            secret: None,
            jwks: None,
            policy,
        }
    }

    /// Accepts HS256 tokens signed with `key`.
    pub fn with_secret_key(mut self, key: JwtKey) -> Self {
        self.secret = Some(key);
        self
    }

    /// Accepts RS256/ES256 tokens signed with the identity provider's keys.
    pub fn with_jwks(mut self, source: Arc<dyn JwksSource>) -> Self {
        self.jwks = Some(source);
        self
    }

    pub fn policy(&self) -> &JwtPolicy {
        &self.policy
    }

    /// Whether any key source is configured.
    pub fn accepts_tokens(&self) -> bool {
        self.secret.is_some() || self.jwks.is_some()
    }

    /// The `kid` of a token signed by the identity provider with a key not known yet, for
    /// which the key set is worth fetching again. `None` for anything else (other tokens are
    /// verified, or refused, as they are).
    pub fn unknown_kid(&self, token: &str) -> Option<(&dyn JwksSource, String)> {
        let source = self.jwks.as_deref()?;
        let header = raw_header(token).ok()?;
        let kid = header.kid?;
        let algorithm: Algorithm = header.alg.parse().ok()?;
        (JWKS_ALGORITHMS.contains(&algorithm) && !source.keys().knows(&kid))
            .then_some((source, kid))
    }

    /// The principal a token names, if a configured key verifies it and it meets the policy at
    /// `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Principal, JwtError> {
        let header = raw_header(token)?;
        let algorithm = match header.alg.as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            _ => return Err(JwtError::WrongAlgorithm),
        };
        let key = if algorithm == Algorithm::HS256 {
            self.secret
                .as_ref()
                .map(|secret| secret.decoding.clone())
                .ok_or(JwtError::WrongAlgorithm)?
        } else {
            self.jwks
                .as_ref()
                .ok_or(JwtError::WrongAlgorithm)?
                .keys()
                .key_for(algorithm, header.kid.as_deref())?
                .key
        };
        let claims = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            &key,
            &self.validation(algorithm),
        )
        .map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => JwtError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                JwtError::WrongAlgorithm
            }
            ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
            ErrorKind::InvalidAudience => JwtError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => JwtError::WrongIssuer,
            ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => JwtError::WrongAudience,
            ErrorKind::InvalidToken | ErrorKind::Base64(_) => JwtError::Malformed,
            _ => JwtError::BadClaims,
        })?
        .claims;
        self.principal(&claims, now)
    }

    /// Signature, algorithm, issuer and audience are `jsonwebtoken`'s; times are checked here
    /// against the `now` passed in (so they can be tested), with the policy's leeway.
    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        if !self.policy.issuers.is_empty() {
            validation.set_issuer(&self.policy.issuers);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        if self.policy.audiences.is_empty() {
            validation.aud = None;
        } else {
            validation.set_audience(&self.policy.audiences);
            validation.required_spec_claims.insert("aud".to_owned());
        }
        validation
    }

    fn principal(
        &self,
        claims: &serde_json::Map<String, Value>,
        now: i64,
    ) -> Result<Principal, JwtError> {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or(JwtError::BadClaims)?;
        let leeway = i64::try_from(self.policy.leeway_secs).unwrap_or(i64::MAX);
        // A token without `exp` would never expire: refused.
        let exp = seconds(claims.get("exp")).ok_or(JwtError::BadClaims)?;
        if now >= exp.saturating_add(leeway) {
            return Err(JwtError::Expired { exp, now });
        }
        match claims.get("nbf") {
            None => {}
            Some(nbf) => {
                let nbf = seconds(Some(nbf)).ok_or(JwtError::BadClaims)?;
                if nbf > now.saturating_add(leeway) {
                    return Err(JwtError::NotYetValid { nbf, now });
                }
            }
        }
        let role = role_from(claims, &self.policy.role_claim)?;
        Ok(Principal {
            client_id: sub.to_owned(),
            role,
        })
    }
}

/// A NumericDate claim as whole seconds.
fn seconds(value: Option<&Value>) -> Option<i64> {
    let value = value?;
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })
}

/// The role a token's role claim names: none means customer; otherwise the most privileged
/// Waybill role among the values, or a refusal when no value is one.
fn role_from(claims: &serde_json::Map<String, Value>, path: &str) -> Result<Role, JwtError> {
    let mut segments = path.split('.');
    let mut value = segments.next().and_then(|first| claims.get(first));
    for segment in segments {
        value = value.and_then(|v| v.get(segment));
    }
    let names: Vec<&str> = match value {
        None | Some(Value::Null) => return Ok(Role::Customer),
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(JwtError::BadClaims),
    };
    names
        .iter()
        .filter_map(|name| Role::parse(name))
        .max_by_key(|role| privilege(*role))
        .ok_or_else(|| JwtError::UnknownRole(names.join(",").chars().take(64).collect()))
}

/// Order of privilege when a token names several roles.
fn privilege(role: Role) -> u8 {
    match role {
        Role::Customer => 0,
        Role::Service => 1,
        Role::Finance => 2,
        Role::Agent => 3,
        Role::Admin => 4,
    }
}

/// The header of a three-part compact JWS, read without trusting anything in it yet.
fn raw_header(token: &str) -> Result<RawHeader, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or(JwtError::Malformed)
}

/// Whether a bearer credential has the shape of a compact JWS (three dot-separated parts), as
/// opposed to an opaque API key.
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.bytes().filter(|b| *b == b'.').count() == 2
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
