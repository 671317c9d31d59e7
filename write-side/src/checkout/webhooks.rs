//! Applying the payment gateway's webhooks: each verified event id is applied once (its receipt
//! is stored in the same transaction as the events it causes), duplicates change nothing, and an
//! event that no longer fits the order (a failure reported after a success) is recorded as
//! ignored, not applied.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use waybill_schemas::OrderId;

use crate::domain::OrderCommand;
use crate::event_store::EventStore;
use crate::payment::webhook::{GatewayEvent, GatewayEventKind};

use super::append::{self, FlowOrder};
use super::CheckoutError;

/// The provider name receipts are stored under.
pub const PROVIDER: &str = "payment_gateway";

/// What became of one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Its events were stored and the order's flow woken.
    Applied,
    /// This event id was applied before: nothing changed.
    Duplicate,
    /// Acknowledged but not applied, with why (unknown order, stale or conflicting outcome).
    Ignored(String),
    /// Not applied and not acknowledged: it outran an event it depends on (a dispute decided
    /// before its opening arrived). No receipt is stored, so the gateway's redelivery applies it.
    TooEarly(String),
}

/// Applies one verified gateway event.
pub async fn apply_gateway_event(
    pool: &PgPool,
    store: &EventStore,
    event: &GatewayEvent,
    now: DateTime<Utc>,
) -> Result<WebhookOutcome, CheckoutError> {
    let Some((order_id, command)) = command_for(&event.kind) else {
        return Ok(WebhookOutcome::Ignored(format!(
            "event type {} needs no action",
            event.kind.type_name()
        )));
    };
    let envelopes = store.read_stream(&order_id.stream_id(), 1, None).await?;
    if envelopes.is_empty() {
        return Ok(WebhookOutcome::Ignored(format!(
            "order {order_id} is unknown"
        )));
    }
    let mut flow = FlowOrder::from_stream(order_id, &envelopes)?;
    if let OrderCommand::RecordChargebackDecision { dispute_id, .. } = &command {
        let known = flow
            .order
            .state()
            .is_some_and(|state| state.ledger().dispute(dispute_id).is_some());
        if !known {
            return Ok(WebhookOutcome::TooEarly(format!(
                "dispute {dispute_id} of order {order_id} was decided before its opening arrived"
            )));
        }
    }
    flow.meta.actor = waybill_schemas::Actor::service("payment-gateway");
    let (outcome, label) = match flow.decide(command, now) {
        Ok(()) if flow.unsaved.is_empty() => (
            WebhookOutcome::Ignored("already recorded".into()),
            "already_recorded".to_owned(),
        ),
        Ok(()) => (WebhookOutcome::Applied, "applied".to_owned()),
        Err(refused) => (
            WebhookOutcome::Ignored(refused.clone()),
            format!("ignored: {refused}"),
        ),
    };
    let stored = append::store_with_receipt(
        pool,
        store,
        &mut flow,
        (PROVIDER, event.id.as_str(), label.as_str()),
        now,
    )
    .await?;
    Ok(if stored {
        outcome
    } else {
        WebhookOutcome::Duplicate
    })
}

/// The order command a gateway event asks for, if any. Captures, voids and refunds are answered
/// synchronously to the calls the flow makes, so their webhooks only confirm what is recorded.
/// Disputes start at the gateway, so their webhooks are the only news of them.
fn command_for(kind: &GatewayEventKind) -> Option<(OrderId, OrderCommand)> {
    match kind {
        GatewayEventKind::AuthorizationSucceeded(succeeded) => Some((
            succeeded.order_id,
            OrderCommand::RecordAuthorization {
                authorization_id: succeeded.authorization_id.clone(),
                amount: succeeded.amount,
                three_ds: succeeded.three_ds,
                expires_at: succeeded.expires_at,
            },
        )),
        GatewayEventKind::AuthorizationFailed(failed) => Some((
            failed.order_id,
            OrderCommand::RecordDecline {
                authorization_id: Some(failed.authorization_id.clone()),
                code: failed.code.clone(),
                message: failed.message.clone(),
            },
        )),
        GatewayEventKind::DisputeOpened(opened) => Some((
            opened.order_id,
            OrderCommand::RecordChargebackOpened {
                dispute_id: opened.dispute_id.clone(),
                capture_id: opened.capture_id.clone(),
                amount: opened.amount,
                reason_code: opened.reason.clone(),
                evidence_due_by: opened.evidence_due_by,
            },
        )),
        GatewayEventKind::DisputeWon(decided) | GatewayEventKind::DisputeLost(decided) => Some((
            decided.order_id,
            OrderCommand::RecordChargebackDecision {
                dispute_id: decided.dispute_id.clone(),
                won: matches!(kind, GatewayEventKind::DisputeWon(_)),
                amount: decided.amount,
            },
        )),
        _ => None,
    }
}
