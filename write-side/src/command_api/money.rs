//! Endpoints that move money after checkout: refunds to the card or as store credit
//! (`POST /v1/orders/{id}/refunds`), extra charges (`POST /v1/orders/{id}/charges`) and
//! evidence for card disputes (`POST /v1/orders/{id}/disputes/{dispute_id}/evidence`), and
//! gateway settlement report imports (`POST /v1/settlement/imports`).

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
            .instrument(span.clone())
            .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish(&span, "refund_order", started, result)
}

/// Charge the order's card again.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/charges",
    tag = "payments",
    description = "Agents, admins and services (exchanges) charge the card the order was paid \
        with again, after its own capture: an exchange for a dearer item, or a new attempt after \
        a declined extra charge. Requires `Idempotency-Key`. The request is accepted (202, \
        `status: pending`); the gateway is then asked for a new authorization and its capture \
        (key `<order>:charge:<charge_id>`), and the order shows `Extra payment of … taken from \
        your card` or that it could not be taken. The money is refundable like the order's own \
        capture. Another currency than the order's names `currency`; an order with nothing \
        captured yet, or not paid by card, is 409.",
    params(
        ("id" = String, Path, description = "Order id"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    request_body(content = super::openapi::ChargeRequestBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Charge requested", body = commands::ChargeResponse),
        (status = 400, description = "malformed-json or missing-idempotency-key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (role finance)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "order-not-found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid-transition (nothing captured yet, no card)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (amount_minor, currency, reason, return_id: unknown or not an exchange) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn charge_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    input: MoneyCommandInput,
) -> Response {
    let span = command_span("charge_order", &input.ctx);
    let started = Instant::now();
    let result = if matches!(input.ctx.role, Role::Agent | Role::Admin | Role::Service) {
        commands::charge_order(&state.services, &input.ctx, &id, &input.body)
            .instrument(span.clone())
            .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish(&span, "charge_order", started, result)
}

/// Send evidence for a card dispute.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/disputes/{dispute_id}/evidence",
    tag = "payments",
    description = "Agents, finance and admins answer a card dispute (opened by the gateway's \
        `dispute.opened` webhook) with evidence while it is open. Requires `Idempotency-Key`. \
        The gateway takes the evidence first, then `ChargebackEvidenceSubmitted` is recorded; \
        the gateway's decision arrives later as `dispute.won` / `dispute.lost`.",
    params(
        ("id" = String, Path, description = "Order id"),
        ("dispute_id" = String, Path, description = "The gateway's dispute id"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    request_body(content = super::openapi::EvidenceRequestBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Evidence sent and recorded", body = commands::EvidenceResponse),
        (status = 403, description = "forbidden (role service)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "order-not-found or dispute-not-found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid-transition (dispute decided, or the gateway refused)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (text) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn submit_evidence(
    State(state): State<AppState>,
    Path((id, dispute_id)): Path<(String, String)>,
    input: MoneyCommandInput,
) -> Response {
    let span = command_span("submit_evidence", &input.ctx);
    let started = Instant::now();
    let result = if matches!(input.ctx.role, Role::Agent | Role::Finance | Role::Admin) {
        commands::submit_evidence(
            &state.services,
            state.gateway.as_deref(),
            &input.ctx,
            &id,
            &dispute_id,
            &input.body,
        )
        .instrument(span.clone())
        .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish(&span, "submit_evidence", started, result)
}

/// Import a gateway settlement report.
#[utoipa::path(
    post,
    path = "/v1/settlement/imports",
    tag = "settlement",
    description = "Finance and admins import a gateway's settlement report for a day: fetched \
        through the gateway adapter (`{\"gateway\": \"sandbox\", \"date\": \"2026-11-25\"}`) or \
        sent inline (`\"csv\"`, at most 48 KiB). Requires `Idempotency-Key`. The report is \
        recorded as `SettlementReportImported` (identified by the SHA-256 of its bytes) with a \
        `PayoutRecorded` per payout not recorded before; importing the same report again changes \
        nothing and answers 200 `already_imported`. The report is read strictly as RFC 4180 \
        CSV (quoted fields may hold commas and line breaks): its header names exactly the \
        columns transaction_id, type, order_id, gross_minor, fee_minor, net_minor, currency, \
        original_minor, original_currency, payout_id, transaction_date, settlement_date (any \
        order; an unknown or repeated column is refused), every record has as many fields as \
        the header, and no line settles before its transaction_date or after the report's \
        day. A malformed report is 422 with one error per bad cell, `field` = \
        `csv[<line>].<column>` (the line a record starts on; the header is line 1; `*` for a \
        whole record).",
    params(
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    request_body(content = super::openapi::ImportRequestBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Imported", body = commands::ImportResponse),
        (status = 200, description = "This report was imported before; nothing changed", body = commands::ImportResponse),
        (status = 403, description = "forbidden (not finance or admin)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (gateway, date, csv[<line>].<column>) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "gateway-unavailable (the report could not be fetched)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn import_settlement(
    State(state): State<AppState>,
    input: MoneyCommandInput,
) -> Response {
    let span = tracing::info_span!(
        "command",
        command = "import_settlement",
        correlation_id = %input.ctx.correlation_id,
        idempotency_key = %input.ctx.idempotency_key,
    );
    let started = Instant::now();
    let result = if matches!(input.ctx.role, Role::Finance | Role::Admin) {
        commands::import_settlement(
            &state.services,
            state.gateway.as_deref(),
            &state.gateway_name,
            &input.ctx,
            &input.body,
        )
        .instrument(span.clone())
        .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish(&span, "import_settlement", started, result)
}
