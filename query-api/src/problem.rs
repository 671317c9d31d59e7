//! The query API's one error type, answered as RFC 9457 `application/problem+json` with a stable
//! `type` per kind of failure, the field that was wrong, and nothing internal.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

const TYPE_BASE: &str = "https://waybill.dev/problems/";

/// What went wrong with a query, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{field} is invalid: {detail}")]
    BadParameter { field: &'static str, detail: String },
    #[error("order not found")]
    OrderNotFound,
    #[error("no credentials")]
    Unauthorized { detail: &'static str },
    #[error("role {role} may not use this endpoint")]
    Forbidden { role: String },
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("no such resource")]
    NotFound,
    /// The request ran past the configured request timeout.
    #[error("request timed out")]
    Timeout,
    /// Something on our side failed; the cause is logged, never returned.
    #[error("internal error")]
    Internal,
    /// A valid key whose role may not use this part of the API.
    #[error("role {role} may not read {what}")]
    RoleForbidden { role: String, what: &'static str },
    /// A store this endpoint reads is down; the cause is logged, never returned.
    #[error("{what} unavailable")]
    Unavailable { what: &'static str },
}

/// The problem+json body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `https://waybill.dev/problems/<slug>`
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadParameter { .. } => StatusCode::BAD_REQUEST,
            Self::OrderNotFound | Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::RoleForbidden { .. } => StatusCode::FORBIDDEN,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn slug(&self) -> &'static str {
        match self {
            Self::BadParameter { .. } => "validation-failed",
            Self::OrderNotFound => "order-not-found",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::RateLimited { .. } => "rate-limited",
            Self::NotFound => "not-found",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
            Self::RoleForbidden { .. } => "forbidden",
            Self::Unavailable { .. } => "unavailable",
        }
    }

    pub fn body(&self) -> ProblemBody {
        let (title, detail, field) = match self {
            Self::BadParameter { field, detail } => (
                "The request is invalid",
                format!("{field} {detail}"),
                Some((*field).to_owned()),
            ),
            // One text for "no such order" and "wrong token": a guesser learns nothing.
            Self::OrderNotFound => (
                "Order not found",
                "No order with this id is visible with the credentials given".to_owned(),
                None,
            ),
            Self::Unauthorized { detail } => {
                ("Authentication required", (*detail).to_owned(), None)
            }
            Self::Forbidden { role } => (
                "Forbidden",
                format!("role {role} may not use this endpoint"),
                None,
            ),
            Self::RateLimited { retry_after_secs } => (
                "Too many requests",
                format!("slow down; retry after {retry_after_secs} s"),
                None,
            ),
            Self::NotFound => ("Not found", "no such resource".to_owned(), None),
            Self::Timeout => (
                "Request timed out",
                "the request took too long; it is safe to retry".to_owned(),
                None,
            ),
            Self::Internal => (
                "Internal error",
                "the request could not be completed; it is safe to retry".to_owned(),
                None,
            ),
            Self::RoleForbidden { role, what } => (
                "Forbidden",
                format!("role {role} may not read {what}"),
                None,
            ),
            Self::Unavailable { what } => (
                "Service unavailable",
                format!("{what} cannot be read right now; retry later"),
                None,
            ),
        };
        ProblemBody {
            kind: format!("{TYPE_BASE}{}", self.slug()),
            title: title.to_owned(),
            status: self.status().as_u16(),
            detail,
            field,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        metrics::counter!("waybill_query_problems_total", "type" => self.slug()).increment(1);
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            Self::Unauthorized { .. } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"waybill\""),
                );
            }
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameter_names_the_field() {
        let body = Problem::BadParameter {
            field: "min_version",
            detail: "must be a positive integer".into(),
        }
        .body();
        assert_eq!(body.status, 400);
        assert_eq!(body.field.as_deref(), Some("min_version"));
        assert_eq!(body.kind, "https://waybill.dev/problems/validation-failed");
    }

    #[test]
    fn problem_responses_are_problem_json() {
        let response = Problem::OrderNotFound.into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}
