//! Cancelling an order: re-read and decide again when another writer got there first. The
//! order's checkout flow is woken in the same commit, so it releases the stock and voids the
//! payment hold the order still has.

use serde_json::Value;
use waybill_schemas::OrderId;

use super::decide::decide_and_commit;
use super::{responses, CommandContext, CommandError, CommandServices, Reply};
use crate::domain::{parse_cancel_order, OrderCommand};

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
    let command = OrderCommand::Cancel {
        order_id,
        cancellation_id: uuid::Uuid::now_v7(),
        cancel,
    };
    decide_and_commit(services, ctx, order_id, command, |_, version| {
        responses::cancelled(order_id, version)
    })
    .await
}
