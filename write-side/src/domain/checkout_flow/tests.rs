use chrono::Duration;
use proptest::prelude::*;
use waybill_schemas::events::{PaymentMethod, ReviewDecision, RiskDecision, Shortage};

use super::*;
use crate::domain::order::fixtures::*;
use crate::domain::order::OrderCommand;

fn policy() -> FlowPolicy {
    FlowPolicy::default()
}

fn step(order: &Order, now: DateTime<Utc>) -> Step {
    next_step(order, &policy(), now)
}

fn order_id(order: &Order) -> OrderId {
    order.state().expect("placed").order_id()
}

fn cancel(order: Order, reason: CancelReason) -> Order {
    let id = order_id(&order);
    with(order, &[cancel_command(id, reason)], t0())
}

fn risk(decision: RiskDecision) -> OrderCommand {
    OrderCommand::RecordRisk {
        decision,
        score: 50,
        reasons: vec![],
    }
}

fn week() -> DateTime<Utc> {
    t0() + Duration::days(7)
}

fn reserved(payment: Option<PaymentMethod>) -> Order {
    with(
        placed_order(payment),
        &[accept_risk(), reserve_all(t0() + minutes(15))],
        t0(),
    )
}

fn authorized() -> Order {
    with(reserved(card()), &[authorize("auth_1", week())], t0())
}

fn challenged() -> Order {
    with(
        reserved(card()),
        &[OrderCommand::RecordChallenge {
            authorization_id: "auth_3ds".into(),
            challenge_url: "https://pay.example/3ds".into(),
            expires_at: t0() + minutes(10),
        }],
        t0(),
    )
}

fn confirmed(capture_mode: CaptureMode) -> Order {
    with(
        ready_to_confirm(),
        &[OrderCommand::Confirm { capture_mode }],
        t0(),
    )
}

fn release(reason: ReleaseReason) -> OrderCommand {
    OrderCommand::RecordRelease { reason }
}

#[test]
fn without_an_order_there_is_nothing_to_do() {
    assert_eq!(step(&Order::default(), t0()), Step::Done);
}

#[test]
fn a_cancelled_order_releases_its_stock_then_voids_its_hold_then_is_done() {
    let order = cancel(authorized(), CancelReason::CustomerRequest);
    assert_eq!(
        step(&order, t0()),
        Step::Release {
            reason: ReleaseReason::OrderCancelled
        }
    );
    let order = with(order, &[release(ReleaseReason::OrderCancelled)], t0());
    assert_eq!(
        step(&order, t0()),
        Step::Void {
            authorization_id: "auth_1".into(),
            reason: "order cancelled: customer_request".into()
        }
    );
    let order = with(
        order,
        &[OrderCommand::RecordVoid {
            authorization_id: "auth_1".into(),
            reason: "order cancelled".into(),
        }],
        t0(),
    );
    assert_eq!(step(&order, t0()), Step::Done);
}

#[test]
fn the_release_reason_follows_the_cancel_reason() {
    for (cancel_reason, release_reason) in [
        (CancelReason::Fraud, ReleaseReason::RiskRejected),
        (CancelReason::PaymentFailed, ReleaseReason::PaymentDeclined),
        (CancelReason::Timeout, ReleaseReason::OrderCancelled),
        (CancelReason::Other, ReleaseReason::OrderCancelled),
    ] {
        let order = cancel(reserved(card()), cancel_reason);
        assert_eq!(
            step(&order, t0()),
            Step::Release {
                reason: release_reason
            }
        );
    }
}

#[test]
fn a_cancelled_order_voids_a_pending_challenge() {
    let order = cancel(challenged(), CancelReason::CustomerRequest);
    let order = with(order, &[release(ReleaseReason::OrderCancelled)], t0());
    assert!(matches!(
        step(&order, t0()),
        Step::Void { authorization_id, .. } if authorization_id == "auth_3ds"
    ));
}

#[test]
fn a_cancelled_order_holding_nothing_is_done() {
    let order = cancel(placed_order(card()), CancelReason::CustomerRequest);
    assert_eq!(step(&order, t0()), Step::Done);
}

#[test]
fn risk_is_assessed_first_and_a_rejection_cancels_for_fraud() {
    assert_eq!(step(&placed_order(card()), t0()), Step::AssessRisk);
    let rejected = with(placed_order(card()), &[risk(RiskDecision::Reject)], t0());
    assert_eq!(
        step(&rejected, t0()),
        Step::Cancel {
            reason: CancelReason::Fraud
        }
    );
    let review_rejected = with(
        placed_order(card()),
        &[
            risk(RiskDecision::Review),
            OrderCommand::ResolveReview {
                decision: ReviewDecision::Reject,
                reviewer: "agent-7".into(),
                note: None,
            },
        ],
        t0(),
    );
    assert_eq!(
        step(&review_rejected, t0()),
        Step::Cancel {
            reason: CancelReason::Fraud
        }
    );
}

#[test]
fn a_held_order_waits_for_its_review_until_the_review_timeout() {
    let held = with(placed_order(card()), &[risk(RiskDecision::Review)], t0());
    let deadline = t0() + policy().review_timeout;
    assert_eq!(
        step(&held, t0() + minutes(5)),
        Step::Wait {
            until: Some(deadline)
        }
    );
    assert_eq!(
        step(&held, deadline),
        Step::Cancel {
            reason: CancelReason::Timeout
        }
    );
}

#[test]
fn accepted_risk_reserves_stock_and_a_shortage_cancels_out_of_stock() {
    let accepted = with(placed_order(card()), &[accept_risk()], t0());
    assert_eq!(step(&accepted, t0()), Step::Reserve);
    let short = with(
        accepted,
        &[OrderCommand::RecordReservationFailure {
            shortages: vec![Shortage {
                line_no: 1,
                sku: waybill_schemas::Sku::parse("TEE-RED-M").expect("valid sku"),
                requested: 2,
                available: 0,
            }],
        }],
        t0(),
    );
    assert_eq!(
        step(&short, t0()),
        Step::Cancel {
            reason: CancelReason::OutOfStock
        }
    );
}

#[test]
fn an_expired_reservation_is_released_then_the_order_cancelled() {
    let order = reserved(card());
    let expiry = t0() + minutes(15);
    assert_eq!(
        step(&order, expiry),
        Step::Release {
            reason: ReleaseReason::Expired
        }
    );
    let order = with(order, &[release(ReleaseReason::Expired)], expiry);
    assert_eq!(
        step(&order, expiry),
        Step::Cancel {
            reason: CancelReason::ReservationExpired
        }
    );
}

#[test]
fn reserved_stock_is_paid_for_next_unless_prepaid() {
    assert_eq!(step(&reserved(card()), t0()), Step::Authorize);
    assert_eq!(step(&reserved(prepaid()), t0()), Step::Allocate);
    assert_eq!(step(&reserved(None), t0()), Step::Allocate);
}

#[test]
fn a_challenge_is_waited_for_until_it_or_the_reservation_runs_out() {
    let order = challenged();
    assert_eq!(
        step(&order, t0()),
        Step::Wait {
            until: Some(t0() + minutes(10))
        }
    );
    assert_eq!(
        step(&order, t0() + minutes(10)),
        Step::Cancel {
            reason: CancelReason::Timeout
        }
    );
    let short_reservation = with(
        placed_order(card()),
        &[
            accept_risk(),
            reserve_all(t0() + minutes(5)),
            OrderCommand::RecordChallenge {
                authorization_id: "auth_3ds".into(),
                challenge_url: "https://pay.example/3ds".into(),
                expires_at: t0() + minutes(10),
            },
        ],
        t0(),
    );
    assert_eq!(
        step(&short_reservation, t0()),
        Step::Wait {
            until: Some(t0() + minutes(5))
        }
    );
}

#[test]
fn a_decline_releases_the_stock_then_cancels_for_payment() {
    let declined = with(
        reserved(card()),
        &[OrderCommand::RecordDecline {
            authorization_id: None,
            code: "insufficient_funds".into(),
            message: "Insufficient funds".into(),
        }],
        t0(),
    );
    assert_eq!(
        step(&declined, t0()),
        Step::Release {
            reason: ReleaseReason::PaymentDeclined
        }
    );
    let released = with(declined, &[release(ReleaseReason::PaymentDeclined)], t0());
    assert_eq!(
        step(&released, t0()),
        Step::Cancel {
            reason: CancelReason::PaymentFailed
        }
    );
}

#[test]
fn an_authorization_that_lapses_before_confirmation_is_expired_then_cancelled() {
    let order = with(
        placed_order(card()),
        &[
            accept_risk(),
            reserve_all(t0() + Duration::days(30)),
            authorize("auth_1", week()),
        ],
        t0(),
    );
    assert_eq!(step(&order, week()), Step::ExpireAuthorization);
    let order = with(order, &[OrderCommand::ExpireAuthorization], week());
    assert_eq!(
        step(&order, week()),
        Step::Cancel {
            reason: CancelReason::PaymentFailed
        }
    );
}

#[test]
fn authorized_stock_is_allocated_then_confirmed() {
    assert_eq!(step(&authorized(), t0()), Step::Allocate);
    assert_eq!(step(&ready_to_confirm(), t0()), Step::Confirm);
}

#[test]
fn a_failed_allocation_cancels_out_of_stock_and_then_voids() {
    let order = with(
        authorized(),
        &[release(ReleaseReason::AllocationFailed)],
        t0(),
    );
    assert_eq!(
        step(&order, t0()),
        Step::Cancel {
            reason: CancelReason::OutOfStock
        }
    );
    let order = cancel(order, CancelReason::OutOfStock);
    assert!(matches!(step(&order, t0()), Step::Void { .. }));
}

#[test]
fn immediate_capture_takes_the_authorized_amount_then_is_done() {
    let order = confirmed(CaptureMode::Immediate);
    assert_eq!(
        step(&order, t0()),
        Step::Capture {
            amount: grand_total()
        }
    );
    let order = with(
        order,
        &[OrderCommand::RecordCapture {
            authorization_id: "auth_1".into(),
            capture_id: "cap_1".into(),
            amount: grand_total(),
        }],
        t0(),
    );
    assert_eq!(step(&order, t0()), Step::Done);
}

#[test]
fn capture_on_shipment_waits_for_the_hold_to_lapse_then_is_done() {
    let order = confirmed(CaptureMode::OnShipment);
    assert_eq!(
        step(&order, t0()),
        Step::Wait {
            until: Some(week())
        }
    );
    assert_eq!(step(&order, week()), Step::ExpireAuthorization);
    let order = with(order, &[OrderCommand::ExpireAuthorization], week());
    assert_eq!(step(&order, week()), Step::Done);
}

#[test]
fn a_hold_that_lapsed_before_its_immediate_capture_is_expired() {
    let order = confirmed(CaptureMode::Immediate);
    assert_eq!(step(&order, week()), Step::ExpireAuthorization);
}

#[test]
fn a_confirmed_prepaid_order_is_done() {
    let order = with(
        reserved(prepaid()),
        &[
            OrderCommand::RecordAllocation {
                lines: full_lines(),
            },
            OrderCommand::Confirm {
                capture_mode: CaptureMode::Immediate,
            },
        ],
        t0(),
    );
    assert_eq!(step(&order, t0()), Step::Done);
}

#[test]
fn idempotency_keys_name_the_order_and_the_step() {
    let id = OrderId::new_v7();
    assert_eq!(Step::Reserve.idempotency_key(id), format!("{id}:reserve"));
    assert_eq!(
        Step::Capture {
            amount: grand_total()
        }
        .idempotency_key(id),
        format!("{id}:capture")
    );
}

/// Random answers for the flow driver; once used up, always the first option (the answers
/// put the happy outcome first).
struct Dice<'a>(std::slice::Iter<'a, u8>);

impl Dice<'_> {
    fn roll(&mut self, sides: u8) -> u8 {
        self.0.next().map_or(0, |r| r % sides)
    }
}

/// Answers `step` the way an outside service might, as the aggregate's command.
fn answer(
    step: &Step,
    state: &OrderState,
    policy: &FlowPolicy,
    dice: &mut Dice<'_>,
    now: DateTime<Utc>,
) -> OrderCommand {
    let placed = state.placed();
    match step {
        Step::AssessRisk => OrderCommand::RecordRisk {
            decision: [
                RiskDecision::Accept,
                RiskDecision::Review,
                RiskDecision::Reject,
            ][usize::from(dice.roll(3))],
            score: 40,
            reasons: vec![],
        },
        Step::Reserve => {
            let mut lines: Vec<_> = placed
                .lines
                .iter()
                .map(|l| reserved_line(l.line_no, l.sku.as_str(), l.quantity.get()))
                .collect();
            match (dice.roll(3), policy.out_of_stock) {
                (2, OutOfStockPolicy::Reject) => OrderCommand::RecordReservationFailure {
                    shortages: vec![Shortage {
                        line_no: 1,
                        sku: placed.lines[0].sku.clone(),
                        requested: placed.lines[0].quantity.get(),
                        available: 0,
                    }],
                },
                (2, OutOfStockPolicy::Backorder) => {
                    let short = lines.remove(0);
                    OrderCommand::RecordReservation {
                        lines,
                        backordered: vec![backordered_line(
                            short.line_no,
                            short.sku.as_str(),
                            short.quantity.get(),
                        )],
                        expires_at: now + policy.reservation_ttl,
                    }
                }
                _ => OrderCommand::RecordReservation {
                    lines,
                    backordered: vec![],
                    expires_at: now + policy.reservation_ttl,
                },
            }
        }
        Step::Authorize => match dice.roll(3) {
            1 => OrderCommand::RecordChallenge {
                authorization_id: "auth_1".into(),
                challenge_url: "https://pay.example/3ds".into(),
                expires_at: now + policy.challenge_timeout,
            },
            2 => OrderCommand::RecordDecline {
                authorization_id: Some("auth_1".into()),
                code: "card_declined".into(),
                message: "declined".into(),
            },
            _ => authorize("auth_1", now + Duration::days(7)),
        },
        Step::Allocate => match dice.roll(4) {
            3 => OrderCommand::RecordRelease {
                reason: ReleaseReason::AllocationFailed,
            },
            _ => OrderCommand::RecordAllocation {
                lines: state
                    .reserved()
                    .map(|r| r.lines.clone())
                    .unwrap_or_default(),
            },
        },
        Step::Confirm => OrderCommand::Confirm {
            capture_mode: policy.capture_mode,
        },
        Step::Capture { amount } => OrderCommand::RecordCapture {
            authorization_id: "auth_1".into(),
            capture_id: "cap_1".into(),
            amount: *amount,
        },
        Step::Release { reason } => OrderCommand::RecordRelease { reason: *reason },
        Step::Void {
            authorization_id,
            reason,
        } => OrderCommand::RecordVoid {
            authorization_id: authorization_id.clone(),
            reason: reason.clone(),
        },
        Step::Cancel { reason } => cancel_command(state.order_id(), *reason),
        Step::ExpireAuthorization => OrderCommand::ExpireAuthorization,
        Step::Refund {
            refund_id, amount, ..
        } => OrderCommand::RecordRefund {
            refund_id: *refund_id,
            capture_id: "cap_1".into(),
            gateway_refund_id: format!("re_{refund_id}"),
            amount: *amount,
        },
        Step::RefundCancelled { amount } => OrderCommand::RequestRefund {
            refund_id: uuid::Uuid::now_v7(),
            amount: *amount,
            kind: waybill_schemas::events::RefundKind::Cancellation,
            reason: "units cancelled".into(),
            requested_by: "checkout".into(),
        },
        Step::Charge { charge_id, amount } => {
            if dice.roll(2) == 0 {
                OrderCommand::RecordCharge {
                    charge_id: *charge_id,
                    authorization_id: format!("auth_{charge_id}"),
                    capture_id: format!("cap_{charge_id}"),
                    amount: *amount,
                }
            } else {
                OrderCommand::RecordChargeDecline {
                    charge_id: *charge_id,
                    code: "card_declined".into(),
                    message: "declined".into(),
                }
            }
        }
        Step::Wait { .. } | Step::Done => unreachable!("not an action"),
    }
}

/// An outside event while the flow waits: the review or the 3-D Secure result, if one is due.
fn outside_event(state: &OrderState, dice: &mut Dice<'_>) -> Option<OrderCommand> {
    if state.risk() == RiskState::InReview {
        return Some(OrderCommand::ResolveReview {
            decision: [ReviewDecision::Approve, ReviewDecision::Reject][usize::from(dice.roll(2))],
            reviewer: "agent-7".into(),
            note: None,
        });
    }
    if let PaymentState::Challenge {
        authorization_id, ..
    } = state.payment()
    {
        return Some(if dice.roll(2) == 0 {
            OrderCommand::RecordAuthorization {
                authorization_id,
                amount: state.totals().grand_total,
                three_ds: true,
                expires_at: state.placed_at() + Duration::days(8),
            }
        } else {
            OrderCommand::RecordDecline {
                authorization_id: Some(authorization_id),
                code: "authentication_failed".into(),
                message: "3-D Secure failed".into(),
            }
        });
    }
    None
}

fn arb_policy() -> impl Strategy<Value = FlowPolicy> {
    (
        prop_oneof![Just(CaptureMode::Immediate), Just(CaptureMode::OnShipment)],
        prop_oneof![
            Just(OutOfStockPolicy::Reject),
            Just(OutOfStockPolicy::Backorder)
        ],
    )
        .prop_map(|(capture_mode, out_of_stock)| FlowPolicy {
            capture_mode,
            out_of_stock,
            ..FlowPolicy::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// From a placed order, take `next_step` and answer it with a random outcome, with customer
    /// cancellations and clock jumps injected in between: every step's answer is accepted and
    /// changes the order, the flow ends within 30 steps, nothing is captured unconfirmed, and a
    /// cancelled order ends holding no stock and no card hold.
    #[test]
    fn the_flow_always_ends_without_leaks_whatever_the_outcomes(
        payment in prop_oneof![3 => Just(card()), 1 => Just(prepaid()), 1 => Just(None)],
        policy in arb_policy(),
        rolls in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut dice = Dice(rolls.iter());
        let mut order = placed_order(payment);
        let mut now = t0();
        let mut last = None;
        for _ in 0..30 {
            if dice.roll(10) == 9 {
                let id = order_id(&order);
                // Refused after a capture or a cancellation; accepted otherwise.
                let _ = order.record(&cancel_command(id, CancelReason::CustomerRequest), now);
            }
            match dice.roll(6) {
                4 => now += Duration::minutes(i64::from(dice.roll(30))),
                5 => now += Duration::hours(i64::from(dice.roll(200))),
                _ => {}
            }
            let step = next_step(&order, &policy, now);
            let state = order.state().expect("placed").clone();
            match &step {
                Step::Done => {
                    last = Some(step);
                    break;
                }
                Step::Wait { until } => {
                    let event = outside_event(&state, &mut dice);
                    match (dice.roll(3), event, until) {
                        (2, _, _) => {
                            last = Some(step);
                            break;
                        }
                        (0, Some(command), _) => {
                            let events = order.record(&command, now);
                            prop_assert!(matches!(&events, Ok(e) if !e.is_empty()), "{command:?} while waiting: {events:?}");
                        }
                        (_, _, Some(until)) => now = now.max(*until),
                        (_, _, None) => {
                            last = Some(step);
                            break;
                        }
                    }
                }
                _ => {
                    // Stock is never allocated, nor a hold captured, after its deadline.
                    if step == Step::Allocate {
                        let expiry = state.reserved().map(|r| r.expires_at);
                        prop_assert!(expiry.is_some_and(|e| now < e), "allocating a lapsed reservation");
                    }
                    if let Step::Capture { .. } = step {
                        let expiry = state.authorization().map(|a| a.expires_at);
                        prop_assert!(expiry.is_some_and(|e| now < e), "capturing a lapsed hold");
                    }
                    let command = answer(&step, &state, &policy, &mut dice, now);
                    let version = order.version();
                    let events = order.record(&command, now);
                    prop_assert!(matches!(&events, Ok(e) if !e.is_empty()),
                        "{step:?} answered with {command:?}: {events:?}");
                    prop_assert!(order.version() > version);
                }
            }
            let state = order.state().expect("placed");
            if !state.captures().is_empty() {
                prop_assert!(state.confirmed().is_some(), "captured without confirmation");
            }
            let authorized = state.authorization().map_or(0, |a| a.amount.minor);
            prop_assert!(state.captured_total().minor <= authorized);
        }
        prop_assert!(last.is_some(), "the flow did not end within 30 steps");
        let state = order.state().expect("placed");
        if last == Some(Step::Done) {
            if state.is_cancelled() {
                prop_assert!(!state.reservation().is_live(), "leaked stock: {}", state.reservation());
                let payment = state.payment();
                prop_assert_eq!(payment.live_authorization_id(), None, "dangling hold");
                // Cancelled after a capture: everything captured was asked back.
                prop_assert_eq!(state.cancellation_refund_owed().minor, 0);
                prop_assert!(state.ledger().pending_refunds().next().is_none());
                let asked: i64 = state.ledger().refunds().map(|r| r.amount.minor).sum();
                prop_assert_eq!(asked, state.captured_total().minor);
            } else {
                prop_assert!(state.confirmed().is_some());
                let settled = matches!(state.payment(),
                    PaymentState::Prepaid | PaymentState::Captured { .. } | PaymentState::Expired);
                prop_assert!(settled, "done with payment {}", state.payment());
            }
        }
    }
}

#[test]
fn a_requested_refund_is_the_next_step_with_a_key_of_its_own_until_answered() {
    let captured = with(
        ready_to_confirm(),
        &[
            OrderCommand::Confirm {
                capture_mode: CaptureMode::Immediate,
            },
            OrderCommand::RecordCapture {
                authorization_id: "auth_1".into(),
                capture_id: "cap_1".into(),
                amount: grand_total(),
            },
        ],
        t0(),
    );
    assert_eq!(step(&captured, t0()), Step::Done);
    let refund_id = uuid::Uuid::now_v7();
    let requested = with(
        captured,
        &[OrderCommand::RequestRefund {
            refund_id,
            amount: usd(700),
            kind: waybill_schemas::events::RefundKind::Goodwill,
            reason: "sorry".into(),
            requested_by: "agent".into(),
        }],
        t0(),
    );
    let next = step(&requested, t0());
    assert_eq!(
        next,
        Step::Refund {
            refund_id,
            amount: usd(700),
            capture_id: Some("cap_1".into()),
        }
    );
    let id = order_id(&requested);
    assert_eq!(next.idempotency_key(id), format!("{id}:refund:{refund_id}"));
    let answered = with(
        requested,
        &[OrderCommand::RecordRefund {
            refund_id,
            capture_id: "cap_1".into(),
            gateway_refund_id: "re_1".into(),
            amount: usd(700),
        }],
        t0(),
    );
    assert_eq!(step(&answered, t0()), Step::Done);
}

#[test]
fn a_requested_extra_charge_is_the_next_step_once_per_charge() {
    let mut order = with(
        ready_to_confirm(),
        &[
            OrderCommand::Confirm {
                capture_mode: CaptureMode::Immediate,
            },
            OrderCommand::RecordCapture {
                authorization_id: "auth_1".into(),
                capture_id: "cap_1".into(),
                amount: grand_total(),
            },
        ],
        t0(),
    );
    let policy = FlowPolicy::default();
    assert_eq!(next_step(&order, &policy, t0()), Step::Done);
    let charge_id = uuid::Uuid::now_v7();
    order
        .record(
            &OrderCommand::RequestCharge {
                charge_id,
                amount: usd(1200),
                reason: "exchange".into(),
                requested_by: "agent".into(),
                return_id: None,
            },
            t0(),
        )
        .unwrap();
    let step = next_step(&order, &policy, t0());
    assert_eq!(
        step,
        Step::Charge {
            charge_id,
            amount: usd(1200)
        }
    );
    let order_id = order.state().unwrap().order_id();
    assert_eq!(
        step.idempotency_key(order_id),
        format!("{order_id}:charge:{charge_id}")
    );
    order
        .record(
            &OrderCommand::RecordChargeDecline {
                charge_id,
                code: "card_declined".into(),
                message: "no".into(),
            },
            t0(),
        )
        .unwrap();
    assert_eq!(
        next_step(&order, &policy, t0()),
        Step::Done,
        "a decline is not retried"
    );
}
