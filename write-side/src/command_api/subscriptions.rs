//! Event subscriptions for integrators, on the command API (role `admin`): register, read,
//! change and remove webhook endpoints, list and redeliver dead letters, and the pull feed
//! `GET /v1/events`. Mutations take an `Idempotency-Key`. The work is in
//! [`crate::subscriptions`]; handlers extract, call one function and map the answer.

// A refusal is the response itself, built once per refused request; boxing it buys nothing.
#![allow(clippy::result_large_err)]

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;
use uuid::Uuid;
use waybill_schemas::api_keys::Role;
use waybill_schemas::OrderEventKind;

use super::handlers::to_response;
use super::openapi::{ApiKeyAuth, JsonBodyRules};
use super::problem::{Path, Problem, ProblemType, Query};
use super::request::{CommandInput, KeyedInput};
use super::AppState;
use crate::commands::{CommandContext, Reply};
use crate::event_store::retry;
use crate::subscriptions::feed::{self, FeedEvent};
use crate::subscriptions::request::{parse_new, parse_patch};
use crate::subscriptions::seal::SealingKey;
use crate::subscriptions::store::{
    self, CreatedSubscription, DeadLetter, DeadLetterPage, Redelivery, Subscription,
    SubscriptionList,
};
use crate::subscriptions::SubscriptionError;

/// Most events one feed page returns.
pub const MAX_FEED_PAGE: i64 = 1_000;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/subscriptions",
            post(create_subscription).get(list_subscriptions),
        )
        .route(
            "/v1/subscriptions/{subscription_id}",
            get(get_subscription)
                .patch(update_subscription)
                .delete(delete_subscription),
        )
        .route(
            "/v1/subscriptions/{subscription_id}/dead-letters",
            get(list_dead_letters),
        )
        .route(
            "/v1/subscriptions/{subscription_id}/dead-letters/{dead_letter_id}/redeliver",
            post(redeliver),
        )
        .route("/v1/events", get(read_feed))
}

impl From<SubscriptionError> for Problem {
    fn from(error: SubscriptionError) -> Self {
        match error {
            SubscriptionError::Validation(errors) => Problem::validation(errors),
            SubscriptionError::NotFound { field, id } => {
                Problem::new(ProblemType::NotFound, format!("{field} {id} not found"))
                    .with_field(field)
            }
            SubscriptionError::KeyReused(key) => Problem::new(
                ProblemType::IdempotencyKeyReused,
                format!("Idempotency-Key {key} was used for a different request"),
            ),
            SubscriptionError::Database(e) if retry::is_unavailable(&e) => {
                Problem::database_unavailable()
            }
            other => {
                tracing::error!(error = %other, "subscription request failed");
                Problem::internal()
            }
        }
    }
}

fn admin(ctx: &CommandContext) -> Result<(), Problem> {
    if ctx.role == Role::Admin {
        Ok(())
    } else {
        Err(Problem::forbidden())
    }
}

/// The caller of a read, when it is an admin.
fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), Problem> {
    super::request::require_role(state, headers, |role| role == Role::Admin).map(drop)
}

fn sealing_key(state: &AppState) -> Result<&SealingKey, Problem> {
    state.sealing_key.as_deref().ok_or_else(|| {
        Problem::new(
            ProblemType::WebhooksNotConfigured,
            "no WAYBILL_WEBHOOK_SEALING_KEY is configured",
        )
    })
}

fn not_found(field: &'static str, raw: &str) -> Problem {
    Problem::from(SubscriptionError::NotFound {
        field,
        id: raw.chars().take(64).collect(),
    })
}

fn id_of(raw: &str, field: &'static str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw)
        .ok()
        .filter(|_| raw.len() == 36)
        .ok_or_else(|| not_found(field, raw))
}

fn answer(result: Result<Reply, Problem>) -> Response {
    match result {
        Ok(Reply::Fresh(stored)) => to_response(stored, false),
        Ok(Reply::Replayed(stored)) => to_response(stored, true),
        Err(problem) => problem.into_response(),
    }
}

/// `POST /v1/subscriptions` body.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct CreateSubscriptionRequest {
    /// Where events are POSTed: an absolute `http` or `https` URL without credentials or
    /// fragment, at most 2,048 characters.
    #[schema(example = "https://erp.example.com/waybill/events", max_length = 2048)]
    url: String,
    /// Event types to deliver (`OrderPlaced`, `OrderConfirmed`, ...); empty, `null` or absent:
    /// all.
    event_types: Option<Vec<String>>,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    description: Option<String>,
    /// The signing secret, 16-256 visible ASCII characters; absent: one is generated. Either
    /// way it is returned once, in this answer. `null` is the same as absent.
    #[schema(pattern = "^[!-~]{16,256}$")]
    secret: Option<String>,
    /// `active` (default) or `paused`.
    #[schema(nullable = false, pattern = "^(active|paused)$")]
    status: Option<String>,
    /// `now` (default): events recorded from now on; `beginning`: every event in the feed.
    #[schema(nullable = false, pattern = "^(now|beginning)$")]
    start: Option<String>,
}

/// `PATCH /v1/subscriptions/{id}` body: at least one member.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct UpdateSubscriptionRequest {
    #[schema(nullable = false, max_length = 2048)]
    url: Option<String>,
    /// `null` or empty: every type.
    event_types: Option<Vec<String>>,
    /// `null` removes it.
    #[schema(max_length = 500)]
    description: Option<String>,
    /// A new signing secret (16-256 visible ASCII characters); not echoed.
    #[schema(nullable = false, pattern = "^[!-~]{16,256}$")]
    secret: Option<String>,
    /// `active` or `paused`. Paused subscriptions keep their place in the feed.
    #[schema(nullable = false, pattern = "^(active|paused)$")]
    status: Option<String>,
}

/// Register a webhook endpoint.
#[utoipa::path(
    post,
    path = "/v1/subscriptions",
    tag = "subscriptions",
    description = "Registers an endpoint that receives matching events as signed POSTs \
        (`Waybill-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>`, \
        `Waybill-Event-Id` to de-duplicate on: delivery is at least once, in order per order). \
        The secret is returned only in this answer (and its replay). Requires \
        `Idempotency-Key`. Role `admin`.",
    params(("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")),
    request_body(content = CreateSubscriptionRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = CreatedSubscription),
        (status = 403, description = "forbidden (not admin)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (url, event_types[i], description, secret, status, start) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "webhooks-not-configured (no sealing key)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_subscription(State(state): State<AppState>, input: CommandInput) -> Response {
    let result = async {
        admin(&input.ctx)?;
        let key = sealing_key(&state)?;
        let new =
            parse_new(&input.body).map_err(|e| Problem::from(SubscriptionError::Validation(e)))?;
        let reply = store::create(&state.services.pool, key, &input.ctx, new)
            .await
            .map_err(Problem::from)?;
        let open = |stored| store::open_created(key, stored).map_err(Problem::from);
        Ok(match reply {
            Reply::Fresh(stored) => Reply::Fresh(open(stored)?),
            Reply::Replayed(stored) => Reply::Replayed(open(stored)?),
        })
    };
    answer(result.await)
}

/// List webhook subscriptions.
#[utoipa::path(
    get,
    path = "/v1/subscriptions",
    tag = "subscriptions",
    description = "Every registered endpoint with its delivery state (position, deliveries, \
        failures, retries waiting, dead letters). Secrets are never shown. Role `admin`.",
    responses(
        (status = 200, description = "The subscriptions", body = SubscriptionList),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (not admin)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_subscriptions(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        require_admin(&state, &headers)?;
        let items = store::list(&state.services.pool)
            .await
            .map_err(|e| Problem::from(SubscriptionError::from(e)))?;
        Ok::<_, Problem>(SubscriptionList { items })
    };
    match result.await {
        Ok(list) => Json(list).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Read one webhook subscription.
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{subscription_id}",
    tag = "subscriptions",
    description = "One endpoint and its delivery state. Role `admin`.",
    params(("subscription_id" = String, Path, description = "Subscription id (UUID)")),
    responses(
        (status = 200, description = "The subscription", body = Subscription),
        (status = 403, description = "forbidden (not admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found (subscription_id)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_subscription(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> Response {
    let result = async {
        require_admin(&state, &headers)?;
        let id = id_of(&raw_id, "subscription_id")?;
        store::get(&state.services.pool, id)
            .await
            .map_err(|e| Problem::from(SubscriptionError::from(e)))?
            .ok_or_else(|| not_found("subscription_id", &raw_id))
    };
    match result.await {
        Ok(subscription) => Json(subscription).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Change a webhook subscription.
#[utoipa::path(
    patch,
    path = "/v1/subscriptions/{subscription_id}",
    tag = "subscriptions",
    description = "Changes the URL, event types, description, secret or status (`paused` stops \
        deliveries; the subscription keeps its place and `active` resumes from there). \
        Requires `Idempotency-Key`. Role `admin`.",
    params(
        ("subscription_id" = String, Path, description = "Subscription id (UUID)"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    request_body(content = UpdateSubscriptionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = Subscription),
        (status = 403, description = "forbidden (not admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found (subscription_id)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (the member named) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "webhooks-not-configured (no sealing key)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn update_subscription(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    input: CommandInput,
) -> Response {
    let result = async {
        admin(&input.ctx)?;
        let key = sealing_key(&state)?;
        let id = id_of(&raw_id, "subscription_id")?;
        let patch = parse_patch(&input.body)
            .map_err(|e| Problem::from(SubscriptionError::Validation(e)))?;
        store::update(&state.services.pool, key, &input.ctx, id, patch)
            .await
            .map_err(Problem::from)
    };
    answer(result.await)
}

/// Remove a webhook subscription.
#[utoipa::path(
    delete,
    path = "/v1/subscriptions/{subscription_id}",
    tag = "subscriptions",
    description = "Removes the endpoint with its waiting retries and dead letters; deliveries \
        stop. Requires `Idempotency-Key`; no body. Role `admin`.",
    params(
        ("subscription_id" = String, Path, description = "Subscription id (UUID)"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "forbidden (not admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found (subscription_id)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn delete_subscription(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    input: KeyedInput,
) -> Response {
    let result = async {
        admin(&input.ctx)?;
        let id = id_of(&raw_id, "subscription_id")?;
        store::delete(&state.services.pool, &input.ctx, id)
            .await
            .map_err(Problem::from)
    };
    answer(result.await)
}

/// Filters of the dead-letter list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterParams {
    /// `dead` (default), `redelivering`, `redelivered` or `all`.
    #[param(pattern = "^(dead|redelivering|redelivered|all)$")]
    pub status: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Entries to skip, 0–100,000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 100000)]
    pub offset: Option<String>,
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

/// List a subscription's dead letters.
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{subscription_id}/dead-letters",
    tag = "subscriptions",
    description = "Events given up on for this endpoint after every attempt failed (the order's \
        later events went on), newest first. Role `admin`.",
    params(
        ("subscription_id" = String, Path, description = "Subscription id (UUID)"),
        DeadLetterParams
    ),
    responses(
        (status = 200, description = "A page of dead letters", body = DeadLetterPage),
        (status = 403, description = "forbidden (not admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found (subscription_id)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (status, limit, offset)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_dead_letters(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    Query(params): Query<DeadLetterParams>,
) -> Response {
    let result = async {
        require_admin(&state, &headers)?;
        let id = id_of(&raw_id, "subscription_id")?;
        let status = match params.status.as_deref() {
            None | Some("dead") => Some("dead"),
            Some(s @ ("redelivering" | "redelivered")) => Some(s),
            Some("all") => None,
            Some(_) => {
                return Err(Problem::field(
                    "status",
                    "must be one of: dead, redelivering, redelivered, all",
                ))
            }
        };
        let limit = number("limit", params.limit.as_deref(), 100, (1, 500))?;
        let offset = number("offset", params.offset.as_deref(), 0, (0, 100_000))?;
        store::dead_letters(&state.services.pool, id, status, limit, offset)
            .await
            .map_err(|e| Problem::from(SubscriptionError::from(e)))?
            .ok_or_else(|| not_found("subscription_id", &raw_id))
    };
    match result.await {
        Ok(page) => Json(page).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// Send a dead letter again.
#[utoipa::path(
    post,
    path = "/v1/subscriptions/{subscription_id}/dead-letters/{dead_letter_id}/redeliver",
    tag = "subscriptions",
    description = "Queues the event again with fresh attempts, ahead of its order's later \
        events still waiting for this endpoint; the dead letter shows `redelivered` once the \
        endpoint accepted it. Requires `Idempotency-Key`; no body. Role `admin`.",
    params(
        ("subscription_id" = String, Path, description = "Subscription id (UUID)"),
        ("dead_letter_id" = String, Path, description = "Dead letter id (UUID)"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    responses(
        (status = 202, description = "Queued", body = Redelivery),
        (status = 403, description = "forbidden (not admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found (subscription_id, dead_letter_id)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn redeliver(
    State(state): State<AppState>,
    Path((raw_id, raw_dead)): Path<(String, String)>,
    input: KeyedInput,
) -> Response {
    let result = async {
        admin(&input.ctx)?;
        let id = id_of(&raw_id, "subscription_id")?;
        let dead = id_of(&raw_dead, "dead_letter_id")?;
        store::redeliver(&state.services.pool, &input.ctx, id, dead)
            .await
            .map_err(Problem::from)
    };
    answer(result.await)
}

/// Parameters of the pull feed.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// A `next_cursor` from an earlier page; `0`, empty or absent: from the beginning.
    #[param(value_type = Option<String>, pattern = "^([0-9]{1,18})?$")]
    pub after: Option<String>,
    /// Events per page, 1–1,000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Comma-separated event types (`OrderPlaced,OrderConfirmed`); absent: all.
    #[param(max_length = 4096)]
    pub types: Option<String>,
}

/// A page of the pull feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedPageBody {
    /// In feed order.
    pub events: Vec<FeedEvent>,
    /// Pass as `after` for the next page (also when `events` is empty: poll with it).
    pub next_cursor: String,
    /// More events are there right now.
    pub has_more: bool,
}

fn parse_types(raw: Option<&str>) -> Result<Vec<String>, Problem> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if raw.len() > 4096 {
        return Err(Problem::field("types", "must be at most 4096 characters"));
    }
    let mut types = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match OrderEventKind::from_name(name) {
            Some(kind) => types.push(kind.name().to_owned()),
            None => {
                return Err(Problem::field(
                    "types",
                    "must be comma-separated event type names (OrderPlaced, OrderConfirmed, ...)",
                ))
            }
        }
    }
    types.sort();
    types.dedup();
    Ok(types)
}

/// Read the event feed.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "subscriptions",
    description = "The pull feed: every event of the log in feed order, in the same shape as \
        webhook bodies. Page with `after=<next_cursor>`; a cursor never skips an event, since \
        positions are given out after commit by one writer, in order. Role `admin`.",
    params(FeedParams),
    responses(
        (status = 200, description = "A page of events", body = FeedPageBody),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (not admin)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (after, limit, types)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn read_feed(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<FeedParams>,
) -> Response {
    let result = async {
        require_admin(&state, &headers)?;
        let after = match params.after.as_deref() {
            None | Some("") => 0,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0 && raw.len() <= 18 && raw.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    Problem::field("after", "must be a cursor from next_cursor (digits)")
                })?,
        };
        let limit = number("limit", params.limit.as_deref(), 100, (1, MAX_FEED_PAGE))?;
        let types = parse_types(params.types.as_deref())?;
        let page = feed::read_after(&state.services.pool, after, limit, &types)
            .await
            .map_err(|e| Problem::from(crate::commands::CommandError::from(e)))?;
        Ok::<_, Problem>(FeedPageBody {
            events: page.events,
            next_cursor: page.next.to_string(),
            has_more: page.more,
        })
    };
    match result.await {
        Ok(page) => Json(page).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// This module's part of the command API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        create_subscription, list_subscriptions, get_subscription, update_subscription,
        delete_subscription, list_dead_letters, redeliver, read_feed
    ),
    components(schemas(
        CreateSubscriptionRequest, UpdateSubscriptionRequest, Subscription, CreatedSubscription,
        SubscriptionList, DeadLetter, DeadLetterPage, Redelivery, FeedPageBody, FeedEvent
    )),
    modifiers(&ApiKeyAuth, &JsonBodyRules)
)]
pub struct SubscriptionsDoc;
