//! Agent search and order detail:
//! - `GET /v1/search/orders`: free text, filters, sort, cursor pages, facets, highlights, over
//!   the search index the search projector keeps (Tantivy or Elasticsearch/OpenSearch API);
//! - `GET /v1/agent/orders/{id}`: the tracking view, the search document (personal data) and
//!   the full internal timeline, read from the event store (see ARCHITECTURE.md).
//!
//! Both need a Bearer API key with role `agent` or `admin` (others 403, none 401). Both take a
//! `consistency_token` (and the detail also `min_version`): the request waits, bounded, until
//! the order's search document has reached that version, else answers with `stale: true`.

use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use waybill_projectors::views::search::{
    Cursor, SearchBackend, SearchError, SearchIndex, SearchQuery, Sort, MAX_LIMIT,
};
use waybill_schemas::api_keys::Role;
use waybill_schemas::views::{
    ConsistencyToken, OrderDocument, SearchFacets, SearchHit, TrackingStatus, TrackingView,
};
use waybill_schemas::{Channel, EventEnvelope, OrderId};
use waybill_write_side::command_api::problem::Path;

use crate::http::AppState;
use crate::problem::Problem;
use crate::tracking::Consistency;

/// Default page size.
const DEFAULT_LIMIT: usize = 20;

/// Query string of `GET /v1/search/orders`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Free text, whitespace-separated terms that must all match. Identifiers (order id,
    /// channel order ref, email, SKU, tracking and RMA numbers) match whole or by a prefix of 3+
    /// characters, never with typos; a phone in any format or its last 7+ digits; customer,
    /// address and product names with typos tolerated; address words (street, city, postcode)
    /// exactly. A term with digits or `-_@#/:.+` is read as an identifier and never matches
    /// names. At most 200 characters.
    pub q: Option<String>,
    /// Comma-separated statuses: placed, in_review, awaiting_payment, confirmed, cancelled.
    pub status: Option<String>,
    /// Comma-separated channels: web, app, pos, marketplace.
    pub channel: Option<String>,
    /// Placed at or after (RFC 3339).
    #[param(format = DateTime)]
    pub created_from: Option<String>,
    /// Placed before (RFC 3339).
    #[param(format = DateTime)]
    pub created_to: Option<String>,
    /// Grand total at least, in minor units.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub total_min: Option<String>,
    /// Grand total at most, in minor units.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub total_max: Option<String>,
    /// `true` or `false`.
    #[param(value_type = Option<bool>)]
    pub has_return: Option<String>,
    /// `true` or `false`.
    #[param(value_type = Option<bool>)]
    pub has_exception: Option<String>,
    /// `relevance` (default when `q` has text: best match first, ties newest first; pages
    /// reach 10,000 hits at most), `-created_at` (default without `q`), `created_at`,
    /// `-updated_at`, `updated_at`, `-total`, `total`.
    #[param(pattern = "^(relevance|-?(created_at|updated_at|total))$")]
    pub sort: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (same sort).
    pub cursor: Option<String>,
    /// `<order id>.<version>` from a command response: wait (bounded) until that order's
    /// document has reached the version before searching.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\\.[1-9][0-9]{0,15}$"
    )]
    pub consistency_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    pub hits: Vec<SearchHit>,
    /// All matching orders, not only this page.
    pub total: u64,
    pub facets: SearchFacets,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// Present when a `consistency_token` was given.
    pub consistency: Option<Consistency>,
}

/// Query string of `GET /v1/agent/orders/{id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailParams {
    /// Wait (bounded) until the order's search document has reached this stream version.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 9007199254740991.0)]
    pub min_version: Option<String>,
    /// `<order id>.<version>` from a command response; same effect as `min_version`.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\\.[1-9][0-9]{0,15}$"
    )]
    pub consistency_token: Option<String>,
}

/// One event about the order, as recorded (internal: risk scores, decline codes…).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InternalTimelineEntry {
    /// The order's stream, or `desk-<entry id>` for what was done about the order from the
    /// exceptions desk (`DeskEntryResolved`).
    pub stream_id: String,
    /// The event's version in its stream.
    pub version: i64,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    /// `customer`, `agent`, `service` or `system`, and its id.
    pub actor: String,
    /// The event payload in its current schema version.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl InternalTimelineEntry {
    /// The entry for one stored event, its payload upcast to the current schema version.
    pub(crate) fn of(event: &EventEnvelope) -> Self {
        Self {
            stream_id: event.stream_id.clone(),
            version: event.stream_version,
            event_type: event.event_type.clone(),
            occurred_at: event.occurred_at,
            recorded_at: event.recorded_at,
            actor: format!(
                "{}:{}",
                waybill_projectors::views::search::fields::enum_word(&event.actor.kind),
                event.actor.id
            ),
            payload: match event.decode() {
                Ok(decoded) => serde_json::to_value(&decoded).unwrap_or(serde_json::Value::Null),
                Err(_) => event.payload.to_value(),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentOrderResponse {
    /// The customer-facing tracking view (null if the tracking projector has not seen it yet).
    pub tracking: Option<TrackingView>,
    /// The search document, with the customer's personal data.
    pub document: Option<OrderDocument>,
    /// Every event of the order, from the event store.
    pub timeline: Vec<InternalTimelineEntry>,
    pub consistency: Consistency,
}

pub(crate) fn bad(field: &'static str, detail: impl Into<String>) -> Problem {
    Problem::BadParameter {
        field,
        detail: detail.into(),
    }
}

/// The caller must present an agent or admin key.
pub(crate) fn require_agent(state: &AppState, headers: &HeaderMap) -> Result<(), Problem> {
    let Some(raw) = headers.get(header::AUTHORIZATION) else {
        return Err(Problem::Unauthorized {
            detail: "pass a Bearer API key with role agent or admin",
        });
    };
    let principal = raw
        .to_str()
        .ok()
        .and_then(|h| state.config.api_keys.authenticate_header(Some(h)))
        .ok_or(Problem::Unauthorized {
            detail: "the Authorization header is not a valid Bearer API key",
        })?;
    match principal.role {
        Role::Agent | Role::Admin => Ok(()),
        other => Err(Problem::Forbidden {
            role: other.to_string(),
        }),
    }
}

/// A search the index could not answer: 503 while the server cannot be reached, answers
/// 5xx/429, or has lost the index (404; the search projector makes it again and fills it), since
/// each comes back by itself; anything else 500.
fn search_failed(error: SearchError) -> Problem {
    match &error {
        SearchError::Elastic {
            status: 0 | 404 | 429 | 500..,
            ..
        } => {
            tracing::warn!(%error, "search index unavailable");
            Problem::Unavailable {
                what: "the search index",
            }
        }
        _ => {
            tracing::error!(%error, "search failed");
            Problem::Internal
        }
    }
}

fn search_backend(state: &AppState) -> Result<&SearchBackend, Problem> {
    state.config.search.as_ref().ok_or_else(|| {
        tracing::error!("search requested but no search index is configured");
        Problem::Internal
    })
}

fn list<T>(
    field: &'static str,
    raw: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Vec<T>, Problem> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            parse(s).ok_or_else(|| {
                bad(
                    field,
                    format!(
                        "has unknown value '{}' ({allowed})",
                        s.chars().take(40).collect::<String>()
                    ),
                )
            })
        })
        .collect()
}

pub(crate) fn time(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<DateTime<Utc>>, Problem> {
    raw.map(|r| {
        DateTime::parse_from_rfc3339(r.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| bad(field, "must be an RFC 3339 time (2026-11-26T10:00:00Z)"))
    })
    .transpose()
}

/// An amount bound: a non-negative integer of minor units (as documented: `minimum: 0`).
fn integer(field: &'static str, raw: Option<&str>) -> Result<Option<i64>, Problem> {
    raw.map(|r| {
        r.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad(field, "must be a non-negative integer (minor units)"))
    })
    .transpose()
}

fn flag(field: &'static str, raw: Option<&str>) -> Result<Option<bool>, Problem> {
    raw.map(|r| match r.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(field, "must be true or false")),
    })
    .transpose()
}

fn status(raw: &str) -> Option<TrackingStatus> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).ok()
}

/// Reads the search parameters into a query; every error names its parameter.
pub fn parse_search(params: &SearchParams) -> Result<SearchQuery, Problem> {
    let sort = match params.sort.as_deref() {
        None => Sort::default_for(params.q.as_deref().unwrap_or_default()),
        Some(raw) => Sort::parse(raw.trim()).ok_or_else(|| {
            bad(
                "sort",
                "must be relevance, or one of created_at, updated_at, total, optionally prefixed with -",
            )
        })?,
    };
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| bad("limit", format!("must be an integer from 1 to {MAX_LIMIT}")))?,
    };
    let after = params
        .cursor
        .as_deref()
        .map(|raw| {
            let cursor = Cursor::decode(raw.trim())
                .ok_or_else(|| bad("cursor", "is not a cursor returned by this API"))?;
            if cursor.sort != sort {
                return Err(bad("cursor", "was made for another sort order"));
            }
            Ok(cursor)
        })
        .transpose()?;
    let q = params.q.clone().unwrap_or_default();
    if q.chars().count() > 200 {
        return Err(bad("q", "must be at most 200 characters"));
    }
    let query = SearchQuery {
        text: q,
        status: list(
            "status",
            params.status.as_deref(),
            status,
            "placed, in_review, awaiting_payment, confirmed, cancelled",
        )?,
        channel: list(
            "channel",
            params.channel.as_deref(),
            |s| Channel::parse(s).ok(),
            "web, app, pos, marketplace",
        )?,
        created_from: time("created_from", params.created_from.as_deref())?,
        created_to: time("created_to", params.created_to.as_deref())?,
        total_min: integer("total_min", params.total_min.as_deref())?,
        total_max: integer("total_max", params.total_max.as_deref())?,
        has_return: flag("has_return", params.has_return.as_deref())?,
        has_exception: flag("has_exception", params.has_exception.as_deref())?,
        sort,
        limit,
        after,
    };
    if let (Some(from), Some(to)) = (query.created_from, query.created_to) {
        if from >= to {
            return Err(bad("created_to", "must be after created_from"));
        }
    }
    if let (Some(min), Some(max)) = (query.total_min, query.total_max) {
        if min > max {
            return Err(bad("total_max", "must not be below total_min"));
        }
    }
    Ok(query)
}

fn token(field: &'static str, raw: Option<&str>) -> Result<Option<ConsistencyToken>, Problem> {
    raw.map(|r| {
        ConsistencyToken::parse(r.trim())
            .ok_or_else(|| bad(field, "must be `<order id>.<version>`"))
    })
    .transpose()
}

/// Polls the order's search document until it reaches `wanted` or the bound runs out.
async fn wait_for_document(
    state: &AppState,
    index: &SearchBackend,
    order: OrderId,
    wanted: Option<i64>,
) -> Result<Option<OrderDocument>, Problem> {
    let deadline = tokio::time::Instant::now() + state.config.max_wait;
    let ids = [order.to_string()];
    loop {
        let document = index
            .get_searchable(&ids)
            .await
            .map_err(|error| {
                tracing::debug!(order_id = %order, "reading the search index failed");
                search_failed(error)
            })?
            .pop()
            .flatten();
        let reached = match (&document, wanted) {
            (_, None) => true,
            (Some(d), Some(v)) => d.version >= v,
            (None, Some(_)) => false,
        };
        if reached || tokio::time::Instant::now() >= deadline {
            return Ok(document);
        }
        tokio::time::sleep_until(
            (tokio::time::Instant::now()
                + state
                    .config
                    .poll_interval
                    .max(std::time::Duration::from_millis(10)))
            .min(deadline),
        )
        .await;
    }
}

fn with_stale_header(mut response: Response, stale: bool) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-waybill-stale",
        HeaderValue::from_static(if stale { "true" } else { "false" }),
    );
    response
}

#[utoipa::path(
    get,
    path = "/v1/search/orders",
    tag = "agents",
    params(SearchParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page of matching orders, best match first when `q` has text and newest first without it, unless sorted otherwise, with facet counts (status, channel) and highlighted matches", body = SearchResponse),
        (status = 422, description = "A parameter is invalid (`field` names it)", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role is not agent or admin", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The search index cannot be read right now (`unavailable`), or is being filled again from the event log after its store lost its data (`view-catching-up`); `Retry-After` says when to try again", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "query.search", skip_all)]
pub async fn search_orders(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require_agent(&state, &headers)?;
    let Query(params) = params.map_err(|_| bad("query", "is not a valid query string"))?;
    let query = parse_search(&params)?;
    let wanted = token("consistency_token", params.consistency_token.as_deref())?;
    let index = search_backend(&state)?;
    crate::catching_up::search_complete(&state, index).await?;
    let started = Instant::now();
    let consistency = match wanted {
        Some(wanted) => {
            let document =
                wait_for_document(&state, index, wanted.order_id, Some(wanted.version)).await?;
            let version = document.map_or(0, |d| d.version);
            Some(Consistency {
                stale: version < wanted.version,
                requested_version: Some(wanted.version),
                view_version: version,
            })
        }
        None => None,
    };
    let page = index.search(&query).await.map_err(search_failed)?;
    metrics::histogram!("waybill_query_search_seconds", "backend" => index.backend())
        .record(started.elapsed().as_secs_f64());
    let stale = consistency.as_ref().is_some_and(|c| c.stale);
    let body = SearchResponse {
        hits: page.hits,
        total: page.total,
        facets: page.facets,
        next_cursor: page.next.map(|c| c.encode()),
        consistency,
    };
    Ok(with_stale_header(Json(body).into_response(), stale))
}

#[utoipa::path(
    get,
    path = "/v1/agent/orders/{id}",
    tag = "agents",
    params(("id" = String, Path, description = "Order id (UUID)"), DetailParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Tracking view, search document and full internal timeline; `consistency.stale` when the requested version was not reached in time", body = AgentOrderResponse),
        (status = 422, description = "Bad id, min_version or consistency_token", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role is not agent or admin", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The event store or the search index is unavailable; retry after the `Retry-After` seconds", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "query.agent_order", skip_all, fields(order_id = %raw_id))]
pub async fn agent_order(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    params: Result<Query<DetailParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require_agent(&state, &headers)?;
    let Query(params) = params.map_err(|_| bad("query", "is not a valid query string"))?;
    let order = OrderId::parse(&raw_id).map_err(|_| bad("id", "must be an order id (a UUID)"))?;
    let min_version = params
        .min_version
        .as_deref()
        .map(crate::tracking::parse_min_version)
        .transpose()?;
    let from_token = match token("consistency_token", params.consistency_token.as_deref())? {
        Some(t) if t.order_id != order => {
            return Err(bad("consistency_token", "belongs to another order"))
        }
        Some(t) => Some(t.version),
        None => None,
    };
    let wanted = min_version.max(from_token);
    let body = load_agent_order(&state, order, wanted).await?;
    let stale = body.consistency.stale;
    Ok(with_stale_header(Json(body).into_response(), stale))
}

/// One order as agents see it (tracking view, search document, full timeline), after waiting
/// (bounded) for its search document and tracking view to reach `wanted`: the detail endpoint and the console's
/// order page both read it here.
pub(crate) async fn load_agent_order(
    state: &AppState,
    order: OrderId,
    wanted: Option<i64>,
) -> Result<AgentOrderResponse, Problem> {
    load_agent_order_with_events(state, order, wanted)
        .await
        .map(|(order, _)| order)
}

/// [`load_agent_order`] and the order's stored events it was made from.
pub(crate) async fn load_agent_order_with_events(
    state: &AppState,
    order: OrderId,
    wanted: Option<i64>,
) -> Result<(AgentOrderResponse, Vec<EventEnvelope>), Problem> {
    let index = search_backend(state)?;
    let document = wait_for_document(state, index, order, wanted).await?;

    let events = state.config.events.as_ref().ok_or_else(|| {
        tracing::error!("agent order detail requested but no event store is configured");
        Problem::Internal
    })?;
    let stream = events
        .read_stream(&order.stream_id(), 1, None)
        .await
        .map_err(|error| Problem::event_store(&error))?;
    if stream.is_empty() && document.is_none() {
        return Err(Problem::OrderNotFound);
    }
    let desk = desk_resolutions(events, order).await?;
    let timeline = merge_by_time(
        stream.iter().map(InternalTimelineEntry::of).collect(),
        desk.iter().map(InternalTimelineEntry::of).collect(),
    );
    // The tracking view (every event advances its version) is waited for too, so a page
    // after a command shows the change in both.
    let mut redis = state.redis.clone();
    let tracking = crate::tracking::read_until(state, &mut redis, order, wanted).await?;
    let version = document.as_ref().map_or(0, |d| d.version);
    let tracking_version = tracking.as_ref().map_or(0, |t| t.version);
    let stale = wanted.is_some_and(|w| version < w || tracking_version < w);
    let response = AgentOrderResponse {
        tracking,
        document,
        timeline,
        consistency: Consistency {
            stale,
            requested_version: wanted,
            view_version: version,
        },
    };
    Ok((response, stream))
}

/// The order's events in their stream order, with each of `others` (in time order) placed
/// before the first order event recorded after it.
fn merge_by_time(
    order: Vec<InternalTimelineEntry>,
    mut others: Vec<InternalTimelineEntry>,
) -> Vec<InternalTimelineEntry> {
    others.sort_by_key(|e| e.recorded_at);
    let mut others = others.into_iter().peekable();
    let mut merged = Vec::with_capacity(order.len() + others.len());
    for event in order {
        while let Some(other) = others.next_if(|o| o.recorded_at < event.recorded_at) {
            merged.push(other);
        }
        merged.push(event);
    }
    merged.extend(others);
    merged
}

/// The events of the streams of the order's desk entries (`DeskEntryResolved`): what was
/// decided or done about the order from the exceptions desk, read from the event store (the
/// entry rows only say which streams), so a resolution shows as soon as it is committed.
async fn desk_resolutions(
    events: &waybill_write_side::event_store::EventStore,
    order: OrderId,
) -> Result<Vec<EventEnvelope>, Problem> {
    let ids = waybill_write_side::desk::entries::ids_of_order(events.pool(), order.as_uuid())
        .await
        .map_err(|error| {
            Problem::event_store(&waybill_write_side::event_store::EventStoreError::Database(
                error,
            ))
        })?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let streams: Vec<String> = ids
        .into_iter()
        .map(waybill_schemas::events::desk::desk_stream_id)
        .collect();
    let found = events
        .read_streams(&streams)
        .await
        .map_err(|error| Problem::event_store(&error))?;
    Ok(streams
        .iter()
        .filter_map(|s| found.get(s))
        .flatten()
        .cloned()
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(stream: &str, version: i64, second: u32) -> InternalTimelineEntry {
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 6, 12, 0, second).unwrap();
        InternalTimelineEntry {
            stream_id: stream.into(),
            version,
            event_type: "E".into(),
            occurred_at: at,
            recorded_at: at,
            actor: "agent:a".into(),
            payload: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_desk_resolution_joins_the_order_timeline_where_its_time_puts_it() {
        let merged = merge_by_time(
            vec![entry("o", 1, 1), entry("o", 2, 3), entry("o", 3, 3)],
            vec![entry("desk-2", 1, 9), entry("desk-1", 1, 3)],
        );
        let order: Vec<(&str, i64)> = merged
            .iter()
            .map(|e| (e.stream_id.as_str(), e.version))
            .collect();
        assert_eq!(
            order,
            [("o", 1), ("o", 2), ("o", 3), ("desk-1", 1), ("desk-2", 1)]
        );
    }

    fn field_of(params: SearchParams) -> &'static str {
        match parse_search(&params).unwrap_err() {
            Problem::BadParameter { field, .. } => field,
            other => panic!("expected a bad parameter, got {other:?}"),
        }
    }

    #[test]
    fn each_bad_search_parameter_is_named() {
        let p = || SearchParams::default();
        assert_eq!(
            field_of(SearchParams {
                status: Some("shipped".into()),
                ..p()
            }),
            "status"
        );
        assert_eq!(
            field_of(SearchParams {
                channel: Some("fax".into()),
                ..p()
            }),
            "channel"
        );
        assert_eq!(
            field_of(SearchParams {
                created_from: Some("yesterday".into()),
                ..p()
            }),
            "created_from"
        );
        assert_eq!(
            field_of(SearchParams {
                total_min: Some("1.5".into()),
                ..p()
            }),
            "total_min"
        );
        // Bounds are documented as `minimum: 0`: a negative one is refused, not searched.
        assert_eq!(
            field_of(SearchParams {
                total_min: Some("-1".into()),
                ..p()
            }),
            "total_min"
        );
        assert_eq!(
            field_of(SearchParams {
                total_min: Some("5".into()),
                total_max: Some("1".into()),
                ..p()
            }),
            "total_max"
        );
        assert_eq!(
            field_of(SearchParams {
                has_return: Some("yes".into()),
                ..p()
            }),
            "has_return"
        );
        assert_eq!(
            field_of(SearchParams {
                sort: Some("name".into()),
                ..p()
            }),
            "sort"
        );
        assert_eq!(
            field_of(SearchParams {
                limit: Some("0".into()),
                ..p()
            }),
            "limit"
        );
        assert_eq!(
            field_of(SearchParams {
                limit: Some("101".into()),
                ..p()
            }),
            "limit"
        );
        assert_eq!(
            field_of(SearchParams {
                cursor: Some("abc".into()),
                ..p()
            }),
            "cursor"
        );
    }

    #[test]
    fn good_parameters_become_a_query() {
        let query = parse_search(&SearchParams {
            q: Some("ada".into()),
            status: Some("placed,cancelled".into()),
            channel: Some("web".into()),
            total_min: Some("100".into()),
            has_exception: Some("false".into()),
            sort: Some("-total".into()),
            limit: Some("5".into()),
            ..SearchParams::default()
        })
        .unwrap();
        assert_eq!(
            query.status,
            vec![TrackingStatus::Placed, TrackingStatus::Cancelled]
        );
        assert_eq!(query.channel, vec![Channel::Web]);
        assert_eq!(query.total_min, Some(100));
        assert_eq!(query.has_exception, Some(false));
        assert_eq!(query.limit, 5);
        assert_eq!(query.sort, Sort::parse("-total").unwrap());
    }
}
