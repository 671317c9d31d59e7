//! What each customer-facing event says to the customer: an email for every one, and a short
//! text message too when the customer gave a phone number. Pure: the texts depend only on the
//! event, the order's contact details and the link settings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use waybill_schemas::access::TrackingKeys;
use waybill_schemas::events::{
    OrderCancelled, OrderPlaced, PaymentChallengeRequired, PaymentDeclined,
};
use waybill_schemas::{Email, EventEnvelope, Money, OrderEvent, OrderId};

use crate::views::tracking::{cancel_reason_words, decline_words};

/// Who to write to about an order, and what to call the order: taken from `OrderPlaced` once and
/// kept with the view's state, so later events need no lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderContact {
    pub order_id: OrderId,
    pub name: String,
    pub email: Email,
    pub phone: Option<String>,
    /// The order number the customer knows (the channel's reference).
    pub order_ref: String,
    pub grand_total: Money,
}

impl OrderContact {
    pub fn from_placed(placed: &OrderPlaced) -> Self {
        Self {
            order_id: placed.order_id,
            name: placed.customer.name.clone(),
            email: placed.customer.email.clone(),
            phone: placed
                .customer
                .phone
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
            order_ref: placed.channel_order_ref.clone(),
            grand_total: placed.totals.grand_total,
        }
    }
}

/// Where customer links point and the keys that sign them.
#[derive(Clone, Debug)]
pub struct Links {
    /// Public base URL of the tracking page, e.g. `https://shop.example/orders`.
    pub public_tracking_base_url: String,
    pub tracking: TrackingKeys,
}

impl Links {
    /// `<base>/track/<order_id>?token=<tracking token>`, the token made at `issued_at` (the
    /// event's time: the same event always renders the same link).
    pub fn tracking_link(&self, order_id: OrderId, issued_at: DateTime<Utc>) -> String {
        format!(
            "{}/track/{order_id}?token={}",
            self.public_tracking_base_url.trim_end_matches('/'),
            self.tracking.token(order_id, issued_at)
        )
    }
}

/// Why the customer hears from us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    OrderReceived,
    ActionRequired,
    OrderConfirmed,
    PaymentFailed,
    OrderCancelled,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 5] = [
        Self::OrderReceived,
        Self::ActionRequired,
        Self::OrderConfirmed,
        Self::PaymentFailed,
        Self::OrderCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderReceived => "order_received",
            Self::ActionRequired => "action_required",
            Self::OrderConfirmed => "order_confirmed",
            Self::PaymentFailed => "payment_failed",
            Self::OrderCancelled => "order_cancelled",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The kind in words, for listings.
    pub fn title(self) -> &'static str {
        match self {
            Self::OrderReceived => "Order received",
            Self::ActionRequired => "Action required",
            Self::OrderConfirmed => "Order confirmed",
            Self::PaymentFailed => "Payment failed",
            Self::OrderCancelled => "Order cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Medium {
    Email,
    Sms,
}

impl Medium {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Email, Self::Sms]
            .into_iter()
            .find(|m| m.as_str() == name)
    }
}

/// One message to one customer. Identified by the event that caused it and its medium, so a
/// redelivered event names the same message again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub event_id: Uuid,
    pub order_id: OrderId,
    pub kind: NotificationKind,
    pub medium: Medium,
    /// An email address or a phone number.
    pub to: String,
    /// Emails only.
    pub subject: Option<String>,
    pub body: String,
    pub occurred_at: DateTime<Utc>,
}

impl Notification {
    /// Stable across redeliveries: `<event id>.<medium>`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.event_id, self.medium.as_str())
    }
}

/// The wording of one notification, before it is addressed.
struct Content {
    kind: NotificationKind,
    subject: String,
    email: String,
    sms: String,
}

/// The messages `event` sends to the customer of `contact`: none for events they need not hear
/// about, else an email and, with a phone number, a text message.
pub fn render(
    contact: &OrderContact,
    event: &OrderEvent,
    envelope: &EventEnvelope,
    links: &Links,
) -> Vec<Notification> {
    let link = || links.tracking_link(contact.order_id, envelope.occurred_at);
    let content = match event {
        OrderEvent::OrderPlaced(placed) => received(contact, placed, &link()),
        OrderEvent::PaymentChallengeRequired(challenge) => action_required(contact, challenge),
        OrderEvent::OrderConfirmed(_) => confirmed(contact, &link()),
        OrderEvent::PaymentDeclined(declined) => payment_failed(contact, declined),
        OrderEvent::OrderCancelled(cancelled) => cancelled_content(contact, cancelled, &link()),
        _ => return Vec::new(),
    };
    let mut messages = vec![Notification {
        event_id: envelope.event_id,
        order_id: contact.order_id,
        kind: content.kind,
        medium: Medium::Email,
        to: contact.email.as_str().to_owned(),
        subject: Some(content.subject),
        body: content.email,
        occurred_at: envelope.occurred_at,
    }];
    if let Some(phone) = &contact.phone {
        messages.push(Notification {
            event_id: envelope.event_id,
            order_id: contact.order_id,
            kind: content.kind,
            medium: Medium::Sms,
            to: phone.clone(),
            subject: None,
            body: content.sms,
            occurred_at: envelope.occurred_at,
        });
    }
    messages
}

fn received(contact: &OrderContact, placed: &OrderPlaced, link: &str) -> Content {
    let order = &contact.order_ref;
    let items: String = placed
        .lines
        .iter()
        .map(|line| {
            format!(
                "  {} x {}  {}\n",
                line.quantity.get(),
                line.name,
                line.total
            )
        })
        .collect();
    Content {
        kind: NotificationKind::OrderReceived,
        subject: format!("We received your order {order}"),
        email: format!(
            "Hello {name},\n\n\
             Thank you for your order {order}. We are checking it now and will write again \
             once it is confirmed.\n\n\
             {items}\n  Total  {total}\n\n\
             Follow your order here:\n{link}\n",
            name = contact.name,
            total = contact.grand_total,
        ),
        sms: format!("We received your order {order} ({}).", contact.grand_total),
    }
}

fn action_required(contact: &OrderContact, challenge: &PaymentChallengeRequired) -> Content {
    let order = &contact.order_ref;
    let url = &challenge.challenge_url;
    let until = challenge.expires_at.format("%H:%M UTC");
    Content {
        kind: NotificationKind::ActionRequired,
        subject: format!("Please confirm your payment for order {order}"),
        email: format!(
            "Hello {name},\n\n\
             Your bank asks you to confirm the payment of {total} for order {order}.\n\
             Please confirm it here before {until}:\n{url}\n\n\
             If it is not confirmed in time, the order will be cancelled.\n",
            name = contact.name,
            total = contact.grand_total,
        ),
        sms: format!("Your bank asks you to confirm the payment for order {order}: {url}"),
    }
}

fn confirmed(contact: &OrderContact, link: &str) -> Content {
    let order = &contact.order_ref;
    Content {
        kind: NotificationKind::OrderConfirmed,
        subject: format!("Your order {order} is confirmed"),
        email: format!(
            "Hello {name},\n\n\
             Good news: your order {order} ({total}) is confirmed and we are preparing it.\n\n\
             Follow your order here:\n{link}\n",
            name = contact.name,
            total = contact.grand_total,
        ),
        sms: format!("Order {order} confirmed: {link}"),
    }
}

fn payment_failed(contact: &OrderContact, declined: &PaymentDeclined) -> Content {
    let order = &contact.order_ref;
    // The gateway's own message can carry internals; the customer gets words for the code.
    let why = decline_words(&declined.code);
    Content {
        kind: NotificationKind::PaymentFailed,
        subject: format!("We couldn't take payment for order {order}"),
        email: format!(
            "Hello {name},\n\n\
             We couldn't take the payment of {total} for order {order}: {why}.\n",
            name = contact.name,
            total = contact.grand_total,
        ),
        sms: format!("We couldn't take payment for order {order}: {why}."),
    }
}

fn cancelled_content(contact: &OrderContact, cancelled: &OrderCancelled, link: &str) -> Content {
    let order = &contact.order_ref;
    let why = cancel_reason_words(cancelled.reason);
    Content {
        kind: NotificationKind::OrderCancelled,
        subject: format!("Your order {order} was cancelled"),
        email: format!(
            "Hello {name},\n\n\
             Your order {order} was cancelled: {why}.\n\n\
             The details are here:\n{link}\n",
            name = contact.name,
        ),
        sms: format!("Your order {order} was cancelled: {why}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use waybill_schemas::events::CancelReason;

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
}
