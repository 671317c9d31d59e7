//! The HTML part of a customer email, written with maud: the same words as the text part (its
//! paragraphs, with the lines that are links made links), every value from the order escaped by
//! the template engine, so a name or an address line holding markup stays text. No script, no
//! remote content: a mail client shows it as it is.

use maud::{html, Markup, DOCTYPE};

use super::render::Notification;

/// The HTML body of an email `message` (its text part, `message.body`, is the source).
pub fn email_html(message: &Notification) -> String {
    let subject = message.subject.as_deref().unwrap_or("Your order");
    html! {
        (DOCTYPE)
        html lang=(message.locale.as_str()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (subject) }
            }
            body {
                h1 { (subject) }
                @for paragraph in message.body.split("\n\n").map(str::trim_end).filter(|p| !p.trim().is_empty()) {
                    (paragraph_markup(paragraph))
                }
            }
        }
    }
    .into_string()
}

/// One paragraph: its lines, a line that is a web address as a link.
fn paragraph_markup(paragraph: &str) -> Markup {
    html! {
        p {
            @for (i, line) in paragraph.lines().enumerate() {
                @if i > 0 { br; }
                @let trimmed = line.trim();
                @if is_link(trimmed) {
                    a href=(trimmed) { (trimmed) }
                } @else {
                    (line)
                }
            }
        }
    }
}

fn is_link(line: &str) -> bool {
    (line.starts_with("https://") || line.starts_with("http://"))
        && !line.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;
    use waybill_schemas::OrderId;

    use super::*;
    use crate::views::notifications::render::{Medium, NotificationKind};

    fn email(subject: &str, body: &str) -> Notification {
        Notification {
            event_id: Uuid::nil(),
            order_id: OrderId::from_uuid(Uuid::nil()),
            kind: NotificationKind::OrderReceived,
            medium: Medium::Email,
            to: "ada@example.com".into(),
            subject: Some(subject.into()),
            body: body.into(),
            occurred_at: Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap(),
            locale: crate::views::notifications::render::Locale::En,
            requested: false,
            draft: crate::views::notifications::render::test_draft(OrderId::from_uuid(Uuid::nil())),
        }
    }

    #[test]
    fn hostile_order_data_in_an_email_is_text_never_markup() {
        let html = email_html(&email(
            "We received your order <script>alert(1)</script>",
            "Hello <script>alert(1)</script>,\n\n  1 x Mug <img src=x onerror=alert(1)>  12.50 EUR\n\n\
             Follow your order here:\nhttps://shop.example/track/x?token=a&b=\"><script>\n",
        ));
        assert!(
            !html.contains("<script") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            html.contains("Hello &lt;script&gt;alert(1)&lt;/script&gt;,"),
            "{html}"
        );
        assert!(
            html.contains("Mug &lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(
            html.contains(
                "<title>We received your order &lt;script&gt;alert(1)&lt;/script&gt;</title>"
            ),
            "{html}"
        );
    }

    #[test]
    fn paragraphs_stay_paragraphs_and_a_link_line_is_a_link() {
        let html = email_html(&email(
            "Your order WEB-1 is confirmed",
            "Hello Ada,\n\nIt is confirmed.\n\nFollow your order here:\nhttps://shop.example/track/1?token=t&x=1\n",
        ));
        assert!(
            html.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{html}"
        );
        assert!(
            html.contains("<p>Hello Ada,</p><p>It is confirmed.</p>"),
            "{html}"
        );
        assert!(
            html.contains(
                "<p>Follow your order here:<br><a href=\"https://shop.example/track/1?token=t&amp;x=1\">"
            ),
            "{html}"
        );
    }
}
