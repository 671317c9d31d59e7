//! The command API's one error type: every refusal is `application/problem+json` with a stable
//! `type` per kind of error, the field that was wrong, and no internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::commands::CommandError;
use crate::domain::FieldError;

/// `Retry-After` of every 503 (database unavailable, timeout, not configured).
pub const RETRY_AFTER_SECS: &str = "2";

/// Prefix of every problem `type`.
pub const TYPE_BASE: &str = "https://waybill.dev/problems/";

/// An RFC 9457 problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The first field that was wrong, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field that was wrong, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{TYPE_BASE}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            errors: Vec::new(),
        }
    }

    /// The slug at the end of `type`.
    pub fn slug(&self) -> &str {
        self.type_uri.strip_prefix(TYPE_BASE).unwrap_or("internal")
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let first = errors.first().cloned();
        let detail = match &first {
            Some(e) if errors.len() == 1 => format!("{} {}", e.field, e.detail),
            Some(e) => format!("{} {} (and {} more)", e.field, e.detail, errors.len() - 1),
            None => "the request is invalid".to_owned(),
        };
        Self {
            field: first.map(|e| e.field),
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
                detail,
            )
        }
    }

    /// A validation problem about one field (query parameters, single values).
    pub fn field(field: &str, detail: impl Into<String>) -> Self {
        Self::validation(vec![FieldError {
            field: field.to_owned(),
            detail: detail.into(),
        }])
    }

    /// Names the field a problem is about.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }

    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            detail,
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "the body must be JSON with Content-Type: application/json",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("the body must be at most {limit} bytes"),
        )
    }

    pub fn missing_idempotency_key(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "missing-idempotency-key",
            "Missing or invalid Idempotency-Key",
            detail,
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "send a valid API key as Authorization: Bearer <key>",
        )
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "this API key's role may not send commands",
        )
    }

    pub fn not_found_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "no such endpoint",
        )
    }

    /// 503 while the database cannot be used; sent with `Retry-After`.
    pub fn database_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database-unavailable",
            "Database unavailable",
            "the event store cannot be reached right now; retry with the same Idempotency-Key",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the command could not be completed; it is safe to retry with the same Idempotency-Key",
        )
    }
}

impl From<CommandError> for Problem {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Validation(e) => Self::validation(e.0),
            CommandError::KeyReused(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was already used for a different request",
            ),
            CommandError::NotFound(id) => Self::new(
                StatusCode::NOT_FOUND,
                "order-not-found",
                "Order not found",
                format!("order {id} does not exist"),
            ),
            CommandError::AlreadyCancelled(id) => Self::new(
                StatusCode::CONFLICT,
                "order-already-cancelled",
                "Order already cancelled",
                format!("order {id} is already cancelled"),
            ),
            CommandError::Refused(detail) => Self::new(
                StatusCode::CONFLICT,
                "invalid-transition",
                "The order cannot do that now",
                detail,
            ),
            CommandError::NotEditable(detail) => Self::new(
                StatusCode::CONFLICT,
                "not-editable",
                "The order can no longer be edited",
                detail,
            ),
            CommandError::Forbidden => Self::forbidden(),
            CommandError::DisputeNotFound(id) => Self::new(
                StatusCode::NOT_FOUND,
                "dispute-not-found",
                "Dispute not found",
                format!("the order has no dispute {id}"),
            )
            .with_field("dispute_id"),
            CommandError::ReturnNotFound(id) => Self::new(
                StatusCode::NOT_FOUND,
                "return-not-found",
                "Return not found",
                format!("the order has no return {id}"),
            )
            .with_field("return_id"),
            CommandError::Conflict(id) => Self::new(
                StatusCode::CONFLICT,
                "concurrency-conflict",
                "Concurrency conflict",
                format!("order {id} kept changing while this command was decided; retry it"),
            ),
            CommandError::Upstream(detail) => {
                tracing::warn!(%detail, "upstream failed");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "gateway-unavailable",
                    "The payment gateway did not answer",
                    "the payment gateway could not be reached; retry with the same Idempotency-Key",
                )
            }
            CommandError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                Self::database_unavailable()
            }
            CommandError::Internal(detail) => {
                tracing::error!(%detail, "command failed");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_database_is_503_problem_json_with_retry_after() {
        let problem = Problem::from(CommandError::from(sqlx::Error::PoolTimedOut));
        assert_eq!(problem.status, 503);
        assert_eq!(problem.slug(), "database-unavailable");
        let response = problem.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], RETRY_AFTER_SECS);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let other = Problem::from(CommandError::from(sqlx::Error::RowNotFound));
        assert_eq!(other.status, 500, "a statement error is not an outage");
    }
}
