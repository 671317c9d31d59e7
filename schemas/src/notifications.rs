//! The words customer notifications are described in, shared by the command API (preferences,
//! resend requests) and the notifications view (what it sends): the kinds of message, the media
//! they go by, the locales they are written in, and which event causes which kind. The mapping
//! lives here once so the command API can tell whether an order ever had a message of a kind
//! before it accepts a request to send it again.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::{CarrierStatus, OrderEvent};

/// Why the customer hears from us.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    OrderReceived,
    ActionRequired,
    OrderConfirmed,
    PaymentFailed,
    OrderCancelled,
    Shipped,
    OutForDelivery,
    ReadyForPickup,
    Delivered,
    RefundIssued,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 10] = [
        Self::OrderReceived,
        Self::ActionRequired,
        Self::OrderConfirmed,
        Self::PaymentFailed,
        Self::OrderCancelled,
        Self::Shipped,
        Self::OutForDelivery,
        Self::ReadyForPickup,
        Self::Delivered,
        Self::RefundIssued,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderReceived => "order_received",
            Self::ActionRequired => "action_required",
            Self::OrderConfirmed => "order_confirmed",
            Self::PaymentFailed => "payment_failed",
            Self::OrderCancelled => "order_cancelled",
            Self::Shipped => "shipped",
            Self::OutForDelivery => "out_for_delivery",
            Self::ReadyForPickup => "ready_for_pickup",
            Self::Delivered => "delivered",
            Self::RefundIssued => "refund_issued",
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
            Self::Shipped => "Shipped",
            Self::OutForDelivery => "Out for delivery",
            Self::ReadyForPickup => "Ready for pickup",
            Self::Delivered => "Delivered",
            Self::RefundIssued => "Refund issued",
        }
    }

    /// The kind of message `event` sends the customer, if it sends one. A carrier scan sends
    /// one only for the statuses a customer cares about (out for delivery, delivered).
    pub fn of_event(event: &OrderEvent) -> Option<Self> {
        Some(match event {
            OrderEvent::OrderPlaced(_) => Self::OrderReceived,
            OrderEvent::PaymentChallengeRequired(_) => Self::ActionRequired,
            OrderEvent::OrderConfirmed(_) => Self::OrderConfirmed,
            OrderEvent::PaymentDeclined(_) => Self::PaymentFailed,
            OrderEvent::OrderCancelled(_) => Self::OrderCancelled,
            OrderEvent::ShipmentCreated(_) => Self::Shipped,
            OrderEvent::ShipmentTracked(scan) => match scan.status {
                CarrierStatus::OutForDelivery => Self::OutForDelivery,
                CarrierStatus::Delivered => Self::Delivered,
                _ => return None,
            },
            OrderEvent::PickupReady(_) => Self::ReadyForPickup,
            OrderEvent::PaymentRefunded(_) => Self::RefundIssued,
            _ => return None,
        })
    }
}

/// How a message reaches the customer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Medium {
    Email,
    Sms,
}

impl Medium {
    pub const ALL: [Medium; 2] = [Self::Email, Self::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// The languages messages are written in.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Locale {
    #[default]
    En,
    De,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Self::En, Self::De];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::De => "de",
        }
    }

    /// `en`, `de`; a region (`de-AT`, `en_GB`) is accepted and dropped.
    pub fn parse(raw: &str) -> Option<Self> {
        let language = raw
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        Self::ALL.into_iter().find(|l| l.as_str() == language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in NotificationKind::ALL {
            assert_eq!(NotificationKind::from_name(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).expect("json"),
                serde_json::Value::String(kind.as_str().into())
            );
        }
        for medium in Medium::ALL {
            assert_eq!(Medium::from_name(medium.as_str()), Some(medium));
        }
        assert_eq!(NotificationKind::from_name("spam"), None);
    }

    #[test]
    fn a_locale_is_its_language_with_any_region_dropped() {
        assert_eq!(Locale::parse("de"), Some(Locale::De));
        assert_eq!(Locale::parse(" DE-at "), Some(Locale::De));
        assert_eq!(Locale::parse("en_GB"), Some(Locale::En));
        assert_eq!(Locale::parse("fr"), None);
        assert_eq!(Locale::parse(""), None);
    }
}
