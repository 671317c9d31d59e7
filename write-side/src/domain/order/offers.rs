//! What may still be asked of an order, read from the rules its decisions apply: a screen
//! offers an action only when the command would not be refused for the order's state. (The
//! command can still be refused for what is typed into it, e.g. more than is refundable.)
//!
//! Each answer is a rule the decision itself calls: [`OrderState::ensure_reviewable`] in
//! `resolve_review`, the ledger's refundable amount in `check_refund` (refunds and store
//! credit), [`OrderState::cancellable_units`] in `cancel_lines`, and a dispute's status in
//! `record_chargeback_evidence`.

use std::collections::BTreeMap;

use waybill_schemas::Money;

use super::{OrderError, OrderState, RiskState};
use crate::domain::ledger::DisputeStatus;

/// The actions an order's state admits now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offers {
    /// Held for review: it can be approved or rejected.
    pub review: bool,
    /// What can still go back to the original payment (`None`: nothing can).
    pub refund: Option<Money>,
    /// What can still go to the customer's account as store credit (`None`: nothing can, or
    /// the order has no customer account).
    pub store_credit: Option<Money>,
    /// Units of each line that can still be cancelled, for the lines that have some.
    pub cancel_lines: BTreeMap<u32, u32>,
    /// Disputes still open for evidence.
    pub evidence: Vec<String>,
}

impl OrderState {
    /// Whether the order can be approved or rejected after review now.
    pub(super) fn ensure_reviewable(&self, action: &'static str) -> Result<(), OrderError> {
        self.ensure_not_cancelled(action)?;
        let risk = self.risk();
        if risk != RiskState::InReview {
            return Err(OrderError::BlockedByRisk {
                order_id: self.order_id(),
                action,
                risk,
            });
        }
        Ok(())
    }

    /// Units of each line that can still be cancelled: none on a cancelled, unconfirmed or
    /// closed order; otherwise those neither shipped, collected, packed nor cancelled.
    pub fn cancellable_units(
        &self,
        action: &'static str,
    ) -> Result<BTreeMap<u32, u32>, OrderError> {
        self.ensure_cancellable_stage(action)?;
        let mut units = BTreeMap::new();
        for (_, line) in self.fulfillment.cancellable() {
            *units.entry(line.line_no).or_insert(0) += line.quantity.get();
        }
        units.retain(|_, n| *n > 0);
        Ok(units)
    }

    /// What may still be asked of the order (see the module doc).
    pub fn offers(&self) -> Offers {
        let refundable = self.ledger.refundable().filter(|m| m.minor > 0);
        Offers {
            review: self.ensure_reviewable("resolve review").is_ok(),
            refund: refundable,
            store_credit: refundable.filter(|_| self.placed().customer.customer_id.is_some()),
            cancel_lines: self.cancellable_units("cancel lines").unwrap_or_default(),
            evidence: self
                .ledger
                .disputes()
                .filter(|d| d.status == DisputeStatus::Open)
                .map(|d| d.dispute_id.clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use waybill_schemas::events::{CancelReason, RefundKind};

    use super::super::fixtures::*;
    use super::super::refund::tests::captured;
    use super::super::{Order, OrderCommand};
    use super::*;

    fn offers(order: &Order) -> Offers {
        order.state().expect("placed").offers()
    }

    fn refund(minor: i64) -> OrderCommand {
        OrderCommand::RequestRefund {
            refund_id: uuid::Uuid::now_v7(),
            amount: usd(minor),
            kind: RefundKind::Goodwill,
            reason: "goodwill".to_owned(),
            requested_by: "agent".to_owned(),
        }
    }

    #[test]
    fn a_cancelled_order_with_nothing_captured_offers_no_refund_and_no_cancellation() {
        let placed = placed_order(card());
        let order_id = placed.state().expect("placed").order_id();
        let order = with(
            placed,
            &[cancel_command(order_id, CancelReason::CustomerRequest)],
            t0(),
        );
        let offered = offers(&order);
        assert_eq!(offered.refund, None);
        assert_eq!(offered.store_credit, None);
        assert!(offered.cancel_lines.is_empty(), "{offered:?}");
        assert!(!offered.review);
        // And the decisions agree: both commands are refused.
        assert!(order.handle(&refund(1), t0()).is_err());
    }

    #[test]
    fn a_captured_order_offers_its_refundable_amount_and_the_decision_accepts_exactly_that() {
        let order = captured();
        let offered = offers(&order);
        assert_eq!(offered.refund, Some(grand_total()));
        assert!(order.handle(&refund(grand_total().minor), t0()).is_ok());
        assert!(order
            .handle(&refund(grand_total().minor + 1), t0())
            .is_err());
        assert!(!offered.review, "risk was accepted");
    }

    #[test]
    fn a_confirmed_order_offers_every_unit_not_yet_shipped_for_cancellation() {
        let order = captured();
        let state = order.state().expect("placed");
        assert_eq!(offers(&order).cancel_lines, state.remaining_units());
        let before_confirmation = ready_to_confirm();
        assert!(offers(&before_confirmation).cancel_lines.is_empty());
    }
}
