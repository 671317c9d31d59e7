//! `NotificationResendRequested`: an agent asked for a customer message to be sent again (the
//! customer lost the email, the text never arrived). It sits in the order's stream, so the
//! order's history shows it with the agent as its actor; the notifications view answers it by
//! sending the latest message of that kind once more, exactly once per request (the event's id
//! is the new message's identity).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::notifications::{Medium, NotificationKind};
use crate::values::OrderId;

/// `NotificationResendRequested` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationResendRequested {
    pub order_id: OrderId,
    /// The request's own id (chosen by the command API).
    pub resend_id: Uuid,
    /// Which message: the latest one of this kind the order had.
    pub kind: NotificationKind,
    /// Only by this medium; `None`: by every medium the customer's preferences allow.
    pub medium: Option<Medium>,
    /// Why, in the agent's words.
    pub reason: Option<String>,
    pub requested_at: DateTime<Utc>,
}
