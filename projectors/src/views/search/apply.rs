//! How one event changes an order's search document. Pure: no I/O, no clock; the consumer
//! runtime has already made sure events arrive here once each and in stream order.
//!
//! Status and payment state follow the same rules as the tracking view; on top, the document
//! keeps the customer's personal data and addresses from `OrderPlaced` and collects tags that
//! agents filter on (what went wrong, what needs a look).

use waybill_schemas::events::{Address, CancelReason, OrderPlaced, ReviewDecision, RiskDecision};
use waybill_schemas::views::{
    OrderDocument, PaymentState, SearchAddress, SearchCustomer, SearchLine, TrackingStatus,
};
use waybill_schemas::{EventEnvelope, OrderEvent};

use super::SearchError;

/// Tags that mark an order an agent should look at (`has_exception`).
const EXCEPTION_TAGS: &[&str] = &[
    "risk_rejected",
    "payment_declined",
    "out_of_stock",
    "authorization_expired",
    "capture_failed",
];

/// The document after `event`, given the document before it (`None` before the first event).
pub fn apply(
    document: Option<&OrderDocument>,
    event: &EventEnvelope,
) -> Result<OrderDocument, SearchError> {
    let decoded = event.decode().map_err(|source| SearchError::Decode {
        stream_id: event.stream_id.clone(),
        event_type: event.event_type.clone(),
        version: event.stream_version,
        source,
    })?;
    match (document, decoded) {
        (None, OrderEvent::OrderPlaced(placed)) => Ok(placed_document(event, &placed)),
        (Some(_), OrderEvent::OrderPlaced(_)) => Err(SearchError::AlreadyPlaced {
            stream_id: event.stream_id.clone(),
            version: event.stream_version,
        }),
        (None, other) => Err(SearchError::NotPlaced {
            stream_id: event.stream_id.clone(),
            event_type: other.event_type().to_owned(),
            version: event.stream_version,
        }),
        (Some(document), other) => {
            let mut next = document.clone();
            next.version = event.stream_version;
            next.updated_at = event.occurred_at;
            change(&mut next, &other);
            next.stage = stage(&next).to_owned();
            if EXCEPTION_TAGS.iter().any(|t| next.has_tag(t)) {
                add_tag(&mut next, "exception");
            }
            if !next.rma_numbers.is_empty() {
                add_tag(&mut next, "return");
            }
            Ok(next)
        }
    }
}

fn address(address: &Address) -> SearchAddress {
    SearchAddress {
        name: address.name.clone(),
        line1: address.line1.clone(),
        line2: address.line2.clone(),
        city: address.city.clone(),
        region: address.region.clone(),
        postal_code: address.postal_code.clone(),
        country: address.country.clone(),
    }
}

fn placed_document(event: &EventEnvelope, placed: &OrderPlaced) -> OrderDocument {
    OrderDocument {
        order_id: placed.order_id.to_string(),
        version: event.stream_version,
        channel: placed.channel,
        channel_order_ref: placed.channel_order_ref.clone(),
        customer: SearchCustomer {
            customer_id: placed.customer.customer_id.clone(),
            name: placed.customer.name.clone(),
            email: placed.customer.email.as_str().to_owned(),
            phone: placed.customer.phone.clone(),
        },
        shipping_address: address(&placed.shipping_address),
        billing_address: placed.billing_address.as_ref().map(address),
        lines: placed
            .lines
            .iter()
            .map(|line| SearchLine {
                sku: line.sku.as_str().to_owned(),
                name: line.name.clone(),
                quantity: line.quantity.get(),
            })
            .collect(),
        status: TrackingStatus::Placed,
        stage: "checkout".to_owned(),
        currency: placed.currency.code().to_owned(),
        grand_total_minor: placed.totals.grand_total.minor,
        payment_state: PaymentState::None,
        tracking_numbers: Vec::new(),
        rma_numbers: Vec::new(),
        created_at: placed.placed_at,
        updated_at: event.occurred_at,
        tags: Vec::new(),
    }
}

fn add_tag(document: &mut OrderDocument, tag: &str) {
    if !document.has_tag(tag) {
        document.tags.push(tag.to_owned());
    }
}

fn remove_tag(document: &mut OrderDocument, tag: &str) {
    document.tags.retain(|t| t != tag);
}

fn move_status(document: &mut OrderDocument, from: TrackingStatus, to: TrackingStatus) {
    if document.status == from {
        document.status = to;
    }
}

fn change(document: &mut OrderDocument, event: &OrderEvent) {
    match event {
        OrderEvent::OrderPlaced(_) => {}
        OrderEvent::RiskAssessed(assessed) => match assessed.decision {
            RiskDecision::Accept => {}
            RiskDecision::Review => {
                move_status(document, TrackingStatus::Placed, TrackingStatus::InReview);
                add_tag(document, "fraud_review");
            }
            RiskDecision::Reject => add_tag(document, "risk_rejected"),
        },
        OrderEvent::RiskReviewResolved(resolved) => match resolved.decision {
            ReviewDecision::Approve => {
                move_status(document, TrackingStatus::InReview, TrackingStatus::Placed)
            }
            ReviewDecision::Reject => add_tag(document, "risk_rejected"),
        },
        OrderEvent::InventoryReserved(reserved) => {
            if !reserved.backordered.is_empty() {
                add_tag(document, "backordered");
            }
        }
        OrderEvent::InventoryReservationFailed(_) => add_tag(document, "out_of_stock"),
        OrderEvent::InventoryAllocated(_) | OrderEvent::InventoryReleased(_) => {}
        OrderEvent::PaymentChallengeRequired(_) => {
            document.payment_state = PaymentState::ActionRequired;
            add_tag(document, "payment_action_required");
            move_status(
                document,
                TrackingStatus::Placed,
                TrackingStatus::AwaitingPayment,
            );
            move_status(
                document,
                TrackingStatus::InReview,
                TrackingStatus::AwaitingPayment,
            );
        }
        OrderEvent::PaymentAuthorized(_) => {
            document.payment_state = PaymentState::Authorized;
            remove_tag(document, "payment_action_required");
            move_status(
                document,
                TrackingStatus::AwaitingPayment,
                TrackingStatus::Placed,
            );
        }
        OrderEvent::PaymentDeclined(_) => {
            document.payment_state = PaymentState::Declined;
            remove_tag(document, "payment_action_required");
            add_tag(document, "payment_declined");
            move_status(
                document,
                TrackingStatus::AwaitingPayment,
                TrackingStatus::Placed,
            );
        }
        OrderEvent::PaymentCaptured(_) => document.payment_state = PaymentState::Captured,
        OrderEvent::PaymentVoided(_) => document.payment_state = PaymentState::Voided,
        OrderEvent::PaymentAuthorizationExpired(_) => {
            document.payment_state = PaymentState::Expired;
            add_tag(document, "authorization_expired");
        }
        OrderEvent::PaymentCaptureFailed(_) => {
            document.payment_state = PaymentState::CaptureFailed;
            add_tag(document, "capture_failed");
        }
        OrderEvent::OrderConfirmed(_) => {
            if document.status != TrackingStatus::Cancelled {
                document.status = TrackingStatus::Confirmed;
            }
        }
        OrderEvent::RefundRequested(_)
        | OrderEvent::RefundFailed(_)
        | OrderEvent::ExtraChargeRequested(_) => {}
        OrderEvent::ExtraChargeCaptured(_) => {
            remove_tag(document, "extra_charge_declined");
            add_tag(document, "extra_charge");
        }
        OrderEvent::ExtraChargeDeclined(_) => add_tag(document, "extra_charge_declined"),
        OrderEvent::StoreCreditIssued(_) => add_tag(document, "store_credit"),
        OrderEvent::ExchangeReplacementRequested(_) => add_tag(document, "exchange"),
        OrderEvent::PaymentRefunded(_) => add_tag(document, "refunded"),
        OrderEvent::ChargebackOpened(_) => add_tag(document, "dispute"),
        OrderEvent::ChargebackEvidenceSubmitted(_) => {}
        OrderEvent::ChargebackWon(_) => remove_tag(document, "dispute"),
        OrderEvent::ChargebackLost(_) => {
            remove_tag(document, "dispute");
            add_tag(document, "chargeback_lost");
        }
        OrderEvent::ShipmentCreated(shipment) => {
            if !document
                .tracking_numbers
                .contains(&shipment.tracking_number)
            {
                document
                    .tracking_numbers
                    .push(shipment.tracking_number.clone());
            }
            add_tag(document, "shipped");
        }
        OrderEvent::ShipmentExceptionHandled(_) => add_tag(document, "exception"),
        OrderEvent::FulfillmentShortPicked(_) => add_tag(document, "short_picked"),
        OrderEvent::OrderClosed(_) => add_tag(document, "closed"),
        OrderEvent::ReturnRequested(requested) => {
            if !document.rma_numbers.contains(&requested.return_id) {
                document.rma_numbers.push(requested.return_id.clone());
            }
            remove_tag(document, "closed");
            add_tag(document, "return");
            add_tag(document, "return_open");
        }
        OrderEvent::ReturnRefundDecided(_) => {
            // Open while any return is unresolved; the view counts none, so the latest
            // resolution clears the tag unless another request follows.
            remove_tag(document, "return_open");
        }
        OrderEvent::ReturnLabelIssued(_)
        | OrderEvent::ReturnReceived(_)
        | OrderEvent::ReturnInspected(_)
        | OrderEvent::ReturnRestocked(_) => {}
        OrderEvent::OrderLinesCancelled(_) => add_tag(document, "lines_cancelled"),
        OrderEvent::OrderEdited(edited) => {
            document.lines = edited
                .lines
                .iter()
                .map(|line| SearchLine {
                    sku: line.sku.as_str().to_owned(),
                    name: line.name.clone(),
                    quantity: line.quantity.get(),
                })
                .collect();
            document.grand_total_minor = edited.totals.grand_total.minor;
            if let Some(a) = &edited.shipping_address {
                document.shipping_address = address(a);
            }
            add_tag(document, "edited");
        }
        OrderEvent::CancelledUnitsReleased(_) => {}
        OrderEvent::FulfillmentRouted(_)
        | OrderEvent::FulfillmentSubmitted(_)
        | OrderEvent::FulfillmentProgressed(_)
        | OrderEvent::FulfillmentLinesCancelled(_)
        | OrderEvent::PickupReady(_)
        | OrderEvent::PickupCompleted(_)
        | OrderEvent::ShipmentTracked(_)
        // A message sent again changes nothing searchable.
        | OrderEvent::NotificationResendRequested(_) => {}
        | OrderEvent::RoutingDecided(_)
        | OrderEvent::CustomerErased(_) => {}
        // Settlement and payout events live in streams of their own, never an order's.
        OrderEvent::SettlementReportImported(_)
        | OrderEvent::PayoutRecorded(_)
        | OrderEvent::DeskEntryResolved(_) => {}
        OrderEvent::OrderCancelled(cancelled) => {
            document.status = TrackingStatus::Cancelled;
            remove_tag(document, "payment_action_required");
            add_tag(document, "cancelled");
            match cancelled.reason {
                CancelReason::Fraud => add_tag(document, "risk_rejected"),
                CancelReason::OutOfStock => add_tag(document, "out_of_stock"),
                CancelReason::PaymentFailed => add_tag(document, "payment_declined"),
                CancelReason::CustomerRequest
                | CancelReason::ReservationExpired
                | CancelReason::Timeout
                | CancelReason::Other => {}
            }
        }
    }
}

fn stage(document: &OrderDocument) -> &'static str {
    match document.status {
        TrackingStatus::Cancelled => "cancelled",
        TrackingStatus::InReview => "fraud_review",
        TrackingStatus::AwaitingPayment => "awaiting_payment",
        TrackingStatus::Confirmed if document.payment_state == PaymentState::Captured => "captured",
        TrackingStatus::Confirmed => "confirmed",
        TrackingStatus::Placed => "checkout",
    }
}
