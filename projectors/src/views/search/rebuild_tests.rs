//! Blue/green rebuilds of the embedded index against the real Postgres and NATS: a rebuild
//! switched in while the live projector keeps applying (adopted between two of its batches),
//! and one switched in by the rebuild itself when no projector runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use uuid::Uuid;
use waybill_schemas::events::RiskDecision;
use waybill_schemas::subject::subject_for;
use waybill_schemas::views::OrderDocument;
use waybill_schemas::{EventEnvelope, OrderId};
use waybill_write_side::event_store::EventStore;
use waybill_write_side::outbox::relay::{ensure_stream, HEADER_STREAM_VERSION};
use waybill_write_side::trace_context::TRACEPARENT;

use super::generations::{Generation, Layout, CURRENT_FILE, NEXT_FILE};
use super::*;
use crate::runtime::{dead_letter_stream_name, ProjectorConfig};
use crate::testing::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("waybill-search-gen-test-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Version `version` (1–6) of an order's lifecycle: placed, risk accepted, reserved,
/// authorized, confirmed, captured.
fn step(order: OrderId, version: i64) -> EventEnvelope {
    match version {
        1 => placed_event_with_phone(order, 1),
        2 => risk_assessed(order, 2, RiskDecision::Accept),
        3 => reserved_event(order, 3),
        4 => authorized_event(order, 4),
        5 => confirmed_event(order, 5),
        _ => captured_event(order, 6, 3240),
    }
}

const LAST_STEP: i64 = 6;

/// The event log and the broker, as the relay leaves them: events appended, then published.
#[derive(Clone)]
struct World {
    config: ProjectorConfig,
    js: jetstream::Context,
    events: EventStore,
}

impl World {
    async fn new() -> Self {
        let config = ProjectorConfig {
            rebuild_page: 50,
            between_batches: Duration::from_millis(100),
            ..isolated_config()
        };
        let js = jetstream::new(
            async_nats::connect("nats://127.0.0.1:4222")
                .await
                .expect("nats up"),
        );
        ensure_stream(&js, &config.stream_name, &config.subject_root)
            .await
            .expect("event stream");
        Self {
            config,
            js,
            events: EventStore::new(fresh_database().await),
        }
    }

    /// Appends the next version of `order` (made now, so `recorded_at` is the append's time)
    /// and publishes it.
    async fn advance(&self, order: OrderId, version: i64) {
        let event = step(order, version);
        seed(self.events.pool(), std::slice::from_ref(&event)).await;
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, event.traceparent.clone().unwrap_or_default());
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
                serde_json::to_vec(&event).expect("encode").into(),
            )
            .await
            .expect("publish")
            .await
            .expect("stream ack");
    }

    /// Each order's document folded from the log with the view's own `apply`.
    async fn fold(&self, orders: &[OrderId]) -> Vec<Option<OrderDocument>> {
        let mut folded = Vec::new();
        for order in orders {
            let log = self
                .events
                .read_stream(&order.stream_id(), 1, None)
                .await
                .expect("read stream");
            let mut state: Option<OrderDocument> = None;
            for event in &log {
                state = Some(apply(state.as_ref(), event).expect("folds"));
            }
            folded.push(state);
        }
        folded
    }

    async fn cleanup(&self) {
        let _ = self.js.delete_stream(&self.config.stream_name).await;
        let _ = self
            .js
            .delete_stream(dead_letter_stream_name(&self.config.stream_name))
            .await;
    }
}

/// Polls `index` until every order's document equals the fold of its log.
async fn until_equal_to_the_fold(world: &World, index: &TantivyIndex, orders: &[OrderId]) {
    let ids: Vec<String> = orders.iter().map(OrderId::to_string).collect();
    let folded = world.fold(orders).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let _ = index.reload();
        let held = index.get(&ids).await.expect("get");
        if held == folded {
            return;
        }
        let differing = held.iter().zip(&folded).filter(|(h, f)| h != f).count();
        assert!(
            tokio::time::Instant::now() < deadline,
            "{differing} of {} documents differ from the fold of the log",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the readers saw go wrong.
#[derive(Default)]
struct Seen {
    reads: AtomicU64,
    violations: Mutex<Vec<String>>,
}

/// Reads every known order through `index` until `stop`, recording any document that went
/// missing or back to an older version.
async fn watch(
    index: TantivyIndex,
    orders: Arc<Mutex<Vec<OrderId>>>,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    label: &'static str,
) {
    let mut highest: HashMap<String, i64> = HashMap::new();
    let mut reported = std::collections::HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<String> = orders
            .lock()
            .expect("lock")
            .iter()
            .map(OrderId::to_string)
            .collect();
        let documents = match index.get_searchable(&ids).await {
            Ok(documents) => documents,
            Err(error) => {
                seen.violations
                    .lock()
                    .expect("lock")
                    .push(format!("{label}: read failed: {error}"));
                continue;
            }
        };
        seen.reads.fetch_add(1, Ordering::Relaxed);
        for (id, document) in ids.iter().zip(documents) {
            let version = document.map_or(0, |d| d.version);
            let before = highest.entry(id.clone()).or_insert(0);
            if version < *before && reported.insert(id.clone()) {
                seen.violations
                    .lock()
                    .expect("lock")
                    .push(format!("{label}: {id} went from v{before} to v{version}"));
            }
            *before = (*before).max(version);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The running projector's search view adopts each rebuilt generation between two batches
/// while orders keep moving: afterwards the index equals the fold of the log, the rebuild
/// left no pointer or old generation behind (the first one moves an index made before
/// generations out of the directory's root), and neither a reader sharing the projector's
/// handle (as `serve all`) nor one following `CURRENT` from elsewhere (as `serve query`) saw
/// a document go missing or back to an older version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_switches_in_while_the_live_view_applies_and_readers_never_go_back() {
    let world = World::new().await;
    let dir = TempDir::new();
    let layout = Layout::new(&dir.0);
    let live = TantivyIndex::open_writer(&dir.0).expect("writer");
    assert_eq!(live.generation().as_deref(), Some("root"));
    let projection =
        SearchProjection::new(live.clone()).with_commit_interval(Duration::from_millis(100));
    let (stop_projector, stopped) = tokio::sync::oneshot::channel::<()>();
    let projector = tokio::spawn(crate::run_projector(
        world.config.clone(),
        world.events.pool().clone(),
        world.js.clone(),
        projection,
        async {
            let _ = stopped.await;
        },
    ));

    // A log to rebuild from: 40 orders at every step of their lifecycle.
    let orders: Arc<Mutex<Vec<OrderId>>> = Arc::default();
    let progress: Arc<Mutex<HashMap<OrderId, i64>>> = Arc::default();
    for n in 0..40 {
        let order = OrderId::new_v7();
        let last = 1 + n % LAST_STEP;
        for version in 1..=last {
            world.advance(order, version).await;
        }
        orders.lock().expect("lock").push(order);
        progress.lock().expect("lock").insert(order, last);
    }
    let known = orders.lock().expect("lock").clone();
    until_equal_to_the_fold(&world, &live, &known).await;

    // Orders keep moving (new ones placed, old ones advanced) while two readers watch.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (world, orders, progress, stop) = (
            world.clone(),
            orders.clone(),
            progress.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let next = {
                    let progress = progress.lock().expect("lock");
                    progress
                        .iter()
                        .filter(|(_, v)| **v < LAST_STEP)
                        .map(|(o, v)| (*o, *v + 1))
                        .nth((n % 7) as usize)
                };
                match next {
                    Some((order, version)) if !n.is_multiple_of(3) => {
                        world.advance(order, version).await;
                        progress.lock().expect("lock").insert(order, version);
                    }
                    _ => {
                        let order = OrderId::new_v7();
                        world.advance(order, 1).await;
                        orders.lock().expect("lock").push(order);
                        progress.lock().expect("lock").insert(order, 1);
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let seen = Arc::new(Seen::default());
    let shared_reader = tokio::spawn(watch(
        live.clone(),
        orders.clone(),
        stop.clone(),
        seen.clone(),
        "the projector's handle",
    ));
    let following_reader = tokio::spawn(watch(
        TantivyIndex::open_reader(&dir.0).expect("reader"),
        orders.clone(),
        stop.clone(),
        seen.clone(),
        "a reader following CURRENT",
    ));

    // Two rebuilds, as a separate process runs them: the first moves the root index into a
    // generation, the second replaces one generation with another.
    let mut generations = Vec::new();
    for _ in 0..2 {
        let report = rebuild_search(
            &world.events,
            SearchBackend::Tantivy(TantivyIndex::detached(&dir.0).expect("directory")),
            world.config.rebuild_page,
            |_| {},
        )
        .await
        .expect("rebuild");
        assert_eq!(report.switched_by, "the running projector", "{report:?}");
        assert!(report.documents >= 40, "{report:?}");
        let current = layout.current().expect("CURRENT");
        assert_eq!(
            layout.dir(&current).display().to_string(),
            report.target,
            "CURRENT names the rebuilt generation"
        );
        // The projector writes `CURRENT` first (the durable pointer) and moves its handle
        // right after; the rebuild returns on seeing `CURRENT`.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while live.generation().as_deref() != Some(current.name())
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(live.generation().as_deref(), Some(current.name()));
        generations.push(current);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    shared_reader.await.expect("reader");
    following_reader.await.expect("reader");
    let violations = seen.violations.lock().expect("lock").clone();
    assert_eq!(violations, Vec::<String>::new());
    assert!(seen.reads.load(Ordering::Relaxed) > 10, "the readers read");

    let all = orders.lock().expect("lock").clone();
    until_equal_to_the_fold(&world, &live, &all).await;
    let follower = TantivyIndex::open_reader(&dir.0).expect("reader");
    until_equal_to_the_fold(&world, &follower, &all).await;

    // Nothing left behind: no offer, no root index, no older generation.
    assert!(!dir.0.join(NEXT_FILE).exists());
    assert!(dir.0.join(CURRENT_FILE).is_file());
    assert!(!dir.0.join("meta.json").exists(), "root index removed");
    assert!(
        !layout.dir(&generations[0]).exists(),
        "first generation removed"
    );
    assert!(layout.has_index(&generations[1]));

    let _ = stop_projector.send(());
    projector.await.expect("task").expect("projector");
    world.cleanup().await;
}

/// With no projector running, the rebuild switches the generation in itself (an index made
/// before generations, with a wrong document in it, is replaced), and a projector started
/// afterwards writes the new generation.
#[tokio::test]
async fn without_a_projector_the_rebuild_switches_itself_and_the_next_projector_follows() {
    let world = World::new().await;
    let dir = TempDir::new();
    let orders: Vec<OrderId> = (0..5).map(|_| OrderId::new_v7()).collect();
    for order in &orders {
        for version in 1..=3 {
            world.advance(*order, version).await;
        }
    }
    {
        let old = TantivyIndex::open_writer(&dir.0).expect("root index");
        let mut wrong = apply(None, &placed_event(orders[0], 1)).expect("placed");
        wrong.customer.name = "Wrong Name".into();
        old.upsert(vec![wrong]).await.expect("seed");
    }

    let report = rebuild_search(
        &world.events,
        SearchBackend::Tantivy(TantivyIndex::detached(&dir.0).expect("directory")),
        world.config.rebuild_page,
        |_| {},
    )
    .await
    .expect("rebuild");
    assert_eq!(report.switched_by, "the rebuild (no projector was writing)");
    let layout = Layout::new(&dir.0);
    let current = layout.current().expect("CURRENT");
    assert!(matches!(current, Generation::Named(_)));
    assert!(!dir.0.join("meta.json").exists(), "root index removed");

    let live = TantivyIndex::open_writer(&dir.0).expect("writer");
    assert_eq!(live.generation().as_deref(), Some(current.name()));
    until_equal_to_the_fold(&world, &live, &orders).await;
    world.cleanup().await;
}
