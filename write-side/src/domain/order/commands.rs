//! What callers ask of an order. `Place` and `Cancel` come from the API; the `Record*` commands
//! come from the checkout process manager and gateway webhooks, which record outcomes that
//! happened elsewhere (an answer from the risk rules, the inventory, the payment gateway).
//! Ids and answers are chosen by the caller; time is the `now` given to `handle`.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waybill_schemas::events::{
    BackorderedLine, CaptureMode, RefundKind, ReleaseReason, ReservedLine, ReviewDecision,
    RiskDecision, RiskReason, Shortage,
};
use waybill_schemas::{Money, OrderId};

use super::edit::EditOrder;
use super::line_cancel::CancelLines;
use crate::domain::cancel::CancelOrder;
use crate::domain::place::PlaceOrder;

#[derive(Debug, Clone, PartialEq)]
pub enum OrderCommand {
    Place {
        order_id: OrderId,
        order: Box<PlaceOrder>,
    },
    /// A customer, agent or the checkout flow cancels the order (allowed until a capture).
    Cancel {
        order_id: OrderId,
        /// The id the units' cancellation gets when the order is confirmed already (every unit
        /// left is cancelled as one `OrderLinesCancelled`); chosen by the caller.
        cancellation_id: Uuid,
        cancel: CancelOrder,
    },
    /// A customer, agent or service cancels units of a confirmed order that have not shipped.
    CancelLines {
        cancellation_id: Uuid,
        cancel: CancelLines,
        requested_by: String,
    },
    /// A customer, agent or service edits a confirmed order still in the fulfillment hold.
    Edit {
        edit_id: Uuid,
        edit: EditOrder,
        requested_by: String,
    },
    RecordRisk {
        decision: RiskDecision,
        score: u32,
        reasons: Vec<RiskReason>,
    },
    ResolveReview {
        decision: ReviewDecision,
        reviewer: String,
        note: Option<String>,
    },
    RecordReservation {
        lines: Vec<ReservedLine>,
        backordered: Vec<BackorderedLine>,
        expires_at: DateTime<Utc>,
    },
    RecordReservationFailure {
        shortages: Vec<Shortage>,
    },
    RecordAllocation {
        lines: Vec<ReservedLine>,
    },
    RecordRelease {
        reason: ReleaseReason,
    },
    RecordChallenge {
        authorization_id: String,
        challenge_url: String,
        expires_at: DateTime<Utc>,
    },
    RecordAuthorization {
        authorization_id: String,
        amount: Money,
        three_ds: bool,
        expires_at: DateTime<Utc>,
    },
    RecordDecline {
        authorization_id: Option<String>,
        code: String,
        message: String,
    },
    Confirm {
        capture_mode: CaptureMode,
    },
    RecordCapture {
        authorization_id: String,
        capture_id: String,
        amount: Money,
    },
    RecordVoid {
        authorization_id: String,
        reason: String,
    },
    /// The authorization's hold lapsed (only at or after its `expires_at`).
    ExpireAuthorization,
    /// The gateway refused for good to capture `amount` from the authorization (voided or
    /// expired at the gateway, declined, unknown): nothing more is captured from it.
    RecordCaptureFailure {
        authorization_id: String,
        amount: Money,
        code: String,
        message: String,
    },
    /// An agent, finance or a service (returns) gives money back; refused above what is still
    /// refundable. The process manager then asks the gateway.
    RequestRefund {
        refund_id: Uuid,
        amount: Money,
        kind: RefundKind,
        reason: String,
        requested_by: String,
    },
    RecordRefund {
        refund_id: Uuid,
        capture_id: String,
        gateway_refund_id: String,
        amount: Money,
    },
    RecordRefundFailure {
        refund_id: Uuid,
        code: String,
        message: String,
    },
    /// Charge `amount` more to the card the order was placed with (an exchange's price
    /// difference); the process manager then authorizes and captures it.
    RequestCharge {
        charge_id: Uuid,
        amount: Money,
        reason: String,
        requested_by: String,
        return_id: Option<String>,
    },
    RecordCharge {
        charge_id: Uuid,
        authorization_id: String,
        capture_id: String,
        amount: Money,
    },
    RecordChargeDecline {
        charge_id: Uuid,
        code: String,
        message: String,
    },
    /// Give money back as credit on the customer's account; refused above what is still
    /// refundable, like a refund.
    IssueStoreCredit {
        credit_id: Uuid,
        amount: Money,
        reason: String,
        issued_by: String,
        return_id: Option<String>,
    },
    /// The gateway reported a card holder's dispute.
    RecordChargebackOpened {
        dispute_id: String,
        capture_id: String,
        amount: Money,
        reason_code: String,
        evidence_due_by: DateTime<Utc>,
    },
    /// Evidence the gateway accepted for an open dispute.
    RecordChargebackEvidence {
        dispute_id: String,
        evidence_id: Uuid,
        text: String,
        submitted_by: String,
    },
    /// The bank's decision on a dispute.
    RecordChargebackDecision {
        dispute_id: String,
        won: bool,
        amount: Money,
    },
}

impl OrderCommand {
    /// What the command does, as a verb phrase for error messages ("it cannot …").
    pub fn action(&self) -> &'static str {
        match self {
            Self::Place { .. } => "be placed",
            Self::Cancel { .. } => "be cancelled",
            Self::CancelLines { .. } => "cancel lines",
            Self::Edit { .. } => "be edited",
            Self::RecordRisk { .. } => "record a risk assessment",
            Self::ResolveReview { .. } => "resolve a review",
            Self::RecordReservation { .. } => "reserve stock",
            Self::RecordReservationFailure { .. } => "record a reservation failure",
            Self::RecordAllocation { .. } => "allocate stock",
            Self::RecordRelease { .. } => "release stock",
            Self::RecordChallenge { .. } => "record a 3-D Secure challenge",
            Self::RecordAuthorization { .. } => "record an authorization",
            Self::RecordDecline { .. } => "record a decline",
            Self::Confirm { .. } => "be confirmed",
            Self::RecordCapture { .. } => "capture payment",
            Self::RecordVoid { .. } => "void its authorization",
            Self::ExpireAuthorization => "expire its authorization",
            Self::RecordCaptureFailure { .. } => "record a failed capture",
            Self::RequestRefund { .. } => "refund",
            Self::RecordRefund { .. } => "record a refund",
            Self::RecordRefundFailure { .. } => "record a failed refund",
            Self::RequestCharge { .. } => "charge the card again",
            Self::RecordCharge { .. } => "record an extra charge",
            Self::RecordChargeDecline { .. } => "record a declined extra charge",
            Self::IssueStoreCredit { .. } => "issue store credit",
            Self::RecordChargebackOpened { .. } => "record a chargeback",
            Self::RecordChargebackEvidence { .. } => "record chargeback evidence",
            Self::RecordChargebackDecision { .. } => "record a chargeback decision",
        }
    }
}
