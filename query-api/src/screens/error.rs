//! What a screen answers when it cannot show what was asked: one HTML page per kind of refusal
//! (never JSON, never internals), with the status a client would expect.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use waybill_schemas::api_keys::Role;

use super::layout;

/// Why a screen request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ScreenError {
    /// No live session: go to the sign-in page, then back to `next`.
    #[error("sign-in required")]
    SignInRequired { next: String },
    /// The credential given at sign-in was not accepted.
    #[error("sign-in refused: {reason}")]
    SignInRefused { reason: &'static str },
    /// Signed in, but this role may not use this screen or action.
    #[error("role {role} may not use this screen")]
    Forbidden { role: Role },
    /// A POST without the session's CSRF token, or from another origin.
    #[error("cross-site request refused")]
    Csrf,
    /// A form field is wrong.
    #[error("{field}: {detail}")]
    BadInput { field: &'static str, detail: String },
    #[error("not found")]
    NotFound,
    /// A store the screen needs is down (logged where it happened).
    #[error("unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ScreenError {
    /// A query string that does not parse (a parameter given twice, bad percent-encoding).
    pub fn bad_query() -> Self {
        Self::BadInput {
            field: "query",
            detail: "is not a valid query string".to_owned(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::SignInRequired { .. } => StatusCode::SEE_OTHER,
            Self::SignInRefused { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } | Self::Csrf => StatusCode::FORBIDDEN,
            Self::BadInput { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A local path to come back to after signing in (never another site: `//host` is refused).
pub fn local_path(next: &str) -> Option<&str> {
    (next.starts_with('/') && !next.starts_with("//") && !next.contains('\\')).then_some(next)
}

impl IntoResponse for ScreenError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::SignInRequired { next } = &self {
            let target = format!(
                "/console/sign-in?next={}",
                super::url_encode(local_path(next).unwrap_or("/console"))
            );
            let mut response = status.into_response();
            if let Ok(value) = HeaderValue::from_str(&target) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return response;
        }
        let (title, text) = match &self {
            Self::SignInRefused { reason } => ("Sign-in refused", (*reason).to_owned()),
            Self::Forbidden { role } => (
                "Not for your role",
                format!("You are signed in as {role}; this page needs another role."),
            ),
            Self::Csrf => (
                "Form refused",
                "This form was not sent from this site's own page with your current session. \
                 Reload the page and try again."
                    .to_owned(),
            ),
            Self::BadInput { field, detail } => ("Check the form", format!("{field}: {detail}")),
            Self::NotFound => ("Not found", "There is nothing at this address.".to_owned()),
            Self::Unavailable => (
                "Temporarily unavailable",
                "A service this page needs does not answer. Try again in a moment.".to_owned(),
            ),
            Self::Internal | Self::SignInRequired { .. } => (
                "Something went wrong",
                "The page could not be shown. It is safe to try again.".to_owned(),
            ),
        };
        let body = layout::bare_page(
            title,
            html! {
                h1 { (title) }
                p class="error" role="alert" { (text) }
                p { a href="/console" { "Back to the console" } }
            },
        );
        let mut response = layout::html_response(status, body);
        if matches!(self, Self::Unavailable) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path("/console/orders/x"), Some("/console/orders/x"));
        assert_eq!(local_path("//evil.example/"), None);
        assert_eq!(local_path("https://evil.example/"), None);
        assert_eq!(local_path("/\\evil.example"), None);
    }
}
