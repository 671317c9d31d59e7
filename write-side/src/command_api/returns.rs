//! Return endpoints: `POST /v1/orders/{id}/returns` (the owning customer, or an agent, admin or
//! service) and `POST /v1/orders/{id}/returns/{return_id}/inspection` (agents and admins, when
//! the receiving node does not report the inspection itself).

use std::time::Instant;

use super::problem::Path;
use axum::extract::State;
use axum::response::Response;
use tracing::Instrument;
use waybill_schemas::api_keys::Role;

use super::handlers::{command_span, finish};
use super::problem::Problem;
use super::request::MoneyCommandInput;
use super::AppState;
use crate::commands::{self, CommandError};

/// Start a return of delivered or collected units.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/returns",
    tag = "returns",
    description = "A signed-in customer (JWT role `customer`, their own orders only: others' \
        answer 404), or an agent, admin or service starts a return. Requires `Idempotency-Key`. \
        Only delivered or collected units within the return window (write-side/RETURNS.md), \
        of returnable SKUs, for an allowed reason, and never more than delivered minus already \
        returned; each refusal is 422 naming the field (`lines[0].quantity`, `lines[0].reason`, \
        `lines[0].line_no`). `resolution` is `refund` (other resolutions answer 422 naming \
        `resolution`). Agents and admins may send `waive_fees: true`. Answers 201 with the \
        return id, the fees and the expected refund; the label follows (tracking view).",
    params(
        ("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    request_body(content = super::openapi::ReturnRequestBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Return requested", body = commands::ReturnResponse),
        (status = 400, description = "malformed-json or missing-idempotency-key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (role finance)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "order-not-found (also another customer's order)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (lines[i].line_no, lines[i].quantity, lines[i].reason, resolution, waive_fees) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn request_return(
    State(state): State<AppState>,
    Path(id): Path<String>,
    input: MoneyCommandInput,
) -> Response {
    let span = command_span("request_return", &input.ctx);
    let started = Instant::now();
    let result = if matches!(
        input.ctx.role,
        Role::Customer | Role::Agent | Role::Admin | Role::Service
    ) {
        commands::request_return(&state.services, &input.ctx, &id, &input.body)
            .instrument(span.clone())
            .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish(&span, "request_return", started, result)
}

/// Record the inspection of a returned parcel.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/returns/{return_id}/inspection",
    tag = "returns",
    description = "An agent or admin records what inspection found, when the receiving node \
        does not report it (same effect as the node's `return_inspected` webhook; a return not \
        yet reported received counts as received). Per returned line: `accepted + rejected` = \
        the returned quantity, `resellable ≤ accepted`. Requires `Idempotency-Key`. The \
        fulfillment flow then restocks the resellable units and refunds the accepted ones.",
    params(
        ("id" = String, Path, description = "Order id"),
        ("return_id" = String, Path, description = "Return id `<order id>-R<n>`"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    request_body(content = super::openapi::InspectionRequestBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Inspection recorded", body = commands::ReturnResponse),
        (status = 400, description = "malformed-json or missing-idempotency-key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (roles customer, service, finance)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "order-not-found or return-not-found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid-transition (already inspected differently)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (lines[i].line_no: not in the return or twice; lines[i].sku: not the returned line's; lines[i].accepted, lines[i].resellable; lines: a returned line missing) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn record_inspection(
    State(state): State<AppState>,
    Path((id, return_id)): Path<(String, String)>,
    input: MoneyCommandInput,
) -> Response {
    let span = command_span("record_inspection", &input.ctx);
    let started = Instant::now();
    let result = if matches!(input.ctx.role, Role::Agent | Role::Admin) {
        commands::record_inspection(&state.services, &input.ctx, &id, &return_id, &input.body)
            .instrument(span.clone())
            .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish(&span, "record_inspection", started, result)
}
