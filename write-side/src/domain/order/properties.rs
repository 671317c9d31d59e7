//! Property tests: random orders and random command sequences (right, wrong, repeated, out of
//! order, with the clock jumping) never break the aggregate's invariants.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use waybill_schemas::events::{
    CancelReason, CaptureMode, Discount, OrderLine, ReleaseReason, ReviewDecision, RiskDecision,
    Shipping, Shortage,
};
use waybill_schemas::{Money, OrderEvent, OrderId, Quantity, Sku};

use super::fixtures::*;
use super::*;
use crate::domain::cancel::CancelOrder;
use crate::domain::place::PlaceOrder;
use crate::domain::pricing::totals;

/// A command to try, resolved against the order's current state when it is tried.
#[derive(Debug, Clone)]
enum Spec {
    Place,
    Cancel,
    Risk(RiskDecision),
    Review(ReviewDecision),
    Reserve {
        full: bool,
        ttl_minutes: i64,
    },
    ReserveFail,
    Allocate {
        full: bool,
    },
    Release(ReleaseReason),
    Challenge(usize),
    Authorize {
        auth: usize,
        off_by: i64,
    },
    Decline(Option<usize>),
    Confirm(CaptureMode),
    Capture {
        auth: usize,
        capture: usize,
        percent: i64,
    },
    Void(usize),
    Expire,
    Tick(i64),
}

const AUTH_IDS: [&str; 2] = ["auth_1", "auth_2"];
const CAPTURE_IDS: [&str; 3] = ["cap_1", "cap_2", "cap_3"];

fn arb_spec() -> impl Strategy<Value = Spec> {
    let risk = prop_oneof![
        Just(RiskDecision::Accept),
        Just(RiskDecision::Review),
        Just(RiskDecision::Reject)
    ];
    let review = prop_oneof![Just(ReviewDecision::Approve), Just(ReviewDecision::Reject)];
    let release = prop_oneof![
        Just(ReleaseReason::Expired),
        Just(ReleaseReason::PaymentDeclined),
        Just(ReleaseReason::OrderCancelled),
        Just(ReleaseReason::AllocationFailed),
    ];
    let mode = prop_oneof![Just(CaptureMode::Immediate), Just(CaptureMode::OnShipment)];
    prop_oneof![
        1 => Just(Spec::Place),
        2 => Just(Spec::Cancel),
        3 => risk.prop_map(Spec::Risk),
        2 => review.prop_map(Spec::Review),
        3 => (prop::bool::weighted(0.8), 1..60_i64)
            .prop_map(|(full, ttl_minutes)| Spec::Reserve { full, ttl_minutes }),
        1 => Just(Spec::ReserveFail),
        3 => prop::bool::weighted(0.8).prop_map(|full| Spec::Allocate { full }),
        1 => release.prop_map(Spec::Release),
        2 => (0..2_usize).prop_map(Spec::Challenge),
        4 => (0..2_usize, prop_oneof![4 => Just(0_i64), 1 => -50..50_i64])
            .prop_map(|(auth, off_by)| Spec::Authorize { auth, off_by }),
        1 => prop::option::of(0..2_usize).prop_map(Spec::Decline),
        3 => mode.prop_map(Spec::Confirm),
        4 => (0..2_usize, 0..3_usize, 0..=120_i64)
            .prop_map(|(auth, capture, percent)| Spec::Capture { auth, capture, percent }),
        1 => (0..2_usize).prop_map(Spec::Void),
        1 => Just(Spec::Expire),
        3 => (0..3 * 24 * 60_i64).prop_map(Spec::Tick),
    ]
}

/// A random but valid priced order: 1–4 lines, order discounts, shipping; priced by the same
/// function placement uses, so its totals are whatever placement would compute.
fn arb_place_order() -> impl Strategy<Value = PlaceOrder> {
    let line = (1..20_u32, 0..50_000_i64, 0..=100_i64, 0..5_000_i64);
    (
        prop::collection::vec(line, 1..4),
        0..2_000_i64,
        0..3_000_i64,
        0..500_i64,
    )
        .prop_filter_map(
            "discounts exceed the order",
            |(lines, discount, ship, ship_tax)| {
                let lines: Vec<OrderLine> = lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, (quantity, unit, discount_percent, tax))| {
                        let gross = i64::from(quantity) * unit;
                        let discount = gross * discount_percent / 100;
                        let sku = format!("SKU-{i}");
                        OrderLine {
                            line_no: i as u32 + 1,
                            sku: Sku::parse(&sku).expect("valid sku"),
                            name: sku,
                            quantity: Quantity::parse(i64::from(quantity)).expect("valid quantity"),
                            unit_price: usd(unit),
                            discount: usd(discount),
                            tax: usd(tax),
                            total: usd(gross - discount + tax),
                        }
                    })
                    .collect();
                let discounts = vec![Discount {
                    code: "PROMO".into(),
                    amount: usd(discount),
                }];
                let shipping = Shipping {
                    method: "standard".into(),
                    price: usd(ship),
                    tax: usd(ship_tax),
                };
                let totals = totals(&lines, &discounts, &shipping, usd_currency())
                    .ok()
                    .filter(|t| t.grand_total.minor >= 0)?;
                let template = placed_event(OrderId::new_v7(), card());
                Some(PlaceOrder {
                    channel: template.channel,
                    channel_order_ref: template.channel_order_ref,
                    currency: template.currency,
                    customer: template.customer,
                    lines,
                    discounts,
                    shipping_address: template.shipping_address,
                    billing_address: None,
                    shipping,
                    totals,
                    payment: template.payment,
                    risk_context: None,
                    pickup_location: None,
                    pickup_store: None,
                })
            },
        )
}

/// The outcomes of a successful checkout, in order; mixed into the random specs so that
/// sequences also reach confirmation and capture.
fn happy_path(capture_mode: CaptureMode) -> Vec<Spec> {
    vec![
        Spec::Risk(RiskDecision::Accept),
        Spec::Reserve {
            full: true,
            ttl_minutes: 59,
        },
        Spec::Authorize { auth: 0, off_by: 0 },
        Spec::Allocate { full: true },
        Spec::Confirm(capture_mode),
        Spec::Capture {
            auth: 0,
            capture: 0,
            percent: 50,
        },
        Spec::Capture {
            auth: 0,
            capture: 1,
            percent: 50,
        },
    ]
}

/// Random specs, with the happy path's steps inserted (in order) at random places if `happy`.
fn arb_specs() -> impl Strategy<Value = Vec<Spec>> {
    (
        prop::collection::vec(arb_spec(), 0..40),
        prop::bool::weighted(0.6),
        prop::collection::vec(0..40_usize, 7),
        prop_oneof![Just(CaptureMode::Immediate), Just(CaptureMode::OnShipment)],
    )
        .prop_map(|(mut specs, happy, mut slots, mode)| {
            if happy {
                slots.sort_unstable();
                for (i, (slot, step)) in slots.into_iter().zip(happy_path(mode)).enumerate() {
                    specs.insert((slot + i).min(specs.len()), step);
                }
            }
            specs
        })
}

/// Turns a spec into a command for the order as it is now.
fn resolve(
    spec: &Spec,
    order_id: OrderId,
    place: &PlaceOrder,
    order: &Order,
    now: DateTime<Utc>,
) -> Option<OrderCommand> {
    let grand = place.totals.grand_total;
    let full: Vec<_> = place
        .lines
        .iter()
        .map(|l| reserved_line(l.line_no, l.sku.as_str(), l.quantity.get()))
        .collect();
    let reserved_now = order
        .state()
        .and_then(|s| s.reserved())
        .map(|r| r.lines.clone())
        .unwrap_or_else(|| full.clone());
    Some(match spec {
        Spec::Tick(_) => return None,
        Spec::Place => OrderCommand::Place {
            order_id,
            order: Box::new(place.clone()),
        },
        Spec::Cancel => OrderCommand::Cancel {
            order_id,
            cancellation_id: uuid::Uuid::from_u128(0xCA9CE1),
            cancel: CancelOrder {
                reason: CancelReason::CustomerRequest,
                note: None,
            },
        },
        Spec::Risk(decision) => OrderCommand::RecordRisk {
            decision: *decision,
            score: 10,
            reasons: vec![],
        },
        Spec::Review(decision) => OrderCommand::ResolveReview {
            decision: *decision,
            reviewer: "agent".into(),
            note: None,
        },
        Spec::Reserve {
            full: true,
            ttl_minutes,
        } => OrderCommand::RecordReservation {
            lines: full,
            backordered: vec![],
            expires_at: now + Duration::minutes(*ttl_minutes),
        },
        Spec::Reserve {
            full: false,
            ttl_minutes,
        } => OrderCommand::RecordReservation {
            lines: full.into_iter().skip(1).collect(),
            backordered: vec![],
            expires_at: now + Duration::minutes(*ttl_minutes),
        },
        Spec::ReserveFail => OrderCommand::RecordReservationFailure {
            shortages: vec![Shortage {
                line_no: 1,
                sku: place.lines[0].sku.clone(),
                requested: place.lines[0].quantity.get(),
                available: 0,
            }],
        },
        Spec::Allocate { full: true } => OrderCommand::RecordAllocation {
            lines: reserved_now,
        },
        Spec::Allocate { full: false } => OrderCommand::RecordAllocation {
            lines: reserved_now.into_iter().skip(1).collect(),
        },
        Spec::Release(reason) => OrderCommand::RecordRelease { reason: *reason },
        Spec::Challenge(auth) => OrderCommand::RecordChallenge {
            authorization_id: AUTH_IDS[*auth].into(),
            challenge_url: "https://pay.example/3ds".into(),
            expires_at: now + Duration::minutes(10),
        },
        Spec::Authorize { auth, off_by } => OrderCommand::RecordAuthorization {
            authorization_id: AUTH_IDS[*auth].into(),
            amount: Money::new(grand.minor + off_by, grand.currency),
            three_ds: false,
            expires_at: now + Duration::days(7),
        },
        Spec::Decline(auth) => OrderCommand::RecordDecline {
            authorization_id: auth.map(|a| AUTH_IDS[a].to_owned()),
            code: "card_declined".into(),
            message: "declined".into(),
        },
        Spec::Confirm(capture_mode) => OrderCommand::Confirm {
            capture_mode: *capture_mode,
        },
        Spec::Capture {
            auth,
            capture,
            percent,
        } => OrderCommand::RecordCapture {
            authorization_id: AUTH_IDS[*auth].into(),
            capture_id: CAPTURE_IDS[*capture].into(),
            amount: Money::new(grand.minor * percent / 100, grand.currency),
        },
        Spec::Void(auth) => OrderCommand::RecordVoid {
            authorization_id: AUTH_IDS[*auth].into(),
            reason: "test".into(),
        },
        Spec::Expire => OrderCommand::ExpireAuthorization,
    })
}

/// Facts after cancellation may only close what is still held.
/// After a cancellation only facts may still be recorded: compensations (release, void, expiry,
/// a failed challenge) and holds a racing flow step took (stock, an authorization, a challenge),
/// which the flow then compensates. Never a confirmation or a capture.
fn allowed_after_cancellation(event: &OrderEvent) -> bool {
    matches!(
        event,
        OrderEvent::InventoryReserved(_)
            | OrderEvent::PaymentAuthorized(_)
            | OrderEvent::PaymentChallengeRequired(_)
            | OrderEvent::InventoryReleased(_)
            | OrderEvent::PaymentVoided(_)
            | OrderEvent::PaymentAuthorizationExpired(_)
            | OrderEvent::PaymentDeclined(_)
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn random_command_sequences_keep_the_invariants(
        place in arb_place_order(),
        specs in arb_specs(),
        place_first in prop::bool::weighted(0.9),
    ) {
        let order_id = OrderId::new_v7();
        let mut order = Order::default();
        let mut now = t0();
        let mut history: Vec<OrderEvent> = Vec::new();
        let mut cancelled = false;
        let mut captured = false;
        let specs = if place_first {
            std::iter::once(Spec::Place).chain(specs).collect()
        } else {
            specs
        };
        for spec in &specs {
            if let Spec::Tick(minutes) = spec {
                now += Duration::minutes(*minutes);
                continue;
            }
            let Some(command) = resolve(spec, order_id, &place, &order, now) else { continue };
            let Ok(events) = order.handle(&command, now) else { continue };
            for event in &events {
                if cancelled {
                    prop_assert!(allowed_after_cancellation(event), "{event:?} after cancellation");
                }
                if captured && matches!(event, OrderEvent::OrderCancelled(_)) {
                    // Past capture a cancel withdraws every unit first; only unshipped orders.
                    prop_assert!(
                        matches!(events.first(), Some(OrderEvent::OrderLinesCancelled(_))),
                        "cancelled after capture without withdrawing the units"
                    );
                    prop_assert!(!order.state().is_some_and(|s| s.has_shipped()), "cancelled after a shipment");
                }
                order.apply(event);
                history.push(event.clone());
            }
            prop_assert_eq!(order.version(), history.len() as i64);
            // A recorded outcome recorded again changes nothing.
            if !events.is_empty() && !matches!(command, OrderCommand::Place { .. } | OrderCommand::Cancel { .. }) {
                prop_assert_eq!(order.handle(&command, now), Ok(vec![]), "{:?} twice", command);
            }
            let Some(state) = order.state() else { continue };
            cancelled |= state.is_cancelled();
            captured |= !state.captures().is_empty();
            if cancelled {
                prop_assert_eq!(state.status(), OrderStatus::Cancelled);
            }
            let authorized = state.authorization().map_or(0, |a| a.amount.minor);
            prop_assert!(state.captured_total().minor <= authorized,
                "captured {} of {}", state.captured_total(), authorized);
            if captured {
                prop_assert!(state.confirmed().is_some(), "captured without confirmation");
            }
            if let Some(a) = state.authorization() {
                prop_assert_eq!(a.amount, state.totals().grand_total);
            }
            let t = state.totals();
            let lines = &state.placed().lines;
            let subtotal: i64 = lines.iter().map(|l| i64::from(l.quantity.get()) * l.unit_price.minor).sum();
            prop_assert_eq!(t.subtotal.minor, subtotal);
            prop_assert_eq!(t.grand_total.minor,
                t.subtotal.minor - t.discount_total.minor + t.tax_total.minor + t.shipping_total.minor);
        }
        prop_assert_eq!(Order::from_events(&history), order);
    }
}
