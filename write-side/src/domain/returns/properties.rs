//! Property tests for returns: whatever sequence of return requests, node reports, agent
//! refunds and gateway answers happens, no refund ever takes more than was captured, a return
//! refunds at most what its accepted units cost, and every unit stays in exactly one place.

use chrono::Duration;
use proptest::prelude::*;
use waybill_schemas::events::{
    CaptureMode, CarrierStatus, FulfillmentLine, FulfillmentProgressed, FulfillmentRouted,
    FulfillmentSubmitted, InspectedLine, NodeKind, NodeProgress, OrderConfirmed, PaymentCaptured,
    PaymentRefunded, RefundFailed, RefundKind, RefundRequested, ReturnReason, ReturnResolution,
    RouteCause, ShipmentCreated, ShipmentTracked,
};
use waybill_schemas::{OrderEvent, OrderId, Quantity};

use super::*;
use crate::domain::fulfillment::flow::{next_step, FulfillmentPolicy, FulfillmentStep};
use crate::domain::fulfillment::total;
use crate::domain::order::fixtures::{card, placed_event, t0, usd};

fn q(n: u32) -> Quantity {
    Quantity::parse(i64::from(n)).expect("positive")
}

/// An order of 2 × TEE and 1 × CAP (42.12 USD captured), delivered by one parcel at `t0`.
pub(crate) fn delivered_order() -> (OrderId, Vec<OrderEvent>) {
    let order_id = OrderId::new_v7();
    let placed = placed_event(order_id, card());
    let lines: Vec<FulfillmentLine> = placed
        .lines
        .iter()
        .map(|l| FulfillmentLine {
            line_no: l.line_no,
            sku: l.sku.clone(),
            quantity: l.quantity,
        })
        .collect();
    let fid = format!("{order_id}-F1");
    let events = vec![
        OrderEvent::OrderPlaced(placed.clone()),
        OrderEvent::OrderConfirmed(OrderConfirmed {
            order_id,
            capture_mode: CaptureMode::Immediate,
            confirmed_at: t0(),
        }),
        OrderEvent::PaymentCaptured(PaymentCaptured {
            order_id,
            authorization_id: "auth_1".into(),
            capture_id: "cap_1".into(),
            amount: placed.totals.grand_total,
            captured_at: t0(),
        }),
        OrderEvent::FulfillmentRouted(FulfillmentRouted {
            order_id,
            fulfillment_id: fid.clone(),
            node_id: "wh-east".into(),
            node_kind: NodeKind::Warehouse,
            carrier: "parcelco".into(),
            zone_distance: 1,
            lines: lines.clone(),
            rule: "default".into(),
            score: vec![],
            total_score: 0,
            eta: t0(),
            cause: RouteCause::Confirmation,
            pickup: None,
            routed_at: t0(),
        }),
        OrderEvent::FulfillmentSubmitted(FulfillmentSubmitted {
            order_id,
            fulfillment_id: fid.clone(),
            wms_task_id: "task-1".into(),
            submitted_at: t0(),
        }),
        OrderEvent::FulfillmentProgressed(FulfillmentProgressed {
            order_id,
            fulfillment_id: fid.clone(),
            progress: NodeProgress::Packed,
            reported_at: t0(),
        }),
        OrderEvent::ShipmentCreated(ShipmentCreated {
            order_id,
            shipment_id: format!("{fid}-S1"),
            fulfillment_id: fid.clone(),
            carrier: "parcelco".into(),
            tracking_number: "PC1".into(),
            tracking_url: "u".into(),
            label_url: "l".into(),
            lines,
            eta: t0(),
            created_at: t0(),
        }),
        OrderEvent::ShipmentTracked(ShipmentTracked {
            order_id,
            shipment_id: format!("{fid}-S1"),
            carrier_event_id: "ev1".into(),
            status: CarrierStatus::Delivered,
            carrier_time: t0(),
            description: "Delivered".into(),
            location: None,
            proof: None,
            recorded_at: t0(),
        }),
    ];
    (order_id, events)
}

fn label() -> ReturnLabel {
    ReturnLabel {
        carrier: "parcelco".into(),
        tracking_number: "RT1".into(),
        tracking_url: "u".into(),
        label_url: "l".into(),
    }
}

/// One thing a customer, node, agent, gateway or the process manager may do.
#[derive(Debug, Clone)]
enum Act {
    Request(u32, u32, u8, bool),
    Receive(usize),
    Inspect(usize, u32, u32),
    Step,
    Goodwill(i64),
    GatewayAnswers(bool),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => (1..3u32, 1..3u32, 0..7u8, any::<bool>()).prop_map(|(l, n, r, w)| Act::Request(l, n, r, w)),
        2 => (0..3usize).prop_map(Act::Receive),
        3 => (0..3usize, 0..3u32, 0..3u32).prop_map(|(i, a, s)| Act::Inspect(i, a, s)),
        4 => Just(Act::Step),
        1 => (1..3000i64).prop_map(Act::Goodwill),
        2 => any::<bool>().prop_map(Act::GatewayAnswers),
    ]
}

fn record(state: &mut Fulfillment, events: Vec<OrderEvent>) {
    for e in &events {
        state.apply(e);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn no_sequence_of_returns_and_refunds_refunds_more_than_was_captured(
        acts in proptest::collection::vec(act(), 1..50),
    ) {
        let (order_id, events) = delivered_order();
        let mut state = Fulfillment::from_events(&events);
        let policy = ReturnsPolicy::bundled().expect("policy");
        let captured = state.returns.ledger.captured_minor();
        let now = t0() + Duration::days(2);
        for (n, a) in acts.into_iter().enumerate() {
            let pick = |i: usize| state.returns.returns.get(i % state.returns.returns.len().max(1)).map(|r| r.id().to_owned());
            match a {
                Act::Request(line_no, k, reason, waive) => {
                    let command = ReturnCommand::Request {
                        lines: vec![RequestedLine { line_no, quantity: q(k), reason: ReturnReason::ALL[usize::from(reason) % 7], note: None }],
                        resolution: ReturnResolution::Refund,
                        waive_fees: waive,
                        requested_by: "c-1".into(),
                    };
                    if let Ok(events) = state.handle_return(&command, &policy, now) {
                        record(&mut state, events);
                    }
                }
                Act::Receive(i) => if let Some(return_id) = pick(i) {
                    if let Ok(events) = state.handle_return(&ReturnCommand::Receive { return_id, node_id: String::new() }, &policy, now) {
                        record(&mut state, events);
                    }
                },
                Act::Inspect(i, accept, resell) => if let Some(return_id) = pick(i) {
                    let r = state.returns.get(&return_id).expect("picked");
                    let lines = r.requested.lines.iter().map(|l| {
                        let accepted = accept.min(l.quantity.get());
                        InspectedLine { line_no: l.line_no, sku: l.sku.clone(), accepted, rejected: l.quantity.get() - accepted, resellable: resell.min(accepted), note: None }
                    }).collect();
                    if let Ok(events) = state.handle_return(&ReturnCommand::Inspect { return_id, lines, inspected_by: String::new() }, &policy, now) {
                        record(&mut state, events);
                    }
                },
                Act::Step => {
                    let command = match next_step(&state, &FulfillmentPolicy::default(), &policy, now) {
                        FulfillmentStep::IssueReturnLabel { return_id } => Some(ReturnCommand::IssueLabel { return_id, label: label() }),
                        FulfillmentStep::RestockReturn { return_id, .. } => Some(ReturnCommand::Restock { return_id }),
                        FulfillmentStep::ResolveReturn { return_id } => Some(ReturnCommand::Resolve { return_id }),
                        _ => None,
                    };
                    if let Some(command) = command {
                        let events = state.handle_return(&command, &policy, now);
                        prop_assert!(matches!(&events, Ok(e) if !e.is_empty()), "next_step asked for {:?}: {:?}", command, events);
                        record(&mut state, events.unwrap_or_default());
                    }
                }
                Act::Goodwill(minor) => {
                    if state.returns.ledger.check_refund(usd(minor)).is_ok() {
                        record(&mut state, vec![OrderEvent::RefundRequested(RefundRequested {
                            order_id, refund_id: uuid::Uuid::now_v7(), amount: usd(minor), kind: RefundKind::Goodwill,
                            reason: "sorry".into(), requested_by: "agent".into(), requested_at: now,
                        })]);
                    }
                }
                Act::GatewayAnswers(ok) => {
                    let pending = state.returns.ledger.pending_refunds().next().cloned();
                    if let Some(refund) = pending {
                        let event = if ok {
                            OrderEvent::PaymentRefunded(PaymentRefunded { order_id, refund_id: refund.refund_id, capture_id: "cap_1".into(), gateway_refund_id: format!("re_{n}"), amount: refund.amount, refunded_at: now })
                        } else {
                            OrderEvent::RefundFailed(RefundFailed { order_id, refund_id: refund.refund_id, code: "x".into(), message: "x".into(), failed_at: now })
                        };
                        record(&mut state, vec![event]);
                    }
                }
            }
            let ledger = &state.returns.ledger;
            prop_assert!(ledger.refunded_minor() + ledger.pending_refund_minor() <= captured,
                "refunded {} + pending {} > captured {}", ledger.refunded_minor(), ledger.pending_refund_minor(), captured);
            for r in &state.returns.returns {
                if let Some(d) = &r.decided {
                    prop_assert!(d.amount.minor >= 0 && d.amount.minor <= d.accepted_value.minor);
                    let paid: i64 = r.requested.lines.iter().map(|l| l.paid.minor).sum();
                    prop_assert!(d.accepted_value.minor <= paid);
                }
            }
            let units = state.units();
            for (no, line) in &state.ordered {
                let placed_in: u32 = [&units.delivered, &units.return_requested, &units.returned, &units.restocked, &units.shipped, &units.at_node]
                    .iter().flat_map(|l| l.iter()).filter(|l| l.line_no == *no).map(|l| l.quantity.get()).sum();
                prop_assert_eq!(placed_in, line.quantity.get(), "line {} {:?}", no, units);
            }
        }
        // Returning every unit, accepted, refunds at most what the lines cost in total.
        let asked: i64 = state.returns.returns.iter().flat_map(|r| r.requested.lines.iter()).map(|l| l.paid.minor).sum();
        let line_total: i64 = state.returns.lines.values().map(|l| l.paid_minor).sum();
        prop_assert!(asked <= line_total);
    }
}

fn request(line_no: u32, n: u32, reason: ReturnReason) -> ReturnCommand {
    ReturnCommand::Request {
        lines: vec![RequestedLine {
            line_no,
            quantity: q(n),
            reason,
            note: None,
        }],
        resolution: ReturnResolution::Refund,
        waive_fees: false,
        requested_by: "c-1".into(),
    }
}

#[test]
fn a_return_is_refused_naming_the_field_outside_the_window_or_above_what_was_delivered() {
    let (_, events) = delivered_order();
    let state = Fulfillment::from_events(&events);
    let policy = ReturnsPolicy::bundled().unwrap();
    let soon = t0() + Duration::days(1);
    let err = state
        .handle_return(&request(1, 3, ReturnReason::WrongSize), &policy, soon)
        .unwrap_err();
    assert_eq!(err.field().as_deref(), Some("lines[0].quantity"), "{err}");
    let err = state
        .handle_return(
            &request(1, 1, ReturnReason::WrongSize),
            &policy,
            t0() + Duration::days(31),
        )
        .unwrap_err();
    assert_eq!(err.field().as_deref(), Some("lines[0].line_no"), "{err}");
    let err = state
        .handle_return(&request(9, 1, ReturnReason::WrongSize), &policy, soon)
        .unwrap_err();
    assert_eq!(err.field().as_deref(), Some("lines[0].line_no"), "{err}");
    let narrow = ReturnsPolicy {
        reasons: vec![ReturnReason::Damaged],
        ..policy.clone()
    };
    let err = state
        .handle_return(&request(1, 1, ReturnReason::ChangedMind), &narrow, soon)
        .unwrap_err();
    assert_eq!(err.field().as_deref(), Some("lines[0].reason"), "{err}");
    let gifts = ReturnsPolicy {
        non_returnable_skus: vec!["TEE-*".into()],
        ..policy.clone()
    };
    let err = state
        .handle_return(&request(1, 1, ReturnReason::WrongSize), &gifts, soon)
        .unwrap_err();
    assert!(matches!(err, ReturnError::NotReturnable { .. }), "{err}");
}

#[test]
fn a_partial_return_refunds_the_units_paid_price_minus_fees_and_closes_after() {
    let (_, events) = delivered_order();
    let mut state = Fulfillment::from_events(&events);
    let policy = ReturnsPolicy::bundled().unwrap();
    let now = t0() + Duration::days(1);
    let requested = state
        .handle_return(&request(1, 1, ReturnReason::ChangedMind), &policy, now)
        .unwrap();
    let OrderEvent::ReturnRequested(r) = requested[0].clone() else {
        panic!("{requested:?}")
    };
    // TEE line: 2 × 15.00 − 0 + 2.40 tax, minus its share of the 5.00 code.
    let line = &state.returns.lines[&1];
    assert_eq!(r.lines[0].paid.minor, line.paid_minor / 2);
    let fees: i64 = r.fees.iter().map(|f| f.amount.minor).sum();
    assert_eq!(
        fees,
        495 + r.lines[0].paid.minor / 10,
        "shipping + 10 % restocking"
    );
    record(&mut state, requested);
    let return_id = state.returns.returns[0].id().to_owned();
    assert!(return_id.ends_with("-R1"));
    let fp = FulfillmentPolicy::default();
    assert_eq!(
        next_step(&state, &fp, &policy, now),
        FulfillmentStep::IssueReturnLabel {
            return_id: return_id.clone()
        }
    );
    let labelled = state
        .handle_return(
            &ReturnCommand::IssueLabel {
                return_id: return_id.clone(),
                label: label(),
            },
            &policy,
            now,
        )
        .unwrap();
    record(&mut state, labelled);
    // Waiting for the node, even long after the auto-close deadline.
    assert_eq!(
        next_step(&state, &fp, &policy, now + Duration::days(60)),
        FulfillmentStep::Wait { until: None }
    );
    let inspected = state
        .handle_return(
            &ReturnCommand::Inspect {
                return_id: return_id.clone(),
                lines: vec![InspectedLine {
                    line_no: 1,
                    sku: r.lines[0].sku.clone(),
                    accepted: 1,
                    rejected: 0,
                    resellable: 1,
                    note: None,
                }],
                inspected_by: String::new(),
            },
            &policy,
            now,
        )
        .unwrap();
    assert_eq!(inspected.len(), 2, "received and inspected");
    record(&mut state, inspected);
    let FulfillmentStep::RestockReturn { lines, .. } = next_step(&state, &fp, &policy, now) else {
        panic!("restock expected")
    };
    assert_eq!(lines[0].0, "wh-east");
    let restocked = state
        .handle_return(
            &ReturnCommand::Restock {
                return_id: return_id.clone(),
            },
            &policy,
            now,
        )
        .unwrap();
    record(&mut state, restocked);
    assert_eq!(state.units().restocked[0].quantity.get(), 1);
    let resolved = state
        .handle_return(&ReturnCommand::Resolve { return_id }, &policy, now)
        .unwrap();
    let OrderEvent::ReturnRefundDecided(d) = &resolved[0] else {
        panic!("{resolved:?}")
    };
    assert_eq!(d.amount.minor, r.expected_refund.minor);
    let OrderEvent::RefundRequested(refund) = &resolved[1] else {
        panic!("{resolved:?}")
    };
    assert_eq!(refund.refund_id, refund_id_of(&d.return_id));
    assert_eq!(refund.amount, d.amount);
    record(&mut state, resolved);
    assert!(!state.returns.any_open());
    assert_eq!(
        next_step(&state, &fp, &policy, now),
        FulfillmentStep::Wait {
            until: Some(now + fp.auto_close_after)
        }
    );
}

#[test]
fn a_rejected_inspection_refunds_nothing_and_restocks_nothing() {
    let (_, events) = delivered_order();
    let mut state = Fulfillment::from_events(&events);
    let policy = ReturnsPolicy::bundled().unwrap();
    let now = t0() + Duration::days(1);
    let requested = state
        .handle_return(&request(2, 1, ReturnReason::Damaged), &policy, now)
        .unwrap();
    record(&mut state, requested);
    let return_id = state.returns.returns[0].id().to_owned();
    assert!(
        state.returns.returns[0].requested.fees.is_empty(),
        "damaged: seller's fault, no fees"
    );
    let sku = state.returns.returns[0].requested.lines[0].sku.clone();
    let inspected = state
        .handle_return(
            &ReturnCommand::Inspect {
                return_id: return_id.clone(),
                lines: vec![InspectedLine {
                    line_no: 2,
                    sku,
                    accepted: 0,
                    rejected: 1,
                    resellable: 0,
                    note: Some("worn".into()),
                }],
                inspected_by: "agent-1".into(),
            },
            &policy,
            now,
        )
        .unwrap();
    record(&mut state, inspected);
    assert_eq!(
        next_step(&state, &FulfillmentPolicy::default(), &policy, now),
        FulfillmentStep::IssueReturnLabel {
            return_id: return_id.clone()
        },
        "the label is still owed"
    );
    let resolved = state
        .handle_return(&ReturnCommand::Resolve { return_id }, &policy, now)
        .unwrap();
    assert_eq!(resolved.len(), 1, "no refund requested: {resolved:?}");
    let OrderEvent::ReturnRefundDecided(d) = &resolved[0] else {
        panic!()
    };
    assert_eq!((d.amount.minor, d.refund_id), (0, None));
    record(&mut state, resolved);
    assert_eq!(total(&state.units().returned), 1);
}
