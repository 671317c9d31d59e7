//! The tracking page as HTML: one document for the first load, and the `<main>` fragment the
//! live-update stream sends when the order moves. Pure functions of the view, written as maud
//! templates: every value from the view is escaped by the template engine (nothing reaches the
//! page unescaped unless it is marked so, and nothing here is), and the markup is checked when
//! the crate compiles. Accessible by construction: `lang`, landmarks (header, main, footer),
//! headings per section, labelled form fields, text colours at WCAG AA contrast or better, and a
//! polite live region so screen readers hear status changes. No inline script or style: the
//! Content-Security-Policy allows `'self'` only.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use waybill_schemas::views::{
    PaymentState, ReturnStatus, ShipmentStatus, StockState, TrackingReturn, TrackingShipment,
    TrackingStatus, TrackingView,
};
use waybill_schemas::{Currency, Money};

/// The page's stylesheet, served at [`STYLESHEET_PATH`] (the CSP allows no inline style).
pub const STYLESHEET: &str = include_str!("assets/page.css");
pub const STYLESHEET_PATH: &str = "/track/assets/page.css";
/// The live-update script, served at [`SCRIPT_PATH`] (the CSP allows no inline script).
pub const SCRIPT: &str = include_str!("assets/page.js");
pub const SCRIPT_PATH: &str = "/track/assets/page.js";

/// What `<main>` carries for the live-update script: the view version and the stream URL.
struct Live<'a> {
    version: i64,
    events_url: &'a str,
}

/// A whole page around `main`, with the live-update script when `live` is given.
fn document(title: &str, live: Option<Live<'_>>, main: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) }
                link rel="stylesheet" href=(STYLESHEET_PATH);
                @if live.is_some() {
                    script src=(SCRIPT_PATH) defer {}
                }
            }
            body {
                header { a href="/track" { "Waybill · Order tracking" } }
                main id="main"
                    data-version=[live.as_ref().map(|l| l.version.to_string())]
                    data-events=[live.as_ref().map(|l| l.events_url)] {
                    (main)
                }
                footer {
                    p { "Questions about your order? Reply to your confirmation email." }
                    p id="live-note" class="live" aria-live="polite" {}
                }
            }
        }
    }
    .into_string()
}

/// The tracking page of one order. `events_url` is where the page listens for updates.
pub fn tracking_page(view: &TrackingView, events_url: &str, stale: bool) -> String {
    document(
        &format!("Order {} · Waybill", view.channel_order_ref),
        Some(Live {
            version: view.version,
            events_url,
        }),
        tracking_markup(view, stale),
    )
}

/// The content of `<main>` for one order (also the live-update fragment).
pub fn tracking_main(view: &TrackingView, stale: bool) -> String {
    tracking_markup(view, stale).into_string()
}

/// Amounts of the view's currency in words ("12.50 EUR"); raw minor units when the currency is
/// not one the server knows.
fn money_of(view: &TrackingView) -> impl Fn(i64) -> String + '_ {
    let currency = Currency::parse(&view.currency).ok();
    move |minor: i64| match currency {
        Some(currency) => Money { minor, currency }.to_string(),
        None => format!("{minor} (minor units) {}", view.currency),
    }
}

fn tracking_markup(view: &TrackingView, stale: bool) -> Markup {
    let money = money_of(view);
    let action_url = view
        .payment
        .action_url
        .as_deref()
        .filter(|_| view.payment.state == PaymentState::ActionRequired);
    html! {
        h1 { "Order " (view.channel_order_ref) }
        p {
            span id="status" class="status" role="status" data-status=(status_slug(view.status)) {
                (status_label(view.status))
            }
        }
        p id="status-detail" { (status_detail(view)) }
        @if stale {
            p class="live" id="stale" {
                "Your latest change is still on its way; this page shows it as soon as it arrives."
            }
        }
        @if let Some(url) = action_url {
            p { a class="button" href=(url) { "Confirm your payment with your bank" } }
        }
        section aria-labelledby="h-summary" {
            h2 id="h-summary" { "Summary" }
            dl class="facts" {
                dt { "Placed" } dd { (when(view.placed_at)) }
                dt { "Payment" } dd id="payment" { (payment_words(view, &money)) }
                dt { "Items" } dd id="stock" { (stock_words(view.stock.state)) }
                dt { "Delivery" } dd { (view.shipping_method) }
                dt { "Total" } dd { (money(view.totals.grand_total_minor)) }
            }
        }
        @if !view.shipments.is_empty() {
            section aria-labelledby="h-shipments" id="shipments" {
                h2 id="h-shipments" { "Shipments" }
                @for (n, shipment) in view.shipments.iter().enumerate() {
                    (shipment_card(n + 1, shipment))
                }
            }
        }
        @if let Some(pickup) = &view.pickup {
            // A cancelled order (every unit cancelled, an uncollected pickup included) is no
            // longer held at the store, whatever the store reported before.
            @let cancelled = view.status == TrackingStatus::Cancelled;
            section aria-labelledby="h-pickup" id="pickup" {
                h2 id="h-pickup" { "Pick up in store" }
                div class="card" {
                    p { strong { (pickup.store_name) } br; (pickup.address) }
                    p {
                        @if cancelled {
                            "Cancelled: this order is no longer held for collection"
                        } @else if pickup.ready {
                            "Ready for collection"
                        } @else {
                            "We'll tell you when it's ready"
                        }
                    }
                    p { (pickup.instructions) }
                    @if let Some(by) = pickup.collect_by.filter(|_| !cancelled) {
                        p { "Collect by " (when(by)) }
                    }
                }
            }
        }
        @if !view.returns.is_empty() {
            section aria-labelledby="h-returns" id="returns" {
                h2 id="h-returns" { "Returns" }
                @for ret in &view.returns {
                    (return_card(ret, &money))
                }
            }
        }
        section aria-labelledby="h-items" {
            h2 id="h-items" { "Items" }
            table {
                caption class="live" { "Items in this order" }
                thead {
                    tr {
                        th scope="col" { "Item" }
                        th scope="col" class="num" { "Qty" }
                        th scope="col" class="num" { "Price" }
                    }
                }
                tbody {
                    @for line in &view.lines {
                        tr {
                            td { (line.name) }
                            td class="num" { (line.quantity.to_string()) }
                            td class="num" { (money(line.total_minor)) }
                        }
                    }
                }
                tfoot {
                    tr {
                        th scope="row" colspan="2" { "Total" }
                        td class="num" { (money(view.totals.grand_total_minor)) }
                    }
                }
            }
        }
        section aria-labelledby="h-timeline" {
            h2 id="h-timeline" { "What happened" }
            ol class="timeline" id="timeline" {
                @for entry in view.timeline.iter().rev() {
                    li { (when(entry.occurred_at)) (entry.summary) }
                }
            }
        }
    }
}

fn shipment_card(n: usize, shipment: &TrackingShipment) -> Markup {
    html! {
        div class="card" {
            h3 { "Parcel " (n.to_string()) " · " (shipment.carrier) }
            p { (shipment_words(shipment.status)) }
            @if let Some(eta) = shipment.eta {
                p { "Expected " (when(eta)) }
            }
            @match (&shipment.tracking_url, &shipment.tracking_number) {
                (Some(url), number) => {
                    p {
                        a href=(url) {
                            "Track with " (shipment.carrier) " " (number.as_deref().unwrap_or_default())
                        }
                    }
                }
                (None, Some(number)) => { p { "Tracking number " (number) } }
                (None, None) => {}
            }
            @if !shipment.progress.is_empty() {
                ol class="timeline" {
                    @for step in &shipment.progress {
                        li {
                            (when(step.at)) (step.description)
                            @if let Some(location) = &step.location { " · " (location) }
                        }
                    }
                }
            }
        }
    }
}

fn return_card(ret: &TrackingReturn, money: &dyn Fn(i64) -> String) -> Markup {
    let units: u32 = ret.lines.iter().map(|l| l.quantity).sum();
    let label = ret
        .label_url
        .as_deref()
        .filter(|_| ret.refund_minor.is_none());
    html! {
        div class="card" {
            h3 { "Return " (ret.rma) }
            p { (return_words(ret.status)) }
            p { (crate::screens::plural::count(units, "item", "items")) }
            @if let Some(url) = label {
                p { a href=(url) { "Print your return label" } }
                p { (ret.instructions.as_deref().unwrap_or_default()) }
            }
            @if ret.fees_minor > 0 {
                p { "Return fees: " (money(ret.fees_minor)) }
            }
            @if let Some(x) = &ret.exchange {
                @let n: u32 = x.lines.iter().map(|l| l.quantity).sum();
                @let skus: Vec<&str> = x.lines.iter().map(|l| l.sku.as_str()).collect();
                @let difference = match x.difference_minor {
                    0 => "same price".to_owned(),
                    d if d > 0 => format!("{} charged to your card", money(d)),
                    d => format!("{} refunded", money(-d)),
                };
                @let sending = if x.shipment_id.is_some() {
                    "shipped"
                } else if x.fulfillment_id.is_some() {
                    "being prepared"
                } else {
                    "waiting"
                };
                p {
                    "Exchange: " (crate::screens::plural::count(n, "replacement item", "replacement items")) " (" (skus.join(", ")) "), "
                    (sending) "; price difference: " (difference)
                }
            } @else if ret.refunded_minor > 0 {
                p { "Refunded " (money(ret.refunded_minor)) }
            } @else if let Some(refund) = ret.refund_minor {
                @if refund > 0 {
                    p { "Refund of " (money(refund)) " on its way" }
                } @else {
                    p { "No refund for this return" }
                }
            } @else {
                p { "Expected refund " (money(ret.expected_refund_minor)) }
            }
        }
    }
}

/// The `/track` form, with an error line after a failed lookup.
pub fn lookup_page(error: Option<&str>, order_number: &str) -> String {
    document(
        "Track your order · Waybill",
        None,
        html! {
            h1 { "Track your order" }
            @if let Some(error) = error {
                p class="error" id="lookup-error" role="alert" { (error) }
            }
            form method="post" action="/track" {
                label for="order_number" { "Order number" }
                input id="order_number" name="order_number" required autocomplete="off"
                    value=(order_number);
                label for="contact" { "Email address or delivery postcode" }
                input id="contact" name="contact" required autocomplete="email";
                p { button type="submit" { "Find my order" } }
            }
            p {
                "Your order number is in your confirmation email. The link in that email opens \
                 your order directly."
            }
        },
    )
}

/// The friendly page for a link that does not open an order: one text for "no such order" and
/// "not yours", so it tells a guesser nothing.
pub fn not_found_page() -> String {
    document(
        "Order not found · Waybill",
        None,
        html! {
            h1 { "We couldn't open this order" }
            p id="not-found" {
                "The link may be incomplete or out of date. Check that you copied the whole link \
                 from your email, or find your order with its number and your email address."
            }
            p { a class="button" href="/track" { "Find my order" } }
        },
    )
}

/// The page for a client that sent too many requests.
pub fn rate_limited_page(retry_after_secs: u64) -> String {
    document(
        "Please wait · Waybill",
        None,
        html! {
            h1 { "Please wait a moment" }
            p {
                "Too many requests from your connection. Try again in "
                (retry_after_secs.to_string()) " seconds."
            }
        },
    )
}

fn when(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) { (at.format("%d %b %Y, %H:%M UTC").to_string()) }
    }
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
    fn markup_in_form_values_is_escaped() {
        let page = lookup_page(Some("<b>"), "\"><img src=x>");
        assert!(!page.contains("<img") && !page.contains("<b>"), "{page}");
        assert!(
            page.contains("value=\"&quot;&gt;&lt;img src=x&gt;\""),
            "{page}"
        );
        assert!(page.contains("lang=\"en\""));
        assert!(page.contains("<label for=\"order_number\">"));
    }

    #[test]
    fn hostile_order_data_is_text_on_the_page_never_markup() {
        let hostile = "<script>alert(1)</script>";
        let page = tracking_page(
            &view(serde_json::json!({
                "channel_order_ref": format!("WEB-{hostile}"),
                "shipping_method": hostile,
                "lines": [{"line_no": 1, "sku": "MUG", "name": format!("Mug {hostile}"),
                           "quantity": 1, "unit_price_minor": 1250, "total_minor": 1250}],
                "pickup": {"store_name": hostile, "address": format!("1 {hostile} St"),
                           "instructions": "\" onmouseover=\"alert(1)", "ready": false,
                           "ready_at": null, "collect_by": null},
                "shipments": [{"shipment_id": "s1", "carrier": hostile, "tracking_number": hostile,
                    "tracking_url": "https://carrier.example/t?\"><script>x</script>",
                    "status": "in_transit", "lines": [],
                    "progress": [{"at": "2026-11-26T08:00:00Z", "description": hostile,
                                  "location": hostile}]}],
                "timeline": [{"version": 1, "event_type": "OrderPlaced",
                              "occurred_at": "2026-11-25T10:00:00Z", "summary": hostile}]
            })),
            "/track/x/events?token=\"><script>",
            false,
        );
        // The only script element is the page's own, from its own origin.
        assert_eq!(page.matches("<script").count(), 1, "{page}");
        assert!(page.contains(&format!("<script src=\"{SCRIPT_PATH}\" defer></script>")));
        assert!(!page.contains("onmouseover=\""), "{page}");
        assert!(
            page.contains("Mug &lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(
            page.contains("1 &lt;script&gt;alert(1)&lt;/script&gt; St"),
            "{page}"
        );
        assert!(page.contains("&quot; onmouseover=&quot;alert(1)"), "{page}");
        assert!(page.contains("data-events=\"/track/x/events?token=&quot;&gt;&lt;script&gt;\""));
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
            html.contains("Exchange: 1 replacement item (MUG-XL), being prepared; price difference: 5.00 EUR charged to your card"),
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
        assert!(page.contains("2 items"));
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
