//! The fast path of `POST /v1/orders`: the body bytes deserialized straight into typed raw
//! structs, then checked with the same rules as [`super::place::parse_place_order`].
//!
//! It only ever says "valid, and this is the order" or "not sure": anything it does not accept
//! (a refused value, a wrong JSON type, an unknown or duplicate key, an array where an object
//! belongs) makes the caller fall back to the `Value` walker, which alone reports field errors.
//! So the errors a client sees come from one place.

use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use waybill_schemas::events::{Address, Customer, Discount, PaymentMethod, RiskContext};
use waybill_schemas::{Channel, Currency, Email, Money, Quantity, Sku};

use super::fields::{check_int, check_str};
use super::place::{
    check_token, normalize_ip, promo_code, PlaceOrder, MAX_AMOUNT_MINOR, MAX_CITY, MAX_DEVICE_ID,
    MAX_DISCOUNTS, MAX_ID, MAX_IP, MAX_LINES, MAX_LOCATION, MAX_METHOD, MAX_NAME, MAX_PHONE,
    MAX_POSTAL, MAX_PROMO_CODES, MAX_REF, MAX_TOKEN,
};
use super::pricing::promotions::Promotion;
use super::pricing::{self, address, line_net, LineDraft, OrderDraft, ShippingDraft};

/// A JSON object only: unlike a derived struct, a JSON array is refused.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        deserializer.deserialize_map(ObjVisitor(PhantomData))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrder {
    channel: Option<String>,
    channel_order_ref: Option<String>,
    currency: Option<String>,
    customer: Option<Obj<RawCustomer>>,
    lines: Option<Vec<Obj<RawLine>>>,
    discounts: Option<Vec<Obj<RawDiscount>>>,
    shipping_address: Option<Obj<RawAddress>>,
    billing_address: Option<Obj<RawAddress>>,
    shipping: Option<Obj<RawShipping>>,
    promo_codes: Option<Vec<String>>,
    payment: Option<Obj<RawPayment>>,
    risk_context: Option<Obj<RawRiskContext>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayment {
    method: Option<String>,
    token: Option<String>,
    reference: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRiskContext {
    ip: Option<String>,
    device_id: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustomer {
    customer_id: Option<String>,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAddress {
    name: Option<String>,
    line1: Option<String>,
    line2: Option<String>,
    city: Option<String>,
    region: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    sku: Option<String>,
    name: Option<String>,
    quantity: Option<i64>,
    unit_price_minor: Option<i64>,
    discount_minor: Option<i64>,
    tax_minor: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscount {
    code: Option<String>,
    amount_minor: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShipping {
    method: Option<String>,
    price_minor: Option<i64>,
    tax_minor: Option<i64>,
    pickup_location: Option<String>,
}

/// The order in `body` when it is one the walker would accept as it is; `None`: ask the walker.
pub fn parse_place_order_bytes(body: &[u8]) -> Option<PlaceOrder> {
    let Obj(raw) = serde_json::from_slice::<Obj<RawOrder>>(body).ok()?;
    order(raw)
}

/// Like `required_str`: present, and accepted by [`check_str`].
fn req(raw: Option<String>, max: usize) -> Option<String> {
    opt(raw, max).ok()?
}

/// Like `optional_str`: `Err(())` when present but refused.
fn opt(raw: Option<String>, max: usize) -> Result<Option<String>, ()> {
    let Some(raw) = raw else { return Ok(None) };
    let s = check_str(&raw, max).map_err(|_| ())?;
    Ok(Some(if s.len() == raw.len() {
        raw
    } else {
        s.to_owned()
    }))
}

fn amount(raw: Option<i64>, required: bool, currency: Currency) -> Option<Money> {
    let minor = match raw {
        Some(i) => check_int(i, 0, MAX_AMOUNT_MINOR).ok()?,
        None if required => return None,
        None => 0,
    };
    Some(Money::new(minor, currency))
}

/// An optional amount whose absence means "compute it".
fn optional_amount(raw: Option<i64>, currency: Currency) -> Result<Option<Money>, ()> {
    match raw {
        Some(i) => check_int(i, 0, MAX_AMOUNT_MINOR)
            .map(|m| Some(Money::new(m, currency)))
            .map_err(|_| ()),
        None => Ok(None),
    }
}

fn order(raw: RawOrder) -> Option<PlaceOrder> {
    let channel = Channel::parse(&req(raw.channel, 32)?).ok()?;
    let channel_order_ref = req(raw.channel_order_ref, MAX_REF)?;
    let currency = Currency::parse(&req(raw.currency, 16)?).ok()?;
    let customer = customer(raw.customer?.0)?;
    let shipping_address = address(raw.shipping_address?.0)?;
    let billing_address = match raw.billing_address {
        Some(Obj(a)) => Some(address(a)?),
        None => None,
    };
    let raw_lines = raw.lines?;
    if raw_lines.is_empty() || raw_lines.len() > MAX_LINES {
        return None;
    }
    let raw_discounts = raw.discounts.unwrap_or_default();
    if raw_discounts.len() > MAX_DISCOUNTS {
        return None;
    }
    let promotions = promotions(raw.promo_codes.unwrap_or_default())?;
    let payment = payment(raw.payment?.0)?;
    let risk_context = match raw.risk_context {
        Some(Obj(r)) => Some(risk_context(r)?),
        None => None,
    };
    let shipping = raw.shipping?.0;
    let lines = raw_lines
        .into_iter()
        .enumerate()
        .map(|(i, Obj(l))| line(l, i, currency))
        .collect::<Option<Vec<_>>>()?;
    let discounts = raw_discounts
        .into_iter()
        .map(|Obj(d)| {
            Some(Discount {
                code: req(d.code, MAX_ID)?,
                amount: amount(d.amount_minor, true, currency)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let pickup_location = opt(shipping.pickup_location, MAX_LOCATION).ok()?;
    let shipping = ShippingDraft {
        method: req(shipping.method, MAX_METHOD)?,
        price: optional_amount(shipping.price_minor, currency).ok()?,
        tax: optional_amount(shipping.tax_minor, currency).ok()?,
    };
    let priced = pricing::price_order(&OrderDraft {
        currency,
        lines,
        discounts,
        promotions,
        shipping,
        ship_to: &shipping_address,
    })
    .ok()?;
    Some(PlaceOrder {
        channel,
        channel_order_ref,
        currency,
        customer,
        lines: priced.lines,
        discounts: priced.discounts,
        shipping_address,
        billing_address,
        shipping: priced.shipping,
        totals: priced.totals,
        payment: Some(payment),
        risk_context,
        pickup_location,
        pickup_store: None,
    })
}

fn promotions(codes: Vec<String>) -> Option<Vec<(usize, &'static Promotion)>> {
    if codes.len() > MAX_PROMO_CODES {
        return None;
    }
    let mut found: Vec<(usize, &'static Promotion)> = Vec::with_capacity(codes.len());
    for (i, code) in codes.iter().enumerate() {
        let promotion = promo_code(Some(code)).ok()?;
        if found.iter().any(|(_, p)| *p == promotion) {
            return None;
        }
        found.push((i, promotion));
    }
    Some(found)
}

fn payment(p: RawPayment) -> Option<PaymentMethod> {
    match req(p.method, 32)?.as_str() {
        "card" => {
            let token = req(p.token, MAX_TOKEN)?;
            check_token(&token).ok()?;
            Some(PaymentMethod::Card { token })
        }
        "prepaid" => Some(PaymentMethod::Prepaid {
            reference: req(p.reference, MAX_REF)?,
        }),
        _ => None,
    }
}

fn risk_context(r: RawRiskContext) -> Option<RiskContext> {
    let ip = match opt(r.ip, MAX_IP).ok()? {
        Some(raw) => Some(normalize_ip(&raw).ok()?),
        None => None,
    };
    Some(RiskContext {
        ip,
        device_id: opt(r.device_id, MAX_DEVICE_ID).ok()?,
    })
}

fn customer(c: RawCustomer) -> Option<Customer> {
    Some(Customer {
        customer_id: opt(c.customer_id, MAX_ID).ok()?,
        name: req(c.name, MAX_NAME)?,
        email: Email::parse(&req(c.email, 254)?).ok()?,
        phone: opt(c.phone, MAX_PHONE).ok()?,
    })
}

fn address(a: RawAddress) -> Option<Address> {
    let text = |s: String| address::collapse_spaces(&s);
    let country = address::country(&req(a.country, 2)?).ok()?;
    let postal_code = address::postal_code(&country, &req(a.postal_code, MAX_POSTAL)?).ok()?;
    Some(Address {
        name: text(req(a.name, MAX_NAME)?),
        line1: text(req(a.line1, MAX_NAME)?),
        line2: opt(a.line2, MAX_NAME).ok()?.map(text),
        city: text(req(a.city, MAX_CITY)?),
        region: opt(a.region, MAX_CITY).ok()?.map(text),
        postal_code,
        country,
    })
}

fn line(l: RawLine, i: usize, currency: Currency) -> Option<LineDraft> {
    let sku = Sku::parse(&req(l.sku, Sku::MAX_LEN)?).ok()?;
    let name = req(l.name, MAX_NAME)?;
    let quantity = check_int(l.quantity?, 1, i64::from(Quantity::MAX)).ok()?;
    let quantity = Quantity::parse(quantity).ok()?;
    let unit_price = amount(l.unit_price_minor, true, currency)?;
    let discount = amount(l.discount_minor, false, currency)?;
    let tax = optional_amount(l.tax_minor, currency).ok()?;
    let net = line_net(quantity, unit_price, discount).ok()?;
    Some(LineDraft {
        line_no: u32::try_from(i + 1).ok()?,
        sku,
        name,
        quantity,
        unit_price,
        discount,
        net,
        tax,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::parse_place_order_bytes;
    use crate::domain::parse_place_order;

    fn valid() -> Value {
        json!({"channel":" web","channel_order_ref":"WEB-1001 ","currency":"USD",
            "customer":{"customer_id":"c-42","name":"Ada \u{e9}","email":"ada@example.com","phone":null},
            "lines":[{"sku":"TEE-RED-M","name":"Red tee","quantity":2,"unit_price_minor":1500,
                      "discount_minor":0,"tax_minor":240},
                     {"sku":"MUG","name":"Mug","quantity":3,"unit_price_minor":900}],
            "discounts":[{"code":"MKT-5","amount_minor":500}],
            "promo_codes":["save10","FREESHIP"],
            "shipping_address":{"name":"Ada","line1":"1  Main St","line2":null,"city":"Springfield",
                                "region":"IL","postal_code":"62701","country":"us"},
            "billing_address":{"name":"Ada","line1":"1 Rue","city":"Paris","postal_code":"75001","country":"FR"},
            "shipping":{"method":"express"},
            "payment":{"method":"card","token":"tok_4242424242424242"},
            "risk_context":{"ip":"203.0.113.7","device_id":"dev-1"}})
    }

    /// The fast path accepts exactly what the walker accepts, with the same result, or defers.
    fn agrees(body: &Value) -> Result<bool, TestCaseError> {
        let bytes = serde_json::to_vec(body).expect("serializable");
        let fast = parse_place_order_bytes(&bytes);
        let walked = parse_place_order(body);
        if let Some(fast) = &fast {
            prop_assert_eq!(Some(fast), walked.as_ref().ok());
        }
        Ok(fast.is_some())
    }

    #[test]
    fn a_valid_order_takes_the_fast_path_with_the_walkers_result() {
        parse_place_order(&valid()).expect("the walker accepts the sample");
        assert!(agrees(&valid()).expect("agrees"));
        let mut body = valid();
        body.as_object_mut().expect("object").remove("discounts");
        assert!(agrees(&body).expect("agrees"));
    }

    #[test]
    fn arrays_unknown_and_duplicate_keys_defer_to_the_walker() {
        assert!(parse_place_order_bytes(b"[1,2]").is_none());
        let mut body = valid();
        body["customer"] = json!(["c-42", "Ada", "ada@example.com", null]);
        assert!(!agrees(&body).expect("agrees"));
        let mut body = valid();
        body["extra"] = json!(1);
        assert!(!agrees(&body).expect("agrees"));
        let text = serde_json::to_string(&valid()).expect("json");
        let doubled = text.replacen(
            "\"channel\":\" web\"",
            "\"channel\":\"web\",\"channel\":\"fax\"",
            1,
        );
        assert_ne!(doubled, text);
        assert!(parse_place_order_bytes(doubled.as_bytes()).is_none());
    }

    proptest! {
        #[test]
        fn mutated_orders_agree(pointer in prop_oneof![
            Just("/lines/0/quantity"), Just("/currency"), Just("/channel"), Just("/lines/1/quantity"),
            Just("/shipping/price_minor"), Just("/discounts/0/amount_minor"), Just("/shipping_address/country"),
            Just("/customer/email"), Just("/customer/phone"), Just("/lines/0/unit_price_minor"),
            Just("/billing_address"), Just("/shipping/tax_minor"), Just("/lines/1/sku"),
            Just("/lines/1/tax_minor"), Just("/shipping/method"), Just("/promo_codes/0"), Just("/promo_codes/1"),
            Just("/payment"), Just("/payment/method"), Just("/payment/token"), Just("/risk_context"),
            Just("/risk_context/ip"), Just("/risk_context/device_id"), Just("/shipping_address/postal_code"),
            Just("/billing_address/country"), Just("/billing_address/postal_code"), Just("/promo_codes")],
            value in prop_oneof![
                Just(Value::Null),
                any::<i64>().prop_map(Value::from),
                (0i64..5000).prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "[a-zA-Z0-9 @.\\t-]{0,5}".prop_map(Value::String),
                prop_oneof![Just("EUR"), Just("app"), Just("gb"), Just("x@y.z"), Just("JPY"), Just("pickup"),
                    Just("welcome5"), Just("SAVE10"), Just("prepaid"), Just("card"), Just("::1"), Just("k1a 0b1"),
                    Just("10115"), Just("DE"), Just("tok_1")].prop_map(|s| Value::String(s.to_owned())),
                Just(json!({"method": "prepaid", "reference": "R-1"})),
                Just(json!({"method": "card", "token": "tok_1", "reference": "R-1"})),
                Just(json!(["WELCOME5"])),
                Just(json!({"ip": "10.0.0.1"})),
            ]) {
            let mut body = valid();
            let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
            match body.pointer_mut(parent).expect("parent exists") {
                Value::Array(items) => items[key.parse::<usize>().expect("index")] = value,
                parent => parent[key] = value,
            }
            agrees(&body)?;
        }
    }
}
