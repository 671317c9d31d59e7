use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use schemars::schema_for;

use super::*;
use crate::upcast::v1::OrderPlacedV1;
use crate::upcast::v2::OrderPlacedV2;
use crate::upcast::v3::OrderPlacedV3;
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
        ("OrderPlaced.v2.schema.json", schema_for!(OrderPlacedV2)),
        ("OrderPlaced.v3.schema.json", schema_for!(OrderPlacedV3)),
        ("OrderPlaced.v4.schema.json", schema_for!(OrderPlaced)),
        ("OrderCancelled.v1.schema.json", schema_for!(OrderCancelled)),
        ("RiskAssessed.v1.schema.json", schema_for!(RiskAssessed)),
        (
            "RiskReviewResolved.v1.schema.json",
            schema_for!(RiskReviewResolved),
        ),
        (
            "InventoryReserved.v1.schema.json",
            schema_for!(InventoryReserved),
        ),
        (
            "InventoryReservationFailed.v1.schema.json",
            schema_for!(InventoryReservationFailed),
        ),
        (
            "InventoryAllocated.v1.schema.json",
            schema_for!(InventoryAllocated),
        ),
        (
            "InventoryReleased.v1.schema.json",
            schema_for!(InventoryReleased),
        ),
        (
            "PaymentChallengeRequired.v1.schema.json",
            schema_for!(PaymentChallengeRequired),
        ),
        (
            "PaymentAuthorized.v1.schema.json",
            schema_for!(PaymentAuthorized),
        ),
        (
            "PaymentDeclined.v1.schema.json",
            schema_for!(PaymentDeclined),
        ),
        (
            "PaymentCaptured.v1.schema.json",
            schema_for!(PaymentCaptured),
        ),
        ("PaymentVoided.v1.schema.json", schema_for!(PaymentVoided)),
        (
            "PaymentAuthorizationExpired.v1.schema.json",
            schema_for!(PaymentAuthorizationExpired),
        ),
        (
            "PaymentCaptureFailed.v1.schema.json",
            schema_for!(PaymentCaptureFailed),
        ),
        ("OrderConfirmed.v1.schema.json", schema_for!(OrderConfirmed)),
        (
            "RefundRequested.v1.schema.json",
            schema_for!(RefundRequested),
        ),
        (
            "PaymentRefunded.v1.schema.json",
            schema_for!(PaymentRefunded),
        ),
        ("RefundFailed.v1.schema.json", schema_for!(RefundFailed)),
        (
            "ChargebackOpened.v1.schema.json",
            schema_for!(ChargebackOpened),
        ),
        (
            "ChargebackEvidenceSubmitted.v1.schema.json",
            schema_for!(ChargebackEvidenceSubmitted),
        ),
        ("ChargebackWon.v1.schema.json", schema_for!(ChargebackWon)),
        ("ChargebackLost.v1.schema.json", schema_for!(ChargebackLost)),
        (
            "SettlementReportImported.v1.schema.json",
            schema_for!(SettlementReportImported),
        ),
        ("PayoutRecorded.v1.schema.json", schema_for!(PayoutRecorded)),
        (
            "DeskEntryResolved.v1.schema.json",
            schema_for!(DeskEntryResolved),
        ),
        ("RoutingDecided.v1.schema.json", schema_for!(RoutingDecided)),
        ("CustomerErased.v1.schema.json", schema_for!(CustomerErased)),
        (
            "NotificationResendRequested.v1.schema.json",
            schema_for!(NotificationResendRequested),
        ),
        (
            "FulfillmentRouted.v1.schema.json",
            schema_for!(FulfillmentRouted),
        ),
        (
            "FulfillmentSubmitted.v1.schema.json",
            schema_for!(FulfillmentSubmitted),
        ),
        (
            "FulfillmentProgressed.v1.schema.json",
            schema_for!(FulfillmentProgressed),
        ),
        (
            "FulfillmentShortPicked.v1.schema.json",
            schema_for!(FulfillmentShortPicked),
        ),
        (
            "FulfillmentLinesCancelled.v1.schema.json",
            schema_for!(FulfillmentLinesCancelled),
        ),
        ("PickupReady.v1.schema.json", schema_for!(PickupReady)),
        (
            "PickupCompleted.v1.schema.json",
            schema_for!(PickupCompleted),
        ),
        (
            "ShipmentCreated.v1.schema.json",
            schema_for!(ShipmentCreated),
        ),
        (
            "ShipmentTracked.v1.schema.json",
            schema_for!(ShipmentTracked),
        ),
        (
            "ShipmentExceptionHandled.v1.schema.json",
            schema_for!(ShipmentExceptionHandled),
        ),
        ("OrderClosed.v1.schema.json", schema_for!(OrderClosed)),
        (
            "ReturnRequested.v1.schema.json",
            schema_for!(ReturnRequested),
        ),
        (
            "ReturnLabelIssued.v1.schema.json",
            schema_for!(ReturnLabelIssued),
        ),
        ("ReturnReceived.v1.schema.json", schema_for!(ReturnReceived)),
        (
            "ReturnInspected.v1.schema.json",
            schema_for!(ReturnInspected),
        ),
        (
            "ReturnRestocked.v1.schema.json",
            schema_for!(ReturnRestocked),
        ),
        (
            "ReturnRefundDecided.v1.schema.json",
            schema_for!(ReturnRefundDecided),
        ),
        (
            "OrderLinesCancelled.v1.schema.json",
            schema_for!(OrderLinesCancelled),
        ),
        (
            "CancelledUnitsReleased.v1.schema.json",
            schema_for!(CancelledUnitsReleased),
        ),
        (
            "ExtraChargeRequested.v1.schema.json",
            schema_for!(ExtraChargeRequested),
        ),
        (
            "ExtraChargeCaptured.v1.schema.json",
            schema_for!(ExtraChargeCaptured),
        ),
        (
            "ExtraChargeDeclined.v1.schema.json",
            schema_for!(ExtraChargeDeclined),
        ),
        (
            "StoreCreditIssued.v1.schema.json",
            schema_for!(StoreCreditIssued),
        ),
        (
            "ExchangeReplacementRequested.v1.schema.json",
            schema_for!(ExchangeReplacementRequested),
        ),
        ("OrderEdited.v1.schema.json", schema_for!(OrderEdited)),
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
        payment: Some(PaymentMethod::Card {
            token: "tok_4242424242424242".into(),
        }),
        risk_context: Some(RiskContext {
            ip: Some("203.0.113.7".into()),
            device_id: None,
        }),
        pickup_store: None,
        placed_at: Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap(),
    }
}

#[test]
fn current_events_round_trip_through_their_stored_form() {
    let placed = OrderEvent::OrderPlaced(sample_placed());
    let back = OrderEvent::decode(
        placed.event_type(),
        placed.schema_version(),
        placed.to_payload().to_value(),
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
fn order_placed_v2_is_upcast_to_v3_without_a_payment_method() {
    let mut v2 = OrderEvent::OrderPlaced(sample_placed())
        .to_payload()
        .to_value();
    let obj = v2.as_object_mut().unwrap();
    obj.remove("payment");
    obj.remove("risk_context");
    obj.remove("pickup_store");
    let _: OrderPlacedV2 = serde_json::from_value(v2.clone()).unwrap();
    let OrderEvent::OrderPlaced(placed) = OrderEvent::decode("OrderPlaced", 2, v2).unwrap() else {
        panic!("decoded to another kind");
    };
    assert_eq!(placed.payment, None);
    assert_eq!(placed.risk_context, None);
    assert_eq!(placed.lines, sample_placed().lines);
}

#[test]
fn order_placed_v3_is_upcast_to_v4_without_a_pickup_store() {
    let mut v3 = OrderEvent::OrderPlaced(sample_placed())
        .to_payload()
        .to_value();
    v3.as_object_mut().unwrap().remove("pickup_store");
    let _: OrderPlacedV3 = serde_json::from_value(v3.clone()).unwrap();
    assert!(validator("OrderPlaced.v3.schema.json").is_valid(&v3));
    let OrderEvent::OrderPlaced(placed) = OrderEvent::decode("OrderPlaced", 3, v3).unwrap() else {
        panic!("decoded to another kind");
    };
    assert_eq!(placed.pickup_store, None);
    assert_eq!(placed.lines, sample_placed().lines);
}

#[test]
fn a_pickup_store_is_carried_by_order_placed_v4() {
    let mut placed = sample_placed();
    placed.shipping.method = "pickup".into();
    placed.pickup_store = Some(PickupStore {
        location_id: "store-soho".into(),
        store_name: "Waybill Soho".into(),
        address: "120 Spring St".into(),
        instructions: "Collection desk".into(),
    });
    let payload = OrderEvent::OrderPlaced(placed.clone())
        .to_payload()
        .to_value();
    assert_eq!(payload["pickup_store"]["location_id"], "store-soho");
    assert!(validator("OrderPlaced.v4.schema.json").is_valid(&payload));
    let OrderEvent::OrderPlaced(back) = OrderEvent::decode("OrderPlaced", 4, payload).unwrap()
    else {
        panic!("decoded to another kind");
    };
    assert_eq!(back, placed);
}

#[test]
fn payment_methods_are_tagged_by_method() {
    let card = serde_json::to_value(PaymentMethod::Card {
        token: "tok_x".into(),
    })
    .unwrap();
    assert_eq!(
        card,
        serde_json::json!({"method": "card", "token": "tok_x"})
    );
    let prepaid: PaymentMethod =
        serde_json::from_value(serde_json::json!({"method": "prepaid", "reference": "AMZ-1"}))
            .unwrap();
    assert_eq!(
        prepaid,
        PaymentMethod::Prepaid {
            reference: "AMZ-1".into()
        }
    );
    assert!(serde_json::from_value::<PaymentMethod>(serde_json::json!({"method": "iou"})).is_err());
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
    let v2 = validator("OrderPlaced.v4.schema.json");
    let placed = OrderEvent::OrderPlaced(sample_placed())
        .to_payload()
        .to_value();
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
    assert!(!v2.is_valid(&fixture), "a v1 payload must not pass as v3");

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
    assert!(cancelled.is_valid(&event.to_payload().to_value()));
}

/// One of each lifecycle event after placement, as the flow writes them.
fn sample_lifecycle() -> Vec<OrderEvent> {
    let order_id = OrderId::new_v7();
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 1).unwrap();
    let sku = Sku::parse("TEE-RED-M").unwrap();
    let reserved = ReservedLine {
        line_no: 1,
        sku: sku.clone(),
        location_id: "wh-east".into(),
        quantity: Quantity::parse(2).unwrap(),
    };
    vec![
        OrderEvent::RiskAssessed(RiskAssessed {
            order_id,
            decision: RiskDecision::Review,
            score: 60,
            reasons: vec![RiskReason {
                rule: "amount_threshold".into(),
                points: 60,
                detail: "grand total 6,000.00 USD is at least 5,000.00 USD".into(),
            }],
            assessed_at: at,
        }),
        OrderEvent::RiskReviewResolved(RiskReviewResolved {
            order_id,
            decision: ReviewDecision::Approve,
            reviewer: "agent-7".into(),
            note: None,
            resolved_at: at,
        }),
        OrderEvent::InventoryReserved(InventoryReserved {
            order_id,
            lines: vec![reserved.clone()],
            backordered: vec![BackorderedLine {
                line_no: 2,
                sku: sku.clone(),
                quantity: Quantity::parse(1).unwrap(),
            }],
            expires_at: at + chrono::Duration::minutes(15),
            reserved_at: at,
        }),
        OrderEvent::InventoryReservationFailed(InventoryReservationFailed {
            order_id,
            shortages: vec![Shortage {
                line_no: 1,
                sku,
                requested: 2,
                available: 0,
            }],
            failed_at: at,
        }),
        OrderEvent::InventoryAllocated(InventoryAllocated {
            order_id,
            lines: vec![reserved],
            allocated_at: at,
        }),
        OrderEvent::InventoryReleased(InventoryReleased {
            order_id,
            reason: ReleaseReason::PaymentDeclined,
            released_at: at,
        }),
        OrderEvent::PaymentChallengeRequired(PaymentChallengeRequired {
            order_id,
            authorization_id: "auth_1".into(),
            challenge_url: "http://127.0.0.1:8090/challenge/auth_1".into(),
            expires_at: at,
        }),
        OrderEvent::PaymentAuthorized(PaymentAuthorized {
            order_id,
            authorization_id: "auth_1".into(),
            amount: usd(3416),
            three_ds: true,
            expires_at: at + chrono::Duration::days(7),
            authorized_at: at,
        }),
        OrderEvent::PaymentDeclined(PaymentDeclined {
            order_id,
            authorization_id: None,
            code: "insufficient_funds".into(),
            message: "The card has insufficient funds.".into(),
            declined_at: at,
        }),
        OrderEvent::PaymentCaptured(PaymentCaptured {
            order_id,
            authorization_id: "auth_1".into(),
            capture_id: "cap_1".into(),
            amount: usd(3416),
            captured_at: at,
        }),
        OrderEvent::PaymentVoided(PaymentVoided {
            order_id,
            authorization_id: "auth_1".into(),
            reason: "order_cancelled".into(),
            voided_at: at,
        }),
        OrderEvent::PaymentAuthorizationExpired(PaymentAuthorizationExpired {
            order_id,
            authorization_id: "auth_1".into(),
            expired_at: at,
        }),
        OrderEvent::PaymentCaptureFailed(PaymentCaptureFailed {
            order_id,
            authorization_id: "auth_1".into(),
            amount: usd(3416),
            code: "authorization_voided".into(),
            message: "the authorization was voided".into(),
            failed_at: at,
        }),
        OrderEvent::OrderConfirmed(OrderConfirmed {
            order_id,
            capture_mode: CaptureMode::Immediate,
            confirmed_at: at,
        }),
        // Lives in a desk entry's stream, not the order's; one of each kind all the same.
        OrderEvent::DeskEntryResolved(DeskEntryResolved {
            entry_id: uuid::Uuid::now_v7(),
            kind: "failed_handoff".into(),
            order_id: Some(order_id),
            action: "retry_handoff".into(),
            note: Some("asked the carrier to collect again".into()),
            automatic: false,
            resolved_at: at,
        }),
        OrderEvent::NotificationResendRequested(NotificationResendRequested {
            order_id,
            resend_id: uuid::Uuid::now_v7(),
            kind: crate::notifications::NotificationKind::OrderConfirmed,
            medium: Some(crate::notifications::Medium::Email),
            reason: Some("the customer cannot find the email".into()),
            requested_at: at,
        }),
        OrderEvent::RoutingDecided(sample_routing_decided(order_id, at)),
        // Lives in an erasure stream, not the order's; one of each kind all the same.
        OrderEvent::CustomerErased(CustomerErased {
            customer_digest: crate::access::customer_digest("c-42"),
            guest: false,
            orders: vec![order_id],
            keys_destroyed: 1,
            requested_by: "ops".into(),
            erased_at: at,
        }),
    ]
    .into_iter()
    .chain(money_events(order_id))
    .chain(sample_fulfillment(order_id, at))
    .collect()
}

/// One of each money event (refunds, chargebacks, settlement), with fixed ids so their payloads
/// can be compared with the golden examples in `schemas/json/examples/`.
fn money_events(order_id: OrderId) -> Vec<OrderEvent> {
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 1).unwrap();
    let refund_id = uuid::Uuid::parse_str("0193a1b2-0000-7000-8000-00000000000f").unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let eur = Currency::parse("EUR").unwrap();
    vec![
        OrderEvent::RefundRequested(RefundRequested {
            order_id,
            refund_id,
            amount: usd(1000),
            kind: RefundKind::Goodwill,
            reason: "late delivery".into(),
            requested_by: "agent-7".into(),
            requested_at: at,
        }),
        OrderEvent::PaymentRefunded(PaymentRefunded {
            order_id,
            refund_id,
            capture_id: "cap_1".into(),
            gateway_refund_id: "re_1".into(),
            amount: usd(1000),
            refunded_at: at,
        }),
        OrderEvent::RefundFailed(RefundFailed {
            order_id,
            refund_id,
            code: "refund_failed".into(),
            message: "The card account is closed.".into(),
            failed_at: at,
        }),
        OrderEvent::ChargebackOpened(ChargebackOpened {
            order_id,
            dispute_id: "dp_1".into(),
            capture_id: "cap_1".into(),
            amount: usd(3416),
            reason_code: "fraudulent".into(),
            evidence_due_by: at + chrono::Duration::days(7),
            opened_at: at,
        }),
        OrderEvent::ChargebackEvidenceSubmitted(ChargebackEvidenceSubmitted {
            order_id,
            dispute_id: "dp_1".into(),
            evidence_id: refund_id,
            text: "Signed proof of delivery attached.".into(),
            submitted_by: "finance-1".into(),
            submitted_at: at,
        }),
        OrderEvent::ChargebackWon(ChargebackWon {
            order_id,
            dispute_id: "dp_1".into(),
            decided_at: at,
        }),
        OrderEvent::ChargebackLost(ChargebackLost {
            order_id,
            dispute_id: "dp_1".into(),
            amount: usd(3416),
            decided_at: at,
        }),
        OrderEvent::SettlementReportImported(SettlementReportImported {
            report_id: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            gateway: "sandbox".into(),
            report_date: day,
            lines: vec![
                SettlementLine {
                    line_no: 1,
                    transaction_id: "cap_1".into(),
                    kind: SettlementLineKind::Capture,
                    order_id: Some(order_id),
                    gross: usd(3416),
                    fee: usd(129),
                    net: usd(3287),
                    original: Some(Money::new(3150, eur)),
                    payout_id: Some("po_20261125_USD".into()),
                    transaction_date: day,
                    settled_on: day,
                },
                SettlementLine {
                    line_no: 2,
                    transaction_id: "fee_1".into(),
                    kind: SettlementLineKind::Fee,
                    order_id: None,
                    gross: usd(0),
                    fee: usd(1500),
                    net: usd(-1500),
                    original: None,
                    payout_id: Some("po_20261125_USD".into()),
                    transaction_date: day,
                    settled_on: day,
                },
            ],
            imported_by: "finance-1".into(),
            imported_at: at,
        }),
        OrderEvent::PayoutRecorded(PayoutRecorded {
            payout_id: "po_20261125_USD".into(),
            gateway: "sandbox".into(),
            amount: usd(1787),
            paid_on: day,
            report_id: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            transaction_ids: vec!["cap_1".into(), "fee_1".into()],
            recorded_at: at,
        }),
        OrderEvent::ExtraChargeRequested(ExtraChargeRequested {
            order_id,
            charge_id: refund_id,
            amount: usd(1200),
            reason: "exchange for a dearer size".into(),
            requested_by: "returns".into(),
            return_id: Some(format!("{order_id}-R1")),
            requested_at: at,
        }),
        OrderEvent::ExtraChargeCaptured(ExtraChargeCaptured {
            order_id,
            charge_id: refund_id,
            authorization_id: "auth_2".into(),
            capture_id: "cap_2".into(),
            amount: usd(1200),
            captured_at: at,
        }),
        OrderEvent::ExtraChargeDeclined(ExtraChargeDeclined {
            order_id,
            charge_id: refund_id,
            code: "insufficient_funds".into(),
            message: "The card has insufficient funds.".into(),
            declined_at: at,
        }),
        OrderEvent::StoreCreditIssued(StoreCreditIssued {
            order_id,
            credit_id: refund_id,
            customer_id: "c-42".into(),
            amount: usd(800),
            reason: "goodwill: late delivery".into(),
            issued_by: "agent-7".into(),
            return_id: None,
            issued_at: at,
        }),
        OrderEvent::ExchangeReplacementRequested(ExchangeReplacementRequested {
            order_id,
            return_id: format!("{order_id}-R1"),
            lines: vec![ReplacementUnit {
                line_no: FIRST_REPLACEMENT_LINE,
                for_line_no: 1,
                sku: Sku::parse("TEE-RED-L").unwrap(),
                quantity: Quantity::parse(1).unwrap(),
                unit_price: usd(1800),
            }],
            replacements_value: usd(1800),
            accepted_value: usd(1458),
            difference: usd(342),
            charge_id: Some(refund_id),
            refund_id: None,
            requested_at: at,
        }),
    ]
}

/// The exact stored JSON of each money event, checked in as `examples/<Event>.v1.json` so
/// consumers (the ClickHouse projector, reconciliation) can read what they will receive.
/// `WAYBILL_BLESS=1` rewrites them.
#[test]
fn money_event_payloads_match_their_golden_examples() {
    let order_id = OrderId::parse("0193a1b2-0000-7000-8000-000000000001").unwrap();
    let bless = std::env::var("WAYBILL_BLESS").is_ok_and(|v| v == "1");
    for event in money_events(order_id) {
        let file = format!(
            "examples/{}.v{}.json",
            event.event_type(),
            event.schema_version()
        );
        let text = format!(
            "{}\n",
            serde_json::to_string_pretty(&event.to_payload().to_value()).unwrap()
        );
        let path = json_dir().join(&file);
        if bless {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{file} missing ({e}); run with WAYBILL_BLESS=1"));
        assert_eq!(on_disk, text, "{file} differs from the event's payload");
        let stored: serde_json::Value = serde_json::from_str(&on_disk).unwrap();
        let back = OrderEvent::decode(event.event_type(), event.schema_version(), stored).unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn settlement_payloads_refuse_an_unknown_line_kind() {
    let order_id = OrderId::new_v7();
    let report = money_events(order_id)
        .into_iter()
        .find(|e| e.kind() == OrderEventKind::SettlementReportImported)
        .unwrap();
    let mut payload = report.to_payload().to_value();
    payload["lines"][0]["kind"] = serde_json::json!("bonus");
    assert!(matches!(
        OrderEvent::decode("SettlementReportImported", 1, payload.clone()),
        Err(DecodeError::Payload { .. })
    ));
    let schema = validator("SettlementReportImported.v1.schema.json");
    assert!(!schema.is_valid(&payload));
    for kind in SettlementLineKind::ALL {
        assert_eq!(SettlementLineKind::parse(kind.as_str()), Some(*kind));
    }
    assert_eq!(
        settlement::settlement_stream_id("abc"),
        "settlement-abc".to_owned()
    );
    assert_eq!(
        OrderId::from_stream_id(&settlement::payout_stream_id("sandbox", "po_1")),
        None
    );
}

/// A routing decision: one warehouse with the allocation, a store with free stock.
fn sample_routing_decided(order_id: OrderId, at: chrono::DateTime<Utc>) -> RoutingDecided {
    RoutingDecided {
        order_id,
        cause: RouteCause::Confirmation,
        decided_at: at,
        config_version: "sha256:0123456789abcdef".into(),
        shipping_method: "standard".into(),
        pickup_location: None,
        ship_to: RoutingShipTo {
            country: "US".into(),
            postal_zone: 1,
        },
        lines: vec![FulfillmentLine {
            line_no: 1,
            sku: Sku::parse("TEE-RED-M").unwrap(),
            quantity: Quantity::parse(2).unwrap(),
        }],
        allocated: Some(vec![RoutingCandidate {
            node_id: "wh-east".into(),
            location: CandidateLocation::Warehouse,
            distance: 1,
            units: [(1, 2)].into_iter().collect(),
        }]),
        free_stock: vec![RoutingCandidate {
            node_id: "store-soho".into(),
            location: CandidateLocation::Store,
            distance: 0,
            units: [(1, 5)].into_iter().collect(),
        }],
        transit: vec![TransitMean {
            carrier: "parcelco".into(),
            distance: 1,
            hours: 30,
        }],
        outcome: RoutingOutcome {
            routes: vec![RoutedShare {
                node_id: "wh-east".into(),
                carrier: "parcelco".into(),
                units: 2,
                cost_minor: 650,
                co2_grams: 240,
                eta: at,
            }],
            unroutable_units: 0,
        },
    }
}

/// One of each fulfillment event.
fn sample_fulfillment(order_id: OrderId, at: chrono::DateTime<Utc>) -> Vec<OrderEvent> {
    let line = FulfillmentLine {
        line_no: 1,
        sku: Sku::parse("TEE-RED-M").unwrap(),
        quantity: Quantity::parse(2).unwrap(),
    };
    let fulfillment_id = format!("{order_id}-F1");
    vec![
        OrderEvent::FulfillmentRouted(FulfillmentRouted {
            order_id,
            fulfillment_id: fulfillment_id.clone(),
            node_id: "store-soho".into(),
            node_kind: NodeKind::PickupStore,
            carrier: "none".into(),
            zone_distance: 0,
            lines: vec![line.clone()],
            rule: "pickup_in_store".into(),
            score: vec![ScorePart {
                factor: "distance".into(),
                input: "zone distance 0".into(),
                points: 0,
            }],
            total_score: 0,
            eta: at,
            cause: RouteCause::ShortPick {
                from_fulfillment_id: format!("{order_id}-F0"),
            },
            pickup: Some(PickupPoint {
                store_name: "Soho".into(),
                address: "1 Main St".into(),
                instructions: "Desk at the back".into(),
            }),
            routed_at: at,
        }),
        OrderEvent::FulfillmentSubmitted(FulfillmentSubmitted {
            order_id,
            fulfillment_id: fulfillment_id.clone(),
            wms_task_id: "task_1".into(),
            submitted_at: at,
        }),
        OrderEvent::FulfillmentProgressed(FulfillmentProgressed {
            order_id,
            fulfillment_id: fulfillment_id.clone(),
            progress: NodeProgress::Packed,
            reported_at: at,
        }),
        OrderEvent::FulfillmentShortPicked(FulfillmentShortPicked {
            order_id,
            fulfillment_id: fulfillment_id.clone(),
            missing: vec![line.clone()],
            reported_at: at,
        }),
        OrderEvent::FulfillmentLinesCancelled(FulfillmentLinesCancelled {
            order_id,
            fulfillment_id: fulfillment_id.clone(),
            lines: vec![line.clone()],
            reason: "no other node has the item".into(),
            cancelled_at: at,
        }),
        OrderEvent::PickupReady(PickupReady {
            order_id,
            fulfillment_id: fulfillment_id.clone(),
            code_sha256: "00".repeat(32),
            code_hint: "42".into(),
            collect_by: at,
            ready_at: at,
        }),
        OrderEvent::PickupCompleted(PickupCompleted {
            order_id,
            fulfillment_id: fulfillment_id.clone(),
            picked_up_at: at,
        }),
        OrderEvent::ShipmentCreated(ShipmentCreated {
            order_id,
            shipment_id: format!("{fulfillment_id}-S1"),
            fulfillment_id,
            carrier: "parcelco".into(),
            tracking_number: "PC123".into(),
            tracking_url: "http://127.0.0.1:8091/track/PC123".into(),
            label_url: "http://127.0.0.1:8091/labels/PC123".into(),
            lines: vec![line],
            eta: at,
            created_at: at,
        }),
        OrderEvent::ShipmentTracked(ShipmentTracked {
            order_id,
            shipment_id: "S1".into(),
            carrier_event_id: "ev_1".into(),
            status: CarrierStatus::Delivered,
            carrier_time: at,
            description: "Delivered".into(),
            location: Some("Leeds".into()),
            proof: Some(ProofOfDelivery {
                received_by: "front door".into(),
                photo_url: None,
            }),
            recorded_at: at,
        }),
        OrderEvent::ShipmentExceptionHandled(ShipmentExceptionHandled {
            order_id,
            shipment_id: "S1".into(),
            action: ExceptionAction::RetryHandoff,
            carrier_event_id: "ev_2".into(),
            detail: "second delivery attempt requested".into(),
            handled_at: at,
        }),
        OrderEvent::OrderClosed(OrderClosed {
            order_id,
            last_delivery_at: at,
            closed_at: at,
        }),
        OrderEvent::ReturnRequested(ReturnRequested {
            order_id,
            return_id: format!("{order_id}-R1"),
            lines: vec![ReturnLine {
                line_no: 1,
                sku: Sku::parse("TEE-RED-M").unwrap(),
                quantity: Quantity::parse(1).unwrap(),
                reason: ReturnReason::ChangedMind,
                note: Some("too bright".into()),
                paid: usd(1458),
                origin_node_id: "wh-east".into(),
            }],
            resolution: ReturnResolution::Exchange {
                replacements: vec![ReplacementLine {
                    for_line_no: 1,
                    sku: Sku::parse("TEE-BLUE-M").unwrap(),
                    quantity: Quantity::parse(1).unwrap(),
                    unit_price: usd(1500),
                }],
            },
            fees: vec![
                ReturnFee {
                    kind: ReturnFeeKind::ReturnShipping,
                    line_no: None,
                    amount: usd(495),
                },
                ReturnFee {
                    kind: ReturnFeeKind::Restocking,
                    line_no: Some(1),
                    amount: usd(145),
                },
            ],
            fees_waived: false,
            expected_refund: usd(818),
            requested_by: "customer:c-42".into(),
            requested_at: at,
        }),
        OrderEvent::ReturnLabelIssued(ReturnLabelIssued {
            order_id,
            return_id: format!("{order_id}-R1"),
            carrier: "parcelco".into(),
            tracking_number: "RT123".into(),
            tracking_url: "http://127.0.0.1:8092/carrier/track/RT123".into(),
            label_url: "http://127.0.0.1:8092/labels/RT123".into(),
            instructions: "Drop the parcel at any parcelco point; it goes to wh-east.".into(),
            issued_at: at,
        }),
        OrderEvent::ReturnReceived(ReturnReceived {
            order_id,
            return_id: format!("{order_id}-R1"),
            node_id: "wh-east".into(),
            received_at: at,
        }),
        OrderEvent::ReturnInspected(ReturnInspected {
            order_id,
            return_id: format!("{order_id}-R1"),
            lines: vec![InspectedLine {
                line_no: 1,
                sku: Sku::parse("TEE-RED-M").unwrap(),
                accepted: 1,
                rejected: 0,
                resellable: 1,
                note: None,
            }],
            inspected_by: "wh-east".into(),
            inspected_at: at,
        }),
        OrderEvent::ReturnRestocked(ReturnRestocked {
            order_id,
            return_id: format!("{order_id}-R1"),
            location_id: "wh-east".into(),
            lines: vec![FulfillmentLine {
                line_no: 1,
                sku: Sku::parse("TEE-RED-M").unwrap(),
                quantity: Quantity::parse(1).unwrap(),
            }],
            restocked_at: at,
        }),
        OrderEvent::ReturnRefundDecided(ReturnRefundDecided {
            order_id,
            return_id: format!("{order_id}-R1"),
            accepted_value: usd(1458),
            fees: vec![],
            amount: usd(1458),
            refund_id: Some(uuid::Uuid::nil()),
            decided_at: at,
        }),
    ]
    .into_iter()
    .chain(cancellation_events(order_id, at))
    .collect()
}

/// One of each line-cancellation event, with fixed ids (golden examples below).
fn cancellation_events(order_id: OrderId, at: chrono::DateTime<Utc>) -> Vec<OrderEvent> {
    let fulfillment_id = format!("{order_id}-F1");
    vec![
        OrderEvent::OrderLinesCancelled(OrderLinesCancelled {
            order_id,
            cancellation_id: uuid::Uuid::nil(),
            lines: vec![CancelledUnits {
                line_no: 1,
                sku: Sku::parse("TEE-RED-M").unwrap(),
                quantity: Quantity::parse(1).unwrap(),
                fulfillment_id: Some(fulfillment_id.clone()),
            }],
            reason: CancelReason::CustomerRequest,
            note: Some("ordered twice".into()),
            value: usd(2_180),
            requested_by: "web-shop".into(),
            cancelled_at: at,
        }),
        OrderEvent::CancelledUnitsReleased(CancelledUnitsReleased {
            order_id,
            cancellation_id: uuid::Uuid::nil(),
            nodes_amended: vec![fulfillment_id.clone()],
            released_units: 1,
            released_at: at,
        }),
        {
            let placed = sample_placed();
            let mut line = placed.lines[0].clone();
            line.quantity = Quantity::parse(3).unwrap();
            line.discount = usd(450);
            line.tax = usd(324);
            line.total = usd(4374);
            let totals = Totals {
                subtotal: usd(4500),
                discount_total: usd(450),
                tax_total: usd(324),
                shipping_total: placed.totals.shipping_total,
                grand_total: usd(4374 + placed.totals.shipping_total.minor),
            };
            OrderEvent::OrderEdited(OrderEdited {
                order_id,
                edit_id: uuid::Uuid::nil(),
                lines: vec![line],
                discounts: vec![],
                shipping: placed.shipping.clone(),
                previous_total: placed.totals.grand_total,
                difference: usd(totals.grand_total.minor - placed.totals.grand_total.minor),
                totals,
                shipping_address: None,
                money_action: EditMoneyAction::WithinAuthorization,
                requested_by: "web-shop".into(),
                edited_at: at,
            })
        },
    ]
}

/// The stored JSON of the line-cancellation events, checked in as golden examples like the
/// money events' (`WAYBILL_BLESS=1` rewrites them).
#[test]
fn line_cancellation_payloads_match_their_golden_examples() {
    let order_id = OrderId::parse("0193a1b2-0000-7000-8000-000000000001").unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 1).unwrap();
    let bless = std::env::var("WAYBILL_BLESS").is_ok_and(|v| v == "1");
    for event in cancellation_events(order_id, at) {
        let file = format!(
            "examples/{}.v{}.json",
            event.event_type(),
            event.schema_version()
        );
        let text = format!(
            "{}\n",
            serde_json::to_string_pretty(&event.to_payload().to_value()).unwrap()
        );
        let path = json_dir().join(&file);
        if bless {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert_eq!(on_disk, text, "{file} differs; bless if intended");
    }
}

#[test]
fn lifecycle_events_round_trip_and_validate_against_their_schema_files() {
    let events = sample_lifecycle();
    // Every kind but the two covered above appears once.
    assert_eq!(events.len() + 2, OrderEventKind::ALL.len());
    for event in events {
        let payload = event.to_payload().to_value();
        let schema = validator(&format!(
            "{}.v{}.schema.json",
            event.event_type(),
            event.schema_version()
        ));
        assert!(
            schema.is_valid(&payload),
            "{}: {:?}",
            event.event_type(),
            schema
                .iter_errors(&payload)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        );
        let stored = crate::Payload::from_value(&payload);
        let back = OrderEvent::decode_payload(event.event_type(), event.schema_version(), &stored)
            .unwrap();
        assert_eq!(back, event);
    }
}
