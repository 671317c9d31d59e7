//! `POST /v1/orders`: the raw JSON request parsed into a validated, enriched and priced
//! [`PlaceOrder`].
//!
//! Every field is checked and every problem is reported with its path, not just the first one.
//! What the request leaves out (line and shipping tax, the shipping price) and its promotion
//! codes are filled in by the rule sets of [`super::pricing`]; addresses are checked and
//! normalized by [`super::pricing::address`]. Pricing uses checked integer arithmetic on minor
//! units, so an overflowing order is refused rather than wrapped.

use std::net::IpAddr;

use serde_json::Value;
use waybill_schemas::events::{
    Address, Customer, Discount, OrderLine, PaymentMethod, PickupStore, RiskContext, Shipping,
    Totals,
};
use waybill_schemas::{Channel, Currency, Email, Money, Quantity, Sku, ValueError};

use super::fields::{check_str, index, object, Errors, Obj, Refused, ValidationErrors, BODY};
use super::pricing::promotions::{self, Promotion};
use super::pricing::{self, address, line_net, LineDraft, OrderDraft, ShippingDraft};

/// Most lines one order may have.
pub const MAX_LINES: usize = 200;
/// Most order-level discounts one order may have.
pub const MAX_DISCOUNTS: usize = 20;
/// Most promotion codes one order may name.
pub const MAX_PROMO_CODES: usize = 5;
/// Largest single amount accepted, in minor units (10^15: ten trillion dollars).
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;
pub const MAX_NAME: usize = 200;
pub(super) const MAX_REF: usize = 128;
pub(super) const MAX_ID: usize = 64;
pub(super) const MAX_PHONE: usize = 32;
pub const MAX_CITY: usize = 100;
pub const MAX_POSTAL: usize = 16;
pub(super) const MAX_METHOD: usize = 64;
pub(super) const MAX_PROMO_CODE: usize = 32;
pub(super) const MAX_TOKEN: usize = 128;
pub(super) const MAX_DEVICE_ID: usize = 128;
/// Longest IP address text accepted (an IPv6 address with an embedded IPv4 part is 45).
pub(super) const MAX_IP: usize = 64;
/// Longest inventory location id accepted as a pickup store.
pub(super) const MAX_LOCATION: usize = 64;
/// The payment methods a request may name.
pub(super) const PAYMENT_METHODS: &str = "card, prepaid";

/// A validated and priced order, everything `OrderPlaced` carries except the order id and time.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceOrder {
    pub channel: Channel,
    pub channel_order_ref: String,
    pub currency: Currency,
    pub customer: Customer,
    pub lines: Vec<OrderLine>,
    /// The channel's order discounts, then one per promotion code.
    pub discounts: Vec<Discount>,
    pub shipping_address: Address,
    pub billing_address: Option<Address>,
    pub shipping: Shipping,
    pub totals: Totals,
    /// How the customer pays (always present for orders parsed here).
    pub payment: Option<PaymentMethod>,
    /// The buyer's session, for risk scoring.
    pub risk_context: Option<RiskContext>,
    /// `shipping.pickup_location` as asked: the store a pickup order is to be collected at.
    pub pickup_location: Option<String>,
    /// That store as the routing config offers it, once [`choose_pickup_store`] checked it.
    pub pickup_store: Option<PickupStore>,
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
    let promotions = o
        .array("promo_codes", false, MAX_PROMO_CODES, errors)
        .and_then(|raw| parse_promo_codes(raw, &o.path_of("promo_codes"), errors));
    let shipping = o.required_obj("shipping", errors);
    let payment = o
        .required_obj("payment", errors)
        .and_then(|p| parse_payment(&p, errors));
    let risk_context = match o.optional_obj("risk_context", errors) {
        Ok(Some(r)) => parse_risk_context(&r, errors).map(Some),
        Ok(None) => Some(None),
        Err(_) => None,
    };

    // Amounts are checked even when the currency was refused, so one response lists every
    // problem; a stand-in currency carries them, and the order is refused below regardless.
    let order_currency = currency;
    let currency = match order_currency {
        Some(currency) => currency,
        None => Currency::parse("USD").ok()?,
    };
    let lines: Option<Vec<LineDraft>> = raw_lines.and_then(|raw| {
        let parsed: Vec<Option<LineDraft>> = raw
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
    let pickup_location = shipping
        .as_ref()
        .and_then(|s| s.optional_str("pickup_location", MAX_LOCATION, errors).ok())
        .flatten();
    let shipping = shipping.and_then(|s| parse_shipping(&s, currency, errors));

    let (lines, discounts, shipping, currency) = (lines?, discounts?, shipping?, order_currency?);
    if lines.is_empty() {
        return None;
    }
    let shipping_address = shipping_address?;
    let priced = pricing::price_order(&OrderDraft {
        currency,
        lines,
        discounts,
        promotions: promotions?,
        shipping,
        ship_to: &shipping_address,
    })
    .map_err(|refused| {
        for e in refused {
            errors.push(e.field, e.detail);
        }
    })
    .ok()?;
    Some(PlaceOrder {
        channel: channel?,
        channel_order_ref: channel_order_ref?,
        currency,
        customer: customer?,
        lines: priced.lines,
        discounts: priced.discounts,
        shipping_address,
        billing_address: billing_address?,
        shipping: priced.shipping,
        totals: priced.totals,
        payment: Some(payment?),
        risk_context: risk_context?,
        pickup_location,
        pickup_store: None,
    })
}

/// Checks `shipping.pickup_location` against the stores that offer pickup and records the
/// chosen store on the order. A pickup order must name one (routing sends it there and
/// nowhere else); an order that is not collected must not name one.
pub fn choose_pickup_store(
    order: &mut PlaceOrder,
    routing: &crate::domain::fulfillment::RoutingConfig,
) -> Result<(), ValidationErrors> {
    const FIELD: &str = "shipping.pickup_location";
    let refuse = |detail: String| {
        Err(ValidationErrors(vec![super::FieldError {
            field: FIELD.to_owned(),
            detail,
        }]))
    };
    let offered = || {
        let ids: Vec<&str> = routing.pickup_stores().map(|(id, _)| id).collect();
        if ids.is_empty() {
            "no store offers pickup".to_owned()
        } else {
            format!("stores that offer pickup: {}", ids.join(", "))
        }
    };
    let pickup = routing.is_pickup_method(&order.shipping.method);
    match (&order.pickup_location, pickup) {
        (None, false) => Ok(()),
        (Some(_), false) => refuse(format!(
            "only pickup orders name a pickup store; shipping.method is {}",
            order.shipping.method
        )),
        (None, true) => refuse(format!("is required for pickup orders ({})", offered())),
        (Some(id), true) => {
            let Some((location_id, point)) = routing.pickup_stores().find(|(n, _)| n == id) else {
                return refuse(format!(
                    "{id} is not a store that offers pickup ({})",
                    offered()
                ));
            };
            order.pickup_store = Some(PickupStore {
                location_id: location_id.to_owned(),
                store_name: point.store_name.clone(),
                address: point.address.clone(),
                instructions: point.instructions.clone(),
            });
            Ok(())
        }
    }
}

/// Records a value error at `field`.
fn refuse<T>(result: Result<T, ValueError>, field: String, errors: &mut Errors) -> Option<T> {
    result.map_err(|e| errors.push(field, e.to_string())).ok()
}

/// A required amount, or an optional one that is 0 when absent.
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

/// An optional amount whose absence means "compute it".
fn optional_amount(
    o: &Obj<'_>,
    key: &str,
    currency: Currency,
    errors: &mut Errors,
) -> Result<Option<Money>, Refused> {
    o.optional_int(key, 0, MAX_AMOUNT_MINOR, errors)
        .map(|m| m.map(|m| Money::new(m, currency)))
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

pub(super) fn parse_address(a: &Obj<'_>, errors: &mut Errors) -> Option<Address> {
    let text = |s: String| address::collapse_spaces(&s);
    let name = a.required_str("name", MAX_NAME, errors).map(text);
    let line1 = a.required_str("line1", MAX_NAME, errors).map(text);
    let line2 = a
        .optional_str("line2", MAX_NAME, errors)
        .map(|s| s.map(text));
    let city = a.required_str("city", MAX_CITY, errors).map(text);
    let region = a
        .optional_str("region", MAX_CITY, errors)
        .map(|s| s.map(text));
    let postal_code = a.required_str("postal_code", MAX_POSTAL, errors);
    let country = a.required_str("country", 2, errors).and_then(|raw| {
        address::country(&raw)
            .map_err(|detail| errors.push(a.path_of("country"), detail))
            .ok()
    });
    let postal_code = postal_code.and_then(|raw| {
        let country = country.as_deref()?;
        address::postal_code(country, &raw)
            .map_err(|detail| errors.push(a.path_of("postal_code"), detail))
            .ok()
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
) -> Option<LineDraft> {
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
    let tax = optional_amount(&l, "tax_minor", currency, errors);
    let (quantity, unit_price, discount, tax) = (quantity?, unit_price?, discount?, tax.ok()?);

    let net = match line_net(quantity, unit_price, discount) {
        Ok(net) => net,
        Err((field, detail)) => {
            errors.push(
                field.map_or_else(|| l.path.clone(), |f| l.path_of(f)),
                detail,
            );
            return None;
        }
    };
    Some(LineDraft {
        line_no: u32::try_from(i + 1).ok()?,
        sku: sku?,
        name: name?,
        quantity,
        unit_price,
        discount,
        net,
        tax,
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

fn parse_shipping(s: &Obj<'_>, currency: Currency, errors: &mut Errors) -> Option<ShippingDraft> {
    let method = s.required_str("method", MAX_METHOD, errors);
    let price = optional_amount(s, "price_minor", currency, errors);
    let tax = optional_amount(s, "tax_minor", currency, errors);
    if let (Some(method), Ok(None)) = (&method, &price) {
        if pricing::shipping::Method::parse(method).is_none() {
            errors.push(s.path_of("method"), pricing::unknown_method_detail());
            return None;
        }
    }
    Some(ShippingDraft {
        method: method?,
        price: price.ok()?,
        tax: tax.ok()?,
    })
}

/// The promotions named by `promo_codes`, each with its index; unknown and repeated codes are
/// refused at their index.
fn parse_promo_codes(
    raw: &[Value],
    parent: &str,
    errors: &mut Errors,
) -> Option<Vec<(usize, &'static Promotion)>> {
    let mut found: Vec<(usize, &'static Promotion)> = Vec::with_capacity(raw.len());
    let mut ok = true;
    for (i, value) in raw.iter().enumerate() {
        match promo_code(value.as_str()) {
            Ok(promotion) if found.iter().any(|(_, p)| *p == promotion) => {
                errors.push(index(parent, i), format!("repeats {}", promotion.code));
                ok = false;
            }
            Ok(promotion) => found.push((i, promotion)),
            Err(detail) => {
                errors.push(index(parent, i), detail);
                ok = false;
            }
        }
    }
    ok.then_some(found)
}

/// The promotion a `promo_codes` item names, or why it is refused.
pub(super) fn promo_code(raw: Option<&str>) -> Result<&'static Promotion, String> {
    let raw = raw.ok_or_else(|| "must be a string".to_owned())?;
    let code = check_str(raw, MAX_PROMO_CODE)?;
    promotions::lookup(code).ok_or_else(|| "is not a known promotion code".to_owned())
}

fn parse_payment(p: &Obj<'_>, errors: &mut Errors) -> Option<PaymentMethod> {
    let method = p.required_str("method", 32, errors)?;
    match method.as_str() {
        "card" => {
            let token = p.required_str("token", MAX_TOKEN, errors)?;
            check_token(&token)
                .map_err(|detail| errors.push(p.path_of("token"), detail))
                .ok()?;
            Some(PaymentMethod::Card { token })
        }
        "prepaid" => {
            let reference = p.required_str("reference", MAX_REF, errors)?;
            Some(PaymentMethod::Prepaid { reference })
        }
        _ => {
            errors.push(
                p.path_of("method"),
                format!("must be one of: {PAYMENT_METHODS}"),
            );
            None
        }
    }
}

/// A card token: 1 to 128 characters of `A-Z a-z 0-9 _ -`.
pub(super) fn check_token(token: &str) -> Result<(), String> {
    let ok = !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be 1 to {MAX_TOKEN} characters of letters, digits, _ and -"
        ))
    }
}

fn parse_risk_context(r: &Obj<'_>, errors: &mut Errors) -> Option<RiskContext> {
    let ip = match r.optional_str("ip", MAX_IP, errors) {
        Ok(Some(raw)) => normalize_ip(&raw)
            .map(Some)
            .map_err(|detail| errors.push(r.path_of("ip"), detail))
            .ok(),
        Ok(None) => Some(None),
        Err(Refused) => None,
    };
    let device_id = r.optional_str("device_id", MAX_DEVICE_ID, errors);
    Some(RiskContext {
        ip: ip?,
        device_id: device_id.ok()?,
    })
}

/// An IP address in its canonical text form (`::ffff:1.2.3.4`, compressed IPv6), or why not.
pub(super) fn normalize_ip(raw: &str) -> Result<String, String> {
    raw.parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| "must be an IPv4 or IPv6 address".to_owned())
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

    /// Sets a top-level key of a request body.
    trait Tap {
        fn tap(self, key: &str, value: Value) -> Value;
    }
    impl Tap for Value {
        fn tap(mut self, key: &str, value: Value) -> Value {
            self[key] = value;
            self
        }
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

    #[test]
    fn a_pickup_order_names_a_store_that_offers_pickup() {
        let routing = crate::domain::fulfillment::RoutingConfig::bundled().expect("parses");
        let choose = |method: &str, store: Option<&str>| {
            let mut body = valid();
            body["shipping"] = json!({ "method": method });
            if let Some(store) = store {
                body["shipping"]["pickup_location"] = json!(store);
            }
            let both = [
                parse_place_order(&body).expect("valid"),
                crate::domain::parse_place_order_bytes(body.to_string().as_bytes())
                    .expect("the typed path takes it too"),
            ];
            let [mut walked, mut typed] = both;
            let a = choose_pickup_store(&mut walked, &routing);
            let b = choose_pickup_store(&mut typed, &routing);
            assert_eq!(a, b, "both parsers agree");
            assert_eq!(walked.pickup_store, typed.pickup_store);
            a.map(|()| walked.pickup_store)
                .map_err(|e| (e.0[0].field.clone(), e.0[0].detail.clone()))
        };
        let soho = choose("pickup", Some("store-soho")).expect("offered");
        let soho = soho.expect("chosen");
        assert_eq!(soho.location_id, "store-soho");
        assert_eq!(soho.store_name, "Waybill Soho");
        assert_eq!(choose("standard", None), Ok(None));
        let refused = |method, store| choose(method, store).expect_err("refused");
        let (field, detail) = refused("pickup", None);
        assert_eq!(field, "shipping.pickup_location");
        assert!(
            detail.contains("required") && detail.contains("store-soho"),
            "{detail}"
        );
        let (field, detail) = refused("pickup", Some("wh-east"));
        assert_eq!(field, "shipping.pickup_location");
        assert!(
            detail.contains("not a store that offers pickup"),
            "{detail}"
        );
        let (field, _) = refused("standard", Some("store-soho"));
        assert_eq!(field, "shipping.pickup_location");
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
            (
                "discounts",
                with("/promo_codes", json!([])).tap(
                    "discounts",
                    json!([{"code": "MKT-1", "amount_minor": 3001}]),
                ),
            ),
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
        let line = json!({"sku":"A","name":"a","quantity":10000,"unit_price_minor":MAX_AMOUNT_MINOR,
                          "tax_minor":0});
        let body = with("/lines", Value::Array(vec![line; 200]));
        let fields = fields_of(&body);
        assert_eq!(fields.len(), 200);
        assert_eq!(fields[0], "lines[0]");
        let line = json!({"sku":"A","name":"a","quantity":9000,"unit_price_minor":MAX_AMOUNT_MINOR,
                          "tax_minor":0});
        let body = with("/lines", Value::Array(vec![line; 2]));
        assert_eq!(fields_of(&body), vec!["lines".to_owned()]);
    }

    #[test]
    fn absent_taxes_and_shipping_price_come_from_the_rules() {
        // Illinois: 6.25 % on the line (3000 → 187.5 → 188), shipping not taxed; standard
        // domestic shipping 5.00 below the 50.00 threshold.
        let mut body = without("/lines/0", "tax_minor");
        body["shipping"] = json!({"method": "standard"});
        let order = parse_place_order(&body).expect("valid");
        assert_eq!(order.lines[0].tax.minor, 188);
        assert_eq!(order.lines[0].total.minor, 3188);
        assert_eq!(order.shipping.price.minor, 500);
        assert_eq!(order.shipping.tax.minor, 0);
        assert_eq!(order.totals.grand_total.minor, 3000 - 500 + 188 + 500);

        // Germany: 19 % VAT on the line and on shipping; international express 40.00.
        body["shipping_address"]["country"] = json!("de");
        body["shipping_address"]["postal_code"] = json!("10115");
        body["shipping"] = json!({"method": "Express"});
        let order = parse_place_order(&body).expect("valid");
        assert_eq!(order.lines[0].tax.minor, 570);
        assert_eq!(order.shipping.price.minor, 4000);
        assert_eq!(order.shipping.tax.minor, 760);
        assert_eq!(order.shipping.method, "Express");
    }

    #[test]
    fn present_taxes_and_shipping_price_are_kept() {
        let order = parse_place_order(&valid()).expect("valid");
        assert_eq!(order.lines[0].tax.minor, 240);
        assert_eq!(order.shipping.price.minor, 500);
        assert_eq!(order.shipping.tax.minor, 0);
    }

    #[test]
    fn promotion_codes_become_order_discounts() {
        let mut body = valid();
        body["lines"][0]["quantity"] = json!(4); // 60.00 of merchandise
        body["shipping"] = json!({"method": "express"});
        body["promo_codes"] = json!(["freeship", "SAVE10", "welcome5"]);
        let order = parse_place_order(&body).expect("valid");
        let discounts: Vec<(&str, i64)> = order
            .discounts
            .iter()
            .map(|d| (d.code.as_str(), d.amount.minor))
            .collect();
        assert_eq!(
            discounts,
            vec![("SAVE10", 600), ("WELCOME5", 500), ("FREESHIP", 1500)]
        );
        let t = &order.totals;
        assert_eq!(t.discount_total.minor, 2600);
        assert_eq!(t.grand_total.minor, 6000 - 2600 + 240 + 1500);
    }

    #[test]
    fn addresses_are_normalized() {
        let mut body = valid();
        body["shipping_address"] = json!({"name": "  Ada   Lovelace ", "line1": "1  Main St",
            "city": " Springfield ", "region": "il", "postal_code": " 62701 ", "country": " us"});
        body["billing_address"] = json!({"name": "Ada", "line1": "10 Downing St", "city": "London",
            "postal_code": "sw1a2aa", "country": "gb"});
        let order = parse_place_order(&body).expect("valid");
        let a = &order.shipping_address;
        assert_eq!(
            (a.name.as_str(), a.line1.as_str(), a.city.as_str()),
            ("Ada Lovelace", "1 Main St", "Springfield")
        );
        assert_eq!(
            (a.postal_code.as_str(), a.country.as_str()),
            ("62701", "US")
        );
        let b = order.billing_address.expect("billing address");
        assert_eq!(
            (b.postal_code.as_str(), b.country.as_str()),
            ("SW1A 2AA", "GB")
        );
    }

    #[test]
    fn payment_and_risk_context_are_carried() {
        let order = parse_place_order(&valid()).expect("valid");
        assert_eq!(
            order.payment,
            Some(PaymentMethod::Card {
                token: "tok_4242424242424242".to_owned()
            })
        );
        let mut body = valid();
        body["payment"] = json!({"method": "prepaid", "reference": "AMZ-1"});
        body["risk_context"] = json!({"ip": "2001:DB8:0:0::1"});
        let order = parse_place_order(&body).expect("valid");
        assert_eq!(
            order.payment,
            Some(PaymentMethod::Prepaid {
                reference: "AMZ-1".to_owned()
            })
        );
        let ctx = order.risk_context.expect("risk context");
        assert_eq!(ctx.ip.as_deref(), Some("2001:db8::1"));
        assert_eq!(ctx.device_id, None);
        let order = parse_place_order(&without("", "risk_context")).expect("valid");
        assert_eq!(order.risk_context, None);
    }

    /// The one error a body gets: (path, detail).
    fn error_of(body: &Value) -> (String, String) {
        match parse_place_order(body) {
            Ok(_) => panic!("accepted: {body}"),
            Err(ValidationErrors(mut errors)) => {
                assert_eq!(errors.len(), 1, "{errors:?}");
                let e = errors.remove(0);
                (e.field, e.detail)
            }
        }
    }

    #[test]
    fn each_new_field_error_names_its_path_and_reason() {
        let too_many = json!(["SAVE10", "WELCOME5", "FREESHIP", "A", "B", "C"]);
        let cases: Vec<(Value, &str, &str)> = vec![
            (without("", "payment"), "payment", "is required"),
            (with("/payment", json!("card")), "payment", "must be an object"),
            (with("/payment/method", json!("cash")), "payment.method", "must be one of: card, prepaid"),
            (without("/payment", "method"), "payment.method", "is required"),
            (without("/payment", "token"), "payment.token", "is required"),
            (with("/payment/token", json!("tok 1")), "payment.token", "must be 1 to 128 characters of letters, digits, _ and -"),
            (with("/payment/token", json!("t".repeat(129))), "payment.token", "must be at most 128 characters"),
            (with("/payment", json!({"method": "prepaid"})), "payment.reference", "is required"),
            (with("/promo_codes", too_many), "promo_codes", "must have at most 5 items, got 6"),
            (with("/promo_codes", json!("SAVE10")), "promo_codes", "must be an array"),
            (with("/promo_codes/0", json!("BOGUS")), "promo_codes[0]", "is not a known promotion code"),
            (with("/promo_codes/0", json!(5)), "promo_codes[0]", "must be a string"),
            (with("/promo_codes", json!(["WELCOME5", "welcome5"])), "promo_codes[1]", "repeats WELCOME5"),
            (with("/promo_codes/0", json!("SAVE10")), "promo_codes[0]",
                "SAVE10 needs a subtotal of at least 50.00 USD (this order's is 30.00 USD)"),
            (with("/currency", json!("JPY")).tap("shipping", json!({"method": "pickup"})), "promo_codes[0]",
                "WELCOME5 is valid only for orders in USD, EUR, GBP (this order is in JPY)"),
            (with("/risk_context/ip", json!("300.1.1.1")), "risk_context.ip", "must be an IPv4 or IPv6 address"),
            (with("/risk_context/device_id", json!("d".repeat(129))), "risk_context.device_id", "must be at most 128 characters"),
            (with("/risk_context", json!([])), "risk_context", "must be an object"),
            (with("/lines/0/tax_minor", json!(-1)), "lines[0].tax_minor", "must be at least 0"),
            (with("/shipping/price_minor", json!("5")), "shipping.price_minor", "must be an integer"),
            (with("/shipping", json!({"method": "drone"})), "shipping.method",
                "has no shipping rate (methods with rates: standard, express, pickup); send price_minor to use another method"),
            (with("/currency", json!("SEK")).tap("promo_codes", json!([])).tap("shipping", json!({"method": "standard"})),
                "shipping.price_minor",
                "is required for orders in SEK: the shipping rate table has rates in USD, EUR, GBP, CAD, AUD, JPY"),
            (with("/shipping_address/postal_code", json!("6270")), "shipping_address.postal_code",
                "not a valid US ZIP code (expected 99999 or 99999-9999)"),
            (with("/shipping_address/country", json!("XX")), "shipping_address.country",
                "XX is not an assigned ISO-3166 alpha-2 country code"),
            (with("/billing_address", json!({"name": "A", "line1": "1", "city": "Toronto",
                "postal_code": "12345", "country": "CA"})), "billing_address.postal_code",
                "not a valid Canadian postal code (expected A9A 9A9)"),
        ];
        for (body, field, detail) in cases {
            assert_eq!(
                error_of(&body),
                (field.to_owned(), detail.to_owned()),
                "{body}"
            );
        }
    }

    #[test]
    fn new_field_errors_are_reported_with_the_others() {
        let mut body = with("/lines/0/quantity", json!(0));
        body["payment"] = json!({"method": "cash"});
        body["promo_codes"] = json!(["NOPE"]);
        body["risk_context"] = json!({"ip": "nope"});
        body["shipping_address"]["postal_code"] = json!("1");
        assert_eq!(
            fields_of(&body),
            vec![
                "shipping_address.postal_code",
                "promo_codes[0]",
                "payment.method",
                "risk_context.ip",
                "lines[0].quantity",
            ]
        );
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
            Just("/shipping/price_minor"), Just("/promo_codes/0"), Just("/shipping_address/country"),
            Just("/payment"), Just("/payment/token"), Just("/risk_context/ip"), Just("/shipping/method"),
            Just("/shipping_address/postal_code")],
            value in arb_json()) {
            let _ = parse_place_order(&with(pointer, value));
        }

        #[test]
        fn totals_add_up(lines in prop::collection::vec(arb_line(), 1..20),
                         ship in 0i64..100_000, ship_tax in 0i64..10_000) {
            let mut body = valid();
            body["lines"] = Value::Array(lines);
            body["promo_codes"] = json!([]);
            body["shipping"] = json!({"method":"std","price_minor":ship,"tax_minor":ship_tax});
            let order = parse_place_order(&body).expect("valid lines");
            let t = &order.totals;
            let line_sum: i64 = order.lines.iter().map(|l| l.total.minor).sum();
            prop_assert_eq!(t.grand_total.minor, line_sum + ship + ship_tax);
            prop_assert_eq!(t.grand_total.minor,
                t.subtotal.minor - t.discount_total.minor + t.tax_total.minor + t.shipping_total.minor);
        }

        #[test]
        fn computed_totals_are_the_sum_of_their_parts(
            lines in prop::collection::vec((1i64..=50, 0i64..=100_000, proptest::option::of(0i64..10_000)), 1..10),
            country in prop_oneof![Just(("US", "IL", "62701")), Just(("US", "NY", "10001")),
                                   Just(("DE", "", "10115")), Just(("BR", "", "01001-000"))],
            method in prop_oneof![Just("standard"), Just("express"), Just("pickup")],
            promos in prop::sample::subsequence(vec!["SAVE10", "WELCOME5", "FREESHIP"], 0..=3)) {
            let mut body = valid();
            body["lines"] = Value::Array(lines.iter().map(|(q, p, tax)| {
                let mut line = json!({"sku":"S-1","name":"n","quantity":q,"unit_price_minor":p});
                if let Some(tax) = tax { line["tax_minor"] = json!(tax); }
                line
            }).collect());
            body["shipping_address"]["country"] = json!(country.0);
            body["shipping_address"]["region"] = if country.1.is_empty() { Value::Null } else { json!(country.1) };
            body["shipping_address"]["postal_code"] = json!(country.2);
            body["shipping"] = json!({"method": method});
            body["promo_codes"] = json!(promos);
            let Ok(order) = parse_place_order(&body) else {
                // Only SAVE10's minimum may refuse these orders.
                let merchandise: i64 = lines.iter().map(|(q, p, _)| q * p).sum();
                prop_assert!(promos.contains(&"SAVE10") && merchandise < 5_000);
                return Ok(());
            };
            let t = &order.totals;
            for line in &order.lines {
                prop_assert!(line.tax.minor >= 0);
                prop_assert_eq!(line.total.minor,
                    line.unit_price.minor * i64::from(line.quantity.get()) - line.discount.minor + line.tax.minor);
            }
            let line_taxes: i64 = order.lines.iter().map(|l| l.tax.minor).sum();
            prop_assert_eq!(t.tax_total.minor, line_taxes + order.shipping.tax.minor);
            let discounts: i64 = order.discounts.iter().map(|d| d.amount.minor).sum();
            prop_assert_eq!(t.discount_total.minor, discounts);
            prop_assert!(discounts <= t.subtotal.minor + t.shipping_total.minor);
            prop_assert!(order.discounts.iter().all(|d| d.amount.minor >= 0));
            prop_assert_eq!(t.grand_total.minor,
                t.subtotal.minor - t.discount_total.minor + t.tax_total.minor + t.shipping_total.minor);
            prop_assert!(t.grand_total.minor >= 0);
        }
    }
}
