//! Parsing the `resolution` of a return request: `"refund"` (the default), `"store_credit"`,
//! or `{"kind": "exchange", "replacements": [{"for_line_no", "sku", "quantity",
//! "unit_price": {"minor", "currency"}}]}` (also `{"kind": "refund"}` and
//! `{"kind": "store_credit"}`). Every wrong field is named by its path
//! (`resolution.replacements[0].unit_price.currency`); whether the currency is the order's is
//! the domain's check, against the order.

use serde_json::Value;
use waybill_schemas::events::{ReplacementLine, ReturnResolution};
use waybill_schemas::{Currency, Money, Quantity, Sku};

use crate::domain::fields::{index, object, Errors};

const FIELD: &str = "resolution";
/// Most replacement lines in one exchange.
const MAX_REPLACEMENTS: usize = 50;

/// The resolution in `value`, or `None` with the reasons pushed to `errors`.
pub fn parse_resolution(value: Option<&Value>, errors: &mut Errors) -> Option<ReturnResolution> {
    let kind = match value {
        None | Some(Value::Null) => return Some(ReturnResolution::Refund),
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Object(map)) => match map.get("kind") {
            Some(Value::String(kind)) => kind.as_str(),
            _ => {
                errors.push(
                    format!("{FIELD}.kind"),
                    "must be one of: refund, store_credit, exchange",
                );
                return None;
            }
        },
        Some(_) => {
            errors.push(FIELD, "must be one of: refund, store_credit, exchange");
            return None;
        }
    };
    match kind {
        "refund" => Some(ReturnResolution::Refund),
        "store_credit" => Some(ReturnResolution::StoreCredit),
        "exchange" => {
            let Some(object_value) = value.filter(|v| v.is_object()) else {
                errors.push(
                    format!("{FIELD}.replacements"),
                    "an exchange names its replacements: {\"kind\": \"exchange\", \"replacements\": [...]}",
                );
                return None;
            };
            let o = object(object_value, FIELD.to_owned(), errors)?;
            let items = o.array("replacements", true, MAX_REPLACEMENTS, errors)?;
            if items.is_empty() {
                errors.push(
                    o.path_of("replacements"),
                    "must have at least one replacement",
                );
                return None;
            }
            let mut replacements = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let path = index(&o.path_of("replacements"), i);
                let Some(line) = object(item, path, errors) else {
                    continue;
                };
                let for_line_no = line.required_int("for_line_no", 1, i64::from(u32::MAX), errors);
                let sku =
                    line.required_str("sku", 64, errors)
                        .and_then(|raw| match Sku::parse(&raw) {
                            Ok(sku) => Some(sku),
                            Err(e) => {
                                errors.push(line.path_of("sku"), e.to_string());
                                None
                            }
                        });
                let quantity = line.required_int("quantity", 1, 1_000_000, errors);
                let price = line.required_obj("unit_price", errors).and_then(|p| {
                    let minor = p.required_int("minor", 0, 1_000_000_000_000, errors);
                    let currency =
                        p.required_str("currency", 3, errors).and_then(
                            |raw| match Currency::parse(&raw) {
                                Ok(c) => Some(c),
                                Err(e) => {
                                    errors.push(p.path_of("currency"), e.to_string());
                                    None
                                }
                            },
                        );
                    Some(Money::new(minor?, currency?))
                });
                if let (Some(for_line_no), Some(sku), Some(quantity), Some(unit_price)) =
                    (for_line_no, sku, quantity, price)
                {
                    if let (Ok(for_line_no), Ok(quantity)) =
                        (u32::try_from(for_line_no), Quantity::parse(quantity))
                    {
                        replacements.push(ReplacementLine {
                            for_line_no,
                            sku,
                            quantity,
                            unit_price,
                        });
                    }
                }
            }
            (replacements.len() == items.len())
                .then_some(ReturnResolution::Exchange { replacements })
        }
        _ => {
            let field = if value.is_some_and(Value::is_object) {
                format!("{FIELD}.kind")
            } else {
                FIELD.to_owned()
            };
            errors.push(field, "must be one of: refund, store_credit, exchange");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: Value) -> Vec<String> {
        let mut errors = Errors::default();
        let parsed = parse_resolution(Some(&value), &mut errors);
        match errors.finish(parsed) {
            Ok(_) => vec![],
            Err(e) => e.0.into_iter().map(|f| f.field).collect(),
        }
    }

    #[test]
    fn every_resolution_kind_parses() {
        let mut errors = Errors::default();
        assert_eq!(
            parse_resolution(None, &mut errors),
            Some(ReturnResolution::Refund)
        );
        assert_eq!(
            parse_resolution(Some(&json!("store_credit")), &mut errors),
            Some(ReturnResolution::StoreCredit)
        );
        let exchange = parse_resolution(
            Some(&json!({"kind": "exchange", "replacements": [
                {"for_line_no": 1, "sku": "TEE-L", "quantity": 1, "unit_price": {"minor": 2500, "currency": "USD"}}
            ]})),
            &mut errors,
        );
        assert!(
            matches!(exchange, Some(ReturnResolution::Exchange { ref replacements }) if replacements.len() == 1)
        );
        assert!(errors.is_empty());
    }

    #[test]
    fn bad_replacements_are_named_by_field() {
        assert_eq!(
            fields(json!({"kind": "exchange", "replacements": [
                {"for_line_no": 1, "sku": "not a sku!", "quantity": 0, "unit_price": {"minor": 5, "currency": "XX"}}
            ]})),
            vec![
                "resolution.replacements[0].sku",
                "resolution.replacements[0].quantity",
                "resolution.replacements[0].unit_price.currency"
            ]
        );
        assert_eq!(fields(json!("exchange")), vec!["resolution.replacements"]);
        assert_eq!(fields(json!("gift")), vec!["resolution"]);
        assert_eq!(
            fields(json!({"kind": "exchange", "replacements": []})),
            vec!["resolution.replacements"]
        );
    }
}
