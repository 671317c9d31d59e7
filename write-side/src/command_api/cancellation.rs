//! `POST /v1/orders/{id}/lines/cancel`: cancel units of a confirmed order that have not
//! shipped (service, agent, admin; `Idempotency-Key`). The whole-order cancel stays at
//! `POST /v1/orders/{id}/cancel` and, past confirmation, cancels every unit left the same way.

use std::time::Instant;

use super::problem::Path;
use axum::extract::State;
use axum::response::Response;
use tracing::Instrument;
use utoipa::ToSchema;

use super::handlers::{command_span, finish};
use super::problem::Problem;
use super::request::CommandInput;
use super::AppState;
use crate::commands;

/// `POST /v1/orders/{id}/lines/cancel` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct CancelLinesRequest {
    /// At least one: which line (`line_no` as placed) and how many of its units (more than 0).
    #[schema(min_items = 1, max_items = 200)]
    lines: Vec<CancelLineRequest>,
    /// customer_request, fraud, out_of_stock or other.
    #[schema(pattern = "^(customer_request|fraud|out_of_stock|other)$")]
    reason: String,
    /// At most 1,000 characters.
    #[schema(max_length = 1000)]
    note: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct CancelLineRequest {
    #[schema(minimum = 1)]
    line_no: u32,
    #[schema(minimum = 1, maximum = 10000)]
    quantity: u32,
}

/// Cancel units of a confirmed order.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/lines/cancel",
    tag = "orders",
    description = "Cancels units of a confirmed order that have not left a node: not routed yet, \
        or at a node that has not packed them (the node's task is amended). Their stock is given \
        back; their value (line price after discounts, with its tax share; shipping too when \
        nothing is left to ship) is not captured, or refunded if it was (`kind: cancellation`). \
        Units shipped, collected or packed are refused with 422 naming `lines[i].quantity`; an \
        unknown line names `lines[i].line_no`. Requires `Idempotency-Key`.",
    params(
        ("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry"),
        ("X-Correlation-Id" = Option<String>, Header, description = "UUID carried into the events")
    ),
    request_body(content = CancelLinesRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Units cancelled", body = commands::CancelLinesResponse),
        (status = 400, description = "malformed-json or missing-idempotency-key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "order-not-found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "order-already-cancelled, command-refused (not confirmed yet, closed) or concurrency-conflict", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (with `field`) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn cancel_lines(
    State(state): State<AppState>,
    Path(id): Path<String>,
    input: CommandInput,
) -> Response {
    let span = command_span("cancel_lines", &input.ctx);
    let started = Instant::now();
    let result = commands::cancel_lines(&state.services, &input.ctx, &id, &input.body)
        .instrument(span.clone())
        .await;
    finish(&span, "cancel_lines", started, result)
}
