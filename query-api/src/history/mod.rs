//! Time travel for support agents, read from the event store:
//! - `GET /v1/agent/orders/{id}/history?version=N` or `?at=<RFC 3339>`: the order's tracking
//!   view as it was after version `N`, or as the system knew it at that moment (events recorded
//!   up to then), folded from the log with the live projector's own fold;
//! - `GET /v1/agent/orders/{id}/diff?from=N&to=M`: what changed in that view between two
//!   versions (JSON Pointer paths with the values before and after) and the events in between.
//!
//! Both need role `agent` or `admin`, like the rest of the agent API.

mod diff;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use waybill_schemas::views::TrackingView;
use waybill_schemas::{EventEnvelope, OrderId};
use waybill_write_side::command_api::problem::Path;

use crate::http::AppState;
use crate::problem::Problem;
use crate::search::{bad, require_agent, time, InternalTimelineEntry};
use crate::tracking::parse_version;

pub use diff::Change;

/// Query string of the history endpoint: `version`, `at`, both (whichever cuts earlier), or
/// neither (now).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// The order after this stream version.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 9007199254740991.0)]
    pub version: Option<String>,
    /// The order as the system knew it at this moment (RFC 3339): every event recorded up to it.
    #[param(format = DateTime)]
    pub at: Option<String>,
}

/// Query string of the diff endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffParams {
    /// The version to compare from.
    #[param(value_type = i64, minimum = 1, maximum = 9007199254740991.0)]
    pub from: Option<String>,
    /// The version to compare to; before `from` lists the changes that lead back to it.
    #[param(value_type = i64, minimum = 1, maximum = 9007199254740991.0)]
    pub to: Option<String>,
}

/// An order as it was.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderAsOf {
    pub order_id: String,
    /// The last version applied.
    pub version: i64,
    /// When that version was recorded.
    pub recorded_at: DateTime<Utc>,
    /// The order's version now, for comparison.
    pub latest_version: i64,
    /// The tracking view after `version`.
    pub view: TrackingView,
}

/// What changed between two versions of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDiff {
    pub order_id: String,
    pub from: i64,
    pub to: i64,
    /// Every changed value of the tracking view, by JSON Pointer.
    pub changes: Vec<Change>,
    /// The events after `from` up to and including `to`.
    pub events: Vec<InternalTimelineEntry>,
}

/// Which prefix of the order's stream to fold: the events up to a version and recorded by a
/// moment, each bound optional.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Cutoff {
    version: Option<i64>,
    recorded_by: Option<DateTime<Utc>>,
}

impl Cutoff {
    fn version(version: i64) -> Self {
        Self {
            version: Some(version),
            recorded_by: None,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/agent/orders/{id}/history",
    tag = "agents",
    params(("id" = String, Path, description = "Order id (UUID)"), HistoryParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The order's tracking view as it was", body = OrderAsOf),
        (status = 422, description = "Bad id, version or at; a version past the order's last; a moment before the order was placed", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role is not agent or admin", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The event store is unavailable; retry after the `Retry-After` seconds", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "query.order_history", skip_all, fields(order_id = %raw_id))]
pub async fn order_history(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    params: Result<Query<HistoryParams>, QueryRejection>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    require_agent(&state, &headers)?;
    let Query(params) = params.map_err(|_| bad("query", "is not a valid query string"))?;
    let order = parse_order(&raw_id)?;
    let cutoff = Cutoff {
        version: params
            .version
            .as_deref()
            .map(|raw| parse_version("version", raw))
            .transpose()?,
        recorded_by: time("at", params.at.as_deref())?,
    };
    let events = read_order(&state, order).await?;
    let latest_version = events.last().map_or(0, |e| e.stream_version);
    let prefix = prefix(&events, cutoff, "version")?;
    let last = prefix
        .last()
        .ok_or_else(|| bad("at", "is before the order was placed"))?;
    let body = OrderAsOf {
        order_id: order.to_string(),
        version: last.stream_version,
        recorded_at: last.recorded_at,
        latest_version,
        view: fold(order, prefix)?,
    };
    Ok(Json(body).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/agent/orders/{id}/diff",
    tag = "agents",
    params(("id" = String, Path, description = "Order id (UUID)"), DiffParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "What changed between the two versions, and the events in between", body = OrderDiff),
        (status = 422, description = "Bad or missing id, from or to; a version past the order's last", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role is not agent or admin", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The event store is unavailable; retry after the `Retry-After` seconds", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "query.order_diff", skip_all, fields(order_id = %raw_id))]
pub async fn order_diff(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    params: Result<Query<DiffParams>, QueryRejection>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    require_agent(&state, &headers)?;
    let Query(params) = params.map_err(|_| bad("query", "is not a valid query string"))?;
    let order = parse_order(&raw_id)?;
    let from = required_version("from", params.from.as_deref())?;
    let to = required_version("to", params.to.as_deref())?;
    let events = read_order(&state, order).await?;
    let before = fold(order, prefix(&events, Cutoff::version(from), "from")?)?;
    let after = fold(order, prefix(&events, Cutoff::version(to), "to")?)?;
    let (low, high) = (from.min(to), from.max(to));
    let body = OrderDiff {
        order_id: order.to_string(),
        from,
        to,
        changes: diff::changes(&as_json(&before)?, &as_json(&after)?),
        events: events
            .iter()
            .filter(|e| (low + 1..=high).contains(&e.stream_version))
            .map(InternalTimelineEntry::of)
            .collect(),
    };
    Ok(Json(body).into_response())
}

fn parse_order(raw: &str) -> Result<OrderId, Problem> {
    OrderId::parse(raw).map_err(|_| bad("id", "must be an order id (a UUID)"))
}

fn required_version(field: &'static str, raw: Option<&str>) -> Result<i64, Problem> {
    parse_version(field, raw.ok_or_else(|| bad(field, "is required"))?)
}

/// Every event of the order (404 if there are none).
async fn read_order(state: &AppState, order: OrderId) -> Result<Vec<EventEnvelope>, Problem> {
    let store = state.config.events.as_ref().ok_or_else(|| {
        tracing::error!("order history requested but no event store is configured");
        Problem::Internal
    })?;
    let events = store
        .read_stream(&order.stream_id(), 1, None)
        .await
        .map_err(|error| {
            tracing::warn!(%error, order_id = %order, "reading the order's events failed");
            Problem::Unavailable {
                what: "event store",
            }
        })?;
    if events.is_empty() {
        return Err(Problem::OrderNotFound);
    }
    Ok(events)
}

/// The events up to `cutoff`; a version past the last is refused, naming `field`.
fn prefix<'a>(
    events: &'a [EventEnvelope],
    cutoff: Cutoff,
    field: &'static str,
) -> Result<&'a [EventEnvelope], Problem> {
    let last = events.last().map_or(0, |e| e.stream_version);
    let by_version = match cutoff.version {
        Some(v) if v > last => {
            return Err(bad(
                field,
                format!("is past the order's last version ({last})"),
            ))
        }
        Some(v) => events.partition_point(|e| e.stream_version <= v),
        None => events.len(),
    };
    let by_moment = cutoff.recorded_by.map_or(events.len(), |at| {
        events.iter().take_while(|e| e.recorded_at <= at).count()
    });
    let len = by_version.min(by_moment);
    Ok(&events[..len])
}

fn fold(order: OrderId, events: &[EventEnvelope]) -> Result<TrackingView, Problem> {
    match waybill_projectors::views::tracking::fold(events) {
        Ok(Some(mut view)) => {
            // Who may find the order is the projector's index data; the query API never serves it.
            view.access = Default::default();
            Ok(view)
        }
        Ok(None) => Err(bad("at", "is before the order was placed")),
        Err(error) => {
            tracing::error!(%error, order_id = %order, "the order's events do not fold");
            Err(Problem::Internal)
        }
    }
}

fn as_json(view: &TrackingView) -> Result<serde_json::Value, Problem> {
    serde_json::to_value(view).map_err(|error| {
        tracing::error!(%error, "a tracking view did not serialize");
        Problem::Internal
    })
}
