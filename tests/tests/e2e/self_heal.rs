//! Losing a view's store is a non-event (issue 13.7): orders flow through `serve all` on a
//! private Redis without persistence; the Redis is emptied with `FLUSHALL` and later killed
//! with -9 and started again empty. Nobody runs `waybill rebuild`: the tracking projector finds
//! its store's generation marker gone and fills the store again from the event log while it
//! keeps applying. Throughout, a reader polling every order already placed never gets a 404
//! (an order the log knows is "catching up", 503 `view-catching-up` with `Retry-After`) nor a
//! 500 (Redis down is 503 `unavailable`), and afterwards every order's view equals the fold of
//! its log, the orders that got no event after the loss included.
//!
//! The search view does the same on the OpenSearch API: its in-memory server (osmem) is killed
//! with -9 and started again empty; the search projector makes the alias again, fills the index
//! from the log, and searches meanwhile answer 503 (`view-catching-up` or `unavailable`, with
//! `Retry-After`), never a partial list as if it were whole, never a 500.
//!
//! The analytics view does the same in ClickHouse: its database is dropped under the running
//! projector; the projector finds its marker (a table in that database) gone, makes the tables
//! again and fills them from the log, and the finance summary meanwhile answers 503
//! `view-catching-up` with `Retry-After`, never a short figure, until it counts every order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::place;
use waybill_e2e::{
    eventually, produce, sample_order, Api, Flow, Osmem, Produced, RedisServer, Role, TestEnv,
    WaybillProcess, AGENT_KEY, FINANCE_KEY, SERVICE_KEY,
};
use waybill_projectors::views::tracking::fold;
use waybill_write_side::event_store::EventStore;

/// This test's private redis-server (selfheal's port range).
const REDIS_PORT: u16 = 15470;

/// The tracking view of `order_id` in Redis equals the fold of its events in the log.
async fn view_is_the_fold(env: &TestEnv, store: &EventStore, order_id: &str) -> Result<(), String> {
    let events = store
        .read_stream(&format!("order-{order_id}"), 1, None)
        .await
        .map_err(|e| e.to_string())?;
    let folded = fold(&events).map_err(|e| e.to_string())?;
    let folded = serde_json::to_value(folded.ok_or("no events")?).map_err(|e| e.to_string())?;
    match env.tracking_hash(order_id).await {
        Some((version, view)) if version == events.len() as i64 && view == folded => Ok(()),
        Some((version, _)) => Err(format!(
            "{order_id}: view at v{version}, log at v{} (or the view differs from the fold)",
            events.len()
        )),
        None => Err(format!("{order_id}: no tracking view")),
    }
}

/// Waits until every order's view equals its fold; returns how long that took.
async fn all_views_are_the_fold(
    env: &TestEnv,
    store: &EventStore,
    orders: &[String],
    what: &str,
) -> Duration {
    let started = Instant::now();
    eventually(what, Duration::from_secs(60), || async {
        let mut wrong = Vec::new();
        for order in orders {
            if let Err(error) = view_is_the_fold(env, store, order).await {
                wrong.push(error);
            }
        }
        match wrong.len() {
            0 => Ok(()),
            n => Err(format!(
                "{n} of {} views: {:?}",
                orders.len(),
                &wrong[..n.min(3)]
            )),
        }
    })
    .await;
    started.elapsed()
}

/// A counter of the process's metrics, summed over its label sets matching `labels`.
async fn metric(process: &WaybillProcess, name: &str, labels: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", process.metrics_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What the reader saw, by answer.
#[derive(Default, Debug)]
struct Seen {
    answers: BTreeMap<String, u64>,
    violations: Vec<String>,
}

/// Reads every known order's tracking view (staff key) until `stop`.
async fn read_all(api: Api, orders: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    while !stop.load(Ordering::Relaxed) {
        let known: Vec<String> = orders.lock().expect("orders").clone();
        for order in known {
            let response = api
                .query_get(
                    &format!("/v1/orders/{order}/tracking"),
                    &[],
                    Some(SERVICE_KEY),
                )
                .await;
            let answer = match response.status {
                200 => "200".to_owned(),
                503 => {
                    let slug = response.problem_slug().unwrap_or_default();
                    if response.header("retry-after").is_none()
                        || !["view-catching-up", "unavailable"].contains(&slug.as_str())
                    {
                        seen.violations
                            .push(format!("{order}: {}", response.describe()));
                    }
                    format!("503 {slug}")
                }
                // Connection refused while the test restarts nothing but Redis: never expected.
                _ => {
                    seen.violations
                        .push(format!("{order}: {}", response.describe()));
                    format!("{}", response.status)
                }
            };
            *seen.answers.entry(answer).or_default() += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_views_heal_by_themselves_after_flushall_and_a_redis_restart() {
    let mut redis = RedisServer::start(REDIS_PORT).await;
    let mut env = TestEnv::new("self_heal").await;
    env.redis_url = redis.url();
    let waybill = env
        .start_with(
            Role::All,
            &[
                ("WAYBILL_PROJECTOR_VIEWS", "tracking"),
                ("WAYBILL_QUERY_RATE_LIMIT", "0"),
            ],
        )
        .await;
    let api = waybill.api();
    let store = EventStore::new(env.db().clone());

    // Orders before the loss; most get no event after it, so only the fill brings them back.
    let stop_writing = Arc::new(AtomicBool::new(false));
    let mut before: Vec<Produced> = Vec::new();
    {
        // A bounded first batch: 30 orders.
        let stop = Arc::new(AtomicBool::new(false));
        let api = api.clone();
        let task = tokio::spawn(produce(
            api,
            Flow {
                label: "HEAL",
                cancel_every: 3,
                pause: Duration::ZERO,
            },
            1,
            stop.clone(),
        ));
        eventually("30 orders placed", Duration::from_secs(60), || async {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
                    .fetch_one(env.db())
                    .await
                    .map_err(|e| e.to_string())?;
            if n >= 30 {
                Ok(())
            } else {
                Err(format!("{n} placed"))
            }
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        before.extend(task.await.expect("first producer"));
    }
    let known: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(
        sqlx::query_scalar("SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'order-%'")
            .fetch_all(env.db())
            .await
            .expect("orders")
            .into_iter()
            .map(|s: String| s.trim_start_matches("order-").to_owned())
            .collect(),
    ));
    let first: Vec<String> = known.lock().expect("orders").clone();
    all_views_are_the_fold(&env, &store, &first, "views before the loss").await;

    // From here on orders keep coming while a reader polls every order placed so far.
    let writer = tokio::spawn(produce(
        api.clone(),
        Flow {
            label: "HEAL-LIVE",
            cancel_every: 2,
            pause: Duration::from_millis(50),
        },
        2,
        stop_writing.clone(),
    ));
    let stop_reading = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_all(api.clone(), known.clone(), stop_reading.clone()));

    let mut admin = redis::Client::open(redis.url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .expect("FLUSHALL");
    let healed = all_views_are_the_fold(&env, &store, &first, "views after FLUSHALL").await;
    eprintln!(
        "after FLUSHALL: {} views equal to their fold again in {:.2} s",
        first.len(),
        healed.as_secs_f64()
    );

    redis.kill_hard();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.start_again().await;
    let healed = all_views_are_the_fold(&env, &store, &first, "views after a restart").await;
    eprintln!(
        "after kill -9 and an empty restart: views equal to their fold again in {:.2} s",
        healed.as_secs_f64()
    );

    stop_writing.store(true, Ordering::Relaxed);
    let live = writer.await.expect("writer");
    stop_reading.store(true, Ordering::Relaxed);
    let seen = reader.await.expect("reader");
    eprintln!("the reader saw {:?}", seen.answers);
    assert_eq!(seen.violations, Vec::<String>::new(), "{:?}", seen.answers);
    assert!(
        seen.answers.get("200").copied().unwrap_or(0) > 0,
        "the reader read views: {:?}",
        seen.answers
    );

    // Every order, those placed during the losses included, ends as the fold of its log.
    let all: Vec<String> = before
        .iter()
        .chain(live.iter())
        .map(|p| p.order_id.clone())
        .collect();
    assert!(live.len() >= 5, "orders kept coming: {}", live.len());
    all_views_are_the_fold(&env, &store, &all, "every view at the end").await;

    let resets = metric(
        &waybill,
        "waybill_view_store_resets_total",
        "view=\"tracking\"",
    )
    .await;
    assert!(resets >= 2.0, "two losses counted, saw {resets}");
    let catching_up = metric(&waybill, "waybill_view_catching_up", "view=\"tracking\"").await;
    assert_eq!(catching_up, 0.0, "caught up");
}

/// Every order's search document (through the agent API) is at its stream's version in the
/// log, and a search lists them all.
async fn search_has_every_order(
    api: &Api,
    store: &EventStore,
    orders: &[String],
) -> Result<(), String> {
    for order in orders {
        let log = store
            .stream_version(&format!("order-{order}"))
            .await
            .map_err(|e| e.to_string())?;
        let detail = api
            .query_get(&format!("/v1/agent/orders/{order}"), &[], Some(AGENT_KEY))
            .await;
        if detail.status != 200 {
            return Err(format!("{order}: {}", detail.describe()));
        }
        let document = detail.json()["document"]["version"].as_i64().unwrap_or(0);
        if document != log {
            return Err(format!("{order}: search document v{document}, log v{log}"));
        }
    }
    let listed = api
        .query_get("/v1/search/orders", &[("limit", "100")], Some(AGENT_KEY))
        .await;
    if listed.status != 200 {
        return Err(format!("search: {}", listed.describe()));
    }
    let total = listed.json()["total"].as_u64().unwrap_or(0);
    if total != orders.len() as u64 {
        return Err(format!("search lists {total} of {} orders", orders.len()));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_index_heals_after_its_in_memory_server_restarts_empty() {
    let Some(mut search) = Osmem::start() else {
        return;
    };
    let env = TestEnv::new("self_heal_search").await;
    let url = search.url.clone();
    let waybill = env
        .start_with(
            Role::All,
            &[
                ("ELASTICSEARCH_URL", url.as_str()),
                ("WAYBILL_QUERY_RATE_LIMIT", "0"),
            ],
        )
        .await;
    let api = waybill.api();
    let store = EventStore::new(env.db().clone());
    let mut orders = Vec::new();
    for n in 0..12 {
        let placed = place(
            &api,
            &format!("heal-search-{n}"),
            &sample_order(&format!("HS-{n}")),
        )
        .await;
        orders.push(placed.order_id);
    }
    eventually("search before the loss", Duration::from_secs(60), || {
        search_has_every_order(&api, &store, &orders)
    })
    .await;

    search.restart_empty();
    let restarted = Instant::now();
    // Searches right after the loss: never a 500, never a shorter list passed off as whole.
    let mut answers: BTreeMap<String, u64> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut placed_after = 0;
    while restarted.elapsed() < Duration::from_secs(90) {
        if placed_after < 3 {
            let placed = place(
                &api,
                &format!("heal-search-after-{placed_after}"),
                &sample_order(&format!("HS-A{placed_after}")),
            )
            .await;
            orders.push(placed.order_id);
            placed_after += 1;
        }
        let response = api
            .query_get("/v1/search/orders", &[("limit", "100")], Some(AGENT_KEY))
            .await;
        let answer = match response.status {
            200 => {
                let total = response.json()["total"].as_u64().unwrap_or(0);
                // Orders placed a moment ago may still be on their way; older ones never.
                if total < 12 {
                    violations.push(format!("a search listed {total} orders as if whole"));
                }
                "200".to_owned()
            }
            503 => {
                let slug = response.problem_slug().unwrap_or_default();
                if response.header("retry-after").is_none()
                    || !["view-catching-up", "unavailable"].contains(&slug.as_str())
                {
                    violations.push(response.describe());
                }
                format!("503 {slug}")
            }
            _ => {
                violations.push(response.describe());
                format!("{}", response.status)
            }
        };
        *answers.entry(answer).or_default() += 1;
        if placed_after == 3 && search_has_every_order(&api, &store, &orders).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "search after an empty restart: whole again in {:.2} s; searches answered {answers:?}",
        restarted.elapsed().as_secs_f64()
    );
    assert_eq!(violations, Vec::<String>::new(), "{answers:?}");
    eventually("search after the loss", Duration::from_secs(60), || {
        search_has_every_order(&api, &store, &orders)
    })
    .await;
    let resets = metric(
        &waybill,
        "waybill_view_store_resets_total",
        "view=\"search\"",
    )
    .await;
    assert!(resets >= 1.0, "the loss was counted, saw {resets}");
}

/// Today's finance summary: the orders it counts, or the answer's status and problem slug
/// (`Err`), with whether it carried `Retry-After`.
async fn finance_orders(api: &Api) -> Result<i64, (u16, String, bool)> {
    let today = chrono::Utc::now().date_naive().to_string();
    let response = api
        .query_get(
            "/v1/finance/summary",
            &[("from", today.as_str()), ("to", today.as_str())],
            Some(FINANCE_KEY),
        )
        .await;
    if response.status != 200 {
        return Err((
            response.status,
            response.problem_slug().unwrap_or_default(),
            response.header("retry-after").is_some(),
        ));
    }
    Ok(response.json()["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| row["orders"].as_i64().unwrap_or(0))
        .sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analytics_tables_heal_after_their_database_is_dropped() {
    let env = TestEnv::new("self_heal_analytics").await;
    let waybill = env
        .start_with(Role::All, &[("WAYBILL_QUERY_RATE_LIMIT", "0")])
        .await;
    let api = waybill.api();
    for n in 0..10 {
        place(
            &api,
            &format!("heal-analytics-{n}"),
            &sample_order(&format!("HA-{n}")),
        )
        .await;
    }
    eventually(
        "finance counts the orders",
        Duration::from_secs(60),
        || async {
            match finance_orders(&api).await {
                Ok(10) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    let dropped = reqwest::Client::new()
        .post(&env.clickhouse_url)
        .body(format!("DROP DATABASE {}", env.clickhouse_database))
        .send()
        .await
        .expect("drop the warehouse database");
    assert!(
        dropped.status().is_success(),
        "DROP DATABASE answered {}",
        dropped.status()
    );
    let lost = Instant::now();
    let mut answers: BTreeMap<String, u64> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut placed_after = 0;
    let mut whole = false;
    while lost.elapsed() < Duration::from_secs(90) {
        let answer = match finance_orders(&api).await {
            Ok(orders) => {
                // Orders placed a moment ago may still be on their way; older ones never.
                if orders < 10 {
                    violations.push(format!(
                        "the summary counted {orders} of 10 orders as if whole"
                    ));
                }
                whole = orders == 10 + placed_after;
                "200".to_owned()
            }
            Err((503, slug, retry_after)) => {
                if !retry_after || !["view-catching-up", "unavailable"].contains(&slug.as_str()) {
                    violations.push(format!("503 {slug}, Retry-After: {retry_after}"));
                }
                format!("503 {slug}")
            }
            Err((status, slug, _)) => {
                violations.push(format!("{status} {slug}"));
                format!("{status}")
            }
        };
        *answers.entry(answer).or_default() += 1;
        if placed_after < 3 {
            place(
                &api,
                &format!("heal-analytics-after-{placed_after}"),
                &sample_order(&format!("HA-A{placed_after}")),
            )
            .await;
            placed_after += 1;
        } else if whole {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "analytics after DROP DATABASE: whole again in {:.2} s; the summary answered {answers:?}",
        lost.elapsed().as_secs_f64()
    );
    assert_eq!(violations, Vec::<String>::new(), "{answers:?}");
    assert!(whole, "the summary counts all 13 orders again: {answers:?}");
    assert!(
        answers.get("503 view-catching-up").copied().unwrap_or(0) > 0,
        "the loss was answered as catching up: {answers:?}"
    );
    let resets = metric(
        &waybill,
        "waybill_view_store_resets_total",
        "view=\"analytics\"",
    )
    .await;
    assert!(resets >= 1.0, "the loss was counted, saw {resets}");
}
