//! `POST /v1/orders/{id}/cancel`: the raw JSON body parsed into a validated [`CancelOrder`].

use serde_json::Value;
use waybill_schemas::events::CancelReason;

use super::fields::{object, Errors, ValidationErrors, BODY};

const MAX_NOTE: usize = 1000;

/// Why and with what note an order is to be cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOrder {
    pub reason: CancelReason,
    pub note: Option<String>,
}

fn reason(raw: &str) -> Option<CancelReason> {
    [
        CancelReason::CustomerRequest,
        CancelReason::Fraud,
        CancelReason::OutOfStock,
        CancelReason::PaymentFailed,
        CancelReason::Other,
    ]
    .into_iter()
    .find(|r| r.as_str() == raw)
}

/// Parses a cancel request body, collecting every field error.
pub fn parse_cancel_order(body: &Value) -> Result<CancelOrder, ValidationErrors> {
    let mut errors = Errors::default();
    let parsed = object(body, BODY.to_owned(), &mut errors).and_then(|o| {
        let reason = o.required_str("reason", 32, &mut errors).and_then(|raw| {
            let found = reason(&raw);
            if found.is_none() {
                errors.push(
                    o.path_of("reason"),
                    "must be one of customer_request, fraud, out_of_stock, payment_failed, other",
                );
            }
            found
        });
        let note = o.optional_str("note", MAX_NOTE, &mut errors);
        Some(CancelOrder {
            reason: reason?,
            note: note.ok()?,
        })
    });
    errors.finish(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_are_checked_and_named() {
        let ok = parse_cancel_order(&json!({"reason":"fraud","note":null})).expect("valid");
        assert_eq!(ok.reason, CancelReason::Fraud);
        for (body, field) in [
            (json!({"reason":"bored"}), "reason"),
            (json!({"note":"x"}), "reason"),
            (json!({"reason":"other","note":"x".repeat(1001)}), "note"),
            (json!({"reason":"other","note":5}), "note"),
            (json!("fraud"), "body"),
        ] {
            let err = parse_cancel_order(&body).expect_err("invalid");
            assert_eq!(err.0[0].field, field, "{body}");
        }
    }
}
