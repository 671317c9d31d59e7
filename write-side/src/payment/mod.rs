//! Payment: the card gateway as the checkout process manager sees it.
//!
//! [`PaymentGateway`] is the port: authorize, capture, void and refund, each carrying the
//! caller's idempotency key so a retried step never charges twice. [`HttpGateway`] is the adapter
//! that speaks Waybill's gateway protocol over HTTP ([`wire`] holds its JSON bodies), and
//! [`sandbox`] is our own simulated gateway that serves that protocol, chooses outcomes by test
//! card number and sends signed webhooks, which [`webhook`] signs, verifies and parses. The
//! protocol and the test cards are documented in `write-side/PAYMENT-SANDBOX.md`.

pub mod http;
pub mod sandbox;
pub mod webhook;
pub mod wire;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use waybill_schemas::{Money, OrderId};

pub use http::HttpGateway;

/// A card gateway. Object safe: the process manager holds an `Arc<dyn PaymentGateway>`.
///
/// Every call is idempotent under its `idempotency_key`: repeating a call with the same key and
/// the same request returns the first outcome and moves no more money.
pub trait PaymentGateway: Send + Sync + 'static {
    fn authorize(
        &self,
        request: AuthorizeRequest,
    ) -> BoxFuture<'_, Result<AuthorizeOutcome, GatewayError>>;
    fn capture(
        &self,
        request: CaptureRequest,
    ) -> BoxFuture<'_, Result<CaptureOutcome, GatewayError>>;
    fn void(&self, request: VoidRequest) -> BoxFuture<'_, Result<VoidOutcome, GatewayError>>;
    fn refund(&self, request: RefundRequest) -> BoxFuture<'_, Result<RefundOutcome, GatewayError>>;
}

/// Hold `amount` on the card behind `token` for `order_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub idempotency_key: String,
    pub order_id: OrderId,
    pub amount: Money,
    pub token: String,
}

/// What the gateway decided about an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// `amount` is held until `expires_at`.
    Authorized {
        authorization_id: String,
        amount: Money,
        expires_at: DateTime<Utc>,
    },
    /// The issuer wants 3-D Secure: the customer completes the challenge at `challenge_url`
    /// before `expires_at`; the result arrives as an `authorization.succeeded` or
    /// `authorization.failed` webhook.
    ChallengeRequired {
        authorization_id: String,
        challenge_url: String,
        expires_at: DateTime<Utc>,
    },
    /// Refused; `code` is the gateway's decline code (`card_declined`, `insufficient_funds`, …).
    Declined {
        authorization_id: Option<String>,
        code: String,
        message: String,
    },
}

/// Capture `amount` (all or part of what is still uncaptured) of an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    pub idempotency_key: String,
    pub authorization_id: String,
    pub amount: Money,
}

/// Capture refusals that may succeed if asked again later with the same key; every other
/// refusal (`authorization_voided`, `authorization_expired`, `authorization_declined`,
/// `authorization_not_found`, `amount_exceeds_authorized`, or a code we do not know) is a fact
/// about the authorization that retrying cannot change. Timeouts, 5xx and "in progress" are not
/// refusals at all ([`GatewayError::is_retryable`]).
pub const TRANSIENT_CAPTURE_REFUSALS: &[&str] = &["authorization_pending"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureOutcome {
    Captured {
        capture_id: String,
        amount: Money,
    },
    /// The gateway will not capture: `authorization_expired`, `amount_exceeds_authorized`, …
    Refused {
        code: String,
        message: String,
    },
}

/// Whether a capture refusal's `code` is one retrying cannot change (see
/// [`TRANSIENT_CAPTURE_REFUSALS`]).
pub fn is_permanent_capture_refusal(code: &str) -> bool {
    !TRANSIENT_CAPTURE_REFUSALS.contains(&code)
}

/// Release an authorization without capturing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidRequest {
    pub idempotency_key: String,
    pub authorization_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoidOutcome {
    /// Released (also the answer when it was already voided).
    Voided,
    Refused {
        code: String,
        message: String,
    },
}

/// Give back `amount` of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub idempotency_key: String,
    pub capture_id: String,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    Refunded {
        refund_id: String,
        amount: Money,
    },
    /// `amount_exceeds_refundable`, `capture_not_found`, …
    Refused {
        code: String,
        message: String,
    },
}

/// The call did not produce a decision. Whether the gateway acted is unknown for `Timeout`, so
/// the caller retries with the same idempotency key rather than a new one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("the gateway did not answer in time")]
    Timeout,
    #[error("the gateway is unavailable: {0}")]
    Unavailable(String),
    #[error("a request with this idempotency key is still being processed")]
    InProgress,
    #[error("the gateway's answer broke the protocol: {0}")]
    Protocol(String),
}

impl GatewayError {
    /// True when the same request, with the same idempotency key, may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            GatewayError::Timeout | GatewayError::Unavailable(_) | GatewayError::InProgress => true,
            GatewayError::Protocol(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_protocol_errors_are_final() {
        assert!(GatewayError::Timeout.is_retryable());
        assert!(GatewayError::Unavailable("502".into()).is_retryable());
        assert!(GatewayError::InProgress.is_retryable());
        assert!(!GatewayError::Protocol("bad json".into()).is_retryable());
    }

    #[test]
    fn the_gateway_trait_is_object_safe() {
        fn takes(_: Option<std::sync::Arc<dyn PaymentGateway>>) {}
        takes(None);
    }
}
