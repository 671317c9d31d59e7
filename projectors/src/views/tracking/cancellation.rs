//! How cancelled units change the tracking view: the lines' cancelled quantities and one
//! timeline line saying what was cancelled and what that is worth (refunded if it was charged,
//! otherwise not charged: the refund itself shows up when the card is credited). Pure.

use waybill_schemas::views::TrackingView;
use waybill_schemas::OrderEvent;

/// Applies a line-cancellation event; returns the customer's timeline line, if any.
pub(super) fn change(view: &mut TrackingView, event: &OrderEvent) -> Option<String> {
    match event {
        OrderEvent::OrderLinesCancelled(cancelled) => {
            let mut units = 0_u32;
            for line in &cancelled.lines {
                units = units.saturating_add(line.quantity.get());
                if let Some(l) = view.lines.iter_mut().find(|l| l.line_no == line.line_no) {
                    l.cancelled_quantity = l.cancelled_quantity.saturating_add(line.quantity.get());
                }
            }
            let items = if units == 1 {
                "1 item".to_owned()
            } else {
                format!("{units} items")
            };
            Some(format!(
                "{items} cancelled ({}): {} will not be charged or will be refunded",
                cancelled.reason.as_str().replace('_', " "),
                cancelled.value
            ))
        }
        // Stock and node work behind the scenes.
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use chrono::{TimeZone, Utc};
    use waybill_schemas::events::{
        CancelReason, CancelledUnits, CancelledUnitsReleased, OrderLinesCancelled,
    };
    use waybill_schemas::{Currency, Money, OrderEvent, OrderId, Quantity, Sku};

    use super::super::apply;
    use crate::testing::{envelope, placed_event};

    /// One of each line-cancellation event.
    pub(crate) fn one_of_each(order: OrderId) -> Vec<OrderEvent> {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
        let id = uuid::Uuid::now_v7();
        vec![
            OrderEvent::OrderLinesCancelled(OrderLinesCancelled {
                order_id: order,
                cancellation_id: id,
                lines: vec![CancelledUnits {
                    line_no: 1,
                    sku: Sku::parse("TEE-RED-M").unwrap(),
                    quantity: Quantity::parse(1).unwrap(),
                    fulfillment_id: None,
                }],
                reason: CancelReason::CustomerRequest,
                note: None,
                value: Money::new(1_620, Currency::parse("USD").unwrap()),
                requested_by: "web".into(),
                cancelled_at: at,
            }),
            OrderEvent::CancelledUnitsReleased(CancelledUnitsReleased {
                order_id: order,
                cancellation_id: id,
                nodes_amended: vec![],
                released_units: 1,
                released_at: at,
            }),
        ]
    }

    #[test]
    fn cancelled_units_show_on_their_line_with_what_they_were_worth() {
        let order = OrderId::new_v7();
        let mut view = apply(None, &placed_event(order, 1)).expect("placed");
        for (i, event) in one_of_each(order).into_iter().enumerate() {
            view = apply(Some(&view), &envelope(order, i as i64 + 2, event)).expect("applies");
        }
        let line = view.lines.iter().find(|l| l.line_no == 1).expect("line 1");
        assert_eq!(line.cancelled_quantity, 1);
        let said: Vec<&str> = view.timeline.iter().map(|e| e.summary.as_str()).collect();
        assert!(
            said.contains(&"1 item cancelled (customer request): 16.20 USD will not be charged or will be refunded"),
            "{said:?}"
        );
        // The stock release is not the customer's business: no second line.
        assert_eq!(said.iter().filter(|s| s.contains("cancelled")).count(), 1);
    }
}
