use waybill_schemas::events::{CarrierStatus, ReviewDecision, RiskDecision, ShipmentTracked};
use waybill_schemas::{OrderEvent, OrderId};

use super::*;
use crate::testing::{
    at, authorized_event, cancelled_event, captured_event, confirmed_event, declined_event,
    envelope, placed_event, reserved_event, review_resolved, risk_assessed,
};

fn fold(events: &[EventEnvelope]) -> Watch {
    let mut watch: Option<Watch> = None;
    let mut samples = Vec::new();
    let mut signals = Vec::new();
    for event in events {
        let decoded = event.decode().expect("decodes");
        let next = apply(watch.as_ref(), event, &decoded).expect("applies");
        samples.extend(next.samples.iter().cloned());
        signals.extend(next.signals.iter().cloned());
        // Outputs are per apply call here, as the store writes them once.
        let mut next = next;
        next.samples.clear();
        next.signals.clear();
        watch = Some(next);
    }
    let mut watch = watch.expect("at least one event");
    watch.samples = samples;
    watch.signals = signals;
    watch
}

#[test]
fn an_order_moves_through_its_stages_and_each_finished_stage_is_one_sample() {
    let order = OrderId::new_v7();
    let watch = fold(&[
        placed_event(order, 1),
        risk_assessed(order, 2, RiskDecision::Accept),
        reserved_event(order, 3),
        authorized_event(order, 5),
        confirmed_event(order, 8),
    ]);
    assert_eq!(watch.stage, Stage::Fulfillment);
    assert_eq!(watch.entered_at, at(8));
    assert_eq!(watch.entered_version, 8);
    let took: Vec<(Stage, i64)> = watch
        .samples
        .iter()
        .map(|s| (s.stage, s.duration_ms))
        .collect();
    assert_eq!(
        took,
        vec![
            (Stage::Validation, 1_000),
            (Stage::Reservation, 1_000),
            (Stage::Payment, 2_000),
            (Stage::Confirmation, 3_000),
        ]
    );
    assert!(watch
        .samples
        .iter()
        .all(|s| s.channel == "web" && s.node == NO_NODE));
    // Confirmed: the reservation became an allocation; the authorization waits for capture.
    assert_eq!(watch.reservation_expires_at, None);
    assert!(watch.authorization_expires_at.is_some());
    assert_eq!(
        watch.signals.iter().map(|s| s.kind).collect::<Vec<_>>(),
        vec![SignalKind::Confirmation]
    );
}

#[test]
fn a_review_is_a_stage_of_its_own_and_a_fraud_hold_signal() {
    let order = OrderId::new_v7();
    let held = fold(&[
        placed_event(order, 1),
        risk_assessed(order, 2, RiskDecision::Review),
    ]);
    assert_eq!(held.stage, Stage::Review);
    assert_eq!(held.signals[0].kind, SignalKind::FraudHold);
    let approved = fold(&[
        placed_event(order, 1),
        risk_assessed(order, 2, RiskDecision::Review),
        review_resolved(order, 6, ReviewDecision::Approve),
    ]);
    assert_eq!(approved.stage, Stage::Reservation);
    let review = approved
        .samples
        .iter()
        .find(|s| s.stage == Stage::Review)
        .expect("review sample");
    assert_eq!(review.duration_ms, 4_000);
}

#[test]
fn declines_are_counted_and_a_cancellation_ends_the_watch_with_nothing_pending() {
    let order = OrderId::new_v7();
    let watch = fold(&[
        placed_event(order, 1),
        risk_assessed(order, 2, RiskDecision::Accept),
        reserved_event(order, 3),
        declined_event(order, 4, "card_declined"),
        cancelled_event(order, 5),
    ]);
    assert_eq!(watch.stage, Stage::Ended);
    assert!(!watch.active());
    assert_eq!(watch.reservation_expires_at, None);
    assert_eq!(watch.signals[0].kind, SignalKind::Decline);
    // Nothing after the end changes it.
    let later = apply(
        Some(&watch),
        &captured_event(order, 6, 100),
        &captured_event(order, 6, 100).decode().unwrap(),
    )
    .unwrap();
    assert_eq!(later.stage, Stage::Ended);
    assert_eq!(later.version, 6);
}

fn scan(order: OrderId, version: i64, status: CarrierStatus, id: &str) -> EventEnvelope {
    envelope(
        order,
        version,
        OrderEvent::ShipmentTracked(ShipmentTracked {
            order_id: order,
            shipment_id: "shp_1".into(),
            carrier_event_id: id.into(),
            status,
            carrier_time: at(version),
            description: format!("{status:?}"),
            location: None,
            proof: None,
            recorded_at: at(version),
        }),
    )
}

#[test]
fn a_carrier_exception_stays_open_until_a_later_scan_of_that_parcel() {
    let order = OrderId::new_v7();
    let mut events = vec![
        placed_event(order, 1),
        risk_assessed(order, 2, RiskDecision::Accept),
        reserved_event(order, 3),
        authorized_event(order, 4),
        confirmed_event(order, 5),
        scan(order, 6, CarrierStatus::Exception, "ce_1"),
    ];
    let open = fold(&events);
    assert_eq!(open.carrier_exceptions.len(), 1);
    assert_eq!(open.carrier_exceptions[0].carrier_event_id, "ce_1");
    events.push(scan(order, 7, CarrierStatus::InTransit, "ce_2"));
    assert!(fold(&events).carrier_exceptions.is_empty());
    events.push(scan(order, 8, CarrierStatus::Delivered, "ce_3"));
    assert_eq!(fold(&events).stage, Stage::Delivered);
}

#[test]
fn an_event_before_the_placement_is_refused() {
    let order = OrderId::new_v7();
    let event = confirmed_event(order, 1);
    let decoded = event.decode().unwrap();
    assert!(matches!(
        apply(None, &event, &decoded),
        Err(WatchError::NotPlaced { .. })
    ));
}
