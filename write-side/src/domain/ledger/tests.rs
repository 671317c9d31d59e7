use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;
use waybill_schemas::events::{
    ChargebackLost, ChargebackOpened, ChargebackWon, PaymentCaptured, PaymentRefunded,
    RefundFailed, RefundKind, RefundRequested,
};
use waybill_schemas::{Currency, Money, OrderEvent, OrderId};

use super::*;

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::parse("USD").unwrap())
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn captured(order_id: OrderId, capture_id: &str, amount: Money) -> OrderEvent {
    OrderEvent::PaymentCaptured(PaymentCaptured {
        order_id,
        authorization_id: "auth_1".into(),
        capture_id: capture_id.into(),
        amount,
        captured_at: at(),
    })
}

fn requested(order_id: OrderId, refund_id: Uuid, amount: Money) -> OrderEvent {
    OrderEvent::RefundRequested(RefundRequested {
        order_id,
        refund_id,
        amount,
        kind: RefundKind::Goodwill,
        reason: "test".into(),
        requested_by: "agent".into(),
        requested_at: at(),
    })
}

fn refunded(order_id: OrderId, refund_id: Uuid, capture_id: &str, amount: Money) -> OrderEvent {
    OrderEvent::PaymentRefunded(PaymentRefunded {
        order_id,
        refund_id,
        capture_id: capture_id.into(),
        gateway_refund_id: format!("re_{refund_id}"),
        amount,
        refunded_at: at(),
    })
}

#[test]
fn partial_refunds_add_up_and_the_rest_stays_refundable() {
    let order = OrderId::new_v7();
    let mut ledger = Ledger::default();
    ledger.apply(&captured(order, "cap_1", usd(5000)));
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    ledger.apply(&requested(order, first, usd(1000)));
    assert_eq!(
        ledger.refundable_minor(),
        4000,
        "a pending refund is not refundable twice"
    );
    ledger.apply(&refunded(order, first, "cap_1", usd(1000)));
    ledger.apply(&requested(order, second, usd(1500)));
    ledger.apply(&refunded(order, second, "cap_1", usd(1500)));
    assert_eq!(ledger.refunded_minor(), 2500);
    assert_eq!(ledger.net_minor(), 2500);
    assert_eq!(ledger.refundable(), Some(usd(2500)));
    assert_eq!(
        ledger.check_refund(usd(2501)),
        Err(LedgerError::AboveRefundable {
            requested: usd(2501),
            refundable: usd(2500)
        })
    );
    assert_eq!(ledger.check_refund(usd(2500)), Ok(()));
}

#[test]
fn refunds_are_refused_before_a_capture_in_another_currency_and_below_one_cent() {
    let order = OrderId::new_v7();
    let mut ledger = Ledger::default();
    assert_eq!(
        ledger.check_refund(usd(1)),
        Err(LedgerError::NothingCaptured)
    );
    ledger.apply(&captured(order, "cap_1", usd(100)));
    let eur = Money::new(10, Currency::parse("EUR").unwrap());
    assert!(matches!(
        ledger.check_refund(eur),
        Err(LedgerError::CurrencyMismatch { .. })
    ));
    assert_eq!(
        ledger.check_refund(usd(0)),
        Err(LedgerError::NonPositiveRefund(usd(0)))
    );
    assert_eq!(
        ledger.check_refund(usd(-5)),
        Err(LedgerError::NonPositiveRefund(usd(-5)))
    );
}

#[test]
fn a_failed_refund_makes_its_amount_refundable_again() {
    let order = OrderId::new_v7();
    let mut ledger = Ledger::default();
    ledger.apply(&captured(order, "cap_1", usd(900)));
    let id = Uuid::now_v7();
    ledger.apply(&requested(order, id, usd(900)));
    assert_eq!(ledger.refundable_minor(), 0);
    ledger.apply(&OrderEvent::RefundFailed(RefundFailed {
        order_id: order,
        refund_id: id,
        code: "refund_failed".into(),
        message: "closed account".into(),
        failed_at: at(),
    }));
    assert_eq!(ledger.refundable_minor(), 900);
    assert_eq!(ledger.pending_refunds().count(), 0);
}

#[test]
fn a_lost_chargeback_reverses_the_money_and_a_won_one_does_not() {
    let order = OrderId::new_v7();
    let mut ledger = Ledger::default();
    ledger.apply(&captured(order, "cap_1", usd(3000)));
    ledger.apply(&OrderEvent::ChargebackOpened(ChargebackOpened {
        order_id: order,
        dispute_id: "dp_1".into(),
        capture_id: "cap_1".into(),
        amount: usd(3000),
        reason_code: "fraudulent".into(),
        evidence_due_by: at(),
        opened_at: at(),
    }));
    assert_eq!(ledger.disputed_minor(), 3000);
    assert_eq!(
        ledger.refundable_minor(),
        0,
        "disputed money cannot be refunded as well"
    );
    let mut won = ledger.clone();
    won.apply(&OrderEvent::ChargebackWon(ChargebackWon {
        order_id: order,
        dispute_id: "dp_1".into(),
        decided_at: at(),
    }));
    assert_eq!(won.net_minor(), 3000);
    assert_eq!(won.refundable_minor(), 3000);
    ledger.apply(&OrderEvent::ChargebackLost(ChargebackLost {
        order_id: order,
        dispute_id: "dp_1".into(),
        amount: usd(3000),
        decided_at: at(),
    }));
    assert_eq!(ledger.chargebacks_lost_minor(), 3000);
    assert_eq!(ledger.net_minor(), 0);
    assert_eq!(
        ledger.dispute("dp_1").map(|d| d.status),
        Some(DisputeStatus::Lost)
    );
    assert_eq!(ledger.refundable_minor(), 0);
}

/// One step of a random money history, as a gateway and agents could produce it.
#[derive(Debug, Clone)]
enum Step {
    Capture(i64),
    /// Ask for a refund of this many minor units (may be refused).
    Refund(i64),
    /// The gateway answers the oldest pending refund.
    Answer {
        succeeds: bool,
    },
    /// A card holder disputes this share (percent) of what is still refundable.
    Dispute(i64),
    /// The oldest open dispute is decided.
    Decide {
        lost: bool,
    },
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1i64..100_000).prop_map(Step::Capture),
        (-500i64..60_000).prop_map(Step::Refund),
        any::<bool>().prop_map(|succeeds| Step::Answer { succeeds }),
        (1i64..=100).prop_map(Step::Dispute),
        any::<bool>().prop_map(|lost| Step::Decide { lost }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Whatever the order of captures, refunds, gateway answers and disputes: refunds never
    /// exceed captures, net is always captured − refunded − lost and equals the sum of the
    /// entries, and a refund above what is refundable is refused with the amount that is.
    #[test]
    fn money_invariants_hold_for_any_history(steps in prop::collection::vec(arb_step(), 1..40)) {
        let order = OrderId::new_v7();
        let mut ledger = Ledger::default();
        let mut disputes = 0;
        for step in steps {
            let event = match step {
                Step::Capture(minor) => {
                    Some(captured(order, &format!("cap_{}", ledger.captures.len()), usd(minor)))
                }
                Step::Refund(minor) => {
                    let before = ledger.refundable_minor();
                    match ledger.check_refund(usd(minor)) {
                        Ok(()) => {
                            prop_assert!(minor > 0 && minor <= before);
                            Some(requested(order, Uuid::now_v7(), usd(minor)))
                        }
                        Err(LedgerError::AboveRefundable { refundable, .. }) => {
                            prop_assert!(minor > before);
                            prop_assert_eq!(refundable.minor, before);
                            None
                        }
                        Err(LedgerError::NonPositiveRefund(_)) => {
                            prop_assert!(minor <= 0);
                            None
                        }
                        Err(LedgerError::NothingCaptured) => {
                            prop_assert_eq!(ledger.captured_minor(), 0);
                            None
                        }
                        Err(other) => return Err(TestCaseError::fail(other.to_string())),
                    }
                }
                Step::Answer { succeeds } => ledger.pending_refunds().next().cloned().map(|r| {
                    if succeeds {
                        let capture = ledger.capture_for_refund(r.amount).unwrap_or("cap_0").to_owned();
                        refunded(order, r.refund_id, &capture, r.amount)
                    } else {
                        OrderEvent::RefundFailed(RefundFailed {
                            order_id: order,
                            refund_id: r.refund_id,
                            code: "refund_failed".into(),
                            message: "no".into(),
                            failed_at: at(),
                        })
                    }
                }),
                Step::Dispute(percent) => {
                    let amount = ledger.refundable_minor() * percent / 100;
                    (amount > 0).then(|| {
                        disputes += 1;
                        OrderEvent::ChargebackOpened(ChargebackOpened {
                            order_id: order,
                            dispute_id: format!("dp_{disputes}"),
                            capture_id: "cap_0".into(),
                            amount: usd(amount),
                            reason_code: "fraudulent".into(),
                            evidence_due_by: at(),
                            opened_at: at(),
                        })
                    })
                }
                Step::Decide { lost } => ledger
                    .disputes()
                    .find(|d| d.status == DisputeStatus::Open)
                    .cloned()
                    .map(|d| {
                        if lost {
                            OrderEvent::ChargebackLost(ChargebackLost {
                                order_id: order,
                                dispute_id: d.dispute_id,
                                amount: d.amount,
                                decided_at: at(),
                            })
                        } else {
                            OrderEvent::ChargebackWon(ChargebackWon {
                                order_id: order,
                                dispute_id: d.dispute_id,
                                decided_at: at(),
                            })
                        }
                    }),
            };
            if let Some(event) = event {
                ledger.apply(&event);
            }
            let captured = ledger.captured_minor();
            let refunded = ledger.refunded_minor();
            let lost = ledger.chargebacks_lost_minor();
            prop_assert!(refunded <= captured, "refunded {} > captured {}", refunded, captured);
            prop_assert!(
                refunded + ledger.pending_refund_minor() + ledger.disputed_minor() + lost <= captured
            );
            prop_assert_eq!(ledger.net_minor(), captured - refunded - lost);
            prop_assert_eq!(
                ledger.entries().iter().map(|e| e.amount.minor).sum::<i64>(),
                ledger.net_minor()
            );
            prop_assert!(ledger.refundable_minor() >= 0);
        }
    }
}
