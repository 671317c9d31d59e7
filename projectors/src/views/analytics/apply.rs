//! How one event changes the analytics rows. Pure: no I/O, no clock. The consumer runtime hands
//! events over once each and in stream order. An order event gives the order's new fact row plus
//! the line and ledger rows it adds; a settlement report gives its lines and a fee entry per line
//! with a fee; a payout gives its row. The store writes them together.
//!
//! Ledger entries carry positive amounts; `kind` says which way the money went. Their id is the
//! event id (or report and line), so an event applied again (redelivery, rebuild) rewrites the
//! same row.

use chrono::{DateTime, NaiveDate, Utc};
use waybill_schemas::events::CarrierStatus;
use waybill_schemas::events::{
    OrderLine, OrderPlaced, PayoutRecorded, RiskDecision, SettlementReportImported,
};
use waybill_schemas::{EventEnvelope, Money, OrderEvent, OrderId};

use super::{AnalyticsError, AnalyticsState, OrderAnalytics, SettlementAnalytics};
use crate::warehouse::rows::{
    days, seconds, LedgerEntryRow, LineFactRow, OrderFactRow, PayoutRow, ReturnRow,
    SettlementLineRow, ShipmentRow,
};

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
    pub const SHIPPED: &str = "shipped";
    pub const CLOSED: &str = "closed";
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

/// The state after `event`, given the state before it (`None` before the stream's first
/// event). The returned value holds the rows of this and the earlier events of the same batch
/// (`state`'s), not yet written.
pub fn apply(
    state: Option<&AnalyticsState>,
    event: &EventEnvelope,
) -> Result<AnalyticsState, AnalyticsError> {
    let decoded = event.decode().map_err(|source| AnalyticsError::Decode {
        stream_id: event.stream_id.clone(),
        event_type: event.event_type.clone(),
        version: event.stream_version,
        source,
    })?;
    let version = u64::try_from(event.stream_version).unwrap_or(0);
    if OrderId::from_stream_id(&event.stream_id).is_some() {
        let order = match state {
            None => None,
            Some(AnalyticsState::Order(order)) => Some(order),
            Some(AnalyticsState::Settlement(_)) => return Err(wrong_stream(event)),
        };
        return apply_order(order, event, decoded, version).map(AnalyticsState::Order);
    }
    let mut next = match state {
        None => SettlementAnalytics {
            stream_id: event.stream_id.clone(),
            ..SettlementAnalytics::default()
        },
        Some(AnalyticsState::Settlement(settlement)) => settlement.clone(),
        Some(AnalyticsState::Order(_)) => return Err(wrong_stream(event)),
    };
    next.version = version;
    match decoded {
        OrderEvent::SettlementReportImported(report) => report_rows(&mut next, &report, version),
        OrderEvent::PayoutRecorded(payout) => next.payouts.push(payout_row(&payout, version)),
        _ => return Err(wrong_stream(event)),
    }
    Ok(AnalyticsState::Settlement(next))
}

fn wrong_stream(event: &EventEnvelope) -> AnalyticsError {
    AnalyticsError::WrongStream {
        stream_id: event.stream_id.clone(),
        event_type: event.event_type.clone(),
        version: event.stream_version,
    }
}

fn apply_order(
    state: Option<&OrderAnalytics>,
    event: &EventEnvelope,
    decoded: OrderEvent,
    version: u64,
) -> Result<OrderAnalytics, AnalyticsError> {
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
        (
            Some(_),
            OrderEvent::SettlementReportImported(_)
            | OrderEvent::PayoutRecorded(_)
            | OrderEvent::DeskEntryResolved(_),
        ) => Err(wrong_stream(event)),
        (Some(state), other) => {
            let mut next = state.clone();
            next.fact.version = version;
            change(&mut next, event, &other);
            Ok(next)
        }
    }
}

/// A report's lines, and a fee entry for every line with a fee (fees are known only from the
/// gateway's report).
fn report_rows(state: &mut SettlementAnalytics, report: &SettlementReportImported, version: u64) {
    for line in &report.lines {
        let order_id = line.order_id.map(|id| id.to_string()).unwrap_or_default();
        state.lines.push(SettlementLineRow {
            report_id: report.report_id.clone(),
            line_no: line.line_no,
            gateway_txn_id: line.transaction_id.clone(),
            kind: line.kind.as_str().to_owned(),
            order_id: order_id.clone(),
            currency: line.gross.currency.code().to_owned(),
            gross: line.gross.minor,
            fee: line.fee.minor,
            net: line.net.minor,
            original_currency: line
                .original
                .map(|m| m.currency.code().to_owned())
                .unwrap_or_default(),
            original_amount: line.original.map_or(0, |m| m.minor),
            payout_id: line.payout_id.clone().unwrap_or_default(),
            transaction_date: days(line.transaction_date),
            settled_date: days(line.settled_on),
            version,
        });
        if line.fee.minor != 0 {
            state.fees.push(LedgerEntryRow {
                entry_id: format!("{}:{}", report.report_id, line.line_no),
                order_id,
                kind: entry_kind::FEE.to_owned(),
                gateway_txn_id: line.transaction_id.clone(),
                channel: String::new(),
                currency: line.fee.currency.code().to_owned(),
                amount: line.fee.minor,
                occurred_at: midnight(line.transaction_date),
                day: days(line.transaction_date),
                version,
            });
        }
    }
}

fn midnight(date: NaiveDate) -> u32 {
    seconds(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

fn payout_row(payout: &PayoutRecorded, version: u64) -> PayoutRow {
    PayoutRow {
        payout_id: payout.payout_id.clone(),
        currency: payout.amount.currency.code().to_owned(),
        amount: payout.amount.minor,
        paid_on: days(payout.paid_on),
        transaction_count: u32::try_from(payout.transaction_ids.len()).unwrap_or(u32::MAX),
        version,
    }
}

/// One line-fact row per order line (as placed, or as an edit left them).
fn line_facts(
    lines: &[OrderLine],
    order_id: &str,
    channel: &str,
    currency: &str,
    placed_at: u32,
    version: u64,
) -> Vec<LineFactRow> {
    lines
        .iter()
        .map(|line| LineFactRow {
            order_id: order_id.to_owned(),
            line_no: line.line_no,
            sku: line.sku.as_str().to_owned(),
            channel: channel.to_owned(),
            currency: currency.to_owned(),
            quantity: line.quantity.get(),
            unit_price: line.unit_price.minor,
            discount: line.discount.minor,
            tax: line.tax.minor,
            total: line.total.minor,
            placed_at,
            version,
        })
        .collect()
}

fn placed_state(placed: &OrderPlaced, version: u64) -> OrderAnalytics {
    let order_id = placed.order_id.to_string();
    let channel = placed.channel.as_str().to_owned();
    let currency = placed.currency.code().to_owned();
    let placed_at = seconds(placed.placed_at);
    let lines = line_facts(
        &placed.lines,
        &order_id,
        &channel,
        &currency,
        placed_at,
        version,
    );
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
        shipments: Vec::new(),
        returns: Vec::new(),
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
        // An extra charge is a capture of its own at the gateway (its settlement line is a
        // capture), so it is booked like one.
        OrderEvent::ExtraChargeCaptured(charged) => {
            fact.captured += charged.amount.minor;
            let entry = entry(
                fact,
                event,
                entry_kind::CAPTURE,
                &charged.capture_id,
                money(charged.amount),
                charged.captured_at,
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
        OrderEvent::PaymentRefunded(refund) => {
            fact.refunded += refund.amount.minor;
            let entry = entry(
                fact,
                event,
                entry_kind::REFUND,
                &refund.gateway_refund_id,
                money(refund.amount),
                refund.refunded_at,
            );
            state.ledger.push(entry);
        }
        OrderEvent::ChargebackOpened(opened) => {
            let entry = entry(
                fact,
                event,
                entry_kind::CHARGEBACK_OPENED,
                &opened.dispute_id,
                money(opened.amount),
                opened.opened_at,
            );
            state.ledger.push(entry);
        }
        OrderEvent::ChargebackWon(won) => {
            // Nothing moves in the ledger; the report's reversal line matches the opening.
            let entry = entry(
                fact,
                event,
                entry_kind::CHARGEBACK_WON,
                &won.dispute_id,
                (0, fact.currency.clone()),
                won.decided_at,
            );
            state.ledger.push(entry);
        }
        OrderEvent::ChargebackLost(lost) => {
            fact.chargebacks_lost += lost.amount.minor;
            let entry = entry(
                fact,
                event,
                entry_kind::CHARGEBACK_LOST,
                &lost.dispute_id,
                money(lost.amount),
                lost.decided_at,
            );
            state.ledger.push(entry);
        }
        // Fulfillment: the order's stage, and a row per parcel.
        OrderEvent::ShipmentCreated(created) => {
            advance(fact, status::SHIPPED);
            let row = ShipmentRow {
                shipment_id: created.shipment_id.clone(),
                order_id: fact.order_id.clone(),
                channel: fact.channel.clone(),
                carrier: created.carrier.clone(),
                status: "label_created".to_owned(),
                shipped_at: None,
                delivered_at: None,
                version: fact.version,
            };
            state.shipments.retain(|s| s.shipment_id != row.shipment_id);
            state.shipments.push(row);
        }
        OrderEvent::ShipmentTracked(tracked) => {
            let version = fact.version;
            if let Some(row) = state
                .shipments
                .iter_mut()
                .find(|s| s.shipment_id == tracked.shipment_id)
            {
                let at = seconds(tracked.carrier_time);
                row.status = tracked.status.as_str().to_owned();
                row.shipped_at = row.shipped_at.or(Some(at));
                if tracked.status == CarrierStatus::Delivered {
                    row.delivered_at = Some(at);
                }
                row.version = version;
            }
        }
        OrderEvent::PickupCompleted(_) => advance(fact, status::SHIPPED),
        OrderEvent::OrderClosed(_) => advance(fact, status::CLOSED),
        OrderEvent::ReturnRequested(requested) => {
            let version = fact.version;
            let rows: Vec<ReturnRow> = requested
                .lines
                .iter()
                .map(|line| ReturnRow {
                    return_id: requested.return_id.clone(),
                    order_id: fact.order_id.clone(),
                    line_no: line.line_no,
                    sku: line.sku.as_str().to_owned(),
                    channel: fact.channel.clone(),
                    reason: line.reason.as_str().to_owned(),
                    quantity: line.quantity.get(),
                    requested_at: seconds(requested.requested_at),
                    version,
                })
                .collect();
            state.returns.extend(rows);
        }
        OrderEvent::ReturnLabelIssued(_)
        | OrderEvent::ReturnReceived(_)
        | OrderEvent::ReturnInspected(_)
        | OrderEvent::ReturnRestocked(_)
        | OrderEvent::ReturnRefundDecided(_) => {}
        OrderEvent::OrderEdited(edited) => {
            let fact = &mut state.fact;
            let t = &edited.totals;
            fact.line_count = u32::try_from(edited.lines.len()).unwrap_or(u32::MAX);
            fact.item_count = edited.lines.iter().map(|l| l.quantity.get()).sum();
            fact.subtotal = t.subtotal.minor;
            fact.discount_total = t.discount_total.minor;
            fact.tax_total = t.tax_total.minor;
            fact.shipping_total = t.shipping_total.minor;
            fact.grand_total = t.grand_total.minor;
            let fact = &state.fact;
            state.lines = line_facts(
                &edited.lines,
                &fact.order_id,
                &fact.channel,
                &fact.currency,
                fact.placed_at,
                fact.version,
            );
        }
        OrderEvent::FulfillmentRouted(_)
        | OrderEvent::FulfillmentSubmitted(_)
        | OrderEvent::FulfillmentProgressed(_)
        | OrderEvent::FulfillmentShortPicked(_)
        | OrderEvent::FulfillmentLinesCancelled(_)
        | OrderEvent::PickupReady(_)
        | OrderEvent::ShipmentExceptionHandled(_)
        | OrderEvent::OrderLinesCancelled(_)
        | OrderEvent::CancelledUnitsReleased(_) => {}
        OrderEvent::OrderPlaced(_)
        | OrderEvent::RefundRequested(_)
        | OrderEvent::RefundFailed(_)
        | OrderEvent::ChargebackEvidenceSubmitted(_)
        | OrderEvent::SettlementReportImported(_)
        | OrderEvent::PayoutRecorded(_)
        | OrderEvent::DeskEntryResolved(_)
        | OrderEvent::NotificationResendRequested(_)
        | OrderEvent::RoutingDecided(_)
        | OrderEvent::CustomerErased(_)
        | OrderEvent::InventoryReservationFailed(_)
        | OrderEvent::InventoryAllocated(_)
        | OrderEvent::InventoryReleased(_)
        | OrderEvent::PaymentChallengeRequired(_)
        | OrderEvent::PaymentDeclined(_)
        | OrderEvent::PaymentAuthorizationExpired(_)
        // Nothing moved at the gateway.
        | OrderEvent::PaymentCaptureFailed(_)
        // Store credit moves no money at the gateway (nothing to reconcile); requests and
        // declines move none at all.
        | OrderEvent::ExtraChargeRequested(_)
        | OrderEvent::ExtraChargeDeclined(_)
        | OrderEvent::StoreCreditIssued(_)
        | OrderEvent::ExchangeReplacementRequested(_) => {}
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
