//! Endpoints of the checkout flow: the payment gateway's signed webhooks, and the fraud review
//! queue agents work through (`GET /v1/reviews`, `POST /v1/orders/{id}/review`).

// A refusal is the response itself, built once per refused request; boxing it buys nothing.
#![allow(clippy::result_large_err)]

use std::time::Instant;

use super::problem::{Path, Query, RawBody};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use waybill_schemas::api_keys::Role;
use waybill_schemas::events::RiskReason;
use waybill_schemas::OrderId;

use super::handlers::{command_span, finish};
use super::problem::{Problem, ProblemType};
use super::request::CommandInput;
use super::AppState;
use crate::checkout::webhooks::{self, WebhookOutcome};
use crate::checkout::{append::FlowOrder, flows};
use crate::commands::{self, CommandError};
use crate::payment::webhook as signature;

/// Header carrying the gateway's webhook signature.
pub const SIGNATURE_HEADER: &str = "waybill-gateway-signature";
/// Oldest webhook timestamp accepted, against replays of captured requests.
const SIGNATURE_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(300);
/// Most orders one page of the review queue lists.
const MAX_PAGE: i64 = 100;

/// What a webhook delivery did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookResponse {
    /// `applied`, `duplicate` or `ignored`.
    pub outcome: String,
    pub detail: Option<String>,
}

/// Receive a payment gateway webhook.
#[utoipa::path(
    post,
    path = "/v1/webhooks/payments",
    tag = "checkout",
    description = "The payment gateway's signed event (header `Waybill-Gateway-Signature: \
        t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`). Each event id is applied once: a \
        redelivery answers 200 `duplicate` and changes nothing; an event that no longer fits \
        the order (a failure after a success) answers 200 `ignored`.",
    request_body(content = String, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied, duplicate or ignored", body = WebhookResponse),
        (status = 400, description = "malformed-webhook", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "invalid-signature", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn payment_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let started = Instant::now();
    let now = Utc::now();
    let Some(secret) = state.webhook_secret.as_deref() else {
        return Problem::new(
            ProblemType::WebhooksNotConfigured,
            "this command API has no payment webhook secret",
        )
        .into_response();
    };
    let presented = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Err(error) = signature::verify(secret, presented, &body, now, SIGNATURE_TOLERANCE) {
        metrics::counter!("waybill_webhooks_total", "outcome" => "invalid_signature").increment(1);
        return Problem::new(ProblemType::InvalidSignature, error.to_string()).into_response();
    }
    let event = match signature::parse(&body) {
        Ok(event) => event,
        Err(error) => {
            return Problem::new(ProblemType::MalformedWebhook, error.to_string())
                .with_field("body")
                .into_response()
        }
    };
    let span =
        tracing::info_span!("payment_webhook", event_id = %event.id, kind = event.kind.type_name());
    let result =
        webhooks::apply_gateway_event(&state.services.pool, &state.services.store, &event, now)
            .instrument(span.clone())
            .await;
    metrics::histogram!("waybill_webhook_duration_seconds").record(started.elapsed());
    match result {
        Ok(WebhookOutcome::TooEarly(why)) => {
            metrics::counter!("waybill_webhooks_total", "outcome" => "too_early").increment(1);
            tracing::info!(detail = %why, "webhook outran its predecessor; the gateway will redeliver");
            Problem::new(ProblemType::WebhookTooEarly, why).into_response()
        }
        Ok(WebhookOutcome::Applied) => webhook_answer("applied", None),
        Ok(WebhookOutcome::Duplicate) => webhook_answer("duplicate", None),
        Ok(WebhookOutcome::Ignored(why)) => webhook_answer("ignored", Some(why)),
        Err(error) => {
            tracing::error!(%error, "webhook not applied; the gateway will redeliver");
            let error = match error {
                crate::checkout::CheckoutError::Database(e) => CommandError::from(e),
                crate::checkout::CheckoutError::EventStore(e) => CommandError::from(e),
            };
            Problem::from(error).into_response()
        }
    }
}

/// The 200 answer to a webhook that was applied, a duplicate, or acknowledged as ignored.
fn webhook_answer(label: &'static str, detail: Option<String>) -> Response {
    metrics::counter!("waybill_webhooks_total", "outcome" => label).increment(1);
    Json(WebhookResponse {
        outcome: label.to_owned(),
        detail,
    })
    .into_response()
}

/// Approve or reject an order held for fraud review.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/review",
    tag = "checkout",
    description = "Agents (role `agent` or `admin`) decide an order the risk rules held for \
        review: `approve` lets the checkout continue, `reject` cancels it. Requires \
        `Idempotency-Key`. 409 `invalid-transition` if the order is not in review.",
    params(
        ("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    request_body(content = super::openapi::ReviewOrderRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Decision recorded", body = commands::ReviewOrderResponse),
        (status = 403, description = "forbidden (not an agent)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "order-not-found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid-transition", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn review_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    input: CommandInput,
) -> Response {
    let span = command_span("review_order", &input.ctx);
    let started = Instant::now();
    let result = if matches!(input.ctx.role, Role::Agent | Role::Admin) {
        commands::review_order(&state.services, &input.ctx, &id, &input.body)
            .instrument(span.clone())
            .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish(&span, "review_order", started, result)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReviewQueueParams {
    /// The `next_cursor` of the previous page (the last order id it listed; empty for the
    /// first page).
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// One order waiting for an agent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewItem {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    pub channel: String,
    pub channel_order_ref: String,
    pub customer_name: String,
    pub customer_email: String,
    pub grand_total_minor: i64,
    pub currency: String,
    pub placed_at: Option<DateTime<Utc>>,
    pub score: u32,
    /// Every rule that fired, with its points and why.
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<RiskReason>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewQueue {
    pub items: Vec<ReviewItem>,
    pub next_cursor: Option<String>,
}

/// The fraud review queue.
#[utoipa::path(
    get,
    path = "/v1/reviews",
    tag = "checkout",
    description = "Orders the risk rules held for review, oldest first, with the rules that \
        fired. Role `agent` or `admin`. Cursor-paginated.",
    params(ReviewQueueParams),
    responses(
        (status = 200, description = "A page of the queue", body = ReviewQueue),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (cursor or limit)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn review_queue(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<ReviewQueueParams>,
) -> Response {
    match list_reviews(&state, &headers, params).await {
        Ok(queue) => Json(queue).into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn list_reviews(
    state: &AppState,
    headers: &HeaderMap,
    params: ReviewQueueParams,
) -> Result<ReviewQueue, Problem> {
    let principal = super::request::authenticate(state, headers)?;
    if !matches!(principal.role, Role::Agent | Role::Admin) {
        return Err(Problem::forbidden());
    }
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::field(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let after = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(
            OrderId::parse(raw)
                .map_err(|_| Problem::field("cursor", "is not a cursor this API returned"))?,
        ),
    };
    let pool = &state.services.pool;
    let waiting = flows::waiting_in(pool, flows::REVIEW_STAGE, after, limit)
        .await
        .map_err(|e| Problem::from(CommandError::from(e)))?;
    let stream_ids: Vec<String> = waiting.iter().map(|(id, _)| id.stream_id()).collect();
    let mut streams = state
        .services
        .store
        .read_streams(&stream_ids)
        .await
        .map_err(|e| Problem::from(CommandError::from(e)))?;
    let mut items = Vec::with_capacity(waiting.len());
    for (order_id, _) in &waiting {
        let envelopes = streams.remove(&order_id.stream_id()).unwrap_or_default();
        let Ok(flow) = FlowOrder::from_stream(*order_id, &envelopes) else {
            continue;
        };
        let Some(state) = flow.order.state() else {
            continue;
        };
        let (placed, Some(risk)) = (state.placed(), state.risk_assessment()) else {
            continue;
        };
        items.push(ReviewItem {
            order_id: *order_id,
            channel: placed.channel.as_str().to_owned(),
            channel_order_ref: placed.channel_order_ref.clone(),
            customer_name: placed.customer.name.clone(),
            customer_email: placed.customer.email.as_str().to_owned(),
            grand_total_minor: placed.totals.grand_total.minor,
            currency: placed.currency.code().to_owned(),
            placed_at: Some(placed.placed_at),
            score: risk.score,
            reasons: risk.reasons.clone(),
        });
    }
    let next_cursor = (waiting.len() as i64 == limit)
        .then(|| waiting.last().map(|(id, _)| id.to_string()))
        .flatten();
    Ok(ReviewQueue { items, next_cursor })
}
