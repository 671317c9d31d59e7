//! The shared shape of a command on an existing order: answer a stored key, read the order,
//! let the aggregate decide, commit with the key (waking the order's checkout flow), and on a
//! lost race re-read and decide again.

use chrono::Utc;
use waybill_schemas::OrderId;

use super::{CommandContext, CommandError, CommandServices, Reply, CONFLICT_RETRIES};
use crate::commit_batcher::{CommitOutcome, CommitRequest};
use crate::domain::ledger::LedgerError;
use crate::domain::{FieldError, Order, OrderCommand, OrderError, ValidationErrors};
use crate::event_store::{new_events, stamp};
use crate::idempotency::{self, StoredResponse};

/// Decides `command` on the order and commits it; `respond` renders the response from the order
/// after the command and its new version.
pub async fn decide_and_commit(
    services: &CommandServices,
    ctx: &CommandContext,
    order_id: OrderId,
    command: OrderCommand,
    respond: impl Fn(&Order, i64) -> StoredResponse,
) -> Result<Reply, CommandError> {
    if let Some(record) =
        idempotency::find(&services.pool, &ctx.client_id, &ctx.idempotency_key).await?
    {
        return ctx.answer_from(record);
    }
    for _ in 0..CONFLICT_RETRIES {
        let mut order = services.load(order_id).await?;
        let now = Utc::now();
        let events = order
            .handle(&command, now)
            .map_err(|e| refusal(order_id, e))?;
        let channel = order.state().map(|s| s.channel());
        let envelopes = stamp(
            &order_id.stream_id(),
            order.version(),
            new_events(events, now),
            &ctx.meta(channel),
            now,
        );
        for envelope in &envelopes {
            if let Ok(event) = envelope.decode() {
                order.apply(&event);
            }
        }
        let response = respond(&order, order.version());
        let request = CommitRequest {
            idempotency: ctx.record(&response),
            channel_order: None,
            events: envelopes,
            wake_flow: Some(order_id),
        };
        match services.commit(ctx, order_id, request).await {
            CommitOutcome::Committed => return Ok(Reply::Fresh(response)),
            CommitOutcome::IdempotencyKeyTaken => return services.answer_from_stored(ctx).await,
            CommitOutcome::StreamConflict { .. } => continue,
            CommitOutcome::ChannelRefTaken { .. } => {
                return Err(CommandError::Internal(
                    "an order command hit a channel reference".into(),
                ))
            }
            failed @ (CommitOutcome::Failed(_) | CommitOutcome::Unavailable(_)) => {
                return Err(failed.into())
            }
        }
    }
    Err(CommandError::Conflict(order_id))
}

/// The aggregate's refusal as a command error; an order with no events is not found (404), the
/// same answer as an id that was never issued.
pub fn refusal(order_id: OrderId, error: OrderError) -> CommandError {
    match error {
        OrderError::NotFound(id) => CommandError::NotFound(id.to_string()),
        OrderError::NotPlaced { .. } => CommandError::NotFound(order_id.to_string()),
        OrderError::AlreadyCancelled(id) => CommandError::AlreadyCancelled(id),
        // Units that cannot be cancelled as asked: the request names them.
        OrderError::LinesNotCancellable { field, detail, .. } => {
            CommandError::Validation(ValidationErrors(vec![FieldError { field, detail }]))
        }
        OrderError::EditRefused { field, detail, .. } => {
            CommandError::Validation(ValidationErrors(vec![FieldError { field, detail }]))
        }
        OrderError::UnknownReference { field, detail, .. } => {
            CommandError::Validation(ValidationErrors(vec![FieldError {
                field: field.to_owned(),
                detail,
            }]))
        }
        OrderError::NotEditable { .. } => CommandError::NotEditable(error.to_string()),
        // A refund the ledger refuses is the request's fault: name the field.
        OrderError::RefundRefused { source, .. } => match &source {
            LedgerError::NothingCaptured => CommandError::Refused(source.to_string()),
            LedgerError::CurrencyMismatch { .. } => field_error("currency", &source),
            LedgerError::NonPositiveRefund(_) | LedgerError::AboveRefundable { .. } => {
                field_error("amount_minor", &source)
            }
        },
        OrderError::CurrencyMismatch { .. } => field_error("currency", &error),
        OrderError::NonPositiveAmount { .. } => field_error("amount_minor", &error),
        OrderError::NoCustomerAccount { .. } => field_error("destination", &error),
        other => CommandError::Refused(other.to_string()),
    }
}

fn field_error(field: &str, error: &dyn std::fmt::Display) -> CommandError {
    CommandError::Validation(ValidationErrors(vec![FieldError {
        field: field.to_owned(),
        detail: error.to_string(),
    }]))
}
