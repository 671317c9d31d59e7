//! Cross-site request forgery protection for every POST of the screens, owned by one extractor
//! so no handler can forget it: [`PostedForm`] accepts a form only when
//! 1. it comes from this site: `Origin` (or, without it, `Referer`) names the configured public
//!    origin or the request's own host; a POST naming neither is refused;
//! 2. it carries the session's synchronizer token in its `csrf` field (constant-time compare);
//! 3. the session is live and signed in (no session: back to the sign-in page).
//!
//! The session cookie is also `SameSite=Strict`, so browsers do not even send it cross-site.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::error::ScreenError;
use super::session::Session;
use crate::http::AppState;

/// Largest form body a screen accepts.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A POSTed form that passed the CSRF checks, with the session that sent it.
pub struct PostedForm<T> {
    pub session: Session,
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// Whether the request says it comes from this site (Origin, else Referer).
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let claimed = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            let referer = headers.get(header::REFERER)?.to_str().ok()?;
            let (scheme, rest) = referer.split_once("://")?;
            let host = rest.split('/').next()?;
            Some(format!("{scheme}://{host}"))
        });
    let Some(claimed) = claimed else {
        return false;
    };
    if let Some(public) = state.config.screens.public_origin.as_deref() {
        return claimed.eq_ignore_ascii_case(public.trim_end_matches('/'));
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    claimed.eq_ignore_ascii_case(&format!("http://{host}"))
        || claimed.eq_ignore_ascii_case(&format!("https://{host}"))
}

/// Constant-time comparison of a presented token with the expected one.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Reads the body of a form POST (bounded).
pub async fn form_body(request: Request, state: &AppState) -> Result<Bytes, ScreenError> {
    Bytes::from_request(request, state)
        .await
        .ok()
        .filter(|b| b.len() <= MAX_FORM_BYTES)
        .ok_or(ScreenError::BadInput {
            field: "form",
            detail: "could not be read".to_owned(),
        })
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for PostedForm<T> {
    type Rejection = ScreenError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        if !same_origin(state, &parts.headers) {
            tracing::warn!(client_id = %session.principal.client_id, "console POST from another origin refused");
            return Err(ScreenError::Csrf);
        }
        let bytes = form_body(Request::from_parts(parts, body), state).await?;
        let token: CsrfField =
            serde_urlencoded::from_bytes(&bytes).map_err(|_| ScreenError::Csrf)?;
        if !token_matches(&token.csrf, &session.csrf) {
            tracing::warn!(client_id = %session.principal.client_id, "console POST without its CSRF token refused");
            return Err(ScreenError::Csrf);
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|error| ScreenError::BadInput {
            field: "form",
            detail: error.to_string(),
        })?;
        Ok(PostedForm { session, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_match_exactly_and_an_empty_expected_token_matches_nothing() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("", ""));
        assert!(!token_matches("ab", "abc"));
    }
}
