//! Signing in and out of the screens.
//!
//! - `GET /console/sign-in?next=` the form: one field for an API key (development) or the
//!   identity provider's JWT, checked by the API's own authentication ([`crate::auth::ApiKeys`]:
//!   API keys, HS256, or RS256/ES256 under the provider's JWKS). The form carries a one-time
//!   token that must match a short-lived cookie set with it (no session exists yet to bind a
//!   synchronizer token to), and the POST must come from this site (Origin).
//! - `POST /console/sign-in` staff roles only (agent, finance, admin): starts a session and sets
//!   the session cookie, then goes to `next` (a local path) or the role's first screen.
//! - `POST /console/sign-out` (CSRF-checked) deletes the session for every instance and clears
//!   the cookie.

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use waybill_schemas::api_keys::Role;

use super::csrf::{form_body, same_origin, token_matches, PostedForm};
use super::error::{local_path, ScreenError};
use super::layout::{bare_page, home_for, html_response};
use super::session::{self, cookie, random_token, set_cookie, Session};
use crate::http::AppState;

/// The sign-in form's one-time token cookie (lives 10 minutes, only on the sign-in path).
pub const SIGN_IN_COOKIE: &str = "waybill_console_sign_in";
const SIGN_IN_PATH: &str = "/console/sign-in";
const SIGN_IN_TOKEN_SECS: i64 = 600;

/// Roles that may sign in to the screens.
pub const STAFF: &[Role] = &[Role::Agent, Role::Finance, Role::Admin];

#[derive(Debug, Default, Deserialize)]
pub struct NextParam {
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    #[serde(default)]
    credential: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

fn form_page(status: StatusCode, state: &AppState, next: &str, error: Option<&str>) -> Response {
    let token = random_token();
    let body = bare_page(
        "Sign in",
        html! {
            h1 { "Sign in to Waybill" }
            @if let Some(error) = error {
                p class="error" role="alert" id="sign-in-error" { (error) }
            }
            form method="post" action=(SIGN_IN_PATH) class="card" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label for="credential" { "Identity-provider token (JWT) or API key" }
                p class="hint" id="credential-hint" {
                    "Paste the token your identity provider issued you, or a staff API key "
                    "(development). Agents, finance and admins may sign in."
                }
                textarea id="credential" name="credential" required autocomplete="off"
                    spellcheck="false" aria-describedby="credential-hint" aria-invalid=[error.map(|_| "true")] {}
                p { button type="submit" { "Sign in" } }
            }
        },
    );
    let mut response = html_response(status, body);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            state,
            SIGN_IN_COOKIE,
            &token,
            SIGN_IN_PATH,
            SIGN_IN_TOKEN_SECS,
        ),
    );
    response
}

/// `GET /console/sign-in`: the form, or straight on when a session is live.
pub async fn sign_in_form(
    State(state): State<AppState>,
    Query(params): Query<NextParam>,
    headers: HeaderMap,
) -> Result<Response, ScreenError> {
    let next = params
        .next
        .as_deref()
        .and_then(local_path)
        .unwrap_or_default()
        .to_owned();
    if let Some(id) = cookie(&headers, session::COOKIE) {
        if let Some(live) = session::load(&state, &id).await? {
            return Ok(see_other(if next.is_empty() {
                home_for(live.role())
            } else {
                &next
            }));
        }
    }
    Ok(form_page(StatusCode::OK, &state, &next, None))
}

fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `POST /console/sign-in`.
pub async fn sign_in(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ScreenError> {
    let headers = request.headers().clone();
    if !same_origin(&state, &headers) {
        return Err(ScreenError::Csrf);
    }
    let bytes = form_body(request, &state).await?;
    let form: SignInForm = serde_urlencoded::from_bytes(&bytes).map_err(|_| ScreenError::Csrf)?;
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if !token_matches(&form.csrf, &expected) {
        return Err(ScreenError::Csrf);
    }
    let next = local_path(&form.next).unwrap_or_default().to_owned();
    let credential = form.credential.trim();
    let principal = (!credential.is_empty() && !credential.contains(char::is_whitespace))
        .then(|| {
            state
                .config
                .api_keys
                .authenticate_header(Some(&format!("Bearer {credential}")))
        })
        .flatten();
    let Some(principal) = principal else {
        tracing::info!("console sign-in refused: credential not accepted");
        return Ok(form_page(
            StatusCode::UNAUTHORIZED,
            &state,
            &next,
            Some("That token or key was not accepted (unknown, expired or malformed)."),
        ));
    };
    if !STAFF.contains(&principal.role) {
        tracing::info!(role = %principal.role, "console sign-in refused: not a staff role");
        return Ok(form_page(
            StatusCode::FORBIDDEN,
            &state,
            &next,
            Some("These screens are for agents, finance and admins; your role may not sign in."),
        ));
    }
    let (session_id, live) = session::create(&state, principal, credential).await?;
    let lifetime = (live.expires_at - chrono::Utc::now()).num_seconds();
    let mut response = see_other(if next.is_empty() {
        home_for(live.role())
    } else {
        &next
    });
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(&state, session::COOKIE, &session_id, "/", lifetime),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(&state, SIGN_IN_COOKIE, "", SIGN_IN_PATH, 0),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /console/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    posted: PostedForm<serde::de::IgnoredAny>,
) -> Result<Response, ScreenError> {
    let Session { principal, .. } = posted.session;
    if let Some(id) = cookie(&headers, session::COOKIE) {
        session::delete(&state, &id).await?;
    }
    tracing::info!(client_id = %principal.client_id, "console sign-out");
    let mut response = see_other(SIGN_IN_PATH);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, session::COOKIE, "", "/", 0),
    );
    Ok(response)
}
