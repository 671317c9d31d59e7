//! `POST /v1/desk/entries/{id}/resolve`: an agent resolves a desk entry
//! (`{"action": "retry_handoff", "note": "..."}`). Where the action exists
//! ([`Action::effect`]) it is done here: `void` cancels the order with the same decision as
//! `POST /v1/orders/{id}/cancel`, `retry_handoff` asks the carrier again and records it on the
//! order. The action's events and the `DeskEntryResolved` event (the entry's stream `desk-<id>`
//! at expected version 0) are committed in one transaction with the idempotency record, so a
//! double click resolves once, the action and its record cannot part, and the actor (the
//! agent) and correlation id are the same on both. The other actions only record the decision,
//! for the reason `Action::effect` gives. The desk projector applies the event to the entry.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;
use uuid::Uuid;
use waybill_schemas::events::desk::desk_stream_id;
use waybill_schemas::events::{CancelReason, DeskEntryResolved};
use waybill_schemas::{EventEnvelope, OrderEvent, OrderId};

use super::{CommandContext, CommandError, CommandServices, Reply, CONFLICT_RETRIES};
use crate::commit_batcher::{CommitOutcome, CommitRequest};
use crate::desk::{entries, Action, Effect, Entry, EntryStatus};
use crate::domain::fields::{object, Errors, BODY};
use crate::domain::fulfillment::{Fulfillment, FulfillmentCommand};
use crate::domain::{CancelOrder, FieldError, Order, OrderCommand, ValidationErrors};
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

/// The answer to a resolution.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResolveResponse {
    pub entry_id: Uuid,
    pub status: EntryStatus,
    pub action: Action,
    /// The agent's client id.
    pub resolved_by: String,
    pub resolved_at: DateTime<Utc>,
    /// The `DeskEntryResolved` event that records it (stream `desk-<entry id>`).
    pub event_id: Uuid,
    /// What the resolution did besides recording it (`records the decision only` when the
    /// action has nothing Waybill can do).
    pub effect: String,
    /// The events the action appended to the order's stream, in order (empty when it only
    /// records).
    pub order_events: Vec<OrderEventRef>,
    /// The order's consistency token after the action, when it appended to the order.
    pub consistency_token: Option<String>,
}

/// One event an action appended to the order's stream.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderEventRef {
    pub event_id: Uuid,
    pub event_type: String,
    pub version: i64,
}

/// What an action appends to the entry's order: its events and the order's version after them.
struct Acted {
    order_id: OrderId,
    events: Vec<EventEnvelope>,
    version: i64,
    /// Whether the order's flows must look at it again (a cancellation: void, release).
    wake: bool,
}

/// Resolves one entry, doing what its action does.
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
        return Err(action_error(format!(
            "a {} entry takes one of: {}",
            entry.kind.as_str(),
            allowed.join(", ")
        )));
    }
    if let Some(done) = &entry.resolution {
        return Err(already_resolved(entry_id, done.action, &done.resolved_by));
    }
    let span =
        tracing::info_span!("desk.resolve", entry_id = %entry_id, action = request.action.as_str());
    for _ in 0..CONFLICT_RETRIES {
        let now = Utc::now();
        let acted = act(services, ctx, &entry, &request, now)
            .instrument(span.clone())
            .await?;
        let event = DeskEntryResolved {
            entry_id,
            kind: entry.kind.as_str().to_owned(),
            order_id: entry.order_id.map(OrderId::from_uuid),
            action: request.action.as_str().to_owned(),
            note: request.note.clone(),
            automatic: false,
            resolved_at: now,
        };
        let resolution = new_events(vec![OrderEvent::DeskEntryResolved(event)], now);
        let event_id = resolution[0].event_id;
        let recorded = stamp(
            &desk_stream_id(entry_id),
            0,
            resolution,
            &ctx.meta(None),
            now,
        );
        let response = ResolveResponse {
            entry_id,
            status: EntryStatus::Resolved,
            action: request.action,
            resolved_by: ctx.client_id.clone(),
            resolved_at: now,
            event_id,
            effect: request.action.effect().describe().to_owned(),
            order_events: acted.as_ref().map_or_else(Vec::new, |a| {
                a.events
                    .iter()
                    .map(|e| OrderEventRef {
                        event_id: e.event_id,
                        event_type: e.event_type.clone(),
                        version: e.stream_version,
                    })
                    .collect()
            }),
            consistency_token: acted
                .as_ref()
                .map(|a| super::responses::token(a.order_id, a.version)),
        };
        let stored = StoredResponse {
            status: 200,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            // A plain struct of strings, ids and times always serializes.
            body: Bytes::from(serde_json::to_vec(&response).unwrap_or_default()),
        };
        let wake_flow = acted.as_ref().filter(|a| a.wake).map(|a| a.order_id);
        let mut events = acted.map_or_else(Vec::new, |a| a.events);
        events.extend(recorded);
        let commit = CommitRequest {
            idempotency: ctx.record(&stored),
            channel_order: None,
            events,
            wake_flow,
        };
        match services
            .batcher
            .commit(commit)
            .instrument(span.clone())
            .await
        {
            CommitOutcome::Committed => return Ok(Reply::Fresh(stored)),
            CommitOutcome::IdempotencyKeyTaken => return services.answer_from_stored(ctx).await,
            // Resolved by someone else (or by the desk) meanwhile, or the order moved on: the
            // entry's stream says which.
            CommitOutcome::StreamConflict { .. } => {
                if desk_stream_taken(services, entry_id).await? {
                    return Err(already_resolved(
                        entry_id,
                        request.action,
                        "another resolution",
                    ));
                }
            }
            other => return Err(other.into()),
        }
    }
    match entry.order_id {
        Some(order) => Err(CommandError::Conflict(OrderId::from_uuid(order))),
        None => Err(CommandError::Internal(
            "the desk entry's stream kept conflicting".to_owned(),
        )),
    }
}

/// Whether the entry's stream holds a resolution (the desk projector may not have applied it
/// to the entry yet).
async fn desk_stream_taken(
    services: &CommandServices,
    entry_id: Uuid,
) -> Result<bool, CommandError> {
    Ok(!services
        .store
        .read_stream(&desk_stream_id(entry_id), 1, Some(1))
        .await?
        .is_empty())
}

/// Does what `request.action` does to the entry's order (nothing for an action that only
/// records), deciding on the order as it is now.
async fn act(
    services: &CommandServices,
    ctx: &CommandContext,
    entry: &Entry,
    request: &ResolveBody,
    now: DateTime<Utc>,
) -> Result<Option<Acted>, CommandError> {
    let effect = request.action.effect();
    if let Effect::Recorded(_) = effect {
        return Ok(None);
    }
    let order_id = entry.order_id.map(OrderId::from_uuid).ok_or_else(|| {
        action_error(format!(
            "{} needs an order and this entry is about none",
            request.action.as_str()
        ))
    })?;
    let stream = services
        .store
        .read_stream(&order_id.stream_id(), 1, None)
        .await?;
    let events: Vec<OrderEvent> = stream
        .iter()
        .map(|e| e.decode())
        .collect::<Result<_, _>>()
        .map_err(|e| CommandError::Internal(e.to_string()))?;
    let order = Order::from_events(&events);
    let channel = order.state().map(|s| s.channel());
    let why = match &request.note {
        Some(note) => format!("exceptions desk, {}: {note}", entry.kind.as_str()),
        None => format!("exceptions desk, {}", entry.kind.as_str()),
    };
    let (decided, version, wake) = match effect {
        Effect::CancelOrder => {
            let command = OrderCommand::Cancel {
                order_id,
                cancellation_id: Uuid::now_v7(),
                cancel: CancelOrder {
                    reason: CancelReason::Other,
                    note: Some(why),
                },
            };
            let decided = order
                .handle(&command, now)
                .map_err(|e| super::refusal(order_id, e))?;
            (decided, order.version(), true)
        }
        Effect::RetryHandoff => {
            let shipment_id = entry.details["shipment_id"]
                .as_str()
                .ok_or_else(|| action_error("this entry names no parcel to hand over again"))?
                .to_owned();
            let state = Fulfillment::from_events(&events);
            let tracking = state
                .shipment(&shipment_id)
                .map(|s| s.created.tracking_number.clone())
                .ok_or_else(|| CommandError::Refused(format!("no parcel {shipment_id}")))?;
            let decided = state
                .handle(
                    &FulfillmentCommand::RetryHandoffByAgent {
                        shipment_id: shipment_id.clone(),
                        detail: format!(
                            "{} asked the carrier to attempt parcel {tracking} again ({why})",
                            ctx.client_id
                        ),
                    },
                    now,
                )
                .map_err(|e| CommandError::Refused(e.to_string()))?;
            let logistics = services.logistics.as_ref().ok_or_else(|| {
                CommandError::Upstream("no carrier is configured for the command API".to_owned())
            })?;
            // One retry at the carrier per entry, however often this request is repeated.
            logistics
                .retry_handoff(&format!("desk-{}:retry", entry.entry_id), &tracking)
                .await
                .map_err(|e| CommandError::Upstream(e.to_string()))?;
            (decided, state.version, false)
        }
        Effect::Recorded(_) => return Ok(None),
    };
    let events = stamp(
        &order_id.stream_id(),
        version,
        new_events(decided, now),
        &ctx.meta(channel),
        now,
    );
    let version = events.last().map_or(version, |e| e.stream_version);
    Ok(Some(Acted {
        order_id,
        events,
        version,
        wake,
    }))
}

fn action_error(detail: impl Into<String>) -> CommandError {
    CommandError::Validation(ValidationErrors(vec![FieldError {
        field: "action".to_owned(),
        detail: detail.into(),
    }]))
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
