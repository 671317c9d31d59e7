use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{Money, OrderId};

/// How the customer pays, as captured with the order. Card details never reach Waybill: the
/// channel tokenizes them with the gateway and sends the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaymentMethod {
    /// A gateway card token (in the sandbox: `tok_` + a test card number).
    Card { token: String },
    /// Already paid to the channel (marketplaces, POS cash): nothing to authorize.
    Prepaid { reference: String },
}

/// `PaymentChallengeRequired` v1: the issuer wants 3-D Secure; the customer must complete the
/// challenge at `challenge_url` before `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentChallengeRequired {
    pub order_id: OrderId,
    pub authorization_id: String,
    pub challenge_url: String,
    pub expires_at: DateTime<Utc>,
}

/// `PaymentAuthorized` v1: the gateway holds `amount` on the customer's card until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentAuthorized {
    pub order_id: OrderId,
    pub authorization_id: String,
    pub amount: Money,
    /// True when the customer passed a 3-D Secure challenge.
    pub three_ds: bool,
    pub expires_at: DateTime<Utc>,
    pub authorized_at: DateTime<Utc>,
}

/// `PaymentDeclined` v1: the gateway refused the authorization (or the 3-D Secure challenge
/// failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentDeclined {
    pub order_id: OrderId,
    pub authorization_id: Option<String>,
    /// The gateway's decline code, e.g. `card_declined`, `insufficient_funds`.
    pub code: String,
    pub message: String,
    pub declined_at: DateTime<Utc>,
}

/// `PaymentCaptured` v1: money moved; `amount` never exceeds what was authorized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentCaptured {
    pub order_id: OrderId,
    pub authorization_id: String,
    pub capture_id: String,
    pub amount: Money,
    pub captured_at: DateTime<Utc>,
}

/// `PaymentVoided` v1: the authorization was released without capturing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentVoided {
    pub order_id: OrderId,
    pub authorization_id: String,
    pub reason: String,
    pub voided_at: DateTime<Utc>,
}

/// `PaymentCaptureFailed` v1: the gateway refused for good to capture `amount` from the order's
/// authorization (voided or expired at the gateway, declined, unknown to it): retrying cannot
/// help, so nothing more is captured from it. The order's remaining fulfillment is held and an
/// agent must resolve the payment (see write-side/FULFILLMENT.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentCaptureFailed {
    pub order_id: OrderId,
    pub authorization_id: String,
    /// What the flow asked to capture.
    pub amount: Money,
    /// The gateway's refusal code (`authorization_voided`, `authorization_expired`, …).
    pub code: String,
    pub message: String,
    pub failed_at: DateTime<Utc>,
}

/// `PaymentAuthorizationExpired` v1: the hold lapsed before it was captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentAuthorizationExpired {
    pub order_id: OrderId,
    pub authorization_id: String,
    pub expired_at: DateTime<Utc>,
}
