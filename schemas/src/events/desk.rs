//! What was done about an exceptions-desk entry. The desk (see `projectors/src/desk/`) finds
//! orders stuck or at risk on the event stream and opens entries; resolving one, by an agent or
//! automatically when its condition clears, is this event in the entry's own stream
//! `desk-<entry id>`, appended at expected version 0, so an entry is resolved exactly once and
//! the actor is recorded like any other command's.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::OrderId;

/// Stream prefix of desk entries.
pub const DESK_STREAM_PREFIX: &str = "desk-";

/// The stream of one desk entry.
pub fn desk_stream_id(entry_id: Uuid) -> String {
    format!("{DESK_STREAM_PREFIX}{entry_id}")
}

/// The entry id of a desk stream, if `stream_id` is one.
pub fn desk_entry_of(stream_id: &str) -> Option<Uuid> {
    stream_id
        .strip_prefix(DESK_STREAM_PREFIX)
        .and_then(|raw| Uuid::parse_str(raw).ok())
}

/// `DeskEntryResolved` v1: an exceptions-desk entry was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeskEntryResolved {
    pub entry_id: Uuid,
    /// The entry's kind (`stage_overdue`, `carrier_exception`, `dlq_message`, ...).
    pub kind: String,
    /// The order the entry is about, when it is about one.
    pub order_id: Option<OrderId>,
    /// What was done: `retry_handoff`, `reroute`, `extend`, `void`, `contact_customer`,
    /// `replay`, `discard`, `acknowledge`, or `cleared` (the condition went away by itself).
    pub action: String,
    /// The agent's note, or why the desk resolved it by itself.
    pub note: Option<String>,
    /// True when the desk resolved it without an agent.
    pub automatic: bool,
    pub resolved_at: DateTime<Utc>,
}
