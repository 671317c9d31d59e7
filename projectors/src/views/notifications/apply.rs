//! How one event changes an order's notification state: the contact details it keeps from
//! `OrderPlaced`, and the messages the event adds for delivery. Pure, like every view's apply;
//! the consumer runtime delivers events here once each and in stream order (filling gaps from
//! the event store), so each message is decided exactly once per order version.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use waybill_schemas::{EventEnvelope, OrderEvent};

use super::render::{address, Draft, Links, Message, Notification, NotificationKind, OrderContact};
use super::NotificationError;

/// What the notifications view keeps per order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationState {
    /// The last stream version applied.
    pub version: i64,
    pub contact: OrderContact,
    /// The latest message of each kind the order had, for a resend.
    #[serde(default)]
    pub latest: BTreeMap<NotificationKind, Message>,
    /// `<kind>:<shipment id>` of every carrier message sent: a repeated scan sends nothing.
    #[serde(default)]
    pub announced: BTreeSet<String>,
    /// Messages decided since the state was loaded. The store hands them to the sink before it
    /// writes the state; they are never stored.
    #[serde(skip)]
    pub outgoing: Vec<Notification>,
}

/// The state after `event`, given the state before it (`None` before the order's first event).
pub fn apply(
    state: Option<&NotificationState>,
    event: &EventEnvelope,
    links: &Links,
) -> Result<NotificationState, NotificationError> {
    let decoded = event.decode().map_err(|source| NotificationError::Decode {
        stream_id: event.stream_id.clone(),
        event_type: event.event_type.clone(),
        version: event.stream_version,
        source,
    })?;
    let mut next = match (state, &decoded) {
        (None, OrderEvent::OrderPlaced(placed)) => NotificationState {
            version: event.stream_version,
            contact: OrderContact::from_placed(placed),
            latest: BTreeMap::new(),
            announced: BTreeSet::new(),
            outgoing: Vec::new(),
        },
        (Some(_), OrderEvent::OrderPlaced(_)) => {
            return Err(NotificationError::AlreadyPlaced {
                stream_id: event.stream_id.clone(),
                version: event.stream_version,
            })
        }
        (None, other) => {
            return Err(NotificationError::NotPlaced {
                stream_id: event.stream_id.clone(),
                event_type: other.event_type().to_owned(),
                version: event.stream_version,
            })
        }
        (Some(state), _) => {
            let mut next = state.clone();
            next.version = event.stream_version;
            next
        }
    };
    let contact = next.contact.clone();
    let link = links.tracking_link(contact.order_id, event.occurred_at);
    let draft = |message: Message| Draft {
        contact: contact.clone(),
        message,
        link: link.clone(),
    };
    if let OrderEvent::NotificationResendRequested(resend) = &decoded {
        // Said again as of the request: a fresh link, the request's id as its identity.
        if let Some(message) = next.latest.get(&resend.kind).cloned() {
            let messages = address(event, draft(message))
                .into_iter()
                .filter(|m| resend.medium.is_none_or(|only| m.medium == only))
                .map(|mut m| {
                    m.requested = resend.medium.is_some();
                    m
                });
            next.outgoing.extend(messages);
        }
        return Ok(next);
    }
    let Some(message) = Message::of_event(&decoded) else {
        return Ok(next);
    };
    if let Some(shipment) = message.shipment() {
        if !next
            .announced
            .insert(format!("{}:{shipment}", message.kind().as_str()))
        {
            return Ok(next);
        }
    }
    next.latest.insert(message.kind(), message.clone());
    let messages = address(event, draft(message));
    next.outgoing.extend(messages);
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::views::notifications::render::{Medium, NotificationKind};
    use waybill_schemas::OrderId;

    fn links() -> Links {
        Links {
            public_tracking_base_url: "http://127.0.0.1:8081".into(),
            tracking: waybill_schemas::access::TrackingKeys::new(b"s".as_slice()),
        }
    }

    #[test]
    fn the_contact_from_placement_addresses_every_later_message() {
        let order = OrderId::new_v7();
        let placed = apply(None, &placed_event_with_phone(order, 1), &links()).expect("placed");
        assert_eq!(placed.version, 1);
        assert_eq!(placed.contact.email.as_str(), "ada@example.com");
        assert_eq!(placed.outgoing.len(), 2);

        let mut loaded = placed.clone();
        loaded.outgoing.clear();
        let reserved = apply(Some(&loaded), &reserved_event(order, 2), &links()).expect("ok");
        assert_eq!(reserved.version, 2);
        assert!(reserved.outgoing.is_empty());
        let confirmed = apply(Some(&reserved), &confirmed_event(order, 3), &links()).expect("ok");
        let sent: Vec<(NotificationKind, Medium, &str)> = confirmed
            .outgoing
            .iter()
            .map(|m| (m.kind, m.medium, m.to.as_str()))
            .collect();
        assert_eq!(
            sent,
            [
                (
                    NotificationKind::OrderConfirmed,
                    Medium::Email,
                    "ada@example.com"
                ),
                (
                    NotificationKind::OrderConfirmed,
                    Medium::Sms,
                    "+1 217 555 0142"
                ),
            ]
        );
    }

    #[test]
    fn messages_accumulate_over_a_batch_but_are_never_stored() {
        let order = OrderId::new_v7();
        let mut state = None;
        for event in [
            placed_event(order, 1),
            declined_event(order, 2, "card_declined"),
            cancelled_event(order, 3),
        ] {
            state = Some(apply(state.as_ref(), &event, &links()).expect("applies"));
        }
        let state = state.expect("state");
        let kinds: Vec<NotificationKind> = state.outgoing.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [
                NotificationKind::OrderReceived,
                NotificationKind::PaymentFailed,
                NotificationKind::OrderCancelled
            ]
        );
        let stored: NotificationState =
            serde_json::from_str(&serde_json::to_string(&state).expect("encode")).expect("decode");
        assert!(stored.outgoing.is_empty());
        assert_eq!(stored.contact, state.contact);
    }

    #[test]
    fn events_before_placement_and_a_second_placement_are_refused() {
        let order = OrderId::new_v7();
        let err = apply(None, &confirmed_event(order, 1), &links()).expect_err("no contact");
        assert!(matches!(err, NotificationError::NotPlaced { .. }));
        let placed = apply(None, &placed_event(order, 1), &links()).expect("placed");
        let err = apply(Some(&placed), &placed_event(order, 2), &links()).expect_err("twice");
        assert!(matches!(err, NotificationError::AlreadyPlaced { .. }));
    }
}
