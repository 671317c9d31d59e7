use super::*;
use crate::testing::*;
use waybill_schemas::events::CancelReason;
use waybill_schemas::EventEnvelope;

const SECRET: &[u8] = b"notify-secret";

fn links() -> Links {
    Links {
        public_tracking_base_url: "https://shop.example/orders/".into(),
        tracking: TrackingKeys::new(SECRET),
    }
}

/// Whether `token` opens `order` a minute after `event` (and not with another secret).
fn opens(order: OrderId, token: &str, event: &EventEnvelope) -> bool {
    let at = event.occurred_at + chrono::Duration::minutes(1);
    let other = TrackingKeys::new(b"another secret".as_slice());
    links().tracking.verify(order, token, at) && !other.verify(order, token, at)
}

fn contact_of(placed: &EventEnvelope) -> OrderContact {
    match placed.decode().expect("decodes") {
        OrderEvent::OrderPlaced(p) => OrderContact::from_placed(&p),
        other => panic!("not a placement: {other:?}"),
    }
}

fn rendered(placed: &EventEnvelope, event: &EventEnvelope) -> Vec<Notification> {
    let contact = contact_of(placed);
    render(&contact, &event.decode().expect("decodes"), event, &links())
}

/// The token of a `.../track/<order>?token=<token>` link in `text`.
fn link_token(text: &str, order: OrderId) -> String {
    let prefix = format!("https://shop.example/orders/track/{order}?token=");
    let start = text.find(&prefix).expect("tracking link") + prefix.len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '.')
        .collect()
}

#[test]
fn a_received_order_gets_an_email_listing_the_items_and_a_working_tracking_link() {
    let order = OrderId::new_v7();
    let placed = placed_event(order, 1);
    let messages = rendered(&placed, &placed);
    assert_eq!(messages.len(), 1, "no phone, no text message");
    let email = &messages[0];
    assert_eq!(email.kind, NotificationKind::OrderReceived);
    assert_eq!(email.medium, Medium::Email);
    assert_eq!(email.to, "ada@example.com");
    assert_eq!(email.event_id, placed.event_id);
    assert_eq!(email.occurred_at, placed.occurred_at);
    let order_ref = format!("WEB-{}", &order.to_string()[..8]);
    assert_eq!(
        email.subject.as_deref(),
        Some(format!("We received your order {order_ref}").as_str())
    );
    assert!(email.body.starts_with("Hello Ada Lovelace,"));
    assert!(
        email.body.contains("2 x Red tee  32.40 USD"),
        "{}",
        email.body
    );
    assert!(email.body.contains("Total  32.40 USD"));
    let token = link_token(&email.body, order);
    assert!(opens(order, &token, &placed));
}

#[test]
fn a_customer_with_a_phone_also_gets_a_short_text() {
    let order = OrderId::new_v7();
    let placed = placed_event_with_phone(order, 1);
    let messages = rendered(&placed, &confirmed_event(order, 6));
    assert_eq!(messages.len(), 2);
    let sms = &messages[1];
    assert_eq!(sms.medium, Medium::Sms);
    assert_eq!(sms.to, "+1 217 555 0142");
    assert_eq!(sms.subject, None);
    assert!(!sms.body.contains('\n'));
    assert!(sms.body.len() <= 160, "{} chars", sms.body.len());
    assert_ne!(messages[0].id(), sms.id());
    assert!(opens(order, &link_token(&sms.body, order), &placed));
}

#[test]
fn a_confirmation_says_so_with_the_signed_tracking_link() {
    let order = OrderId::new_v7();
    let placed = placed_event(order, 1);
    let messages = rendered(&placed, &confirmed_event(order, 6));
    let email = &messages[0];
    assert_eq!(email.kind, NotificationKind::OrderConfirmed);
    assert!(email
        .subject
        .as_deref()
        .is_some_and(|s| s.ends_with("is confirmed")));
    assert!(email.body.contains("(32.40 USD) is confirmed"));
    let token = link_token(&email.body, order);
    assert!(opens(order, &token, &placed));
}

#[test]
fn a_challenge_asks_for_action_with_the_challenge_link_and_deadline() {
    let order = OrderId::new_v7();
    let placed = placed_event_with_phone(order, 1);
    let messages = rendered(&placed, &challenge_event(order, 3));
    assert_eq!(messages[0].kind, NotificationKind::ActionRequired);
    assert!(messages[0].body.contains(CHALLENGE_URL));
    assert!(messages[0].body.contains("before 16:10 UTC"));
    assert!(messages[1].body.contains(CHALLENGE_URL));
}

#[test]
fn a_decline_gives_the_reason_in_words_not_the_gateway_message() {
    let order = OrderId::new_v7();
    let placed = placed_event(order, 1);
    let messages = rendered(&placed, &declined_event(order, 3, "insufficient_funds"));
    let email = &messages[0];
    assert_eq!(email.kind, NotificationKind::PaymentFailed);
    assert!(
        email.body.contains(": insufficient funds."),
        "{}",
        email.body
    );
    assert!(!email.body.contains("ref 8841"));
}

#[test]
fn a_cancellation_gives_the_reason_in_words() {
    let order = OrderId::new_v7();
    let placed = placed_event(order, 1);
    let messages = rendered(
        &placed,
        &cancelled_for(order, 5, CancelReason::ReservationExpired),
    );
    let email = &messages[0];
    assert_eq!(email.kind, NotificationKind::OrderCancelled);
    assert!(email
        .body
        .contains("was cancelled: the items were held too long without payment."));
}

#[test]
fn internal_steps_send_nothing() {
    let order = OrderId::new_v7();
    let placed = placed_event_with_phone(order, 1);
    for event in [
        risk_assessed(order, 2, waybill_schemas::events::RiskDecision::Review),
        reserved_event(order, 2),
        allocated_event(order, 2),
        authorized_event(order, 2),
        captured_event(order, 2, 3240),
        voided_event(order, 2),
    ] {
        assert_eq!(
            rendered(&placed, &event),
            Vec::new(),
            "{}",
            event.event_type
        );
    }
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    assert!(!format!("{:?}", links()).contains("notify-secret"));
}
