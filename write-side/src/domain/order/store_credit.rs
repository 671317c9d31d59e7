//! Giving money back as store credit on the customer's account instead of to the card. The
//! ledger counts it like a refund, so refunds and credit together never exceed what was
//! captured. Only an order placed with a customer account can be credited.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waybill_schemas::events::StoreCreditIssued;
use waybill_schemas::{Money, OrderEvent};

use super::{OrderError, OrderState};

impl OrderState {
    /// Decides a store credit of `amount`. Repeating it with the same id is a no-op.
    pub(super) fn issue_store_credit(
        &self,
        credit_id: Uuid,
        amount: Money,
        reason: &str,
        issued_by: &str,
        return_id: &Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if let Some(existing) = self.ledger.has_credit(credit_id) {
            if existing == amount {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format!("store credit {credit_id} of {existing}"),
                format!("a credit of {amount} under the same id"),
            ));
        }
        let order_id = self.order_id();
        let Some(customer_id) = self.placed().customer.customer_id.clone() else {
            return Err(OrderError::NoCustomerAccount { order_id });
        };
        self.ledger
            .check_refund(amount)
            .map_err(|source| OrderError::RefundRefused { order_id, source })?;
        Ok(vec![OrderEvent::StoreCreditIssued(StoreCreditIssued {
            order_id,
            credit_id,
            customer_id,
            amount,
            reason: reason.to_owned(),
            issued_by: issued_by.to_owned(),
            return_id: return_id.clone(),
            issued_at: now,
        })])
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;
    use waybill_schemas::events::RefundKind;
    use waybill_schemas::Money;

    use super::super::fixtures::*;
    use super::super::refund::tests::captured;
    use super::super::{OrderCommand, OrderError};
    use crate::domain::ledger::LedgerError;

    fn credit(credit_id: Uuid, amount: Money) -> OrderCommand {
        OrderCommand::IssueStoreCredit {
            credit_id,
            amount,
            reason: "goodwill".into(),
            issued_by: "agent-1".into(),
            return_id: None,
        }
    }

    fn refund(minor: i64) -> OrderCommand {
        OrderCommand::RequestRefund {
            refund_id: Uuid::now_v7(),
            amount: usd(minor),
            kind: RefundKind::Goodwill,
            reason: "late".into(),
            requested_by: "agent-1".into(),
        }
    }

    #[test]
    fn store_credit_reduces_what_the_card_can_still_get_back() {
        let mut order = captured();
        let id = Uuid::now_v7();
        assert_eq!(order.record(&credit(id, usd(1000)), t0()).unwrap().len(), 1);
        assert!(order
            .record(&credit(id, usd(1000)), t0())
            .unwrap()
            .is_empty());
        let ledger = order.state().unwrap().ledger();
        assert_eq!(ledger.store_credit_minor(), 1000);
        assert_eq!(ledger.refundable_minor(), grand_total().minor - 1000);
        assert_eq!(ledger.net_minor(), grand_total().minor - 1000);
        assert!(matches!(
            order.handle(&refund(grand_total().minor - 999), t0()),
            Err(OrderError::RefundRefused {
                source: LedgerError::AboveRefundable { .. },
                ..
            })
        ));
        assert_eq!(
            order
                .record(&refund(grand_total().minor - 1000), t0())
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            order.handle(&credit(Uuid::now_v7(), usd(1)), t0()),
            Err(OrderError::RefundRefused {
                source: LedgerError::AboveRefundable { .. },
                ..
            })
        ));
    }

    #[test]
    fn guest_orders_and_uncaptured_orders_get_no_credit() {
        assert!(matches!(
            ready_to_confirm().handle(&credit(Uuid::now_v7(), usd(1)), t0()),
            Err(OrderError::RefundRefused {
                source: LedgerError::NothingCaptured,
                ..
            })
        ));
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any mix of card refunds, store credits and extra charges: what was given back (card
        /// refunds, pending or done, plus credit) never exceeds what was captured.
        #[test]
        fn refunds_and_credit_never_exceed_what_was_captured(
            acts in prop::collection::vec((0u8..3, 1i64..3_000), 1..25)
        ) {
            let mut order = captured();
            let mut charges = 0;
            for (kind, minor) in acts {
                let command = match kind {
                    0 => credit(Uuid::now_v7(), usd(minor)),
                    1 => refund(minor),
                    _ => {
                        charges += 1;
                        let charge_id = Uuid::now_v7();
                        order.record(&OrderCommand::RequestCharge {
                            charge_id,
                            amount: usd(minor),
                            reason: "exchange".into(),
                            requested_by: "t".into(),
                            return_id: None,
                        }, t0()).unwrap();
                        OrderCommand::RecordCharge {
                            charge_id,
                            authorization_id: format!("auth_x{charges}"),
                            capture_id: format!("cap_x{charges}"),
                            amount: usd(minor),
                        }
                    }
                };
                match order.record(&command, t0()) {
                    Ok(_) | Err(OrderError::RefundRefused { .. }) => {}
                    Err(other) => return Err(TestCaseError::fail(other.to_string())),
                }
                let ledger = order.state().unwrap().ledger();
                prop_assert!(
                    ledger.refunded_minor() + ledger.pending_refund_minor() + ledger.store_credit_minor()
                        <= ledger.captured_minor()
                );
                prop_assert_eq!(
                    ledger.net_minor(),
                    ledger.captured_minor() - ledger.refunded_minor() - ledger.store_credit_minor()
                );
            }
        }
    }
}
