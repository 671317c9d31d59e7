//! How one event changes an order's analytics rows. Pure: no I/O, no clock. The consumer
//! runtime hands events over once each and in stream order; the result is the order's new fact
//! row plus the line and ledger rows this event adds (written with it by the store).
//!
//! Ledger entries carry positive amounts; `kind` says which way the money went. Their id is the
//! event id, so an event applied again (redelivery, rebuild) rewrites the same row.

use chrono::{DateTime, Utc};
use waybill_schemas::events::{OrderPlaced, RiskDecision};
use waybill_schemas::{EventEnvelope, Money, OrderEvent};

use super::{AnalyticsError, OrderAnalytics};
use crate::warehouse::rows::{days, seconds, LedgerEntryRow, LineFactRow, OrderFactRow};

/// Order status in `order_facts.status`: the furthest stage reached, or `cancelled`.
pub mod status {
    pub const PLACED: &str = "placed";
    pub const IN_REVIEW: &str = "in_review";
    pub const RISK_CLEARED: &str = "risk_cleared";
    pub const RESERVED: &str = "reserved";
    pub const AUTHORIZED: &str = "authorized";
    pub const CONFIRMED: &str = "confirmed";
    pub const CAPTURED: &str = "captured";
    pub const CANCELLED: &str = "cancelled";
}

/// `ledger_entries.kind` values.
pub mod entry_kind {
    pub const AUTHORIZATION: &str = "authorization";
    pub const CAPTURE: &str = "capture";
    pub const VOID: &str = "void";
    pub const REFUND: &str = "refund";
    pub const FEE: &str = "fee";
    pub const CHARGEBACK_OPENED: &str = "chargeback_opened";
    pub const CHARGEBACK_WON: &str = "chargeback_won";
    pub const CHARGEBACK_LOST: &str = "chargeback_lost";
}

/// The order's analytics after `event`, given them before it (`None` before its first event).
/// The returned value's `lines` and `ledger` hold the rows of this and the earlier events of
/// the same batch (`state`'s), not yet written.
pub fn apply(
    state: Option<&OrderAnalytics>,
    event: &EventEnvelope,
) -> Result<OrderAnalytics, AnalyticsError> {
    let decoded = event.decode().map_err(|source| AnalyticsError::Decode {
        stream_id: event.stream_id.clone(),
        event_type: event.event_type.clone(),
        version: event.stream_version,
        source,
    })?;
    let version = u64::try_from(event.stream_version).unwrap_or(0);
    match (state, decoded) {
        (None, OrderEvent::OrderPlaced(placed)) => Ok(placed_state(&placed, version)),
        (Some(_), OrderEvent::OrderPlaced(_)) => Err(AnalyticsError::AlreadyPlaced {
            stream_id: event.stream_id.clone(),
            version: event.stream_version,
        }),
        (None, other) => Err(AnalyticsError::NotPlaced {
            stream_id: event.stream_id.clone(),
            event_type: other.event_type().to_owned(),
            version: event.stream_version,
        }),
        (Some(state), other) => {
            let mut next = state.clone();
            next.fact.version = version;
            change(&mut next, event, &other);
            Ok(next)
        }
    }
}

fn placed_state(placed: &OrderPlaced, version: u64) -> OrderAnalytics {
    let order_id = placed.order_id.to_string();
    let channel = placed.channel.as_str().to_owned();
    let currency = placed.currency.code().to_owned();
    let placed_at = seconds(placed.placed_at);
    let lines = placed
        .lines
        .iter()
        .map(|line| LineFactRow {
            order_id: order_id.clone(),
            line_no: line.line_no,
            sku: line.sku.as_str().to_owned(),
            channel: channel.clone(),
            currency: currency.clone(),
            quantity: line.quantity.get(),
            unit_price: line.unit_price.minor,
            discount: line.discount.minor,
            tax: line.tax.minor,
            total: line.total.minor,
            placed_at,
            version,
        })
        .collect();
    let totals = &placed.totals;
    OrderAnalytics {
        fact: OrderFactRow {
            order_id,
            channel,
            currency,
            status: status::PLACED.to_owned(),
            line_count: u32::try_from(placed.lines.len()).unwrap_or(u32::MAX),
            item_count: placed.lines.iter().map(|l| l.quantity.get()).sum(),
            subtotal: totals.subtotal.minor,
            discount_total: totals.discount_total.minor,
            tax_total: totals.tax_total.minor,
            shipping_total: totals.shipping_total.minor,
            grand_total: totals.grand_total.minor,
            authorized: 0,
            captured: 0,
            refunded: 0,
            chargebacks_lost: 0,
            fees: 0,
            placed_at,
            risk_assessed_at: None,
            reserved_at: None,
            authorized_at: None,
            confirmed_at: None,
            captured_at: None,
            cancelled_at: None,
            cancel_reason: String::new(),
            version,
        },
        lines,
        ledger: Vec::new(),
    }
}

/// Moves the status forward to `to` unless the order is cancelled.
fn advance(fact: &mut OrderFactRow, to: &str) {
    if fact.status != status::CANCELLED {
        fact.status = to.to_owned();
    }
}

fn change(state: &mut OrderAnalytics, event: &EventEnvelope, decoded: &OrderEvent) {
    let fact = &mut state.fact;
    match decoded {
        OrderEvent::RiskAssessed(risk) => {
            fact.risk_assessed_at = Some(seconds(risk.assessed_at));
            match risk.decision {
                RiskDecision::Review => advance(fact, status::IN_REVIEW),
                RiskDecision::Accept => advance(fact, status::RISK_CLEARED),
                RiskDecision::Reject => {}
            }
        }
        OrderEvent::RiskReviewResolved(_) => {
            if fact.status == status::IN_REVIEW {
                advance(fact, status::RISK_CLEARED);
            }
        }
        OrderEvent::InventoryReserved(reserved) => {
            fact.reserved_at = Some(seconds(reserved.reserved_at));
            advance(fact, status::RESERVED);
        }
        OrderEvent::PaymentAuthorized(authorized) => {
            fact.authorized_at = Some(seconds(authorized.authorized_at));
            fact.authorized += authorized.amount.minor;
            advance(fact, status::AUTHORIZED);
            let entry = entry(
                fact,
                event,
                entry_kind::AUTHORIZATION,
                &authorized.authorization_id,
                money(authorized.amount),
                authorized.authorized_at,
            );
            state.ledger.push(entry);
        }
        OrderEvent::OrderConfirmed(confirmed) => {
            fact.confirmed_at = Some(seconds(confirmed.confirmed_at));
            advance(fact, status::CONFIRMED);
        }
        OrderEvent::PaymentCaptured(captured) => {
            fact.captured_at = Some(seconds(captured.captured_at));
            fact.captured += captured.amount.minor;
            advance(fact, status::CAPTURED);
            let entry = entry(
                fact,
                event,
                entry_kind::CAPTURE,
                &captured.capture_id,
                money(captured.amount),
                captured.captured_at,
            );
            state.ledger.push(entry);
        }
        OrderEvent::PaymentVoided(voided) => {
            let amount = (fact.authorized, fact.currency.clone());
            let entry = entry(
                fact,
                event,
                entry_kind::VOID,
                &voided.authorization_id,
                amount,
                voided.voided_at,
            );
            state.ledger.push(entry);
        }
        OrderEvent::OrderCancelled(cancelled) => {
            fact.cancelled_at = Some(seconds(cancelled.cancelled_at));
            fact.cancel_reason = cancelled.reason.as_str().to_owned();
            fact.status = status::CANCELLED.to_owned();
        }
        OrderEvent::OrderPlaced(_)
        | OrderEvent::InventoryReservationFailed(_)
        | OrderEvent::InventoryAllocated(_)
        | OrderEvent::InventoryReleased(_)
        | OrderEvent::PaymentChallengeRequired(_)
        | OrderEvent::PaymentDeclined(_)
        | OrderEvent::PaymentAuthorizationExpired(_) => {}
    }
}

/// Minor units and ISO currency code of an entry.
type Amount = (i64, String);

fn money(amount: Money) -> Amount {
    (amount.minor, amount.currency.code().to_owned())
}

/// The ledger row `event` books, identified by the event id.
fn entry(
    fact: &OrderFactRow,
    event: &EventEnvelope,
    kind: &str,
    gateway_txn_id: &str,
    (amount, currency): Amount,
    at: DateTime<Utc>,
) -> LedgerEntryRow {
    LedgerEntryRow {
        entry_id: event.event_id.to_string(),
        order_id: fact.order_id.clone(),
        kind: kind.to_owned(),
        gateway_txn_id: gateway_txn_id.to_owned(),
        channel: fact.channel.clone(),
        currency,
        amount,
        occurred_at: seconds(at),
        day: days(at.date_naive()),
        version: fact.version,
    }
}
