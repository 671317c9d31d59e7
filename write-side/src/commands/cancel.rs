//! Cancelling an order: re-read and decide again when another writer got there first.

use chrono::Utc;
use serde_json::Value;
use waybill_schemas::OrderId;

use super::{
    new_events, responses, CommandContext, CommandError, CommandServices, Reply, CONFLICT_RETRIES,
};
use crate::commit_batcher::{CommitOutcome, CommitRequest};
use crate::domain::{parse_cancel_order, OrderCommand, OrderError};
use crate::event_store::stamp;
use crate::idempotency;

/// `POST /v1/orders/{id}/cancel`.
pub async fn cancel_order(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_order_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order_id =
        OrderId::parse(raw_order_id).map_err(|_| CommandError::NotFound(raw_order_id.into()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let cancel = parse_cancel_order(body)?;
    if let Some(record) =
        idempotency::find(&services.pool, &ctx.client_id, &ctx.idempotency_key).await?
    {
        return ctx.answer_from(record);
    }
    let command = OrderCommand::Cancel { order_id, cancel };
    for _ in 0..CONFLICT_RETRIES {
        let order = services.load(order_id).await?;
        let now = Utc::now();
        let events = order.handle(&command, now).map_err(|e| match e {
            OrderError::NotFound(id) => CommandError::NotFound(id.to_string()),
            OrderError::AlreadyCancelled(id) => CommandError::AlreadyCancelled(id),
            other => CommandError::Internal(other.to_string()),
        })?;
        let channel = order.state().map(|s| s.channel());
        let envelopes = stamp(
            &order_id.stream_id(),
            order.version(),
            new_events(events, now),
            &ctx.meta(channel),
            now,
        );
        let response = responses::cancelled(order_id, order.version() + envelopes.len() as i64);
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
                    "cancel hit a channel reference".into(),
                ))
            }
            CommitOutcome::Failed(e) => return Err(CommandError::Internal(e)),
        }
    }
    Err(CommandError::Conflict(order_id))
}
