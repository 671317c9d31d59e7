//! `POST /v1/desk/entries/{id}/resolve`: an agent records what was done about a desk entry
//! (`{"action": "retry_handoff", "note": "..."}`). The decision is a `DeskEntryResolved` event
//! in the entry's stream `desk-<id>` at expected version 0, committed with the idempotency
//! record, so a double click resolves once and the actor is on the event. The desk projector
//! applies the event to the entry.

use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;
use uuid::Uuid;
use waybill_schemas::events::desk::desk_stream_id;
use waybill_schemas::events::DeskEntryResolved;
use waybill_schemas::{OrderEvent, OrderId};

use super::{CommandContext, CommandError, CommandServices, Reply};
use crate::commit_batcher::{CommitOutcome, CommitRequest};
use crate::desk::{entries, Action, EntryStatus};
use crate::domain::fields::{object, Errors, BODY};
use crate::event_store::{new_events, stamp};
use crate::idempotency::{self, StoredResponse};

/// Longest note kept.
const MAX_NOTE: usize = 1000;

/// A parsed resolution request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveBody {
    pub action: Action,
    pub note: Option<String>,
}

/// The answer to a resolution.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResolveResponse {
    pub entry_id: Uuid,
    pub status: EntryStatus,
    pub action: Action,
    /// The agent's client id.
    pub resolved_by: String,
    pub resolved_at: chrono::DateTime<Utc>,
    /// The `DeskEntryResolved` event that records it (stream `desk-<entry id>`).
    pub event_id: Uuid,
}

/// Reads `{"action": ..., "note": ...}`; `action` must be one the agent may take (not
/// `cleared`, which only the desk records).
pub fn parse_resolution(body: &Value) -> Result<ResolveBody, CommandError> {
    let mut errors = Errors::default();
    let parsed = object(body, BODY.to_owned(), &mut errors).and_then(|o| {
        let action = o
            .required_str("action", 32, &mut errors)
            .and_then(|raw| match Action::parse(&raw) {
                Some(action) if action != Action::Cleared => Some(action),
                _ => {
                    let known: Vec<&str> = Action::ALL
                        .iter()
                        .filter(|a| **a != Action::Cleared)
                        .map(|a| a.as_str())
                        .collect();
                    errors.push(
                        o.path_of("action"),
                        format!("must be one of: {}", known.join(", ")),
                    );
                    None
                }
            });
        let note = o.optional_str("note", MAX_NOTE, &mut errors);
        Some(ResolveBody {
            action: action?,
            note: note.ok()?,
        })
    });
    errors.finish(parsed).map_err(CommandError::Validation)
}

/// Resolves one entry.
pub async fn resolve_desk_entry(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_entry_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let entry_id = Uuid::parse_str(raw_entry_id)
        .map_err(|_| CommandError::EntryNotFound(raw_entry_id.to_owned()))?;
    let request = parse_resolution(body)?;
    if let Some(record) =
        idempotency::find(&services.pool, &ctx.client_id, &ctx.idempotency_key).await?
    {
        return ctx.answer_from(record);
    }
    let entry = entries::get(&services.pool, entry_id)
        .await?
        .ok_or_else(|| CommandError::EntryNotFound(raw_entry_id.to_owned()))?;
    if !entry.kind.allowed().contains(&request.action) {
        let allowed: Vec<&str> = entry.kind.allowed().iter().map(|a| a.as_str()).collect();
        return Err(CommandError::Validation(crate::domain::ValidationErrors(
            vec![crate::domain::FieldError {
                field: "action".to_owned(),
                detail: format!(
                    "a {} entry takes one of: {}",
                    entry.kind.as_str(),
                    allowed.join(", ")
                ),
            }],
        )));
    }
    if let Some(done) = &entry.resolution {
        return Err(already_resolved(entry_id, done.action, &done.resolved_by));
    }
    let now = Utc::now();
    let event = DeskEntryResolved {
        entry_id,
        kind: entry.kind.as_str().to_owned(),
        order_id: entry.order_id.map(OrderId::from_uuid),
        action: request.action.as_str().to_owned(),
        note: request.note,
        automatic: false,
        resolved_at: now,
    };
    let events = new_events(vec![OrderEvent::DeskEntryResolved(event)], now);
    let event_id = events[0].event_id;
    let stamped = stamp(&desk_stream_id(entry_id), 0, events, &ctx.meta(None), now);
    let response = ResolveResponse {
        entry_id,
        status: EntryStatus::Resolved,
        action: request.action,
        resolved_by: ctx.client_id.clone(),
        resolved_at: now,
        event_id,
    };
    let stored = StoredResponse {
        status: 200,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        // A plain struct of strings, ids and a time always serializes.
        body: Bytes::from(serde_json::to_vec(&response).unwrap_or_default()),
    };
    let commit = CommitRequest {
        idempotency: ctx.record(&stored),
        channel_order: None,
        events: stamped,
        wake_flow: None,
    };
    let span =
        tracing::info_span!("desk.resolve", entry_id = %entry_id, action = request.action.as_str());
    match services.batcher.commit(commit).instrument(span).await {
        CommitOutcome::Committed => Ok(Reply::Fresh(stored)),
        CommitOutcome::IdempotencyKeyTaken => services.answer_from_stored(ctx).await,
        // Resolved by someone else (or by the desk) meanwhile.
        CommitOutcome::StreamConflict { .. } => Err(already_resolved(
            entry_id,
            request.action,
            "another resolution",
        )),
        other => Err(CommandError::Internal(format!("{other:?}"))),
    }
}

fn already_resolved(entry_id: Uuid, action: Action, by: &str) -> CommandError {
    CommandError::Refused(format!(
        "desk entry {entry_id} is already resolved ({} by {by})",
        action.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::commands::invalid_fields;

    #[test]
    fn a_resolution_names_an_action_an_agent_may_take() {
        let ok =
            parse_resolution(&json!({"action": "retry_handoff", "note": "called DHL"})).unwrap();
        assert_eq!(ok.action, Action::RetryHandoff);
        assert_eq!(ok.note.as_deref(), Some("called DHL"));
        assert_eq!(
            invalid_fields(parse_resolution(&json!({"action": "cleared"})).unwrap_err()),
            vec!["action"]
        );
        assert_eq!(
            invalid_fields(parse_resolution(&json!({"note": 5})).unwrap_err()),
            vec!["action", "note"]
        );
    }
}
