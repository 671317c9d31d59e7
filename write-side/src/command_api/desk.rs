//! The exceptions desk's JSON API for agents and admins: list entries with filters, read one,
//! and resolve one (`POST`, with `Idempotency-Key`). Entries are found by the desk projector
//! and detector (`projectors/src/desk/`); resolving is `commands::resolve_desk_entry`.

// A refusal is the response itself, built once per refused request; boxing it buys nothing.
#![allow(clippy::result_large_err)]

use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use uuid::Uuid;
use waybill_schemas::api_keys::Role;

use super::handlers::{command_span, finish};
use super::problem::{Path, Problem, Query};
use super::request::CommandInput;
use super::AppState;
use crate::commands::{self, CommandError};
use crate::desk::{entries, Entry, EntryFilter, EntryKind, EntryStatus};

/// Most entries one page lists.
const MAX_PAGE: i64 = 100;
/// Deepest offset accepted.
const MAX_OFFSET: i64 = 10_000;

/// Filters of the entry list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntryListParams {
    /// `open` (default), `resolved` or `all`.
    #[param(pattern = "^(open|resolved|all)$")]
    pub status: Option<String>,
    /// One kind: stage_overdue, carrier_exception, failed_handoff, authorization_expiring,
    /// reservation_expiring, review_deadline, dead_letter, anomaly.
    #[param(
        pattern = "^(stage_overdue|carrier_exception|failed_handoff|authorization_expiring|reservation_expiring|review_deadline|dead_letter|anomaly)$"
    )]
    pub kind: Option<String>,
    /// The sales channel (`web`, `app`, `pos`, `marketplace`).
    #[param(max_length = 64)]
    pub channel: Option<String>,
    /// Entries about this order.
    #[param(format = Uuid)]
    pub order_id: Option<String>,
    /// Page size, 1–100 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Entries to skip, 0–10,000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 10000)]
    pub offset: Option<String>,
}

/// A page of desk entries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryPage {
    pub items: Vec<Entry>,
    /// Entries matching the filters, over all pages.
    pub total: i64,
}

/// The caller's role, when it is an agent or admin.
fn require_agent(state: &AppState, headers: &HeaderMap) -> Result<(), Problem> {
    super::request::require_role(state, headers, |role| {
        matches!(role, Role::Agent | Role::Admin)
    })
    .map(drop)
}

fn number(field: &str, raw: Option<&str>, default: i64, range: (i64, i64)) -> Result<i64, Problem> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (range.0..=range.1).contains(n))
            .ok_or_else(|| {
                Problem::field(
                    field,
                    format!("must be an integer from {} to {}", range.0, range.1),
                )
            }),
    }
}

/// Reads the list filters.
pub fn parse_filter(params: &EntryListParams) -> Result<EntryFilter, Problem> {
    let status = match params.status.as_deref() {
        None | Some("open") => Some(EntryStatus::Open),
        Some("resolved") => Some(EntryStatus::Resolved),
        Some("all") => None,
        Some(_) => {
            return Err(Problem::field(
                "status",
                "must be one of: open, resolved, all",
            ))
        }
    };
    let kind = params
        .kind
        .as_deref()
        .map(|raw| {
            EntryKind::parse(raw).ok_or_else(|| {
                let known: Vec<&str> = EntryKind::ALL.iter().map(|k| k.as_str()).collect();
                Problem::field("kind", format!("must be one of: {}", known.join(", ")))
            })
        })
        .transpose()?;
    let channel = params
        .channel
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            if c.len() <= 64 {
                Ok(c.to_owned())
            } else {
                Err(Problem::field("channel", "must be at most 64 characters"))
            }
        })
        .transpose()?;
    let order_id = params
        .order_id
        .as_deref()
        .map(|raw| {
            Uuid::parse_str(raw)
                .ok()
                .filter(|_| raw.len() == 36)
                .ok_or_else(|| Problem::field("order_id", "must be a UUID"))
        })
        .transpose()?;
    Ok(EntryFilter {
        status,
        kind,
        channel,
        order_id,
        limit: number("limit", params.limit.as_deref(), 50, (1, MAX_PAGE))?,
        offset: number("offset", params.offset.as_deref(), 0, (0, MAX_OFFSET))?,
    })
}

/// List desk entries.
#[utoipa::path(
    get,
    path = "/v1/desk/entries",
    tag = "desk",
    description = "The exceptions desk: orders stuck or at risk and other problems found on the \
        event stream (a stage lasting longer than it learned that stage takes, carrier \
        exceptions, failed handoffs, authorizations, reservations and reviews near their \
        deadline, dead letters, per-channel anomalies), newest first, each with why it is \
        there and the suggested action. Role `agent` or `admin`.",
    params(EntryListParams),
    responses(
        (status = 200, description = "A page of entries", body = EntryPage),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (not agent or admin)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (a filter)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_entries(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<EntryListParams>,
) -> Response {
    let answer = async {
        require_agent(&state, &headers)?;
        let filter = parse_filter(&params)?;
        let (items, total) = entries::list(&state.services.pool, &filter)
            .await
            .map_err(|e| Problem::from(CommandError::from(e)))?;
        Ok::<_, Problem>(EntryPage { items, total })
    };
    match answer.await {
        Ok(page) => Json(page).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Read one desk entry.
#[utoipa::path(
    get,
    path = "/v1/desk/entries/{entry_id}",
    tag = "desk",
    description = "One desk entry with its reason, details, suggested and allowed actions and, \
        once resolved, what was done, by whom, and the event that records it. Role `agent` or \
        `admin`.",
    params(("entry_id" = String, Path, description = "Entry id (UUID)")),
    responses(
        (status = 200, description = "The entry", body = Entry),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (not agent or admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found (entry_id)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_entry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> Response {
    let answer = async {
        require_agent(&state, &headers)?;
        let not_found = || Problem::from(CommandError::EntryNotFound(raw_id.clone()));
        let id = Uuid::parse_str(&raw_id).map_err(|_| not_found())?;
        entries::get(&state.services.pool, id)
            .await
            .map_err(|e| Problem::from(CommandError::from(e)))?
            .ok_or_else(not_found)
    };
    match answer.await {
        Ok(entry) => Json(entry).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Resolve a desk entry.
#[utoipa::path(
    post,
    path = "/v1/desk/entries/{entry_id}/resolve",
    tag = "desk",
    description = "Resolves an entry with one of its `allowed_actions`, doing what the action \
        does where Waybill can: `void` cancels the entry's order (the same decision as \
        `POST /v1/orders/{id}/cancel`; the checkout flow then voids the authorization and \
        releases the stock), `retry_handoff` asks the carrier to attempt the parcel's handoff \
        again and records `ShipmentExceptionHandled` on the order; the other actions record \
        the decision only. The action's events and a `DeskEntryResolved` event in the entry's \
        stream `desk-<entry id>` are committed together, with the caller as actor. Requires \
        `Idempotency-Key`: a repeat answers the first response. Role `agent` or `admin`. 409 \
        `invalid-transition` when the entry was resolved already or the order refuses the \
        action; 502 when the carrier cannot be reached (the entry stays open). The entry shows \
        the resolution once the desk projector applied the event.",
    params(
        ("entry_id" = String, Path, description = "Entry id (UUID)"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    request_body(content = super::openapi::ResolveEntryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Resolution recorded", body = commands::ResolveResponse),
        (status = 403, description = "forbidden (not agent or admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found (entry_id)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid-transition (already resolved, or the order refuses the action)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "gateway-unavailable (the carrier could not be reached or refused; retry with the same key)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (action, note) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn resolve_entry(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    input: CommandInput,
) -> Response {
    let span = command_span("resolve_desk_entry", &input.ctx);
    let started = Instant::now();
    let result = if matches!(input.ctx.role, Role::Agent | Role::Admin) {
        commands::resolve_desk_entry(&state.services, &input.ctx, &raw_id, &input.body)
            .instrument(span.clone())
            .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish(&span, "resolve_desk_entry", started, result)
}
