//! The checkout process manager's decision, as a pure function of the order: given what has
//! been recorded so far and the time, which step comes next.
//!
//! ```text
//! assess risk ─▶ reserve stock ─▶ authorize payment (─▶ wait for 3-D Secure) ─▶ allocate
//!             ─▶ confirm ─▶ capture now, or wait for the hold to lapse (capture on shipment)
//! ```
//! A requested refund comes first, whatever the stage: the gateway is asked once per refund;
//! then a requested extra charge (authorized and captured on the order's card, once per
//! charge).
//! Every way out of that line is a cancellation, and a cancelled order is compensated: its
//! live reservation released, its live authorization voided, before the flow is done. The
//! process manager executes the step (with the idempotency key [`Step::idempotency_key`]),
//! records the outcome with the aggregate's commands, and asks again.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use waybill_schemas::events::{CancelReason, CaptureMode, ReleaseReason};
use waybill_schemas::{Money, OrderId};

use super::order::{Order, OrderState, PaymentState, ReservationState, RiskState};

/// What to do when the locations cannot cover an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfStockPolicy {
    /// Record a reservation failure; the order is cancelled as out of stock.
    Reject,
    /// Reserve what there is and put the rest on back-order.
    Backorder,
}

/// The flow's configuration. `next_step` reads `review_timeout`; the rest is for the steps'
/// executors: `capture_mode` goes into `Confirm`, `reservation_ttl` and `out_of_stock` into the
/// reservation request, `challenge_timeout` into the authorization request (the challenge's
/// recorded `expires_at` is what the flow then waits for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowPolicy {
    pub capture_mode: CaptureMode,
    pub reservation_ttl: Duration,
    pub challenge_timeout: Duration,
    pub review_timeout: Duration,
    pub out_of_stock: OutOfStockPolicy,
}

impl Default for FlowPolicy {
    /// Immediate capture, 15-minute reservations, 10 minutes for 3-D Secure, 24 hours for a
    /// fraud review, reject when short.
    fn default() -> Self {
        Self {
            capture_mode: CaptureMode::Immediate,
            reservation_ttl: Duration::minutes(15),
            challenge_timeout: Duration::minutes(10),
            review_timeout: Duration::hours(24),
            out_of_stock: OutOfStockPolicy::Reject,
        }
    }
}

/// The next thing the process manager does for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    AssessRisk,
    Reserve,
    Authorize,
    Allocate,
    Confirm,
    Capture {
        amount: Money,
    },
    Release {
        reason: ReleaseReason,
    },
    Void {
        authorization_id: String,
        reason: String,
    },
    Cancel {
        reason: CancelReason,
    },
    ExpireAuthorization,
    /// Ask the gateway to refund a requested refund from `capture_id`; `None` when no single
    /// capture has enough left (the refund is then recorded as failed without a call).
    Refund {
        refund_id: Uuid,
        amount: Money,
        capture_id: Option<String>,
    },
    /// Units were cancelled after their money was captured: request a cancellation refund of
    /// `amount` (recorded as `RefundRequested`, then executed like any refund).
    RefundCancelled {
        amount: Money,
    },
    /// Authorize and capture an extra charge on the order's card (an exchange's price
    /// difference).
    Charge {
        charge_id: Uuid,
        amount: Money,
    },
    /// Nothing to do until an outside event (review decision, 3-D Secure result) or `until`,
    /// when the flow decides again.
    Wait {
        until: Option<DateTime<Utc>>,
    },
    /// The flow is over for this order.
    Done,
}

impl Step {
    /// Stable step name, as used in idempotency keys and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AssessRisk => "assess_risk",
            Self::Reserve => "reserve",
            Self::Authorize => "authorize",
            Self::Allocate => "allocate",
            Self::Confirm => "confirm",
            Self::Capture { .. } => "capture",
            Self::Release { .. } => "release",
            Self::Void { .. } => "void",
            Self::Cancel { .. } => "cancel",
            Self::ExpireAuthorization => "expire_authorization",
            Self::Refund { .. } => "refund",
            Self::RefundCancelled { .. } => "refund_cancelled",
            Self::Charge { .. } => "charge",
            Self::Wait { .. } => "wait",
            Self::Done => "done",
        }
    }

    /// `<order_id>:<step>`: each step happens at most once per order, so a rerun after a
    /// crash sends the external service the same key and gets the first answer back. Refunds
    /// happen once per refund: `<order_id>:refund:<refund_id>`, extra charges once per charge:
    /// `<order_id>:charge:<charge_id>` (its capture adds `:capture`).
    pub fn idempotency_key(&self, order_id: OrderId) -> String {
        match self {
            Self::Refund { refund_id, .. } => format!("{order_id}:refund:{refund_id}"),
            Self::Charge { charge_id, .. } => format!("{order_id}:charge:{charge_id}"),
            _ => format!("{order_id}:{}", self.name()),
        }
    }
}

/// Decides what comes next for `order` at `now`.
pub fn next_step(order: &Order, policy: &FlowPolicy, now: DateTime<Utc>) -> Step {
    let Some(state) = order.state() else {
        return Step::Done;
    };
    if let Some(refund) = state.ledger().pending_refunds().next() {
        return Step::Refund {
            refund_id: refund.refund_id,
            amount: refund.amount,
            capture_id: state
                .ledger()
                .capture_for_refund(refund.amount)
                .map(str::to_owned),
        };
    }
    if let Some(charge) = state.ledger().pending_charges().next() {
        return Step::Charge {
            charge_id: charge.charge_id,
            amount: charge.amount,
        };
    }
    if state.confirmed().is_some() {
        let owed = state.cancellation_refund_owed();
        if owed.minor > 0 {
            return Step::RefundCancelled { amount: owed };
        }
    }
    if let Some(reason) = state.cancel_reason() {
        return compensate(state, reason);
    }
    if let Some(capture_mode) = state.confirmed() {
        return after_confirmation(state, capture_mode, now);
    }
    risk_step(state, policy, now)
        .or_else(|| stock_step(state, now))
        .or_else(|| payment_step(state, now))
        .unwrap_or_else(|| match state.reservation() {
            ReservationState::Allocated => Step::Confirm,
            _ => Step::Allocate,
        })
}

/// A cancelled order gives back what it holds: stock first, then the card hold.
fn compensate(state: &OrderState, reason: CancelReason) -> Step {
    if state.reservation().is_live() {
        let reason = match reason {
            CancelReason::Fraud => ReleaseReason::RiskRejected,
            CancelReason::PaymentFailed => ReleaseReason::PaymentDeclined,
            CancelReason::ReservationExpired => ReleaseReason::Expired,
            _ => ReleaseReason::OrderCancelled,
        };
        return Step::Release { reason };
    }
    if let Some(authorization_id) = state.payment().live_authorization_id() {
        return Step::Void {
            authorization_id: authorization_id.to_owned(),
            reason: format!("order cancelled: {}", reason.as_str()),
        };
    }
    Step::Done
}

fn after_confirmation(state: &OrderState, capture_mode: CaptureMode, now: DateTime<Utc>) -> Step {
    let PaymentState::Authorized { expires_at, .. } = state.payment() else {
        // Prepaid, captured (in full or in part) or lapsed: nothing more for checkout to do.
        return Step::Done;
    };
    if expires_at <= now {
        // Too late to capture against this hold, whatever the mode.
        return Step::ExpireAuthorization;
    }
    if state.nothing_left_to_capture() {
        if let Some(authorization_id) = state.payment().live_authorization_id() {
            return Step::Void {
                authorization_id: authorization_id.to_owned(),
                reason: "every unit of the order was cancelled".into(),
            };
        }
    }
    match capture_mode {
        CaptureMode::Immediate => {
            let amount = state.amount_to_capture();
            if amount.minor > 0 {
                Step::Capture { amount }
            } else {
                Step::Done
            }
        }
        CaptureMode::OnShipment if state.has_shipped() => {
            // The first parcel left: take what the order is worth now (after cancellations).
            let amount = state.amount_to_capture();
            if amount.minor > 0 {
                Step::Capture { amount }
            } else {
                Step::Done
            }
        }
        CaptureMode::OnShipment => Step::Wait {
            until: Some(expires_at),
        },
    }
}

fn risk_step(state: &OrderState, policy: &FlowPolicy, now: DateTime<Utc>) -> Option<Step> {
    match state.risk() {
        RiskState::NotAssessed => Some(Step::AssessRisk),
        RiskState::Rejected | RiskState::ReviewRejected => Some(Step::Cancel {
            reason: CancelReason::Fraud,
        }),
        RiskState::InReview => {
            let deadline = state.placed_at() + policy.review_timeout;
            Some(if deadline <= now {
                Step::Cancel {
                    reason: CancelReason::Timeout,
                }
            } else {
                Step::Wait {
                    until: Some(deadline),
                }
            })
        }
        RiskState::Accepted | RiskState::Approved => None,
    }
}

fn stock_step(state: &OrderState, now: DateTime<Utc>) -> Option<Step> {
    let cancel = |reason| Some(Step::Cancel { reason });
    match state.reservation() {
        ReservationState::None => Some(Step::Reserve),
        ReservationState::Failed => cancel(CancelReason::OutOfStock),
        ReservationState::Reserved { expires_at } if expires_at <= now => Some(Step::Release {
            reason: ReleaseReason::Expired,
        }),
        ReservationState::Released { reason } => cancel(match reason {
            ReleaseReason::Expired => CancelReason::ReservationExpired,
            ReleaseReason::PaymentDeclined => CancelReason::PaymentFailed,
            ReleaseReason::AllocationFailed => CancelReason::OutOfStock,
            ReleaseReason::RiskRejected => CancelReason::Fraud,
            ReleaseReason::OrderCancelled => CancelReason::Other,
        }),
        ReservationState::Reserved { .. } | ReservationState::Allocated => None,
    }
}

fn payment_step(state: &OrderState, now: DateTime<Utc>) -> Option<Step> {
    match state.payment() {
        PaymentState::Prepaid => None,
        PaymentState::None => Some(Step::Authorize),
        PaymentState::Challenge { expires_at, .. } if expires_at <= now => Some(Step::Cancel {
            reason: CancelReason::Timeout,
        }),
        PaymentState::Challenge { expires_at, .. } => {
            let until = match state.reservation() {
                ReservationState::Reserved {
                    expires_at: reservation_expiry,
                } => expires_at.min(reservation_expiry),
                _ => expires_at,
            };
            Some(Step::Wait { until: Some(until) })
        }
        PaymentState::Declined if state.reservation().is_live() => Some(Step::Release {
            reason: ReleaseReason::PaymentDeclined,
        }),
        PaymentState::Authorized { expires_at, .. } if expires_at <= now => {
            Some(Step::ExpireAuthorization)
        }
        // (A capture needs a confirmation, so `Captured` and a capture failure are not seen
        // before one.)
        PaymentState::Authorized { .. }
        | PaymentState::Captured { .. }
        | PaymentState::CaptureFailed { .. } => None,
        PaymentState::Declined | PaymentState::Voided | PaymentState::Expired => {
            Some(Step::Cancel {
                reason: CancelReason::PaymentFailed,
            })
        }
    }
}

#[cfg(test)]
mod tests;
