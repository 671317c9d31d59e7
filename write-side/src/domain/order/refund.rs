//! Giving money back: a refund is requested (checked against the ledger: never more than is
//! still refundable), then the gateway's answer is recorded: refunded from a capture, or failed.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waybill_schemas::events::{PaymentRefunded, RefundFailed, RefundKind, RefundRequested};
use waybill_schemas::{Money, OrderEvent};

use super::{OrderError, OrderState};
use crate::domain::ledger::RefundStatus;

impl OrderState {
    /// Decides a refund of `amount`. Repeating a request with the same id is a no-op.
    pub(super) fn request_refund(
        &self,
        refund_id: Uuid,
        amount: Money,
        kind: RefundKind,
        reason: &str,
        requested_by: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if let Some(existing) = self.ledger.refund(refund_id) {
            if existing.amount == amount {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format!("refund {refund_id} of {}", existing.amount),
                format!("a refund of {amount} under the same id"),
            ));
        }
        self.ledger
            .check_refund(amount)
            .map_err(|source| OrderError::RefundRefused {
                order_id: self.order_id(),
                source,
            })?;
        Ok(vec![OrderEvent::RefundRequested(RefundRequested {
            order_id: self.order_id(),
            refund_id,
            amount,
            kind,
            reason: reason.to_owned(),
            requested_by: requested_by.to_owned(),
            requested_at: now,
        })])
    }

    /// The gateway refunded `amount` from `capture_id`.
    pub(super) fn record_refund(
        &self,
        refund_id: Uuid,
        capture_id: &str,
        gateway_refund_id: &str,
        amount: Money,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let refund = self.known_refund(refund_id)?;
        match &refund.status {
            RefundStatus::Refunded {
                gateway_refund_id: recorded,
                ..
            } if recorded == gateway_refund_id => return Ok(vec![]),
            RefundStatus::Pending => {}
            other => {
                return Err(self.conflict(
                    format!("refund {refund_id} as {other:?}"),
                    format!("gateway refund {gateway_refund_id}"),
                ))
            }
        }
        if !self.ledger.has_capture(capture_id) {
            return Err(OrderError::UnknownCapture {
                order_id: self.order_id(),
                capture_id: capture_id.to_owned(),
            });
        }
        Ok(vec![OrderEvent::PaymentRefunded(PaymentRefunded {
            order_id: self.order_id(),
            refund_id,
            capture_id: capture_id.to_owned(),
            gateway_refund_id: gateway_refund_id.to_owned(),
            amount,
            refunded_at: now,
        })])
    }

    /// The gateway refused the refund: nothing moved.
    pub(super) fn record_refund_failure(
        &self,
        refund_id: Uuid,
        code: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let refund = self.known_refund(refund_id)?;
        match &refund.status {
            RefundStatus::Failed { .. } => Ok(vec![]),
            RefundStatus::Refunded { .. } => Err(self.conflict(
                format!("refund {refund_id} as refunded"),
                format!("a failure ({code})"),
            )),
            RefundStatus::Pending => Ok(vec![OrderEvent::RefundFailed(RefundFailed {
                order_id: self.order_id(),
                refund_id,
                code: code.to_owned(),
                message: message.to_owned(),
                failed_at: now,
            })]),
        }
    }

    fn known_refund(&self, refund_id: Uuid) -> Result<&crate::domain::ledger::Refund, OrderError> {
        self.ledger
            .refund(refund_id)
            .ok_or(OrderError::UnknownRefund {
                order_id: self.order_id(),
                refund_id,
            })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use uuid::Uuid;
    use waybill_schemas::events::{CaptureMode, RefundKind};

    use super::super::fixtures::*;
    use super::super::{Order, OrderCommand, OrderError};
    use crate::domain::ledger::LedgerError;

    /// `ready_to_confirm`, confirmed and captured in full as `cap_1`.
    pub(crate) fn captured() -> Order {
        with(
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
        )
    }

    fn request(refund_id: Uuid, minor: i64) -> OrderCommand {
        OrderCommand::RequestRefund {
            refund_id,
            amount: usd(minor),
            kind: RefundKind::Return,
            reason: "returned".into(),
            requested_by: "agent-1".into(),
        }
    }

    #[test]
    fn a_refund_is_requested_then_recorded_once() {
        let mut order = captured();
        let id = Uuid::now_v7();
        assert_eq!(order.record(&request(id, 500), t0()).unwrap().len(), 1);
        assert!(
            order.record(&request(id, 500), t0()).unwrap().is_empty(),
            "same id again"
        );
        let recorded = OrderCommand::RecordRefund {
            refund_id: id,
            capture_id: "cap_1".into(),
            gateway_refund_id: "re_1".into(),
            amount: usd(500),
        };
        assert_eq!(order.record(&recorded, t0()).unwrap().len(), 1);
        assert!(order.record(&recorded, t0()).unwrap().is_empty());
        let failure = OrderCommand::RecordRefundFailure {
            refund_id: id,
            code: "x".into(),
            message: "x".into(),
        };
        assert!(matches!(
            order.record(&failure, t0()),
            Err(OrderError::ConflictingOutcome { .. })
        ));
        let ledger = order.state().unwrap().ledger();
        assert_eq!(ledger.refunded_minor(), 500);
        assert_eq!(ledger.refundable_minor(), grand_total().minor - 500);
    }

    #[test]
    fn refunds_above_what_was_captured_or_before_a_capture_are_refused() {
        let order = captured();
        let above = order.handle(&request(Uuid::now_v7(), grand_total().minor + 1), t0());
        assert!(matches!(
            above,
            Err(OrderError::RefundRefused {
                source: LedgerError::AboveRefundable { .. },
                ..
            })
        ));
        let not_captured = ready_to_confirm().handle(&request(Uuid::now_v7(), 1), t0());
        assert!(matches!(
            not_captured,
            Err(OrderError::RefundRefused {
                source: LedgerError::NothingCaptured,
                ..
            })
        ));
    }

    #[test]
    fn a_lost_chargeback_leaves_nothing_to_refund() {
        let mut order = captured();
        let total = grand_total();
        let opened = OrderCommand::RecordChargebackOpened {
            dispute_id: "dp_1".into(),
            capture_id: "cap_1".into(),
            amount: total,
            reason_code: "fraudulent".into(),
            evidence_due_by: t0(),
        };
        order.record(&opened, t0()).unwrap();
        assert!(order.record(&opened, t0()).unwrap().is_empty());
        let evidence = OrderCommand::RecordChargebackEvidence {
            dispute_id: "dp_1".into(),
            evidence_id: Uuid::now_v7(),
            text: "delivered".into(),
            submitted_by: "finance".into(),
        };
        assert_eq!(order.record(&evidence, t0()).unwrap().len(), 1);
        let lost = OrderCommand::RecordChargebackDecision {
            dispute_id: "dp_1".into(),
            won: false,
            amount: total,
        };
        order.record(&lost, t0()).unwrap();
        assert!(order.record(&lost, t0()).unwrap().is_empty());
        let won = OrderCommand::RecordChargebackDecision {
            dispute_id: "dp_1".into(),
            won: true,
            amount: total,
        };
        assert!(matches!(
            order.record(&won, t0()),
            Err(OrderError::ConflictingOutcome { .. })
        ));
        assert!(matches!(
            order.record(&evidence_for("dp_1"), t0()),
            Err(OrderError::DisputeClosed { .. })
        ));
        let ledger = order.state().unwrap().ledger();
        assert_eq!(ledger.net_minor(), 0);
        assert_eq!(ledger.refundable_minor(), 0);
        assert!(matches!(
            order.record(&evidence_for("dp_9"), t0()),
            Err(OrderError::UnknownDispute { .. })
        ));
    }

    fn evidence_for(dispute_id: &str) -> OrderCommand {
        OrderCommand::RecordChargebackEvidence {
            dispute_id: dispute_id.into(),
            evidence_id: Uuid::now_v7(),
            text: "late".into(),
            submitted_by: "finance".into(),
        }
    }

    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Act {
        Request(i64),
        Answer { succeeds: bool },
        Dispute { lost: bool },
    }

    fn arb_act() -> impl Strategy<Value = Act> {
        prop_oneof![
            4 => (-100i64..4_000).prop_map(Act::Request),
            4 => any::<bool>().prop_map(|succeeds| Act::Answer { succeeds }),
            1 => any::<bool>().prop_map(|lost| Act::Dispute { lost }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Through the aggregate's commands, in any order: refunds never exceed the capture,
        /// `net = captured − refunded − lost`, and every refused request is refused by the
        /// ledger with a typed error.
        #[test]
        fn no_command_sequence_refunds_more_than_was_captured(acts in prop::collection::vec(arb_act(), 1..30)) {
            let mut order = captured();
            let mut disputes = 0;
            for act in acts {
                let state = order.state().unwrap().clone();
                let command = match act {
                    Act::Request(minor) => request(Uuid::now_v7(), minor),
                    Act::Answer { succeeds } => {
                        let Some(pending) = state.ledger().pending_refunds().next().cloned() else { continue };
                        if succeeds {
                            OrderCommand::RecordRefund {
                                refund_id: pending.refund_id,
                                capture_id: "cap_1".into(),
                                gateway_refund_id: format!("re_{}", pending.refund_id),
                                amount: pending.amount,
                            }
                        } else {
                            OrderCommand::RecordRefundFailure {
                                refund_id: pending.refund_id,
                                code: "declined".into(),
                                message: "no".into(),
                            }
                        }
                    }
                    Act::Dispute { lost } => {
                        let left = state.ledger().refundable_minor();
                        if left == 0 { continue }
                        disputes += 1;
                        let dispute_id = format!("dp_{disputes}");
                        order.record(&OrderCommand::RecordChargebackOpened {
                            dispute_id: dispute_id.clone(),
                            capture_id: "cap_1".into(),
                            amount: usd(left),
                            reason_code: "fraudulent".into(),
                            evidence_due_by: t0(),
                        }, t0()).unwrap();
                        OrderCommand::RecordChargebackDecision { dispute_id, won: !lost, amount: usd(left) }
                    }
                };
                match order.record(&command, t0()) {
                    Ok(_) => {}
                    Err(OrderError::RefundRefused { .. }) => {
                        let is_request = matches!(command, OrderCommand::RequestRefund { .. });
                        prop_assert!(is_request, "only a request is refused by the ledger");
                    }
                    Err(other) => return Err(TestCaseError::fail(format!("{command:?}: {other}"))),
                }
                let ledger = order.state().unwrap().ledger();
                prop_assert!(ledger.refunded_minor() + ledger.pending_refund_minor() <= ledger.captured_minor());
                prop_assert_eq!(
                    ledger.net_minor(),
                    ledger.captured_minor() - ledger.refunded_minor() - ledger.chargebacks_lost_minor()
                );
                prop_assert!(ledger.net_minor() >= 0);
            }
        }
    }
}
