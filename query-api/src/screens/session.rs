//! Console sessions: who is signed in, kept in Redis so every query-API instance sees the same
//! sessions, named by a random id that only the browser's cookie holds.
//!
//! `<prefix>:console-session:<SHA-256 of the id>` holds a JSON record (client id, role, the
//! synchronizer CSRF token, expiry, and the sealed credential — see [`super::seal`]) with a Redis
//! expiry equal to the session's lifetime. Every request opens the credential and
//! authenticates it again with the API's own keys ([`crate::auth::ApiKeys`]): a JWT that expired
//! or an API key taken out of the configuration ends the session at once, and the role shown is
//! always the role the credential has now.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use waybill_schemas::api_keys::{Principal, Role};

use super::error::ScreenError;
use super::seal;
use crate::http::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "waybill_console";

/// A signed-in staff member.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who the credential belongs to, as authenticated on this request.
    pub principal: Principal,
    /// The synchronizer token every form of this session carries.
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
    credential: String,
}

impl Session {
    pub fn role(&self) -> Role {
        self.principal.role
    }

    /// The staff member's own credential, forwarded to the command API as a Bearer token.
    pub fn credential(&self) -> &str {
        &self.credential
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    client_id: String,
    role: String,
    csrf: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    credential: String,
}

fn key(state: &AppState, session_id: &str) -> String {
    format!(
        "{}:console-session:{}",
        state.config.redis_prefix,
        hex::encode(Sha256::digest(session_id.as_bytes()))
    )
}

/// A fresh random token (256 bits, hex).
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The `exp` of a JWT (already verified by the caller), so a session never outlives its token.
fn jwt_expiry(credential: &str) -> Option<DateTime<Utc>> {
    let payload = credential.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    DateTime::from_timestamp(claims.get("exp")?.as_i64()?, 0)
}

fn redis_failed(error: redis::RedisError) -> ScreenError {
    tracing::warn!(%error, "console session store (Redis) failed");
    ScreenError::Unavailable
}

/// Starts a session for `principal`, who presented `credential`; returns the session id for
/// the cookie and the session. Lifetime: the configured one, or less if the JWT expires sooner.
pub async fn create(
    state: &AppState,
    principal: Principal,
    credential: &str,
) -> Result<(String, Session), ScreenError> {
    let now = Utc::now();
    let configured = now
        + chrono::Duration::from_std(state.config.screens.session_ttl)
            .unwrap_or(chrono::Duration::hours(8));
    let expires_at = jwt_expiry(credential).map_or(configured, |exp| exp.min(configured));
    let ttl_ms = (expires_at - now).num_milliseconds();
    if ttl_ms <= 0 {
        return Err(ScreenError::SignInRefused {
            reason: "this token has expired",
        });
    }
    let session_id = random_token();
    let record = Record {
        client_id: principal.client_id.clone(),
        role: principal.role.as_str().to_owned(),
        csrf: random_token(),
        created_at: now,
        expires_at,
        credential: seal::seal(&session_id, credential),
    };
    let json = serde_json::to_string(&record).map_err(|_| ScreenError::Internal)?;
    let mut redis = state.redis.clone();
    redis::cmd("SET")
        .arg(key(state, &session_id))
        .arg(json)
        .arg("PX")
        .arg(ttl_ms)
        .query_async::<()>(&mut redis)
        .await
        .map_err(redis_failed)?;
    tracing::info!(client_id = %principal.client_id, role = %principal.role, "console sign-in");
    Ok((
        session_id,
        Session {
            principal,
            csrf: record.csrf,
            expires_at,
            credential: credential.to_owned(),
        },
    ))
}

/// The live session named `session_id`, authenticated again; `None` if there is none (expired,
/// signed out, unknown, or its credential no longer authenticates).
pub async fn load(state: &AppState, session_id: &str) -> Result<Option<Session>, ScreenError> {
    let mut redis = state.redis.clone();
    let raw: Option<String> = redis::cmd("GET")
        .arg(key(state, session_id))
        .query_async(&mut redis)
        .await
        .map_err(redis_failed)?;
    let Some(record) = raw.and_then(|r| serde_json::from_str::<Record>(&r).ok()) else {
        return Ok(None);
    };
    if record.expires_at <= Utc::now() {
        return Ok(None);
    }
    let Some(credential) = seal::open(session_id, &record.credential) else {
        return Ok(None);
    };
    let Some(principal) = state
        .config
        .api_keys
        .authenticate_header(Some(&format!("Bearer {credential}")))
    else {
        return Ok(None);
    };
    Ok(Some(Session {
        principal,
        csrf: record.csrf,
        expires_at: record.expires_at,
        credential,
    }))
}

/// Ends the session `session_id` (sign-out): its record is gone for every instance at once.
pub async fn delete(state: &AppState, session_id: &str) -> Result<(), ScreenError> {
    let mut redis = state.redis.clone();
    redis::cmd("DEL")
        .arg(key(state, session_id))
        .query_async::<()>(&mut redis)
        .await
        .map_err(redis_failed)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Secure` when the screens are served
/// over TLS (configured), bounded by `max_age_secs` (0 clears it).
pub fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: i64,
) -> HeaderValue {
    let secure = if state.config.screens.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let raw = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age_secs.max(0)
    );
    HeaderValue::from_str(&raw).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Where a request that needs a session goes without one: the sign-in page, then back here.
fn sign_in_required(parts: &Parts) -> ScreenError {
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/console".to_owned());
    ScreenError::SignInRequired { next }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ScreenError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(id) = cookie(&parts.headers, COOKIE).filter(|id| id.len() == 64) else {
            return Err(sign_in_required(parts));
        };
        load(state, &id)
            .await?
            .ok_or_else(|| sign_in_required(parts))
    }
}

/// Refuses (403) a session whose role is not one of `roles`. Every screen calls this first.
pub fn require_role(session: &Session, roles: &[Role]) -> Result<(), ScreenError> {
    if roles.contains(&session.role()) {
        Ok(())
    } else {
        Err(ScreenError::Forbidden {
            role: session.role(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_expiry_is_read_from_its_payload_and_api_keys_have_none() {
        let jwt = waybill_schemas::jwt::JwtKey::new(b"j").issue(&waybill_schemas::jwt::Claims {
            sub: "ann".into(),
            role: "agent".into(),
            exp: 2_000_000_000,
        });
        assert_eq!(jwt_expiry(&jwt).unwrap().timestamp(), 2_000_000_000);
        assert_eq!(jwt_expiry("plain-api-key"), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("x_waybill_console=1; waybill_console=abc; other=2"),
        );
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
