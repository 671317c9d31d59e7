//! Property tests: whatever nodes, carriers and returning customers do, in whatever order, every
//! ordered unit is in exactly one place, and the flow never ships what was not packed.

use chrono::Duration;
use proptest::prelude::*;
use waybill_schemas::events::{
    CaptureMode, CarrierStatus, FulfillmentLine, NodeProgress, OrderConfirmed, RouteCause,
};
use waybill_schemas::{OrderEvent, OrderId, Quantity};

use super::flow::{next_step, FulfillmentPolicy, FulfillmentStep};
use super::routing::{Candidate, LocationType, RouteRequest, RoutingConfig, TransitHistory};
use super::*;
use crate::domain::order::fixtures::{placed_event, t0};
use crate::domain::returns::{RequestedLine, ReturnCommand, ReturnLabel, ReturnsPolicy};
use waybill_schemas::events::{InspectedLine, ReturnReason, ReturnResolution};

/// One thing a node, a carrier or the process manager may do, by index into what exists.
#[derive(Debug, Clone)]
enum Act {
    Step,
    Progress(usize, bool),
    Short(usize, u32),
    Ready(usize),
    Collect(usize, bool),
    Scan(usize, u8, i64, u8),
    Return(u32, u32),
    Inspect(usize, u32, u32),
}

/// A command for the fulfillment or the returns side.
#[derive(Debug, Clone)]
enum Cmd {
    F(FulfillmentCommand),
    R(ReturnCommand),
}

impl Cmd {
    fn handle(
        &self,
        state: &Fulfillment,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Vec<OrderEvent>> {
        match self {
            Cmd::F(c) => state.handle(c, now).ok(),
            Cmd::R(c) => state.handle_return(c, &returns_policy(), now).ok(),
        }
    }
}

fn returns_policy() -> ReturnsPolicy {
    ReturnsPolicy {
        window_days: 365.0,
        ..ReturnsPolicy::bundled().expect("bundled policy")
    }
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => Just(Act::Step),
        3 => (0..4usize, any::<bool>()).prop_map(|(i, p)| Act::Progress(i, p)),
        1 => (0..4usize, 1..3u32).prop_map(|(i, n)| Act::Short(i, n)),
        1 => (0..4usize).prop_map(Act::Ready),
        1 => (0..4usize, any::<bool>()).prop_map(|(i, ok)| Act::Collect(i, ok)),
        3 => (0..4usize, 0..6u8, 0..100i64, 0..3u8).prop_map(|(i, s, t, e)| Act::Scan(i, s, t, e)),
        2 => (1..3u32, 1..3u32).prop_map(|(l, n)| Act::Return(l, n)),
        2 => (0..3usize, 0..3u32, 0..3u32).prop_map(|(i, a, r)| Act::Inspect(i, a, r)),
    ]
}

fn statuses(i: u8) -> CarrierStatus {
    [
        CarrierStatus::PickedUp,
        CarrierStatus::InTransit,
        CarrierStatus::OutForDelivery,
        CarrierStatus::Delivered,
        CarrierStatus::Exception,
        CarrierStatus::ReturnedToSender,
    ][usize::from(i) % 6]
}

fn candidates(stock: &[(u32, u32, u32)]) -> Vec<Candidate> {
    ["wh-east", "store-soho", "3pl-north"]
        .iter()
        .zip([
            LocationType::Warehouse,
            LocationType::Store,
            LocationType::ThirdParty,
        ])
        .zip(stock)
        .map(|((id, location), (a, b, d))| Candidate {
            node_id: (*id).into(),
            location,
            distance: *d,
            units: [(1, *a), (2, *b)].into_iter().collect(),
        })
        .collect()
}

/// Runs the process manager's step the way the worker does, with fake but valid outside answers.
fn run_step(
    state: &Fulfillment,
    config: &RoutingConfig,
    pickup: bool,
    cands: &[Candidate],
    n: i64,
) -> Option<Cmd> {
    let now = t0() + Duration::minutes(n);
    let method = if pickup { "pickup" } else { "standard" };
    let command = match next_step(state, &FulfillmentPolicy::default(), &returns_policy(), now) {
        FulfillmentStep::Route => {
            let lines: Vec<FulfillmentLine> = state.ordered.values().cloned().collect();
            let plan = config.route(&RouteRequest {
                shipping_method: method,
                pickup_location: None,
                lines: &lines,
                candidates: cands,
                history: &TransitHistory::default(),
                now,
            });
            Some(FulfillmentCommand::Route {
                plan,
                cause: RouteCause::Confirmation,
                decided: None,
            })
        }
        FulfillmentStep::Reroute {
            fulfillment_id,
            node_id,
            missing,
        } => {
            let others: Vec<Candidate> = cands
                .iter()
                .filter(|c| c.node_id != node_id)
                .cloned()
                .collect();
            let plan = config.route(&RouteRequest {
                shipping_method: method,
                pickup_location: None,
                lines: &missing,
                candidates: &others,
                history: &TransitHistory::default(),
                now,
            });
            Some(FulfillmentCommand::Route {
                plan,
                cause: RouteCause::ShortPick {
                    from_fulfillment_id: fulfillment_id,
                },
                decided: None,
            })
        }
        FulfillmentStep::RouteReplacement { return_id, lines } => {
            let plan = config.route(&RouteRequest {
                shipping_method: method,
                pickup_location: None,
                lines: &lines,
                candidates: cands,
                history: &TransitHistory::default(),
                now,
            });
            Some(FulfillmentCommand::Route {
                plan,
                cause: RouteCause::Exchange { return_id },
                decided: None,
            })
        }
        FulfillmentStep::Submit { fulfillment_id } => Some(FulfillmentCommand::RecordSubmission {
            wms_task_id: format!("task-{fulfillment_id}"),
            fulfillment_id,
        }),
        FulfillmentStep::Ship { fulfillment_id } => Some(FulfillmentCommand::CreateShipment {
            fulfillment_id,
            label: Label {
                tracking_number: "T".into(),
                tracking_url: "u".into(),
                label_url: "l".into(),
                eta: now,
            },
        }),
        FulfillmentStep::HandleException {
            shipment_id,
            carrier_event_id,
            action,
        } => Some(FulfillmentCommand::HandleException {
            shipment_id,
            carrier_event_id,
            action,
            detail: "x".into(),
        }),
        FulfillmentStep::Close => Some(FulfillmentCommand::Close),
        FulfillmentStep::IssueReturnLabel { return_id } => {
            return Some(Cmd::R(ReturnCommand::IssueLabel {
                return_id,
                label: ReturnLabel {
                    carrier: "parcelco".into(),
                    tracking_number: "RT".into(),
                    tracking_url: "u".into(),
                    label_url: "l".into(),
                },
            }))
        }
        FulfillmentStep::RestockReturn { return_id, .. } => {
            return Some(Cmd::R(ReturnCommand::Restock { return_id }))
        }
        FulfillmentStep::ResolveReturn { return_id } => {
            return Some(Cmd::R(ReturnCommand::Resolve { return_id }))
        }
        FulfillmentStep::ExpirePickup { fulfillment_id } => {
            Some(FulfillmentCommand::CancelUncollected {
                // One id per pickup, as data (the domain never makes one up).
                cancellation_id: uuid::Uuid::from_slice(
                    &sha2::Sha256::digest(fulfillment_id.as_bytes())[..16],
                )
                .expect("16 bytes"),
                fulfillment_id,
                value: waybill_schemas::Money::zero(
                    waybill_schemas::Currency::parse("USD").expect("known currency"),
                ),
            })
        }
        FulfillmentStep::Withdraw { cancellation_id } => {
            Some(FulfillmentCommand::RecordWithdrawal {
                cancellation_id,
                nodes_amended: vec![],
                released_units: 0,
            })
        }
        FulfillmentStep::Wait { .. } | FulfillmentStep::HoldForPayment | FulfillmentStep::Done => {
            None
        }
    };
    command.map(Cmd::F)
}

fn check_units(state: &Fulfillment) -> Result<(), TestCaseError> {
    let b = state.units();
    let all = [
        &b.unrouted,
        &b.at_node,
        &b.shipped,
        &b.delivered,
        &b.collected,
        &b.returned_to_sender,
        &b.awaiting_reroute,
        &b.cancelled,
        &b.return_requested,
        &b.returned,
        &b.restocked,
    ];
    for (no, line) in &state.ordered {
        let placed_in: u32 = all
            .iter()
            .flat_map(|l| l.iter())
            .filter(|l| l.line_no == *no)
            .map(|l| l.quantity.get())
            .sum();
        prop_assert_eq!(
            placed_in,
            line.quantity.get(),
            "line {} buckets {:?}",
            no,
            b
        );
    }
    for s in &state.shipments {
        let o = state
            .order(&s.created.fulfillment_id)
            .expect("shipment of a known order");
        prop_assert!(
            o.packed && !o.is_pickup(),
            "shipped before packing: {:?}",
            o
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn every_unit_is_in_exactly_one_place(
        pickup in any::<bool>(),
        stock in proptest::collection::vec((0..3u32, 0..2u32, 0..5u32), 3),
        acts in proptest::collection::vec(act(), 1..60),
    ) {
        let order_id = OrderId::new_v7();
        let mut placed = placed_event(order_id, None);
        if pickup {
            placed.shipping.method = "pickup".into();
        }
        let mut state = Fulfillment::from_events(&[
            OrderEvent::OrderPlaced(placed),
            OrderEvent::OrderConfirmed(OrderConfirmed { order_id, capture_mode: CaptureMode::Immediate, confirmed_at: t0() }),
        ]);
        let config = RoutingConfig::bundled().expect("config");
        let cands = candidates(&stock);
        for (n, a) in acts.into_iter().enumerate() {
            let n = n as i64;
            let pick = |i: usize| state.orders.get(i % state.orders.len().max(1)).map(|o| o.id().to_owned());
            let command: Option<Cmd> = match a {
                Act::Step => run_step(&state, &config, pickup, &cands, n),
                Act::Return(line_no, k) => Some(Cmd::R(ReturnCommand::Request {
                    lines: vec![RequestedLine { line_no, quantity: Quantity::parse(i64::from(k)).expect("positive"), reason: ReturnReason::WrongSize, note: None }],
                    resolution: ReturnResolution::Refund,
                    waive_fees: false,
                    requested_by: "c".into(),
                })),
                Act::Inspect(i, accept, resell) => state
                    .returns
                    .returns
                    .get(i % state.returns.returns.len().max(1))
                    .map(|r| Cmd::R(ReturnCommand::Inspect {
                        return_id: r.id().to_owned(),
                        lines: r.requested.lines.iter().map(|l| {
                            let accepted = accept.min(l.quantity.get());
                            InspectedLine { line_no: l.line_no, sku: l.sku.clone(), accepted, rejected: l.quantity.get() - accepted, resellable: resell.min(accepted), note: None }
                        }).collect(),
                        inspected_by: String::new(),
                    })),
                _ => None,
            };
            let command = command.or_else(|| match a {
                Act::Step | Act::Return(..) | Act::Inspect(..) => None,
                Act::Progress(i, packed) => pick(i).map(|fulfillment_id| FulfillmentCommand::RecordProgress {
                    fulfillment_id,
                    progress: if packed { NodeProgress::Packed } else { NodeProgress::Picked },
                }),
                Act::Short(i, k) => pick(i).and_then(|fulfillment_id| {
                    let line = state.order(&fulfillment_id)?.effective_lines().first()?.clone();
                    Some(FulfillmentCommand::RecordShortPick {
                        fulfillment_id,
                        missing: vec![FulfillmentLine { quantity: Quantity::parse(i64::from(k)).ok()?, ..line }],
                    })
                }),
                Act::Ready(i) => pick(i).map(|fulfillment_id| FulfillmentCommand::ReadyForPickup {
                    fulfillment_id,
                    code: "123456".into(),
                    collect_by: t0() + Duration::days(7),
                }),
                Act::Collect(i, right) => pick(i).map(|fulfillment_id| FulfillmentCommand::CompletePickup {
                    fulfillment_id,
                    code: if right { "123456".into() } else { "000000".into() },
                }),
                Act::Scan(i, status, minute, event) => state
                    .shipments
                    .get(i % state.shipments.len().max(1))
                    .map(|s| FulfillmentCommand::RecordScan {
                        shipment_id: s.created.shipment_id.clone(),
                        scan: Scan {
                            carrier_event_id: format!("ev-{status}-{minute}-{event}"),
                            status: statuses(status),
                            carrier_time: t0() + Duration::minutes(minute),
                            description: "scan".into(),
                            location: None,
                            proof: None,
                        },
                    }),
            }.map(Cmd::F));
            let Some(command) = command else { continue };
            let now = t0() + Duration::days(30) + Duration::minutes(n);
            let before = state.clone();
            if let Some(events) = command.handle(&state, now) {
                for e in &events {
                    state.apply(e);
                }
                if matches!(command, Cmd::F(FulfillmentCommand::CompletePickup { ref code, .. }) if code != "123456") {
                    prop_assert!(events.is_empty() && before == state, "a wrong code collected");
                }
            }
            if state.is_routed() {
                check_units(&state)?;
            }
            // The order is cancelled exactly when nothing of it is left (short picks nobody
            // could fill, uncollected pickups), decided with the cancellation of the last units.
            prop_assert_eq!(state.cancelled, state.nothing_left(), "cancelled iff every unit is");
            // The flow never loops: a step that changes nothing is never asked for twice.
            if let Some(again) = run_step(&state, &config, pickup, &cands, n) {
                if let Some(events) = again.handle(&state, now) {
                    prop_assert!(!events.is_empty(), "next_step asked for {:?}, which records nothing", again);
                }
            }
        }
    }
}

#[test]
fn an_uncollected_pickup_that_was_the_whole_order_cancels_it_the_same_way_every_time() {
    let order_id = OrderId::new_v7();
    let mut placed = placed_event(order_id, None);
    placed.shipping.method = "pickup".into();
    let mut state = Fulfillment::from_events(&[
        OrderEvent::OrderPlaced(placed),
        OrderEvent::OrderConfirmed(OrderConfirmed {
            order_id,
            capture_mode: CaptureMode::Immediate,
            confirmed_at: t0(),
        }),
    ]);
    let config = RoutingConfig::bundled().unwrap();
    let cands = candidates(&[(2, 1, 1), (2, 1, 1), (2, 1, 1)]);
    let route = run_step(&state, &config, true, &cands, 0).expect("route");
    for e in route.handle(&state, t0()).unwrap() {
        state.apply(&e);
    }
    assert_eq!(
        state.orders.len(),
        1,
        "one store has it all: {:?}",
        state.orders
    );
    let fid = state.orders[0].id().to_owned();
    let ready = FulfillmentCommand::ReadyForPickup {
        fulfillment_id: fid.clone(),
        code: "123456".into(),
        collect_by: t0() + Duration::days(1),
    };
    for e in state.handle(&ready, t0()).unwrap() {
        state.apply(&e);
    }
    let expire = FulfillmentCommand::CancelUncollected {
        cancellation_id: uuid::Uuid::from_u128(42),
        fulfillment_id: fid,
        value: waybill_schemas::Money::zero(
            waybill_schemas::Currency::parse("USD").expect("known currency"),
        ),
    };
    let late = t0() + Duration::days(2);
    let events = state.handle(&expire, late).unwrap();
    // Same input, same output: the id and the time are data.
    assert_eq!(events, state.handle(&expire, late).unwrap());
    let kinds: Vec<&str> = events.iter().map(OrderEvent::event_type).collect();
    assert_eq!(kinds, ["OrderLinesCancelled", "OrderCancelled"]);
    let (OrderEvent::OrderLinesCancelled(lines), OrderEvent::OrderCancelled(order)) =
        (&events[0], &events[1])
    else {
        panic!("{events:?}")
    };
    assert_eq!(lines.cancellation_id, uuid::Uuid::from_u128(42));
    assert_eq!(order.reason, waybill_schemas::events::CancelReason::Timeout);
    assert_eq!(order.cancelled_at, late);
}

/// An order with one packed parcel handed to the carrier at `t0()`, and the parcel's id.
fn shipped_parcel() -> (Fulfillment, String) {
    let order_id = OrderId::new_v7();
    let mut state = Fulfillment::from_events(&[
        OrderEvent::OrderPlaced(placed_event(order_id, None)),
        OrderEvent::OrderConfirmed(OrderConfirmed {
            order_id,
            capture_mode: CaptureMode::Immediate,
            confirmed_at: t0(),
        }),
    ]);
    let config = RoutingConfig::bundled().unwrap();
    let cands = candidates(&[(2, 1, 1), (0, 0, 0), (0, 0, 0)]);
    for _ in 0..2 {
        let command = run_step(&state, &config, false, &cands, 0).expect("route, then submit");
        for e in command.handle(&state, t0()).unwrap() {
            state.apply(&e);
        }
    }
    let fid = state.orders[0].id().to_owned();
    for progress in [NodeProgress::Picked, NodeProgress::Packed] {
        let c = FulfillmentCommand::RecordProgress {
            fulfillment_id: fid.clone(),
            progress,
        };
        for e in state.handle(&c, t0()).unwrap() {
            state.apply(&e);
        }
    }
    let ship = run_step(&state, &config, false, &cands, 0).expect("ship step");
    for e in ship.handle(&state, t0()).unwrap() {
        state.apply(&e);
    }
    let sid = state.shipments[0].created.shipment_id.clone();
    (state, sid)
}

#[test]
fn a_stale_or_repeated_carrier_scan_changes_nothing() {
    let (mut state, sid) = shipped_parcel();
    // Every scan is received an hour after the parcel left: after all their carrier times.
    let received = t0() + Duration::hours(1);
    let scan = |id: &str, status, minute| FulfillmentCommand::RecordScan {
        shipment_id: sid.clone(),
        scan: Scan {
            carrier_event_id: id.into(),
            status,
            carrier_time: t0() + Duration::minutes(minute),
            description: "x".into(),
            location: None,
            proof: None,
        },
    };
    let delivered = state
        .handle(&scan("e2", CarrierStatus::Delivered, 20), received)
        .unwrap();
    assert_eq!(delivered.len(), 1);
    state.apply(&delivered[0]);
    assert!(
        state
            .handle(&scan("e2", CarrierStatus::Delivered, 20), received)
            .unwrap()
            .is_empty(),
        "duplicate"
    );
    assert!(
        state
            .handle(&scan("e1", CarrierStatus::InTransit, 10), received)
            .unwrap()
            .is_empty(),
        "older scan"
    );
    assert_eq!(state.shipments[0].current(), Some(CarrierStatus::Delivered));
    let policy = FulfillmentPolicy::default();
    let last = t0() + Duration::minutes(20);
    assert_eq!(
        next_step(&state, &policy, &returns_policy(), last + Duration::days(1)),
        FulfillmentStep::Wait {
            until: Some(last + policy.auto_close_after)
        }
    );
    assert_eq!(
        next_step(
            &state,
            &policy,
            &returns_policy(),
            last + policy.auto_close_after
        ),
        FulfillmentStep::Close
    );
}

fn any_status() -> impl Strategy<Value = CarrierStatus> {
    (0u8..6).prop_map(statuses)
}

/// A scan as anyone holding the signing secret could send it: any status, any time from a
/// century before the parcel left to the end of the calendar, received some seconds after the
/// one before.
fn hostile_scan() -> impl Strategy<Value = (CarrierStatus, i64, i64)> {
    let earliest = -100 * 365 * 24 * 3600_i64;
    let latest = (chrono::DateTime::<chrono::Utc>::MAX_UTC - t0()).num_seconds();
    (
        any_status(),
        prop_oneof![earliest..latest, -3600i64..7200, Just(latest)],
        0i64..600,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No sequence of carrier webhooks wedges a parcel: whatever was sent before (dated in the
    /// past, far in the future, repeated ids, any status), a delivery scan that happened after
    /// every earlier webhook arrived is recorded, and the parcel counts as delivered no earlier
    /// than it left and no later than the scan arrived.
    #[test]
    fn a_later_genuine_delivery_scan_always_lands(
        scans in proptest::collection::vec(hostile_scan(), 0..12),
        repeat_ids in any::<bool>(),
        delay in 1i64..600,
        ahead in 0i64..300,
        transit in 0i64..600,
    ) {
        let (mut state, sid) = shipped_parcel();
        let mut received = t0();
        for (n, (status, offset, gap)) in scans.into_iter().enumerate() {
            received += Duration::seconds(gap);
            let carrier_time = t0()
                .checked_add_signed(Duration::seconds(offset))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
            let command = FulfillmentCommand::RecordScan {
                shipment_id: sid.clone(),
                scan: Scan {
                    carrier_event_id: if repeat_ids { format!("ev-{}", n % 3) } else { format!("ev-{n}") },
                    status,
                    carrier_time,
                    description: "hostile".into(),
                    location: None,
                    proof: None,
                },
            };
            for e in state.handle(&command, received).expect("a known parcel") {
                state.apply(&e);
            }
        }
        // The genuine scan happened `delay` s after the last webhook arrived and reaches us
        // `transit` s later; its carrier's clock may run up to five minutes ahead of ours.
        let happened = received + Duration::seconds(delay);
        let arrives = happened + Duration::seconds(transit);
        let genuine = FulfillmentCommand::RecordScan {
            shipment_id: sid.clone(),
            scan: Scan {
                carrier_event_id: "genuine-delivery".into(),
                status: CarrierStatus::Delivered,
                carrier_time: happened + Duration::seconds(ahead),
                description: "delivered".into(),
                location: None,
                proof: None,
            },
        };
        let events = state.handle(&genuine, arrives).expect("a known parcel");
        prop_assert_eq!(events.len(), 1, "the genuine delivery scan was dropped");
        for e in &events {
            state.apply(e);
        }
        let parcel = &state.shipments[0];
        prop_assert_eq!(parcel.current(), Some(CarrierStatus::Delivered));
        let delivered_at = parcel.delivered_at.expect("delivered");
        prop_assert!(delivered_at >= parcel.created.created_at && delivered_at <= arrives);
        prop_assert!(state.fully_delivered().is_some());
    }
}

#[test]
fn a_capture_refused_for_good_holds_the_fulfillment() {
    let (mut state, _) = shipped_parcel();
    let order_id = state.order_id.expect("placed");
    let refused = OrderEvent::PaymentCaptureFailed(waybill_schemas::events::PaymentCaptureFailed {
        order_id,
        authorization_id: "auth_1".into(),
        amount: waybill_schemas::Money::new(100, waybill_schemas::Currency::parse("USD").unwrap()),
        code: "authorization_voided".into(),
        message: "voided".into(),
        failed_at: t0(),
    });
    state.apply(&refused);
    let policy = FulfillmentPolicy::default();
    assert_eq!(
        next_step(
            &state,
            &policy,
            &returns_policy(),
            t0() + Duration::days(60)
        ),
        FulfillmentStep::HoldForPayment,
        "nothing ships and the order does not close"
    );
}
