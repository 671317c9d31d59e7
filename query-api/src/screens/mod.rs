//! Server-rendered screens for staff: the agent console (`/console`), the finance page
//! (`/finance`), and the foundation they share:
//! - [`session`]: sign-in sessions kept in Redis (every instance sees them), a cookie that is
//!   `HttpOnly`, `SameSite=Strict`, `Secure` when served over TLS, with a bounded lifetime;
//!   [`session::require_role`] is the role check every screen calls;
//! - [`csrf`]: [`csrf::PostedForm`], the only way a screen reads a POST — Origin check plus the
//!   session's synchronizer token;
//! - [`layout`]: the page frame, navigation by role ([`layout::NAV`]), the stylesheet;
//! - [`sign_in`]: sign-in with the identity provider's JWT or an API key, and sign-out;
//! - [`command_client`]: actions go to the command API with the staff member's own credential.
//!
//! Templates are maud (escapes by default). No front-end build step and no script: every screen
//! works with plain links and forms.

pub mod chart;
pub mod command_client;
pub mod console;
pub mod csrf;
pub mod desk;
pub mod error;
pub mod finance;
pub mod layout;
pub mod ops;
pub mod plural;
pub mod seal;
pub mod session;
pub mod sign_in;
pub mod table;

use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use error::ScreenError;
pub use session::{require_role, Session};

use crate::http::AppState;

/// The screens' settings.
#[derive(Debug, Clone)]
pub struct ScreensConfig {
    /// Base URL of the command API that console actions are sent to (`None`: actions answer
    /// 503 "unavailable").
    pub command_api_url: Option<String>,
    /// How long a session lasts at most (a JWT's own expiry shortens it).
    pub session_ttl: Duration,
    /// The origin browsers use to reach the screens (`https://console.example.com`): POSTs must
    /// name it; `https://` also makes cookies `Secure`. `None`: the request's own host.
    pub public_origin: Option<String>,
    /// Mark cookies `Secure` even without an `https://` public origin (TLS terminated in
    /// front of an origin given as a host name only).
    pub secure_cookies: bool,
}

impl Default for ScreensConfig {
    fn default() -> Self {
        Self {
            command_api_url: None,
            session_ttl: Duration::from_secs(8 * 3600),
            public_origin: None,
            secure_cookies: false,
        }
    }
}

impl ScreensConfig {
    /// Whether cookies carry `Secure`: configured, or the public origin is `https://`.
    pub fn secure_cookies(&self) -> bool {
        self.secure_cookies
            || self
                .public_origin
                .as_deref()
                .is_some_and(|o| o.to_ascii_lowercase().starts_with("https://"))
    }
}

/// Percent-encodes `raw` for a query string value.
pub fn url_encode(raw: &str) -> String {
    form_urlencoded_value(raw)
}

fn form_urlencoded_value(raw: &str) -> String {
    serde_urlencoded::to_string([("v", raw)])
        .map(|s| s.trim_start_matches("v=").to_owned())
        .unwrap_or_default()
}

async fn stylesheet() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        layout::STYLESHEET,
    )
        .into_response()
}

/// Every screen route; merged into the query API's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console/sign-in",
            get(sign_in::sign_in_form).post(sign_in::sign_in),
        )
        .route("/console/sign-out", post(sign_in::sign_out))
        .route(layout::STYLESHEET_PATH, get(stylesheet))
        .merge(console::routes())
        .merge(finance::routes())
        .merge(desk::routes())
        .merge(ops::routes())
}
