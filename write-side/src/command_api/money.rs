//! Endpoints that move money after checkout: refunds (`POST /v1/orders/{id}/refunds`).

use std::time::Instant;

use axum::extract::{Path, State};
use axum::response::Response;
use tracing::Instrument;
use waybill_schemas::api_keys::Role;

use super::handlers::{command_span, finish};
use super::problem::Problem;
use super::request::MoneyCommandInput;
use super::AppState;
use crate::commands::{self, CommandError};

/// Refund all or part of what an order captured.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/refunds",
    tag = "payments",
    description = "Agents, admins and services (returns) give money back to the card the order \
        was paid with. Requires `Idempotency-Key`. Partial and repeated refunds add up to at most \
        what was captured (less refunds under way, open disputes and lost chargebacks): more is \
        refused with 422 naming `amount_minor`; another currency than the order's names \
        `currency`. The request is accepted (202, `status: pending`); the gateway is then asked \
        and the order shows `Refund of … sent to your card` once it answers.",
    params(
        ("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    request_body(content = super::openapi::RefundRequestBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Refund requested", body = commands::RefundResponse),
        (status = 400, description = "malformed-json or missing-idempotency-key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (role finance)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "order-not-found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid-transition (nothing captured yet)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (amount_minor, currency, reason, kind) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn refund_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    input: MoneyCommandInput,
) -> Response {
    let span = command_span("refund_order", &input.ctx);
    let started = Instant::now();
    let result = if matches!(input.ctx.role, Role::Agent | Role::Admin | Role::Service) {
        commands::refund_order(&state.services, &input.ctx, &id, &input.body)
            .instrument(span)
            .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish("refund_order", started, result)
}
