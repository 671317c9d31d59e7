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
