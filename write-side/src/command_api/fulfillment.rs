//! Fulfillment webhooks: what nodes (`POST /v1/webhooks/wms`) and carriers
//! (`POST /v1/webhooks/carrier`) report, signed with the logistics webhook secret. Each webhook
//! id is applied once; a redelivery answers `duplicate`; a carrier scan older than the recorded
//! one, or a report that no longer fits, answers `ignored` with why.

#![allow(clippy::result_large_err)]

use std::time::Instant;

use super::problem::RawBody;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use tracing::Instrument;

use super::checkout::WebhookResponse;
use super::problem::{Problem, ProblemType};
use super::AppState;
use crate::fulfillment::logistics::{CarrierWebhook, NodeWebhook, SIGNATURE_HEADER};
use crate::fulfillment::webhook_batcher::WebhookRequest;
use crate::fulfillment::webhooks::{self, WebhookOutcome};
use crate::payment::webhook as signature;

const SIGNATURE_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(300);

/// Receive a node's (WMS) report on a fulfillment order.
#[utoipa::path(
    post,
    path = "/v1/webhooks/wms",
    tag = "fulfillment",
    description = "A node's signed report (header `Waybill-Logistics-Signature: t=<unix>,v1=<hex \
        HMAC-SHA256 of \"<t>.<body>\">`): `{id, order_id, fulfillment_id, occurred_at, report: \
        {type: picked | packed | short_picked (missing) | ready_for_pickup (pickup_code, \
        collect_by) | picked_up (pickup_code) | return_received | return_inspected (lines: \
        [{line_no, sku, accepted, rejected, resellable, note?}])}}`; for the two return reports \
        `fulfillment_id` is the return id. Each id is applied once. An `occurred_at` more than \
        the configured clock skew (`WAYBILL_WEBHOOK_CLOCK_SKEW_SECS`, 300 s) ahead of receipt is \
        refused with 422 naming the field, and nothing is stored.",
    request_body(content = String, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied, duplicate or ignored", body = WebhookResponse),
        (status = 400, description = "malformed-webhook", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "invalid-signature", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed: `occurred_at` too far ahead of receipt", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn wms_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let started = Instant::now();
    if let Err(refused) = verified(&state, &headers, &body) {
        return refused;
    }
    let webhook: NodeWebhook = match serde_json::from_slice(&body) {
        Ok(w) => w,
        Err(e) => return malformed(e.to_string()),
    };
    if let Err(bad) = webhooks::check_clock(
        "occurred_at",
        webhook.occurred_at,
        Utc::now(),
        state.webhook_clock_skew,
    ) {
        return refused(bad);
    }
    let command = webhooks::node_command(&webhook);
    let span =
        tracing::info_span!("wms_webhook", order_id = %webhook.order_id, event_id = %webhook.id);
    let result = apply(
        &state,
        webhooks::WMS,
        &webhook.id,
        webhook.order_id,
        command,
    )
    .instrument(span)
    .await;
    respond(result, started)
}

/// Receive a carrier's tracking scan.
#[utoipa::path(
    post,
    path = "/v1/webhooks/carrier",
    tag = "fulfillment",
    description = "A carrier's signed scan (same signature scheme): `{id, order_id, shipment_id, \
        tracking_number, status_code, carrier_time, description, location?, received_by?, \
        photo_url?}`. Codes map to picked_up, in_transit, out_for_delivery, delivered, exception, \
        returned_to_sender. Each id is applied once. A `carrier_time` more than the configured \
        clock skew (`WAYBILL_WEBHOOK_CLOCK_SKEW_SECS`, 300 s) ahead of receipt is refused with \
        422 naming the field, and nothing is stored. Scans are ordered by carrier_time capped at \
        the time of receipt: a scan older than the recorded one is acknowledged and dropped, so \
        the latest wins, and a scan dated ahead can never outrank one that happened after it \
        arrived.",
    request_body(content = String, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied, duplicate or ignored", body = WebhookResponse),
        (status = 400, description = "malformed-webhook", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "invalid-signature", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not-yet-known: the parcel is not recorded yet; redeliver", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed: `carrier_time` too far ahead of receipt", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn carrier_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let started = Instant::now();
    if let Err(refused) = verified(&state, &headers, &body) {
        return refused;
    }
    let webhook: CarrierWebhook = match serde_json::from_slice(&body) {
        Ok(w) => w,
        Err(e) => return malformed(e.to_string()),
    };
    let command = match webhooks::carrier_command(&webhook) {
        Ok(c) => c,
        Err(bad) => {
            return Problem::new(ProblemType::MalformedWebhook, bad.detail)
                .with_field(bad.field)
                .into_response()
        }
    };
    if let Err(bad) = webhooks::check_clock(
        "carrier_time",
        webhook.carrier_time,
        Utc::now(),
        state.webhook_clock_skew,
    ) {
        return refused(bad);
    }
    let span = tracing::info_span!("carrier_webhook", order_id = %webhook.order_id, event_id = %webhook.id);
    let result = apply(
        &state,
        webhooks::CARRIER,
        &webhook.id,
        webhook.order_id,
        command.into(),
    )
    .instrument(span)
    .await;
    respond(result, started)
}

/// Applies a verified webhook once: through the group commit when it is on.
async fn apply(
    state: &AppState,
    provider: &'static str,
    webhook_id: &str,
    order_id: waybill_schemas::OrderId,
    command: webhooks::WebhookCommand,
) -> Result<WebhookOutcome, crate::event_store::EventStoreError> {
    match &state.logistics_batcher {
        Some(batcher) => {
            batcher
                .apply(WebhookRequest {
                    provider,
                    webhook_id: webhook_id.to_owned(),
                    order_id,
                    command,
                })
                .await
        }
        None => {
            webhooks::apply(
                &state.services.pool,
                &state.services.store,
                provider,
                webhook_id,
                order_id,
                &command,
                &state.services.returns_policy,
                Utc::now(),
            )
            .await
        }
    }
}

fn verified(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), Response> {
    let Some(secret) = state.logistics_secret.as_deref() else {
        return Err(Problem::new(
            ProblemType::WebhooksNotConfigured,
            "this command API has no logistics webhook secret",
        )
        .into_response());
    };
    let presented = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    signature::verify(secret, presented, body, Utc::now(), SIGNATURE_TOLERANCE).map_err(|e| {
        metrics::counter!("waybill_logistics_webhooks_total", "outcome" => "invalid_signature")
            .increment(1);
        Problem::new(ProblemType::InvalidSignature, e.to_string()).into_response()
    })
}

/// A well-formed, correctly signed webhook whose content cannot be true (a time far ahead of its
/// receipt): 422 naming the field; nothing is stored, so a corrected redelivery is applied.
fn refused(bad: webhooks::BadWebhook) -> Response {
    metrics::counter!("waybill_logistics_webhooks_total", "outcome" => "refused").increment(1);
    tracing::warn!(field = bad.field, detail = %bad.detail, "logistics webhook refused");
    Problem::field(bad.field, bad.detail).into_response()
}

fn malformed(detail: String) -> Response {
    Problem::new(ProblemType::MalformedWebhook, detail)
        .with_field("body")
        .into_response()
}

fn respond(
    result: Result<WebhookOutcome, crate::event_store::EventStoreError>,
    started: Instant,
) -> Response {
    metrics::histogram!("waybill_logistics_webhook_duration_seconds").record(started.elapsed());
    let (label, detail) = match result {
        Ok(WebhookOutcome::Applied) => ("applied", None),
        Ok(WebhookOutcome::Duplicate) => ("duplicate", None),
        Ok(WebhookOutcome::Ignored(why)) => ("ignored", Some(why)),
        Ok(WebhookOutcome::NotYetKnown(why)) => {
            metrics::counter!("waybill_logistics_webhooks_total", "outcome" => "not_yet_known")
                .increment(1);
            return Problem::new(ProblemType::NotYetKnown, format!("{why}; redeliver later"))
                .into_response();
        }
        Err(error) => {
            tracing::error!(%error, "logistics webhook not applied; the sender will redeliver");
            return Problem::from(crate::commands::CommandError::from(error)).into_response();
        }
    };
    metrics::counter!("waybill_logistics_webhooks_total", "outcome" => label).increment(1);
    Json(WebhookResponse {
        outcome: label.to_owned(),
        detail,
    })
    .into_response()
}
