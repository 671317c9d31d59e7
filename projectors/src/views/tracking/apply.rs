//! How one event changes an order's tracking view. Pure: no I/O, no clock; the consumer runtime
//! has already made sure events arrive here once each and in stream order.
//!
//! Every event advances the view's `version`. Most add one customer-readable line to the
//! timeline; internal steps (a risk check that passed, stock turned from reserved to allocated)
//! change the view without one. Risk scores and the rules that fired never reach this view.

use waybill_schemas::access::{customer_digest, lookup_digest, LookupProof};
use waybill_schemas::events::{
    CancelReason, InventoryReservationFailed, InventoryReserved, OrderPlaced, ReleaseReason,
    ReviewDecision, RiskDecision,
};
use waybill_schemas::views::{
    DeliveryState, PaymentState, StockState, TimelineEntry, TrackingAccess, TrackingBackorder,
    TrackingLine, TrackingPayment, TrackingPickup, TrackingStatus, TrackingStock,
    TrackingStoreCredit, TrackingTotals, TrackingView,
};
use waybill_schemas::{EventEnvelope, OrderEvent};

use super::TrackingError;
use super::{cancellation, edit, fulfillment, returns};

/// The view after `event`, given the view before it (`None` before the order's first event).
pub fn apply(
    view: Option<&TrackingView>,
    event: &EventEnvelope,
) -> Result<TrackingView, TrackingError> {
    let decoded = event.decode().map_err(|source| TrackingError::Decode {
        stream_id: event.stream_id.clone(),
        event_type: event.event_type.clone(),
        version: event.stream_version,
        source,
    })?;
    match (view, decoded) {
        (None, OrderEvent::OrderPlaced(placed)) => Ok(placed_view(event, &placed)),
        (Some(_), OrderEvent::OrderPlaced(_)) => Err(TrackingError::AlreadyPlaced {
            stream_id: event.stream_id.clone(),
            version: event.stream_version,
        }),
        (None, other) => Err(TrackingError::NotPlaced {
            stream_id: event.stream_id.clone(),
            event_type: other.event_type().to_owned(),
            version: event.stream_version,
        }),
        (Some(view), other) => {
            let mut next = view.clone();
            next.version = event.stream_version;
            next.updated_at = event.occurred_at;
            if let Some(summary) = change(&mut next, &other) {
                next.timeline.push(timeline_entry(event, summary));
            }
            Ok(next)
        }
    }
}

/// The view after `events` in stream order, starting from nothing (`None` for no events): the
/// live projector's fold, for readers that need an order as it was at some version.
pub fn fold<'a>(
    events: impl IntoIterator<Item = &'a EventEnvelope>,
) -> Result<Option<TrackingView>, TrackingError> {
    let mut view: Option<TrackingView> = None;
    for event in events {
        view = Some(apply(view.as_ref(), event)?);
    }
    Ok(view)
}

fn placed_view(event: &EventEnvelope, placed: &OrderPlaced) -> TrackingView {
    let lines: Vec<TrackingLine> = placed
        .lines
        .iter()
        .map(|line| TrackingLine {
            line_no: line.line_no,
            sku: line.sku.as_str().to_owned(),
            name: line.name.clone(),
            quantity: line.quantity.get(),
            unit_price_minor: line.unit_price.minor,
            total_minor: line.total.minor,
            cancelled_quantity: 0,
        })
        .collect();
    let items: u32 = lines.iter().map(|l| l.quantity).sum();
    let summary = format!(
        "Order placed: {items} {} for {}",
        if items == 1 { "item" } else { "items" },
        placed.totals.grand_total
    );
    TrackingView {
        order_id: placed.order_id.to_string(),
        version: event.stream_version,
        status: TrackingStatus::Placed,
        channel: placed.channel,
        channel_order_ref: placed.channel_order_ref.clone(),
        currency: placed.currency.code().to_owned(),
        lines,
        totals: TrackingTotals {
            subtotal_minor: placed.totals.subtotal.minor,
            discount_minor: placed.totals.discount_total.minor,
            tax_minor: placed.totals.tax_total.minor,
            shipping_minor: placed.totals.shipping_total.minor,
            grand_total_minor: placed.totals.grand_total.minor,
        },
        shipping_method: placed.shipping.method.clone(),
        placed_at: placed.placed_at,
        updated_at: event.occurred_at,
        cancellation_reason: None,
        payment: TrackingPayment::default(),
        stock: TrackingStock::default(),
        confirmed_at: None,
        timeline: vec![timeline_entry(event, summary)],
        delivery: DeliveryState::None,
        shipments: Vec::new(),
        // The store the customer chose, shown from the start; routing fills in the units.
        pickup: placed.pickup_store.as_ref().map(|store| TrackingPickup {
            store_name: store.store_name.clone(),
            address: store.address.clone(),
            instructions: store.instructions.clone(),
            ready: false,
            ready_at: None,
            collect_by: None,
            code_hint: None,
            picked_up_at: None,
            lines: Vec::new(),
        }),
        returns: Vec::new(),
        access: access_of(placed),
    }
}

/// The digests the order is indexed by: its customer id, and its order number with the
/// customer's email or a delivery/billing postcode (the `/track` lookup form). An erased
/// customer's email and postcodes (their stand-ins) find nothing.
fn access_of(placed: &OrderPlaced) -> TrackingAccess {
    use waybill_write_side::pii::fields::{ERASED_EMAIL, ERASED_TEXT};
    let number = &placed.channel_order_ref;
    let mut lookup: Vec<String> = [
        LookupProof::Email(placed.customer.email.as_str()),
        LookupProof::Postcode(&placed.shipping_address.postal_code),
    ]
    .into_iter()
    .chain(
        placed
            .billing_address
            .iter()
            .map(|billing| LookupProof::Postcode(&billing.postal_code)),
    )
    .filter(|proof| {
        !matches!(
            proof,
            LookupProof::Email(ERASED_EMAIL) | LookupProof::Postcode(ERASED_TEXT)
        )
    })
    .filter_map(|proof| lookup_digest(number, proof))
    .collect();
    lookup.dedup();
    TrackingAccess {
        customer: placed
            .customer
            .customer_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .map(customer_digest),
        lookup,
    }
}

/// Applies an event after placement to `view`; returns the timeline line for the customer, if
/// the event is one they should hear about.
fn change(view: &mut TrackingView, event: &OrderEvent) -> Option<String> {
    match event {
        // Refused in `apply` before we get here.
        OrderEvent::OrderPlaced(_) => None,
        OrderEvent::RiskAssessed(assessed) => match assessed.decision {
            RiskDecision::Accept | RiskDecision::Reject => None,
            RiskDecision::Review => {
                move_status(view, TrackingStatus::Placed, TrackingStatus::InReview);
                Some("We're checking your order".to_owned())
            }
        },
        OrderEvent::RiskReviewResolved(resolved) => match resolved.decision {
            ReviewDecision::Approve => {
                move_status(view, TrackingStatus::InReview, TrackingStatus::Placed);
                Some("Our checks are done and your order is going ahead".to_owned())
            }
            // The cancellation that follows tells the customer.
            ReviewDecision::Reject => None,
        },
        OrderEvent::InventoryReserved(reserved) => Some(stock_reserved(view, reserved)),
        OrderEvent::InventoryReservationFailed(failed) => Some(stock_unavailable(view, failed)),
        OrderEvent::InventoryAllocated(_) => {
            view.stock.state = StockState::Allocated;
            view.stock.reserved_until = None;
            None
        }
        OrderEvent::InventoryReleased(released) => {
            view.stock.state = StockState::Released;
            view.stock.reserved_until = None;
            // Released for any other reason, the customer hears about the cause instead.
            (released.reason == ReleaseReason::Expired)
                .then(|| "The items held for you went back to stock".to_owned())
        }
        OrderEvent::PaymentChallengeRequired(challenge) => {
            view.payment.state = PaymentState::ActionRequired;
            view.payment.action_url = Some(challenge.challenge_url.clone());
            move_status(
                view,
                TrackingStatus::Placed,
                TrackingStatus::AwaitingPayment,
            );
            move_status(
                view,
                TrackingStatus::InReview,
                TrackingStatus::AwaitingPayment,
            );
            Some("Your bank asks you to confirm this payment".to_owned())
        }
        OrderEvent::PaymentAuthorized(authorized) => {
            view.payment.state = PaymentState::Authorized;
            view.payment.authorized_minor = authorized.amount.minor;
            view.payment.action_url = None;
            view.payment.decline_message = None;
            move_status(
                view,
                TrackingStatus::AwaitingPayment,
                TrackingStatus::Placed,
            );
            Some("Payment authorized".to_owned())
        }
        OrderEvent::PaymentDeclined(declined) => {
            let words = decline_words(&declined.code);
            view.payment.state = PaymentState::Declined;
            view.payment.action_url = None;
            view.payment.decline_message = Some(words.to_owned());
            move_status(
                view,
                TrackingStatus::AwaitingPayment,
                TrackingStatus::Placed,
            );
            Some(format!("We couldn't take payment: {words}"))
        }
        OrderEvent::PaymentCaptured(captured) => {
            view.payment.state = PaymentState::Captured;
            view.payment.captured_minor = view
                .payment
                .captured_minor
                .saturating_add(captured.amount.minor);
            Some(format!("Payment of {} taken", captured.amount))
        }
        OrderEvent::PaymentVoided(_) => {
            view.payment.state = PaymentState::Voided;
            view.payment.action_url = None;
            Some("The hold on your card was released".to_owned())
        }
        OrderEvent::PaymentAuthorizationExpired(_) => {
            view.payment.state = PaymentState::Expired;
            view.payment.action_url = None;
            Some("The hold on your card expired".to_owned())
        }
        OrderEvent::PaymentCaptureFailed(_) => {
            view.payment.state = PaymentState::CaptureFailed;
            view.payment.action_url = None;
            Some("We could not take payment for your order; we will contact you".to_owned())
        }
        OrderEvent::PaymentRefunded(refunded) => {
            view.payment.refunded_minor = view
                .payment
                .refunded_minor
                .saturating_add(refunded.amount.minor);
            returns::refunded(view, refunded);
            Some(format!("Refund of {} sent to your card", refunded.amount))
        }
        OrderEvent::ChargebackLost(lost) => {
            view.payment.reversed_minor = view
                .payment
                .reversed_minor
                .saturating_add(lost.amount.minor);
            Some(format!(
                "Payment of {} reversed after a dispute with your bank",
                lost.amount
            ))
        }
        OrderEvent::ExtraChargeCaptured(charged) => {
            let minor = charged.amount.minor;
            view.payment.captured_minor = view.payment.captured_minor.saturating_add(minor);
            view.payment.extra_charged_minor =
                view.payment.extra_charged_minor.saturating_add(minor);
            Some(format!(
                "Extra payment of {} taken from your card",
                charged.amount
            ))
        }
        OrderEvent::ExtraChargeDeclined(declined) => Some(format!(
            "We couldn't take the extra payment: {}; we will contact you",
            decline_words(&declined.code)
        )),
        OrderEvent::StoreCreditIssued(issued) => {
            let credit_id = issued.credit_id.to_string();
            if !view
                .payment
                .store_credits
                .iter()
                .any(|c| c.credit_id == credit_id)
            {
                view.payment.store_credit_minor = view
                    .payment
                    .store_credit_minor
                    .saturating_add(issued.amount.minor);
                view.payment.store_credits.push(TrackingStoreCredit {
                    credit_id,
                    amount_minor: issued.amount.minor,
                    currency: issued.amount.currency.code().to_owned(),
                    return_id: issued.return_id.clone(),
                    issued_at: issued.issued_at,
                });
            }
            Some(format!(
                "Store credit of {} added to your account",
                issued.amount
            ))
        }
        // Internal until money moves: requests, gateway failures, disputes in progress and
        // their reasons stay with agents and finance.
        OrderEvent::ExtraChargeRequested(_)
        | OrderEvent::RefundRequested(_)
        | OrderEvent::RefundFailed(_)
        | OrderEvent::ChargebackOpened(_)
        | OrderEvent::ChargebackEvidenceSubmitted(_)
        | OrderEvent::ChargebackWon(_)
        // The routing decision's inputs, for the routing simulator; routes follow as their own
        // events.
        | OrderEvent::RoutingDecided(_)
        | OrderEvent::CustomerErased(_) => None,
        // A message sent again: the customer sees the message itself, the agent the event.
        OrderEvent::NotificationResendRequested(_) => None,
        // Not order events (settlement streams); the view never handles those streams.
        OrderEvent::SettlementReportImported(_)
        | OrderEvent::PayoutRecorded(_)
        | OrderEvent::DeskEntryResolved(_) => None,
        OrderEvent::OrderConfirmed(confirmed) => {
            if view.status != TrackingStatus::Cancelled {
                view.status = TrackingStatus::Confirmed;
            }
            view.confirmed_at = Some(confirmed.confirmed_at);
            Some("Order confirmed".to_owned())
        }
        OrderEvent::OrderCancelled(cancelled) => {
            view.status = TrackingStatus::Cancelled;
            view.cancellation_reason = Some(cancelled.reason.as_str().to_owned());
            // Nothing left to confirm.
            view.payment.action_url = None;
            Some(format!(
                "Order cancelled: {}",
                cancel_reason_words(cancelled.reason)
            ))
        }
        OrderEvent::FulfillmentRouted(_)
        | OrderEvent::FulfillmentSubmitted(_)
        | OrderEvent::FulfillmentProgressed(_)
        | OrderEvent::FulfillmentShortPicked(_)
        | OrderEvent::FulfillmentLinesCancelled(_)
        | OrderEvent::PickupReady(_)
        | OrderEvent::PickupCompleted(_)
        | OrderEvent::ShipmentCreated(_)
        | OrderEvent::ShipmentTracked(_)
        | OrderEvent::ShipmentExceptionHandled(_)
        | OrderEvent::OrderClosed(_) => {
            returns::link_replacement(view, event);
            fulfillment::change(view, event)
        }
        OrderEvent::ExchangeReplacementRequested(_)
        | OrderEvent::ReturnRequested(_)
        | OrderEvent::ReturnLabelIssued(_)
        | OrderEvent::ReturnReceived(_)
        | OrderEvent::ReturnInspected(_)
        | OrderEvent::ReturnRestocked(_)
        | OrderEvent::ReturnRefundDecided(_) => returns::change(view, event),
        OrderEvent::OrderLinesCancelled(_) | OrderEvent::CancelledUnitsReleased(_) => {
            cancellation::change(view, event)
        }
        OrderEvent::OrderEdited(edited) => edit::change(view, edited),
    }
}

/// Moves the status from `from` to `to`; any other status stays (a confirmed or cancelled order
/// is never moved back by a late step).
fn move_status(view: &mut TrackingView, from: TrackingStatus, to: TrackingStatus) {
    if view.status == from {
        view.status = to;
    }
}

fn stock_reserved(view: &mut TrackingView, reserved: &InventoryReserved) -> String {
    view.stock.state = StockState::Reserved;
    view.stock.reserved_until = Some(reserved.expires_at);
    view.stock.backordered = reserved
        .backordered
        .iter()
        .map(|line| TrackingBackorder {
            line_no: line.line_no,
            sku: line.sku.as_str().to_owned(),
            quantity: line.quantity.get(),
        })
        .collect();
    let until = reserved.expires_at.format("%H:%M UTC");
    let backordered: u32 = view.stock.backordered.iter().map(|b| b.quantity).sum();
    match backordered {
        0 => format!("Items reserved for you until {until}"),
        1 => format!("Items reserved for you until {until}; 1 item is on back-order"),
        n => format!("Items reserved for you until {until}; {n} items are on back-order"),
    }
}

fn stock_unavailable(view: &mut TrackingView, failed: &InventoryReservationFailed) -> String {
    view.stock.state = StockState::Unavailable;
    view.stock.reserved_until = None;
    let names: Vec<&str> = failed
        .shortages
        .iter()
        .map(|shortage| {
            view.lines
                .iter()
                .find(|line| line.line_no == shortage.line_no)
                .map_or(shortage.sku.as_str(), |line| line.name.as_str())
        })
        .collect();
    if names.is_empty() {
        "Some items are out of stock".to_owned()
    } else {
        format!("Not enough stock of {}", names.join(", "))
    }
}

fn timeline_entry(event: &EventEnvelope, summary: String) -> TimelineEntry {
    TimelineEntry {
        version: event.stream_version,
        event_type: event.event_type.clone(),
        occurred_at: event.occurred_at,
        summary,
    }
}

/// Why an order was cancelled, in words a customer reads (shared with the notifications).
pub fn cancel_reason_words(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::CustomerRequest => "requested by the customer",
        // Never says why: the risk rules are not the customer's to see.
        CancelReason::Fraud => "we could not verify this order",
        CancelReason::OutOfStock => "items out of stock",
        CancelReason::PaymentFailed => "payment failed",
        CancelReason::ReservationExpired => "the items were held too long without payment",
        CancelReason::Timeout => "a step was not completed in time",
        CancelReason::Other => "other reason",
    }
}

/// A gateway decline code in words a customer reads (shared with the notifications). Codes
/// that would say too much (a card reported stolen) or that we do not know read as a plain
/// decline.
pub fn decline_words(code: &str) -> &'static str {
    match code {
        "insufficient_funds" => "insufficient funds",
        "expired_card" => "the card has expired",
        "incorrect_cvc" => "the card's security code was wrong",
        "authentication_failed" | "three_ds_failed" | "challenge_failed" | "challenge_expired" => {
            "the payment was not confirmed with your bank"
        }
        "processing_error" | "gateway_unavailable" => "the payment could not be processed",
        "invalid_token" => "the card details could not be used",
        _ => "your card was declined",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::*;
    use waybill_schemas::OrderId;

    /// Applies `events` in order, starting from nothing.
    fn fold(events: &[EventEnvelope]) -> TrackingView {
        super::fold(events)
            .expect("every event applies")
            .expect("at least one event")
    }

    fn summaries(view: &TrackingView) -> Vec<&str> {
        view.timeline.iter().map(|t| t.summary.as_str()).collect()
    }

    #[test]
    fn placing_an_order_starts_its_view_with_lines_totals_and_a_timeline() {
        let order = OrderId::new_v7();
        let view = apply(None, &placed_event(order, 1)).expect("placed applies");
        assert_eq!(view.order_id, order.to_string());
        assert_eq!(view.version, 1);
        assert_eq!(view.status, TrackingStatus::Placed);
        assert_eq!(view.lines.len(), 1);
        assert_eq!(view.lines[0].quantity, 2);
        assert_eq!(view.totals.grand_total_minor, 3240);
        assert_eq!(view.payment.state, PaymentState::None);
        assert_eq!(view.stock.state, StockState::None);
        assert_eq!(view.confirmed_at, None);
        assert_eq!(summaries(&view), ["Order placed: 2 items for 32.40 USD"]);
    }

    #[test]
    fn a_pickup_order_shows_the_store_the_customer_chose_from_placement() {
        let order = OrderId::new_v7();
        let mut placed = placed(order);
        placed.shipping.method = "pickup".into();
        placed.pickup_store = Some(waybill_schemas::events::PickupStore {
            location_id: "store-soho".into(),
            store_name: "Waybill Soho".into(),
            address: "120 Spring St".into(),
            instructions: "Collection desk".into(),
        });
        let view = fold(&[envelope(order, 1, OrderEvent::OrderPlaced(placed))]);
        let pickup = view.pickup.expect("the chosen store");
        assert_eq!(pickup.store_name, "Waybill Soho");
        assert_eq!(pickup.address, "120 Spring St");
        assert!(!pickup.ready);
    }

    #[test]
    fn cancelling_keeps_the_order_and_adds_the_reason_to_the_timeline() {
        let order = OrderId::new_v7();
        let placed = apply(None, &placed_event(order, 1)).expect("placed");
        let view = apply(Some(&placed), &cancelled_event(order, 2)).expect("cancelled");
        assert_eq!(view.version, 2);
        assert_eq!(view.status, TrackingStatus::Cancelled);
        assert_eq!(
            view.cancellation_reason.as_deref(),
            Some("customer_request")
        );
        assert_eq!(view.lines, placed.lines);
        assert_eq!(view.timeline.len(), 2);
        assert_eq!(
            view.timeline[1].summary,
            "Order cancelled: requested by the customer"
        );
    }

    #[test]
    fn placement_indexes_the_customer_and_the_lookup_by_digests_only() {
        use waybill_schemas::access::{customer_digest, lookup_digest, LookupProof};
        let order = OrderId::new_v7();
        let view = fold(&[placed_event(order, 1)]);
        let number = view.channel_order_ref.clone();
        assert_eq!(view.access.customer, Some(customer_digest("c-42")));
        assert_eq!(
            view.access.lookup,
            vec![
                lookup_digest(&number, LookupProof::Email("ada@example.com")).unwrap(),
                lookup_digest(&number, LookupProof::Postcode("62701")).unwrap(),
            ]
        );
        let stored = serde_json::to_string(&view).unwrap();
        assert!(!stored.contains("ada@example.com") && !stored.contains("\"c-42\""));
        // Later events keep the index data.
        let later = fold(&[placed_event(order, 1), confirmed_event(order, 2)]);
        assert_eq!(later.access, view.access);
        assert!(later.shipments.is_empty() && later.pickup.is_none() && later.returns.is_empty());
    }

    #[test]
    fn the_happy_path_ends_confirmed_with_stock_allocated_and_payment_captured() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            risk_assessed(order, 2, RiskDecision::Accept),
            reserved_event(order, 3),
            authorized_event(order, 4),
            allocated_event(order, 5),
            confirmed_event(order, 6),
            captured_event(order, 7, 3240),
        ]);
        assert_eq!(view.version, 7);
        assert_eq!(view.status, TrackingStatus::Confirmed);
        assert_eq!(view.confirmed_at, Some(at(6)));
        assert_eq!(view.updated_at, at(7));
        assert_eq!(view.stock.state, StockState::Allocated);
        assert_eq!(view.stock.reserved_until, None);
        assert_eq!(view.payment.state, PaymentState::Captured);
        assert_eq!(view.payment.authorized_minor, 3240);
        assert_eq!(view.payment.captured_minor, 3240);
        assert_eq!(
            summaries(&view),
            [
                "Order placed: 2 items for 32.40 USD",
                "Items reserved for you until 16:15 UTC",
                "Payment authorized",
                "Order confirmed",
                "Payment of 32.40 USD taken",
            ]
        );
        let versions: Vec<i64> = view.timeline.iter().map(|t| t.version).collect();
        assert_eq!(versions, [1, 3, 4, 6, 7]);
    }

    #[test]
    fn refunds_and_a_lost_dispute_show_as_amounts_without_reasons() {
        use waybill_schemas::events::{
            ChargebackLost, ChargebackOpened, PaymentRefunded, RefundKind, RefundRequested,
        };
        use waybill_schemas::{Currency, Money};
        let order = OrderId::new_v7();
        let usd = |minor| Money::new(minor, Currency::parse("USD").expect("USD"));
        let refund_id = uuid::Uuid::now_v7();
        let money = [
            OrderEvent::RefundRequested(RefundRequested {
                order_id: order,
                refund_id,
                amount: usd(500),
                kind: RefundKind::Goodwill,
                reason: "courier was rude".into(),
                requested_by: "agent-1".into(),
                requested_at: at(8),
            }),
            OrderEvent::PaymentRefunded(PaymentRefunded {
                order_id: order,
                refund_id,
                capture_id: "cap_1".into(),
                gateway_refund_id: "re_1".into(),
                amount: usd(500),
                refunded_at: at(9),
            }),
            OrderEvent::ChargebackOpened(ChargebackOpened {
                order_id: order,
                dispute_id: "dp_1".into(),
                capture_id: "cap_1".into(),
                amount: usd(2740),
                reason_code: "fraudulent".into(),
                evidence_due_by: at(100),
                opened_at: at(10),
            }),
            OrderEvent::ChargebackLost(ChargebackLost {
                order_id: order,
                dispute_id: "dp_1".into(),
                amount: usd(2740),
                decided_at: at(11),
            }),
        ];
        let mut events = vec![
            placed_event(order, 1),
            risk_assessed(order, 2, RiskDecision::Accept),
            reserved_event(order, 3),
            authorized_event(order, 4),
            allocated_event(order, 5),
            confirmed_event(order, 6),
            captured_event(order, 7, 3240),
        ];
        for (i, event) in money.into_iter().enumerate() {
            events.push(envelope(order, 8 + i as i64, event));
        }
        let view = fold(&events);
        assert_eq!(view.version, 11);
        assert_eq!(view.payment.refunded_minor, 500);
        assert_eq!(view.payment.reversed_minor, 2740);
        let lines = summaries(&view);
        assert_eq!(
            &lines[lines.len() - 2..],
            [
                "Refund of 5.00 USD sent to your card",
                "Payment of 27.40 USD reversed after a dispute with your bank",
            ]
        );
        let text = serde_json::to_string(&view).expect("view serializes");
        assert!(
            !text.contains("rude") && !text.contains("fraudulent"),
            "{text}"
        );
    }

    #[test]
    fn an_accepted_risk_check_advances_the_version_without_telling_the_customer() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            risk_assessed(order, 2, RiskDecision::Accept),
        ]);
        assert_eq!(view.version, 2);
        assert_eq!(view.status, TrackingStatus::Placed);
        assert_eq!(view.timeline.len(), 1);
    }

    #[test]
    fn a_review_shows_in_review_and_never_the_score_or_rules() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            risk_assessed(order, 2, RiskDecision::Review),
        ]);
        assert_eq!(view.status, TrackingStatus::InReview);
        assert_eq!(view.timeline[1].summary, "We're checking your order");
        let json = serde_json::to_string(&view).expect("encode");
        for secret in ["velocity", "orders from this email", "score", "points"] {
            assert!(!json.contains(secret), "{secret} leaked into {json}");
        }
    }

    #[test]
    fn an_approved_review_puts_the_order_back_on_its_way() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            risk_assessed(order, 2, RiskDecision::Review),
            review_resolved(order, 3, ReviewDecision::Approve),
        ]);
        assert_eq!(view.status, TrackingStatus::Placed);
        assert_eq!(
            view.timeline[2].summary,
            "Our checks are done and your order is going ahead"
        );
    }

    #[test]
    fn a_rejected_review_is_told_by_the_cancellation_without_the_rules() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            risk_assessed(order, 2, RiskDecision::Review),
            review_resolved(order, 3, ReviewDecision::Reject),
        ]);
        assert_eq!(view.version, 3);
        assert_eq!(view.status, TrackingStatus::InReview);
        assert_eq!(view.timeline.len(), 2);

        let cancelled =
            apply(Some(&view), &cancelled_for(order, 4, CancelReason::Fraud)).expect("cancelled");
        assert_eq!(cancelled.status, TrackingStatus::Cancelled);
        assert_eq!(
            cancelled.timeline[2].summary,
            "Order cancelled: we could not verify this order"
        );
    }

    #[test]
    fn a_rejected_risk_check_adds_no_line_of_its_own() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            risk_assessed(order, 2, RiskDecision::Reject),
        ]);
        assert_eq!(view.version, 2);
        assert_eq!(view.status, TrackingStatus::Placed);
        assert_eq!(view.timeline.len(), 1);
    }

    #[test]
    fn a_reservation_shows_until_when_items_are_held_and_what_is_backordered() {
        let order = OrderId::new_v7();
        let view = fold(&[placed_event(order, 1), reserved_with_backorder(order, 2)]);
        assert_eq!(view.stock.state, StockState::Reserved);
        assert_eq!(view.stock.reserved_until, Some(at(900)));
        assert_eq!(
            view.stock.backordered,
            [TrackingBackorder {
                line_no: 1,
                sku: "TEE-RED-M".into(),
                quantity: 1
            }]
        );
        assert_eq!(view.status, TrackingStatus::Placed);
        assert_eq!(
            view.timeline[1].summary,
            "Items reserved for you until 16:15 UTC; 1 item is on back-order"
        );
    }

    #[test]
    fn a_failed_reservation_names_the_items_out_of_stock() {
        let order = OrderId::new_v7();
        let view = fold(&[placed_event(order, 1), reservation_failed(order, 2)]);
        assert_eq!(view.stock.state, StockState::Unavailable);
        assert_eq!(view.timeline[1].summary, "Not enough stock of Red tee");
        let view = apply(
            Some(&view),
            &cancelled_for(order, 3, CancelReason::OutOfStock),
        )
        .expect("cancelled");
        assert_eq!(
            view.timeline[2].summary,
            "Order cancelled: items out of stock"
        );
    }

    #[test]
    fn allocation_is_internal_and_clears_the_hold_deadline() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            reserved_event(order, 2),
            allocated_event(order, 3),
        ]);
        assert_eq!(view.version, 3);
        assert_eq!(view.stock.state, StockState::Allocated);
        assert_eq!(view.stock.reserved_until, None);
        assert_eq!(view.timeline.len(), 2);
    }

    #[test]
    fn an_expired_reservation_tells_the_customer_and_the_cancellation_says_why() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            reserved_event(order, 2),
            challenge_event(order, 3),
            released_event(order, 4, ReleaseReason::Expired),
            cancelled_for(order, 5, CancelReason::ReservationExpired),
        ]);
        assert_eq!(view.stock.state, StockState::Released);
        assert_eq!(view.stock.reserved_until, None);
        assert_eq!(view.status, TrackingStatus::Cancelled);
        assert_eq!(view.payment.action_url, None, "nothing left to confirm");
        assert_eq!(
            summaries(&view)[3..],
            [
                "The items held for you went back to stock",
                "Order cancelled: the items were held too long without payment",
            ]
        );
    }

    #[test]
    fn a_release_for_another_reason_adds_no_line_of_its_own() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            reserved_event(order, 2),
            released_event(order, 3, ReleaseReason::PaymentDeclined),
        ]);
        assert_eq!(view.version, 3);
        assert_eq!(view.stock.state, StockState::Released);
        assert_eq!(view.timeline.len(), 2);
    }

    #[test]
    fn a_challenge_waits_for_the_customer_with_the_link_until_authorized() {
        let order = OrderId::new_v7();
        let waiting = fold(&[
            placed_event(order, 1),
            reserved_event(order, 2),
            challenge_event(order, 3),
        ]);
        assert_eq!(waiting.status, TrackingStatus::AwaitingPayment);
        assert_eq!(waiting.payment.state, PaymentState::ActionRequired);
        assert_eq!(waiting.payment.action_url.as_deref(), Some(CHALLENGE_URL));
        assert_eq!(
            waiting.timeline[2].summary,
            "Your bank asks you to confirm this payment"
        );

        let authorized = apply(Some(&waiting), &authorized_event(order, 4)).expect("authorized");
        assert_eq!(authorized.status, TrackingStatus::Placed);
        assert_eq!(authorized.payment.state, PaymentState::Authorized);
        assert_eq!(authorized.payment.action_url, None);
        assert_eq!(authorized.payment.authorized_minor, 3240);
        assert_eq!(authorized.timeline[3].summary, "Payment authorized");
    }

    #[test]
    fn a_decline_says_why_in_words_and_never_the_gateway_message() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            reserved_event(order, 2),
            declined_event(order, 3, "insufficient_funds"),
        ]);
        assert_eq!(view.payment.state, PaymentState::Declined);
        assert_eq!(
            view.payment.decline_message.as_deref(),
            Some("insufficient funds")
        );
        assert_eq!(
            view.timeline[2].summary,
            "We couldn't take payment: insufficient funds"
        );
        assert!(!serde_json::to_string(&view)
            .expect("encode")
            .contains("ref 8841"));
    }

    #[test]
    fn a_failed_challenge_leaves_the_wait_and_drops_the_link() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            challenge_event(order, 2),
            declined_event(order, 3, "authentication_failed"),
        ]);
        assert_eq!(view.status, TrackingStatus::Placed);
        assert_eq!(view.payment.action_url, None);
        assert_eq!(
            view.timeline[2].summary,
            "We couldn't take payment: the payment was not confirmed with your bank"
        );
    }

    #[test]
    fn unknown_or_revealing_decline_codes_read_as_a_plain_decline() {
        assert_eq!(decline_words("stolen_card"), "your card was declined");
        assert_eq!(decline_words("something_new"), "your card was declined");
        assert_eq!(decline_words("expired_card"), "the card has expired");
    }

    /// One of each event of extra charges, store credit and exchanges.
    fn exchange_money(order: OrderId) -> Vec<OrderEvent> {
        use waybill_schemas::events::{
            ExchangeReplacementRequested, ExtraChargeCaptured, ExtraChargeDeclined,
            ExtraChargeRequested, ReplacementUnit, StoreCreditIssued,
        };
        let at = chrono::Utc::now();
        let usd = |minor| {
            waybill_schemas::Money::new(minor, waybill_schemas::Currency::parse("USD").unwrap())
        };
        let charge_id = uuid::Uuid::now_v7();
        vec![
            OrderEvent::ExtraChargeRequested(ExtraChargeRequested {
                order_id: order,
                charge_id,
                amount: usd(1200),
                reason: "dearer size".into(),
                requested_by: "agent".into(),
                return_id: None,
                requested_at: at,
            }),
            OrderEvent::ExtraChargeCaptured(ExtraChargeCaptured {
                order_id: order,
                charge_id,
                authorization_id: "auth_2".into(),
                capture_id: "cap_2".into(),
                amount: usd(1200),
                captured_at: at,
            }),
            OrderEvent::ExtraChargeDeclined(ExtraChargeDeclined {
                order_id: order,
                charge_id: uuid::Uuid::now_v7(),
                code: "insufficient_funds".into(),
                message: "no".into(),
                declined_at: at,
            }),
            OrderEvent::StoreCreditIssued(StoreCreditIssued {
                order_id: order,
                credit_id: uuid::Uuid::now_v7(),
                customer_id: "c-1".into(),
                amount: usd(800),
                reason: "goodwill".into(),
                issued_by: "agent".into(),
                return_id: None,
                issued_at: at,
            }),
            OrderEvent::ExchangeReplacementRequested(ExchangeReplacementRequested {
                order_id: order,
                return_id: format!("{order}-R1"),
                lines: vec![ReplacementUnit {
                    line_no: 1001,
                    for_line_no: 1,
                    sku: waybill_schemas::Sku::parse("TEE-L").unwrap(),
                    quantity: waybill_schemas::Quantity::parse(1).unwrap(),
                    unit_price: usd(2500),
                }],
                replacements_value: usd(2500),
                accepted_value: usd(2000),
                difference: usd(500),
                charge_id: Some(charge_id),
                refund_id: None,
                requested_at: at,
            }),
        ]
    }

    #[test]
    fn extra_charges_and_store_credit_show_on_the_order_without_their_reasons() {
        let order = OrderId::new_v7();
        let mut events = vec![placed_event(order, 1), captured_event(order, 2, 4000)];
        for (i, e) in exchange_money(order).into_iter().enumerate() {
            events.push(envelope(order, 3 + i as i64, e));
        }
        let view = fold(&events);
        assert_eq!(view.payment.captured_minor, 5200);
        assert_eq!(view.payment.extra_charged_minor, 1200);
        assert_eq!(view.payment.store_credit_minor, 800);
        assert_eq!(view.payment.store_credits.len(), 1);
        let lines: Vec<&str> = view.timeline.iter().map(|t| t.summary.as_str()).collect();
        assert!(
            lines.contains(&"Extra payment of 12.00 USD taken from your card"),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"Store credit of 8.00 USD added to your account"),
            "{lines:?}"
        );
        assert!(
            lines.contains(
                &"We couldn't take the extra payment: insufficient funds; we will contact you"
            ),
            "{lines:?}"
        );
        assert!(
            !format!("{lines:?}").contains("dearer"),
            "reasons stay internal"
        );
        // The same credit (same id) seen again is not counted twice.
        let credit = events
            .iter()
            .find(|e| e.event_type == "StoreCreditIssued")
            .unwrap()
            .decode()
            .unwrap();
        let twice = apply(Some(&view), &envelope(order, 99, credit)).unwrap();
        assert_eq!(twice.payment.store_credit_minor, 800);
        assert_eq!(twice.payment.store_credits.len(), 1);
    }

    #[test]
    fn partial_captures_add_up() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            authorized_event(order, 2),
            captured_event(order, 3, 2000),
            captured_event(order, 4, 1240),
        ]);
        assert_eq!(view.payment.captured_minor, 3240);
        assert_eq!(view.timeline[2].summary, "Payment of 20.00 USD taken");
        assert_eq!(view.timeline[3].summary, "Payment of 12.40 USD taken");
    }

    #[test]
    fn a_void_and_an_expired_hold_are_told_to_the_customer() {
        let order = OrderId::new_v7();
        let voided = fold(&[
            placed_event(order, 1),
            authorized_event(order, 2),
            cancelled_event(order, 3),
            voided_event(order, 4),
        ]);
        assert_eq!(voided.payment.state, PaymentState::Voided);
        assert_eq!(voided.status, TrackingStatus::Cancelled);
        assert_eq!(
            voided.timeline[3].summary,
            "The hold on your card was released"
        );

        let other = OrderId::new_v7();
        let expired = fold(&[
            placed_event(other, 1),
            authorized_event(other, 2),
            authorization_expired(other, 3),
        ]);
        assert_eq!(expired.payment.state, PaymentState::Expired);
        assert_eq!(expired.timeline[2].summary, "The hold on your card expired");
    }

    #[test]
    fn a_late_confirmation_never_revives_a_cancelled_order() {
        let order = OrderId::new_v7();
        let view = fold(&[
            placed_event(order, 1),
            cancelled_event(order, 2),
            confirmed_event(order, 3),
        ]);
        assert_eq!(view.status, TrackingStatus::Cancelled);
        assert_eq!(view.version, 3);
    }

    #[test]
    fn every_event_after_placement_advances_the_version() {
        let order = OrderId::new_v7();
        let later: Vec<EventEnvelope> = vec![
            risk_assessed(order, 2, RiskDecision::Accept),
            risk_assessed(order, 2, RiskDecision::Review),
            risk_assessed(order, 2, RiskDecision::Reject),
            review_resolved(order, 2, ReviewDecision::Approve),
            review_resolved(order, 2, ReviewDecision::Reject),
            reserved_event(order, 2),
            reservation_failed(order, 2),
            allocated_event(order, 2),
            released_event(order, 2, ReleaseReason::OrderCancelled),
            challenge_event(order, 2),
            authorized_event(order, 2),
            declined_event(order, 2, "card_declined"),
            captured_event(order, 2, 100),
            voided_event(order, 2),
            authorization_expired(order, 2),
            capture_failed_event(order, 2),
            confirmed_event(order, 2),
            cancelled_event(order, 2),
        ]
        .into_iter()
        .chain(money_events(order, 2))
        .chain(
            super::super::fulfillment::tests::one_of_each(order)
                .into_iter()
                .chain(super::super::cancellation::tests::one_of_each(order))
                .chain(super::super::edit::tests::one_of_each(order))
                .map(|e| envelope(order, 2, e)),
        )
        .chain(
            super::super::returns::tests::one_of_each(order, uuid::Uuid::now_v7())
                .into_iter()
                .map(|e| envelope(order, 2, e)),
        )
        .chain(
            exchange_money(order)
                .into_iter()
                .map(|e| envelope(order, 2, e)),
        )
        .chain(std::iter::once(envelope(order, 2, routing_decided(order))))
        .chain(std::iter::once(envelope(
            order,
            2,
            OrderEvent::NotificationResendRequested(
                waybill_schemas::events::NotificationResendRequested {
                    order_id: order,
                    resend_id: uuid::Uuid::now_v7(),
                    kind: waybill_schemas::notifications::NotificationKind::OrderConfirmed,
                    medium: None,
                    reason: None,
                    requested_at: chrono::Utc::now(),
                },
            ),
        )))
        .collect();
        let kinds: std::collections::HashSet<&str> =
            later.iter().map(|e| e.event_type.as_str()).collect();
        // Placement, plus the two settlement events, the desk's resolution and the erasure,
        // which never reach an order stream.
        assert_eq!(
            kinds.len() + 5,
            waybill_schemas::events::OrderEventKind::ALL.len(),
            "every event kind is covered"
        );
        let placed = apply(None, &placed_event(order, 1)).expect("placed");
        for event in &later {
            let view = apply(Some(&placed), event).expect("applies");
            assert_eq!(view.version, 2, "{}", event.event_type);
            assert_eq!(view.updated_at, event.occurred_at, "{}", event.event_type);
        }
    }

    /// A routing decision's record: the view shows the routes, not the inputs.
    fn routing_decided(order: OrderId) -> OrderEvent {
        use waybill_schemas::events::{RouteCause, RoutingDecided, RoutingOutcome, RoutingShipTo};
        OrderEvent::RoutingDecided(RoutingDecided {
            order_id: order,
            cause: RouteCause::Confirmation,
            decided_at: chrono::Utc::now(),
            config_version: "sha256:0000000000000000".into(),
            shipping_method: "standard".into(),
            pickup_location: None,
            ship_to: RoutingShipTo {
                country: "US".into(),
                postal_zone: 1,
            },
            lines: Vec::new(),
            allocated: Some(Vec::new()),
            free_stock: Vec::new(),
            transit: Vec::new(),
            outcome: RoutingOutcome {
                routes: Vec::new(),
                unroutable_units: 0,
            },
        })
    }

    #[test]
    fn cancellation_before_placement_is_refused() {
        let order = OrderId::new_v7();
        let err = apply(None, &cancelled_event(order, 1)).expect_err("nothing to cancel");
        assert!(matches!(err, TrackingError::NotPlaced { .. }));
    }

    #[test]
    fn a_second_placement_is_refused() {
        let order = OrderId::new_v7();
        let placed = apply(None, &placed_event(order, 1)).expect("placed");
        let err = apply(Some(&placed), &placed_event(order, 2)).expect_err("placed twice");
        assert!(matches!(err, TrackingError::AlreadyPlaced { .. }));
    }

    #[test]
    fn a_payload_that_does_not_match_its_schema_is_a_decode_error() {
        let order = OrderId::new_v7();
        let mut event = placed_event(order, 1);
        event.payload = serde_json::json!({"garbage": true}).into();
        let err = apply(None, &event).expect_err("bad payload");
        assert!(matches!(err, TrackingError::Decode { .. }));
    }
}
