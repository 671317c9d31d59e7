//! [`Delivery`] against a real Postgres (the sent-once ledger and the preferences table), with
//! channels that record what they were asked to send.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use uuid::Uuid;
use waybill_schemas::events::{CarrierStatus, NotificationResendRequested, ShipmentTracked};
use waybill_schemas::{OrderEvent, OrderId};
use waybill_write_side::event_store::retry;
use waybill_write_side::notification_preferences::{self, Preferences};

use super::*;
use crate::testing::*;

/// Records every message it is asked to send; refuses addresses containing "refuse", and is
/// busy for those containing "busy" while `busy` is set.
#[derive(Clone, Default)]
struct Phone {
    sent: Arc<Mutex<Vec<Notification>>>,
    busy: Arc<std::sync::atomic::AtomicBool>,
}

impl Channel for Phone {
    fn send<'a>(&'a self, message: &'a Notification) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move {
            if message.to.contains("refuse") {
                return Err(SendError::Permanent("550 no such user".into()));
            }
            if message.to.contains("busy") && self.busy.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(SendError::Transient("421 try again later".into()));
            }
            self.sent.lock().expect("lock").push(message.clone());
            Ok(Accepted {
                provider_id: format!("p-{}", message.id()),
            })
        })
    }
}

impl Phone {
    fn ids(&self) -> Vec<String> {
        self.sent
            .lock()
            .expect("lock")
            .iter()
            .map(Notification::id)
            .collect()
    }
}

fn links() -> Links {
    Links {
        public_tracking_base_url: "https://shop.example".into(),
        tracking: waybill_schemas::access::TrackingKeys::new(b"s".as_slice()),
    }
}

/// The messages of a placement with a phone number: an email and a text.
fn placement_messages(order: OrderId) -> Vec<Notification> {
    let state = apply(None, &placed_event_with_phone(order, 1), &links()).expect("applies");
    state.outgoing
}

fn delivery(pool: &sqlx::PgPool, email: &Phone, sms: &Phone) -> Delivery {
    Delivery::new(pool.clone(), Arc::new(email.clone()), Arc::new(sms.clone()))
}

#[tokio::test]
async fn a_message_is_sent_once_however_often_and_by_whomever_it_is_handed_over() {
    let pool = fresh_database().await;
    let (email, sms) = (Phone::default(), Phone::default());
    let messages = placement_messages(OrderId::new_v7());
    assert_eq!(messages.len(), 2);
    let first = delivery(&pool, &email, &sms);
    first.deliver(messages.clone()).await.expect("delivered");
    // The same batch again (NATS redelivery), and from another process (a new sender).
    first.deliver(messages.clone()).await.expect("again");
    delivery(&pool, &email, &sms)
        .deliver(messages.clone())
        .await
        .expect("by another sender");
    assert_eq!(email.ids(), [messages[0].id()]);
    assert_eq!(sms.ids(), [messages[1].id()]);
    let records = first
        .ledger()
        .of_order(messages[0].order_id)
        .await
        .expect("ledger");
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.status == "sent" && r.attempts == 1),
        "{records:?}"
    );
    let expected = format!("p-{}.{}", records[0].event_id, records[0].medium);
    assert_eq!(records[0].provider_id.as_deref(), Some(expected.as_str()));
}

#[tokio::test]
async fn a_claim_left_by_a_killed_sender_is_taken_over_once_it_lapses_under_the_same_identity() {
    let pool = fresh_database().await;
    let messages = placement_messages(OrderId::new_v7());
    // A sender claims and dies before sending or recording anything.
    let dead = Ledger::new(pool.clone()).with_claim_for(Duration::from_millis(300));
    let claims = dead.claim(&messages).await.expect("claimed");
    assert!(claims
        .iter()
        .all(|c| matches!(c, Claim::Send { attempt: 1 })));

    let (email, sms) = (Phone::default(), Phone::default());
    let survivor = delivery(&pool, &email, &sms);
    let held = survivor.deliver(messages.clone()).await;
    assert!(matches!(held, Err(SinkError::Unavailable(_))), "{held:?}");
    assert!(email.ids().is_empty() && sms.ids().is_empty());

    tokio::time::sleep(Duration::from_millis(400)).await;
    survivor
        .deliver(messages.clone())
        .await
        .expect("taken over");
    assert_eq!(email.ids(), [messages[0].id()]);
    assert_eq!(sms.ids(), [messages[1].id()]);
    let records = survivor
        .ledger()
        .of_order(messages[0].order_id)
        .await
        .expect("ledger");
    assert!(
        records
            .iter()
            .all(|r| r.status == "sent" && r.attempts == 2),
        "{records:?}"
    );
}

#[tokio::test]
async fn preferences_choose_the_media_and_the_language_and_an_agents_medium_still_goes() {
    let pool = fresh_database().await;
    let order = OrderId::new_v7();
    let prefs = Preferences {
        media: [Medium::Sms].into_iter().collect(),
        locale: Locale::De,
    };
    retry::serializable(|| async {
        let mut tx = retry::begin(&pool).await?;
        notification_preferences::put(&mut tx, "c-42", &prefs, chrono::Utc::now()).await?;
        retry::commit(tx).await
    })
    .await
    .expect("preferences stored");

    let (email, sms) = (Phone::default(), Phone::default());
    let delivery = delivery(&pool, &email, &sms);
    delivery
        .deliver(placement_messages(order))
        .await
        .expect("delivered");
    assert!(email.ids().is_empty(), "the customer turned email off");
    let texts = sms.sent.lock().expect("lock").clone();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].locale, Locale::De);
    assert!(
        texts[0].body.starts_with("Wir haben Ihre Bestellung"),
        "{}",
        texts[0].body
    );

    // An agent resends the confirmation by email: it goes, in German.
    let placed = placed_event_with_phone(order, 1);
    let state = apply(None, &placed, &links()).expect("placed");
    let state = apply(Some(&state), &confirmed_event(order, 2), &links()).expect("confirmed");
    let resend = envelope(
        order,
        3,
        OrderEvent::NotificationResendRequested(NotificationResendRequested {
            order_id: order,
            resend_id: Uuid::now_v7(),
            kind: NotificationKind::OrderConfirmed,
            medium: Some(Medium::Email),
            reason: None,
            requested_at: at(3),
        }),
    );
    let mut loaded = state.clone();
    loaded.outgoing.clear();
    let resent = apply(Some(&loaded), &resend, &links()).expect("resend");
    assert_eq!(resent.outgoing.len(), 1);
    delivery
        .deliver(resent.outgoing.clone())
        .await
        .expect("resent");
    let mails = email.sent.lock().expect("lock").clone();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].event_id, resend.event_id);
    assert!(
        mails[0]
            .subject
            .as_deref()
            .is_some_and(|s| s.ends_with("ist bestätigt")),
        "{:?}",
        mails[0].subject
    );
}

#[tokio::test]
async fn a_refused_message_is_recorded_as_failed_and_never_tried_again() {
    let pool = fresh_database().await;
    let mut messages = placement_messages(OrderId::new_v7());
    messages.truncate(1);
    messages[0].to = "refuse@example.com".into();
    let (email, sms) = (Phone::default(), Phone::default());
    let delivery = delivery(&pool, &email, &sms);
    delivery.deliver(messages.clone()).await.expect("settled");
    delivery
        .deliver(messages.clone())
        .await
        .expect("settled again");
    let records = delivery
        .ledger()
        .of_order(messages[0].order_id)
        .await
        .expect("ledger");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, "failed");
    assert_eq!(records[0].attempts, 1);
    assert!(records[0]
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("550")));
}

/// Messages sent together are settled together: the accepted one `sent`, the refused one
/// `failed`, and the one whose provider was busy stays claimed with its error noted and is the
/// only one sent when the batch comes back.
#[tokio::test]
async fn messages_sent_together_are_each_recorded_by_their_outcome() {
    let pool = fresh_database().await;
    let orders = [OrderId::new_v7(), OrderId::new_v7(), OrderId::new_v7()];
    let mut messages: Vec<Notification> = orders
        .iter()
        .map(|&order| placement_messages(order).swap_remove(0))
        .collect();
    messages[1].to = "refuse@example.com".into();
    messages[2].to = "busy@example.com".into();
    let (email, sms) = (Phone::default(), Phone::default());
    email.busy.store(true, std::sync::atomic::Ordering::SeqCst);
    let delivery = delivery(&pool, &email, &sms).with_retry(RetryPolicy {
        attempts: 1,
        first: Duration::from_millis(1),
        max: Duration::from_millis(1),
    });
    let status = |records: &[DeliveryRecord]| -> (String, Option<String>, Option<String>) {
        assert_eq!(records.len(), 1);
        let r = &records[0];
        (
            r.status.clone(),
            r.provider_id.clone(),
            r.last_error.clone(),
        )
    };
    let error = delivery
        .deliver(messages.clone())
        .await
        .expect_err("the busy provider makes the batch come back");
    assert!(error.to_string().contains("421"), "{error}");
    let ledger = delivery.ledger();
    let sent = status(&ledger.of_order(orders[0]).await.expect("ledger"));
    assert_eq!(sent.0, "sent");
    assert_eq!(sent.1, Some(format!("p-{}", messages[0].id())));
    let refused = status(&ledger.of_order(orders[1]).await.expect("ledger"));
    assert_eq!(refused.0, "failed");
    assert!(refused.2.is_some_and(|e| e.contains("550")));
    let busy = status(&ledger.of_order(orders[2]).await.expect("ledger"));
    assert_eq!(busy.0, "sending");
    assert!(busy.2.is_some_and(|e| e.contains("421")));

    email.busy.store(false, std::sync::atomic::Ordering::SeqCst);
    delivery
        .deliver(messages.clone())
        .await
        .expect("settled once the provider is back");
    assert_eq!(
        email.ids(),
        vec![messages[0].id(), messages[2].id()],
        "each accepted once, the refused one never"
    );
    assert_eq!(
        status(&ledger.of_order(orders[2]).await.expect("ledger")).0,
        "sent"
    );
}

#[test]
fn every_kind_an_event_names_has_its_message_and_repeated_scans_say_nothing_new() {
    let order = OrderId::new_v7();
    let placed = placed_event_with_phone(order, 1);
    let mut state = apply(None, &placed, &links()).expect("placed");
    assert_eq!(state.outgoing[0].kind, NotificationKind::OrderReceived);
    let scan = |version: i64, status: CarrierStatus| {
        envelope(
            order,
            version,
            OrderEvent::ShipmentTracked(ShipmentTracked {
                order_id: order,
                shipment_id: "S1".into(),
                carrier_event_id: format!("ev-{version}"),
                status,
                carrier_time: at(version),
                description: status.as_str().into(),
                location: None,
                proof: None,
                recorded_at: at(version),
            }),
        )
    };
    let mut kinds = Vec::new();
    for event in [
        scan(2, CarrierStatus::InTransit),
        scan(3, CarrierStatus::OutForDelivery),
        scan(4, CarrierStatus::OutForDelivery),
        scan(5, CarrierStatus::Delivered),
        scan(6, CarrierStatus::Delivered),
        refunded_event(order, 7, 1200),
    ] {
        state.outgoing.clear();
        state = apply(Some(&state), &event, &links()).expect("applies");
        let decoded = event.decode().expect("decodes");
        assert_eq!(
            Message::of_event(&decoded).map(|m| m.kind()),
            NotificationKind::of_event(&decoded),
            "{}",
            event.event_type
        );
        kinds.extend(state.outgoing.iter().map(|m| (m.kind, m.medium)));
    }
    assert_eq!(
        kinds,
        [
            (NotificationKind::OutForDelivery, Medium::Email),
            (NotificationKind::OutForDelivery, Medium::Sms),
            (NotificationKind::Delivered, Medium::Email),
            (NotificationKind::Delivered, Medium::Sms),
            (NotificationKind::RefundIssued, Medium::Email),
            (NotificationKind::RefundIssued, Medium::Sms),
        ]
    );
    let stored: NotificationState =
        serde_json::from_str(&serde_json::to_string(&state).expect("encode")).expect("decode");
    assert_eq!(
        stored.latest.keys().copied().collect::<Vec<_>>(),
        [
            NotificationKind::OrderReceived,
            NotificationKind::OutForDelivery,
            NotificationKind::Delivered,
            NotificationKind::RefundIssued
        ]
    );
    assert!(stored.outgoing.is_empty());
}

#[test]
fn a_resend_of_a_kind_the_order_never_had_sends_nothing() {
    let order = OrderId::new_v7();
    let state = apply(None, &placed_event(order, 1), &links()).expect("placed");
    let resend = envelope(
        order,
        2,
        OrderEvent::NotificationResendRequested(NotificationResendRequested {
            order_id: order,
            resend_id: Uuid::now_v7(),
            kind: NotificationKind::Shipped,
            medium: None,
            reason: None,
            requested_at: at(2),
        }),
    );
    let mut loaded = state;
    loaded.outgoing.clear();
    let after = apply(Some(&loaded), &resend, &links()).expect("applies");
    assert!(after.outgoing.is_empty());
    assert_eq!(after.version, 2);
}
