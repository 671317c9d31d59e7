//! `POST /v1/orders/{id}/disputes/{dispute_id}/evidence`: an agent or finance user answers a
//! card dispute. The aggregate checks the dispute is known and open, the gateway takes the
//! evidence (idempotency key `<order>:evidence:<evidence_id>`), and `ChargebackEvidenceSubmitted`
//! is committed with the request's idempotency record. The evidence id is derived from the
//! client and its Idempotency-Key, so a retry after a lost commit sends the gateway the same key.

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use waybill_schemas::OrderId;

use super::decide::refusal;
use super::{responses, CommandContext, CommandError, CommandServices, Reply, CONFLICT_RETRIES};
use crate::commit_batcher::{CommitOutcome, CommitRequest};
use crate::domain::fields::{object, Errors, BODY};
use crate::domain::{OrderCommand, OrderError};
use crate::event_store::{new_events, stamp};
use crate::idempotency;
use crate::payment::HttpGateway;

/// Longest evidence text accepted.
const MAX_TEXT: usize = 5000;

/// 200 for evidence the gateway accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EvidenceResponse {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    pub dispute_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub evidence_id: Uuid,
    pub version: i64,
    pub consistency_token: String,
}

fn parse_evidence(body: &Value) -> Result<String, CommandError> {
    let mut errors = Errors::default();
    let text = object(body, BODY.to_owned(), &mut errors)
        .and_then(|o| o.required_str("text", MAX_TEXT, &mut errors));
    errors.finish(text).map_err(CommandError::Validation)
}

/// The same client and key always name the same evidence.
fn evidence_id(ctx: &CommandContext) -> Uuid {
    let digest = Sha256::new()
        .chain_update(ctx.client_id.as_bytes())
        .chain_update([0])
        .chain_update(ctx.idempotency_key.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Sends and records evidence for a dispute.
pub async fn submit_evidence(
    services: &CommandServices,
    gateway: Option<&HttpGateway>,
    ctx: &CommandContext,
    raw_order_id: &str,
    dispute_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order_id =
        OrderId::parse(raw_order_id).map_err(|_| CommandError::NotFound(raw_order_id.into()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let text = parse_evidence(body)?;
    if let Some(record) =
        idempotency::find(&services.pool, &ctx.client_id, &ctx.idempotency_key).await?
    {
        return ctx.answer_from(record);
    }
    let gateway = gateway.ok_or_else(|| {
        CommandError::Internal("the command API has no payment gateway configured".into())
    })?;
    let evidence_id = evidence_id(ctx);
    let command = OrderCommand::RecordChargebackEvidence {
        dispute_id: dispute_id.to_owned(),
        evidence_id,
        text: text.clone(),
        submitted_by: ctx.client_id.clone(),
    };
    for _ in 0..CONFLICT_RETRIES {
        let order = services.load(order_id).await?;
        let now = Utc::now();
        let events = order.handle(&command, now).map_err(|e| match e {
            OrderError::UnknownDispute { dispute_id, .. } => {
                CommandError::DisputeNotFound(dispute_id)
            }
            other => refusal(order_id, other),
        })?;
        if !events.is_empty() {
            let key = format!("{order_id}:evidence:{evidence_id}");
            match gateway
                .submit_dispute_evidence(dispute_id, &key, &text)
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err((code, message))) => {
                    return Err(CommandError::Refused(format!(
                        "the gateway refused the evidence: {code}: {message}"
                    )))
                }
                Err(error) => {
                    return Err(CommandError::Internal(format!("gateway evidence: {error}")))
                }
            }
        }
        let version = order.version() + events.len() as i64;
        let channel = order.state().map(|s| s.channel());
        let envelopes = stamp(
            &order_id.stream_id(),
            order.version(),
            new_events(events, now),
            &ctx.meta(channel),
            now,
        );
        let response = responses::evidence_submitted(EvidenceResponse {
            order_id,
            dispute_id: dispute_id.to_owned(),
            evidence_id,
            version,
            consistency_token: responses::token(order_id, version),
        });
        let request = CommitRequest {
            idempotency: ctx.record(&response),
            channel_order: None,
            events: envelopes,
            wake_flow: None,
        };
        match services.commit(ctx, order_id, request).await {
            CommitOutcome::Committed => return Ok(Reply::Fresh(response)),
            CommitOutcome::IdempotencyKeyTaken => return services.answer_from_stored(ctx).await,
            CommitOutcome::StreamConflict { .. } => continue,
            other => return Err(other.into()),
        }
    }
    Err(CommandError::Conflict(order_id))
}
