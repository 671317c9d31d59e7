//! The order aggregate: a state machine from placement to confirmation or cancellation.
//!
//! ```text
//! placed ─risk─▶ accepted ──────────────────┐         (rejected ─▶ cancelled)
//!         └────▶ in_review ─approve─────────┤
//!                                           ▼
//!        reserve stock ─▶ authorize payment (─▶ awaiting_payment: 3-D Secure) ─▶ allocate
//!                                           ─▶ confirmed ─▶ captured (now or on shipment)
//! any step before a capture ─cancel─▶ cancelled ─▶ only compensations: release, void
//! ```
//!
//! [`Order::handle`] decides which events a command produces, or why it is refused, without
//! changing anything; [`Order::apply`] folds an event into the state and never fails. An order's
//! state is the fold of its stream, so `version` is the number of events applied.
//!
//! Outcomes recorded from outside (risk rules, inventory, gateway, webhooks) are idempotent:
//! recording the same outcome again is `Ok(vec![])`, a different outcome of the same step is
//! [`OrderError::ConflictingOutcome`]. The rules live in one file per idea: `lifecycle`
//! (place, cancel, confirm), `risk`, `stock`, `payment`.

mod charge;
mod chargeback;
mod commands;
mod edit;
mod error;
mod lifecycle;
mod line_cancel;
mod offers;
mod payment;
mod refund;
mod risk;
mod state;
mod stock;
mod store_credit;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod properties;

pub use commands::OrderCommand;
pub use edit::{edit_charge_id, edit_refund_id, EditOrder, LineChange, NewLine};
pub use error::OrderError;
pub use line_cancel::{CancelLines, LineQuantity};
pub use offers::Offers;
pub use state::{
    Authorization, Capture, CaptureFailure, Challenge, Decline, OrderState, OrderStatus,
    PaymentState, Reservation, ReservationState, Review, RiskAssessment, RiskState, Void,
};

use chrono::{DateTime, Utc};
use waybill_schemas::OrderEvent;

/// An order's state: no state until its `OrderPlaced` is applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Order {
    state: Option<OrderState>,
    version: i64,
}

impl Order {
    /// The state after applying `events` in order.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a OrderEvent>) -> Self {
        let mut order = Self::default();
        for event in events {
            order.apply(event);
        }
        order
    }

    /// Number of events applied: the stream version the next event must follow.
    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn state(&self) -> Option<&OrderState> {
        self.state.as_ref()
    }

    /// Decides the events `command` produces at time `now`, or why it is refused.
    pub fn handle(
        &self,
        command: &OrderCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderCommand as C;
        let state = match (command, &self.state) {
            (C::Place { order_id, order }, None) => {
                return Ok(lifecycle::place(*order_id, order, now))
            }
            (C::Place { order_id, .. }, Some(_)) => {
                return Err(OrderError::AlreadyPlaced(*order_id))
            }
            (C::Cancel { order_id, .. }, None) => return Err(OrderError::NotFound(*order_id)),
            (command, None) => {
                return Err(OrderError::NotPlaced {
                    action: command.action(),
                })
            }
            (_, Some(state)) => state,
        };
        let action = command.action();
        match command {
            C::Place { .. } => Err(OrderError::AlreadyPlaced(state.order_id())),
            C::Cancel {
                cancellation_id,
                cancel,
                ..
            } => state.cancel(*cancellation_id, cancel, now),
            C::CancelLines {
                cancellation_id,
                cancel,
                requested_by,
            } => state.cancel_lines(*cancellation_id, cancel, requested_by, now),
            C::Edit {
                edit_id,
                edit,
                requested_by,
            } => state.edit(*edit_id, edit, requested_by, now),
            C::Confirm { capture_mode } => state.confirm(*capture_mode, now),
            C::RecordRisk {
                decision,
                score,
                reasons,
            } => state.record_risk(*decision, *score, reasons, action, now),
            C::ResolveReview {
                decision,
                reviewer,
                note,
            } => state.resolve_review(*decision, reviewer, note, action, now),
            C::RecordReservation {
                lines,
                backordered,
                expires_at,
            } => state.record_reservation(lines, backordered, *expires_at, now),
            C::RecordReservationFailure { shortages } => {
                state.record_reservation_failure(shortages, action, now)
            }
            C::RecordAllocation { lines } => state.record_allocation(lines, action, now),
            C::RecordRelease { reason } => state.record_release(*reason, action, now),
            C::RecordChallenge {
                authorization_id,
                challenge_url,
                expires_at,
            } => state.record_challenge(authorization_id, challenge_url, *expires_at, action),
            C::RecordAuthorization {
                authorization_id,
                amount,
                three_ds,
                expires_at,
            } => state.record_authorization(
                authorization_id,
                *amount,
                *three_ds,
                *expires_at,
                action,
                now,
            ),
            C::RecordDecline {
                authorization_id,
                code,
                message,
            } => state.record_decline(authorization_id, code, message, action, now),
            C::RecordCapture {
                authorization_id,
                capture_id,
                amount,
            } => state.record_capture(authorization_id, capture_id, *amount, action, now),
            C::RecordVoid {
                authorization_id,
                reason,
            } => state.record_void(authorization_id, reason, action, now),
            C::ExpireAuthorization => state.expire_authorization(action, now),
            C::RecordCaptureFailure {
                authorization_id,
                amount,
                code,
                message,
            } => {
                state.record_capture_failure(authorization_id, *amount, code, message, action, now)
            }
            C::RequestRefund {
                refund_id,
                amount,
                kind,
                reason,
                requested_by,
            } => state.request_refund(*refund_id, *amount, *kind, reason, requested_by, now),
            C::RecordRefund {
                refund_id,
                capture_id,
                gateway_refund_id,
                amount,
            } => state.record_refund(*refund_id, capture_id, gateway_refund_id, *amount, now),
            C::RecordRefundFailure {
                refund_id,
                code,
                message,
            } => state.record_refund_failure(*refund_id, code, message, now),
            C::RequestCharge {
                charge_id,
                amount,
                reason,
                requested_by,
                return_id,
            } => state.request_charge(*charge_id, *amount, reason, requested_by, return_id, now),
            C::RecordCharge {
                charge_id,
                authorization_id,
                capture_id,
                amount,
            } => state.record_charge(*charge_id, authorization_id, capture_id, *amount, now),
            C::RecordChargeDecline {
                charge_id,
                code,
                message,
            } => state.record_charge_decline(*charge_id, code, message, now),
            C::IssueStoreCredit {
                credit_id,
                amount,
                reason,
                issued_by,
                return_id,
            } => state.issue_store_credit(*credit_id, *amount, reason, issued_by, return_id, now),
            C::RecordChargebackOpened {
                dispute_id,
                capture_id,
                amount,
                reason_code,
                evidence_due_by,
            } => state.record_chargeback_opened(
                dispute_id,
                capture_id,
                *amount,
                reason_code,
                *evidence_due_by,
                now,
            ),
            C::RecordChargebackEvidence {
                dispute_id,
                evidence_id,
                text,
                submitted_by,
            } => {
                state.record_chargeback_evidence(dispute_id, *evidence_id, text, submitted_by, now)
            }
            C::RecordChargebackDecision {
                dispute_id,
                won,
                amount,
            } => state.record_chargeback_decision(dispute_id, *won, *amount, now),
        }
    }

    /// Folds one event into the state. Never fails: events are facts. Events before an
    /// `OrderPlaced` only count towards the version.
    pub fn apply(&mut self, event: &OrderEvent) {
        self.version += 1;
        if let OrderEvent::OrderPlaced(placed) = event {
            self.state = Some(OrderState::new(placed.clone()));
            return;
        }
        let Some(state) = &mut self.state else {
            return;
        };
        state.ledger.apply(event);
        state.fulfillment.apply(event);
        match event {
            OrderEvent::OrderPlaced(_) => {}
            OrderEvent::OrderCancelled(e) => state.cancel_reason = Some(e.reason),
            OrderEvent::OrderConfirmed(e) => state.confirmed = Some(e.capture_mode),
            OrderEvent::OrderEdited(e) => state.apply_edit(e),
            OrderEvent::RiskAssessed(e) => {
                state.assessment = Some(RiskAssessment {
                    decision: e.decision,
                    score: e.score,
                    reasons: e.reasons.clone(),
                })
            }
            OrderEvent::RiskReviewResolved(e) => {
                state.review = Some(Review {
                    decision: e.decision,
                    reviewer: e.reviewer.clone(),
                    note: e.note.clone(),
                })
            }
            OrderEvent::InventoryReserved(e) => {
                state.reserved = Some(Reservation {
                    lines: e.lines.clone(),
                    backordered: e.backordered.clone(),
                    expires_at: e.expires_at,
                })
            }
            OrderEvent::InventoryReservationFailed(e) => {
                state.shortages = Some(e.shortages.clone())
            }
            OrderEvent::InventoryAllocated(e) => state.allocated = Some(e.lines.clone()),
            OrderEvent::InventoryReleased(e) => state.released = Some(e.reason),
            OrderEvent::PaymentChallengeRequired(e) => {
                state.challenge = Some(Challenge {
                    authorization_id: e.authorization_id.clone(),
                    challenge_url: e.challenge_url.clone(),
                    expires_at: e.expires_at,
                })
            }
            OrderEvent::PaymentAuthorized(e) => {
                state.authorization = Some(Authorization {
                    authorization_id: e.authorization_id.clone(),
                    amount: e.amount,
                    three_ds: e.three_ds,
                    expires_at: e.expires_at,
                })
            }
            OrderEvent::PaymentDeclined(e) => {
                state.decline = Some(Decline {
                    authorization_id: e.authorization_id.clone(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                })
            }
            OrderEvent::PaymentCaptured(e) => state.captures.push(Capture {
                capture_id: e.capture_id.clone(),
                amount: e.amount,
            }),
            OrderEvent::PaymentVoided(e) => {
                state.void = Some(Void {
                    authorization_id: e.authorization_id.clone(),
                    reason: e.reason.clone(),
                })
            }
            OrderEvent::PaymentAuthorizationExpired(_) => state.authorization_expired = true,
            OrderEvent::PaymentCaptureFailed(e) => {
                state.capture_failure = Some(CaptureFailure {
                    authorization_id: e.authorization_id.clone(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                })
            }
            // Money after capture: folded by the ledger above.
            OrderEvent::RefundRequested(_)
            | OrderEvent::PaymentRefunded(_)
            | OrderEvent::RefundFailed(_)
            | OrderEvent::ChargebackOpened(_)
            | OrderEvent::ChargebackEvidenceSubmitted(_)
            | OrderEvent::ChargebackWon(_)
            | OrderEvent::ChargebackLost(_)
            | OrderEvent::ExtraChargeRequested(_)
            | OrderEvent::ExtraChargeCaptured(_)
            | OrderEvent::ExtraChargeDeclined(_)
            | OrderEvent::StoreCreditIssued(_) => {}
            // A customer message sent again changes nothing about the order.
            OrderEvent::NotificationResendRequested(_) => {}
            // Not order events; never in an order stream.
            OrderEvent::SettlementReportImported(_)
            | OrderEvent::PayoutRecorded(_)
            | OrderEvent::DeskEntryResolved(_) => {}
            // The routing decision's inputs, kept for the routing simulator; the routes follow.
            OrderEvent::RoutingDecided(_) => {}
            OrderEvent::CustomerErased(_) => {}
            // Fulfillment has its own fold (`domain::fulfillment`); checkout only needs to know
            // that something shipped, for capture on shipment.
            OrderEvent::ShipmentCreated(_) | OrderEvent::PickupCompleted(_) => state.shipped = true,
            OrderEvent::FulfillmentRouted(_)
            | OrderEvent::FulfillmentSubmitted(_)
            | OrderEvent::FulfillmentProgressed(_)
            | OrderEvent::FulfillmentShortPicked(_)
            | OrderEvent::FulfillmentLinesCancelled(_)
            | OrderEvent::PickupReady(_)
            | OrderEvent::ShipmentTracked(_)
            | OrderEvent::ShipmentExceptionHandled(_)
            | OrderEvent::OrderClosed(_)
            | OrderEvent::OrderLinesCancelled(_)
            | OrderEvent::CancelledUnitsReleased(_) => {}
            // Returns are folded with fulfillment (`domain::returns`); their refunds arrive as
            // `RefundRequested`, folded by the ledger.
            OrderEvent::ReturnRequested(_)
            | OrderEvent::ReturnLabelIssued(_)
            | OrderEvent::ReturnReceived(_)
            | OrderEvent::ReturnInspected(_)
            | OrderEvent::ReturnRestocked(_)
            | OrderEvent::ReturnRefundDecided(_)
            | OrderEvent::ExchangeReplacementRequested(_) => {}
        }
    }
}

impl OrderState {
    /// A refusal because the same step already has a different outcome.
    fn conflict(
        &self,
        recorded: impl std::fmt::Display,
        attempted: impl std::fmt::Display,
    ) -> OrderError {
        OrderError::ConflictingOutcome {
            order_id: self.order_id(),
            recorded: recorded.to_string(),
            attempted: attempted.to_string(),
        }
    }

    /// Refuses `action` on a cancelled order.
    fn ensure_not_cancelled(&self, action: &'static str) -> Result<(), OrderError> {
        if self.is_cancelled() {
            return Err(OrderError::Cancelled {
                order_id: self.order_id(),
                action,
            });
        }
        Ok(())
    }
}
