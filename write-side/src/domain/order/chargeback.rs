//! Card disputes, as the gateway reports them: opened on a capture, evidence submitted while
//! open, then won (nothing moves) or lost (the amount leaves the ledger). Every record is
//! idempotent: the same fact twice is `Ok(vec![])`.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waybill_schemas::events::{
    ChargebackEvidenceSubmitted, ChargebackLost, ChargebackOpened, ChargebackWon,
};
use waybill_schemas::{Money, OrderEvent};

use super::{OrderError, OrderState};
use crate::domain::ledger::{Dispute, DisputeStatus};

impl OrderState {
    pub(super) fn record_chargeback_opened(
        &self,
        dispute_id: &str,
        capture_id: &str,
        amount: Money,
        reason_code: &str,
        evidence_due_by: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if self.ledger.dispute(dispute_id).is_some() {
            return Ok(vec![]);
        }
        if !self.captures.iter().any(|c| c.capture_id == capture_id) {
            return Err(OrderError::UnknownCapture {
                order_id: self.order_id(),
                capture_id: capture_id.to_owned(),
            });
        }
        self.ensure_currency(amount)?;
        Ok(vec![OrderEvent::ChargebackOpened(ChargebackOpened {
            order_id: self.order_id(),
            dispute_id: dispute_id.to_owned(),
            capture_id: capture_id.to_owned(),
            amount,
            reason_code: reason_code.to_owned(),
            evidence_due_by,
            opened_at: now,
        })])
    }

    pub(super) fn record_chargeback_evidence(
        &self,
        dispute_id: &str,
        evidence_id: Uuid,
        text: &str,
        submitted_by: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let dispute = self.known_dispute(dispute_id)?;
        if dispute.evidence.contains(&evidence_id) {
            return Ok(vec![]);
        }
        if dispute.status != DisputeStatus::Open {
            return Err(OrderError::DisputeClosed {
                order_id: self.order_id(),
                dispute_id: dispute_id.to_owned(),
                status: dispute.status.as_str(),
                action: "take evidence",
            });
        }
        Ok(vec![OrderEvent::ChargebackEvidenceSubmitted(
            ChargebackEvidenceSubmitted {
                order_id: self.order_id(),
                dispute_id: dispute_id.to_owned(),
                evidence_id,
                text: text.to_owned(),
                submitted_by: submitted_by.to_owned(),
                submitted_at: now,
            },
        )])
    }

    pub(super) fn record_chargeback_decision(
        &self,
        dispute_id: &str,
        won: bool,
        amount: Money,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let dispute = self.known_dispute(dispute_id)?;
        let decided = if won {
            DisputeStatus::Won
        } else {
            DisputeStatus::Lost
        };
        match dispute.status {
            DisputeStatus::Open => {}
            status if status == decided => return Ok(vec![]),
            status => {
                return Err(self.conflict(
                    format!("dispute {dispute_id} as {}", status.as_str()),
                    format!("a decision {}", decided.as_str()),
                ))
            }
        }
        let order_id = self.order_id();
        let dispute_id = dispute_id.to_owned();
        Ok(vec![if won {
            OrderEvent::ChargebackWon(ChargebackWon {
                order_id,
                dispute_id,
                decided_at: now,
            })
        } else {
            self.ensure_currency(amount)?;
            OrderEvent::ChargebackLost(ChargebackLost {
                order_id,
                dispute_id,
                amount,
                decided_at: now,
            })
        }])
    }

    fn known_dispute(&self, dispute_id: &str) -> Result<&Dispute, OrderError> {
        self.ledger
            .dispute(dispute_id)
            .ok_or_else(|| OrderError::UnknownDispute {
                order_id: self.order_id(),
                dispute_id: dispute_id.to_owned(),
            })
    }
}
