use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use schemars::schema_for;

use super::*;
use crate::upcast::v1::OrderPlacedV1;
use crate::values::{Channel, Currency, Email, Money, OrderId, Quantity, Sku};

fn json_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json")
}

/// Each checked-in schema file must be exactly what the Rust type generates. Changing a payload
/// type therefore fails here until a new schema version is added (and an upcaster written).
/// `WAYBILL_BLESS=1 cargo test -p waybill-schemas` rewrites the files after a deliberate change.
#[test]
fn checked_in_json_schemas_match_the_rust_types() {
    let generated = [
        ("OrderPlaced.v1.schema.json", schema_for!(OrderPlacedV1)),
        ("OrderPlaced.v2.schema.json", schema_for!(OrderPlaced)),
        ("OrderCancelled.v1.schema.json", schema_for!(OrderCancelled)),
        (
            "EventEnvelope.v1.schema.json",
            schema_for!(crate::EventEnvelope),
        ),
    ];
    let bless = std::env::var("WAYBILL_BLESS").is_ok_and(|v| v == "1");
    for (file, schema) in generated {
        let text = format!(
            "{}\n",
            serde_json::to_string_pretty(&schema).expect("schema serializes")
        );
        let path = json_dir().join(file);
        if bless {
            std::fs::write(&path, &text).expect("write schema");
            continue;
        }
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{file} missing ({e}); run with WAYBILL_BLESS=1"));
        assert_eq!(
            on_disk, text,
            "{file} differs from the Rust type: add a new schema version or bless"
        );
    }
}

/// Every current kind has a schema file for each version from 1 to current.
#[test]
fn every_event_version_has_a_schema_file() {
    for kind in OrderEventKind::ALL {
        for version in 1..=kind.current_version() {
            let path = json_dir().join(format!("{}.v{version}.schema.json", kind.name()));
            assert!(path.exists(), "{} missing", path.display());
        }
    }
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::parse("USD").unwrap())
}

fn sample_placed() -> OrderPlaced {
    OrderPlaced {
        order_id: OrderId::new_v7(),
        channel: Channel::Web,
        channel_order_ref: "WEB-1001".into(),
        customer: Customer {
            customer_id: Some("c-42".into()),
            name: "Ada Lovelace".into(),
            email: Email::parse("ada@example.com").unwrap(),
            phone: None,
        },
        currency: Currency::parse("USD").unwrap(),
        lines: vec![OrderLine {
            line_no: 1,
            sku: Sku::parse("TEE-RED-M").unwrap(),
            name: "Red tee".into(),
            quantity: Quantity::parse(2).unwrap(),
            unit_price: usd(1500),
            discount: usd(300),
            tax: usd(216),
            total: usd(2916),
        }],
        discounts: vec![],
        shipping_address: Address {
            name: "Ada Lovelace".into(),
            line1: "12 St James's Square".into(),
            line2: None,
            city: "London".into(),
            region: None,
            postal_code: "SW1Y 4JH".into(),
            country: "GB".into(),
        },
        billing_address: None,
        shipping: Shipping {
            method: "standard".into(),
            price: usd(500),
            tax: usd(0),
        },
        totals: Totals {
            subtotal: usd(3000),
            discount_total: usd(300),
            tax_total: usd(216),
            shipping_total: usd(500),
            grand_total: usd(3416),
        },
        placed_at: Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap(),
    }
}

#[test]
fn current_events_round_trip_through_their_stored_form() {
    let placed = OrderEvent::OrderPlaced(sample_placed());
    let back = OrderEvent::decode(
        placed.event_type(),
        placed.schema_version(),
        placed.to_payload(),
    )
    .unwrap();
    assert_eq!(back, placed);
}

#[test]
fn order_placed_v1_is_upcast_to_v2_on_read() {
    let raw = std::fs::read_to_string(json_dir().join("examples/OrderPlaced.v1.json")).unwrap();
    let payload: serde_json::Value = serde_json::from_str(&raw).unwrap();
    // The fixture really is a v1 payload.
    let _: OrderPlacedV1 = serde_json::from_value(payload.clone()).unwrap();

    let OrderEvent::OrderPlaced(placed) = OrderEvent::decode("OrderPlaced", 1, payload).unwrap()
    else {
        panic!("decoded to another kind");
    };
    assert_eq!(placed.customer.name, "Grace Hopper");
    assert_eq!(placed.customer.email.as_str(), "grace@example.com");
    assert_eq!(placed.customer.phone.as_deref(), Some("+1 555 0100"));
    assert_eq!(placed.customer.customer_id, None);
    assert_eq!(placed.totals.grand_total.minor, 2500);
}

#[test]
fn unknown_types_and_versions_are_typed_errors() {
    assert!(matches!(
        OrderEvent::decode("OrderTeleported", 1, serde_json::json!({})),
        Err(DecodeError::UnknownType(_))
    ));
    assert!(matches!(
        OrderEvent::decode("OrderPlaced", 9, serde_json::json!({})),
        Err(DecodeError::UnknownVersion { .. })
    ));
    assert!(matches!(
        OrderEvent::decode("OrderCancelled", 1, serde_json::json!({"order_id": 5})),
        Err(DecodeError::Payload { .. })
    ));
}

fn validator(file: &str) -> jsonschema::Validator {
    let raw = std::fs::read_to_string(json_dir().join(file)).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&raw).unwrap()).unwrap()
}

/// The schema files describe what serde really writes and accepts, not just what schemars
/// thinks: real payloads validate, and payloads serde refuses are refused by the schema too.
#[test]
fn stored_payloads_validate_against_their_schema_files() {
    let v2 = validator("OrderPlaced.v2.schema.json");
    let placed = OrderEvent::OrderPlaced(sample_placed()).to_payload();
    assert!(
        v2.is_valid(&placed),
        "{:?}",
        v2.iter_errors(&placed)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );

    let v1 = validator("OrderPlaced.v1.schema.json");
    let raw = std::fs::read_to_string(json_dir().join("examples/OrderPlaced.v1.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert!(v1.is_valid(&fixture));
    assert!(!v2.is_valid(&fixture), "a v1 payload must not pass as v2");

    let mut bad = placed.clone();
    bad["lines"][0]["quantity"] = serde_json::json!(0);
    assert!(!v2.is_valid(&bad));
    bad = placed.clone();
    bad["currency"] = serde_json::json!("usd");
    assert!(!v2.is_valid(&bad));

    let cancelled = validator("OrderCancelled.v1.schema.json");
    let event = OrderEvent::OrderCancelled(OrderCancelled {
        order_id: OrderId::new_v7(),
        reason: CancelReason::CustomerRequest,
        note: Some("changed my mind".into()),
        cancelled_at: Utc.with_ymd_and_hms(2026, 11, 25, 13, 0, 0).unwrap(),
    });
    assert!(cancelled.is_valid(&event.to_payload()));
}
