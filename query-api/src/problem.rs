//! The query API's errors, each one type of the vocabulary both APIs share
//! ([`waybill_schemas::ProblemType`]) and answered through the command API's problem body and its
//! `IntoResponse`, so a type always comes with the same status on either API.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use waybill_schemas::ProblemType;
/// The problem+json body both APIs answer with (one type, one `IntoResponse`).
pub use waybill_write_side::command_api::Problem as ProblemBody;

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
    /// The views lost their data and are being filled again from the event log; what was
    /// asked for exists there.
    #[error("{what} catching up")]
    CatchingUp { what: &'static str },
}

impl Problem {
    /// The type of this problem in the vocabulary both APIs share.
    pub fn kind(&self) -> ProblemType {
        match self {
            Self::BadParameter { .. } => ProblemType::ValidationFailed,
            Self::OrderNotFound => ProblemType::OrderNotFound,
            Self::Unauthorized { .. } => ProblemType::Unauthorized,
            Self::Forbidden { .. } | Self::RoleForbidden { .. } => ProblemType::Forbidden,
            Self::RateLimited { .. } => ProblemType::RateLimited,
            Self::NotFound => ProblemType::NotFound,
            Self::Timeout => ProblemType::Timeout,
            Self::Internal => ProblemType::Internal,
            Self::Unavailable { .. } => ProblemType::Unavailable,
            Self::CatchingUp { .. } => ProblemType::ViewCatchingUp,
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.kind().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn slug(&self) -> &'static str {
        self.kind().slug()
    }

    /// The problem+json body, in the shape the command API answers with.
    pub fn body(&self) -> ProblemBody {
        let detail = match self {
            Self::BadParameter { field, detail } => return ProblemBody::field(field, detail),
            // One text for "no such order" and "wrong token": a guesser learns nothing.
            Self::OrderNotFound => {
                "No order with this id is visible with the credentials given".to_owned()
            }
            Self::Unauthorized { detail } => (*detail).to_owned(),
            Self::Forbidden { role } => format!("role {role} may not use this endpoint"),
            Self::RateLimited { retry_after_secs } => {
                format!("slow down; retry after {retry_after_secs} s")
            }
            Self::NotFound => "no such resource".to_owned(),
            Self::Timeout => "the request took too long; it is safe to retry".to_owned(),
            Self::Internal => "the request could not be completed; it is safe to retry".to_owned(),
            Self::RoleForbidden { role, what } => {
                format!("role {role} may not read {what}")
            }
            Self::Unavailable { what } => format!("{what} cannot be read right now; retry later"),
            Self::CatchingUp { what } => format!(
                "{what} are being filled again from the event log after a loss; what you asked \
                 for is in the log: retry after the Retry-After seconds"
            ),
        };
        ProblemBody::new(self.kind(), detail)
    }
}

impl Problem {
    /// A failed read of the views in Redis, logged here once: 503 (with `Retry-After`) while
    /// Redis cannot be reached, since the connection comes back by itself when Redis does;
    /// 500 for anything else (an answer Waybill did not expect is a bug, not an outage).
    pub fn view_store(error: &redis::RedisError, reading: &'static str) -> Self {
        if unreachable(error) {
            tracing::warn!(%error, reading, "Redis unavailable");
            Self::Unavailable {
                what: "the order views",
            }
        } else {
            tracing::error!(%error, reading, "reading Redis failed");
            Self::Internal
        }
    }

    /// A failed read of the event store, logged here once: 503 while Postgres cannot be
    /// reached, 500 otherwise.
    pub fn event_store(error: &waybill_write_side::event_store::EventStoreError) -> Self {
        use waybill_write_side::event_store::{retry::is_unavailable, EventStoreError};
        match error {
            EventStoreError::Database(db) if is_unavailable(db) => {
                tracing::warn!(%error, "event store unavailable");
                Self::Unavailable {
                    what: "the event store",
                }
            }
            _ => {
                tracing::error!(%error, "reading the event store failed");
                Self::Internal
            }
        }
    }
}

/// Whether a Redis error means Redis is not reachable (down, restarting, loading, failing
/// over), rather than that it answered something unexpected.
fn unreachable(error: &redis::RedisError) -> bool {
    use redis::ErrorKind;
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || matches!(
            error.kind(),
            ErrorKind::BusyLoadingError
                | ErrorKind::TryAgain
                | ErrorKind::ClusterDown
                | ErrorKind::MasterDown
                // A cluster failing over: a slot's master is gone and its replica not yet
                // promoted, or the slot moved while the client's retries ran out.
                | ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Moved
                | ErrorKind::Ask
                | ErrorKind::ReadOnly
        )
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        metrics::counter!("waybill_query_problems_total", "type" => self.slug()).increment(1);
        let mut response = self.body().into_response();
        let headers = response.headers_mut();
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
        assert_eq!(body.status, 422);
        assert_eq!(body.field.as_deref(), Some("min_version"));
        assert_eq!(
            body.type_uri,
            "https://waybill.dev/problems/validation-failed"
        );
        assert_eq!(body.detail, "min_version must be a positive integer");
    }

    #[test]
    fn catching_up_is_503_with_retry_after() {
        let response = Problem::CatchingUp {
            what: "the order views",
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(
            Problem::CatchingUp { what: "x" }.body().type_uri,
            "https://waybill.dev/problems/view-catching-up"
        );
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
