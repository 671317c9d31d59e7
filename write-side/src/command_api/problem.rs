//! The one error type of both HTTP APIs: every refusal is `application/problem+json` with a
//! stable `type` from the shared vocabulary ([`ProblemType`], in the schemas crate: one status and
//! one title per type), the field that was wrong, and no internals. The query API converts its own
//! errors into this and renders them through the same [`IntoResponse`]; [`safety_net`] turns what
//! a framework layer answers by itself (405, an unreadable path, a body over the limit) into the
//! same shape.

use axum::body::Body;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
pub use waybill_schemas::problem::{ProblemType, TYPE_BASE};

use crate::commands::CommandError;
use crate::domain::FieldError;

/// `Retry-After` of every 503 (database unavailable, timeout, not configured).
pub const RETRY_AFTER_SECS: &str = "2";

/// An RFC 9457 problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `https://waybill.dev/problems/<slug>`: one of the types listed in the document's description.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    /// The HTTP status, the same for every problem of one `type`.
    #[schema(minimum = 400, maximum = 599)]
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
    /// A problem of type `kind` (its status and title come with the type).
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            type_uri: kind.uri(),
            title: kind.title().to_owned(),
            status: kind.status(),
            detail: detail.into(),
            field: None,
            errors: Vec::new(),
        }
    }

    /// The slug at the end of `type`.
    pub fn slug(&self) -> &str {
        self.type_uri.strip_prefix(TYPE_BASE).unwrap_or("internal")
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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
            ..Self::new(ProblemType::ValidationFailed, detail)
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
        Self::new(ProblemType::MalformedJson, detail)
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            ProblemType::UnsupportedMediaType,
            "the body must be JSON with Content-Type: application/json",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ProblemType::PayloadTooLarge,
            format!("the body must be at most {limit} bytes"),
        )
    }

    pub fn missing_idempotency_key(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::MissingIdempotencyKey, detail).with_field("Idempotency-Key")
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ProblemType::Unauthorized,
            "send a valid API key as Authorization: Bearer <key>",
        )
    }

    pub fn forbidden() -> Self {
        Self::new(
            ProblemType::Forbidden,
            "this API key's role may not send commands",
        )
    }

    pub fn not_found_route() -> Self {
        Self::new(ProblemType::NotFound, "no such endpoint")
    }

    /// 503 while the database cannot be used; sent with `Retry-After`.
    pub fn database_unavailable() -> Self {
        Self::new(
            ProblemType::DatabaseUnavailable,
            "the event store cannot be reached right now; retry with the same Idempotency-Key",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            ProblemType::Internal,
            "the command could not be completed; it is safe to retry with the same Idempotency-Key",
        )
    }

    /// The body could not be read: over the limit (413) or cut short (400).
    pub fn from_body_rejection(rejection: &BytesRejection, limit: usize) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::payload_too_large(limit)
        } else {
            Self::new(ProblemType::MalformedRequest, "the body could not be read")
        }
    }
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        use axum::extract::path::ErrorKind;
        let key = match &rejection {
            PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                ErrorKind::InvalidUtf8InPathParam { key }
                | ErrorKind::ParseErrorAtKey { key, .. } => Some(key.clone()),
                _ => None,
            },
            _ => None,
        };
        match key {
            Some(key) => Self::field(&key, "is not valid in a path (UTF-8 and the right type)"),
            None => Self::new(ProblemType::MalformedRequest, "the path could not be read"),
        }
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Self::field(
            "query",
            format!("is not a valid query string: {}", rejection.body_text()),
        )
    }
}

/// `axum::extract::Path` whose refusal is a problem naming the path parameter.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(Problem::from)
    }
}

/// `axum::extract::Query` whose refusal is a `validation-failed` problem about `query`.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(Problem::from)
    }
}

/// The raw body, refused as a problem (413 `payload-too-large` past the body limit).
pub struct RawBody(pub axum::body::Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(super::DEFAULT_BODY_LIMIT, |l| l.0);
        axum::body::Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| Problem::from_body_rejection(&rejection, limit))
    }
}

/// The body limit in force, put in the request's extensions so refusals can state it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The last layer of both APIs: an error response that is not a problem (a framework's own
/// refusal: 405 with an empty body, a plain-text rejection, a limit layer's answer) becomes one,
/// with the generic type for its status; `Allow`, `Retry-After` and other headers are kept.
/// Pages (`text/html`) and JSON bodies a handler chose (health) are left alone.
pub async fn safety_net(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !(content_type.is_empty() || content_type.starts_with("text/plain")) {
        return response;
    }
    let kind = ProblemType::for_status(status.as_u16());
    let detail = match kind {
        ProblemType::MethodNotAllowed => "this endpoint does not answer that method; see Allow",
        ProblemType::PayloadTooLarge => "the body is larger than this endpoint accepts",
        ProblemType::NotFound => "no such endpoint",
        _ => "the request could not be handled",
    };
    let (mut parts, _) = response.into_parts();
    // The status becomes the type's own (a stray 408 is 503 `timeout`): one status per type.
    let rendered = Problem::new(kind, detail).into_response();
    parts.status = rendered.status();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in rendered.headers() {
        parts.headers.insert(name, value.clone());
    }
    let (_, body) = rendered.into_parts();
    Response::from_parts(parts, Body::new(body))
}

impl From<CommandError> for Problem {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Validation(e) => Self::validation(e.0),
            CommandError::KeyReused(_) => Self::new(
                ProblemType::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request",
            ),
            CommandError::NotFound(id) => Self::new(
                ProblemType::OrderNotFound,
                format!("order {id} does not exist"),
            ),
            CommandError::AlreadyCancelled(id) => Self::new(
                ProblemType::OrderAlreadyCancelled,
                format!("order {id} is already cancelled"),
            ),
            CommandError::Refused(detail) => Self::new(ProblemType::InvalidTransition, detail),
            CommandError::NotEditable(detail) => Self::new(ProblemType::NotEditable, detail),
            CommandError::Forbidden => Self::forbidden(),
            CommandError::DisputeNotFound(id) => Self::new(
                ProblemType::DisputeNotFound,
                format!("the order has no dispute {id}"),
            )
            .with_field("dispute_id"),
            CommandError::ReturnNotFound(id) => Self::new(
                ProblemType::ReturnNotFound,
                format!("the order has no return {id}"),
            )
            .with_field("return_id"),
            CommandError::EntryNotFound(id) => Self::new(
                ProblemType::NotFound,
                format!("there is no desk entry {id}"),
            )
            .with_field("entry_id"),
            CommandError::CustomerNotFound(id) => Self::new(
                ProblemType::NotFound,
                format!("customer {id} has no orders to erase"),
            )
            .with_field("id"),
            CommandError::GuestNotFound => Self::new(
                ProblemType::NotFound,
                "no guest checkout was placed with this email",
            )
            .with_field("email"),
            CommandError::Conflict(id) => Self::new(
                ProblemType::ConcurrencyConflict,
                format!("order {id} kept changing while this command was decided; retry it"),
            ),
            CommandError::Upstream(detail) => {
                tracing::warn!(%detail, "upstream failed");
                Self::new(
                    ProblemType::GatewayUnavailable,
                    "a system Waybill calls (the payment gateway, the carrier) could not be reached or refused; retry with the same Idempotency-Key",
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
        let status = self.status_code();
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
