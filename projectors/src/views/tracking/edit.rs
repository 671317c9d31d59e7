//! How an order edit changes the tracking view: the edited lines and totals replace the old
//! ones (replacement units of exchanges stay), and one timeline line says what the order now
//! costs. Pure.

use waybill_schemas::events::{EditMoneyAction, OrderEdited};
use waybill_schemas::views::{TrackingLine, TrackingTotals, TrackingView};

/// Applies an `OrderEdited`; returns the customer's timeline line.
pub(super) fn change(view: &mut TrackingView, edited: &OrderEdited) -> Option<String> {
    let replacements: Vec<TrackingLine> = view
        .lines
        .iter()
        .filter(|l| l.line_no >= waybill_schemas::events::FIRST_REPLACEMENT_LINE)
        .cloned()
        .collect();
    view.lines = edited
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
        .chain(replacements)
        .collect();
    let t = &edited.totals;
    view.totals = TrackingTotals {
        subtotal_minor: t.subtotal.minor,
        discount_minor: t.discount_total.minor,
        tax_minor: t.tax_total.minor,
        shipping_minor: t.shipping_total.minor,
        grand_total_minor: t.grand_total.minor,
    };
    let items: u32 = edited.lines.iter().map(|l| l.quantity.get()).sum();
    let money = match edited.money_action {
        EditMoneyAction::None | EditMoneyAction::CaptureLess => String::new(),
        EditMoneyAction::WithinAuthorization => " (covered by your card authorization)".to_owned(),
        EditMoneyAction::ExtraCharge => format!("; {} will be charged", edited.difference),
        EditMoneyAction::Refund => format!(
            "; {} will be refunded",
            waybill_schemas::Money::new(-edited.difference.minor, edited.difference.currency)
        ),
    };
    let address = if edited.shipping_address.is_some() {
        ", new delivery address"
    } else {
        ""
    };
    Some(format!(
        "Order changed: {items} {} for {}{address}{money}",
        if items == 1 { "item" } else { "items" },
        t.grand_total
    ))
}

#[cfg(test)]
pub(super) mod tests {
    use chrono::{TimeZone, Utc};
    use waybill_schemas::events::{EditMoneyAction, OrderEdited};
    use waybill_schemas::{Money, OrderEvent, OrderId, Quantity};

    use super::super::apply;
    use crate::testing::{envelope, placed, placed_event};

    /// An edit of the test order: its first line down to one unit, a refund of the difference.
    pub(crate) fn one_of_each(order: OrderId) -> Vec<OrderEvent> {
        let before = placed(order);
        let mut line = before.lines[0].clone();
        let per_unit = line.total.minor / i64::from(line.quantity.get().max(1));
        line.quantity = Quantity::parse(1).unwrap();
        line.total = Money::new(per_unit, line.total.currency);
        let mut totals = before.totals.clone();
        let difference = line.total.minor - before.lines[0].total.minor;
        totals.grand_total = Money::new(totals.grand_total.minor + difference, before.currency);
        vec![OrderEvent::OrderEdited(OrderEdited {
            order_id: order,
            edit_id: uuid::Uuid::now_v7(),
            lines: vec![line],
            discounts: before.discounts.clone(),
            shipping: before.shipping.clone(),
            previous_total: before.totals.grand_total,
            difference: Money::new(difference, before.currency),
            totals,
            shipping_address: None,
            money_action: EditMoneyAction::Refund,
            requested_by: "web".into(),
            edited_at: Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
        })]
    }

    #[test]
    fn an_edit_replaces_the_lines_and_total_and_says_what_the_order_now_costs() {
        let order = OrderId::new_v7();
        let view = apply(None, &placed_event(order, 1)).expect("placed");
        let Some(OrderEvent::OrderEdited(edited)) = one_of_each(order).pop() else {
            panic!("one edit");
        };
        let view = apply(
            Some(&view),
            &envelope(order, 2, OrderEvent::OrderEdited(edited.clone())),
        )
        .expect("applies");
        assert_eq!(view.lines.len(), 1);
        assert_eq!(view.lines[0].quantity, 1);
        assert_eq!(
            view.totals.grand_total_minor,
            edited.totals.grand_total.minor
        );
        let said = &view.timeline.last().expect("a timeline line").summary;
        assert!(
            said.starts_with(&format!(
                "Order changed: 1 item for {}",
                edited.totals.grand_total
            )) && said.ends_with("will be refunded"),
            "{said}"
        );
    }
}
