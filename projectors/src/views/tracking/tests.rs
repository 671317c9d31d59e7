//! The tracking view against the real Redis, and the whole projector path against the real NATS
//! and Postgres: each test has its own database, stream, subject root and Redis prefix.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use waybill_schemas::subject::subject_for;
use waybill_schemas::views::{TrackingStatus, TrackingView};
use waybill_schemas::{EventEnvelope, OrderId};
use waybill_write_side::outbox::relay::{
    ensure_stream, relay_jetstream, run_relay, RelayConfig, HEADER_STREAM_VERSION,
};
use waybill_write_side::trace_context::TRACEPARENT;

use super::*;
use crate::runtime::{dead_letter_stream_name, ProjectorConfig, StoreMarker, HEADER_ERROR};
use crate::testing::{
    cancelled_event, fresh_database, isolated_config, placed_event, redis, seed, seed_with_outbox,
};
use crate::{rebuild_tracking, run_tracking_projector};

const DEADLINE: Duration = Duration::from_secs(30);

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("projector task")
            .expect("projector result");
    }
}

struct Env {
    config: ProjectorConfig,
    js: jetstream::Context,
    store: TrackingStore,
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
        let store = TrackingStore::new(redis().await, config.redis_prefix.clone());
        // These tests seed the log with events they publish later, one by one, to watch the
        // consumer: the store is marked as already filled, so the projector's self-healing
        // (which fills a store without a marker from the whole log) leaves it to the consumer.
        let marker = store_marker(store.connection(), &config.redis_prefix);
        assert!(marker
            .begin("filled-before-the-test")
            .await
            .expect("marker"));
        assert!(marker
            .finish("filled-before-the-test")
            .await
            .expect("marker"));
        Self {
            config,
            js,
            store,
            pool: fresh_database().await,
        }
    }

    fn start(&self) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_tracking_projector(
            self.config.clone(),
            self.pool.clone(),
            self.js.clone(),
            self.store.connection(),
            async {
                let _ = stopped.await;
            },
        ));
        Running { stop, task }
    }

    /// Publishes like the relay but without `Nats-Msg-Id`, so repeats reach the consumer.
    async fn publish(&self, event: &EventEnvelope) {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, event.traceparent.clone().unwrap_or_default());
        headers.insert(HEADER_STREAM_VERSION, event.stream_version.to_string());
        let subject = subject_for(
            &self.config.subject_root,
            &event.stream_id,
            &event.event_type,
            8,
        );
        self.publish_raw(subject, headers, serde_json::to_vec(event).expect("encode"))
            .await;
    }

    async fn publish_raw(&self, subject: String, headers: HeaderMap, body: Vec<u8>) {
        self.js
            .publish_with_headers(subject, headers, body.into())
            .await
            .expect("publish")
            .await
            .expect("stream ack");
    }

    async fn wait_for_version(&self, order: OrderId, version: i64) -> TrackingView {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            // A store that was just restarted may refuse the first reads: not yet, then.
            if let Ok(Some(view)) = self.store.get(&order.to_string()).await {
                if view.version >= version {
                    return view;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "view of {order} did not reach v{version}"
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
            let mut consumer: jetstream::consumer::PullConsumer =
                stream.get_consumer(VIEW_NAME).await.expect("consumer");
            let info = consumer.info().await.expect("consumer info");
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "messages left unacknowledged"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn cleanup(self) {
        let _ = self.js.delete_stream(&self.config.stream_name).await;
        let _ = self
            .js
            .delete_stream(dead_letter_stream_name(&self.config.stream_name))
            .await;
        let _ = self.store.delete_all().await;
        let _: Result<(), _> = redis::cmd("DEL")
            .arg(keys::store_marker_key(&self.config.redis_prefix))
            .query_async(&mut self.store.connection())
            .await;
    }
}

#[tokio::test]
async fn compare_and_set_never_regresses_a_view() {
    let store = TrackingStore::new(redis().await, isolated_config().redis_prefix);
    let order = OrderId::new_v7();
    let v1 = apply(None, &placed_event(order, 1)).expect("placed");
    let v2 = apply(Some(&v1), &cancelled_event(order, 2)).expect("cancelled");
    let write = |expected_version, view: &TrackingView| TrackingWrite {
        expected_version,
        view: view.clone(),
    };

    assert_eq!(
        store.compare_and_set(&[write(0, &v1)]).await.expect("cas"),
        [true]
    );
    assert_eq!(
        store.compare_and_set(&[write(0, &v1)]).await.expect("cas"),
        [false],
        "a duplicate first write loses"
    );
    assert_eq!(
        store.compare_and_set(&[write(1, &v2)]).await.expect("cas"),
        [true]
    );
    assert_eq!(
        store.compare_and_set(&[write(0, &v1)]).await.expect("cas"),
        [false],
        "a stale write loses"
    );
    assert_eq!(
        store
            .replace_unless_newer(std::slice::from_ref(&v1))
            .await
            .expect("replace"),
        [false]
    );
    assert_eq!(store.get(&order.to_string()).await.expect("get"), Some(v2));
    store.delete_all().await.expect("cleanup");
}

#[tokio::test]
async fn duplicates_reordering_and_gaps_still_end_in_the_right_views() {
    let env = Env::new().await;
    let orders: Vec<OrderId> = (0..6).map(|_| OrderId::new_v7()).collect();
    let mut log = Vec::new();
    for order in &orders {
        log.push(placed_event(*order, 1));
        log.push(cancelled_event(*order, 2));
    }
    seed(&env.pool, &log).await;
    let placed = |i: usize| &log[2 * i];
    let cancelled = |i: usize| &log[2 * i + 1];

    // Order 0: in order. 1: cancelled before placed. 2: placed three times, then cancelled.
    // 3: only the cancellation is published (placed must come from the event store).
    // 4: cancelled, placed, cancelled again. 5: only placed, twice.
    let scrambled = [
        cancelled(1),
        placed(2),
        placed(0),
        cancelled(3),
        placed(2),
        cancelled(4),
        placed(5),
        cancelled(0),
        placed(1),
        placed(4),
        placed(2),
        cancelled(2),
        cancelled(4),
        placed(5),
    ];
    for event in scrambled {
        env.publish(event).await;
    }
    let running = env.start();

    for (i, order) in orders.iter().enumerate() {
        let expected = if i == 5 { 1 } else { 2 };
        let view = env.wait_for_version(*order, expected).await;
        assert_eq!(view.version, expected, "order {i}");
        assert_eq!(view.timeline.len() as i64, expected, "order {i} timeline");
        let versions: Vec<i64> = view.timeline.iter().map(|t| t.version).collect();
        assert_eq!(versions, (1..=expected).collect::<Vec<_>>(), "order {i}");
        let status = if i == 5 {
            TrackingStatus::Placed
        } else {
            TrackingStatus::Cancelled
        };
        assert_eq!(view.status, status, "order {i}");
        assert_eq!(view.totals.grand_total_minor, 3240);
    }
    env.wait_until_all_acked().await;

    // A late redelivery of an old event changes nothing.
    env.publish(placed(0)).await;
    env.wait_until_all_acked().await;
    let view = env.store.get(&orders[0].to_string()).await.expect("view");
    assert_eq!(view.map(|v| v.version), Some(2));

    running.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn poison_events_go_to_the_dead_letter_subject_and_the_projector_keeps_going() {
    let env = Env::new().await;
    let poisoned = OrderId::new_v7();
    let healthy = OrderId::new_v7();
    let mut bad = placed_event(poisoned, 1);
    bad.payload =
        serde_json::json!({"order_id": poisoned.to_string(), "lines": "not a list"}).into();
    let good = [placed_event(healthy, 1), cancelled_event(healthy, 2)];
    seed(&env.pool, &good).await;

    let dlq = env
        .js
        .get_or_create_stream(jetstream::stream::Config {
            name: dead_letter_stream_name(&env.config.stream_name),
            subjects: vec![waybill_schemas::subject::dead_letter_subject(
                &env.config.subject_root,
                ">",
            )],
            ..Default::default()
        })
        .await
        .expect("dead-letter stream");

    env.publish(&bad).await;
    env.publish_raw(
        format!("{}.v1.0.OrderPlaced", env.config.subject_root),
        HeaderMap::new(),
        b"{not json".to_vec(),
    )
    .await;
    env.publish(&good[0]).await;
    let running = env.start();
    env.publish(&good[1]).await;

    let view = env.wait_for_version(healthy, 2).await;
    assert_eq!(view.status, TrackingStatus::Cancelled);

    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut dlq = dlq;
    while dlq.info().await.expect("dlq info").state.messages < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "poison events not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dead_letter_subject =
        waybill_schemas::subject::dead_letter_subject(&env.config.subject_root, VIEW_NAME);
    let mut errors = Vec::new();
    for seq in 1..=2 {
        let message = dlq.get_raw_message(seq).await.expect("dead letter");
        assert_eq!(message.subject.as_str(), dead_letter_subject);
        errors.push(
            message
                .headers
                .get(HEADER_ERROR)
                .map(|v| v.to_string())
                .unwrap_or_default(),
        );
    }
    errors.sort();
    assert!(errors[0].contains("cannot be decoded"), "{errors:?}");
    assert!(errors[1].contains("not an event envelope"), "{errors:?}");
    assert_eq!(
        env.store.get(&poisoned.to_string()).await.expect("read"),
        None
    );
    env.wait_until_all_acked().await;

    running.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn rebuild_replays_the_log_into_fresh_views_and_swaps_them_in() {
    let env = Env::new().await;
    let orders: Vec<OrderId> = (0..10).map(|_| OrderId::new_v7()).collect();
    let mut log = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        log.push(placed_event(*order, 1));
        if i % 2 == 0 {
            log.push(cancelled_event(*order, 2));
        }
    }
    seed(&env.pool, &log).await;

    // Live views as a buggy projector left them: one wrong at the right version, one behind.
    let mut wrong = apply(None, &placed_event(orders[1], 1)).expect("placed");
    wrong.shipping_method = "teleport".into();
    let behind = apply(None, &placed_event(orders[0], 1)).expect("placed");
    env.store
        .compare_and_set(&[
            TrackingWrite {
                expected_version: 0,
                view: wrong,
            },
            TrackingWrite {
                expected_version: 0,
                view: behind,
            },
        ])
        .await
        .expect("seed live views");

    let mut progress = Vec::new();
    let report = rebuild_tracking(&env.config, env.pool.clone(), env.store.connection(), |n| {
        progress.push(n)
    })
    .await
    .expect("rebuild");

    assert_eq!(report.events, 15);
    assert_eq!(report.views, 10);
    assert_eq!(report.swapped, 10);
    assert_eq!(progress.last(), Some(&15));
    assert!(
        progress.len() >= 3,
        "progress after every page: {progress:?}"
    );
    for (i, order) in orders.iter().enumerate() {
        let view = env
            .store
            .get(&order.to_string())
            .await
            .expect("read")
            .expect("rebuilt view");
        assert_eq!(view.version, if i % 2 == 0 { 2 } else { 1 }, "order {i}");
        assert_eq!(view.shipping_method, "standard");
    }
    let staging = TrackingStore::new(
        env.store.connection(),
        format!("{}:rebuild-*", env.config.redis_prefix),
    );
    let left = staging.scan().collect_all().await.expect("scan");
    assert_eq!(left, Vec::<String>::new(), "staging copy removed");
    env.cleanup().await;
}

/// A replay ends at the head of the log as it was when it began, so it ends however fast
/// orders arrive: here every event after the first ten is recorded an hour after the replay
/// starts (as orders arriving during it would be), and the replay stops after the page that
/// reaches them instead of reading on.
#[tokio::test]
async fn a_replay_stops_at_the_head_of_the_log_as_it_was_when_it_began() {
    let env = Env::new().await;
    let before: Vec<OrderId> = (0..10).map(|_| OrderId::new_v7()).collect();
    let later: Vec<OrderId> = (0..40).map(|_| OrderId::new_v7()).collect();
    seed(
        &env.pool,
        &before
            .iter()
            .map(|o| placed_event(*o, 1))
            .collect::<Vec<_>>(),
    )
    .await;
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    let arriving: Vec<_> = later
        .iter()
        .map(|o| EventEnvelope {
            recorded_at: in_an_hour,
            ..placed_event(*o, 1)
        })
        .collect();
    seed(&env.pool, &arriving).await;

    let events = waybill_write_side::event_store::EventStore::new(env.pool.clone());
    let view = TrackingProjection::new(env.store.clone());
    let report = crate::runtime::replay_log(&events, &view, None, 4, |_| {})
        .await
        .expect("replay");
    // Pages of 4: the third page (events 9..12) is the first to reach a later event.
    assert_eq!(report.events, 12, "{report:?}");
    for order in &before {
        assert!(
            env.store
                .get(&order.to_string())
                .await
                .expect("read")
                .is_some(),
            "an order recorded before the replay began is replayed"
        );
    }
    let mut replayed_later = 0;
    for order in &later {
        replayed_later += usize::from(
            env.store
                .get(&order.to_string())
                .await
                .expect("read")
                .is_some(),
        );
    }
    assert_eq!(
        replayed_later, 2,
        "only the later events on the last page read"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn committed_events_flow_through_the_relay_into_tracking_views() {
    let env = Env::new().await;
    let orders: Vec<OrderId> = (0..25).map(|_| OrderId::new_v7()).collect();
    let mut log = Vec::new();
    for order in &orders {
        log.push(placed_event(*order, 1));
        log.push(cancelled_event(*order, 2));
    }
    seed_with_outbox(&env.pool, &log).await;

    let projector = env.start();
    let client = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("nats up");
    let (stop_relay, relay_stopped) = oneshot::channel::<()>();
    let relay = tokio::spawn(run_relay(
        RelayConfig {
            batch_size: 16,
            ..RelayConfig::new(&env.config.stream_name, &env.config.subject_root)
        },
        env.pool.clone(),
        relay_jetstream(client),
        async {
            let _ = relay_stopped.await;
        },
    ));

    for order in &orders {
        let view = env.wait_for_version(*order, 2).await;
        assert_eq!(view.status, TrackingStatus::Cancelled);
    }
    env.wait_until_all_acked().await;
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&env.pool)
        .await
        .expect("outbox count");
    assert_eq!(outbox, 0);

    let _ = stop_relay.send(());
    relay.await.expect("relay task").expect("relay result");
    projector.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn the_checkout_lifecycle_reaches_redis_as_the_customer_sees_it() {
    use crate::testing::{
        allocated_event, authorized_event, captured_event, challenge_event, confirmed_event,
        reserved_event, risk_assessed,
    };
    use waybill_schemas::events::RiskDecision;
    use waybill_schemas::views::{PaymentState, StockState};

    let env = Env::new().await;
    let order = OrderId::new_v7();
    let log = [
        placed_event(order, 1),
        risk_assessed(order, 2, RiskDecision::Accept),
        reserved_event(order, 3),
        challenge_event(order, 4),
        authorized_event(order, 5),
        allocated_event(order, 6),
        confirmed_event(order, 7),
        captured_event(order, 8, 3240),
    ];
    seed(&env.pool, &log).await;
    let running = env.start();

    // Up to the 3-D Secure challenge: the customer must act, the link is in the view.
    for event in &log[..4] {
        env.publish(event).await;
    }
    let waiting = env.wait_for_version(order, 4).await;
    assert_eq!(waiting.status, TrackingStatus::AwaitingPayment);
    assert_eq!(waiting.payment.state, PaymentState::ActionRequired);
    assert!(waiting.payment.action_url.is_some());
    assert_eq!(waiting.stock.state, StockState::Reserved);

    // The rest, with the allocation lost in transit (filled from the event store).
    for event in [&log[4], &log[6], &log[7]] {
        env.publish(event).await;
    }
    let done = env.wait_for_version(order, 8).await;
    assert_eq!(done.status, TrackingStatus::Confirmed);
    assert_eq!(done.stock.state, StockState::Allocated);
    assert_eq!(done.payment.state, PaymentState::Captured);
    assert_eq!(done.payment.captured_minor, 3240);
    assert_eq!(done.payment.action_url, None);
    assert!(done.confirmed_at.is_some());
    let summaries: Vec<&str> = done.timeline.iter().map(|t| t.summary.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "Order placed: 2 items for 32.40 USD",
            "Items reserved for you until 16:15 UTC",
            "Your bank asks you to confirm this payment",
            "Payment authorized",
            "Order confirmed",
            "Payment of 32.40 USD taken",
        ]
    );
    env.wait_until_all_acked().await;

    running.stop().await;
    env.cleanup().await;
}

/// A private `redis-server` on a free port, without persistence, that a test may pause or stop
/// (the shared one is never touched).
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut redis = Self { port, child: None };
        redis.spawn();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(std::env::temp_dir())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "private redis up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Defect: after a store outage longer than a pull's lifetime (plus the client's 5 s grace),
/// the messages delivered into that pull while the batch before them waited were dropped with
/// it and came back only after `ack_wait` (30 s): the view stalled for those orders. Now the
/// pull is one continuous subscription and those messages are applied as soon as the store
/// answers again. The store stops answering for 8 s (`CLIENT PAUSE` on a private Redis).
#[tokio::test]
async fn a_store_outage_delays_nothing_beyond_the_outage() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut env = Env::new().await;
    let private = PrivateRedis::start();
    let client = redis::Client::open(private.url()).expect("redis url");
    let connection = redis::aio::ConnectionManager::new(client.clone())
        .await
        .expect("private redis");
    env.store = TrackingStore::new(connection.into(), env.config.redis_prefix.clone());
    let first = OrderId::new_v7();
    let waiting: Vec<OrderId> = (0..5).map(|_| OrderId::new_v7()).collect();
    let mut log = vec![placed_event(first, 1), cancelled_event(first, 2)];
    log.extend(waiting.iter().map(|o| placed_event(*o, 1)));
    seed(&env.pool, &log).await;
    let running = env.start();
    env.publish(&log[0]).await;
    env.wait_for_version(first, 1).await;

    let pause = Duration::from_secs(8);
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .query_async(&mut admin)
        .await
        .expect("pause");
    let paused = tokio::time::Instant::now();
    // The first message is taken into a batch whose store call does not return; the next
    // ones arrive while that batch waits.
    env.publish(&log[1]).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    for event in &log[2..] {
        env.publish(event).await;
    }
    tokio::time::sleep_until(paused + pause).await;
    let back = tokio::time::Instant::now();

    let view = env.wait_for_version(first, 2).await;
    assert_eq!(view.status, TrackingStatus::Cancelled);
    for order in &waiting {
        env.wait_for_version(*order, 1).await;
    }
    let took = back.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "views applied {took:?} after the store answered again (ack_wait is 30 s)"
    );
    env.wait_until_all_acked().await;
    running.stop().await;
    env.cleanup().await;
}

/// Issue 13.7: a Redis `FLUSHALL` and a restart without persistence used to leave every view
/// missing until someone ran `rebuild tracking`. The projector now finds its store's generation
/// marker gone and fills the store again from the log while it keeps applying; orders that get
/// no new event come back too. The log here is never published, so only the fill can write
/// these views.
#[tokio::test]
async fn a_store_that_lost_its_data_is_filled_again_from_the_log() {
    let mut env = Env::new().await;
    env.config.self_heal.check = Duration::from_millis(100);
    env.config.self_heal.lease = Duration::from_millis(500);
    let mut private = PrivateRedis::start();
    let client = redis::Client::open(private.url()).expect("redis url");
    let connection = redis::aio::ConnectionManager::new(client.clone())
        .await
        .expect("private redis");
    env.store = TrackingStore::new(connection.into(), env.config.redis_prefix.clone());
    let marker = store_marker(env.store.connection(), &env.config.redis_prefix);
    let orders: Vec<OrderId> = (0..12).map(|_| OrderId::new_v7()).collect();
    let mut log = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        log.push(placed_event(*order, 1));
        if i % 3 == 0 {
            log.push(cancelled_event(*order, 2));
        }
    }
    seed(&env.pool, &log).await;
    let expected: Vec<TrackingView> = orders
        .iter()
        .map(|order| {
            let stream: Vec<&EventEnvelope> = log
                .iter()
                .filter(|e| e.stream_id == order.stream_id())
                .collect();
            fold(stream).expect("fold").expect("a view")
        })
        .collect();
    let all_back = |what: &'static str| {
        let env = &env;
        let expected = &expected;
        let marker = &marker;
        async move {
            let deadline = tokio::time::Instant::now() + DEADLINE;
            loop {
                let ready = marker.read().await.is_ok_and(|s| s.is_ready());
                let mut equal = 0;
                for view in expected {
                    if let Ok(Some(stored)) = env.store.get(&view.order_id).await {
                        if &stored == view {
                            equal += 1;
                        }
                    }
                }
                if ready && equal == expected.len() {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what}: {equal} of {} views equal to the fold, marker ready: {ready}",
                    expected.len()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    let running = env.start();
    all_back("a new store is filled from the log").await;
    let first = marker.read().await.expect("marker");

    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .expect("flushall");
    all_back("after FLUSHALL").await;
    let second = marker.read().await.expect("marker");
    assert_ne!(first, second, "a new generation after the loss");

    // A restart without persistence: the same port, an empty server.
    private.stop();
    private.spawn();
    all_back("after a restart without persistence").await;
    assert_ne!(second, marker.read().await.expect("marker"));

    running.stop().await;
    env.cleanup().await;
}

/// Fixture events of `order` recorded at `recorded_at`: placed, then cancelled when `versions`
/// is 2.
fn recorded(
    order: OrderId,
    versions: i64,
    recorded_at: chrono::DateTime<chrono::Utc>,
) -> Vec<EventEnvelope> {
    let mut events = vec![placed_event(order, 1)];
    if versions > 1 {
        events.push(cancelled_event(order, 2));
    }
    events
        .into_iter()
        .map(|e| EventEnvelope { recorded_at, ..e })
        .collect()
}

/// A Redis failover can promote a replica that never received writes its master had confirmed
/// (replication is asynchronous): the view is then behind the log on streams that may never
/// get another event, and the live path, which fills a gap only when the next event comes,
/// never notices. The audit compares the streams the log changed with the store and fills those
/// behind; streams already level are left alone, a second pass has nothing to do, and a pass
/// cut at its limit resumes where it stopped.
#[tokio::test]
async fn the_audit_fills_streams_whose_confirmed_writes_the_store_lost() {
    let env = Env::new().await;
    let now = chrono::Utc::now();
    let minute_ago = now - chrono::Duration::seconds(60);
    let (lost, level, missing, old) = (
        OrderId::new_v7(),
        OrderId::new_v7(),
        OrderId::new_v7(),
        OrderId::new_v7(),
    );
    let lost_log = recorded(lost, 2, minute_ago);
    let level_log = recorded(level, 2, minute_ago);
    let missing_log = recorded(missing, 1, minute_ago);
    let old_log = recorded(old, 1, now - chrono::Duration::hours(1));
    let log: Vec<EventEnvelope> = [&lost_log, &level_log, &missing_log, &old_log]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    seed(&env.pool, &log).await;
    // What survived the failover: `level` whole, `lost` without its cancellation, nothing of
    // `missing` (or of `old`, outside the audited span).
    let view = TrackingProjection::new(env.store.clone());
    let survived = [
        fold(&level_log).expect("fold"),
        fold(&lost_log[..1]).expect("fold"),
    ];
    let writes: Vec<TrackingWrite> = survived
        .into_iter()
        .flatten()
        .map(|view| TrackingWrite {
            expected_version: 0,
            view,
        })
        .collect();
    assert_eq!(
        env.store.compare_and_set(&writes).await.expect("write"),
        vec![true, true]
    );

    let events = waybill_write_side::event_store::EventStore::new(env.pool.clone());
    let (after, until) = (
        now - chrono::Duration::minutes(10),
        now - chrono::Duration::seconds(1),
    );
    let (report, reached) = crate::runtime::audit::pass(&events, &view, after, until, 100)
        .await
        .expect("audit pass");
    assert_eq!(report.checked, 3, "{report:?}");
    let mut repaired = report.repaired.clone();
    repaired.sort();
    let mut expected = vec![lost.stream_id(), missing.stream_id()];
    expected.sort();
    assert_eq!(repaired, expected);
    assert_eq!(report.unappliable, 0);
    assert_eq!(reached, until, "the whole span was read");
    for (order, log) in [
        (lost, &lost_log),
        (level, &level_log),
        (missing, &missing_log),
    ] {
        assert_eq!(
            env.store.get(&order.to_string()).await.expect("read"),
            fold(log).expect("fold"),
            "{order} equals the fold of its log"
        );
    }
    assert_eq!(
        env.store.get(&old.to_string()).await.expect("read"),
        None,
        "a stream outside the span is not read"
    );

    let (again, _) = crate::runtime::audit::pass(&events, &view, after, until, 100)
        .await
        .expect("second pass");
    assert_eq!((again.checked, again.repaired.len()), (3, 0), "{again:?}");

    // Cut at one stream: the pass reads the least recently changed one and reaches just
    // before its change, so the streams changed at that same instant are read next time.
    let (cut, reached) = crate::runtime::audit::pass(&events, &view, after, until, 1)
        .await
        .expect("cut pass");
    assert_eq!(cut.checked, 1);
    assert!(reached > after && reached < minute_ago, "{reached}");
    env.cleanup().await;
}

/// The projector audits its view while it runs: a stream whose events never reached it (here
/// they are only in the log, never published) is filled from the log once it settles.
#[tokio::test]
async fn the_projector_audits_its_view_against_the_log_while_it_runs() {
    let mut env = Env::new().await;
    env.config.audit.every = Duration::from_millis(200);
    env.config.audit.settle = Duration::ZERO;
    let running = env.start();
    let order = OrderId::new_v7();
    let log = recorded(order, 2, chrono::Utc::now());
    seed(&env.pool, &log).await;
    let expected = fold(&log).expect("fold");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while env.store.get(&order.to_string()).await.expect("read") != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the audit did not fill the view within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await;
    env.cleanup().await;
}
