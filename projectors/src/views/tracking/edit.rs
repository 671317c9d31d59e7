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
