//! How fulfillment events change the tracking view: parcels with their carrier, tracking link,
//! ETA and scans; the BOPIS pickup with its instructions and code hint; the order's overall
//! delivery state (partially shipped/delivered until every unit is). Pure, like `apply`.

use waybill_schemas::events::{
    CarrierStatus, ExceptionAction, FulfillmentLine, NodeKind, NodeProgress, RouteCause,
};
use waybill_schemas::views::{
    DeliveryState, ShipmentProgress, ShipmentStatus, TrackingPickup, TrackingShipment,
    TrackingShipmentLine, TrackingView,
};
use waybill_schemas::OrderEvent;

/// Applies a fulfillment event; returns the customer's timeline line, if any.
pub(super) fn change(view: &mut TrackingView, event: &OrderEvent) -> Option<String> {
    let summary = match event {
        OrderEvent::FulfillmentRouted(routed) => {
            let items = items(units(&routed.lines));
            if routed.node_kind == NodeKind::PickupStore {
                if let Some(point) = &routed.pickup {
                    view.pickup = Some(TrackingPickup {
                        store_name: point.store_name.clone(),
                        address: point.address.clone(),
                        instructions: point.instructions.clone(),
                        ready: false,
                        ready_at: None,
                        collect_by: None,
                        code_hint: None,
                        picked_up_at: None,
                        lines: shipment_lines(&routed.lines),
                    });
                }
            }
            Some(match (&routed.cause, routed.node_kind) {
                (RouteCause::ShortPick { .. }, _) => {
                    format!("{items} will come from another location instead")
                }
                (RouteCause::Exchange { return_id }, _) => {
                    format!(
                        "Replacement for return {return_id}: {items} being prepared for shipping"
                    )
                }
                (_, NodeKind::PickupStore) => format!(
                    "{items} being prepared for pickup at {}",
                    routed
                        .pickup
                        .as_ref()
                        .map_or("the store", |p| p.store_name.as_str())
                ),
                _ => format!("{items} being prepared for shipping"),
            })
        }
        OrderEvent::FulfillmentProgressed(progress) => (progress.progress == NodeProgress::Packed)
            .then(|| "Packed and waiting for the carrier".to_owned()),
        OrderEvent::FulfillmentSubmitted(_) | OrderEvent::FulfillmentShortPicked(_) => None,
        OrderEvent::FulfillmentLinesCancelled(cancelled) => {
            for line in &cancelled.lines {
                if let Some(l) = view.lines.iter_mut().find(|l| l.line_no == line.line_no) {
                    l.cancelled_quantity = l.cancelled_quantity.saturating_add(line.quantity.get());
                }
            }
            Some(format!(
                "{} cancelled: no longer available; you will not be charged for them",
                items(units(&cancelled.lines))
            ))
        }
        OrderEvent::PickupReady(ready) => {
            let store = view.pickup.as_mut().map(|pickup| {
                pickup.ready = true;
                pickup.ready_at = Some(ready.ready_at);
                pickup.collect_by = Some(ready.collect_by);
                pickup.code_hint = Some(format!("••••{}", ready.code_hint));
                pickup.store_name.clone()
            });
            Some(format!(
                "Ready for pickup at {} until {}",
                store.as_deref().unwrap_or("the store"),
                ready.collect_by.format("%Y-%m-%d %H:%M UTC")
            ))
        }
        OrderEvent::PickupCompleted(done) => {
            let store = view.pickup.as_mut().map(|pickup| {
                pickup.picked_up_at = Some(done.picked_up_at);
                pickup.store_name.clone()
            });
            Some(format!(
                "Picked up at {}",
                store.as_deref().unwrap_or("the store")
            ))
        }
        OrderEvent::ShipmentCreated(created) => {
            view.shipments.push(TrackingShipment {
                shipment_id: created.shipment_id.clone(),
                carrier: created.carrier.clone(),
                tracking_number: Some(created.tracking_number.clone()),
                tracking_url: Some(created.tracking_url.clone()),
                status: ShipmentStatus::LabelCreated,
                eta: Some(created.eta),
                lines: shipment_lines(&created.lines),
                progress: Vec::new(),
                delivered_to: None,
            });
            Some(format!(
                "{} handed to {} (tracking number {})",
                items(units(&created.lines)),
                created.carrier,
                created.tracking_number
            ))
        }
        OrderEvent::ShipmentTracked(scan) => {
            let shipment = view
                .shipments
                .iter_mut()
                .find(|s| s.shipment_id == scan.shipment_id)?;
            shipment.status = shipment_status(scan.status);
            shipment.progress.push(ShipmentProgress {
                at: scan.carrier_time,
                description: scan.description.clone(),
                location: scan.location.clone(),
            });
            if let Some(proof) = &scan.proof {
                shipment.delivered_to = Some(proof.received_by.clone());
            }
            let number = shipment.tracking_number.clone().unwrap_or_default();
            Some(format!(
                "Parcel {number}: {}{}",
                status_words(scan.status),
                scan.location
                    .as_deref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default()
            ))
        }
        OrderEvent::ShipmentExceptionHandled(handled) => Some(match handled.action {
            ExceptionAction::RetryHandoff => {
                "The carrier will try to deliver your parcel again".to_owned()
            }
            ExceptionAction::Alert => {
                "We're looking into a problem with your delivery and will contact you".to_owned()
            }
        }),
        OrderEvent::OrderClosed(_) => {
            view.delivery = DeliveryState::Closed;
            return Some("Order complete".to_owned());
        }
        _ => None,
    };
    if view.delivery != DeliveryState::Closed {
        view.delivery = delivery_state(view);
    }
    summary
}

/// Partially shipped/delivered until every unit not cancelled is.
fn delivery_state(view: &TrackingView) -> DeliveryState {
    let needed: u32 = view
        .lines
        .iter()
        .map(|l| l.quantity.saturating_sub(l.cancelled_quantity))
        .sum();
    let sum = |lines: &[TrackingShipmentLine]| lines.iter().map(|l| l.quantity).sum::<u32>();
    let collected = view
        .pickup
        .as_ref()
        .filter(|p| p.picked_up_at.is_some())
        .map_or(0, |p| sum(&p.lines));
    let shipped = collected + view.shipments.iter().map(|s| sum(&s.lines)).sum::<u32>();
    let delivered = collected
        + view
            .shipments
            .iter()
            .filter(|s| s.status == ShipmentStatus::Delivered)
            .map(|s| sum(&s.lines))
            .sum::<u32>();
    match () {
        _ if needed > 0 && delivered >= needed => DeliveryState::Delivered,
        _ if delivered > 0 => DeliveryState::PartiallyDelivered,
        _ if needed > 0 && shipped >= needed => DeliveryState::Shipped,
        _ if shipped > 0 => DeliveryState::PartiallyShipped,
        _ => DeliveryState::None,
    }
}

fn shipment_status(status: CarrierStatus) -> ShipmentStatus {
    match status {
        CarrierStatus::PickedUp => ShipmentStatus::PickedUp,
        CarrierStatus::InTransit => ShipmentStatus::InTransit,
        CarrierStatus::OutForDelivery => ShipmentStatus::OutForDelivery,
        CarrierStatus::Delivered => ShipmentStatus::Delivered,
        CarrierStatus::Exception => ShipmentStatus::Exception,
        CarrierStatus::ReturnedToSender => ShipmentStatus::ReturnedToSender,
    }
}

fn status_words(status: CarrierStatus) -> &'static str {
    match status {
        CarrierStatus::PickedUp => "picked up by the carrier",
        CarrierStatus::InTransit => "in transit",
        CarrierStatus::OutForDelivery => "out for delivery",
        CarrierStatus::Delivered => "delivered",
        CarrierStatus::Exception => "delivery problem",
        CarrierStatus::ReturnedToSender => "returned to us",
    }
}

fn units(lines: &[FulfillmentLine]) -> u32 {
    lines.iter().map(|l| l.quantity.get()).sum()
}

fn items(n: u32) -> String {
    if n == 1 {
        "1 item".to_owned()
    } else {
        format!("{n} items")
    }
}

fn shipment_lines(lines: &[FulfillmentLine]) -> Vec<TrackingShipmentLine> {
    lines
        .iter()
        .map(|l| TrackingShipmentLine {
            line_no: l.line_no,
            quantity: l.quantity.get(),
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use waybill_schemas::events::*;
    use waybill_schemas::{EventEnvelope, OrderId, Quantity, Sku};

    use super::super::apply;
    use super::*;
    use crate::testing::{confirmed_event, envelope, placed_event};

    fn line(no: u32, sku: &str, qty: u32) -> FulfillmentLine {
        FulfillmentLine {
            line_no: no,
            sku: Sku::parse(sku).unwrap(),
            quantity: Quantity::parse(i64::from(qty)).unwrap(),
        }
    }

    fn routed(order: OrderId, n: u32, kind: NodeKind, lines: Vec<FulfillmentLine>) -> OrderEvent {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
        OrderEvent::FulfillmentRouted(FulfillmentRouted {
            order_id: order,
            fulfillment_id: format!("{order}-F{n}"),
            node_id: format!("node-{n}"),
            node_kind: kind,
            carrier: "parcelco".into(),
            zone_distance: 1,
            lines,
            rule: "ship_to_customer".into(),
            score: vec![],
            total_score: 0,
            eta: at,
            cause: RouteCause::Confirmation,
            pickup: (kind == NodeKind::PickupStore).then(|| PickupPoint {
                store_name: "Waybill Soho".into(),
                address: "120 Spring St".into(),
                instructions: "Collection desk".into(),
            }),
            routed_at: at,
        })
    }

    fn shipped(order: OrderId, n: u32, lines: Vec<FulfillmentLine>) -> OrderEvent {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        OrderEvent::ShipmentCreated(ShipmentCreated {
            order_id: order,
            shipment_id: format!("{order}-F{n}-S1"),
            fulfillment_id: format!("{order}-F{n}"),
            carrier: "parcelco".into(),
            tracking_number: format!("PC{n}"),
            tracking_url: format!("http://carrier.test/track/PC{n}"),
            label_url: "http://carrier.test/label".into(),
            lines,
            eta: at + Duration::days(2),
            created_at: at,
        })
    }

    fn scan(order: OrderId, n: u32, status: CarrierStatus, minute: i64) -> OrderEvent {
        OrderEvent::ShipmentTracked(ShipmentTracked {
            order_id: order,
            shipment_id: format!("{order}-F{n}-S1"),
            carrier_event_id: format!("ev-{n}-{minute}"),
            status,
            carrier_time: Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap()
                + Duration::minutes(minute),
            description: status.as_str().into(),
            location: Some("Leeds".into()),
            proof: (status == CarrierStatus::Delivered).then(|| ProofOfDelivery {
                received_by: "J. Smith".into(),
                photo_url: None,
            }),
            recorded_at: Utc::now(),
        })
    }

    /// One of each fulfillment event, in an order that applies.
    pub(crate) fn one_of_each(order: OrderId) -> Vec<OrderEvent> {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
        let fid = format!("{order}-F1");
        vec![
            routed(
                order,
                1,
                NodeKind::PickupStore,
                vec![line(1, "TEE-RED-M", 2)],
            ),
            OrderEvent::FulfillmentSubmitted(FulfillmentSubmitted {
                order_id: order,
                fulfillment_id: fid.clone(),
                wms_task_id: "t1".into(),
                submitted_at: at,
            }),
            OrderEvent::FulfillmentProgressed(FulfillmentProgressed {
                order_id: order,
                fulfillment_id: fid.clone(),
                progress: NodeProgress::Picked,
                reported_at: at,
            }),
            OrderEvent::FulfillmentShortPicked(FulfillmentShortPicked {
                order_id: order,
                fulfillment_id: fid.clone(),
                missing: vec![line(1, "TEE-RED-M", 1)],
                reported_at: at,
            }),
            OrderEvent::FulfillmentLinesCancelled(FulfillmentLinesCancelled {
                order_id: order,
                fulfillment_id: fid.clone(),
                lines: vec![line(1, "TEE-RED-M", 1)],
                reason: "none left".into(),
                cancelled_at: at,
            }),
            OrderEvent::PickupReady(PickupReady {
                order_id: order,
                fulfillment_id: fid.clone(),
                code_sha256: "ab".repeat(32),
                code_hint: "42".into(),
                collect_by: at + Duration::days(7),
                ready_at: at,
            }),
            OrderEvent::PickupCompleted(PickupCompleted {
                order_id: order,
                fulfillment_id: fid,
                picked_up_at: at,
            }),
            shipped(order, 2, vec![line(2, "CAP-BLUE", 1)]),
            scan(order, 2, CarrierStatus::Exception, 1),
            OrderEvent::ShipmentExceptionHandled(ShipmentExceptionHandled {
                order_id: order,
                shipment_id: format!("{order}-F2-S1"),
                action: ExceptionAction::RetryHandoff,
                carrier_event_id: "ev-2-1".into(),
                detail: "retry".into(),
                handled_at: at,
            }),
            OrderEvent::OrderClosed(OrderClosed {
                order_id: order,
                last_delivery_at: at,
                closed_at: at,
            }),
        ]
    }

    fn fold_from(order: OrderId, events: Vec<OrderEvent>) -> TrackingView {
        let mut envelopes: Vec<EventEnvelope> =
            vec![placed_event(order, 1), confirmed_event(order, 2)];
        for (i, e) in events.into_iter().enumerate() {
            envelopes.push(envelope(order, i as i64 + 3, e));
        }
        let mut view = None;
        for e in &envelopes {
            view = Some(apply(view.as_ref(), e).expect("applies"));
        }
        view.expect("a view")
    }

    #[test]
    fn an_order_is_partially_shipped_then_partially_delivered_until_every_parcel_arrives() {
        let order = OrderId::new_v7();
        // The order has one line of 2 units; each node ships one.
        let a = vec![line(1, "TEE-RED-M", 1)];
        let b = vec![line(1, "TEE-RED-M", 1)];
        let mut events = vec![
            routed(order, 1, NodeKind::Warehouse, a.clone()),
            routed(order, 2, NodeKind::ShipFromStore, b.clone()),
            shipped(order, 1, a),
        ];
        let states = |events: &[OrderEvent]| fold_from(order, events.to_vec());
        assert_eq!(states(&events).delivery, DeliveryState::PartiallyShipped);
        events.push(shipped(order, 2, b));
        assert_eq!(states(&events).delivery, DeliveryState::Shipped);
        events.push(scan(order, 1, CarrierStatus::Delivered, 5));
        let view = states(&events);
        assert_eq!(view.delivery, DeliveryState::PartiallyDelivered);
        assert_eq!(view.shipments.len(), 2);
        assert_eq!(view.shipments[0].status, ShipmentStatus::Delivered);
        assert_eq!(view.shipments[0].delivered_to.as_deref(), Some("J. Smith"));
        assert_eq!(view.shipments[1].status, ShipmentStatus::LabelCreated);
        assert_eq!(
            view.shipments[1].tracking_url.as_deref(),
            Some("http://carrier.test/track/PC2")
        );
        events.push(scan(order, 2, CarrierStatus::Delivered, 9));
        assert_eq!(states(&events).delivery, DeliveryState::Delivered);
    }

    #[test]
    fn bopis_shows_the_store_instructions_and_only_a_hint_of_the_code() {
        let order = OrderId::new_v7();
        let view = fold_from(order, one_of_each(order)[..6].to_vec());
        let pickup = view.pickup.expect("pickup section");
        assert!(pickup.ready);
        assert_eq!(pickup.code_hint.as_deref(), Some("••••42"));
        assert_eq!(pickup.store_name, "Waybill Soho");
        assert_eq!(pickup.instructions, "Collection desk");
        assert_eq!(view.lines[0].cancelled_quantity, 1);
        let json = serde_json::to_string(&view.timeline).unwrap();
        assert!(json.contains("Ready for pickup at Waybill Soho"), "{json}");
        assert!(
            !json.contains(&"ab".repeat(32)),
            "the code hash never reaches the view"
        );
    }

    #[test]
    fn a_closed_order_says_so() {
        let order = OrderId::new_v7();
        let view = fold_from(order, one_of_each(order));
        assert_eq!(view.delivery, DeliveryState::Closed);
        assert_eq!(view.timeline.last().unwrap().summary, "Order complete");
    }
}
