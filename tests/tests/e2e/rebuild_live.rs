//! Blue/green rebuilds while live: `waybill rebuild tracking`, `search` (on the OpenSearch
//! API: a new index behind the alias), `notifications` and `analytics` (a new generation of the
//! ClickHouse tables, switched in by rename) run as their own processes while orders flow
//! through `serve all`, and a reader polling every order's tracking view and search document
//! throughout never sees one go missing or go back to an older version. A finance reader never
//! sees the summary count fewer orders than it did when the analytics rebuild began (a
//! half-built generation would), nor a 5xx other than a 503 with `Retry-After`. The rebuilds
//! send no notification, afterwards every view is at its order's last version, the finance
//! summary counts every order of the log, and a second analytics rebuild with nothing moving
//! leaves the finance figures exactly as they were.
//!
//! The search rebuild runs on the embedded Tantivy index too: the running projector adopts
//! the rebuilt generation between two batches, and neither the query API inside `serve all`
//! nor a `serve query` of its own sees a document go missing or back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use waybill_e2e::{
    eventually, produce_listed, waybill_binary, Api, Flow, Osmem, Produced, Role, TestEnv,
    AGENT_KEY, FINANCE_KEY,
};

/// What a reader saw go wrong.
type Violations = Arc<Mutex<Vec<String>>>;

/// The versions of an order's tracking view and search document (0: absent).
async fn versions(api: &Api, order_id: &str) -> Option<(i64, i64)> {
    let response = api
        .query_get(
            &format!("/v1/agent/orders/{order_id}"),
            &[],
            Some(AGENT_KEY),
        )
        .await;
    if response.status != 200 {
        return None;
    }
    let body = response.json();
    let version = |v: &Value| v["version"].as_i64().unwrap_or(0);
    Some((version(&body["tracking"]), version(&body["document"])))
}

/// Today's finance summary: its items and the orders they count, or what was answered instead
/// (`Err`, with whether it was a 503 carrying `Retry-After`).
async fn finance_summary(api: &Api) -> Result<(Value, i64), (bool, String)> {
    let today = chrono::Utc::now().date_naive().to_string();
    let response = api
        .query_get(
            "/v1/finance/summary",
            &[("from", today.as_str()), ("to", today.as_str())],
            Some(FINANCE_KEY),
        )
        .await;
    if response.status != 200 {
        let retry = response.status == 503 && response.header("retry-after").is_some();
        return Err((retry, response.describe()));
    }
    let items = response.json()["items"].clone();
    let orders = items
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| row["orders"].as_i64().unwrap_or(0))
        .sum();
    Ok((items, orders))
}

/// What the finance reader saw while the analytics rebuild ran.
#[derive(Debug, Default)]
struct FinanceSeen {
    answers: u64,
    retry_later: u64,
    /// Answers counting fewer orders than an earlier answer (the moment between the switch
    /// and the repair of what the live projector wrote to the old tables meanwhile).
    dips: u64,
    violations: Vec<String>,
}

/// Orders flowing while a rebuild runs ([`produce_listed`]: one every 40 ms, every other one
/// cancelled, until `stop`), started once 15 are placed (a log to rebuild from); `orders`
/// lists every order placed.
struct OrderFlow {
    orders: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    writer: tokio::task::JoinHandle<Vec<Produced>>,
}

impl OrderFlow {
    async fn start(api: &Api, label: &'static str) -> Self {
        let orders: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let flow = Flow {
            label,
            cancel_every: 2,
            pause: Duration::from_millis(40),
        };
        let writer = tokio::spawn(produce_listed(
            api.clone(),
            flow,
            0,
            stop.clone(),
            orders.clone(),
        ));
        eventually("15 orders placed", Duration::from_secs(60), || async {
            let placed = orders.lock().expect("lock").len();
            if placed >= 15 {
                Ok(())
            } else {
                Err(format!("{placed} placed"))
            }
        })
        .await;
        Self {
            orders,
            stop,
            writer,
        }
    }
}

async fn rebuild(env: &TestEnv, extra: &[(&str, &str)], view: &str) -> String {
    let mut command = tokio::process::Command::new(waybill_binary());
    command
        .args(["rebuild", view])
        .kill_on_drop(true)
        .env_clear();
    for (key, value) in env.process_env(extra) {
        command.env(key, value);
    }
    // A rebuild that has not finished in five minutes is stuck (a lock cycle in a store, say):
    // the test says which one instead of running into the runner's timeout.
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .unwrap_or_else(|_| panic!("waybill rebuild {view} did not finish within 300 s"))
        .expect("run waybill rebuild");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "waybill rebuild {view} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_rebuilds_while_orders_flow_and_readers_never_see_a_gap() {
    let Some(search) = Osmem::start() else { return };
    let env = TestEnv::new("rebuild_live").await;
    let extra = [
        ("ELASTICSEARCH_URL", search.url.as_str()),
        ("WAYBILL_QUERY_RATE_LIMIT", "0"),
    ];
    let waybill = env.start_with(Role::All, &extra).await;
    let api = waybill.api();

    // A log to rebuild from, and orders that keep coming (every other one cancelled) while a
    // reader polls every order seen.
    let OrderFlow {
        orders,
        stop,
        writer,
    } = OrderFlow::start(&api, "live").await;
    let violations: Violations = Arc::default();
    let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = {
        let (api, orders, stop, violations, reads) = (
            api.clone(),
            orders.clone(),
            stop.clone(),
            violations.clone(),
            reads.clone(),
        );
        tokio::spawn(async move {
            let mut seen: HashMap<String, (i64, i64)> = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let known: Vec<String> = orders.lock().expect("lock").clone();
                for order in known {
                    let Some((tracking, document)) = versions(&api, &order).await else {
                        violations
                            .lock()
                            .expect("lock")
                            .push(format!("{order}: agent detail failed"));
                        continue;
                    };
                    reads.fetch_add(1, Ordering::Relaxed);
                    let before = seen.entry(order.clone()).or_insert((0, 0));
                    if tracking < before.0 {
                        violations.lock().expect("lock").push(format!(
                            "{order}: tracking view went from v{} to v{tracking}",
                            before.0
                        ));
                    }
                    if document < before.1 {
                        violations.lock().expect("lock").push(format!(
                            "{order}: search document went from v{} to v{document}",
                            before.1
                        ));
                    }
                    before.0 = before.0.max(tracking);
                    before.1 = before.1.max(document);
                }
            }
        })
    };

    // The finance summary once the analytics view holds the first orders: the floor no answer
    // during the analytics rebuild may go under.
    let floor = eventually(
        "finance counts the first orders",
        Duration::from_secs(60),
        || async {
            match finance_summary(&api).await {
                Ok((_, orders)) if orders >= 15 => Ok(orders),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let finance_stop = Arc::new(AtomicBool::new(false));
    let finance_reader = {
        let (api, stop) = (api.clone(), finance_stop.clone());
        tokio::spawn(async move {
            let mut seen = FinanceSeen::default();
            let mut most = floor;
            while !stop.load(Ordering::Relaxed) {
                match finance_summary(&api).await {
                    Ok((_, orders)) => {
                        seen.answers += 1;
                        if orders < floor {
                            seen.violations.push(format!(
                                "the summary counted {orders} orders, {floor} before the rebuild"
                            ));
                        }
                        if orders < most {
                            seen.dips += 1;
                        }
                        most = most.max(orders);
                    }
                    Err((true, _)) => seen.retry_later += 1,
                    Err((false, answer)) => seen.violations.push(answer),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    let analytics = rebuild(&env, &extra, "analytics").await;
    assert!(analytics.contains("rebuilt analytics"), "{analytics}");
    finance_stop.store(true, Ordering::Relaxed);
    let finance_seen = finance_reader.await.expect("finance reader");
    eprintln!("finance reader during the analytics rebuild: {finance_seen:?}");
    assert_eq!(finance_seen.violations, Vec::<String>::new());
    assert!(finance_seen.answers > 0, "the finance reader read");

    let tracking = rebuild(&env, &extra, "tracking").await;
    assert!(tracking.contains("rebuilt tracking"), "{tracking}");
    let searched = rebuild(&env, &extra, "search").await;
    assert!(searched.contains("rebuilt search"), "{searched}");
    let notified = rebuild(&env, &extra, "notifications").await;
    assert!(notified.contains("0 messages sent"), "{notified}");

    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    reader.await.expect("reader");
    let violations = violations.lock().expect("lock").clone();
    assert_eq!(violations, Vec::<String>::new());
    assert!(reads.load(Ordering::Relaxed) > 0, "the reader read");

    // Every view ends at its order's last version, and the finance summary counts every
    // order of the log.
    let all: Vec<String> = orders.lock().expect("lock").clone();
    let placed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .fetch_one(env.db())
            .await
            .expect("count placed");
    let before = eventually(
        "finance counts every order",
        Duration::from_secs(60),
        || async {
            match finance_summary(&api).await {
                Ok((items, orders)) if orders == placed => Ok(items),
                other => Err(format!("log has {placed} orders; finance: {other:?}")),
            }
        },
    )
    .await;
    // With nothing moving, a rebuild leaves the figures exactly as they were.
    let again = rebuild(&env, &extra, "analytics").await;
    assert!(again.contains("rebuilt analytics"), "{again}");
    let after = finance_summary(&api)
        .await
        .expect("finance after the rebuild");
    assert_eq!(
        after.0, before,
        "finance figures after the rebuild equal those before"
    );
    for order in &all {
        let events = env.events_of_order(order).await;
        eventually(
            "views at the last version",
            Duration::from_secs(30),
            || async {
                match versions(&api, order).await {
                    Some((t, d)) if t == events && d == events => Ok(()),
                    other => Err(format!("{order}: {other:?}, log at v{events}")),
                }
            },
        )
        .await;
    }
}

/// The document version of an order as one query API answers it (`None`: not answered 200).
async fn document_version(api: &Api, order_id: &str) -> Option<i64> {
    versions(api, order_id).await.map(|(_, document)| document)
}

/// `waybill rebuild search` on the embedded Tantivy index while `serve all` runs and orders
/// flow: the running projector adopts each rebuilt generation between two batches (the first
/// rebuild moves the index made before generations out of the directory's root, the second
/// replaces one generation with another). Neither the query API inside `serve all` (sharing
/// the projector's handle) nor a `serve query` of its own (following `CURRENT`) ever answers
/// a document older than one it answered before, or none for an order it had answered; the
/// directory holds one generation afterwards, and every document is at its order's last
/// version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_on_tantivy_rebuilds_while_serve_all_runs_and_readers_never_see_a_gap() {
    let env = TestEnv::new("rebuild_tantivy").await;
    let dir = env.log_dir.join("search-generations");
    let dir_text = dir.display().to_string();
    let extra = [
        ("WAYBILL_SEARCH_DIR", dir_text.as_str()),
        ("WAYBILL_QUERY_RATE_LIMIT", "0"),
    ];
    let waybill = env.start_with(Role::All, &extra).await;
    let query = env.start_with(Role::Query, &extra).await;
    let api = waybill.api();
    let readers = [
        ("serve all", api.clone()),
        (
            "serve query",
            Api::new(&waybill.command_url(), &query.query_url()),
        ),
    ];

    let OrderFlow {
        orders,
        stop,
        writer,
    } = OrderFlow::start(&api, "tv").await;
    let violations: Violations = Arc::default();
    let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut watchers = Vec::new();
    for (label, reader_api) in readers.clone() {
        let (orders, stop, violations, reads) = (
            orders.clone(),
            stop.clone(),
            violations.clone(),
            reads.clone(),
        );
        watchers.push(tokio::spawn(async move {
            let mut seen: HashMap<String, i64> = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let known: Vec<String> = orders.lock().expect("lock").clone();
                for order in known {
                    let Some(document) = document_version(&reader_api, &order).await else {
                        violations
                            .lock()
                            .expect("lock")
                            .push(format!("{label}: {order}: agent detail failed"));
                        continue;
                    };
                    reads.fetch_add(1, Ordering::Relaxed);
                    let before = seen.entry(order.clone()).or_insert(0);
                    if document < *before {
                        violations.lock().expect("lock").push(format!(
                            "{label}: {order}: search document went from v{before} to v{document}"
                        ));
                    }
                    *before = (*before).max(document);
                }
            }
        }));
    }

    let mut generations = Vec::new();
    for _ in 0..2 {
        let rebuilt = rebuild(&env, &extra, "search").await;
        assert!(
            rebuilt.contains("switched in by the running projector"),
            "{rebuilt}"
        );
        let current = std::fs::read_to_string(dir.join("CURRENT")).expect("CURRENT");
        assert!(rebuilt.contains(current.trim()), "{rebuilt} / {current}");
        generations.push(current.trim().to_owned());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    for watcher in watchers {
        watcher.await.expect("reader");
    }
    let violations = violations.lock().expect("lock").clone();
    assert_eq!(violations, Vec::<String>::new());
    assert!(reads.load(Ordering::Relaxed) > 0, "the readers read");

    // One generation left: no offer, no index in the directory's root, the first generation
    // removed.
    assert!(!dir.join("NEXT").exists());
    assert!(!dir.join("meta.json").exists(), "root index moved out");
    assert!(
        !dir.join(&generations[0]).exists(),
        "first generation removed"
    );
    assert!(dir.join(&generations[1]).join("meta.json").is_file());

    let all: Vec<String> = orders.lock().expect("lock").clone();
    for order in &all {
        let events = env.events_of_order(order).await;
        for (label, reader_api) in &readers {
            eventually(
                "search documents at the last version",
                Duration::from_secs(30),
                || async {
                    match document_version(reader_api, order).await {
                        Some(d) if d == events => Ok(()),
                        other => Err(format!("{label}: {order}: {other:?}, log at v{events}")),
                    }
                },
            )
            .await;
        }
    }
}

/// `waybill bench log-read` at a test's size, as an operator runs it: the log the rebuilds read
/// (pages fetched ahead and decoded on several cores) gives every event once, as many as the
/// same pages read one at a time, and the report carries events/s, CPU per event per process
/// and its charts.
#[tokio::test]
async fn bench_log_read_reads_every_event_with_pages_read_ahead_as_one_at_a_time_does() {
    let env = TestEnv::new("log_read_bench").await;
    let out = env.log_dir.join("log-read.json");
    let stdout = env
        .run_ok(&[
            "bench",
            "log-read",
            "--events",
            "3000",
            "--page",
            "250",
            "--sorted-pages",
            "1",
            "--out",
            out.to_str().expect("path"),
        ])
        .await;
    let report: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("the bench's report")).expect("JSON");
    assert_eq!(report["events"], 3_000, "{report}");
    for pass in ["keyset", "baseline_one_at_a_time", "baseline_scan"] {
        assert_eq!(report[pass]["events"], 3_000, "{pass}: {report}");
        assert!(
            report[pass]["events_per_sec"].as_f64().unwrap_or(0.0) > 0.0,
            "{pass}: {report}"
        );
    }
    assert_eq!(
        report["keyset"]["pages"], 12,
        "3,000 events in pages of 250: {report}"
    );
    assert!(
        report["keyset_cpu"]["processes"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty()),
        "CPU per process: {report}"
    );
    assert!(stdout.contains("keyset pages (log_pages)"), "{stdout}");
    for chart in ["log-read.svg", "log-read-cpu.svg"] {
        let svg = std::fs::read_to_string(env.log_dir.join(chart)).expect("chart written");
        assert!(svg.starts_with("<svg"), "{chart}");
    }
}

/// `waybill bench log-read --sealed`: the placements are stored with their personal fields
/// sealed under data keys, and the read opens every one of them before decoding it into its
/// typed event (a sealed field left closed is an object where the event has a string, and the
/// bench fails on it).
#[tokio::test]
async fn bench_log_read_sealed_opens_every_payload_it_reads() {
    let env = TestEnv::new("log_read_sealed").await;
    let out = env.log_dir.join("log-read-sealed.json");
    let stdout = env
        .run_ok(&[
            "bench",
            "log-read",
            "--events",
            "1000",
            "--page",
            "250",
            "--sorted-pages",
            "1",
            "--sealed",
            "--out",
            out.to_str().expect("path"),
        ])
        .await;
    let report: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("the bench's report")).expect("JSON");
    assert_eq!(report["sealed"], true, "{report}");
    assert_eq!(report["keyset"]["events"], 1_000, "{report}");
    assert!(
        stdout.contains("personal fields sealed (opened on read)"),
        "{stdout}"
    );
}
