//! The fast path of `POST /v1/orders`: the body bytes deserialized straight into typed raw
//! structs, then checked with the same rules as [`super::place::parse_place_order`].
//!
//! It only ever says "valid, and this is the order" or "not sure": anything it does not accept
//! (a refused value, a wrong JSON type, an unknown or duplicate key, an array where an object
//! belongs) makes the caller fall back to the `Value` walker, which alone reports field errors.
//! So the errors a client sees come from one place.

use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use waybill_schemas::events::{Address, Customer, Discount, OrderLine, Shipping};
use waybill_schemas::{Channel, Currency, Email, Money, Quantity, Sku};

use super::fields::{check_int, check_str};
use super::place::{
    check_totals, line_total, PlaceOrder, MAX_AMOUNT_MINOR, MAX_CITY, MAX_DISCOUNTS, MAX_ID,
    MAX_LINES, MAX_METHOD, MAX_NAME, MAX_PHONE, MAX_POSTAL, MAX_REF,
};

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
    let shipping = Shipping {
        method: req(shipping.method, MAX_METHOD)?,
        price: amount(shipping.price_minor, true, currency)?,
        tax: amount(shipping.tax_minor, false, currency)?,
    };
    let totals = check_totals(&lines, &discounts, &shipping, currency).ok()?;
    Some(PlaceOrder {
        channel,
        channel_order_ref,
        currency,
        customer,
        lines,
        discounts,
        shipping_address,
        billing_address,
        shipping,
        totals,
        payment: None,
        risk_context: None,
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
    let country = req(a.country, 2)?;
    if !(country.len() == 2 && country.chars().all(|c| c.is_ascii_alphabetic())) {
        return None;
    }
    Some(Address {
        name: req(a.name, MAX_NAME)?,
        line1: req(a.line1, MAX_NAME)?,
        line2: opt(a.line2, MAX_NAME).ok()?,
        city: req(a.city, MAX_CITY)?,
        region: opt(a.region, MAX_CITY).ok()?,
        postal_code: req(a.postal_code, MAX_POSTAL)?,
        country: country.to_ascii_uppercase(),
    })
}

fn line(l: RawLine, i: usize, currency: Currency) -> Option<OrderLine> {
    let sku = Sku::parse(&req(l.sku, Sku::MAX_LEN)?).ok()?;
    let name = req(l.name, MAX_NAME)?;
    let quantity = check_int(l.quantity?, 1, i64::from(Quantity::MAX)).ok()?;
    let quantity = Quantity::parse(quantity).ok()?;
    let unit_price = amount(l.unit_price_minor, true, currency)?;
    let discount = amount(l.discount_minor, false, currency)?;
    let tax = amount(l.tax_minor, false, currency)?;
    let total = line_total(quantity, unit_price, discount, tax).ok()?;
    Some(OrderLine {
        line_no: u32::try_from(i + 1).ok()?,
        sku,
        name,
        quantity,
        unit_price,
        discount,
        tax,
        total,
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
                     {"sku":"MUG","name":"Mug","quantity":1,"unit_price_minor":900}],
            "discounts":[{"code":"WELCOME5","amount_minor":500}],
            "shipping_address":{"name":"Ada","line1":"1 Main St","line2":null,"city":"Springfield",
                                "region":"IL","postal_code":"62701","country":"us"},
            "billing_address":null,
            "shipping":{"method":"standard","price_minor":500,"tax_minor":0}})
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
            Just("/billing_address"), Just("/shipping/tax_minor"), Just("/lines/1/sku")],
            value in prop_oneof![
                Just(Value::Null),
                any::<i64>().prop_map(Value::from),
                (0i64..5000).prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "[a-zA-Z0-9 @.\\t-]{0,5}".prop_map(Value::String),
                prop_oneof![Just("EUR"), Just("app"), Just("gb"), Just("x@y.z")].prop_map(|s| Value::String(s.to_owned())),
            ]) {
            let mut body = valid();
            *body.pointer_mut(pointer).expect("pointer exists") = value;
            agrees(&body)?;
        }
    }
}
