//! What a return costs and refunds: the policy's fees on the requested units, and after
//! inspection the refund for the accepted units (their value minus their fees, never below
//! zero, never above what the ledger still allows).

use waybill_schemas::events::{ReturnFee, ReturnFeeKind, ReturnLine};
use waybill_schemas::{Currency, Money};

use super::policy::ReturnsPolicy;
use super::state::Return;
use crate::domain::ledger::Ledger;

/// The fees the policy sets on `lines`: a restocking fee per line whose reason has one, and
/// the return shipping fee unless a line's reason is the seller's fault.
pub fn expected_fees(
    lines: &[ReturnLine],
    policy: &ReturnsPolicy,
    currency: Currency,
) -> Vec<ReturnFee> {
    let mut fees = Vec::new();
    let seller_fault = lines.iter().any(|l| policy.is_seller_fault(l.reason));
    if !seller_fault && policy.return_shipping_fee_minor > 0 {
        fees.push(ReturnFee {
            kind: ReturnFeeKind::ReturnShipping,
            line_no: None,
            amount: Money::new(policy.return_shipping_fee_minor, currency),
        });
    }
    for l in lines {
        let bps = i64::from(policy.restocking_bps(l.reason));
        let amount = l.paid.minor * bps / 10_000;
        if amount > 0 {
            fees.push(ReturnFee {
                kind: ReturnFeeKind::Restocking,
                line_no: Some(l.line_no),
                amount: Money::new(amount, currency),
            });
        }
    }
    fees
}

/// The refund of an inspected return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundDecision {
    pub accepted_value: Money,
    pub fees: Vec<ReturnFee>,
    pub amount: Money,
}

/// Value of the accepted units (each line's paid amount in proportion to its accepted units),
/// minus the fees on them (a restocking fee in the same proportion; the shipping fee once if
/// anything was accepted), floored at zero and capped at what the ledger still refunds.
pub fn refund_decision(r: &Return, ledger: &Ledger) -> RefundDecision {
    let currency = r.requested.expected_refund.currency;
    let accepted = |line_no: u32| {
        r.inspected
            .iter()
            .flat_map(|i| i.lines.iter())
            .find(|l| l.line_no == line_no)
            .map_or(0, |l| i64::from(l.accepted))
    };
    let share = |amount: i64, line: &ReturnLine| {
        let q = i64::from(line.quantity.get().max(1));
        amount * accepted(line.line_no) / q
    };
    let accepted_value: i64 = r
        .requested
        .lines
        .iter()
        .map(|l| share(l.paid.minor, l))
        .sum();
    let any_accepted = r.requested.lines.iter().any(|l| accepted(l.line_no) > 0);
    let fees: Vec<ReturnFee> = r
        .requested
        .fees
        .iter()
        .filter_map(|f| {
            let amount = match (f.kind, f.line_no) {
                (ReturnFeeKind::ReturnShipping, _) if any_accepted => f.amount.minor,
                (ReturnFeeKind::Restocking, Some(no)) => r
                    .requested
                    .lines
                    .iter()
                    .find(|l| l.line_no == no)
                    .map_or(0, |l| share(f.amount.minor, l)),
                _ => 0,
            };
            (amount > 0).then(|| ReturnFee {
                amount: Money::new(amount, currency),
                ..f.clone()
            })
        })
        .collect();
    let fee_total: i64 = fees.iter().map(|f| f.amount.minor).sum();
    let refundable = ledger.refundable_minor().max(0);
    let amount = (accepted_value - fee_total).max(0).min(refundable);
    RefundDecision {
        accepted_value: Money::new(accepted_value, currency),
        fees,
        amount: Money::new(amount, currency),
    }
}
