//! `POST /v1/orders/{id}/review`: an agent approves or rejects an order the risk rules held for
//! review. The order's checkout flow is woken in the same commit and carries on (or cancels).

use serde_json::Value;
use waybill_schemas::events::ReviewDecision;
use waybill_schemas::OrderId;

use super::decide::decide_and_commit;
use super::{responses, CommandContext, CommandError, CommandServices, Reply};
use crate::domain::fields::{object, Errors, BODY};
use crate::domain::OrderCommand;

/// Longest review note kept.
const MAX_NOTE: usize = 1000;

/// Parses `{"decision": "approve" | "reject", "note": "..."}`.
fn parse_review(body: &Value) -> Result<(ReviewDecision, Option<String>), CommandError> {
    let mut errors = Errors::default();
    let parsed = object(body, BODY.to_owned(), &mut errors).and_then(|o| {
        let decision =
            o.required_str("decision", 16, &mut errors)
                .and_then(|raw| match raw.as_str() {
                    "approve" => Some(ReviewDecision::Approve),
                    "reject" => Some(ReviewDecision::Reject),
                    _ => {
                        errors.push(o.path_of("decision"), "must be one of: approve, reject");
                        None
                    }
                });
        let note = o.optional_str("note", MAX_NOTE, &mut errors);
        Some((decision?, note.ok()?))
    });
    errors.finish(parsed).map_err(CommandError::Validation)
}

/// Records the agent's decision on an order in review.
pub async fn review_order(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_order_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order_id =
        OrderId::parse(raw_order_id).map_err(|_| CommandError::NotFound(raw_order_id.into()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let (decision, note) = parse_review(body)?;
    let command = OrderCommand::ResolveReview {
        decision,
        reviewer: ctx.client_id.clone(),
        note,
    };
    decide_and_commit(services, ctx, order_id, command, |order, version| {
        let status = order.state().map_or("placed", |s| s.status().as_str());
        responses::reviewed(order_id, decision, status, version)
    })
    .await
}
