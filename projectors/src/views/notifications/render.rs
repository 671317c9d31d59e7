//! What each customer-facing event says to the customer, in two steps, both pure:
//! [`Message::of_event`] takes from the event what the message needs (the "draft"), and
//! [`Notification::new`] puts a draft into words for one medium in one locale
//! ([`super::templates`]). An email goes for every message; a short text message too when the
//! customer gave a phone number. The customer's preferences (which media, which locale) are
//! applied where messages are delivered ([`super::delivery`]), by re-wording the draft.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use waybill_schemas::access::TrackingKeys;
use waybill_schemas::events::{CancelReason, OrderPlaced};
use waybill_schemas::{Email, EventEnvelope, Money, OrderEvent, OrderId};

pub use waybill_schemas::notifications::{Locale, Medium, NotificationKind};

use super::templates::words;

/// Who to write to about an order, and what to call the order: taken from `OrderPlaced` once and
/// kept with the view's state, so later events need no lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderContact {
    pub order_id: OrderId,
    pub name: String,
    pub email: Email,
    pub phone: Option<String>,
    /// The order number the customer knows (the channel's reference).
    pub order_ref: String,
    pub grand_total: Money,
    /// The channel's customer id (absent for guests): whose preferences apply.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Where a pickup order is collected ("Waybill Soho, 120 Spring St").
    #[serde(default)]
    pub pickup_store: Option<String>,
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
            customer_id: placed
                .customer
                .customer_id
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            pickup_store: placed
                .pickup_store
                .as_ref()
                .map(|s| format!("{}, {}", s.store_name, s.address)),
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

/// One ordered line as a message lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineSummary {
    pub quantity: u32,
    pub name: String,
    pub total: Money,
}

/// What a message says, before it is put into words: the facts from its event. Kept per kind in
/// the view's state (the latest of each), so a resend can say it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    OrderReceived {
        lines: Vec<LineSummary>,
    },
    ActionRequired {
        challenge_url: String,
        expires_at: DateTime<Utc>,
    },
    OrderConfirmed,
    PaymentFailed {
        /// The gateway's decline code (the customer gets words for it, never the gateway's
        /// own message).
        code: String,
    },
    OrderCancelled {
        reason: CancelReason,
    },
    Shipped {
        shipment_id: String,
        carrier: String,
        tracking_number: String,
        tracking_url: String,
        eta: DateTime<Utc>,
    },
    OutForDelivery {
        shipment_id: String,
    },
    ReadyForPickup {
        code_hint: String,
        collect_by: DateTime<Utc>,
    },
    Delivered {
        shipment_id: String,
        delivered_at: DateTime<Utc>,
    },
    RefundIssued {
        amount: Money,
    },
}

impl Message {
    pub fn kind(&self) -> NotificationKind {
        match self {
            Self::OrderReceived { .. } => NotificationKind::OrderReceived,
            Self::ActionRequired { .. } => NotificationKind::ActionRequired,
            Self::OrderConfirmed => NotificationKind::OrderConfirmed,
            Self::PaymentFailed { .. } => NotificationKind::PaymentFailed,
            Self::OrderCancelled { .. } => NotificationKind::OrderCancelled,
            Self::Shipped { .. } => NotificationKind::Shipped,
            Self::OutForDelivery { .. } => NotificationKind::OutForDelivery,
            Self::ReadyForPickup { .. } => NotificationKind::ReadyForPickup,
            Self::Delivered { .. } => NotificationKind::Delivered,
            Self::RefundIssued { .. } => NotificationKind::RefundIssued,
        }
    }

    /// The message `event` sends, if any: exactly for the events
    /// [`NotificationKind::of_event`] names (a test holds the two together).
    pub fn of_event(event: &OrderEvent) -> Option<Self> {
        NotificationKind::of_event(event)?;
        Some(match event {
            OrderEvent::OrderPlaced(placed) => Self::OrderReceived {
                lines: placed
                    .lines
                    .iter()
                    .map(|line| LineSummary {
                        quantity: line.quantity.get(),
                        name: line.name.clone(),
                        total: line.total,
                    })
                    .collect(),
            },
            OrderEvent::PaymentChallengeRequired(challenge) => Self::ActionRequired {
                challenge_url: challenge.challenge_url.clone(),
                expires_at: challenge.expires_at,
            },
            OrderEvent::OrderConfirmed(_) => Self::OrderConfirmed,
            OrderEvent::PaymentDeclined(declined) => Self::PaymentFailed {
                code: declined.code.clone(),
            },
            OrderEvent::OrderCancelled(cancelled) => Self::OrderCancelled {
                reason: cancelled.reason,
            },
            OrderEvent::ShipmentCreated(created) => Self::Shipped {
                shipment_id: created.shipment_id.clone(),
                carrier: created.carrier.clone(),
                tracking_number: created.tracking_number.clone(),
                tracking_url: created.tracking_url.clone(),
                eta: created.eta,
            },
            OrderEvent::ShipmentTracked(scan) => match scan.status {
                waybill_schemas::events::CarrierStatus::Delivered => Self::Delivered {
                    shipment_id: scan.shipment_id.clone(),
                    delivered_at: scan.effective_time(),
                },
                _ => Self::OutForDelivery {
                    shipment_id: scan.shipment_id.clone(),
                },
            },
            OrderEvent::PickupReady(ready) => Self::ReadyForPickup {
                code_hint: ready.code_hint.clone(),
                collect_by: ready.collect_by,
            },
            OrderEvent::PaymentRefunded(refunded) => Self::RefundIssued {
                amount: refunded.amount,
            },
            _ => return None,
        })
    }

    /// The shipment a carrier message is about: one message per shipment and kind, however
    /// often the carrier repeats the scan.
    pub fn shipment(&self) -> Option<&str> {
        match self {
            Self::Shipped { shipment_id, .. }
            | Self::OutForDelivery { shipment_id, .. }
            | Self::Delivered { shipment_id, .. } => Some(shipment_id),
            _ => None,
        }
    }
}

/// Everything a message is written from: the order's contact, the draft, and the signed
/// tracking link as of the event that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub contact: OrderContact,
    pub message: Message,
    pub link: String,
}

/// One message to one customer by one medium. Identified by the event that caused it and its
/// medium, so a redelivered event names the same message again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub event_id: Uuid,
    pub order_id: OrderId,
    pub kind: NotificationKind,
    pub medium: Medium,
    /// An email address or a phone number.
    pub to: String,
    pub locale: Locale,
    /// Emails only.
    pub subject: Option<String>,
    pub body: String,
    pub occurred_at: DateTime<Utc>,
    /// Sent again at an agent's request naming this medium: the customer's media preferences
    /// do not hold it back (their locale still applies).
    pub requested: bool,
    /// What it was written from, to write it again in another locale.
    pub draft: Draft,
}

impl Notification {
    /// `draft` in words for `medium` in `locale`, addressed from the contact.
    pub fn new(
        event_id: Uuid,
        occurred_at: DateTime<Utc>,
        medium: Medium,
        locale: Locale,
        draft: Draft,
    ) -> Option<Self> {
        let to = match medium {
            Medium::Email => draft.contact.email.as_str().to_owned(),
            Medium::Sms => draft.contact.phone.clone()?,
        };
        let content = words(&draft.contact, &draft.message, &draft.link, locale);
        Some(Self {
            event_id,
            order_id: draft.contact.order_id,
            kind: draft.message.kind(),
            medium,
            to,
            locale,
            subject: (medium == Medium::Email).then_some(content.subject),
            body: match medium {
                Medium::Email => content.email,
                Medium::Sms => content.sms,
            },
            occurred_at,
            requested: false,
            draft,
        })
    }

    /// The same message written in `locale`.
    pub fn in_locale(self, locale: Locale) -> Self {
        if locale == self.locale {
            return self;
        }
        let (event_id, occurred_at, medium) = (self.event_id, self.occurred_at, self.medium);
        match Self::new(event_id, occurred_at, medium, locale, self.draft.clone()) {
            Some(localized) => Self {
                requested: self.requested,
                ..localized
            },
            None => self,
        }
    }

    /// Stable across redeliveries: `<event id>.<medium>`; the email's Message-ID and the SMS
    /// provider's Idempotency-Key are made from it.
    pub fn id(&self) -> String {
        format!("{}.{}", self.event_id, self.medium.as_str())
    }
}

/// The messages `draft` sends for the event `envelope`: an email, and a text message when the
/// contact has a phone number; in the default locale (preferences are applied at delivery).
pub fn address(envelope: &EventEnvelope, draft: Draft) -> Vec<Notification> {
    Medium::ALL
        .into_iter()
        .filter_map(|medium| {
            Notification::new(
                envelope.event_id,
                envelope.occurred_at,
                medium,
                Locale::default(),
                draft.clone(),
            )
        })
        .collect()
}

/// The messages `event` sends to the customer of `contact` (none for events they need not hear
/// about), as [`address`] writes them.
pub fn render(
    contact: &OrderContact,
    event: &OrderEvent,
    envelope: &EventEnvelope,
    links: &Links,
) -> Vec<Notification> {
    let Some(message) = Message::of_event(event) else {
        return Vec::new();
    };
    let draft = Draft {
        contact: contact.clone(),
        message,
        link: links.tracking_link(contact.order_id, envelope.occurred_at),
    };
    address(envelope, draft)
}

/// A draft for tests that build messages by hand.
#[cfg(test)]
pub(crate) fn test_draft(order_id: OrderId) -> Draft {
    Draft {
        contact: OrderContact {
            order_id,
            name: "Ada".into(),
            email: Email::parse("ada@example.com").expect("email"),
            phone: None,
            order_ref: "WEB-1".into(),
            grand_total: Money::new(100, waybill_schemas::Currency::parse("USD").expect("usd")),
            customer_id: None,
            pickup_store: None,
        },
        message: Message::OrderConfirmed,
        link: "https://shop.example/track/x".into(),
    }
}

#[cfg(test)]
mod tests;
