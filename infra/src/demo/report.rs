//! The demo's closing table: one row per order with its label, final status and payment state
//! from the tracking view, its event types in short form, whether it ended as labelled, and the
//! customer's tracking link. Pure: the rows come in as data.

use std::fmt::Write as _;

/// One order's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub label: &'static str,
    pub order_id: String,
    /// From the tracking view; `None` when the view never showed the order.
    pub status: Option<String>,
    pub payment: Option<String>,
    pub events: Vec<String>,
    pub as_labelled: bool,
    pub settled: bool,
    pub link: String,
}

/// An event type as the table shows it.
pub fn short(event_type: &str) -> &str {
    match event_type {
        "OrderPlaced" => "placed",
        "RiskAssessed" => "risk",
        "RiskReviewResolved" => "reviewed",
        "InventoryReserved" => "reserved",
        "InventoryReservationFailed" => "no-stock",
        "InventoryAllocated" => "allocated",
        "InventoryReleased" => "released",
        "PaymentChallengeRequired" => "3ds",
        "PaymentAuthorized" => "authorized",
        "PaymentDeclined" => "declined",
        "PaymentCaptured" => "captured",
        "PaymentVoided" => "voided",
        "PaymentAuthorizationExpired" => "auth-expired",
        "OrderConfirmed" => "confirmed",
        "OrderCancelled" => "cancelled",
        other => other,
    }
}

/// The table, two lines per order: the outcome, then the order id and tracking link.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<34} {:<10} {:<9} events",
        "  order", "status", "payment"
    );
    for row in rows {
        let mark = match (row.settled, row.as_labelled) {
            (false, _) => "…",
            (true, true) => "✓",
            (true, false) => "✗",
        };
        let events: Vec<&str> = row.events.iter().map(|e| short(e)).collect();
        let _ = writeln!(
            out,
            "  {mark} {:<32} {:<10} {:<9} {}",
            row.label,
            row.status.as_deref().unwrap_or("?"),
            row.payment.as_deref().unwrap_or("?"),
            events.join(" › ")
        );
        let _ = writeln!(out, "      {}  {}", row.order_id, row.link);
    }
    out
}

/// "18 of 20 orders ended as labelled", with the ones that did not.
pub fn summary(rows: &[Row]) -> (bool, String) {
    let good = rows.iter().filter(|r| r.settled && r.as_labelled).count();
    let mut text = format!("{good} of {} orders ended as labelled", rows.len());
    let off: Vec<String> = rows
        .iter()
        .filter(|r| !(r.settled && r.as_labelled))
        .map(|r| {
            let how = if r.settled {
                "ended otherwise"
            } else {
                "did not settle in time"
            };
            format!("{} ({how})", r.label)
        })
        .collect();
    if !off.is_empty() {
        let _ = write!(text, "; not: {}", off.join(", "));
    }
    (off.is_empty(), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &'static str, settled: bool, as_labelled: bool) -> Row {
        Row {
            label,
            order_id: "0190f0c4-0000-7000-8000-000000000001".to_owned(),
            status: Some("confirmed".to_owned()),
            payment: Some("captured".to_owned()),
            events: ["OrderPlaced", "RiskAssessed", "PaymentCaptured"]
                .map(str::to_owned)
                .to_vec(),
            as_labelled,
            settled,
            link: "http://127.0.0.1:8081/v1/orders/0190f0c4-0000-7000-8000-000000000001/tracking?token=t"
                .to_owned(),
        }
    }

    #[test]
    fn each_order_gets_its_outcome_line_and_its_link_line() {
        let table = render(&[
            row("card approved", true, true),
            row("3-D Secure failed", true, false),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[1].starts_with("  ✓ card approved"));
        assert!(lines[1].contains("confirmed"));
        assert!(
            lines[1].ends_with("placed › risk › captured"),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains("/tracking?token=t"));
        assert!(lines[3].starts_with("  ✗ 3-D Secure failed"));
    }

    #[test]
    fn the_summary_names_what_did_not_end_as_labelled() {
        let (all, text) = summary(&[row("a", true, true), row("b", true, true)]);
        assert!(all);
        assert_eq!(text, "2 of 2 orders ended as labelled");
        let (all, text) = summary(&[
            row("a", true, true),
            row("b", false, false),
            row("c", true, false),
        ]);
        assert!(!all);
        assert_eq!(
            text,
            "1 of 3 orders ended as labelled; not: b (did not settle in time), c (ended otherwise)"
        );
    }

    #[test]
    fn unknown_event_types_are_shown_as_they_are() {
        assert_eq!(short("PaymentChallengeRequired"), "3ds");
        assert_eq!(short("OrderShipped"), "OrderShipped");
    }
}
