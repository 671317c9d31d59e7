//! `POST /v1/orders/{id}/lines/cancel`: the raw JSON body `{"lines": [{"line_no",
//! "quantity"}], "reason", "note"?}` parsed into a validated [`CancelLines`]. Whether the units
//! can still be cancelled is the order's decision (`order::line_cancel`).

use serde_json::Value;
use waybill_schemas::events::CancelReason;
use waybill_schemas::Quantity;

use super::fields::{object, Errors, ValidationErrors, BODY};
use super::order::{CancelLines, LineQuantity};

const MAX_NOTE: usize = 1000;
const MAX_LINES: usize = 200;

fn reason(raw: &str) -> Option<CancelReason> {
    [
        CancelReason::CustomerRequest,
        CancelReason::Fraud,
        CancelReason::OutOfStock,
        CancelReason::Other,
    ]
    .into_iter()
    .find(|r| r.as_str() == raw)
}

/// Parses a line-cancellation body, collecting every field error.
pub fn parse_cancel_lines(body: &Value) -> Result<CancelLines, ValidationErrors> {
    let mut errors = Errors::default();
    let parsed = object(body, BODY.to_owned(), &mut errors).and_then(|o| {
        let raw_lines = o.array("lines", true, MAX_LINES, &mut errors);
        if raw_lines.is_some_and(<[Value]>::is_empty) {
            errors.push(o.path_of("lines"), "must have at least 1 line");
        }
        let lines: Option<Vec<LineQuantity>> = raw_lines.and_then(|raw| {
            let parsed: Vec<Option<LineQuantity>> = raw
                .iter()
                .enumerate()
                .map(|(i, line)| {
                    let l = object(line, format!("{}[{i}]", o.path_of("lines")), &mut errors)?;
                    let line_no = l.required_int("line_no", 1, i64::from(u32::MAX), &mut errors);
                    let quantity = l
                        .required_int("quantity", 1, i64::from(Quantity::MAX), &mut errors)
                        .and_then(|q| Quantity::parse(q).ok());
                    Some(LineQuantity {
                        line_no: u32::try_from(line_no?).ok()?,
                        quantity: quantity?,
                    })
                })
                .collect();
            parsed.into_iter().collect()
        });
        let reason = o.required_str("reason", 32, &mut errors).and_then(|raw| {
            let found = reason(&raw);
            if found.is_none() {
                errors.push(
                    o.path_of("reason"),
                    "must be one of customer_request, fraud, out_of_stock, other",
                );
            }
            found
        });
        let note = o.optional_str("note", MAX_NOTE, &mut errors);
        Some(CancelLines {
            lines: lines?,
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
    fn a_line_cancellation_body_names_each_wrong_field() {
        let ok = parse_cancel_lines(&json!({
            "lines": [{"line_no": 2, "quantity": 1}],
            "reason": "customer_request",
            "note": "ordered twice"
        }))
        .expect("valid");
        assert_eq!(ok.lines[0].line_no, 2);
        assert_eq!(ok.lines[0].quantity.get(), 1);
        assert_eq!(ok.reason, CancelReason::CustomerRequest);
        for (body, field) in [
            (
                json!({"lines": [{"line_no": 1, "quantity": 0}], "reason": "other"}),
                "lines[0].quantity",
            ),
            (
                json!({"lines": [{"line_no": 1, "quantity": -3}], "reason": "other"}),
                "lines[0].quantity",
            ),
            (
                json!({"lines": [{"line_no": 1, "quantity": 1}, {"line_no": 0, "quantity": 1}], "reason": "other"}),
                "lines[1].line_no",
            ),
            (json!({"lines": [], "reason": "other"}), "lines"),
            (json!({"reason": "other"}), "lines"),
            (
                json!({"lines": [{"line_no": 1, "quantity": 1}], "reason": "bored"}),
                "reason",
            ),
            (json!([1]), "body"),
        ] {
            let err = parse_cancel_lines(&body).expect_err("invalid");
            assert_eq!(err.0[0].field, field, "{body}");
        }
    }
}
