//! Recording the fraud/risk rules' decision and an agent's review of a held order.

use chrono::{DateTime, Utc};
use waybill_schemas::events::{
    ReviewDecision, RiskAssessed, RiskDecision, RiskReason, RiskReviewResolved,
};
use waybill_schemas::OrderEvent;

use super::{OrderError, OrderState};

impl OrderState {
    /// The same decision recorded again is a no-op (the score may differ on a rerun; the
    /// decision is what counts); a different decision is a conflict.
    pub(super) fn record_risk(
        &self,
        decision: RiskDecision,
        score: u32,
        reasons: &[RiskReason],
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if let Some(recorded) = &self.assessment {
            if recorded.decision == decision {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format_args!("risk decision {}", recorded.decision.as_str()),
                format_args!("risk decision {}", decision.as_str()),
            ));
        }
        self.ensure_not_cancelled(action)?;
        Ok(vec![OrderEvent::RiskAssessed(RiskAssessed {
            order_id: self.order_id(),
            decision,
            score,
            reasons: reasons.to_vec(),
            assessed_at: now,
        })])
    }

    /// Only an order held for review can be resolved, once.
    pub(super) fn resolve_review(
        &self,
        decision: ReviewDecision,
        reviewer: &str,
        note: &Option<String>,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if let Some(recorded) = &self.review {
            if recorded.decision == decision {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format_args!(
                    "review decision {} by {}",
                    recorded.decision.as_str(),
                    recorded.reviewer
                ),
                format_args!("review decision {}", decision.as_str()),
            ));
        }
        self.ensure_reviewable(action)?;
        Ok(vec![OrderEvent::RiskReviewResolved(RiskReviewResolved {
            order_id: self.order_id(),
            decision,
            reviewer: reviewer.to_owned(),
            note: note.clone(),
            resolved_at: now,
        })])
    }
}

#[cfg(test)]
mod tests {
    use waybill_schemas::events::{CancelReason, ReviewDecision, RiskDecision, RiskReason};

    use super::super::fixtures::*;
    use super::super::*;

    fn risk(decision: RiskDecision) -> OrderCommand {
        OrderCommand::RecordRisk {
            decision,
            score: 70,
            reasons: vec![RiskReason {
                rule: "amount_threshold".into(),
                points: 70,
                detail: "over 1,000.00 USD".into(),
            }],
        }
    }

    fn review(decision: ReviewDecision) -> OrderCommand {
        OrderCommand::ResolveReview {
            decision,
            reviewer: "agent-7".into(),
            note: Some("called the customer".into()),
        }
    }

    #[test]
    fn a_risk_decision_is_recorded_once_and_repeats_are_no_ops() {
        let mut order = placed_order(card());
        assert_eq!(
            order.state().map(OrderState::risk),
            Some(RiskState::NotAssessed)
        );
        order
            .record(&risk(RiskDecision::Accept), t0())
            .expect("recorded");
        let state = order.state().expect("placed");
        assert_eq!(state.risk(), RiskState::Accepted);
        assert_eq!(state.risk_assessment().map(|a| a.score), Some(70));
        assert_eq!(order.handle(&risk(RiskDecision::Accept), t0()), Ok(vec![]));
        let err = order
            .handle(&risk(RiskDecision::Reject), t0())
            .expect_err("conflict");
        assert!(
            err.to_string()
                .contains("already recorded risk decision accept; risk decision reject conflicts"),
            "{err}"
        );
    }

    #[test]
    fn a_rejection_by_the_rules_is_rejected_risk() {
        let order = with(placed_order(card()), &[risk(RiskDecision::Reject)], t0());
        let risk = order.state().map(OrderState::risk);
        assert_eq!(risk, Some(RiskState::Rejected));
        assert!(risk.is_some_and(RiskState::is_rejected));
    }

    #[test]
    fn risk_is_not_assessed_on_a_cancelled_order() {
        let mut order = placed_order(card());
        let id = order.state().expect("placed").order_id();
        order
            .record(&cancel_command(id, CancelReason::CustomerRequest), t0())
            .expect("cancelled");
        assert_eq!(
            order.handle(&risk(RiskDecision::Accept), t0()),
            Err(OrderError::Cancelled {
                order_id: id,
                action: "record a risk assessment"
            })
        );
    }

    #[test]
    fn a_held_order_is_approved_or_rejected_once() {
        let held = with(placed_order(card()), &[risk(RiskDecision::Review)], t0());
        let approved = with(held.clone(), &[review(ReviewDecision::Approve)], t0());
        let state = approved.state().expect("placed");
        assert_eq!(state.risk(), RiskState::Approved);
        assert_eq!(state.review().map(|r| r.reviewer.as_str()), Some("agent-7"));
        assert_eq!(
            approved.handle(&review(ReviewDecision::Approve), t0()),
            Ok(vec![])
        );
        let err = approved
            .handle(&review(ReviewDecision::Reject), t0())
            .expect_err("second decision");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );

        let rejected = with(held, &[review(ReviewDecision::Reject)], t0());
        assert_eq!(
            rejected.state().map(OrderState::risk),
            Some(RiskState::ReviewRejected)
        );
    }

    #[test]
    fn only_a_held_order_can_be_reviewed() {
        let accepted = with(placed_order(card()), &[risk(RiskDecision::Accept)], t0());
        let err = accepted
            .handle(&review(ReviewDecision::Approve), t0())
            .expect_err("not held");
        assert!(
            matches!(
                err,
                OrderError::BlockedByRisk {
                    risk: RiskState::Accepted,
                    ..
                }
            ),
            "{err}"
        );
        let mut held = with(placed_order(card()), &[risk(RiskDecision::Review)], t0());
        let id = held.state().expect("placed").order_id();
        held.record(&cancel_command(id, CancelReason::Timeout), t0())
            .expect("cancelled");
        let err = held
            .handle(&review(ReviewDecision::Approve), t0())
            .expect_err("cancelled");
        assert!(matches!(err, OrderError::Cancelled { .. }), "{err}");
    }
}
