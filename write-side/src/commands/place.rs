//! Placing an order: one Waybill order per `(channel, channel_order_ref)`, once per key.

use chrono::Utc;
use serde_json::Value;
use waybill_schemas::OrderId;

use super::{responses, CommandContext, CommandError, CommandServices, Reply};
use crate::channel_orders::ChannelOrder;
use crate::commit_batcher::{CommitOutcome, CommitRequest};
use crate::domain::{choose_pickup_store, parse_place_order, Order, OrderCommand, PlaceOrder};
use crate::event_store::{new_events, stamp};

/// `POST /v1/orders`.
pub async fn place_order(
    services: &CommandServices,
    ctx: &CommandContext,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order = parse_place_order(body)?;
    place_parsed_order(services, ctx, order).await
}

/// `POST /v1/orders` for a body already parsed and validated (the typed fast path).
pub async fn place_parsed_order(
    services: &CommandServices,
    ctx: &CommandContext,
    mut order: PlaceOrder,
) -> Result<Reply, CommandError> {
    choose_pickup_store(&mut order, &services.routing)?;
    // No pre-check: the commit itself finds a stored key or a captured channel reference
    // (see `commit_batcher`), and the outcomes below answer those from what is stored.
    let order_id = OrderId::new_v7();
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let now = Utc::now();
    let channel_order = ChannelOrder {
        channel: order.channel,
        channel_order_ref: order.channel_order_ref.clone(),
        order_id,
    };
    let channel = order.channel;
    let totals = order.totals.clone();
    let command = OrderCommand::Place {
        order_id,
        order: Box::new(order),
    };
    let events = Order::default()
        .handle(&command, now)
        .map_err(|e| CommandError::Internal(e.to_string()))?;
    let envelopes = stamp(
        &order_id.stream_id(),
        0,
        new_events(events, now),
        &ctx.meta(Some(channel)),
        now,
    );
    let version = envelopes.len() as i64;
    let response = responses::placed(
        order_id,
        crate::domain::OrderStatus::Placed,
        version,
        &totals,
        services.tracking.token(order_id, now),
        false,
    );
    let request = CommitRequest {
        idempotency: ctx.record(&response),
        channel_order: Some(channel_order),
        events: envelopes,
        wake_flow: Some(order_id),
    };
    match services.commit(ctx, order_id, request).await {
        CommitOutcome::Committed => Ok(Reply::Fresh(response)),
        CommitOutcome::IdempotencyKeyTaken => services.answer_from_stored(ctx).await,
        CommitOutcome::ChannelRefTaken { order_id } => {
            existing_order(services, ctx, order_id).await
        }
        CommitOutcome::StreamConflict { .. } => Err(CommandError::Conflict(order_id)),
        failed @ (CommitOutcome::Failed(_) | CommitOutcome::Unavailable(_)) => Err(failed.into()),
    }
}

/// The channel reference was captured before: answer 200 with that order, stored under this key.
async fn existing_order(
    services: &CommandServices,
    ctx: &CommandContext,
    order_id: OrderId,
) -> Result<Reply, CommandError> {
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let order = services.load(order_id).await?;
    let Some(state) = order.state() else {
        return Err(CommandError::Internal(format!(
            "channel reference points at order {order_id} without events"
        )));
    };
    let response = responses::placed(
        order_id,
        state.status(),
        order.version(),
        state.totals(),
        services.tracking.token(order_id, Utc::now()),
        true,
    );
    services.store_response_only(ctx, order_id, response).await
}
