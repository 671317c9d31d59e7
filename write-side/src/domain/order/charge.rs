//! Charging the card again after the order's own capture (an exchange for a dearer item): a
//! charge is requested (in the order's currency, more than zero, only once something was
//! captured and only for an order paid by card), then the gateway's answer is recorded:
//! captured (money in the ledger, refundable like any capture) or declined.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waybill_schemas::events::{
    ExtraChargeCaptured, ExtraChargeDeclined, ExtraChargeRequested, PaymentMethod, ReturnResolution,
};
use waybill_schemas::{Money, OrderEvent};

use super::{OrderError, OrderState};
use crate::domain::ledger::{Charge, ChargeStatus};

impl OrderState {
    /// Decides an extra charge of `amount`. Repeating a request with the same id is a no-op.
    pub(super) fn request_charge(
        &self,
        charge_id: Uuid,
        amount: Money,
        reason: &str,
        requested_by: &str,
        return_id: &Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if let Some(existing) = self.ledger.charge(charge_id) {
            if existing.amount == amount {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format!("charge {charge_id} of {}", existing.amount),
                format!("a charge of {amount} under the same id"),
            ));
        }
        let order_id = self.order_id();
        if !matches!(self.placed().payment, Some(PaymentMethod::Card { .. })) {
            return Err(OrderError::NoCardOnFile { order_id });
        }
        if amount.currency != self.placed().currency {
            return Err(OrderError::CurrencyMismatch {
                order_id,
                expected: self.placed().currency,
                found: amount.currency,
            });
        }
        if amount.minor <= 0 {
            return Err(OrderError::NonPositiveAmount { order_id, amount });
        }
        if self.ledger.captured_minor() == 0 {
            return Err(OrderError::NothingCapturedYet {
                order_id,
                action: "charge the card again",
            });
        }
        if let Some(return_id) = return_id {
            self.ensure_exchange(return_id)?;
        }
        Ok(vec![OrderEvent::ExtraChargeRequested(
            ExtraChargeRequested {
                order_id,
                charge_id,
                amount,
                reason: reason.to_owned(),
                requested_by: requested_by.to_owned(),
                return_id: return_id.clone(),
                requested_at: now,
            },
        )])
    }

    /// The gateway authorized and captured the charge.
    pub(super) fn record_charge(
        &self,
        charge_id: Uuid,
        authorization_id: &str,
        capture_id: &str,
        amount: Money,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let charge = self.known_charge(charge_id)?;
        match &charge.status {
            ChargeStatus::Captured { capture_id: c } if c == capture_id => return Ok(vec![]),
            ChargeStatus::Pending => {}
            other => {
                return Err(self.conflict(
                    format!("charge {charge_id} as {other:?}"),
                    format!("capture {capture_id}"),
                ))
            }
        }
        if amount != charge.amount {
            return Err(OrderError::AmountMismatch {
                order_id: self.order_id(),
                expected: charge.amount,
                found: amount,
            });
        }
        Ok(vec![OrderEvent::ExtraChargeCaptured(ExtraChargeCaptured {
            order_id: self.order_id(),
            charge_id,
            authorization_id: authorization_id.to_owned(),
            capture_id: capture_id.to_owned(),
            amount,
            captured_at: now,
        })])
    }

    /// The card refused the charge: nothing moved.
    pub(super) fn record_charge_decline(
        &self,
        charge_id: Uuid,
        code: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let charge = self.known_charge(charge_id)?;
        match &charge.status {
            ChargeStatus::Declined { .. } => Ok(vec![]),
            ChargeStatus::Captured { capture_id } => Err(self.conflict(
                format!("charge {charge_id} as captured ({capture_id})"),
                format!("a decline ({code})"),
            )),
            ChargeStatus::Pending => {
                Ok(vec![OrderEvent::ExtraChargeDeclined(ExtraChargeDeclined {
                    order_id: self.order_id(),
                    charge_id,
                    code: code.to_owned(),
                    message: message.to_owned(),
                    declined_at: now,
                })])
            }
        }
    }

    /// A charge names a return only to pay that exchange's price difference: the return must
    /// be one of the order's and resolved (or to be resolved) as an exchange.
    fn ensure_exchange(&self, return_id: &str) -> Result<(), OrderError> {
        let order_id = self.order_id();
        let Some(r) = self.fulfillment.returns.get(return_id) else {
            return Err(OrderError::UnknownReference {
                order_id,
                field: "return_id",
                detail: format!("order {order_id} has no return {return_id}"),
            });
        };
        if !matches!(r.requested.resolution, ReturnResolution::Exchange { .. }) {
            return Err(OrderError::UnknownReference {
                order_id,
                field: "return_id",
                detail: format!(
                    "return {return_id} is resolved as {}, not an exchange; a charge pays only an exchange's price difference",
                    r.requested.resolution.kind()
                ),
            });
        }
        Ok(())
    }

    fn known_charge(&self, charge_id: Uuid) -> Result<&Charge, OrderError> {
        self.ledger
            .charge(charge_id)
            .ok_or(OrderError::UnknownCharge {
                order_id: self.order_id(),
                charge_id,
            })
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;
    use waybill_schemas::{Currency, Money};

    use super::super::fixtures::*;
    use super::super::refund::tests::captured;
    use super::super::{OrderCommand, OrderError};

    fn request(charge_id: Uuid, amount: Money) -> OrderCommand {
        OrderCommand::RequestCharge {
            charge_id,
            amount,
            reason: "exchange for a dearer size".into(),
            requested_by: "agent-1".into(),
            return_id: None,
        }
    }

    #[test]
    fn a_captured_extra_charge_is_refundable_money() {
        let mut order = captured();
        let id = Uuid::now_v7();
        assert_eq!(
            order.record(&request(id, usd(1200)), t0()).unwrap().len(),
            1
        );
        assert!(order
            .record(&request(id, usd(1200)), t0())
            .unwrap()
            .is_empty());
        assert!(matches!(
            order.handle(&request(id, usd(1300)), t0()),
            Err(OrderError::ConflictingOutcome { .. })
        ));
        let ledger = order.state().unwrap().ledger();
        assert_eq!(ledger.pending_charges().count(), 1);
        assert_eq!(
            ledger.refundable_minor(),
            grand_total().minor,
            "pending is not money yet"
        );
        let recorded = OrderCommand::RecordCharge {
            charge_id: id,
            authorization_id: "auth_2".into(),
            capture_id: "cap_2".into(),
            amount: usd(1200),
        };
        assert_eq!(order.record(&recorded, t0()).unwrap().len(), 1);
        assert!(order.record(&recorded, t0()).unwrap().is_empty());
        let ledger = order.state().unwrap().ledger();
        assert_eq!(ledger.charged_minor(), 1200);
        assert_eq!(ledger.captured_minor(), grand_total().minor + 1200);
        assert_eq!(ledger.refundable_minor(), grand_total().minor + 1200);
        assert_eq!(ledger.capture_for_refund(usd(1200)), Some("cap_1"));
        // A refund of the extra charge's capture is accepted.
        let refund = OrderCommand::RequestRefund {
            refund_id: Uuid::now_v7(),
            amount: usd(grand_total().minor + 1200),
            kind: waybill_schemas::events::RefundKind::Return,
            reason: "all back".into(),
            requested_by: "agent-1".into(),
        };
        assert_eq!(order.record(&refund, t0()).unwrap().len(), 1);
        let decline = OrderCommand::RecordChargeDecline {
            charge_id: id,
            code: "card_declined".into(),
            message: "no".into(),
        };
        assert!(matches!(
            order.handle(&decline, t0()),
            Err(OrderError::ConflictingOutcome { .. })
        ));
    }

    #[test]
    fn a_declined_charge_moves_no_money() {
        let mut order = captured();
        let id = Uuid::now_v7();
        order.record(&request(id, usd(500)), t0()).unwrap();
        let decline = OrderCommand::RecordChargeDecline {
            charge_id: id,
            code: "insufficient_funds".into(),
            message: "no".into(),
        };
        assert_eq!(order.record(&decline, t0()).unwrap().len(), 1);
        assert!(order.record(&decline, t0()).unwrap().is_empty());
        let ledger = order.state().unwrap().ledger();
        assert_eq!(ledger.pending_charges().count(), 0);
        assert_eq!(ledger.captured_minor(), grand_total().minor);
    }

    #[test]
    fn charges_in_another_currency_of_nothing_before_a_capture_or_without_a_card_are_refused() {
        let order = captured();
        let eur = Money::new(100, Currency::parse("EUR").unwrap());
        assert!(matches!(
            order.handle(&request(Uuid::now_v7(), eur), t0()),
            Err(OrderError::CurrencyMismatch { .. })
        ));
        assert!(matches!(
            order.handle(&request(Uuid::now_v7(), usd(0)), t0()),
            Err(OrderError::NonPositiveAmount { .. })
        ));
        assert!(matches!(
            ready_to_confirm().handle(&request(Uuid::now_v7(), usd(100)), t0()),
            Err(OrderError::NothingCapturedYet { .. })
        ));
        assert!(matches!(
            placed_order(prepaid()).handle(&request(Uuid::now_v7(), usd(100)), t0()),
            Err(OrderError::NoCardOnFile { .. })
        ));
        let unknown = OrderCommand::RecordCharge {
            charge_id: Uuid::now_v7(),
            authorization_id: "a".into(),
            capture_id: "c".into(),
            amount: usd(1),
        };
        assert!(matches!(
            order.handle(&unknown, t0()),
            Err(OrderError::UnknownCharge { .. })
        ));
    }

    #[test]
    fn a_charge_naming_a_return_the_order_does_not_have_is_refused_naming_return_id() {
        let order = captured();
        let order_id = order.state().unwrap().order_id();
        let mut charge = request(Uuid::from_u128(7), usd(500));
        if let OrderCommand::RequestCharge { return_id, .. } = &mut charge {
            *return_id = Some(format!("{order_id}-R1"));
        }
        match order.handle(&charge, t0()) {
            Err(OrderError::UnknownReference { field, detail, .. }) => {
                assert_eq!(field, "return_id");
                assert!(
                    detail.contains(&format!("no return {order_id}-R1")),
                    "{detail}"
                );
            }
            other => panic!("expected a refusal naming return_id, got {other:?}"),
        }
    }
}
