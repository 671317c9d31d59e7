//! What the order aggregate remembers, and the read-only views of it that callers decide with.
//!
//! The state keeps facts (each recorded outcome, once) rather than one status field, so a
//! duplicate outcome can be recognised however far the order has moved on since. The views
//! ([`OrderStatus`], [`RiskState`], [`ReservationState`], [`PaymentState`]) are derived from
//! those facts on demand.

use std::fmt;

use chrono::{DateTime, Utc};
use waybill_schemas::events::{
    BackorderedLine, CancelReason, CaptureMode, OrderPlaced, PaymentMethod, ReleaseReason,
    ReservedLine, ReviewDecision, RiskDecision, RiskReason, Shortage, Totals,
};
use waybill_schemas::{Channel, Money, OrderId};

use crate::domain::fulfillment::Fulfillment;
use crate::domain::ledger::Ledger;

/// Where an order is in its lifecycle, as shown to customers and agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Placed and moving through checkout (risk, stock, payment).
    Placed,
    /// Held for an agent's fraud review.
    InReview,
    /// Waiting for the customer to pass a 3-D Secure challenge.
    AwaitingPayment,
    Confirmed,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::InReview => "in_review",
            Self::AwaitingPayment => "awaiting_payment",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The order's risk decision, including an agent's review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskState {
    NotAssessed,
    Accepted,
    InReview,
    /// Held for review and approved by an agent.
    Approved,
    /// Rejected by the rules.
    Rejected,
    /// Held for review and rejected by an agent.
    ReviewRejected,
}

impl RiskState {
    /// The order may proceed to confirmation.
    pub fn is_cleared(self) -> bool {
        matches!(self, Self::Accepted | Self::Approved)
    }
    pub fn is_rejected(self) -> bool {
        matches!(self, Self::Rejected | Self::ReviewRejected)
    }
}

impl fmt::Display for RiskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAssessed => "not assessed",
            Self::Accepted => "accepted",
            Self::InReview => "in review",
            Self::Approved => "approved in review",
            Self::Rejected => "rejected",
            Self::ReviewRejected => "rejected in review",
        })
    }
}

/// The order's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationState {
    None,
    /// Soft-reserved until `expires_at`.
    Reserved {
        expires_at: DateTime<Utc>,
    },
    /// The locations could not cover the order and the policy was to reject.
    Failed,
    /// Hard-allocated at confirmation.
    Allocated,
    /// Given back to stock.
    Released {
        reason: ReleaseReason,
    },
}

impl ReservationState {
    /// Units are held for the order (reserved or allocated, not released).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Reserved { .. } | Self::Allocated)
    }
}

impl fmt::Display for ReservationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("not reserved"),
            Self::Reserved { expires_at } => write!(f, "reserved until {expires_at}"),
            Self::Failed => f.write_str("short (reservation failed)"),
            Self::Allocated => f.write_str("allocated"),
            Self::Released { reason } => write!(f, "released ({})", reason.as_str()),
        }
    }
}

/// The order's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentState {
    /// Paid to the channel (or a legacy order without a payment method): nothing to authorize.
    Prepaid,
    /// Card payment, nothing asked of the gateway yet.
    None,
    /// The issuer asked for 3-D Secure; the customer has until `expires_at`.
    Challenge {
        authorization_id: String,
        expires_at: DateTime<Utc>,
    },
    /// `amount` is held on the card until `expires_at`.
    Authorized {
        authorization_id: String,
        amount: Money,
        expires_at: DateTime<Utc>,
    },
    Declined,
    /// `total` of the authorization has been captured (possibly in parts).
    Captured {
        authorization_id: String,
        total: Money,
    },
    Voided,
    /// The hold lapsed before it was captured.
    Expired,
    /// The gateway refused for good to capture from the authorization (`code`); nothing will
    /// be captured from it and no hold is left to release.
    CaptureFailed {
        authorization_id: String,
        code: String,
    },
}

impl PaymentState {
    /// A hold the gateway may still have on the card (challenge pending or authorized).
    pub fn live_authorization_id(&self) -> Option<&str> {
        match self {
            Self::Challenge {
                authorization_id, ..
            }
            | Self::Authorized {
                authorization_id, ..
            } => Some(authorization_id),
            _ => None,
        }
    }
}

impl fmt::Display for PaymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Prepaid => f.write_str("prepaid"),
            Self::None => f.write_str("not authorized"),
            Self::Challenge {
                authorization_id, ..
            } => write!(f, "awaiting 3-D Secure on {authorization_id}"),
            Self::Authorized {
                authorization_id,
                amount,
                ..
            } => write!(f, "authorized ({amount} on {authorization_id})"),
            Self::Declined => f.write_str("declined"),
            Self::Captured { total, .. } => write!(f, "captured ({total})"),
            Self::Voided => f.write_str("voided"),
            Self::Expired => f.write_str("expired"),
            Self::CaptureFailed {
                authorization_id,
                code,
            } => write!(f, "capture refused for good ({code} on {authorization_id})"),
        }
    }
}

/// The rules' verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskAssessment {
    pub decision: RiskDecision,
    pub score: u32,
    pub reasons: Vec<RiskReason>,
}

/// An agent's verdict on an order held for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub decision: ReviewDecision,
    pub reviewer: String,
    pub note: Option<String>,
}

/// Stock soft-reserved for the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub lines: Vec<ReservedLine>,
    pub backordered: Vec<BackorderedLine>,
    pub expires_at: DateTime<Utc>,
}

/// A pending 3-D Secure challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub authorization_id: String,
    pub challenge_url: String,
    pub expires_at: DateTime<Utc>,
}

/// A hold on the customer's card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub authorization_id: String,
    pub amount: Money,
    pub three_ds: bool,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decline {
    pub authorization_id: Option<String>,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub capture_id: String,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Void {
    pub authorization_id: String,
    pub reason: String,
}

/// The gateway refused for good to capture from the authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureFailure {
    pub authorization_id: String,
    pub code: String,
    pub message: String,
}

/// What the aggregate remembers about a placed order: the whole `OrderPlaced` and every outcome
/// recorded since, each at most once. Read it through the methods; the aggregate alone changes it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderState {
    pub(super) placed: OrderPlaced,
    pub(super) assessment: Option<RiskAssessment>,
    pub(super) review: Option<Review>,
    pub(super) reserved: Option<Reservation>,
    pub(super) shortages: Option<Vec<Shortage>>,
    pub(super) allocated: Option<Vec<ReservedLine>>,
    pub(super) released: Option<ReleaseReason>,
    pub(super) challenge: Option<Challenge>,
    pub(super) authorization: Option<Authorization>,
    pub(super) decline: Option<Decline>,
    pub(super) captures: Vec<Capture>,
    pub(super) void: Option<Void>,
    pub(super) authorization_expired: bool,
    pub(super) capture_failure: Option<CaptureFailure>,
    pub(super) confirmed: Option<CaptureMode>,
    pub(super) cancel_reason: Option<CancelReason>,
    /// Captures, refunds and chargebacks as money movements.
    pub(super) ledger: Ledger,
    /// A parcel left (or a BOPIS order was collected): capture on shipment may run.
    pub(super) shipped: bool,
    /// The fulfillment fold of the same stream: where each unit is, what was cancelled.
    pub(super) fulfillment: Fulfillment,
    /// The line number an added line gets next (line numbers are never reused).
    pub(super) next_line_no: u32,
    /// Edits recorded (`OrderEdited`), by edit id.
    pub(super) edits: Vec<waybill_schemas::events::OrderEdited>,
}

impl OrderState {
    pub(super) fn new(placed: OrderPlaced) -> Self {
        let fulfillment =
            Fulfillment::from_events([&waybill_schemas::OrderEvent::OrderPlaced(placed.clone())]);
        let next_line_no = placed.lines.iter().map(|l| l.line_no).max().unwrap_or(0) + 1;
        Self {
            fulfillment,
            next_line_no,
            edits: Vec::new(),
            placed,
            assessment: None,
            review: None,
            reserved: None,
            shortages: None,
            allocated: None,
            released: None,
            challenge: None,
            authorization: None,
            decline: None,
            captures: Vec::new(),
            void: None,
            authorization_expired: false,
            capture_failure: None,
            confirmed: None,
            cancel_reason: None,
            ledger: Ledger::default(),
            shipped: false,
        }
    }

    /// The order's money: captured, refunded, disputed, lost, refundable.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Where the order's units are (routed, shipped, cancelled), folded from the same stream.
    pub fn fulfillment(&self) -> &Fulfillment {
        &self.fulfillment
    }

    /// Whether the first parcel shipped (or a BOPIS order was collected).
    pub fn has_shipped(&self) -> bool {
        self.shipped
    }

    /// The order as placed: lines, addresses, customer, totals, payment method, risk context.
    /// The recorded edit `edit_id`, if any.
    pub fn edit_recorded(
        &self,
        edit_id: uuid::Uuid,
    ) -> Option<&waybill_schemas::events::OrderEdited> {
        self.edits.iter().find(|e| e.edit_id == edit_id)
    }
    pub fn placed(&self) -> &OrderPlaced {
        &self.placed
    }
    pub fn order_id(&self) -> OrderId {
        self.placed.order_id
    }
    pub fn channel(&self) -> Channel {
        self.placed.channel
    }
    pub fn totals(&self) -> &Totals {
        &self.placed.totals
    }
    pub fn placed_at(&self) -> DateTime<Utc> {
        self.placed.placed_at
    }

    pub fn status(&self) -> OrderStatus {
        if self.cancel_reason.is_some() {
            OrderStatus::Cancelled
        } else if self.confirmed.is_some() {
            OrderStatus::Confirmed
        } else if self.risk() == RiskState::InReview {
            OrderStatus::InReview
        } else if matches!(self.payment(), PaymentState::Challenge { .. }) {
            OrderStatus::AwaitingPayment
        } else {
            OrderStatus::Placed
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel_reason.is_some()
    }
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.cancel_reason
    }
    /// The capture mode the order was confirmed with, once confirmed.
    pub fn confirmed(&self) -> Option<CaptureMode> {
        self.confirmed
    }

    pub fn risk(&self) -> RiskState {
        let Some(assessment) = &self.assessment else {
            return RiskState::NotAssessed;
        };
        match (
            assessment.decision,
            self.review.as_ref().map(|r| r.decision),
        ) {
            (RiskDecision::Accept, _) => RiskState::Accepted,
            (RiskDecision::Reject, _) => RiskState::Rejected,
            (RiskDecision::Review, None) => RiskState::InReview,
            (RiskDecision::Review, Some(ReviewDecision::Approve)) => RiskState::Approved,
            (RiskDecision::Review, Some(ReviewDecision::Reject)) => RiskState::ReviewRejected,
        }
    }
    pub fn risk_assessment(&self) -> Option<&RiskAssessment> {
        self.assessment.as_ref()
    }
    pub fn review(&self) -> Option<&Review> {
        self.review.as_ref()
    }

    pub fn reservation(&self) -> ReservationState {
        if let Some(reason) = self.released {
            ReservationState::Released { reason }
        } else if self.allocated.is_some() {
            ReservationState::Allocated
        } else if let Some(reserved) = &self.reserved {
            ReservationState::Reserved {
                expires_at: reserved.expires_at,
            }
        } else if self.shortages.is_some() {
            ReservationState::Failed
        } else {
            ReservationState::None
        }
    }
    /// The soft reservation as recorded (still there after allocation or release).
    pub fn reserved(&self) -> Option<&Reservation> {
        self.reserved.as_ref()
    }
    pub fn allocated_lines(&self) -> Option<&[ReservedLine]> {
        self.allocated.as_deref()
    }
    pub fn shortages(&self) -> Option<&[Shortage]> {
        self.shortages.as_deref()
    }

    /// No authorization needed: paid to the channel, or a legacy (v2) order without a method.
    pub fn is_prepaid(&self) -> bool {
        !matches!(self.placed.payment, Some(PaymentMethod::Card { .. }))
    }

    pub fn payment(&self) -> PaymentState {
        if self.is_prepaid() {
            return PaymentState::Prepaid;
        }
        if let (Some(authorization), false) = (&self.authorization, self.captures.is_empty()) {
            return PaymentState::Captured {
                authorization_id: authorization.authorization_id.clone(),
                total: self.captured_total(),
            };
        }
        if self.void.is_some() {
            return PaymentState::Voided;
        }
        if self.authorization_expired {
            return PaymentState::Expired;
        }
        if let Some(failure) = &self.capture_failure {
            return PaymentState::CaptureFailed {
                authorization_id: failure.authorization_id.clone(),
                code: failure.code.clone(),
            };
        }
        if let Some(a) = &self.authorization {
            return PaymentState::Authorized {
                authorization_id: a.authorization_id.clone(),
                amount: a.amount,
                expires_at: a.expires_at,
            };
        }
        if self.decline.is_some() {
            return PaymentState::Declined;
        }
        if let Some(c) = &self.challenge {
            return PaymentState::Challenge {
                authorization_id: c.authorization_id.clone(),
                expires_at: c.expires_at,
            };
        }
        PaymentState::None
    }
    pub fn challenge(&self) -> Option<&Challenge> {
        self.challenge.as_ref()
    }
    pub fn authorization(&self) -> Option<&Authorization> {
        self.authorization.as_ref()
    }
    pub fn decline(&self) -> Option<&Decline> {
        self.decline.as_ref()
    }
    /// The gateway's permanent refusal to capture, if there was one.
    pub fn capture_failure(&self) -> Option<&CaptureFailure> {
        self.capture_failure.as_ref()
    }
    pub fn captures(&self) -> &[Capture] {
        &self.captures
    }

    /// Sum of every capture, in the order's currency. Captures are checked against the
    /// authorization before they are recorded, so this cannot overflow.
    pub fn captured_total(&self) -> Money {
        let minor = self.captures.iter().map(|c| c.amount.minor).sum();
        Money::new(minor, self.placed.currency)
    }

    /// Confirmed for immediate capture and the capture not recorded yet: it may be at the
    /// gateway right now, so the order's value must not change under it. Never true of a
    /// prepaid order (paid to the channel: there is no capture to wait for) nor of one whose
    /// hold has nothing left to capture (every unit cancelled: the hold is voided instead).
    pub fn capture_under_way(&self) -> bool {
        self.confirmed == Some(CaptureMode::Immediate)
            && !self.is_prepaid()
            && self.captures.is_empty()
            && matches!(self.payment(), PaymentState::Authorized { .. })
    }

    /// What is left to capture on the authorization (zero without one).
    pub fn capturable(&self) -> Money {
        let authorized = self.authorization.as_ref().map_or(0, |a| a.amount.minor);
        Money::new(
            authorized - self.captured_total().minor,
            self.placed.currency,
        )
    }
}
