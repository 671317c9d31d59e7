//! The notifications view through the real consumer runtime: real NATS, Postgres (for gap
//! filling) and Redis, with the file sink in a scratch directory.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use waybill_schemas::access::TrackingKeys;
use waybill_schemas::events::CancelReason;
use waybill_schemas::subject::subject_for;
use waybill_schemas::{EventEnvelope, OrderId};
use waybill_write_side::outbox::relay::{ensure_stream, HEADER_STREAM_VERSION};

use super::*;
use crate::runtime::{dead_letter_stream_name, ProjectorConfig};
use crate::testing::*;

const DEADLINE: Duration = Duration::from_secs(30);
const SECRET: &[u8] = b"notifications-test-secret";

struct Env {
    config: ProjectorConfig,
    notifications: NotificationsConfig,
    js: jetstream::Context,
    store: NotificationStore,
    pool: sqlx::PgPool,
}

impl Env {
    async fn new() -> Self {
        let config = isolated_config();
        let client = async_nats::connect("nats://127.0.0.1:4222")
            .await
            .expect("nats up");
        let js = jetstream::new(client);
        ensure_stream(&js, &config.stream_name, &config.subject_root)
            .await
            .expect("event stream");
        let dir = std::env::temp_dir().join(format!("waybill-{}", config.redis_prefix));
        let notifications = NotificationsConfig {
            // Fixture events are from 2025: deliver them all.
            stale_after: None,
            ..NotificationsConfig::new(dir, "https://shop.example", SECRET)
        };
        Self {
            store: NotificationStore::new(redis().await, config.redis_prefix.clone()),
            config,
            notifications,
            js,
            pool: fresh_database().await,
        }
    }

    /// Starts the projector with the file sink, recording every message handed to it.
    fn start(
        &self,
    ) -> (
        oneshot::Sender<()>,
        JoinHandle<anyhow::Result<()>>,
        Recorded,
    ) {
        let (stop, stopped) = oneshot::channel::<()>();
        let recorded = Recorded::default();
        let sink = RecordingSink {
            inner: FileSink::new(self.notifications.dir.clone()),
            recorded: recorded.clone(),
        };
        let view = NotificationsProjection::new(self.store.clone(), sink, &self.notifications);
        let task = tokio::spawn(crate::run_projector(
            self.config.clone(),
            self.pool.clone(),
            self.js.clone(),
            view,
            async {
                let _ = stopped.await;
            },
        ));
        (stop, task, recorded)
    }

    /// Publishes like the relay but without `Nats-Msg-Id`, so repeats reach the consumer.
    async fn publish(&self, event: &EventEnvelope) {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_STREAM_VERSION, event.stream_version.to_string());
        let subject = subject_for(
            &self.config.subject_root,
            &event.stream_id,
            &event.event_type,
            8,
        );
        self.js
            .publish_with_headers(
                subject,
                headers,
                serde_json::to_vec(event).expect("encode").into(),
            )
            .await
            .expect("publish")
            .await
            .expect("stream ack");
    }

    fn dir(&self) -> &PathBuf {
        &self.notifications.dir
    }

    fn message_files(&self) -> BTreeSet<String> {
        match std::fs::read_dir(self.dir()) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".txt"))
                .collect(),
            Err(_) => BTreeSet::new(),
        }
    }

    async fn wait_for_files(&self, count: usize) -> BTreeSet<String> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let files = self.message_files();
            if files.len() >= count {
                return files;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {count} messages written: {files:?}",
                files.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the consumer has nothing pending and nothing unacknowledged.
    async fn wait_until_all_acked(&self) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let stream = self
                .js
                .get_stream(&self.config.stream_name)
                .await
                .expect("stream");
            // The projector creates its consumer when it starts.
            let consumer: Result<jetstream::consumer::PullConsumer, _> =
                stream.get_consumer(VIEW_NAME).await;
            if let Ok(mut consumer) = consumer {
                let info = consumer.info().await.expect("consumer info");
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "messages left unacknowledged"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir().join(file)).expect("message file")
    }

    async fn cleanup(self) {
        let _ = self.js.delete_stream(&self.config.stream_name).await;
        let _ = self
            .js
            .delete_stream(dead_letter_stream_name(&self.config.stream_name))
            .await;
        let _ = self.store.delete_all().await;
        let _ = std::fs::remove_dir_all(self.dir());
    }
}

/// Ids of the messages handed to the sink, in order, repeats included.
type Recorded = Arc<Mutex<Vec<String>>>;

struct RecordingSink {
    inner: FileSink,
    recorded: Recorded,
}

impl NotificationSink for RecordingSink {
    async fn deliver(&self, messages: Vec<Notification>) -> Result<(), SinkError> {
        let ids: Vec<String> = messages.iter().map(Notification::id).collect();
        self.inner.deliver(messages).await?;
        self.recorded.lock().expect("lock").extend(ids);
        Ok(())
    }
}

/// `(order, kind, medium)` of every message file.
fn summary(files: &BTreeSet<String>) -> BTreeSet<(String, String, String)> {
    files
        .iter()
        .map(|name| {
            let order = name[21..57].to_owned();
            let rest = &name[58..];
            let kind = rest.split('-').next().unwrap_or_default().to_owned();
            let medium = name
                .trim_end_matches(".txt")
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            (order, kind, medium)
        })
        .collect()
}

#[tokio::test]
async fn events_become_one_message_each_despite_duplicates_reordering_and_gaps() {
    let env = Env::new().await;
    let happy = OrderId::new_v7();
    let declined = OrderId::new_v7();
    let happy_log = [
        placed_event_with_phone(happy, 1),
        risk_assessed(happy, 2, waybill_schemas::events::RiskDecision::Accept),
        reserved_event(happy, 3),
        challenge_event(happy, 4),
        authorized_event(happy, 5),
        allocated_event(happy, 6),
        confirmed_event(happy, 7),
    ];
    let declined_log = [
        placed_event(declined, 1),
        reserved_event(declined, 2),
        declined_event(declined, 3, "insufficient_funds"),
        cancelled_for(declined, 4, CancelReason::PaymentFailed),
    ];
    seed(&env.pool, &happy_log).await;
    seed(&env.pool, &declined_log).await;

    // The happy order arrives shuffled and with repeats; of the declined one only the last two
    // events are published, so its contact details must come from the event store.
    for i in [3, 0, 1, 0, 6, 2, 4, 5, 3] {
        env.publish(&happy_log[i]).await;
    }
    env.publish(&declined_log[3]).await;
    env.publish(&declined_log[2]).await;
    let (stop, task, recorded) = env.start();

    let files = env.wait_for_files(9).await;
    env.wait_until_all_acked().await;
    let files_after = env.message_files();
    assert_eq!(files_after, files, "nothing more was written");
    let (h, d) = (happy.to_string(), declined.to_string());
    let expected: BTreeSet<(String, String, String)> = [
        (&h, "order_received", "email"),
        (&h, "order_received", "sms"),
        (&h, "action_required", "email"),
        (&h, "action_required", "sms"),
        (&h, "order_confirmed", "email"),
        (&h, "order_confirmed", "sms"),
        (&d, "order_received", "email"),
        (&d, "payment_failed", "email"),
        (&d, "order_cancelled", "email"),
    ]
    .into_iter()
    .map(|(o, k, m)| (o.clone(), k.to_owned(), m.to_owned()))
    .collect();
    assert_eq!(summary(&files), expected);

    let confirmed_file = files
        .iter()
        .find(|f| f.contains(&h) && f.contains("order_confirmed") && f.ends_with(".email.txt"))
        .expect("confirmation email");
    let text = env.read(confirmed_file);
    assert!(text.starts_with("To: ada@example.com\nSubject: Your order WEB-"));
    let prefix = format!("https://shop.example/track/{happy}?token=");
    let token: String = text[text.find(&prefix).expect("tracking link") + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '.')
        .collect();
    // Valid a day after the (fixture-dated) event.
    assert!(TrackingKeys::new(SECRET).verify(happy, &token, at(86_400)));

    // The index is written again at most every INDEX_INTERVAL: every message is listed by then.
    let deadline = std::time::Instant::now() + sink::INDEX_INTERVAL + Duration::from_secs(5);
    loop {
        let index = env.read("index.html");
        match files.iter().find(|file| !index.contains(file.as_str())) {
            None => break,
            Some(file) if std::time::Instant::now() > deadline => panic!("{file} not listed"),
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }

    // A late redelivery of an already-notified event sends nothing new.
    env.publish(&happy_log[6]).await;
    env.publish(&declined_log[0]).await;
    env.wait_until_all_acked().await;
    assert_eq!(env.message_files(), files);
    let state = env.store.get(happy).await.expect("state").expect("stored");
    assert_eq!(state.version, 7);
    let handed_over = recorded.lock().expect("lock").clone();
    assert_eq!(
        handed_over.len(),
        9,
        "each message handed to the sink once: {handed_over:?}"
    );

    let _ = stop.send(());
    task.await
        .expect("projector task")
        .expect("projector result");
    env.cleanup().await;
}

#[tokio::test]
async fn a_new_consumer_does_not_mail_customers_about_old_events() {
    let mut env = Env::new().await;
    env.notifications.stale_after = Some(Duration::from_secs(3600));
    let order = OrderId::new_v7();
    let log = [placed_event(order, 1), confirmed_event(order, 2)];
    seed(&env.pool, &log).await;
    for event in &log {
        env.publish(event).await;
    }
    let (stop, task, recorded) = env.start();
    env.wait_until_all_acked().await;

    let state = env.store.get(order).await.expect("state").expect("stored");
    assert_eq!(state.version, 2, "the state still moved on");
    assert_eq!(env.message_files(), BTreeSet::new());
    assert_eq!(recorded.lock().expect("lock").len(), 0);

    let _ = stop.send(());
    task.await
        .expect("projector task")
        .expect("projector result");
    env.cleanup().await;
}

#[test]
fn only_messages_older_than_the_limit_are_held_back() {
    let order = OrderId::new_v7();
    let placed = placed_event(order, 1);
    let contact = match placed.decode().expect("decodes") {
        waybill_schemas::OrderEvent::OrderPlaced(p) => OrderContact::from_placed(&p),
        other => panic!("not a placement: {other:?}"),
    };
    let links = env_links();
    let old = render(
        &contact,
        &placed.decode().expect("decodes"),
        &placed,
        &links,
    );
    let confirmed = confirmed_event(order, 3600);
    let new = render(
        &contact,
        &confirmed.decode().expect("decodes"),
        &confirmed,
        &links,
    );
    let mut all = old.clone();
    all.extend(new.clone());

    let now = at(3600 + 60);
    let (fresh, stale) = split_stale(all.clone(), now, Some(Duration::from_secs(600)));
    assert_eq!((fresh, stale), (new, 1));
    let (fresh, stale) = split_stale(all.clone(), now, None);
    assert_eq!((fresh, stale), (all, 0));
}

fn env_links() -> Links {
    Links {
        public_tracking_base_url: "https://shop.example".into(),
        tracking: TrackingKeys::new(SECRET),
    }
}

#[tokio::test]
async fn a_rebuild_restores_lost_and_stale_states_and_sends_nothing() {
    let env = Env::new().await;
    let orders: Vec<OrderId> = (0..5).map(|_| OrderId::new_v7()).collect();
    let mut log = Vec::new();
    for order in &orders {
        log.push(placed_event_with_phone(*order, 1));
        log.push(cancelled_event(*order, 2));
    }
    seed(&env.pool, &log).await;
    // Live: order 0 stale at v1, order 1 current, the rest lost (a flushed Redis).
    let links = env.notifications.links();
    let mut stale = apply(None, &log[0], &links).expect("placed");
    stale.outgoing.clear();
    let mut current = apply(None, &log[2], &links).expect("placed");
    current = apply(Some(&current), &log[3], &links).expect("cancelled");
    current.outgoing.clear();
    env.store
        .compare_and_set(&[(0, stale), (0, current.clone())])
        .await
        .expect("seed live states");

    let mut pages = 0;
    let report = rebuild_notifications(
        &env.config,
        &env.notifications,
        env.pool.clone(),
        env.store.connection(),
        |_| pages += 1,
    )
    .await
    .expect("rebuild");

    assert_eq!(report.events, 10);
    assert_eq!(report.states, 5);
    assert_eq!(report.switched, 4, "all but the current one: {report:?}");
    assert!(pages >= 2, "progress after every page");
    for order in &orders {
        let state = env.store.get(*order).await.expect("read").expect("state");
        assert_eq!(state.version, 2);
        assert_eq!(state.contact.order_id, *order);
        assert_eq!(state.contact.phone.as_deref(), Some("+1 217 555 0142"));
    }
    assert_eq!(env.store.get(orders[1]).await.expect("read"), Some(current));
    assert_eq!(env.message_files(), BTreeSet::new(), "nothing was sent");
    env.cleanup().await;
}
