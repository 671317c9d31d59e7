//! Blue/green rebuilds while live: `waybill rebuild tracking`, `search` (on the OpenSearch
//! API: a new index behind the alias) and `notifications` run as their own processes while
//! orders flow through `serve all`, and a reader polling every order's tracking view and search
//! document throughout never sees one go missing or go back to an older version. The rebuilds
//! send no notification, and afterwards every view is at its order's last version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use waybill_e2e::{
    eventually, sample_cancel, sample_order, waybill_binary, Api, Osmem, Role, TestEnv, AGENT_KEY,
};

use crate::place;

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

async fn rebuild(env: &TestEnv, extra: &[(&str, &str)], view: &str) -> String {
    let mut command = tokio::process::Command::new(waybill_binary());
    command
        .args(["rebuild", view])
        .kill_on_drop(true)
        .env_clear();
    for (key, value) in env.process_env(extra) {
        command.env(key, value);
    }
    let output = command.output().await.expect("run waybill rebuild");
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

    // A log to rebuild from.
    let orders: Arc<Mutex<Vec<String>>> = Arc::default();
    for n in 0..15 {
        let placed = place(
            &api,
            &format!("live-{n}"),
            &sample_order(&format!("RL-{n}")),
        )
        .await;
        orders.lock().expect("lock").push(placed.order_id);
    }

    // Orders keep coming (every other one cancelled) while a reader polls every order seen.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (api, orders, stop) = (api.clone(), orders.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 100;
            while !stop.load(Ordering::Relaxed) {
                let placed = place(
                    &api,
                    &format!("live-{n}"),
                    &sample_order(&format!("RL-{n}")),
                )
                .await;
                if n % 2 == 0 {
                    let cancelled = api
                        .cancel_order(
                            &placed.order_id,
                            &format!("live-cancel-{n}"),
                            &sample_cancel("customer_request"),
                        )
                        .await;
                    assert_eq!(cancelled.status, 200, "{}", cancelled.describe());
                }
                orders.lock().expect("lock").push(placed.order_id);
                n += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
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

    // Every view ends at its order's last version.
    let all: Vec<String> = orders.lock().expect("lock").clone();
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
