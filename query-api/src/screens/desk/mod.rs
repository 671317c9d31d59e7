//! The exceptions desk screen (roles agent and admin): `GET /console/desk` lists what the desk
//! found (open by default; `?status=resolved|all`, `?kind=`), each entry with why it is there,
//! the suggested action and a form to record what was done. `POST
//! /console/desk/entries/{id}/resolve` shows what will be recorded and asks for confirmation;
//! the confirmed form (`step=confirm`) is sent to the command API's
//! `POST /v1/desk/entries/{id}/resolve` with the agent's own credential and the idempotency key
//! minted when the list was rendered, so a double click records one resolution. Where the
//! action exists the command API does it with the resolution (`void` cancels the order,
//! `retry_handoff` asks the carrier again: `Action::effect`); the confirmation says what will
//! happen, and the order's page shows the resolution on its timeline.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use waybill_schemas::api_keys::Role;
use waybill_schemas::IdempotencyKey;
use waybill_write_side::desk::{
    entries, Action, Effect, Entry, EntryFilter, EntryKind, EntryStatus,
};

use crate::http::AppState;
use crate::screens::csrf::PostedForm;
use crate::screens::layout::{csrf_field, page};
use crate::screens::{command_client, require_role, url_encode, ScreenError, Session};

/// Who may use the desk.
pub const ROLES: &[Role] = &[Role::Agent, Role::Admin];
/// The desk's path.
pub const PATH: &str = "/console/desk";
/// Entries one page shows.
const PAGE: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(desk_page))
        .route("/console/desk/entries/{id}/resolve", post(resolve))
}

#[derive(Debug, Default, Deserialize)]
pub struct DeskParams {
    pub status: Option<String>,
    pub kind: Option<String>,
    /// The entry just resolved (after the redirect).
    pub done: Option<String>,
    /// The action it was resolved with (until the desk has applied the resolution).
    pub action: Option<String>,
}

/// The entry just resolved, for the notice at the top.
struct Done {
    kind_label: &'static str,
    action: Action,
    /// The desk projector has marked the entry resolved.
    applied: bool,
    order_id: Option<Uuid>,
}

impl Done {
    fn of(entry: &Entry, action: Option<&str>) -> Self {
        let action = entry
            .resolution
            .as_ref()
            .map(|r| r.action)
            .or_else(|| action.and_then(Action::parse))
            .unwrap_or(entry.suggested_action);
        Self {
            kind_label: kind_label(entry.kind),
            action,
            applied: entry.resolution.is_some(),
            order_id: entry.order_id,
        }
    }
}

fn kind_label(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::StageOverdue => "Stage overdue",
        EntryKind::CarrierException => "Carrier exception",
        EntryKind::FailedHandoff => "Failed handoff",
        EntryKind::AuthorizationExpiring => "Authorization expiring",
        EntryKind::ReservationExpiring => "Reservation expiring",
        EntryKind::ReviewDeadline => "Review deadline",
        EntryKind::DeadLetter => "Dead letter",
        EntryKind::Anomaly => "Anomaly",
    }
}

fn pool(state: &AppState) -> Result<&sqlx::PgPool, ScreenError> {
    state
        .config
        .events
        .as_ref()
        .map(|store| store.pool())
        .ok_or_else(|| {
            tracing::error!("the desk screen needs the event store's database (DATABASE_URL)");
            ScreenError::Unavailable
        })
}

fn database(error: sqlx::Error) -> ScreenError {
    tracing::warn!(%error, "reading the desk failed");
    ScreenError::Unavailable
}

/// `GET /console/desk`.
pub async fn desk_page(
    State(state): State<AppState>,
    session: Session,
    Query(params): Query<DeskParams>,
) -> Result<Response, ScreenError> {
    require_role(&session, ROLES)?;
    let status = match params.status.as_deref() {
        None | Some("") | Some("open") => Some(EntryStatus::Open),
        Some("resolved") => Some(EntryStatus::Resolved),
        Some("all") => None,
        Some(_) => {
            return Err(ScreenError::BadInput {
                field: "status",
                detail: "must be open, resolved or all".to_owned(),
            })
        }
    };
    let kind = match params.kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(raw) => Some(EntryKind::parse(raw).ok_or(ScreenError::BadInput {
            field: "kind",
            detail: "is not a kind of desk entry".to_owned(),
        })?),
    };
    let filter = EntryFilter {
        status,
        kind,
        limit: PAGE,
        ..EntryFilter::default()
    };
    let (items, total) = entries::list(pool(&state)?, &filter)
        .await
        .map_err(database)?;
    let done = match params
        .done
        .as_deref()
        .and_then(|raw| Uuid::parse_str(raw).ok())
    {
        Some(id) => entries::get(pool(&state)?, id)
            .await
            .map_err(database)?
            .map(|entry| Done::of(&entry, params.action.as_deref())),
        None => None,
    };
    let status_value = params.status.as_deref().unwrap_or("open");
    let main = html! {
        h1 { "Exceptions desk" }
        p class="hint" { "Orders stuck or at risk and other problems, found on the event stream. Each entry says why it is here and what the desk suggests; recording what you did resolves it (the desk also resolves entries whose problem went away)." }
        @if let Some(done) = &done {
            p class="notice" role="status" id="done" {
                (done.kind_label) " resolved: " (done.action.label()) ". "
                @if done.applied { "The entry is marked resolved." } @else { "The list shows it once the desk has applied it." }
                @if let Some(order) = &done.order_id {
                    " " a href={ "/console/orders/" (order) "#timeline" } id="done-order" { "See it on the order's timeline" }
                }
            }
        }
        form method="get" action=(PATH) class="filters" aria-label="Filter the desk" {
            div {
                label for="f-status" { "Status" }
                select id="f-status" name="status" {
                    @for (value, label) in [("open", "Open"), ("resolved", "Resolved"), ("all", "All")] {
                        option value=(value) selected[status_value == value] { (label) }
                    }
                }
            }
            div {
                label for="f-kind" { "Kind" }
                select id="f-kind" name="kind" {
                    option value="" { "Any" }
                    @for k in EntryKind::ALL {
                        option value=(k.as_str()) selected[kind == Some(*k)] { (kind_label(*k)) }
                    }
                }
            }
            div { button type="submit" { "Show" } }
        }
        p id="desk-count" { (crate::screens::plural::count(u64::try_from(total).unwrap_or(0), "entry", "entries")) @if total > PAGE { " (the newest " (PAGE) " shown)" } }
        @if items.is_empty() {
            p class="notice" { "Nothing on the desk." }
        }
        @for entry in &items { (entry_card(&session, entry)) }
    };
    Ok(page(&session, "Exceptions desk", PATH, main))
}

fn entry_card(session: &Session, entry: &Entry) -> Markup {
    let id = entry.entry_id;
    let heading = format!("entry-{id}-h");
    html! {
        article class="card desk-entry" id={ "entry-" (id) } aria-labelledby=(heading) data-kind=(entry.kind.as_str()) {
            h2 id=(heading) {
                (kind_label(entry.kind)) " "
                @match entry.status {
                    EntryStatus::Open => span class="badge warn" { "open" },
                    EntryStatus::Resolved => span class="badge ok" { "resolved" },
                }
            }
            p class="reason" { (entry.reason) }
            dl class="facts" {
                @if let Some(order) = entry.order_id {
                    dt { "Order" } dd { a href={ "/console/orders/" (order) } { (order) } }
                }
                @if let Some(channel) = &entry.channel { dt { "Channel" } dd { (channel) } }
                dt { "Found" } dd { time datetime=(entry.opened_at.to_rfc3339()) { (entry.opened_at.format("%Y-%m-%d %H:%M:%S UTC")) } }
                dt { "Suggested" } dd class="suggested" { (entry.suggested_action.label()) }
            }
            @if let Some(done) = &entry.resolution {
                p class="resolution" {
                    (done.action.label())
                    @if !matches!(done.action.effect(), Effect::Recorded(_)) { " (" (done.action.effect().describe()) ")" }
                    " by " (done.resolved_by) " at "
                    time datetime=(done.resolved_at.to_rfc3339()) { (done.resolved_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                    @if let Some(note) = &done.note { " — " (note) }
                }
            } @else {
                form method="post" action={ "/console/desk/entries/" (id) "/resolve" } class="resolve" {
                    (csrf_field(session))
                    input type="hidden" name="idempotency_key" value=(Uuid::now_v7().to_string());
                    label for={ "action-" (id) } { "What was done" }
                    select id={ "action-" (id) } name="action" {
                        @for action in &entry.allowed_actions {
                            option value=(action.as_str()) selected[*action == entry.suggested_action] { (action.label()) }
                        }
                    }
                    label for={ "note-" (id) } { "Note (optional)" }
                    input id={ "note-" (id) } name="note" type="text" maxlength="1000";
                    p { button type="submit" { "Resolve…" } }
                }
            }
        }
    }
}

/// What a resolution form asks for, read and checked against the entry.
#[derive(Debug, Clone, PartialEq)]
struct Resolution {
    action: Action,
    note: Option<String>,
    idempotency_key: String,
}

fn read_form(entry: &Entry, form: &HashMap<String, String>) -> Result<Resolution, ScreenError> {
    let key = form
        .get("idempotency_key")
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .ok_or(ScreenError::BadInput {
            field: "idempotency_key",
            detail: "is required".to_owned(),
        })?;
    IdempotencyKey::parse(key).map_err(|error| ScreenError::BadInput {
        field: "idempotency_key",
        detail: error.to_string(),
    })?;
    let action = form
        .get("action")
        .and_then(|a| Action::parse(a.trim()))
        .filter(|a| entry.allowed_actions.contains(a))
        .ok_or(ScreenError::BadInput {
            field: "action",
            detail: "is not an action this entry takes".to_owned(),
        })?;
    let note = form
        .get("note")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    Ok(Resolution {
        action,
        note,
        idempotency_key: key.to_owned(),
    })
}

fn confirm_page(
    session: &Session,
    entry: &Entry,
    resolution: &Resolution,
    error: Option<&command_client::Refused>,
) -> Response {
    let id = entry.entry_id;
    let main = html! {
        p { a href=(PATH) { "← Desk" } }
        h1 { "Confirm" }
        @if let Some(error) = error {
            div class="error" role="alert" id="action-error" {
                p { "The command API refused this (" (error.status) "): " (error.detail) }
            }
        }
        p class="reason" { (kind_label(entry.kind)) ": " (entry.reason) }
        p id="confirm-summary" {
            "Resolve this entry with “" (resolution.action.label()) "”"
            @if let Some(note) = &resolution.note { ", with the note “" (note) "”" }
            ". "
            @match resolution.action.effect() {
                Effect::Recorded(why) => { "This records the decision only: " (why) ". " }
                effect => { strong { "This " (effect.describe()) "." } " " }
            }
            "It is recorded as events with you as their actor, and the entry leaves the desk."
        }
        form method="post" action={ "/console/desk/entries/" (id) "/resolve" } class="card" {
            (csrf_field(session))
            input type="hidden" name="step" value="confirm";
            input type="hidden" name="idempotency_key" value=(resolution.idempotency_key);
            input type="hidden" name="action" value=(resolution.action.as_str());
            @if let Some(note) = &resolution.note { input type="hidden" name="note" value=(note); }
            p {
                button type="submit" id="confirm" { "Confirm" } " "
                a class="button secondary" href=(PATH) { "Cancel" }
            }
        }
    };
    let mut response = page(session, "Confirm", PATH, main);
    if let Some(error) = error {
        *response.status_mut() = StatusCode::from_u16(error.status)
            .ok()
            .filter(|s| s.is_client_error())
            .unwrap_or(StatusCode::BAD_GATEWAY);
    }
    response
}

/// `POST /console/desk/entries/{id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    posted: PostedForm<HashMap<String, String>>,
) -> Result<Response, ScreenError> {
    let PostedForm { session, form } = posted;
    require_role(&session, ROLES)?;
    let id = Uuid::parse_str(&raw_id).map_err(|_| ScreenError::NotFound)?;
    let entry = entries::get(pool(&state)?, id)
        .await
        .map_err(database)?
        .ok_or(ScreenError::NotFound)?;
    let resolution = read_form(&entry, &form)?;
    if form.get("step").map(String::as_str) != Some("confirm") {
        return Ok(confirm_page(&session, &entry, &resolution, None));
    }
    let body = json!({"action": resolution.action.as_str(), "note": resolution.note});
    match command_client::post(
        &state,
        &session,
        &format!("/v1/desk/entries/{id}/resolve"),
        &resolution.idempotency_key,
        &body,
    )
    .await?
    {
        Ok(_) => {
            let to = format!(
                "{PATH}?done={}&action={}",
                url_encode(&id.to_string()),
                resolution.action.as_str()
            );
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(value) = axum::http::HeaderValue::from_str(&to) {
                response
                    .headers_mut()
                    .insert(axum::http::header::LOCATION, value);
            }
            Ok(response)
        }
        Err(refused) => Ok(confirm_page(&session, &entry, &resolution, Some(&refused))),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn entry() -> Entry {
        Entry {
            entry_id: Uuid::now_v7(),
            key: "failed_handoff:o:1".into(),
            kind: EntryKind::FailedHandoff,
            order_id: None,
            channel: Some("web".into()),
            reason: "the handoff failed".into(),
            suggested_action: Action::RetryHandoff,
            allowed_actions: EntryKind::FailedHandoff.allowed().to_vec(),
            details: json!({}),
            status: EntryStatus::Open,
            opened_at: Utc::now(),
            resolution: None,
        }
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_resolution_form_names_an_action_the_entry_takes() {
        let read = read_form(
            &entry(),
            &form(&[
                ("idempotency_key", "desk-1"),
                ("action", "reroute"),
                ("note", "  "),
            ]),
        )
        .unwrap();
        assert_eq!(read.action, Action::Reroute);
        assert_eq!(read.note, None);
        let wrong = |pairs: &[(&str, &str)]| match read_form(&entry(), &form(pairs)) {
            Err(ScreenError::BadInput { field, .. }) => field,
            other => panic!("expected a bad field, got {other:?}"),
        };
        assert_eq!(
            wrong(&[("idempotency_key", "desk-1"), ("action", "discard")]),
            "action"
        );
        assert_eq!(
            wrong(&[("idempotency_key", "desk-1"), ("action", "cleared")]),
            "action"
        );
        assert_eq!(wrong(&[("action", "reroute")]), "idempotency_key");
    }
}
