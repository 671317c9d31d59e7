//! `POST /v1/orders/{id}/charges`: an agent, admin or service (exchanges) charges the card the
//! order was paid with again, after its own capture (an exchange for a dearer item, or a new
//! attempt after a declined one). Recorded as `ExtraChargeRequested` with the order's flow woken
//! in the same commit; the process manager then authorizes and captures it (idempotency key
//! `<order>:charge:<charge_id>`) and records `ExtraChargeCaptured` or `ExtraChargeDeclined`.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use waybill_schemas::{Currency, Money, OrderId};

use super::decide::decide_and_commit;
use super::{CommandContext, CommandError, CommandServices, Reply};
use crate::domain::fields::{object, Errors, BODY};
use crate::domain::OrderCommand;
use crate::idempotency::StoredResponse;

const MAX_REASON: usize = 500;
/// Largest charge accepted in one request, in minor units (a sanity bound).
const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// A parsed charge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeBody {
    pub amount: Money,
    pub reason: String,
    /// The exchange (return id) this charge pays the price difference of: an agent's new
    /// attempt after a declined one; its capture lets the replacement ship.
    pub return_id: Option<String>,
}

/// Parses `{"amount_minor": 1200, "currency": "USD", "reason": "…", "return_id"?: "<order>-R1"}`.
pub fn parse_charge(body: &Value) -> Result<ChargeBody, CommandError> {
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
        let return_id = o.optional_str("return_id", 80, &mut errors).ok()?;
        Some(ChargeBody {
            amount: Money::new(amount?, currency?),
            reason: reason?,
            return_id,
        })
    });
    errors.finish(parsed).map_err(CommandError::Validation)
}

/// 202 for an accepted extra charge: the gateway is asked next, and the outcome shows on the
/// order (`ExtraChargeCaptured` or `ExtraChargeDeclined`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChargeResponse {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    #[schema(value_type = String, format = Uuid)]
    pub charge_id: Uuid,
    /// `pending` until the gateway answers.
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    pub version: i64,
    pub consistency_token: String,
}

/// Whether `raw` has a return id's format, `<order id>-R<n>`
/// ([`crate::command_api::contract::RETURN_ID_PATTERN`]).
fn is_return_id(raw: &str) -> bool {
    raw.rsplit_once("-R").is_some_and(|(order, n)| {
        order.len() == 36
            && OrderId::parse(order).is_ok()
            && !n.is_empty()
            && n.len() <= 9
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Records an extra charge on the order.
pub async fn charge_order(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_order_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order_id =
        OrderId::parse(raw_order_id).map_err(|_| CommandError::NotFound(raw_order_id.into()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let charge = parse_charge(body)?;
    // The format here; whether the order has that return is decided with the order (the
    // domain's 422 naming `return_id`), after an unknown order's 404.
    if let Some(return_id) = &charge.return_id {
        if !is_return_id(return_id) {
            return Err(CommandError::Validation(crate::domain::ValidationErrors(
                vec![crate::domain::FieldError {
                    field: "return_id".into(),
                    detail: "must be a return id (<order id>-R<n>)".into(),
                }],
            )));
        }
    }
    let charge_id = Uuid::now_v7();
    let command = OrderCommand::RequestCharge {
        charge_id,
        amount: charge.amount,
        reason: charge.reason,
        requested_by: ctx.client_id.clone(),
        return_id: charge.return_id,
    };
    decide_and_commit(services, ctx, order_id, command, |_, version| {
        charge_requested(order_id, charge_id, charge.amount, version)
    })
    .await
}

fn charge_requested(
    order_id: OrderId,
    charge_id: Uuid,
    amount: Money,
    version: i64,
) -> StoredResponse {
    let consistency_token = super::responses::token(order_id, version);
    let body = ChargeResponse {
        order_id,
        charge_id,
        status: "pending".to_owned(),
        amount_minor: amount.minor,
        currency: amount.currency.code().to_owned(),
        version,
        consistency_token: consistency_token.clone(),
    };
    super::responses::json_response(202, &consistency_token, &body)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    use crate::commands::invalid_fields as fields;

    #[test]
    fn a_return_id_is_an_order_id_and_a_return_number() {
        let order = "0190a3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b";
        assert!(is_return_id(&format!("{order}-R1")));
        assert!(is_return_id(&format!("{order}-R123456789")));
        for refused in [
            "0".to_owned(),
            format!("{order}-R"),
            format!("{order}-R1234567890"),
            format!("{order}-Rx"),
            format!("{order}-R-1"),
            format!("{}-R1", order.replace('-', "")),
        ] {
            assert!(!is_return_id(&refused), "{refused}");
        }
    }

    #[test]
    fn a_charge_body_names_each_wrong_field() {
        let ok =
            parse_charge(&json!({"amount_minor": 1200, "currency": "USD", "reason": "exchange"}))
                .unwrap();
        assert_eq!(ok.amount.minor, 1200);
        assert_eq!(
            fields(
                parse_charge(&json!({"amount_minor": 0, "currency": "USD", "reason": "x"}))
                    .unwrap_err()
            ),
            vec!["amount_minor"]
        );
        assert_eq!(
            fields(parse_charge(&json!({"amount_minor": 5, "currency": "usdx"})).unwrap_err()),
            vec!["currency", "reason"]
        );
    }
}
