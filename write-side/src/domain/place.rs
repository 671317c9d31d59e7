//! `POST /v1/orders`: the raw JSON request parsed into a validated, priced [`PlaceOrder`].
//!
//! Every field is checked and every problem is reported with its path, not just the first one.
//! Pricing uses checked integer arithmetic on minor units, so an overflowing order is refused
//! rather than wrapped.

use serde_json::Value;
use waybill_schemas::events::{
    Address, Customer, Discount, OrderLine, PaymentMethod, RiskContext, Shipping, Totals,
};
use waybill_schemas::{Channel, Currency, Email, Money, Quantity, Sku, ValueError};

use super::fields::{index, object, Errors, Obj, ValidationErrors, BODY};

/// Most lines one order may have.
pub const MAX_LINES: usize = 200;
/// Most order-level discounts one order may have.
pub const MAX_DISCOUNTS: usize = 20;
/// Largest single amount accepted, in minor units (10^15: ten trillion dollars).
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;
pub(super) const MAX_NAME: usize = 200;
pub(super) const MAX_REF: usize = 128;
pub(super) const MAX_ID: usize = 64;
pub(super) const MAX_PHONE: usize = 32;
pub(super) const MAX_CITY: usize = 100;
pub(super) const MAX_POSTAL: usize = 16;
pub(super) const MAX_METHOD: usize = 64;

/// A validated and priced order, everything `OrderPlaced` carries except the order id and time.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceOrder {
    pub channel: Channel,
    pub channel_order_ref: String,
    pub currency: Currency,
    pub customer: Customer,
    pub lines: Vec<OrderLine>,
    pub discounts: Vec<Discount>,
    pub shipping_address: Address,
    pub billing_address: Option<Address>,
    pub shipping: Shipping,
    pub totals: Totals,
    /// How the customer pays.
    pub payment: Option<PaymentMethod>,
    /// The buyer's session, for risk scoring.
    pub risk_context: Option<RiskContext>,
}

/// Parses a place-order request body, collecting every field error.
pub fn parse_place_order(body: &Value) -> Result<PlaceOrder, ValidationErrors> {
    let mut errors = Errors::default();
    let order =
        object(body, BODY.to_owned(), &mut errors).and_then(|o| parse_order(&o, &mut errors));
    errors.finish(order)
}

fn parse_order(o: &Obj<'_>, errors: &mut Errors) -> Option<PlaceOrder> {
    let channel = o
        .required_str("channel", 32, errors)
        .and_then(|raw| refuse(Channel::parse(&raw), o.path_of("channel"), errors));
    let channel_order_ref = o.required_str("channel_order_ref", MAX_REF, errors);
    let currency = o
        .required_str("currency", 16, errors)
        .and_then(|raw| refuse(Currency::parse(&raw), o.path_of("currency"), errors));
    let customer = o
        .required_obj("customer", errors)
        .and_then(|c| parse_customer(&c, errors));
    let shipping_address = o
        .required_obj("shipping_address", errors)
        .and_then(|a| parse_address(&a, errors));
    let billing_address = match o.optional_obj("billing_address", errors) {
        Ok(Some(a)) => parse_address(&a, errors).map(Some),
        Ok(None) => Some(None),
        Err(_) => None,
    };
    let raw_lines = o.array("lines", true, MAX_LINES, errors);
    if raw_lines.is_some_and(<[Value]>::is_empty) {
        errors.push(o.path_of("lines"), "must have at least 1 line");
    }
    let raw_discounts = o.array("discounts", false, MAX_DISCOUNTS, errors);
    let shipping = o.required_obj("shipping", errors);

    // Amounts are checked even when the currency was refused, so one response lists every
    // problem; a stand-in currency carries them, and the order is refused below regardless.
    let order_currency = currency;
    let currency = match order_currency {
        Some(currency) => currency,
        None => Currency::parse("USD").ok()?,
    };
    let lines: Option<Vec<OrderLine>> = raw_lines.and_then(|raw| {
        let parsed: Vec<Option<OrderLine>> = raw
            .iter()
            .enumerate()
            .map(|(i, line)| parse_line(line, i, &o.path_of("lines"), currency, errors))
            .collect();
        parsed.into_iter().collect()
    });
    let discounts: Option<Vec<Discount>> = raw_discounts.and_then(|raw| {
        let parsed: Vec<Option<Discount>> = raw
            .iter()
            .enumerate()
            .map(|(i, d)| parse_discount(d, i, &o.path_of("discounts"), currency, errors))
            .collect();
        parsed.into_iter().collect()
    });
    let shipping = shipping.and_then(|s| parse_shipping(&s, currency, errors));

    let (lines, discounts, shipping, currency) = (lines?, discounts?, shipping?, order_currency?);
    if lines.is_empty() {
        return None;
    }
    let totals = price(&lines, &discounts, &shipping, currency, o, errors)?;
    Some(PlaceOrder {
        channel: channel?,
        channel_order_ref: channel_order_ref?,
        currency,
        customer: customer?,
        lines,
        discounts,
        shipping_address: shipping_address?,
        billing_address: billing_address?,
        shipping,
        totals,
        payment: None,
        risk_context: None,
    })
}

/// Records a value error at `field`.
fn refuse<T>(result: Result<T, ValueError>, field: String, errors: &mut Errors) -> Option<T> {
    result.map_err(|e| errors.push(field, e.to_string())).ok()
}

fn amount(
    o: &Obj<'_>,
    key: &str,
    required: bool,
    currency: Currency,
    errors: &mut Errors,
) -> Option<Money> {
    let minor = if required {
        o.required_int(key, 0, MAX_AMOUNT_MINOR, errors)
    } else {
        o.int_or(key, 0, 0, MAX_AMOUNT_MINOR, errors)
    };
    minor.map(|m| Money::new(m, currency))
}

fn parse_customer(c: &Obj<'_>, errors: &mut Errors) -> Option<Customer> {
    let customer_id = c.optional_str("customer_id", MAX_ID, errors);
    let name = c.required_str("name", MAX_NAME, errors);
    let email = c
        .required_str("email", 254, errors)
        .and_then(|raw| refuse(Email::parse(&raw), c.path_of("email"), errors));
    let phone = c.optional_str("phone", MAX_PHONE, errors);
    Some(Customer {
        customer_id: customer_id.ok()?,
        name: name?,
        email: email?,
        phone: phone.ok()?,
    })
}

fn parse_address(a: &Obj<'_>, errors: &mut Errors) -> Option<Address> {
    let name = a.required_str("name", MAX_NAME, errors);
    let line1 = a.required_str("line1", MAX_NAME, errors);
    let line2 = a.optional_str("line2", MAX_NAME, errors);
    let city = a.required_str("city", MAX_CITY, errors);
    let region = a.optional_str("region", MAX_CITY, errors);
    let postal_code = a.required_str("postal_code", MAX_POSTAL, errors);
    let country = a.required_str("country", 2, errors).and_then(|raw| {
        if raw.len() == 2 && raw.chars().all(|c| c.is_ascii_alphabetic()) {
            Some(raw.to_ascii_uppercase())
        } else {
            errors.push(
                a.path_of("country"),
                "must be an ISO-3166 alpha-2 country code (2 letters)",
            );
            None
        }
    });
    Some(Address {
        name: name?,
        line1: line1?,
        line2: line2.ok()?,
        city: city?,
        region: region.ok()?,
        postal_code: postal_code?,
        country: country?,
    })
}

fn parse_line(
    value: &Value,
    i: usize,
    parent: &str,
    currency: Currency,
    errors: &mut Errors,
) -> Option<OrderLine> {
    let l = object(value, index(parent, i), errors)?;
    let sku = l
        .required_str("sku", Sku::MAX_LEN, errors)
        .and_then(|raw| refuse(Sku::parse(&raw), l.path_of("sku"), errors));
    let name = l.required_str("name", MAX_NAME, errors);
    let quantity = l
        .required_int("quantity", 1, i64::from(Quantity::MAX), errors)
        .and_then(|q| refuse(Quantity::parse(q), l.path_of("quantity"), errors));
    let unit_price = amount(&l, "unit_price_minor", true, currency, errors);
    let discount = amount(&l, "discount_minor", false, currency, errors);
    let tax = amount(&l, "tax_minor", false, currency, errors);
    let (quantity, unit_price, discount, tax) = (quantity?, unit_price?, discount?, tax?);

    let total = match line_total(quantity, unit_price, discount, tax) {
        Ok(total) => total,
        Err((field, detail)) => {
            errors.push(
                field.map_or_else(|| l.path.clone(), |f| l.path_of(f)),
                detail,
            );
            return None;
        }
    };
    Some(OrderLine {
        line_no: u32::try_from(i + 1).ok()?,
        sku: sku?,
        name: name?,
        quantity,
        unit_price,
        discount,
        tax,
        total,
    })
}

fn parse_discount(
    value: &Value,
    i: usize,
    parent: &str,
    currency: Currency,
    errors: &mut Errors,
) -> Option<Discount> {
    let d = object(value, index(parent, i), errors)?;
    let code = d.required_str("code", MAX_ID, errors);
    let amount = amount(&d, "amount_minor", true, currency, errors);
    Some(Discount {
        code: code?,
        amount: amount?,
    })
}

fn parse_shipping(s: &Obj<'_>, currency: Currency, errors: &mut Errors) -> Option<Shipping> {
    let method = s.required_str("method", MAX_METHOD, errors);
    let price = amount(s, "price_minor", true, currency, errors);
    let tax = amount(s, "tax_minor", false, currency, errors);
    Some(Shipping {
        method: method?,
        price: price?,
        tax: tax?,
    })
}

/// A line's total: quantity × unit price − discount + tax, all checked. The error names the
/// refused field of the line (`None`: the line itself) and why.
pub(super) fn line_total(
    quantity: Quantity,
    unit_price: Money,
    discount: Money,
    tax: Money,
) -> Result<Money, (Option<&'static str>, String)> {
    let Ok(gross) = unit_price.checked_mul(quantity.get()) else {
        return Err((None, "quantity × unit price overflows".to_owned()));
    };
    if discount.minor > gross.minor {
        return Err((
            Some("discount_minor"),
            format!(
                "exceeds the line amount (quantity × unit price = {})",
                gross.minor
            ),
        ));
    }
    gross
        .checked_sub(discount)
        .and_then(|net| net.checked_add(tax))
        .map_err(|_| (None, "line total overflows".to_owned()))
}

/// The order's totals: grand = subtotal − discounts + taxes + shipping, all checked.
pub fn price(
    lines: &[OrderLine],
    discounts: &[Discount],
    shipping: &Shipping,
    currency: Currency,
    o: &Obj<'_>,
    errors: &mut Errors,
) -> Option<Totals> {
    check_totals(lines, discounts, shipping, currency)
        .map_err(|(field, detail)| errors.push(o.path_of(field), detail))
        .ok()
}

/// [`price`] without a request: the error names the refused top-level field and why.
pub(super) fn check_totals(
    lines: &[OrderLine],
    discounts: &[Discount],
    shipping: &Shipping,
    currency: Currency,
) -> Result<Totals, (&'static str, String)> {
    match compute_totals(lines, discounts, shipping, currency) {
        Ok(totals) if totals.grand_total.minor < 0 => {
            Err(("discounts", "discounts exceed the order total".to_owned()))
        }
        Ok(totals) => {
            let line_discounts: i64 = lines.iter().map(|l| l.discount.minor).sum();
            let order_discounts = totals.discount_total.minor - line_discounts;
            if order_discounts > totals.subtotal.minor - line_discounts {
                return Err((
                    "discounts",
                    format!(
                        "order discounts ({order_discounts}) exceed the subtotal after line discounts ({})",
                        totals.subtotal.minor - line_discounts
                    ),
                ));
            }
            Ok(totals)
        }
        Err(_) => Err(("lines", "order total overflows".to_owned())),
    }
}

fn compute_totals(
    lines: &[OrderLine],
    discounts: &[Discount],
    shipping: &Shipping,
    currency: Currency,
) -> Result<Totals, ValueError> {
    let zero = Money::zero(currency);
    let mut subtotal = zero;
    let mut discount_total = zero;
    let mut tax_total = shipping.tax;
    for line in lines {
        subtotal = subtotal.checked_add(line.unit_price.checked_mul(line.quantity.get())?)?;
        discount_total = discount_total.checked_add(line.discount)?;
        tax_total = tax_total.checked_add(line.tax)?;
    }
    for d in discounts {
        discount_total = discount_total.checked_add(d.amount)?;
    }
    let grand_total = subtotal
        .checked_sub(discount_total)?
        .checked_add(tax_total)?
        .checked_add(shipping.price)?;
    Ok(Totals {
        subtotal,
        discount_total,
        tax_total,
        shipping_total: shipping.price,
        grand_total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    pub(crate) fn valid() -> Value {
        crate::testing::order_body("WEB-1001")
    }

    fn with(pointer: &str, value: Value) -> Value {
        let mut body = valid();
        *body
            .pointer_mut(pointer)
            .expect("pointer exists in the sample") = value;
        body
    }

    fn without(parent: &str, key: &str) -> Value {
        let mut body = valid();
        let target = if parent.is_empty() {
            &mut body
        } else {
            body.pointer_mut(parent).expect("parent exists")
        };
        target.as_object_mut().expect("object").remove(key);
        body
    }

    fn fields_of(body: &Value) -> Vec<String> {
        match parse_place_order(body) {
            Ok(_) => vec![],
            Err(ValidationErrors(errors)) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn the_documented_example_is_priced() {
        let order = parse_place_order(&valid()).expect("valid");
        assert_eq!(order.totals.subtotal.minor, 3000);
        assert_eq!(order.totals.discount_total.minor, 500);
        assert_eq!(order.totals.tax_total.minor, 240);
        assert_eq!(order.totals.shipping_total.minor, 500);
        assert_eq!(order.totals.grand_total.minor, 3240);
        assert_eq!(order.lines[0].total.minor, 3240);
        assert_eq!(order.lines[0].line_no, 1);
    }

    #[test]
    fn each_bad_field_is_named_by_its_path() {
        let cases: Vec<(&str, Value)> = vec![
            ("lines[0].quantity", with("/lines/0/quantity", json!(0))),
            ("lines[0].quantity", with("/lines/0/quantity", json!(-3))),
            ("lines[0].quantity", with("/lines/0/quantity", json!("two"))),
            ("lines[0].quantity", with("/lines/0/quantity", json!(1.5))),
            (
                "lines[0].unit_price_minor",
                with("/lines/0/unit_price_minor", json!(-1)),
            ),
            (
                "lines[0].unit_price_minor",
                with("/lines/0/unit_price_minor", json!(1e30)),
            ),
            (
                "lines[0].unit_price_minor",
                with("/lines/0/unit_price_minor", json!(u64::MAX)),
            ),
            (
                "lines[0].discount_minor",
                with("/lines/0/discount_minor", json!(3001)),
            ),
            ("lines[0].sku", with("/lines/0/sku", json!("no spaces"))),
            ("lines[0]", with("/lines/0", json!("tee"))),
            ("currency", with("/currency", json!("XYZ"))),
            ("currency", with("/currency", json!(840))),
            ("channel", with("/channel", json!("fax"))),
            (
                "customer.email",
                with("/customer/email", json!("ada-at-example")),
            ),
            (
                "customer.name",
                with("/customer/name", json!("x".repeat(201))),
            ),
            ("customer", with("/customer", json!([]))),
            (
                "shipping_address.country",
                with("/shipping_address/country", json!("USA")),
            ),
            (
                "shipping_address.country",
                with("/shipping_address/country", json!("1A")),
            ),
            ("discounts", with("/discounts/0/amount_minor", json!(3001))),
            ("lines", with("/lines", json!([]))),
            ("lines", with("/lines", json!({}))),
            (
                "lines",
                with(
                    "/lines",
                    Value::Array(vec![valid()["lines"][0].clone(); MAX_LINES + 1]),
                ),
            ),
            ("channel_order_ref", without("", "channel_order_ref")),
            ("customer", without("", "customer")),
            ("shipping.method", without("/shipping", "method")),
            (
                "lines[0].unit_price_minor",
                without("/lines/0", "unit_price_minor"),
            ),
            ("body", json!([1, 2])),
        ];
        for (field, body) in cases {
            assert_eq!(
                fields_of(&body),
                vec![field.to_owned()],
                "case {field}: {body}"
            );
        }
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let mut body = with("/lines/0/quantity", json!(0));
        body["currency"] = json!("usd");
        body["customer"]["email"] = json!("nope");
        body["channel"] = json!("fax");
        let fields = fields_of(&body);
        for field in ["channel", "currency", "customer.email", "lines[0].quantity"] {
            assert!(
                fields.contains(&field.to_owned()),
                "{field} missing from {fields:?}"
            );
        }
        let mut body = with("/lines/0/quantity", json!(0));
        body["customer"]["email"] = json!("nope");
        assert_eq!(
            fields_of(&body),
            vec!["customer.email", "lines[0].quantity"]
        );
    }

    #[test]
    fn amounts_that_overflow_are_refused_not_wrapped() {
        let line =
            json!({"sku":"A","name":"a","quantity":10000,"unit_price_minor":MAX_AMOUNT_MINOR});
        let body = with("/lines", Value::Array(vec![line; 200]));
        let fields = fields_of(&body);
        assert_eq!(fields.len(), 200);
        assert_eq!(fields[0], "lines[0]");
        let line =
            json!({"sku":"A","name":"a","quantity":9000,"unit_price_minor":MAX_AMOUNT_MINOR});
        let body = with("/lines", Value::Array(vec![line; 2]));
        assert_eq!(fields_of(&body), vec!["lines".to_owned()]);
    }

    #[test]
    fn optional_amounts_default_to_zero_and_country_is_upper_cased() {
        let mut body = without("/lines/0", "tax_minor");
        body["shipping_address"]["country"] = json!("us");
        let order = parse_place_order(&body).expect("valid");
        assert_eq!(order.lines[0].tax.minor, 0);
        assert_eq!(order.shipping_address.country, "US");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-zA-Z0-9_ @.-]{0,12}".prop_map(Value::String),
            prop_oneof![
                Just("web"),
                Just("USD"),
                Just("US"),
                Just("lines"),
                Just("quantity")
            ]
            .prop_map(|s| Value::String(s.to_owned())),
        ];
        leaf.prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("channel".to_owned()),
                        Just("currency".to_owned()),
                        Just("lines".to_owned()),
                        Just("quantity".to_owned()),
                        Just("customer".to_owned()),
                        Just("shipping".to_owned()),
                        Just("unit_price_minor".to_owned()),
                        "[a-z_]{1,8}"
                    ],
                    inner,
                    0..8
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_line() -> impl Strategy<Value = Value> {
        (1i64..=10_000, 0i64..=1_000_000, 0i64..=100_000, 0u8..=100).prop_map(|(q, p, tax, pct)| {
            let discount = (q * p) * i64::from(pct) / 100;
            json!({"sku":"S-1","name":"n","quantity":q,"unit_price_minor":p,
                   "discount_minor":discount,"tax_minor":tax})
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(body in arb_json()) {
            let _ = parse_place_order(&body);
        }

        #[test]
        fn mutated_valid_orders_never_panic(pointer in prop_oneof![
            Just("/lines/0/quantity"), Just("/currency"), Just("/customer"), Just("/lines"),
            Just("/shipping/price_minor"), Just("/discounts/0"), Just("/shipping_address/country")],
            value in arb_json()) {
            let _ = parse_place_order(&with(pointer, value));
        }

        #[test]
        fn totals_add_up(lines in prop::collection::vec(arb_line(), 1..20),
                         ship in 0i64..100_000, ship_tax in 0i64..10_000) {
            let mut body = valid();
            body["lines"] = Value::Array(lines);
            body["discounts"] = json!([]);
            body["shipping"] = json!({"method":"std","price_minor":ship,"tax_minor":ship_tax});
            let order = parse_place_order(&body).expect("valid lines");
            let t = &order.totals;
            let line_sum: i64 = order.lines.iter().map(|l| l.total.minor).sum();
            prop_assert_eq!(t.grand_total.minor, line_sum + ship + ship_tax);
            prop_assert_eq!(t.grand_total.minor,
                t.subtotal.minor - t.discount_total.minor + t.tax_total.minor + t.shipping_total.minor);
        }
    }
}
