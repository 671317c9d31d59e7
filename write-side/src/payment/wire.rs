//! The JSON bodies of Waybill's gateway protocol, shared by the HTTP adapter and the sandbox so
//! the two cannot drift apart. `write-side/PAYMENT-SANDBOX.md` describes them for people.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use waybill_schemas::{Money, OrderId};

/// Header that carries the caller's idempotency key on every POST.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Header set on a response replayed from the idempotency store.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// Content type of every refusal.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// Prefix of every problem `type`.
pub const PROBLEM_TYPE_BASE: &str = "https://waybill.dev/problems/gateway/";

/// `POST /v1/authorizations`.
#[derive(Debug, Serialize)]
pub struct AuthorizeBody<'a> {
    pub order_id: OrderId,
    pub amount: Money,
    pub token: &'a str,
}

/// `POST /v1/authorizations/{id}/capture` and `POST /v1/captures/{id}/refunds`.
#[derive(Debug, Serialize)]
pub struct AmountBody {
    pub amount: Money,
}

/// `POST /v1/challenges/{id}/complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeCompletion {
    pub result: ChallengeResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeResult {
    Pass,
    Fail,
}

/// Where an authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationStatus {
    /// Waiting for the customer's 3-D Secure challenge.
    ChallengeRequired,
    /// Held; capturable until `expires_at`.
    Authorized,
    /// Refused (at once or by a failed or expired challenge).
    Declined,
    /// Released by a void.
    Voided,
    /// The hold lapsed before it was fully captured.
    Expired,
}

/// An authorization as the gateway reports it (answer to authorize, void and GET).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    pub id: String,
    pub order_id: OrderId,
    pub status: AuthorizationStatus,
    pub amount: Money,
    /// Sum of the captures so far.
    pub captured: Money,
    pub three_ds: bool,
    /// End of the hold when authorized, end of the challenge while one is pending.
    pub expires_at: Option<DateTime<Utc>>,
    pub challenge_url: Option<String>,
    pub decline_code: Option<String>,
    pub decline_message: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A capture (answer to capture).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    pub id: String,
    pub authorization_id: String,
    pub amount: Money,
    /// Sum of the refunds so far.
    pub refunded: Money,
    pub created_at: DateTime<Utc>,
}

/// A refund (answer to refund).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub capture_id: String,
    pub amount: Money,
    pub created_at: DateTime<Utc>,
}

/// A refusal, `application/problem+json`, with a stable snake_case `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
    /// The request field that was wrong, for `validation_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: u16, code: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{PROBLEM_TYPE_BASE}{}", code.replace('_', "-")),
            title: title.to_owned(),
            status,
            code: code.to_owned(),
            detail: detail.into(),
            field: None,
        }
    }
}
