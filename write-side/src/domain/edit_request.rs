//! `POST /v1/orders/{id}/edits` (and its preview): the raw JSON body `{"changes": [{"line_no",
//! "quantity"}], "add": [{"sku", "name", "quantity", "unit_price": {"amount_minor",
//! "currency"}}], "shipping_address"?}` parsed into a validated [`EditOrder`]. A change's
//! quantity 0 removes the line. Whether the order can take the edit, and its price, are the
//! order's decision (`order::edit`).

use serde_json::Value;
use waybill_schemas::{Currency, Money, Quantity, Sku};

use super::fields::{object, Errors, ValidationErrors, BODY};
use super::order::{EditOrder, LineChange, NewLine};
use super::place::{parse_address, MAX_AMOUNT_MINOR};

pub const MAX_LINES: usize = 200;
pub const MAX_NAME: usize = 200;

/// Parses an edit body, collecting every field error.
pub fn parse_edit_order(body: &Value) -> Result<EditOrder, ValidationErrors> {
    let mut errors = Errors::default();
    let parsed = object(body, BODY.to_owned(), &mut errors).and_then(|o| {
        let raw_changes = o.array("changes", false, MAX_LINES, &mut errors);
        let raw_add = o.array("add", false, MAX_LINES, &mut errors);
        let address = match o.optional_obj("shipping_address", &mut errors) {
            Ok(Some(a)) => parse_address(&a, &mut errors).map(Some),
            Ok(None) => Some(None),
            Err(_) => None,
        };
        let changes: Option<Vec<LineChange>> = raw_changes.and_then(|raw| {
            let parsed: Vec<Option<LineChange>> = raw
                .iter()
                .enumerate()
                .map(|(i, line)| {
                    let l = object(line, format!("{}[{i}]", o.path_of("changes")), &mut errors)?;
                    let line_no = l.required_int("line_no", 1, i64::from(u32::MAX), &mut errors);
                    let quantity =
                        l.required_int("quantity", 0, i64::from(Quantity::MAX), &mut errors);
                    Some(LineChange {
                        line_no: u32::try_from(line_no?).ok()?,
                        quantity: u32::try_from(quantity?).ok()?,
                    })
                })
                .collect();
            parsed.into_iter().collect()
        });
        let add: Option<Vec<NewLine>> = raw_add.and_then(|raw| {
            let parsed: Vec<Option<NewLine>> = raw
                .iter()
                .enumerate()
                .map(|(i, line)| {
                    let l = object(line, format!("{}[{i}]", o.path_of("add")), &mut errors)?;
                    let sku = l
                        .required_str("sku", Sku::MAX_LEN, &mut errors)
                        .and_then(|raw| {
                            Sku::parse(&raw)
                                .map_err(|e| errors.push(l.path_of("sku"), e.to_string()))
                                .ok()
                        });
                    let name = l.required_str("name", MAX_NAME, &mut errors);
                    let quantity = l
                        .required_int("quantity", 1, i64::from(Quantity::MAX), &mut errors)
                        .and_then(|q| Quantity::parse(q).ok());
                    let price = l.required_obj("unit_price", &mut errors).and_then(|p| {
                        let amount =
                            p.required_int("amount_minor", 1, MAX_AMOUNT_MINOR, &mut errors);
                        let currency =
                            p.required_str("currency", 16, &mut errors).and_then(|raw| {
                                Currency::parse(&raw)
                                    .map_err(|e| errors.push(p.path_of("currency"), e.to_string()))
                                    .ok()
                            });
                        Some(Money::new(amount?, currency?))
                    });
                    Some(NewLine {
                        sku: sku?,
                        name: name?,
                        quantity: quantity?,
                        unit_price: price?,
                    })
                })
                .collect();
            parsed.into_iter().collect()
        });
        let (changes, add) = (changes.unwrap_or_default(), add.unwrap_or_default());
        if errors.is_empty() && changes.is_empty() && add.is_empty() && address == Some(None) {
            errors.push(
                o.path_of("changes"),
                "an edit must change a line, add one or change the shipping address",
            );
        }
        Some(EditOrder {
            changes,
            add,
            shipping_address: address?,
        })
    });
    errors.finish(parsed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(body: Value) -> Vec<String> {
        parse_edit_order(&body)
            .expect_err("invalid")
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn an_edit_body_parses_changes_added_lines_and_an_address() {
        let edit = parse_edit_order(&json!({
            "changes": [{"line_no": 1, "quantity": 0}],
            "add": [{"sku": "SOCKS-3", "name": "Socks", "quantity": 2,
                     "unit_price": {"amount_minor": 400, "currency": "USD"}}],
        }))
        .expect("valid");
        assert_eq!(edit.changes[0].quantity, 0);
        assert_eq!(edit.add[0].unit_price.minor, 400);
        assert_eq!(edit.shipping_address, None);
    }

    #[test]
    fn bad_edit_bodies_name_the_field() {
        assert_eq!(
            fields(json!({"add": [{"sku": "S", "name": "n", "quantity": 0,
                "unit_price": {"amount_minor": 1, "currency": "USD"}}]})),
            vec!["add[0].quantity"]
        );
        assert_eq!(
            fields(json!({"add": [{"sku": "S", "name": "n", "quantity": 1,
                "unit_price": {"amount_minor": 1, "currency": "XYZ1"}}]})),
            vec!["add[0].unit_price.currency"]
        );
        assert_eq!(
            fields(json!({"changes": [{"line_no": 0, "quantity": 1}]})),
            vec!["changes[0].line_no"]
        );
        assert_eq!(fields(json!({})), vec!["changes"]);
    }
}
