use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::OrderId;

/// `RiskAssessed` v1: the fraud/risk rules scored the order. The reasons say which rules fired
/// and how many points each added, so an agent can see why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskAssessed {
    pub order_id: OrderId,
    pub decision: RiskDecision,
    /// Sum of the points of every rule that fired.
    pub score: u32,
    pub reasons: Vec<RiskReason>,
    pub assessed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskDecision {
    Accept,
    Review,
    Reject,
}

impl RiskDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Review => "review",
            Self::Reject => "reject",
        }
    }
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskReason {
    /// Stable rule name, e.g. `velocity_email`, `amount_threshold`, `blocklist_card`.
    pub rule: String,
    pub points: u32,
    /// Human-readable detail, e.g. "4 orders from this email in the last hour (limit 3)".
    pub detail: String,
}

/// `RiskReviewResolved` v1: an agent decided an order that was held for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskReviewResolved {
    pub order_id: OrderId,
    pub decision: ReviewDecision,
    /// The agent's client id.
    pub reviewer: String,
    pub note: Option<String>,
    pub resolved_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Approve,
    Reject,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }
}
