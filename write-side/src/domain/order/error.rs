//! Why the order aggregate refused a command. Every message names the order and says what
//! stood in the way.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waybill_schemas::{Currency, Money, OrderId};

use crate::domain::ledger::LedgerError;

use super::state::{PaymentState, ReservationState, RiskState};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order {0} does not exist")]
    NotFound(OrderId),
    /// An outcome was recorded on a stream without an `OrderPlaced`.
    #[error("no order has been placed in this stream; it cannot {action}")]
    NotPlaced { action: &'static str },
    #[error("order {0} already exists")]
    AlreadyPlaced(OrderId),
    #[error("order {0} is already cancelled")]
    AlreadyCancelled(OrderId),
    #[error("order {order_id} is cancelled; it cannot {action}")]
    Cancelled {
        order_id: OrderId,
        action: &'static str,
    },
    /// Confirmed for immediate capture: the capture may already be under way at the gateway, so
    /// a cancel could race it; from here on undoing the order is a refund.
    #[error("order {order_id} is confirmed and its payment is being captured; it cannot be cancelled (refunds come with returns)")]
    CaptureUnderWay { order_id: OrderId },
    /// Releasing stock or voiding the payment of a confirmed order needs a cancellation first.
    #[error("order {order_id} is confirmed; it cannot {action} unless it is cancelled first")]
    ConfirmedNotCancelled {
        order_id: OrderId,
        action: &'static str,
    },
    #[error("order {order_id} is not confirmed; it cannot {action}")]
    NotConfirmed {
        order_id: OrderId,
        action: &'static str,
    },
    /// A different outcome of the same step is already recorded (a second authorization, a
    /// decline after an authorization, another review decision, ...).
    #[error("order {order_id} already recorded {recorded}; {attempted} conflicts with it")]
    ConflictingOutcome {
        order_id: OrderId,
        recorded: String,
        attempted: String,
    },
    #[error("order {order_id} cannot {action} while its risk is {risk}")]
    BlockedByRisk {
        order_id: OrderId,
        action: &'static str,
        risk: RiskState,
    },
    #[error("order {order_id} cannot {action} while its stock is {reservation}")]
    BlockedByStock {
        order_id: OrderId,
        action: &'static str,
        reservation: ReservationState,
    },
    #[error("order {order_id} cannot {action} while its payment is {payment}")]
    BlockedByPayment {
        order_id: OrderId,
        action: &'static str,
        payment: PaymentState,
    },
    /// Reserved (or allocated) plus back-ordered units must equal what was ordered (reserved).
    #[error("order {order_id}: the {what} covers {covered} units of line {line_no}, expected {expected}")]
    StockDoesNotCover {
        order_id: OrderId,
        what: &'static str,
        line_no: u32,
        expected: u32,
        covered: u32,
    },
    #[error("order {order_id} is prepaid; it takes no card authorization, so it cannot {action}")]
    PaymentNotRequired {
        order_id: OrderId,
        action: &'static str,
    },
    #[error("order {order_id} is in {expected}; {found} cannot be used for it")]
    CurrencyMismatch {
        order_id: OrderId,
        expected: Currency,
        found: Currency,
    },
    #[error("authorization of {found} does not match the {expected} total of order {order_id}")]
    AmountMismatch {
        order_id: OrderId,
        expected: Money,
        found: Money,
    },
    #[error("order {order_id} has no authorization {authorization_id}")]
    UnknownAuthorization {
        order_id: OrderId,
        authorization_id: String,
    },
    #[error(
        "capture of {amount} exceeds the {remaining} left on authorization {authorization_id}"
    )]
    CaptureExceedsAuthorization {
        authorization_id: String,
        amount: Money,
        remaining: Money,
    },
    #[error("capture of {amount} on order {order_id} must be more than zero")]
    NonPositiveCapture { order_id: OrderId, amount: Money },
    #[error("authorization {authorization_id} of order {order_id} holds until {expires_at}; it has not expired")]
    AuthorizationNotExpired {
        order_id: OrderId,
        authorization_id: String,
        expires_at: DateTime<Utc>,
    },
    #[error("order {order_id} cannot be refunded: {source}")]
    RefundRefused {
        order_id: OrderId,
        source: LedgerError,
    },
    #[error("order {order_id} has no refund {refund_id}")]
    UnknownRefund { order_id: OrderId, refund_id: Uuid },
    #[error("order {order_id} has no capture {capture_id}")]
    UnknownCapture {
        order_id: OrderId,
        capture_id: String,
    },
    #[error("order {order_id} has no dispute {dispute_id}")]
    UnknownDispute {
        order_id: OrderId,
        dispute_id: String,
    },
    #[error("dispute {dispute_id} of order {order_id} is already {status}; it cannot {action}")]
    DisputeClosed {
        order_id: OrderId,
        dispute_id: String,
        status: &'static str,
        action: &'static str,
    },
    /// A line of a cancellation request cannot be cancelled as asked; `field` names it
    /// (`lines[i].line_no`, `lines[i].quantity`).
    #[error("{detail}")]
    LinesNotCancellable {
        order_id: OrderId,
        field: String,
        detail: String,
    },
    #[error("order {order_id} has units on their way or collected; cancel the lines that have not shipped instead")]
    AlreadyShipped { order_id: OrderId },
    #[error("order {order_id} is closed")]
    Closed { order_id: OrderId },
    #[error("order {order_id} was not paid by card; there is no card to charge")]
    NoCardOnFile { order_id: OrderId },
    #[error("order {order_id} has captured nothing yet; it cannot {action}")]
    NothingCapturedYet {
        order_id: OrderId,
        action: &'static str,
    },
    #[error("order {order_id}: an amount of {amount} must be more than zero")]
    NonPositiveAmount { order_id: OrderId, amount: Money },
    #[error("order {order_id} has no extra charge {charge_id}")]
    UnknownCharge { order_id: OrderId, charge_id: Uuid },
    /// A part of an edit request cannot be applied as asked; `field` names it
    /// (`changes[i].line_no`, `add[i].unit_price.currency`, ...).
    #[error("{detail}")]
    EditRefused {
        order_id: OrderId,
        field: String,
        detail: String,
    },
    /// The request names something the order does not have (a return, a line, ...); `field`
    /// is the request field that names it.
    #[error("{detail}")]
    UnknownReference {
        order_id: OrderId,
        field: &'static str,
        detail: String,
    },
    #[error("order {order_id} cannot be edited: {reason}")]
    NotEditable { order_id: OrderId, reason: String },
    #[error("order {order_id} was placed as a guest; there is no customer account to credit")]
    NoCustomerAccount { order_id: OrderId },
}
