//! The tracking page as HTML: one document for the first load, and the `<main>` fragment the
//! live-update stream sends when the order moves. Pure functions of the view; every value from
//! the view is escaped. Accessible by construction: `lang`, landmarks (header, main, footer),
//! headings per section, labelled form fields, text colours at WCAG AA contrast or better, and a
//! polite live region so screen readers hear status changes.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use waybill_schemas::views::{
    PaymentState, ReturnStatus, ShipmentStatus, StockState, TrackingStatus, TrackingView,
};
use waybill_schemas::{Currency, Money};

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's stylesheet, served at [`STYLESHEET_PATH`] (the CSP allows no inline style).
pub const STYLESHEET: &str = include_str!("assets/page.css");
pub const STYLESHEET_PATH: &str = "/track/assets/page.css";
/// The live-update script, served at [`SCRIPT_PATH`] (the CSP allows no inline script).
pub const SCRIPT: &str = include_str!("assets/page.js");
pub const SCRIPT_PATH: &str = "/track/assets/page.js";

/// A whole page around `main_html`, with the live-update script when `live`.
fn document(title: &str, main_attrs: &str, main_html: &str, live: bool) -> String {
    let script = if live {
        format!("<script src=\"{SCRIPT_PATH}\" defer></script>")
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\">\
<title>{title}</title><link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\">{script}</head><body>\
<header><a href=\"/track\">Waybill · Order tracking</a></header>\
<main id=\"main\"{main_attrs}>{main_html}</main>\
<footer><p>Questions about your order? Reply to your confirmation email.</p>\
<p id=\"live-note\" class=\"live\" aria-live=\"polite\"></p></footer></body></html>",
        title = escape(title),
    )
}

/// The tracking page of one order. `events_url` is where the page listens for updates.
pub fn tracking_page(view: &TrackingView, events_url: &str, stale: bool) -> String {
    document(
        &format!("Order {} · Waybill", view.channel_order_ref),
        &format!(
            " data-version=\"{}\" data-events=\"{}\"",
            view.version,
            escape(events_url)
        ),
        &tracking_main(view, stale),
        true,
    )
}

/// The content of `<main>` for one order (also the live-update fragment).
pub fn tracking_main(view: &TrackingView, stale: bool) -> String {
    let mut html = String::with_capacity(4096);
    let currency = Currency::parse(&view.currency).ok();
    let money = |minor: i64| match currency {
        Some(currency) => Money { minor, currency }.to_string(),
        None => format!("{minor} (minor units) {}", view.currency),
    };
    let status = status_slug(view.status);
    let _ = write!(
        html,
        "<h1>Order {number}</h1>\
<p><span id=\"status\" class=\"status\" role=\"status\" data-status=\"{status}\">{label}</span></p>\
<p id=\"status-detail\">{detail}</p>",
        number = escape(&view.channel_order_ref),
        label = status_label(view.status),
        detail = escape(&status_detail(view)),
    );
    if stale {
        html.push_str(
            "<p class=\"live\" id=\"stale\">Your latest change is still on its way; this page \
             shows it as soon as it arrives.</p>",
        );
    }
    if let Some(url) = &view.payment.action_url {
        if view.payment.state == PaymentState::ActionRequired {
            let _ = write!(
                html,
                "<p><a class=\"button\" href=\"{}\">Confirm your payment with your bank</a></p>",
                escape(url)
            );
        }
    }

    html.push_str("<section aria-labelledby=\"h-summary\"><h2 id=\"h-summary\">Summary</h2><dl class=\"facts\">");
    let _ = write!(
        html,
        "<dt>Placed</dt><dd>{placed}</dd><dt>Payment</dt><dd id=\"payment\">{payment}</dd>\
<dt>Items</dt><dd id=\"stock\">{stock}</dd><dt>Delivery</dt><dd>{method}</dd>\
<dt>Total</dt><dd>{total}</dd>",
        placed = when(view.placed_at),
        payment = escape(&payment_words(view, &money)),
        stock = stock_words(view.stock.state),
        method = escape(&view.shipping_method),
        total = escape(&money(view.totals.grand_total_minor)),
    );
    html.push_str("</dl></section>");

    if !view.shipments.is_empty() {
        html.push_str(
            "<section aria-labelledby=\"h-shipments\" id=\"shipments\"><h2 id=\"h-shipments\">Shipments</h2>",
        );
        for (n, shipment) in view.shipments.iter().enumerate() {
            let _ = write!(
                html,
                "<div class=\"card\"><h3>Parcel {n} · {carrier}</h3><p>{status}</p>",
                n = n + 1,
                carrier = escape(&shipment.carrier),
                status = shipment_words(shipment.status),
            );
            if let Some(eta) = shipment.eta {
                let _ = write!(html, "<p>Expected {}</p>", when(eta));
            }
            match (&shipment.tracking_url, &shipment.tracking_number) {
                (Some(url), number) => {
                    let _ = write!(
                        html,
                        "<p><a href=\"{}\">Track with {} {}</a></p>",
                        escape(url),
                        escape(&shipment.carrier),
                        escape(number.as_deref().unwrap_or_default())
                    );
                }
                (None, Some(number)) => {
                    let _ = write!(html, "<p>Tracking number {}</p>", escape(number));
                }
                (None, None) => {}
            }
            if !shipment.progress.is_empty() {
                html.push_str("<ol class=\"timeline\">");
                for step in &shipment.progress {
                    let _ = write!(
                        html,
                        "<li>{}{}{}</li>",
                        when(step.at),
                        escape(&step.description),
                        step.location
                            .as_deref()
                            .map(|l| format!(" · {}", escape(l)))
                            .unwrap_or_default()
                    );
                }
                html.push_str("</ol>");
            }
            html.push_str("</div>");
        }
        html.push_str("</section>");
    }

    if let Some(pickup) = &view.pickup {
        // A cancelled order (every unit cancelled, an uncollected pickup included) is no
        // longer held at the store, whatever the store reported before.
        let cancelled = view.status == TrackingStatus::Cancelled;
        let _ = write!(
            html,
            "<section aria-labelledby=\"h-pickup\" id=\"pickup\"><h2 id=\"h-pickup\">Pick up in store</h2>\
<div class=\"card\"><p><strong>{store}</strong><br>{address}</p><p>{ready}</p><p>{instructions}</p>{collect}</div></section>",
            store = escape(&pickup.store_name),
            address = escape(&pickup.address),
            ready = if cancelled {
                "Cancelled: this order is no longer held for collection".to_owned()
            } else if pickup.ready {
                "Ready for collection".to_owned()
            } else {
                "We'll tell you when it's ready".to_owned()
            },
            instructions = escape(&pickup.instructions),
            collect = pickup
                .collect_by
                .filter(|_| !cancelled)
                .map(|t| format!("<p>Collect by {}</p>", when(t)))
                .unwrap_or_default(),
        );
    }

    if !view.returns.is_empty() {
        html.push_str(
            "<section aria-labelledby=\"h-returns\" id=\"returns\"><h2 id=\"h-returns\">Returns</h2>",
        );
        for ret in &view.returns {
            let units: u32 = ret.lines.iter().map(|l| l.quantity).sum();
            let _ = write!(
                html,
                "<div class=\"card\"><h3>Return {rma}</h3><p>{status}</p><p>{units} item(s)</p>{label}{fees}{refund}</div>",
                rma = escape(&ret.rma),
                status = return_words(ret.status),
                label = match (&ret.label_url, &ret.instructions) {
                    (Some(url), instructions) if ret.refund_minor.is_none() => format!(
                        "<p><a href=\"{}\">Print your return label</a></p><p>{}</p>",
                        escape(url),
                        escape(instructions.as_deref().unwrap_or_default())
                    ),
                    _ => String::new(),
                },
                fees = if ret.fees_minor > 0 {
                    format!("<p>Return fees: {}</p>", escape(&money(ret.fees_minor)))
                } else {
                    String::new()
                },
                refund = if let Some(x) = &ret.exchange {
                    let n: u32 = x.lines.iter().map(|l| l.quantity).sum();
                    let skus: Vec<&str> = x.lines.iter().map(|l| l.sku.as_str()).collect();
                    let difference = match x.difference_minor {
                        0 => "same price".to_owned(),
                        d if d > 0 => format!("{} charged to your card", money(d)),
                        d => format!("{} refunded", money(-d)),
                    };
                    let sending = if x.shipment_id.is_some() {
                        "shipped"
                    } else if x.fulfillment_id.is_some() {
                        "being prepared"
                    } else {
                        "waiting"
                    };
                    format!(
                        "<p>Exchange: {n} replacement item(s) ({}), {sending}; price difference: {}</p>",
                        escape(&skus.join(", ")),
                        escape(&difference)
                    )
                } else if ret.refunded_minor > 0 {
                    format!("<p>Refunded {}</p>", escape(&money(ret.refunded_minor)))
                } else if let Some(refund) = ret.refund_minor {
                    if refund > 0 {
                        format!("<p>Refund of {} on its way</p>", escape(&money(refund)))
                    } else {
                        "<p>No refund for this return</p>".to_owned()
                    }
                } else {
                    format!(
                        "<p>Expected refund {}</p>",
                        escape(&money(ret.expected_refund_minor))
                    )
                },
            );
        }
        html.push_str("</section>");
    }

    html.push_str("<section aria-labelledby=\"h-items\"><h2 id=\"h-items\">Items</h2><table><caption class=\"live\">Items in this order</caption><thead><tr><th scope=\"col\">Item</th><th scope=\"col\" class=\"num\">Qty</th><th scope=\"col\" class=\"num\">Price</th></tr></thead><tbody>");
    for line in &view.lines {
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&line.name),
            line.quantity,
            escape(&money(line.total_minor))
        );
    }
    let _ = write!(
        html,
        "</tbody><tfoot><tr><th scope=\"row\" colspan=\"2\">Total</th><td class=\"num\">{}</td></tr></tfoot></table></section>",
        escape(&money(view.totals.grand_total_minor))
    );

    html.push_str("<section aria-labelledby=\"h-timeline\"><h2 id=\"h-timeline\">What happened</h2><ol class=\"timeline\" id=\"timeline\">");
    for entry in view.timeline.iter().rev() {
        let _ = write!(
            html,
            "<li>{}{}</li>",
            when(entry.occurred_at),
            escape(&entry.summary)
        );
    }
    html.push_str("</ol></section>");
    html
}

/// The `/track` form, with an error line after a failed lookup.
pub fn lookup_page(error: Option<&str>, order_number: &str) -> String {
    let error_html = error
        .map(|e| {
            format!(
                "<p class=\"error\" id=\"lookup-error\" role=\"alert\">{}</p>",
                escape(e)
            )
        })
        .unwrap_or_default();
    let main = format!(
        "<h1>Track your order</h1>{error_html}\
<form method=\"post\" action=\"/track\">\
<label for=\"order_number\">Order number</label>\
<input id=\"order_number\" name=\"order_number\" required autocomplete=\"off\" value=\"{number}\">\
<label for=\"contact\">Email address or delivery postcode</label>\
<input id=\"contact\" name=\"contact\" required autocomplete=\"email\">\
<p><button type=\"submit\">Find my order</button></p></form>\
<p>Your order number is in your confirmation email. The link in that email opens your order directly.</p>",
        number = escape(order_number),
    );
    document("Track your order · Waybill", "", &main, false)
}

/// The friendly page for a link that does not open an order: one text for "no such order" and
/// "not yours", so it tells a guesser nothing.
pub fn not_found_page() -> String {
    document(
        "Order not found · Waybill",
        "",
        "<h1>We couldn't open this order</h1>\
<p id=\"not-found\">The link may be incomplete or out of date. Check that you copied the whole \
link from your email, or find your order with its number and your email address.</p>\
<p><a class=\"button\" href=\"/track\">Find my order</a></p>",
        false,
    )
}

/// The page for a client that sent too many requests.
pub fn rate_limited_page(retry_after_secs: u64) -> String {
    document(
        "Please wait · Waybill",
        "",
        &format!(
            "<h1>Please wait a moment</h1><p>Too many requests from your connection. Try again in \
             {retry_after_secs} seconds.</p>"
        ),
        false,
    )
}

fn when(at: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        at.to_rfc3339(),
        at.format("%d %b %Y, %H:%M UTC")
    )
}

pub fn status_slug(status: TrackingStatus) -> &'static str {
    match status {
        TrackingStatus::Placed => "placed",
        TrackingStatus::InReview => "in_review",
        TrackingStatus::AwaitingPayment => "awaiting_payment",
        TrackingStatus::Confirmed => "confirmed",
        TrackingStatus::Cancelled => "cancelled",
    }
}

fn status_label(status: TrackingStatus) -> &'static str {
    match status {
        TrackingStatus::Placed => "Received",
        TrackingStatus::InReview => "Being checked",
        TrackingStatus::AwaitingPayment => "Waiting for your payment",
        TrackingStatus::Confirmed => "Confirmed",
        TrackingStatus::Cancelled => "Cancelled",
    }
}

fn status_detail(view: &TrackingView) -> String {
    match view.status {
        TrackingStatus::Placed => "We have your order and are getting it ready.".into(),
        TrackingStatus::InReview => {
            "We're checking your order. This usually takes a few hours.".into()
        }
        TrackingStatus::AwaitingPayment => "Your bank asks you to confirm the payment.".into(),
        TrackingStatus::Confirmed => {
            "Payment secured and your items are set aside. We'll send it soon.".into()
        }
        TrackingStatus::Cancelled => match &view.cancellation_reason {
            Some(reason) => format!("This order was cancelled ({}).", reason.replace('_', " ")),
            None => "This order was cancelled.".into(),
        },
    }
}

fn payment_words(view: &TrackingView, money: &dyn Fn(i64) -> String) -> String {
    let payment = &view.payment;
    match payment.state {
        PaymentState::None => "Not taken yet".into(),
        PaymentState::ActionRequired => "Waiting for you to confirm with your bank".into(),
        PaymentState::Authorized => {
            format!("{} held on your card", money(payment.authorized_minor))
        }
        PaymentState::Captured => {
            let mut words = format!("{} paid", money(payment.captured_minor));
            if payment.extra_charged_minor > 0 {
                let _ = write!(
                    words,
                    " (including {} for an exchange)",
                    money(payment.extra_charged_minor)
                );
            }
            if payment.refunded_minor > 0 {
                let _ = write!(
                    words,
                    "; {} refunded to your card",
                    money(payment.refunded_minor)
                );
            }
            if payment.store_credit_minor > 0 {
                let _ = write!(
                    words,
                    "; {} given as store credit",
                    money(payment.store_credit_minor)
                );
            }
            words
        }
        PaymentState::Declined => match &payment.decline_message {
            Some(why) => format!("Declined: {why}"),
            None => "Declined".into(),
        },
        PaymentState::Voided => "Released, nothing was charged".into(),
        PaymentState::Expired => "Hold expired, nothing was charged".into(),
        PaymentState::CaptureFailed => {
            "We could not take payment, nothing was charged; we will contact you".into()
        }
    }
}

fn stock_words(state: StockState) -> &'static str {
    match state {
        StockState::None => "Checking availability",
        StockState::Reserved => "Set aside for you",
        StockState::Allocated => "Set aside at the warehouse",
        StockState::Released => "Released",
        StockState::Unavailable => "Not available",
    }
}

fn shipment_words(status: ShipmentStatus) -> &'static str {
    match status {
        ShipmentStatus::LabelCreated => "Label created",
        ShipmentStatus::PickedUp => "Picked up by the carrier",
        ShipmentStatus::InTransit => "On its way",
        ShipmentStatus::OutForDelivery => "Out for delivery",
        ShipmentStatus::Delivered => "Delivered",
        ShipmentStatus::Exception => "Delayed: the carrier reported a problem",
        ShipmentStatus::ReturnedToSender => "Returned to us by the carrier",
    }
}

fn return_words(status: ReturnStatus) -> &'static str {
    match status {
        ReturnStatus::Requested => "Requested: your return label is on its way",
        ReturnStatus::Approved | ReturnStatus::LabelIssued => "Label ready: send the items back",
        ReturnStatus::Received => "Received, checking the items",
        ReturnStatus::Inspected => "Checked: your refund is on its way",
        ReturnStatus::Refunded => "Refunded",
        ReturnStatus::Rejected => "Not accepted",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_view_values_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let page = lookup_page(Some("<b>"), "\"><img src=x>");
        assert!(!page.contains("<img"));
        assert!(page.contains("lang=\"en\""));
        assert!(page.contains("<label for=\"order_number\">"));
    }

    fn view(extra: serde_json::Value) -> TrackingView {
        let mut base = serde_json::json!({
            "order_id": "0190f0c4-0000-7000-8000-000000000001", "version": 3,
            "status": "confirmed", "channel": "web", "channel_order_ref": "WEB-<7>",
            "currency": "EUR",
            "lines": [{"line_no": 1, "sku": "MUG", "name": "Mug <b>", "quantity": 2,
                       "unit_price_minor": 1250, "total_minor": 2500}],
            "totals": {"subtotal_minor": 2500, "discount_minor": 0, "tax_minor": 0,
                       "shipping_minor": 0, "grand_total_minor": 2500},
            "shipping_method": "standard", "placed_at": "2026-11-25T10:00:00Z",
            "updated_at": "2026-11-25T10:05:00Z", "cancellation_reason": null,
            "timeline": [{"version": 1, "event_type": "OrderPlaced",
                          "occurred_at": "2026-11-25T10:00:00Z", "summary": "Order placed"}]
        });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn an_exchange_and_store_credit_show_on_the_page() {
        let html = tracking_main(
            &view(serde_json::json!({
                "payment": {"state": "captured", "captured_minor": 3000, "extra_charged_minor": 500,
                            "store_credit_minor": 700},
                "returns": [{"rma": "RMA-2", "status": "inspected", "lines": [],
                             "updated_at": "2026-11-27T09:00:00Z",
                             "exchange": {"lines": [{"line_no": 1001, "for_line_no": 1, "sku": "MUG-XL",
                                                     "quantity": 1}],
                                          "difference_minor": 500, "fulfillment_id": "o-F2"}}]
            })),
            false,
        );
        assert!(
            html.contains("Exchange: 1 replacement item(s) (MUG-XL), being prepared; price difference: 5.00 EUR charged to your card"),
            "{html}"
        );
        assert!(html.contains("30.00 EUR paid (including 5.00 EUR for an exchange); 7.00 EUR given as store credit"), "{html}");
        assert!(
            !html.contains("Expected refund"),
            "an exchange expects no refund"
        );
    }

    #[test]
    fn optional_sections_render_only_when_the_view_has_them() {
        let plain = tracking_main(&view(serde_json::json!({})), false);
        assert!(plain.contains("data-status=\"confirmed\""));
        assert!(plain.contains("25.00 EUR"));
        assert!(plain.contains("Order WEB-&lt;7&gt;") && plain.contains("Mug &lt;b&gt;"));
        for id in [
            "id=\"shipments\"",
            "id=\"pickup\"",
            "id=\"returns\"",
            "id=\"stale\"",
        ] {
            assert!(!plain.contains(id), "{id} without data");
        }
        let full = tracking_main(
            &view(serde_json::json!({
                "shipments": [{"shipment_id": "s1", "carrier": "DHL", "tracking_number": "JD01",
                    "tracking_url": "https://carrier.example/t?n=JD01&x=1", "status": "in_transit",
                    "eta": "2026-11-28T12:00:00Z", "lines": [{"line_no": 1, "quantity": 2}],
                    "progress": [{"at": "2026-11-26T08:00:00Z", "description": "Departed hub",
                                  "location": "Leeds"}]}],
                "pickup": {"store_name": "Soho", "address": "1 Old St", "instructions": "Bring ID",
                           "ready": true, "ready_at": null, "collect_by": "2026-11-30T18:00:00Z"},
                "returns": [{"rma": "RMA-9", "status": "refunded", "lines": [],
                             "refunded_minor": 1250, "updated_at": "2026-11-27T09:00:00Z"}]
            })),
            true,
        );
        assert!(full.contains("id=\"shipments\"") && full.contains("On its way"));
        assert!(full.contains("href=\"https://carrier.example/t?n=JD01&amp;x=1\""));
        assert!(full.contains("Expected <time datetime=\"2026-11-28T12:00:00+00:00\""));
        assert!(full.contains("Departed hub · Leeds"));
        assert!(
            full.contains("id=\"pickup\"")
                && full.contains("Bring ID")
                && full.contains("Ready for collection")
        );
        assert!(full.contains("Return RMA-9") && full.contains("Refunded 12.50 EUR"));
        assert!(full.contains("id=\"stale\""));
    }

    #[test]
    fn a_cancelled_pickup_is_not_ready_for_collection() {
        let pickup = serde_json::json!({"store_name": "Soho", "address": "1 Old St",
            "instructions": "Bring ID", "ready": true, "ready_at": null,
            "collect_by": "2026-11-30T18:00:00Z"});
        let page = tracking_main(
            &view(
                serde_json::json!({"status": "cancelled", "cancellation_reason": "timeout",
                                     "pickup": pickup}),
            ),
            false,
        );
        assert!(page.contains("data-status=\"cancelled\""), "{page}");
        assert!(page.contains("no longer held for collection"), "{page}");
        assert!(!page.contains("Ready for collection"), "{page}");
        assert!(!page.contains("Collect by"), "{page}");
    }

    #[test]
    fn a_return_with_its_label_shows_how_to_send_it_back_the_fees_and_the_expected_refund() {
        let page = tracking_main(
            &view(serde_json::json!({
                "returns": [{"rma": "X-R1", "status": "label_issued",
                             "lines": [{"line_no": 1, "quantity": 2}],
                             "label_url": "https://carrier.example/labels/RT1?a=1&b=2",
                             "instructions": "Drop it at any <parcelco> point.",
                             "fees_minor": 495, "expected_refund_minor": 2005,
                             "updated_at": "2026-11-27T09:00:00Z"}]
            })),
            false,
        );
        assert!(page.contains("Label ready: send the items back"), "{page}");
        assert!(page.contains("href=\"https://carrier.example/labels/RT1?a=1&amp;b=2\""));
        assert!(page.contains("Drop it at any &lt;parcelco&gt; point."));
        assert!(page.contains("2 item(s)"));
        assert!(page.contains("Return fees: 4.95 EUR"));
        assert!(page.contains("Expected refund 20.05 EUR"));
        let rejected = tracking_main(
            &view(serde_json::json!({
                "returns": [{"rma": "X-R2", "status": "rejected", "lines": [],
                             "refund_minor": 0, "updated_at": "2026-11-27T09:00:00Z"}]
            })),
            false,
        );
        assert!(rejected.contains("Not accepted") && !rejected.contains("Print your return label"));
        assert!(rejected.contains("No refund for this return"));
    }
}
