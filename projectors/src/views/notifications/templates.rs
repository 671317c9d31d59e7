//! The words of every message, per locale: a subject, the email's text part (its HTML part is
//! made from it, [`super::email_html`]) and a text message of at most 160 characters and one
//! line. English and German; a message always exists in every locale (the compiler checks that
//! each locale has a text for each kind). Reasons are put into the customer's words: a gateway's
//! decline message or the risk rules' reasons are never shown.

use waybill_schemas::events::CancelReason;

use super::render::{Locale, Message, OrderContact};
use crate::views::tracking::{cancel_reason_words, decline_words};

/// One message in words.
pub struct Content {
    pub subject: String,
    pub email: String,
    pub sms: String,
}

/// `message` about the order of `contact`, in `locale`; `link` is the order's signed tracking
/// page.
pub fn words(contact: &OrderContact, message: &Message, link: &str, locale: Locale) -> Content {
    match locale {
        Locale::En => english(contact, message, link),
        Locale::De => german(contact, message, link),
    }
}

fn english(contact: &OrderContact, message: &Message, link: &str) -> Content {
    let order = &contact.order_ref;
    let name = &contact.name;
    let total = contact.grand_total;
    let follow = format!("Follow your order here:\n{link}\n");
    let (subject, email, sms) = match message {
        Message::OrderReceived { lines } => {
            let items: String = lines
                .iter()
                .map(|l| format!("  {} x {}  {}\n", l.quantity, l.name, l.total))
                .collect();
            (
                format!("We received your order {order}"),
                format!(
                    "Thank you for your order {order}. We are checking it now and will write \
                     again once it is confirmed.\n\n{items}\n  Total  {total}\n\n{follow}"
                ),
                format!("We received your order {order} ({total})."),
            )
        }
        Message::ActionRequired {
            challenge_url,
            expires_at,
        } => {
            let until = expires_at.format("%H:%M UTC");
            (
                format!("Please confirm your payment for order {order}"),
                format!(
                    "Your bank asks you to confirm the payment of {total} for order {order}.\n\
                     Please confirm it here before {until}:\n{challenge_url}\n\n\
                     If it is not confirmed in time, the order will be cancelled.\n"
                ),
                format!(
                    "Your bank asks you to confirm the payment for order {order}: {challenge_url}"
                ),
            )
        }
        Message::OrderConfirmed => (
            format!("Your order {order} is confirmed"),
            format!(
                "Good news: your order {order} ({total}) is confirmed and we are preparing \
                 it.\n\n{follow}"
            ),
            format!("Order {order} confirmed: {link}"),
        ),
        Message::PaymentFailed { code } => {
            let why = decline_words(code);
            (
                format!("We couldn't take payment for order {order}"),
                format!("We couldn't take the payment of {total} for order {order}: {why}.\n"),
                format!("We couldn't take payment for order {order}: {why}."),
            )
        }
        Message::OrderCancelled { reason } => {
            let why = cancel_reason_words(*reason);
            (
                format!("Your order {order} was cancelled"),
                format!(
                    "Your order {order} was cancelled: {why}.\n\nThe details are here:\n{link}\n"
                ),
                format!("Your order {order} was cancelled: {why}."),
            )
        }
        Message::Shipped {
            carrier,
            tracking_number,
            tracking_url,
            eta,
            ..
        } => (
            format!("Your order {order} is on its way"),
            format!(
                "Your order {order} has shipped with {carrier} (tracking number \
                 {tracking_number}). It should arrive by {eta}.\n\n\
                 The carrier's tracking:\n{tracking_url}\n\n{follow}",
                eta = eta.format("%Y-%m-%d"),
            ),
            format!("Order {order} shipped with {carrier}, tracking {tracking_number}."),
        ),
        Message::OutForDelivery { .. } => (
            format!("Your order {order} arrives today"),
            format!("Your order {order} is out for delivery and arrives today.\n\n{follow}"),
            format!("Order {order} is out for delivery today."),
        ),
        Message::ReadyForPickup {
            code_hint,
            collect_by,
        } => {
            let store = contact.pickup_store.as_deref().unwrap_or("the store");
            let by = collect_by.format("%Y-%m-%d");
            (
                format!("Your order {order} is ready for pickup"),
                format!(
                    "Your order {order} is ready for you at {store}. Please collect it by \
                     {by} and show your pickup code (it ends in {code_hint}).\n\n{follow}"
                ),
                format!("Order {order} is ready for pickup at {store} until {by}."),
            )
        }
        Message::Delivered { delivered_at, .. } => (
            format!("Your order {order} was delivered"),
            format!(
                "Your order {order} was delivered on {at}. We hope you enjoy it.\n\n{follow}",
                at = delivered_at.format("%Y-%m-%d %H:%M UTC"),
            ),
            format!("Order {order} was delivered."),
        ),
        Message::RefundIssued { amount } => (
            format!("We refunded {amount} for order {order}"),
            format!(
                "We refunded {amount} for your order {order}. Depending on your bank it can \
                 take a few days to show on your statement.\n\n{follow}"
            ),
            format!("We refunded {amount} for order {order}."),
        ),
    };
    Content {
        subject,
        email: format!("Hello {name},\n\n{email}"),
        sms,
    }
}

fn german(contact: &OrderContact, message: &Message, link: &str) -> Content {
    let order = &contact.order_ref;
    let name = &contact.name;
    let total = contact.grand_total;
    let follow = format!("Ihre Bestellung verfolgen Sie hier:\n{link}\n");
    let (subject, email, sms) = match message {
        Message::OrderReceived { lines } => {
            let items: String = lines
                .iter()
                .map(|l| format!("  {} x {}  {}\n", l.quantity, l.name, l.total))
                .collect();
            (
                format!("Wir haben Ihre Bestellung {order} erhalten"),
                format!(
                    "vielen Dank für Ihre Bestellung {order}. Wir prüfen sie gerade und melden \
                     uns wieder, sobald sie bestätigt ist.\n\n{items}\n  Summe  {total}\n\n\
                     {follow}"
                ),
                format!("Wir haben Ihre Bestellung {order} ({total}) erhalten."),
            )
        }
        Message::ActionRequired {
            challenge_url,
            expires_at,
        } => {
            let until = expires_at.format("%H:%M UTC");
            (
                format!("Bitte bestätigen Sie die Zahlung für Bestellung {order}"),
                format!(
                    "Ihre Bank bittet Sie, die Zahlung von {total} für Bestellung {order} zu \
                     bestätigen.\nBitte bestätigen Sie sie hier vor {until}:\n{challenge_url}\n\n\
                     Ohne rechtzeitige Bestätigung wird die Bestellung storniert.\n"
                ),
                format!("Bitte bestätigen Sie die Zahlung für Bestellung {order}: {challenge_url}"),
            )
        }
        Message::OrderConfirmed => (
            format!("Ihre Bestellung {order} ist bestätigt"),
            format!(
                "gute Nachricht: Ihre Bestellung {order} ({total}) ist bestätigt und wird \
                 vorbereitet.\n\n{follow}"
            ),
            format!("Bestellung {order} bestätigt: {link}"),
        ),
        Message::PaymentFailed { code } => {
            let why = german_decline(code);
            (
                format!("Zahlung für Bestellung {order} fehlgeschlagen"),
                format!(
                    "Die Zahlung von {total} für Bestellung {order} ist fehlgeschlagen: {why}.\n"
                ),
                format!("Zahlung für Bestellung {order} fehlgeschlagen: {why}."),
            )
        }
        Message::OrderCancelled { reason } => {
            let why = german_cancel_reason(*reason);
            (
                format!("Ihre Bestellung {order} wurde storniert"),
                format!(
                    "Ihre Bestellung {order} wurde storniert: {why}.\n\nDie Einzelheiten \
                     finden Sie hier:\n{link}\n"
                ),
                format!("Ihre Bestellung {order} wurde storniert: {why}."),
            )
        }
        Message::Shipped {
            carrier,
            tracking_number,
            tracking_url,
            eta,
            ..
        } => (
            format!("Ihre Bestellung {order} ist unterwegs"),
            format!(
                "Ihre Bestellung {order} wurde mit {carrier} verschickt (Sendungsnummer \
                 {tracking_number}). Sie sollte bis {eta} ankommen.\n\n\
                 Sendungsverfolgung des Versanddienstes:\n{tracking_url}\n\n{follow}",
                eta = eta.format("%d.%m.%Y"),
            ),
            format!(
                "Bestellung {order} mit {carrier} verschickt, Sendungsnummer {tracking_number}."
            ),
        ),
        Message::OutForDelivery { .. } => (
            format!("Ihre Bestellung {order} kommt heute"),
            format!(
                "Ihre Bestellung {order} ist in der Zustellung und kommt heute an.\n\n{follow}"
            ),
            format!("Bestellung {order} wird heute zugestellt."),
        ),
        Message::ReadyForPickup {
            code_hint,
            collect_by,
        } => {
            let store = contact.pickup_store.as_deref().unwrap_or("der Filiale");
            let by = collect_by.format("%d.%m.%Y");
            (
                format!("Ihre Bestellung {order} liegt zur Abholung bereit"),
                format!(
                    "Ihre Bestellung {order} liegt für Sie bereit: {store}. Bitte holen Sie \
                     sie bis {by} ab und zeigen Sie Ihren Abholcode (er endet auf \
                     {code_hint}).\n\n{follow}"
                ),
                format!("Bestellung {order} liegt bis {by} zur Abholung bereit: {store}."),
            )
        }
        Message::Delivered { delivered_at, .. } => (
            format!("Ihre Bestellung {order} wurde zugestellt"),
            format!(
                "Ihre Bestellung {order} wurde am {at} zugestellt. Viel Freude damit!\n\n{follow}",
                at = delivered_at.format("%d.%m.%Y %H:%M UTC"),
            ),
            format!("Bestellung {order} wurde zugestellt."),
        ),
        Message::RefundIssued { amount } => (
            format!("Erstattung von {amount} für Bestellung {order}"),
            format!(
                "wir haben {amount} für Ihre Bestellung {order} erstattet. Je nach Bank kann \
                 es einige Tage dauern, bis der Betrag auf Ihrem Konto erscheint.\n\n{follow}"
            ),
            format!("Wir haben {amount} für Bestellung {order} erstattet."),
        ),
    };
    Content {
        subject,
        email: format!("Hallo {name},\n\n{email}"),
        sms,
    }
}

/// A gateway decline code in German words; like [`decline_words`], never more than the
/// customer should read.
fn german_decline(code: &str) -> &'static str {
    match decline_words(code) {
        "insufficient funds" => "nicht genügend Deckung",
        "the card has expired" => "die Karte ist abgelaufen",
        "the card's security code was wrong" => "die Kartenprüfnummer war falsch",
        "the payment was not confirmed with your bank" => {
            "die Zahlung wurde bei Ihrer Bank nicht bestätigt"
        }
        "the payment could not be processed" => "die Zahlung konnte nicht verarbeitet werden",
        "the card details could not be used" => "die Kartendaten konnten nicht verwendet werden",
        _ => "Ihre Karte wurde abgelehnt",
    }
}

fn german_cancel_reason(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::CustomerRequest => "auf Ihren Wunsch",
        CancelReason::Fraud => "wir konnten diese Bestellung nicht verifizieren",
        CancelReason::OutOfStock => "Artikel nicht vorrätig",
        CancelReason::PaymentFailed => "die Zahlung ist fehlgeschlagen",
        CancelReason::ReservationExpired => "die Artikel waren zu lange ohne Zahlung reserviert",
        CancelReason::Timeout => "ein Schritt wurde nicht rechtzeitig abgeschlossen",
        CancelReason::Other => "sonstiger Grund",
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use waybill_schemas::{Currency, Money, OrderId};

    use super::*;
    use crate::views::notifications::render::LineSummary;

    fn contact() -> OrderContact {
        let eur = Currency::parse("EUR").expect("EUR");
        OrderContact {
            order_id: OrderId::new_v7(),
            name: "Ada Lovelace".into(),
            email: waybill_schemas::Email::parse("ada@example.com").expect("email"),
            phone: Some("+49 30 555 0142".into()),
            order_ref: "WEB-1234".into(),
            grand_total: Money::new(3240, eur),
            customer_id: Some("cust-1".into()),
            pickup_store: Some("Waybill Mitte, Torstr. 1".into()),
        }
    }

    fn every_message() -> Vec<Message> {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
        let eur = Currency::parse("EUR").expect("EUR");
        vec![
            Message::OrderReceived {
                lines: vec![LineSummary {
                    quantity: 2,
                    name: "Red tee".into(),
                    total: Money::new(3240, eur),
                }],
            },
            Message::ActionRequired {
                challenge_url: "https://bank.example/3ds/1".into(),
                expires_at: at,
            },
            Message::OrderConfirmed,
            Message::PaymentFailed {
                code: "insufficient_funds".into(),
            },
            Message::OrderCancelled {
                reason: CancelReason::OutOfStock,
            },
            Message::Shipped {
                shipment_id: "S1".into(),
                carrier: "parcelco".into(),
                tracking_number: "PC1".into(),
                tracking_url: "https://carrier.example/PC1".into(),
                eta: at,
            },
            Message::OutForDelivery {
                shipment_id: "S1".into(),
            },
            Message::ReadyForPickup {
                code_hint: "42".into(),
                collect_by: at,
            },
            Message::Delivered {
                shipment_id: "S1".into(),
                delivered_at: at,
            },
            Message::RefundIssued {
                amount: Money::new(1200, eur),
            },
        ]
    }

    #[test]
    fn every_kind_has_words_in_every_locale_and_texts_fit_one_sms() {
        let contact = contact();
        for message in every_message() {
            for locale in Locale::ALL {
                let content = words(&contact, &message, "https://s.example/t/1?token=ab", locale);
                assert!(content.subject.contains("WEB-1234"), "{}", content.subject);
                assert!(content.email.contains("WEB-1234"), "{}", content.email);
                assert!(!content.sms.contains('\n'), "{}", content.sms);
                assert!(
                    content.sms.chars().count() <= 160,
                    "{:?} {locale:?}: {} chars",
                    message.kind(),
                    content.sms.chars().count()
                );
            }
        }
    }

    #[test]
    fn german_messages_are_german_and_english_ones_english() {
        let contact = contact();
        let message = Message::RefundIssued {
            amount: Money::new(1200, Currency::parse("EUR").expect("EUR")),
        };
        let de = words(&contact, &message, "https://s.example", Locale::De);
        assert!(de.email.starts_with("Hallo Ada Lovelace,"), "{}", de.email);
        assert_eq!(
            de.subject,
            "Erstattung von 12.00 EUR für Bestellung WEB-1234"
        );
        let en = words(&contact, &message, "https://s.example", Locale::En);
        assert!(en.email.starts_with("Hello Ada Lovelace,"), "{}", en.email);
        assert_eq!(en.subject, "We refunded 12.00 EUR for order WEB-1234");
    }

    #[test]
    fn a_german_decline_never_says_more_than_the_english_one() {
        assert_eq!(
            german_decline("insufficient_funds"),
            "nicht genügend Deckung"
        );
        assert_eq!(german_decline("stolen_card"), "Ihre Karte wurde abgelehnt");
    }
}
