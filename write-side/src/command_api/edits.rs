//! `POST /v1/orders/{id}/edits/preview` and `POST /v1/orders/{id}/edits`: change a confirmed
//! order's quantities, lines or shipping address while it waits in the fulfillment hold
//! (the owning customer's JWT, service, agent, admin; `Idempotency-Key`). Another customer's
//! order answers 404, as the query API does.

use std::time::Instant;

use super::problem::Path;
use axum::extract::State;
use axum::response::Response;
use tracing::Instrument;
use utoipa::ToSchema;

use super::handlers::{command_span, finish};
use super::problem::Problem;
use super::request::MoneyCommandInput;
use super::AppState;
use waybill_schemas::api_keys::Role;

use crate::commands::{self, CommandError};

/// `POST /v1/orders/{id}/edits` (and `/edits/preview`) body. At least one of the three.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct EditRequest {
    /// New quantities of existing lines (`line_no` as placed); 0 removes the line.
    changes: Option<Vec<EditLineChange>>,
    /// Lines to add, priced in the order's currency (tax computed as at placement).
    add: Option<Vec<EditNewLine>>,
    /// A new shipping address, same shape as at placement (validated the same way).
    shipping_address: Option<serde_json::Value>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct EditLineChange {
    line_no: u32,
    quantity: u32,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct EditNewLine {
    sku: String,
    name: String,
    quantity: u32,
    unit_price: EditPrice,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct EditPrice {
    amount_minor: i64,
    currency: String,
}

/// Preview an edit of a confirmed order.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/edits/preview",
    tag = "orders",
    description = "What the edit would do, recording nothing: the order's lines re-priced as \
        placement prices them, the new totals, the difference and what happens to the money \
        (none, capture_less, within_authorization, extra_charge, refund). Same refusals as the \
        edit itself.",
    params(
        ("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = String, Header, description = "Required like every command"),
    ),
    request_body(content = EditRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "What the edit would do", body = commands::EditResponse),
        (status = 400, description = "malformed-json or missing-idempotency-key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "order-not-found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not-editable (not confirmed, routed, cancelled, above the authorization)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (with `field`: `changes[i].line_no`, `add[i].unit_price.currency`, ...)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn preview_edit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    input: MoneyCommandInput,
) -> Response {
    let span = command_span("preview_edit", &input.ctx);
    let started = Instant::now();
    let result = if editor(input.ctx.role) {
        commands::preview_edit(&state.services, &input.ctx, &id, &input.body)
            .instrument(span.clone())
            .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish(&span, "preview_edit", started, result)
}

/// Edit a confirmed order in the fulfillment hold.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/edits",
    tag = "orders",
    description = "Records the edit (`OrderEdited`): routing then covers the edited lines and \
        the capture takes the new total; if the order was captured already the difference is \
        charged to the card or refunded. Only a confirmed order still in the fulfillment hold \
        (`WAYBILL_FULFILLMENT_HOLD_SECS`) can be edited. Requires `Idempotency-Key`.",
    params(
        ("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry"),
        ("X-Correlation-Id" = Option<String>, Header, description = "UUID carried into the events")
    ),
    request_body(content = EditRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Edit recorded", body = commands::EditResponse),
        (status = 400, description = "malformed-json or missing-idempotency-key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "order-not-found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not-editable or concurrency-conflict", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (with `field`) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn edit_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    input: MoneyCommandInput,
) -> Response {
    let span = command_span("edit_order", &input.ctx);
    let started = Instant::now();
    let result = if editor(input.ctx.role) {
        commands::edit_order(&state.services, &input.ctx, &id, &input.body)
            .instrument(span.clone())
            .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish(&span, "edit_order", started, result)
}

/// Who may edit: the order's customer (checked against the order), agents, admins, services.
fn editor(role: Role) -> bool {
    matches!(
        role,
        Role::Customer | Role::Agent | Role::Admin | Role::Service
    )
}
