//! The HTTP handlers: extract, call one command, map the result.

use std::time::Instant;

use super::problem::Path;
use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::problem::Problem;
use super::request::{CommandInput, PlaceOrderBody, PlaceOrderInput};
use super::AppState;
use crate::commands::{self, CommandContext, CommandError, Reply};
use crate::idempotency::StoredResponse;

/// Header set on a response replayed from an idempotency record.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Place an order.
#[utoipa::path(
    post,
    path = "/v1/orders",
    tag = "orders",
    description = "Captures an order from a channel. Requires `Idempotency-Key`: a retry with the \
        same key and body replays the first response byte for byte (with `Idempotent-Replayed: \
        true`); the same key with another body is refused with 422 `idempotency-key-reused`. The \
        same `(channel, channel_order_ref)` sent with another key answers 200 with the existing \
        order (`existing: true`). Returns the consistency token in the body and in \
        `X-Consistency-Token`.",
    params(
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry"),
        ("X-Correlation-Id" = Option<String>, Header, description = "UUID carried into the events")
    ),
    request_body(content = super::openapi::PlaceOrderRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Order placed", body = commands::PlaceOrderResponse),
        (status = 200, description = "Channel reference already captured: the existing order", body = commands::PlaceOrderResponse),
        (status = 400, description = "malformed-json or missing-idempotency-key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload-too-large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported-media-type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (with `field` and `errors`) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn place_order(State(state): State<AppState>, input: PlaceOrderInput) -> Response {
    let span = command_span("place_order", &input.ctx);
    let started = Instant::now();
    let result = match input.body {
        PlaceOrderBody::Parsed(order) => {
            commands::place_parsed_order(&state.services, &input.ctx, *order)
                .instrument(span.clone())
                .await
        }
        PlaceOrderBody::Json(body) => {
            commands::place_order(&state.services, &input.ctx, &body)
                .instrument(span.clone())
                .await
        }
    };
    finish(&span, "place_order", started, result)
}

/// Cancel an order.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/cancel",
    tag = "orders",
    description = "Cancels a placed order. Requires `Idempotency-Key` (same replay rules as \
        placing). If another command changes the order while this one is decided, the order is \
        re-read and the decision made again, up to 3 times; after that the answer is 409 \
        `concurrency-conflict` and the client may retry with the same key.",
    params(
        ("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry"),
        ("X-Correlation-Id" = Option<String>, Header, description = "UUID carried into the events")
    ),
    request_body(content = super::openapi::CancelOrderRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Order cancelled", body = commands::CancelOrderResponse),
        (status = 400, description = "malformed-json or missing-idempotency-key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "order-not-found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "order-already-cancelled or concurrency-conflict", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn cancel_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    input: CommandInput,
) -> Response {
    let span = command_span("cancel_order", &input.ctx);
    let started = Instant::now();
    let result = commands::cancel_order(&state.services, &input.ctx, &id, &input.body)
        .instrument(span.clone())
        .await;
    finish(&span, "cancel_order", started, result)
}

pub(super) fn command_span(command: &'static str, ctx: &CommandContext) -> tracing::Span {
    tracing::info_span!(
        "command",
        command,
        order_id = tracing::field::Empty,
        correlation_id = %ctx.correlation_id,
        idempotency_key = %ctx.idempotency_key,
    )
}

pub(super) fn finish(
    span: &tracing::Span,
    command: &'static str,
    started: Instant,
    result: Result<Reply, CommandError>,
) -> Response {
    let (outcome, response) = match result {
        Ok(Reply::Fresh(stored)) => ("ok".to_owned(), to_response(stored, false)),
        Ok(Reply::Replayed(stored)) => ("replayed".to_owned(), to_response(stored, true)),
        Err(error) => {
            let problem = Problem::from(error);
            (problem.slug().to_owned(), problem.into_response())
        }
    };
    span.in_scope(|| {
        tracing::debug!(
            command,
            outcome = %outcome,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "command answered"
        );
    });
    metrics::histogram!("waybill_command_duration_seconds", "command" => command)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("waybill_commands_total", "command" => command, "outcome" => outcome)
        .increment(1);
    response
}

/// The stored status, headers and body, exactly.
pub(super) fn to_response(stored: StoredResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    if replayed {
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// Liveness.
pub async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Whether every dependency of this process answers (see [`crate::readiness`]).
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Every dependency answers", body = crate::readiness::ReadyBody),
        (status = 503, description = "A dependency does not answer: `down` names it", body = crate::readiness::NotReadyBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before asking again"))),
    ))]
pub async fn ready(State(state): State<AppState>) -> Response {
    state.readiness.answer().await
}

pub async fn not_found() -> Problem {
    Problem::not_found_route()
}
