use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{Money, OrderId};

/// `ChargebackOpened` v1: the card holder disputed `amount` of `capture_id` with their bank.
/// The money is contested, not yet lost: the ledger counts it as disputed until the dispute is
/// won or lost. `reason_code` is the network's (internal, never shown to the customer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargebackOpened {
    pub order_id: OrderId,
    /// The gateway's dispute id (`dp_…` in the sandbox).
    pub dispute_id: String,
    pub capture_id: String,
    pub amount: Money,
    pub reason_code: String,
    pub evidence_due_by: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
}

/// `ChargebackEvidenceSubmitted` v1: an agent or finance user sent evidence for the dispute and
/// the gateway accepted it (the text is internal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargebackEvidenceSubmitted {
    pub order_id: OrderId,
    pub dispute_id: String,
    pub evidence_id: Uuid,
    pub text: String,
    pub submitted_by: String,
    pub submitted_at: DateTime<Utc>,
}

/// `ChargebackWon` v1: the bank decided for the merchant; nothing is reversed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargebackWon {
    pub order_id: OrderId,
    pub dispute_id: String,
    pub decided_at: DateTime<Utc>,
}

/// `ChargebackLost` v1: the bank decided for the card holder; `amount` is reversed out of the
/// ledger (captured − refunded − chargebacks lost = net).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargebackLost {
    pub order_id: OrderId,
    pub dispute_id: String,
    pub amount: Money,
    pub decided_at: DateTime<Utc>,
}
