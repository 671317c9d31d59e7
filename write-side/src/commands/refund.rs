//! `POST /v1/orders/{id}/refunds`: an agent, admin or service (returns) asks to give money back,
//! to the card (`destination: original_payment`, the default) or as store credit on the
//! customer's account (`store_credit`). The ledger refuses more than is still refundable (card
//! refunds and credit together). A card refund is recorded as `RefundRequested` and the order's
//! flow is woken in the same commit, so the process manager asks the gateway (idempotency key
//! `<order>:refund:<refund_id>`) and records the outcome; store credit is recorded at once as
//! `StoreCreditIssued`.

use serde_json::Value;
use uuid::Uuid;
use waybill_schemas::events::RefundKind;
use waybill_schemas::{Currency, Money, OrderId};

use super::decide::decide_and_commit;
use super::{responses, CommandContext, CommandError, CommandServices, Reply};
use crate::domain::fields::{object, Errors, BODY};
use crate::domain::OrderCommand;

/// Longest refund reason kept.
const MAX_REASON: usize = 500;
/// Largest refund accepted in one request, in minor units (a sanity bound; the ledger's bound
/// is what was captured).
const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// Where refunded money goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundDestination {
    /// Back to the card the order was paid with.
    OriginalPayment,
    /// Credit on the customer's account.
    StoreCredit,
}

impl RefundDestination {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OriginalPayment => "original_payment",
            Self::StoreCredit => "store_credit",
        }
    }
}

/// A parsed refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundBody {
    pub amount: Money,
    pub kind: RefundKind,
    pub reason: String,
    pub destination: RefundDestination,
}

/// Parses `{"amount_minor": 1000, "currency": "USD", "reason": "…", "kind": "goodwill",
/// "destination": "original_payment"}` (`kind` defaults to `goodwill`, `destination` to
/// `original_payment`).
pub fn parse_refund(body: &Value) -> Result<RefundBody, CommandError> {
    let mut errors = Errors::default();
    let parsed = object(body, BODY.to_owned(), &mut errors).and_then(|o| {
        let amount = o.required_int("amount_minor", 1, MAX_AMOUNT, &mut errors);
        let currency = o.required_str("currency", 3, &mut errors).and_then(|raw| {
            match Currency::parse(&raw) {
                Ok(c) => Some(c),
                Err(e) => {
                    errors.push(o.path_of("currency"), e.to_string());
                    None
                }
            }
        });
        let reason = o.required_str("reason", MAX_REASON, &mut errors);
        let kind = match o.optional_str("kind", 16, &mut errors) {
            Ok(None) => Some(RefundKind::Goodwill),
            Ok(Some(raw)) => match raw.as_str() {
                "goodwill" => Some(RefundKind::Goodwill),
                "return" => Some(RefundKind::Return),
                "cancellation" => Some(RefundKind::Cancellation),
                _ => {
                    errors.push(
                        o.path_of("kind"),
                        "must be one of: goodwill, return, cancellation",
                    );
                    None
                }
            },
            Err(_) => None,
        };
        let destination = match o.optional_str("destination", 32, &mut errors) {
            Ok(None) => Some(RefundDestination::OriginalPayment),
            Ok(Some(raw)) => match raw.as_str() {
                "original_payment" => Some(RefundDestination::OriginalPayment),
                "store_credit" => Some(RefundDestination::StoreCredit),
                _ => {
                    errors.push(
                        o.path_of("destination"),
                        "must be one of: original_payment, store_credit",
                    );
                    None
                }
            },
            Err(_) => None,
        };
        Some(RefundBody {
            amount: Money::new(amount?, currency?),
            kind: kind?,
            reason: reason?,
            destination: destination?,
        })
    });
    errors.finish(parsed).map_err(CommandError::Validation)
}

/// Records a refund request on the order.
pub async fn refund_order(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_order_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order_id =
        OrderId::parse(raw_order_id).map_err(|_| CommandError::NotFound(raw_order_id.into()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let refund = parse_refund(body)?;
    let refund_id = Uuid::now_v7();
    let command = match refund.destination {
        RefundDestination::OriginalPayment => OrderCommand::RequestRefund {
            refund_id,
            amount: refund.amount,
            kind: refund.kind,
            reason: refund.reason,
            requested_by: ctx.client_id.clone(),
        },
        RefundDestination::StoreCredit => OrderCommand::IssueStoreCredit {
            credit_id: refund_id,
            amount: refund.amount,
            reason: format!("{}: {}", refund.kind.as_str(), refund.reason),
            issued_by: ctx.client_id.clone(),
            return_id: None,
        },
    };
    decide_and_commit(services, ctx, order_id, command, |order, version| {
        let refundable = order
            .state()
            .and_then(|s| s.ledger().refundable())
            .unwrap_or(refund.amount);
        responses::refund_requested(
            order_id,
            refund_id,
            refund.amount,
            refundable,
            refund.destination,
            version,
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    use crate::commands::invalid_fields as fields;

    #[test]
    fn a_refund_body_names_each_wrong_field() {
        let ok = parse_refund(&json!({"amount_minor": 500, "currency": "USD", "reason": "late"}))
            .unwrap();
        assert_eq!(ok.amount.minor, 500);
        assert_eq!(ok.kind, RefundKind::Goodwill);
        assert_eq!(
            fields(
                parse_refund(&json!({"amount_minor": 0, "currency": "USD", "reason": "x"}))
                    .unwrap_err()
            ),
            vec!["amount_minor"]
        );
        assert_eq!(
            fields(
                parse_refund(&json!({"amount_minor": -5, "currency": "USD", "reason": "x"}))
                    .unwrap_err()
            ),
            vec!["amount_minor"]
        );
        assert_eq!(
            fields(
                parse_refund(
                    &json!({"amount_minor": 5, "currency": "XXX", "reason": "x", "kind": "gift"})
                )
                .unwrap_err()
            ),
            vec!["currency", "kind"]
        );
        let credit = parse_refund(
            &json!({"amount_minor": 5, "currency": "USD", "reason": "x", "destination": "store_credit"}),
        )
        .unwrap();
        assert_eq!(credit.destination, RefundDestination::StoreCredit);
        assert_eq!(
            fields(
                parse_refund(
                    &json!({"amount_minor": 5, "currency": "USD", "reason": "x", "destination": "gift_card"})
                )
                .unwrap_err()
            ),
            vec!["destination"]
        );
        assert_eq!(
            fields(parse_refund(&json!({"currency": "USD"})).unwrap_err()),
            vec!["amount_minor", "reason"]
        );
    }
}
