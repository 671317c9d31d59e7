//! Customer notifications delivered for real, end to end: `serve all` (checkout and
//! fulfillment workers, payment and logistics sandboxes) with the notifications view in a
//! process of its own that sends email over SMTP to a real SMTP server (aiosmtpd, writing each
//! message it receives to a Maildir) and text messages to our SMS sandbox. Orders go through
//! confirmation, shipping, out for delivery, delivery and a refund; each customer's
//! preferences (set over the API) choose the media and the language.
//!
//! What must hold: every message exactly once per event and medium, in the customer's
//! language; after the view's Redis state is wiped (every key under the test's prefix: the
//! shared Redis cannot be FLUSHALLed under other tests) and its NATS consumer deleted (every
//! event delivered again) and the process killed with -9, nothing is sent twice; a resend
//! request sends its message once, however often the request is repeated.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use waybill_e2e::checkout::{cards::APPROVED, order, SETTLE};
use waybill_e2e::fulfillment::FulfillmentWorld;
use waybill_e2e::smtp_server::{ReceivedEmail, SmtpServer};
use waybill_e2e::{eventually, HttpResponse, Role, WaybillProcess, ADMIN_KEY, AGENT_KEY};

const SKU: &str = "TEE-NTF";

/// A free port in this test's range (15490-15519), other than `taken`.
fn free_port(taken: &[u16]) -> u16 {
    (15_490..15_520)
        .filter(|p| !taken.contains(p))
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 15490-15519")
}

struct World {
    f: FulfillmentWorld,
    smtp: SmtpServer,
    sms: WaybillProcess,
    notifier: Option<WaybillProcess>,
    vars: Vec<(String, String)>,
    sms_key: String,
}

impl World {
    async fn start() -> World {
        let smtp_dir =
            std::env::temp_dir().join(format!("waybill-smtp-{}", uuid::Uuid::now_v7().simple()));
        let smtp = SmtpServer::start(&smtp_dir).await;
        let sms_port = free_port(&[smtp.addr.port()]);
        let sms_key = format!("e2e-sms-{}", uuid::Uuid::now_v7().simple());
        let vars: Vec<(String, String)> = [
            ("WAYBILL_SMTP_HOST", "127.0.0.1".to_owned()),
            ("WAYBILL_SMTP_PORT", smtp.addr.port().to_string()),
            ("WAYBILL_SMTP_SECURITY", "plain".to_owned()),
            ("WAYBILL_SMS_SANDBOX_ADDR", format!("127.0.0.1:{sms_port}")),
            ("WAYBILL_SMS_URL", format!("http://127.0.0.1:{sms_port}")),
            ("WAYBILL_SMS_API_KEY", sms_key.clone()),
            // The SMS adapter's retries are seen: the sandbox answers its first two sends 503.
            ("WAYBILL_SMS_SANDBOX_FAIL_FIRST", "2".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let borrowed = |extra: &[(&'static str, &'static str)]| -> Vec<(String, String)> {
            let mut all = vars.clone();
            all.extend(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            all
        };
        // `serve all` runs every view but notifications (and the ClickHouse one, not needed).
        let main_vars = borrowed(&[("WAYBILL_PROJECTOR_VIEWS", "tracking,search,desk")]);
        let main_refs: Vec<(&str, &str)> = main_vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let f = FulfillmentWorld::start("notifications", &main_refs).await;
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sms = f.world.env.start_with(Role::SmsSandbox, &refs).await;
        let mut world = World {
            f,
            smtp,
            sms,
            notifier: None,
            vars,
            sms_key,
        };
        world.start_notifier().await;
        world.f.world.restock(SKU, "wh-east", 20).await;
        world
    }

    /// The notifications view in its own process.
    async fn start_notifier(&mut self) {
        let mut vars: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        vars.push(("WAYBILL_PROJECTOR_VIEWS", "notifications"));
        self.notifier = Some(self.f.world.env.start_with(Role::Projector, &vars).await);
    }

    fn api(&self) -> &waybill_e2e::Api {
        &self.f.world.api
    }

    /// Every text message the SMS sandbox accepted.
    async fn texts(&self) -> Vec<Value> {
        let response = reqwest::Client::new()
            .get(format!("{}/v1/messages", self.sms.sms_url()))
            .bearer_auth(&self.sms_key)
            .send()
            .await
            .expect("list the SMS sandbox");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("JSON");
        body["messages"].as_array().cloned().unwrap_or_default()
    }

    /// `(event id, medium) -> (status, attempts)` of every ledger row.
    async fn ledger(&self) -> BTreeMap<(String, String), (String, i32, String)> {
        let rows: Vec<(uuid::Uuid, String, String, i32, uuid::Uuid)> = sqlx::query_as(
            "SELECT event_id, medium, status, attempts, order_id FROM notification_deliveries",
        )
        .fetch_all(self.f.world.env.db())
        .await
        .expect("read the ledger");
        rows.into_iter()
            .map(|(event, medium, status, attempts, order)| {
                (
                    (event.to_string(), medium),
                    (status, attempts, order.to_string()),
                )
            })
            .collect()
    }

    /// Places an order for `customer_id` (`None`: a guest), ships it, and has it scanned out
    /// for delivery and delivered.
    async fn order_delivered(&self, reference: &str, customer_id: Option<&str>) -> String {
        let mut body = order(reference, SKU, 1, APPROVED);
        body["customer"]["customer_id"] = json!(customer_id);
        let placed = self.f.world.place(&body).await;
        let order_id = placed["order_id"].as_str().expect("order id").to_owned();
        self.f.pack_all(&order_id, 1).await;
        let parcels = self.f.parcels(&order_id, 1).await;
        let parcel = parcels[0]["tracking_number"]
            .as_str()
            .expect("parcel")
            .to_owned();
        let t =
            |minutes: i64| (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339();
        self.f
            .scan(&parcel, json!({"status_code": "OD", "event_id": format!("{parcel}-od"), "carrier_time": t(-20)}))
            .await;
        self.f
            .scan(&parcel, json!({"status_code": "DL", "event_id": format!("{parcel}-dl"), "carrier_time": t(-5), "received_by": "front door"}))
            .await;
        self.f
            .view_when(&order_id, "delivered", |v| {
                v["shipments"][0]["status"] == json!("delivered")
            })
            .await;
        order_id
    }

    async fn resend(&self, order_id: &str, bearer: &str, key: &str, body: &Value) -> HttpResponse {
        self.api()
            .post_json(
                &format!("/v1/orders/{order_id}/notifications/resend"),
                bearer,
                key,
                body,
            )
            .await
    }
}

/// Quoted-printable soft line breaks removed, so words split across lines read whole.
fn unfolded(email: &ReceivedEmail) -> String {
    email.raw.replace("=\r\n", "").replace("=\n", "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_goes_once_per_event_and_medium_in_the_customers_language_through_loss_and_resends(
) {
    let mut w = World::start().await;
    let api = w.f.world.waybill.api();

    // Preferences over the API: the German customer wants both media in German, the quiet
    // one email only. Hostile input is refused naming the fields; nothing is stored for it.
    let german = w.f.world.env.jwt("cust-de", "customer");
    let quiet = w.f.world.env.jwt("cust-quiet", "customer");
    let refused = api
        .put_json(
            "/v1/me/notification-preferences",
            &german,
            "prefs-bad",
            &json!({"media": ["fax", "email"], "locale": "fr"}),
        )
        .await;
    refused.assert_problem(422, "validation-failed", "bad preferences");
    assert_eq!(refused.problem_fields(), ["media[0]", "locale"]);
    let set = api
        .put_json(
            "/v1/me/notification-preferences",
            &german,
            "prefs-de",
            &json!({"media": ["sms", "email"], "locale": "de"}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.describe());
    let again = api
        .put_json(
            "/v1/me/notification-preferences",
            &german,
            "prefs-de",
            &json!({"media": ["sms", "email"], "locale": "de"}),
        )
        .await;
    assert_eq!(
        again.json(),
        set.json(),
        "a repeat answers the first response"
    );
    let set = api
        .put_json(
            "/v1/me/notification-preferences",
            &quiet,
            "prefs-quiet",
            &json!({"media": ["email"], "locale": "en"}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.describe());
    let read = api
        .command_get("/v1/me/notification-preferences", &german)
        .await;
    assert_eq!(read.status, 200, "{}", read.describe());
    assert_eq!(read.json()["media"], json!(["email", "sms"]));
    assert_eq!(read.json()["locale"], json!("de"));
    assert_eq!(read.json()["customer_id"], json!("cust-de"));

    // Three orders through the lifecycle; the German customer's is refunded in part.
    let de = w.order_delivered("NTF-DE-1", Some("cust-de")).await;
    let guest = w.order_delivered("NTF-GUEST-1", None).await;
    let quiet_order = w.order_delivered("NTF-QUIET-1", Some("cust-quiet")).await;
    let refund = api
        .post_json(
            &format!("/v1/orders/{de}/refunds"),
            ADMIN_KEY,
            "ntf-refund",
            &json!({"amount_minor": 500, "currency": "USD", "reason": "late parcel"}),
        )
        .await;
    assert!(refund.status < 300, "{}", refund.describe());

    // What each order's customer must get: (kinds) x (media).
    let lifecycle = [
        "order_received",
        "order_confirmed",
        "shipped",
        "out_for_delivery",
        "delivered",
    ];
    let expected_per_order = [
        (de.clone(), lifecycle.len() + 1, 2),
        (guest.clone(), lifecycle.len(), 2),
        (quiet_order.clone(), lifecycle.len(), 1),
    ];
    let total_expected: usize = expected_per_order.iter().map(|(_, k, m)| k * m).sum();
    let ledger = eventually("every message sent", SETTLE, || async {
        let ledger = w.ledger().await;
        let sent = ledger.values().filter(|(s, ..)| s == "sent").count();
        if sent == total_expected && ledger.len() == total_expected {
            Ok(ledger)
        } else {
            Err(format!("{sent} of {total_expected} sent: {ledger:?}"))
        }
    })
    .await;
    for (order_id, kinds, media) in &expected_per_order {
        let rows = ledger.values().filter(|(_, _, o)| o == order_id).count();
        assert_eq!(rows, kinds * media, "order {order_id}");
    }

    // The SMTP server got each email once, with the ledger's identity, in the right language.
    let emails = w.smtp.received();
    let email_rows: BTreeSet<String> = ledger
        .keys()
        .filter(|(_, m)| m == "email")
        .map(|(event, _)| format!("<{event}.email@waybill.localhost>"))
        .collect();
    let ids: Vec<String> = emails.iter().map(|e| e.message_id.clone()).collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "an email arrived twice: {ids:?}");
    assert_eq!(unique, email_rows);
    for email in &emails {
        let german = email.to.contains("ntf-de-1");
        assert_eq!(
            email.content_language,
            if german { "de" } else { "en" },
            "{}",
            email.to
        );
        let text = unfolded(email);
        if german {
            assert!(text.contains("Bestellung NTF-DE-1"), "{text}");
        } else {
            assert!(text.contains("order NTF-"), "{text}");
        }
        assert!(text.contains("multipart/alternative"));
    }
    // The SMS sandbox got each text once (two 503s first: retried), German for cust-de.
    let texts = w.texts().await;
    let keys: BTreeSet<String> = texts
        .iter()
        .map(|t| t["idempotency_key"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(keys.len(), texts.len(), "a text arrived twice");
    let sms_rows: BTreeSet<String> = ledger
        .keys()
        .filter(|(_, m)| m == "sms")
        .map(|(event, _)| format!("{event}.sms"))
        .collect();
    assert_eq!(keys, sms_rows);
    assert!(texts
        .iter()
        .filter(|t| t["reference"] == json!(de))
        .all(|t| t["body"]
            .as_str()
            .unwrap_or_default()
            .contains("Bestellung")));
    assert!(
        !texts.iter().any(|t| t["reference"] == json!(quiet_order)),
        "the quiet customer turned text messages off"
    );
    let (emails_before, texts_before) = (emails.len(), texts.len());

    // Lose everything but the log: the view's Redis state, its NATS consumer (every event is
    // delivered again), and the process (kill -9). Nothing may be sent again.
    w.notifier.take().expect("notifier").kill_hard();
    let prefix = format!("{}:notifications:*", w.f.world.env.redis_prefix);
    let client = redis::Client::open(w.f.world.env.redis_url.as_str()).expect("redis url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&prefix)
        .query_async(&mut redis)
        .await
        .expect("keys");
    assert!(keys.len() >= 3, "the view kept state per order: {keys:?}");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut redis)
        .await
        .expect("del");
    let js = w.f.world.env.jetstream().await;
    let stream = js.get_stream(&w.f.world.env.stream).await.expect("stream");
    stream
        .delete_consumer("notifications")
        .await
        .expect("delete the notifications consumer");
    w.start_notifier().await;
    eventually(
        "the view rebuilt its state from the redelivered events",
        SETTLE,
        || async {
            let mut redis = redis.clone();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&prefix)
                .query_async(&mut redis)
                .await
                .map_err(|e| e.to_string())?;
            let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
                .get_consumer("notifications")
                .await
                .map_err(|e| e.to_string())?;
            let info = consumer.info().await.map_err(|e| e.to_string())?;
            if keys.len() >= 3 && info.num_pending == 0 && info.num_ack_pending == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{} states, {} pending, {} unacked",
                    keys.len(),
                    info.num_pending,
                    info.num_ack_pending
                ))
            }
        },
    )
    .await;
    assert_eq!(
        w.smtp.received().len(),
        emails_before,
        "an email was sent again"
    );
    assert_eq!(w.texts().await.len(), texts_before, "a text was sent again");
    assert_eq!(w.ledger().await, ledger, "the ledger is unchanged");

    // Resend: refused where it cannot be, then once per request however often it is repeated.
    w.resend(&de, &german, "rs-cust", &json!({"kind": "shipped"}))
        .await
        .assert_problem(403, "forbidden", "a customer cannot resend");
    w.resend(
        &guest,
        AGENT_KEY,
        "rs-none",
        &json!({"kind": "refund_issued"}),
    )
    .await
    .assert_problem(409, "invalid-transition", "no refund message on that order");
    w.resend(
        &de,
        AGENT_KEY,
        "rs-bad",
        &json!({"kind": "spam", "medium": "fax"}),
    )
    .await
    .assert_problem(422, "validation-failed", "unknown kind");
    let missing = "01a214fd-0000-7000-8000-0000000000ab";
    w.resend(
        missing,
        AGENT_KEY,
        "rs-missing",
        &json!({"kind": "shipped"}),
    )
    .await
    .assert_problem(404, "order-not-found", "unknown order");
    let first = w
        .resend(
            &de,
            AGENT_KEY,
            "rs-1",
            &json!({"kind": "shipped", "medium": "sms", "reason": "lost"}),
        )
        .await;
    assert_eq!(first.status, 202, "{}", first.describe());
    let repeated = w
        .resend(
            &de,
            AGENT_KEY,
            "rs-1",
            &json!({"kind": "shipped", "medium": "sms", "reason": "lost"}),
        )
        .await;
    assert_eq!(repeated.json()["event_id"], first.json()["event_id"]);
    let second = w
        .resend(&de, AGENT_KEY, "rs-2", &json!({"kind": "delivered"}))
        .await;
    assert_eq!(second.status, 202, "{}", second.describe());
    let first_event = first.json()["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let second_event = second.json()["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    eventually("the resends sent", SETTLE, || async {
        let (emails, texts) = (w.smtp.received().len(), w.texts().await.len());
        if emails == emails_before + 1 && texts == texts_before + 2 {
            Ok(())
        } else {
            Err(format!("{emails} emails, {texts} texts"))
        }
    })
    .await;
    let texts = w.texts().await;
    let resent: Vec<&Value> = texts
        .iter()
        .filter(|t| {
            let key = t["idempotency_key"].as_str().unwrap_or_default();
            key == format!("{first_event}.sms") || key == format!("{second_event}.sms")
        })
        .collect();
    assert_eq!(resent.len(), 2, "{texts:?}");
    assert!(resent.iter().all(|t| t["body"]
        .as_str()
        .unwrap_or_default()
        .contains("Bestellung")));
    let resent_mail: Vec<ReceivedEmail> = w
        .smtp
        .received()
        .into_iter()
        .filter(|e| e.message_id == format!("<{second_event}.email@waybill.localhost>"))
        .collect();
    assert_eq!(resent_mail.len(), 1);
    assert_eq!(resent_mail[0].content_language, "de");
    // Nothing more arrives (the repeated request sent nothing).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.smtp.received().len(), emails_before + 1);
    assert_eq!(w.texts().await.len(), texts_before + 2);
    // The order's history shows the resends with the agent as their actor.
    let events = w.f.world.env.event_types_of_order(&de).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "NotificationResendRequested")
            .count(),
        2
    );
}
