//! How one event changes an order's tracking view. Pure: no I/O, no clock; the consumer runtime
//! has already made sure events arrive here once each and in stream order.

use waybill_schemas::events::{CancelReason, OrderCancelled, OrderPlaced};
use waybill_schemas::views::{
    TimelineEntry, TrackingLine, TrackingStatus, TrackingTotals, TrackingView,
};
use waybill_schemas::{EventEnvelope, OrderEvent};

use super::TrackingError;

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
        (Some(view), OrderEvent::OrderCancelled(cancelled)) => {
            Ok(cancelled_view(view, event, &cancelled))
        }
        (Some(view), other) => {
            let mut next = view.clone();
            next.version = event.stream_version;
            next.updated_at = event.occurred_at;
            next.timeline
                .push(timeline_entry(event, other.event_type().to_owned()));
            Ok(next)
        }
    }
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
        timeline: vec![timeline_entry(event, summary)],
    }
}

fn cancelled_view(
    view: &TrackingView,
    event: &EventEnvelope,
    cancelled: &OrderCancelled,
) -> TrackingView {
    let mut next = view.clone();
    next.version = event.stream_version;
    next.status = TrackingStatus::Cancelled;
    next.cancellation_reason = Some(cancelled.reason.as_str().to_owned());
    next.updated_at = event.occurred_at;
    next.timeline.push(timeline_entry(
        event,
        format!("Order cancelled: {}", reason_words(cancelled.reason)),
    ));
    next
}

fn timeline_entry(event: &EventEnvelope, summary: String) -> TimelineEntry {
    TimelineEntry {
        version: event.stream_version,
        event_type: event.event_type.clone(),
        occurred_at: event.occurred_at,
        summary,
    }
}

fn reason_words(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::CustomerRequest => "requested by the customer",
        CancelReason::Fraud => "flagged as fraudulent",
        CancelReason::OutOfStock => "items out of stock",
        CancelReason::PaymentFailed => "payment failed",
        CancelReason::ReservationExpired => "the items were held too long without payment",
        CancelReason::Timeout => "a step was not completed in time",
        CancelReason::Other => "other reason",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cancelled_event, placed_event};
    use waybill_schemas::OrderId;

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
        assert_eq!(view.timeline.len(), 1);
        assert_eq!(
            view.timeline[0].summary,
            "Order placed: 2 items for 32.40 USD"
        );
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
        event.payload = serde_json::json!({"garbage": true});
        let err = apply(None, &event).expect_err("bad payload");
        assert!(matches!(err, TrackingError::Decode { .. }));
    }
}
