//! Card disputes in the sandbox (SIMULATED): an operator opens one on a capture (as a card
//! holder's bank would), Waybill sends evidence, and the operator decides it. Each change returns
//! the webhook event it causes: `dispute.opened`, `dispute.won`, `dispute.lost`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use waybill_schemas::{Money, OrderId};

use super::state::{new_id, Ledger, Refusal};
use crate::payment::webhook::{DisputeDecided, DisputeOpened, GatewayEventKind};

/// How long the merchant has to send evidence.
pub const EVIDENCE_WINDOW_DAYS: i64 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    Open,
    Won,
    Lost,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct DisputeRecord {
    pub(super) id: String,
    pub(super) capture_id: String,
    pub(super) order_id: OrderId,
    pub(super) amount: Money,
    pub(super) reason: String,
    pub(super) evidence_due_by: DateTime<Utc>,
    pub(super) evidence: Vec<String>,
    pub(super) status: DisputeStatus,
    pub(super) opened_at: DateTime<Utc>,
    pub(super) decided_at: Option<DateTime<Utc>>,
}

/// A dispute as the sandbox answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dispute {
    pub id: String,
    pub capture_id: String,
    pub order_id: OrderId,
    pub amount: Money,
    pub reason: String,
    pub evidence_due_by: DateTime<Utc>,
    pub evidence_count: usize,
    pub status: DisputeStatus,
    pub opened_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl DisputeRecord {
    fn view(&self) -> Dispute {
        Dispute {
            id: self.id.clone(),
            capture_id: self.capture_id.clone(),
            order_id: self.order_id,
            amount: self.amount,
            reason: self.reason.clone(),
            evidence_due_by: self.evidence_due_by,
            evidence_count: self.evidence.len(),
            status: self.status,
            opened_at: self.opened_at,
            decided_at: self.decided_at,
        }
    }

    fn decided(&self) -> DisputeDecided {
        DisputeDecided {
            dispute_id: self.id.clone(),
            capture_id: self.capture_id.clone(),
            order_id: self.order_id,
            amount: self.amount,
        }
    }
}

impl Ledger {
    /// Opens a dispute over what is left of a capture (captured minus refunded); one per capture.
    pub fn open_dispute(
        &mut self,
        capture_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(Dispute, GatewayEventKind), Refusal> {
        let capture = self
            .captures
            .get(capture_id)
            .ok_or_else(|| Refusal::NotFound {
                what: "capture",
                id: capture_id.to_owned(),
            })?;
        if self.disputes.values().any(|d| d.capture_id == capture_id) {
            return Err(Refusal::refused(
                "already_disputed",
                format!("capture {capture_id} is already disputed"),
            ));
        }
        let left = capture.amount.minor - capture.refunded.minor;
        if left <= 0 {
            return Err(Refusal::refused(
                "nothing_to_dispute",
                format!("capture {capture_id} was refunded in full"),
            ));
        }
        let record = DisputeRecord {
            id: new_id("dp"),
            capture_id: capture_id.to_owned(),
            order_id: capture.order_id,
            amount: Money::new(left, capture.amount.currency),
            reason: reason.to_owned(),
            evidence_due_by: now + Duration::days(EVIDENCE_WINDOW_DAYS),
            evidence: Vec::new(),
            status: DisputeStatus::Open,
            opened_at: now,
            decided_at: None,
        };
        let event = GatewayEventKind::DisputeOpened(DisputeOpened {
            dispute_id: record.id.clone(),
            capture_id: record.capture_id.clone(),
            order_id: record.order_id,
            amount: record.amount,
            reason: record.reason.clone(),
            evidence_due_by: record.evidence_due_by,
        });
        let view = record.view();
        self.disputes.insert(record.id.clone(), record);
        Ok((view, event))
    }

    /// Takes evidence for an open dispute before its deadline.
    pub fn submit_evidence(
        &mut self,
        dispute_id: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<Dispute, Refusal> {
        let dispute = self.dispute_mut(dispute_id)?;
        if dispute.status != DisputeStatus::Open {
            return Err(Refusal::refused(
                "dispute_closed",
                format!("dispute {dispute_id} is already decided"),
            ));
        }
        if now > dispute.evidence_due_by {
            return Err(Refusal::refused(
                "evidence_too_late",
                format!("evidence was due by {}", dispute.evidence_due_by),
            ));
        }
        dispute.evidence.push(text.to_owned());
        Ok(dispute.view())
    }

    /// Decides a dispute. The same decision again answers the same without a new event.
    pub fn decide_dispute(
        &mut self,
        dispute_id: &str,
        won: bool,
        now: DateTime<Utc>,
    ) -> Result<(Dispute, Option<GatewayEventKind>), Refusal> {
        let dispute = self.dispute_mut(dispute_id)?;
        let outcome = if won {
            DisputeStatus::Won
        } else {
            DisputeStatus::Lost
        };
        match dispute.status {
            DisputeStatus::Open => {}
            status if status == outcome => return Ok((dispute.view(), None)),
            _ => {
                return Err(Refusal::refused(
                    "dispute_closed",
                    format!("dispute {dispute_id} was decided the other way"),
                ))
            }
        }
        dispute.status = outcome;
        dispute.decided_at = Some(now);
        let event = if won {
            GatewayEventKind::DisputeWon(dispute.decided())
        } else {
            GatewayEventKind::DisputeLost(dispute.decided())
        };
        Ok((dispute.view(), Some(event)))
    }

    fn dispute_mut(&mut self, dispute_id: &str) -> Result<&mut DisputeRecord, Refusal> {
        self.disputes
            .get_mut(dispute_id)
            .ok_or_else(|| Refusal::NotFound {
                what: "dispute",
                id: dispute_id.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use waybill_schemas::Currency;

    use super::*;
    use crate::payment::sandbox::state::Policy;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn captured(ledger: &mut Ledger, minor: i64) -> String {
        let usd = Money::new(minor, Currency::parse("USD").unwrap());
        let auth = ledger
            .authorize(OrderId::new_v7(), usd, "tok_4242424242424242", t0())
            .unwrap();
        ledger.capture(&auth.id, usd, t0()).unwrap().0.id
    }

    fn ledger() -> Ledger {
        Ledger::new(Policy {
            public_url: "http://gw.test".into(),
            auth_validity: Duration::days(7),
            challenge_validity: Duration::minutes(10),
        })
    }

    #[test]
    fn a_dispute_covers_what_was_not_refunded_and_is_decided_once() {
        let mut ledger = ledger();
        let capture = captured(&mut ledger, 5000);
        let usd = Currency::parse("USD").unwrap();
        ledger
            .refund(&capture, Money::new(1000, usd), t0())
            .unwrap();
        let (dispute, event) = ledger.open_dispute(&capture, "fraudulent", t0()).unwrap();
        assert_eq!(dispute.amount.minor, 4000);
        assert!(matches!(event, GatewayEventKind::DisputeOpened(_)));
        assert!(ledger.open_dispute(&capture, "fraudulent", t0()).is_err());
        ledger
            .submit_evidence(&dispute.id, "signed POD", t0())
            .unwrap();
        let (lost, event) = ledger.decide_dispute(&dispute.id, false, t0()).unwrap();
        assert_eq!(lost.status, DisputeStatus::Lost);
        assert!(matches!(event, Some(GatewayEventKind::DisputeLost(_))));
        let (_, again) = ledger.decide_dispute(&dispute.id, false, t0()).unwrap();
        assert_eq!(again, None, "the same decision sends nothing new");
        assert!(ledger.decide_dispute(&dispute.id, true, t0()).is_err());
        assert!(ledger.submit_evidence(&dispute.id, "late", t0()).is_err());
    }
}
