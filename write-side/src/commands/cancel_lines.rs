//! `POST /v1/orders/{id}/lines/cancel`: cancel units of a confirmed order that have not
//! shipped. The order decides (refusing shipped or packed units, naming `lines[i].quantity`);
//! the commit wakes the checkout flow (capture less, or refund what was captured for them) and
//! the fulfillment flow (amend the node's task, give the stock back).

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use waybill_schemas::OrderId;

use super::decide::decide_and_commit;
use super::responses::{json_response, token};
use super::{CommandContext, CommandError, CommandServices, Reply};
use crate::domain::{parse_cancel_lines, Order, OrderCommand};
use crate::idempotency::StoredResponse;

/// 200 for recorded cancelled units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CancelLinesResponse {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    #[schema(value_type = String, format = Uuid)]
    pub cancellation_id: Uuid,
    /// Units cancelled, per line.
    pub lines: Vec<CancelledLineResponse>,
    /// What the cancelled units were worth: not captured, or refunded if already captured.
    pub value_minor: i64,
    /// What the order is worth now.
    pub current_total_minor: i64,
    pub currency: String,
    pub version: i64,
    pub consistency_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CancelledLineResponse {
    pub line_no: u32,
    pub quantity: u32,
}

/// Records the cancellation of units.
pub async fn cancel_lines(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_order_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order_id =
        OrderId::parse(raw_order_id).map_err(|_| CommandError::NotFound(raw_order_id.into()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let cancel = parse_cancel_lines(body)?;
    let cancellation_id = Uuid::now_v7();
    let command = OrderCommand::CancelLines {
        cancellation_id,
        cancel,
        requested_by: ctx.client_id.clone(),
    };
    decide_and_commit(services, ctx, order_id, command, |order, version| {
        respond(order, order_id, cancellation_id, version)
    })
    .await
}

fn respond(
    order: &Order,
    order_id: OrderId,
    cancellation_id: Uuid,
    version: i64,
) -> StoredResponse {
    let state = order.state();
    let cancelled = state.and_then(|s| {
        s.fulfillment()
            .cancellations
            .iter()
            .find(|(c, _)| c.cancellation_id == cancellation_id)
            .map(|(c, _)| c.clone())
    });
    let mut lines: Vec<CancelledLineResponse> = Vec::new();
    for units in cancelled.iter().flat_map(|c| &c.lines) {
        match lines.iter_mut().find(|l| l.line_no == units.line_no) {
            Some(l) => l.quantity += units.quantity.get(),
            None => lines.push(CancelledLineResponse {
                line_no: units.line_no,
                quantity: units.quantity.get(),
            }),
        }
    }
    let current = state.map(|s| s.current_total());
    let consistency_token = token(order_id, version);
    let body = CancelLinesResponse {
        order_id,
        cancellation_id,
        lines,
        value_minor: cancelled.as_ref().map_or(0, |c| c.value.minor),
        current_total_minor: current.map_or(0, |m| m.minor),
        currency: current.map_or_else(String::new, |m| m.currency.code().to_owned()),
        version,
        consistency_token: consistency_token.clone(),
    };
    json_response(200, &consistency_token, &body)
}
