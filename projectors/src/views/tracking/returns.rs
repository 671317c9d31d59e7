//! How return events change the tracking view: each return with its status (requested → label
//! issued → received → inspected → refunded, or rejected when nothing was accepted), the label
//! and instructions, its lines, fees and refund. Pure, like `apply`.

use waybill_schemas::events::{PaymentRefunded, ReturnLine};
use waybill_schemas::views::{
    DeliveryState, ReturnStatus, TrackingExchange, TrackingExchangeLine, TrackingReturn,
    TrackingShipmentLine, TrackingView,
};
use waybill_schemas::OrderEvent;

fn units(lines: &[ReturnLine]) -> u32 {
    lines.iter().map(|l| l.quantity.get()).sum()
}

fn items(n: u32) -> String {
    if n == 1 {
        "1 item".to_owned()
    } else {
        format!("{n} items")
    }
}

fn find<'a>(view: &'a mut TrackingView, rma: &str) -> Option<&'a mut TrackingReturn> {
    view.returns.iter_mut().find(|r| r.rma == rma)
}

/// Applies a return event; returns the customer's timeline line, if any.
pub(super) fn change(view: &mut TrackingView, event: &OrderEvent) -> Option<String> {
    match event {
        OrderEvent::ReturnRequested(e) => {
            // A return reopens a closed order until it is resolved.
            if view.delivery == DeliveryState::Closed {
                view.delivery = DeliveryState::Delivered;
            }
            if find(view, &e.return_id).is_none() {
                view.returns.push(TrackingReturn {
                    rma: e.return_id.clone(),
                    status: ReturnStatus::Requested,
                    lines: e
                        .lines
                        .iter()
                        .map(|l| TrackingShipmentLine {
                            line_no: l.line_no,
                            quantity: l.quantity.get(),
                        })
                        .collect(),
                    refunded_minor: 0,
                    label_url: None,
                    tracking_url: None,
                    instructions: None,
                    fees_minor: e.fees.iter().map(|f| f.amount.minor).sum(),
                    expected_refund_minor: e.expected_refund.minor,
                    refund_minor: None,
                    accepted_units: 0,
                    rejected_units: 0,
                    refund_id: None,
                    exchange: None,
                    updated_at: e.requested_at,
                });
            }
            Some(format!(
                "Return {} started for {}",
                e.return_id,
                items(units(&e.lines))
            ))
        }
        OrderEvent::ReturnLabelIssued(e) => {
            let r = find(view, &e.return_id)?;
            r.status = ReturnStatus::LabelIssued;
            r.label_url = Some(e.label_url.clone());
            r.tracking_url = Some(e.tracking_url.clone());
            r.instructions = Some(e.instructions.clone());
            r.updated_at = e.issued_at;
            Some(format!(
                "Return label ready: send the items back with {}",
                e.carrier
            ))
        }
        OrderEvent::ReturnReceived(e) => {
            let r = find(view, &e.return_id)?;
            r.status = ReturnStatus::Received;
            r.updated_at = e.received_at;
            Some("We received your return and are checking the items".to_owned())
        }
        OrderEvent::ReturnInspected(e) => {
            let r = find(view, &e.return_id)?;
            r.accepted_units = e.lines.iter().map(|l| l.accepted).sum();
            r.rejected_units = e.lines.iter().map(|l| l.rejected).sum();
            r.status = if r.accepted_units == 0 {
                ReturnStatus::Rejected
            } else {
                ReturnStatus::Inspected
            };
            r.updated_at = e.inspected_at;
            Some(match (r.accepted_units, r.rejected_units) {
                (0, n) => format!("Return checked: {} could not be accepted", items(n)),
                (a, 0) => format!("Return checked: {} accepted", items(a)),
                (a, n) => format!(
                    "Return checked: {} accepted, {} could not be accepted",
                    items(a),
                    items(n)
                ),
            })
        }
        OrderEvent::ReturnRestocked(_) => None,
        OrderEvent::ReturnRefundDecided(e) => {
            let r = find(view, &e.return_id)?;
            r.refund_minor = Some(e.amount.minor);
            r.fees_minor = e.fees.iter().map(|f| f.amount.minor).sum();
            r.refund_id = e.refund_id.map(|id| id.to_string());
            r.updated_at = e.decided_at;
            (e.amount.minor > 0)
                .then(|| format!("Refund of {} on its way for your return", e.amount))
        }
        OrderEvent::ExchangeReplacementRequested(e) => {
            let r = find(view, &e.return_id)?;
            r.exchange = Some(TrackingExchange {
                lines: e
                    .lines
                    .iter()
                    .map(|l| TrackingExchangeLine {
                        line_no: l.line_no,
                        for_line_no: l.for_line_no,
                        sku: l.sku.as_str().to_owned(),
                        quantity: l.quantity.get(),
                    })
                    .collect(),
                difference_minor: e.difference.minor,
                fulfillment_id: None,
                shipment_id: None,
            });
            r.updated_at = e.requested_at;
            let n = e.lines.iter().map(|l| l.quantity.get()).sum();
            let money = match e.difference.minor {
                0 => "at the same price".to_owned(),
                d if d > 0 => format!(
                    "the difference of {} will be charged to your card",
                    e.difference
                ),
                _ => format!(
                    "the difference of {} will be refunded",
                    waybill_schemas::Money::new(-e.difference.minor, e.difference.currency)
                ),
            };
            Some(format!(
                "Exchange for return {} agreed: {} will be sent; {money}",
                e.return_id,
                items(n)
            ))
        }
        _ => None,
    }
}

/// Links an exchange's replacement to the fulfillment order sending it (routed for its
/// return) and then to the parcel.
pub(super) fn link_replacement(view: &mut TrackingView, event: &OrderEvent) {
    match event {
        OrderEvent::FulfillmentRouted(routed) => {
            if let waybill_schemas::events::RouteCause::Exchange { return_id } = &routed.cause {
                if let Some(x) = find(view, return_id).and_then(|r| r.exchange.as_mut()) {
                    x.fulfillment_id = Some(routed.fulfillment_id.clone());
                }
            }
        }
        OrderEvent::ShipmentCreated(created) => {
            for r in &mut view.returns {
                if let Some(x) = r.exchange.as_mut() {
                    if x.fulfillment_id.as_deref() == Some(created.fulfillment_id.as_str()) {
                        x.shipment_id = Some(created.shipment_id.clone());
                    }
                }
            }
        }
        _ => {}
    }
}

/// The gateway paid a refund: if it is a return's, that return is refunded.
pub(super) fn refunded(view: &mut TrackingView, refunded: &PaymentRefunded) {
    let id = refunded.refund_id.to_string();
    if let Some(r) = view
        .returns
        .iter_mut()
        .find(|r| r.refund_id.as_deref() == Some(id.as_str()))
    {
        r.status = ReturnStatus::Refunded;
        r.refunded_minor = r.refunded_minor.saturating_add(refunded.amount.minor);
        r.updated_at = refunded.refunded_at;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use waybill_schemas::events::{
        InspectedLine, PaymentRefunded, ReturnFee, ReturnFeeKind, ReturnInspected,
        ReturnLabelIssued, ReturnReason, ReturnReceived, ReturnRefundDecided, ReturnRequested,
        ReturnResolution,
    };
    use waybill_schemas::{Currency, Money, OrderId, Quantity, Sku};

    use super::*;
    use crate::testing::*;

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::parse("USD").unwrap())
    }

    fn fold(events: Vec<OrderEvent>, order: OrderId) -> TrackingView {
        let mut view = crate::views::tracking::apply::apply(None, &placed_event(order, 1)).unwrap();
        for (i, event) in events.into_iter().enumerate() {
            let envelope = envelope(order, 2 + i as i64, event);
            view = crate::views::tracking::apply::apply(Some(&view), &envelope).unwrap();
        }
        view
    }

    /// One event of each return kind, in the order a return goes through them.
    pub(in crate::views::tracking) fn one_of_each(
        order: OrderId,
        refund_id: uuid::Uuid,
    ) -> Vec<OrderEvent> {
        let return_id = format!("{order}-R1");
        let sku = Sku::parse("TEE-RED-M").unwrap();
        vec![
            OrderEvent::ReturnRequested(ReturnRequested {
                order_id: order,
                return_id: return_id.clone(),
                lines: vec![ReturnLine {
                    line_no: 1,
                    sku: sku.clone(),
                    quantity: Quantity::parse(2).unwrap(),
                    reason: ReturnReason::ChangedMind,
                    note: None,
                    paid: usd(3000),
                    origin_node_id: "wh-east".into(),
                }],
                resolution: ReturnResolution::Refund,
                fees: vec![ReturnFee {
                    kind: ReturnFeeKind::ReturnShipping,
                    line_no: None,
                    amount: usd(495),
                }],
                fees_waived: false,
                expected_refund: usd(2505),
                requested_by: "c-1".into(),
                requested_at: at(10),
            }),
            OrderEvent::ReturnLabelIssued(ReturnLabelIssued {
                order_id: order,
                return_id: return_id.clone(),
                carrier: "parcelco".into(),
                tracking_number: "RT1".into(),
                tracking_url: "http://t/RT1".into(),
                label_url: "http://l/RT1".into(),
                instructions: "Drop it off.".into(),
                issued_at: at(11),
            }),
            OrderEvent::ReturnReceived(ReturnReceived {
                order_id: order,
                return_id: return_id.clone(),
                node_id: "wh-east".into(),
                received_at: at(12),
            }),
            OrderEvent::ReturnInspected(ReturnInspected {
                order_id: order,
                return_id: return_id.clone(),
                lines: vec![InspectedLine {
                    line_no: 1,
                    sku: sku.clone(),
                    accepted: 1,
                    rejected: 1,
                    resellable: 1,
                    note: Some("worn".into()),
                }],
                inspected_by: "wh-east".into(),
                inspected_at: at(13),
            }),
            OrderEvent::ReturnRefundDecided(ReturnRefundDecided {
                order_id: order,
                return_id: return_id.clone(),
                accepted_value: usd(1500),
                fees: vec![],
                amount: usd(1005),
                refund_id: Some(refund_id),
                decided_at: at(14),
            }),
            OrderEvent::ReturnRestocked(waybill_schemas::events::ReturnRestocked {
                order_id: order,
                return_id,
                location_id: "wh-east".into(),
                lines: vec![waybill_schemas::events::FulfillmentLine {
                    line_no: 1,
                    sku: Sku::parse("TEE-RED-M").unwrap(),
                    quantity: Quantity::parse(1).unwrap(),
                }],
                restocked_at: at(14),
            }),
        ]
    }

    #[test]
    fn a_return_shows_its_label_then_its_inspection_then_the_refund_paid() {
        let order = OrderId::new_v7();
        let refund_id = uuid::Uuid::now_v7();
        let events = one_of_each(order, refund_id);
        let view = fold(events.clone(), order);
        let r = &view.returns[0];
        assert_eq!(r.status, ReturnStatus::Inspected);
        assert_eq!(r.label_url.as_deref(), Some("http://l/RT1"));
        assert_eq!((r.accepted_units, r.rejected_units), (1, 1));
        assert_eq!(r.refund_minor, Some(1005));
        assert_eq!(r.refunded_minor, 0, "not paid out yet");
        let mut paid = events;
        paid.push(OrderEvent::PaymentRefunded(PaymentRefunded {
            order_id: order,
            refund_id,
            capture_id: "cap_1".into(),
            gateway_refund_id: "re_1".into(),
            amount: usd(1005),
            refunded_at: at(15),
        }));
        let view = fold(paid, order);
        assert_eq!(view.returns[0].status, ReturnStatus::Refunded);
        assert_eq!(view.returns[0].refunded_minor, 1005);
        let timeline: Vec<&str> = view.timeline.iter().map(|t| t.summary.as_str()).collect();
        assert!(
            timeline.contains(&"Return checked: 1 item accepted, 1 item could not be accepted"),
            "{timeline:?}"
        );
        assert!(
            !serde_json::to_string(&view).unwrap().contains("worn"),
            "inspection notes stay internal"
        );
    }
}
