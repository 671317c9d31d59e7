//! An order's money, folded from its events: what was captured (the order's capture and any
//! extra charges), refunded (or is being refunded), given back as store credit, disputed and
//! lost to chargebacks. Pure; the order aggregate keeps one and asks it before it accepts a
//! refund, a store credit or an extra charge.
//!
//! Every money movement becomes a [`LedgerEntry`] (positive = money in, negative = money out),
//! so `net = captured − refunded − store credit − chargebacks lost` is both the sum of the
//! entries and the totals, and the property tests below check they never disagree. Store
//! credit is money given back like a refund, so card refunds and credit together never exceed
//! what was captured. Fees are not in the order's
//! ledger: the gateway tells us about them only in its settlement report, whose lines carry the
//! order id (see `SettlementReportImported`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waybill_schemas::events::RefundKind;
use waybill_schemas::{Currency, Money, OrderEvent};

/// What moved money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// The order's capture or a captured extra charge.
    Capture,
    Refund,
    StoreCredit,
    ChargebackLost,
}

/// One money movement of the order, signed from the merchant's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub kind: EntryKind,
    /// Capture id, gateway refund id or dispute id.
    pub reference: String,
    pub amount: Money,
    pub at: DateTime<Utc>,
}

/// Where a refund stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundStatus {
    /// Requested; the gateway has not answered yet.
    Pending,
    Refunded {
        capture_id: String,
        gateway_refund_id: String,
    },
    Failed {
        code: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub refund_id: Uuid,
    pub amount: Money,
    pub kind: RefundKind,
    pub status: RefundStatus,
}

/// Where a dispute stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeStatus {
    Open,
    Won,
    Lost,
}

impl DisputeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    pub dispute_id: String,
    pub capture_id: String,
    pub amount: Money,
    pub evidence_due_by: DateTime<Utc>,
    pub evidence: Vec<Uuid>,
    pub status: DisputeStatus,
}

/// Where an extra charge stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeStatus {
    /// Requested; the gateway has not answered yet.
    Pending,
    Captured {
        capture_id: String,
    },
    Declined {
        code: String,
    },
}

/// Money asked of the card after the order's own capture (an exchange's price difference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub charge_id: Uuid,
    pub amount: Money,
    pub return_id: Option<String>,
    pub status: ChargeStatus,
}

/// Why a refund cannot be requested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("a refund must be more than zero, got {0}")]
    NonPositiveRefund(Money),
    #[error("the order was paid in {expected}; a refund in {found} is not possible")]
    CurrencyMismatch { expected: Currency, found: Currency },
    #[error("nothing has been captured, so nothing can be refunded")]
    NothingCaptured,
    #[error("a refund of {requested} is more than the {refundable} still refundable")]
    AboveRefundable { requested: Money, refundable: Money },
}

/// The fold of an order's money events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    currency: Option<Currency>,
    /// Capture id → amount captured, in capture order.
    captures: Vec<(String, Money)>,
    refunds: BTreeMap<Uuid, Refund>,
    charges: BTreeMap<Uuid, Charge>,
    /// Store credit ids issued, with their amounts.
    credits: BTreeMap<Uuid, Money>,
    disputes: BTreeMap<String, Dispute>,
    entries: Vec<LedgerEntry>,
}

impl Ledger {
    /// Folds one event; events that move no money are ignored. Never fails: events are facts.
    pub fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::PaymentCaptured(e) => {
                self.currency.get_or_insert(e.amount.currency);
                self.captures.push((e.capture_id.clone(), e.amount));
                self.entry(
                    EntryKind::Capture,
                    &e.capture_id,
                    e.amount.minor,
                    e.amount,
                    e.captured_at,
                );
            }
            OrderEvent::RefundRequested(e) => {
                self.refunds.insert(
                    e.refund_id,
                    Refund {
                        refund_id: e.refund_id,
                        amount: e.amount,
                        kind: e.kind,
                        status: RefundStatus::Pending,
                    },
                );
            }
            OrderEvent::PaymentRefunded(e) => {
                let refund = self.refunds.entry(e.refund_id).or_insert(Refund {
                    refund_id: e.refund_id,
                    amount: e.amount,
                    kind: RefundKind::Goodwill,
                    status: RefundStatus::Pending,
                });
                refund.amount = e.amount;
                refund.status = RefundStatus::Refunded {
                    capture_id: e.capture_id.clone(),
                    gateway_refund_id: e.gateway_refund_id.clone(),
                };
                self.entry(
                    EntryKind::Refund,
                    &e.gateway_refund_id,
                    -e.amount.minor,
                    e.amount,
                    e.refunded_at,
                );
            }
            OrderEvent::RefundFailed(e) => {
                if let Some(refund) = self.refunds.get_mut(&e.refund_id) {
                    refund.status = RefundStatus::Failed {
                        code: e.code.clone(),
                    };
                }
            }
            OrderEvent::ChargebackOpened(e) => {
                self.disputes.insert(
                    e.dispute_id.clone(),
                    Dispute {
                        dispute_id: e.dispute_id.clone(),
                        capture_id: e.capture_id.clone(),
                        amount: e.amount,
                        evidence_due_by: e.evidence_due_by,
                        evidence: Vec::new(),
                        status: DisputeStatus::Open,
                    },
                );
            }
            OrderEvent::ChargebackEvidenceSubmitted(e) => {
                if let Some(dispute) = self.disputes.get_mut(&e.dispute_id) {
                    dispute.evidence.push(e.evidence_id);
                }
            }
            OrderEvent::ChargebackWon(e) => {
                if let Some(dispute) = self.disputes.get_mut(&e.dispute_id) {
                    dispute.status = DisputeStatus::Won;
                }
            }
            OrderEvent::ChargebackLost(e) => {
                if let Some(dispute) = self.disputes.get_mut(&e.dispute_id) {
                    dispute.status = DisputeStatus::Lost;
                }
                self.entry(
                    EntryKind::ChargebackLost,
                    &e.dispute_id,
                    -e.amount.minor,
                    e.amount,
                    e.decided_at,
                );
            }
            OrderEvent::ExtraChargeRequested(e) => {
                self.charges.insert(
                    e.charge_id,
                    Charge {
                        charge_id: e.charge_id,
                        amount: e.amount,
                        return_id: e.return_id.clone(),
                        status: ChargeStatus::Pending,
                    },
                );
            }
            OrderEvent::ExtraChargeCaptured(e) => {
                self.currency.get_or_insert(e.amount.currency);
                let charge = self.charges.entry(e.charge_id).or_insert(Charge {
                    charge_id: e.charge_id,
                    amount: e.amount,
                    return_id: None,
                    status: ChargeStatus::Pending,
                });
                charge.amount = e.amount;
                charge.status = ChargeStatus::Captured {
                    capture_id: e.capture_id.clone(),
                };
                self.captures.push((e.capture_id.clone(), e.amount));
                self.entry(
                    EntryKind::Capture,
                    &e.capture_id,
                    e.amount.minor,
                    e.amount,
                    e.captured_at,
                );
            }
            OrderEvent::ExtraChargeDeclined(e) => {
                if let Some(charge) = self.charges.get_mut(&e.charge_id) {
                    charge.status = ChargeStatus::Declined {
                        code: e.code.clone(),
                    };
                }
            }
            // A credit id counts once.
            OrderEvent::StoreCreditIssued(e) if !self.credits.contains_key(&e.credit_id) => {
                self.credits.insert(e.credit_id, e.amount);
                self.entry(
                    EntryKind::StoreCredit,
                    &e.credit_id.to_string(),
                    -e.amount.minor,
                    e.amount,
                    e.issued_at,
                );
            }
            _ => {}
        }
    }

    fn entry(
        &mut self,
        kind: EntryKind,
        reference: &str,
        signed: i64,
        amount: Money,
        at: DateTime<Utc>,
    ) {
        self.entries.push(LedgerEntry {
            kind,
            reference: reference.to_owned(),
            amount: Money::new(signed, amount.currency),
            at,
        });
    }

    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }
    pub fn refund(&self, refund_id: Uuid) -> Option<&Refund> {
        self.refunds.get(&refund_id)
    }
    pub fn refunds(&self) -> impl Iterator<Item = &Refund> {
        self.refunds.values()
    }
    /// Refunds requested and not yet answered by the gateway, oldest id first.
    pub fn pending_refunds(&self) -> impl Iterator<Item = &Refund> {
        self.refunds
            .values()
            .filter(|r| r.status == RefundStatus::Pending)
    }
    pub fn charge(&self, charge_id: Uuid) -> Option<&Charge> {
        self.charges.get(&charge_id)
    }
    pub fn charges(&self) -> impl Iterator<Item = &Charge> {
        self.charges.values()
    }
    /// Extra charges requested and not yet answered by the gateway, oldest id first.
    pub fn pending_charges(&self) -> impl Iterator<Item = &Charge> {
        self.charges
            .values()
            .filter(|c| c.status == ChargeStatus::Pending)
    }
    /// Whether a store credit with this id was issued.
    pub fn has_credit(&self, credit_id: Uuid) -> Option<Money> {
        self.credits.get(&credit_id).copied()
    }
    /// Whether `capture_id` is one of the order's captures (its own or an extra charge's).
    pub fn has_capture(&self, capture_id: &str) -> bool {
        self.captures.iter().any(|(c, _)| c == capture_id)
    }
    /// The order's currency, once money moved.
    pub fn currency(&self) -> Option<Currency> {
        self.currency
    }
    pub fn dispute(&self, dispute_id: &str) -> Option<&Dispute> {
        self.disputes.get(dispute_id)
    }
    pub fn disputes(&self) -> impl Iterator<Item = &Dispute> {
        self.disputes.values()
    }

    fn sum(&self, kind: EntryKind) -> i64 {
        self.entries
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.amount.minor.abs())
            .sum()
    }
    fn money(&self, minor: i64) -> Option<Money> {
        self.currency.map(|c| Money::new(minor, c))
    }

    pub fn captured_minor(&self) -> i64 {
        self.sum(EntryKind::Capture)
    }
    pub fn refunded_minor(&self) -> i64 {
        self.sum(EntryKind::Refund)
    }
    pub fn store_credit_minor(&self) -> i64 {
        self.sum(EntryKind::StoreCredit)
    }
    /// Captured by extra charges (included in [`Ledger::captured_minor`]).
    pub fn charged_minor(&self) -> i64 {
        self.charges
            .values()
            .filter(|c| matches!(c.status, ChargeStatus::Captured { .. }))
            .map(|c| c.amount.minor)
            .sum()
    }
    pub fn chargebacks_lost_minor(&self) -> i64 {
        self.sum(EntryKind::ChargebackLost)
    }
    /// Asked of the gateway and not answered yet.
    pub fn pending_refund_minor(&self) -> i64 {
        self.pending_refunds().map(|r| r.amount.minor).sum()
    }
    /// Under an open dispute.
    pub fn disputed_minor(&self) -> i64 {
        self.disputes
            .values()
            .filter(|d| d.status == DisputeStatus::Open)
            .map(|d| d.amount.minor)
            .sum()
    }
    /// captured − refunded − store credit − chargebacks lost.
    pub fn net_minor(&self) -> i64 {
        self.entries.iter().map(|e| e.amount.minor).sum()
    }
    /// What a new refund (to the card or as store credit) may still give back: the captured
    /// money not yet refunded, credited, being refunded, under dispute or lost to a chargeback.
    pub fn refundable_minor(&self) -> i64 {
        (self.net_minor() - self.pending_refund_minor() - self.disputed_minor()).max(0)
    }
    pub fn refundable(&self) -> Option<Money> {
        self.money(self.refundable_minor())
    }

    /// Whether `amount` may be refunded now.
    pub fn check_refund(&self, amount: Money) -> Result<(), LedgerError> {
        let Some(currency) = self.currency else {
            return Err(LedgerError::NothingCaptured);
        };
        if amount.currency != currency {
            return Err(LedgerError::CurrencyMismatch {
                expected: currency,
                found: amount.currency,
            });
        }
        if amount.minor <= 0 {
            return Err(LedgerError::NonPositiveRefund(amount));
        }
        let refundable = self.refundable_minor();
        if amount.minor > refundable {
            return Err(LedgerError::AboveRefundable {
                requested: amount,
                refundable: Money::new(refundable, currency),
            });
        }
        Ok(())
    }

    /// The capture a refund of `amount` is taken from: the first with enough left on it (what
    /// was captured minus what was refunded from it, being refunded is counted once it is).
    pub fn capture_for_refund(&self, amount: Money) -> Option<&str> {
        self.captures
            .iter()
            .find(|(capture_id, captured)| {
                let refunded: i64 = self
                    .refunds
                    .values()
                    .filter(|r| {
                        matches!(&r.status, RefundStatus::Refunded { capture_id: c, .. } if c == capture_id)
                    })
                    .map(|r| r.amount.minor)
                    .sum();
                captured.minor - refunded >= amount.minor
            })
            .map(|(capture_id, _)| capture_id.as_str())
    }
}

#[cfg(test)]
mod tests;
