//! The one vocabulary of errors both HTTP APIs answer with: every `application/problem+json`
//! body's `type` is `https://waybill.dev/problems/<slug>` for one [`ProblemType`], and each type
//! has exactly one HTTP status and one title. The command API and the query API render problems
//! through one `IntoResponse` (in the write side's `command_api::problem`); this list is what
//! they, their OpenAPI documents and their clients agree on. No I/O here.
//!
//! Status choices: a request whose every field is well-formed JSON / a parsable parameter but
//! whose value is refused (bad value, unknown reference, out of range) is 422
//! `validation-failed` naming the field, on every endpoint of both APIs, whether the field sits
//! in the body, the path, the query string or a header. 400 is kept for requests that cannot be
//! read at all (`malformed-json`, `malformed-webhook`, `malformed-request`) and for a missing or
//! unusable `Idempotency-Key` (`missing-idempotency-key`): types that differ from
//! `validation-failed`, so no type ever comes with two statuses.

/// Prefix of every problem `type`.
pub const TYPE_BASE: &str = "https://waybill.dev/problems/";

/// Every kind of error either API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemType {
    /// A field's value is refused; `field` (and `errors[]`) name it.
    ValidationFailed,
    /// The body is not JSON (syntax, wrong shape, duplicate keys).
    MalformedJson,
    /// The request cannot be read (bad percent-encoding, unreadable body, bad header bytes).
    MalformedRequest,
    /// A webhook body that is not the sender's documented JSON.
    MalformedWebhook,
    /// A JSON object names the same key twice; `field` is the key's path.
    DuplicateKey,
    /// No `Idempotency-Key` header on a mutating request, or one that is not 1-255 visible ASCII.
    MissingIdempotencyKey,
    /// The same `Idempotency-Key` was used before with a different request.
    IdempotencyKeyReused,
    /// No valid API key / JWT / tracking token.
    Unauthorized,
    /// A webhook whose signature does not verify.
    InvalidSignature,
    /// The caller's role may not do this.
    Forbidden,
    /// No such endpoint or resource.
    NotFound,
    /// No such order (or not visible with the credentials given).
    OrderNotFound,
    /// The order has no such dispute.
    DisputeNotFound,
    /// The order has no such return.
    ReturnNotFound,
    /// The path exists, the method does not (`Allow` lists those that do).
    MethodNotAllowed,
    /// The `Accept` header admits nothing this endpoint produces.
    NotAcceptable,
    /// The order is already cancelled.
    OrderAlreadyCancelled,
    /// The order's state does not allow this command now.
    InvalidTransition,
    /// The order can no longer be edited.
    NotEditable,
    /// The order kept changing while the command was decided; retry with the same key.
    ConcurrencyConflict,
    /// A webhook arrived before an event it depends on; the sender redelivers.
    WebhookTooEarly,
    /// A webhook about something not recorded yet; the sender redelivers.
    NotYetKnown,
    /// The order has no stock reservation to act on.
    NothingReserved,
    /// The location does not hold enough stock for the movement.
    NotEnoughStock,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// Too many requests; `Retry-After` says when to come back.
    RateLimited,
    /// Something failed on our side; nothing internal is returned.
    Internal,
    /// The payment gateway did not answer.
    GatewayUnavailable,
    /// The request ran past the request timeout; safe to retry.
    Timeout,
    /// A store the endpoint needs is unavailable; retry later.
    Unavailable,
    /// The event store cannot be reached; retry with the same `Idempotency-Key`.
    DatabaseUnavailable,
    /// Webhooks of this kind have no secret configured.
    WebhooksNotConfigured,
    /// The view holding the answer lost its data and is being filled again from the event log;
    /// the order exists. Retry after `Retry-After`.
    ViewCatchingUp,
}

impl ProblemType {
    /// Every type, in the order the documents list them.
    pub const ALL: [ProblemType; 34] = [
        Self::ValidationFailed,
        Self::MalformedJson,
        Self::MalformedRequest,
        Self::MalformedWebhook,
        Self::DuplicateKey,
        Self::MissingIdempotencyKey,
        Self::IdempotencyKeyReused,
        Self::Unauthorized,
        Self::InvalidSignature,
        Self::Forbidden,
        Self::NotFound,
        Self::OrderNotFound,
        Self::DisputeNotFound,
        Self::ReturnNotFound,
        Self::MethodNotAllowed,
        Self::NotAcceptable,
        Self::OrderAlreadyCancelled,
        Self::InvalidTransition,
        Self::NotEditable,
        Self::ConcurrencyConflict,
        Self::WebhookTooEarly,
        Self::NotYetKnown,
        Self::NothingReserved,
        Self::NotEnoughStock,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RateLimited,
        Self::Internal,
        Self::GatewayUnavailable,
        Self::Timeout,
        Self::Unavailable,
        Self::DatabaseUnavailable,
        Self::WebhooksNotConfigured,
        Self::ViewCatchingUp,
    ];

    /// The slug at the end of `type`.
    pub const fn slug(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation-failed",
            Self::MalformedJson => "malformed-json",
            Self::MalformedRequest => "malformed-request",
            Self::MalformedWebhook => "malformed-webhook",
            Self::DuplicateKey => "duplicate-key",
            Self::MissingIdempotencyKey => "missing-idempotency-key",
            Self::IdempotencyKeyReused => "idempotency-key-reused",
            Self::Unauthorized => "unauthorized",
            Self::InvalidSignature => "invalid-signature",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::OrderNotFound => "order-not-found",
            Self::DisputeNotFound => "dispute-not-found",
            Self::ReturnNotFound => "return-not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::NotAcceptable => "not-acceptable",
            Self::OrderAlreadyCancelled => "order-already-cancelled",
            Self::InvalidTransition => "invalid-transition",
            Self::NotEditable => "not-editable",
            Self::ConcurrencyConflict => "concurrency-conflict",
            Self::WebhookTooEarly => "webhook-too-early",
            Self::NotYetKnown => "not-yet-known",
            Self::NothingReserved => "nothing-reserved",
            Self::NotEnoughStock => "not-enough-stock",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::RateLimited => "rate-limited",
            Self::Internal => "internal",
            Self::GatewayUnavailable => "gateway-unavailable",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::DatabaseUnavailable => "database-unavailable",
            Self::WebhooksNotConfigured => "webhooks-not-configured",
            Self::ViewCatchingUp => "view-catching-up",
        }
    }

    /// The one HTTP status this type is answered with.
    pub const fn status(self) -> u16 {
        match self {
            Self::MalformedJson
            | Self::MalformedRequest
            | Self::MalformedWebhook
            | Self::DuplicateKey
            | Self::MissingIdempotencyKey => 400,
            Self::Unauthorized | Self::InvalidSignature => 401,
            Self::Forbidden => 403,
            Self::NotFound | Self::OrderNotFound | Self::DisputeNotFound | Self::ReturnNotFound => {
                404
            }
            Self::MethodNotAllowed => 405,
            Self::NotAcceptable => 406,
            Self::OrderAlreadyCancelled
            | Self::InvalidTransition
            | Self::NotEditable
            | Self::ConcurrencyConflict
            | Self::WebhookTooEarly
            | Self::NotYetKnown
            | Self::NothingReserved
            | Self::NotEnoughStock => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ValidationFailed | Self::IdempotencyKeyReused => 422,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::GatewayUnavailable => 502,
            Self::Timeout
            | Self::Unavailable
            | Self::DatabaseUnavailable
            | Self::WebhooksNotConfigured
            | Self::ViewCatchingUp => 503,
        }
    }

    /// The problem's `title`: the same for every occurrence of the type.
    pub const fn title(self) -> &'static str {
        match self {
            Self::ValidationFailed => "Validation failed",
            Self::MalformedJson => "Malformed JSON",
            Self::MalformedRequest => "Malformed request",
            Self::MalformedWebhook => "Malformed webhook",
            Self::DuplicateKey => "Duplicate key in JSON",
            Self::MissingIdempotencyKey => "Missing or invalid Idempotency-Key",
            Self::IdempotencyKeyReused => "Idempotency-Key reused",
            Self::Unauthorized => "Unauthorized",
            Self::InvalidSignature => "Invalid webhook signature",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::OrderNotFound => "Order not found",
            Self::DisputeNotFound => "Dispute not found",
            Self::ReturnNotFound => "Return not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::NotAcceptable => "Not acceptable",
            Self::OrderAlreadyCancelled => "Order already cancelled",
            Self::InvalidTransition => "The order cannot do that now",
            Self::NotEditable => "The order can no longer be edited",
            Self::ConcurrencyConflict => "Concurrency conflict",
            Self::WebhookTooEarly => "Webhook arrived before an event it depends on",
            Self::NotYetKnown => "Not known yet",
            Self::NothingReserved => "Nothing reserved",
            Self::NotEnoughStock => "Not enough stock",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::RateLimited => "Too many requests",
            Self::Internal => "Internal error",
            Self::GatewayUnavailable => "The payment gateway did not answer",
            Self::Timeout => "Request timed out",
            Self::Unavailable => "Service unavailable",
            Self::DatabaseUnavailable => "Database unavailable",
            Self::WebhooksNotConfigured => "Webhooks are not configured",
            Self::ViewCatchingUp => "The view is catching up with the event log",
        }
    }

    /// `https://waybill.dev/problems/<slug>`.
    pub fn uri(self) -> String {
        format!("{TYPE_BASE}{}", self.slug())
    }

    /// The type with this slug.
    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.slug() == slug)
    }

    /// The generic type for a status an error response carries without a more specific one
    /// (what the safety net of both APIs answers when a framework layer refuses a request).
    pub const fn for_status(status: u16) -> Self {
        match status {
            400 => Self::MalformedRequest,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            406 => Self::NotAcceptable,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::ValidationFailed,
            429 => Self::RateLimited,
            502 => Self::GatewayUnavailable,
            503 => Self::Unavailable,
            408 | 504 => Self::Timeout,
            _ => Self::Internal,
        }
    }

    /// The slugs answered with `status`, for documents listing what a status means.
    pub fn slugs_with_status(status: u16) -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|t| t.status() == status)
            .map(Self::slug)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_type_has_one_slug_and_the_list_is_complete() {
        let slugs: HashSet<&str> = ProblemType::ALL.iter().map(|t| t.slug()).collect();
        assert_eq!(slugs.len(), ProblemType::ALL.len(), "a slug is used twice");
        for t in ProblemType::ALL {
            assert_eq!(ProblemType::from_slug(t.slug()), Some(t));
            assert!(t.uri().ends_with(t.slug()));
            assert!((400..600).contains(&t.status()), "{t:?}");
        }
    }

    #[test]
    fn validation_failed_is_422_and_unreadable_requests_are_400_with_other_types() {
        assert_eq!(ProblemType::ValidationFailed.status(), 422);
        for slug in ProblemType::slugs_with_status(400) {
            assert_ne!(slug, "validation-failed");
        }
        assert_eq!(
            ProblemType::slugs_with_status(400),
            [
                "malformed-json",
                "malformed-request",
                "malformed-webhook",
                "duplicate-key",
                "missing-idempotency-key"
            ]
        );
    }

    #[test]
    fn the_generic_type_of_a_status_has_that_status() {
        for status in [
            400, 401, 403, 404, 405, 406, 413, 415, 422, 429, 500, 502, 503,
        ] {
            assert_eq!(ProblemType::for_status(status).status(), status);
        }
    }
}
