//! Waybill's warehouse on a replicated ClickHouse (two 18.16 replicas of one shard coordinated
//! by ZooKeeper, from `infra/scripts/ensure-clickhouse-cluster.sh`), reached over HTTPS with a
//! private CA and a user with a password: orders are captured while the analytics view ingests
//! them, the preferred replica is killed with -9 in the middle and started again, and afterwards
//! the finance summary equals the event log, read through both replicas and from each alone.
//! Then `waybill rebuild analytics` switches a new generation of replicated tables in on both
//! replicas, and the figures still equal the log.

use std::time::Duration;

use serde_json::Value;
use waybill_e2e::checkout::{cards, order, CheckoutWorld};
use waybill_e2e::clickhouse_cluster::ClickHouseCluster;
use waybill_e2e::{eventually, waybill_binary, Role, FINANCE_KEY};

/// Replication catch-up after a restart waits for ZooKeeper to expire the dead replica's
/// session (about 30 s) before the restarted one takes part again.
const CONVERGE: Duration = Duration::from_secs(150);

/// Today's finance summary summed over channels: `(captures, orders, gross sales)`.
async fn summary(query_url: &str) -> Result<(i64, i64, i64), String> {
    let today = chrono::Utc::now().date_naive();
    let response = reqwest::Client::new()
        .get(format!(
            "{query_url}/v1/finance/summary?from={today}&to={today}"
        ))
        .bearer_auth(FINANCE_KEY)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    let mut totals = (0, 0, 0);
    for row in body["items"].as_array().into_iter().flatten() {
        let n = |f: &str| row[f].as_i64().unwrap_or(0);
        totals.0 += n("captures");
        totals.1 += n("orders");
        totals.2 += n("gross_sales");
    }
    Ok(totals)
}

/// The same three sums from the event log.
async fn log_totals(world: &CheckoutWorld) -> (i64, i64, i64) {
    let pool = world.env.db();
    let sum = |event_type: &'static str, path: &'static str| async move {
        let total: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT sum((payload #>> '{{{path}}}')::bigint)::bigint FROM events WHERE event_type = $1"
        ))
        .bind(event_type)
        .fetch_one(pool)
        .await
        .expect("sum over the event log");
        total.unwrap_or(0)
    };
    let orders: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .fetch_one(pool)
            .await
            .expect("orders");
    (
        sum("PaymentCaptured", "amount,minor").await,
        orders,
        sum("OrderPlaced", "totals,grand_total,minor").await,
    )
}

async fn summary_equals_the_log(what: &str, query_url: &str, log: (i64, i64, i64)) {
    eventually(what, CONVERGE, || async {
        let seen = summary(query_url).await?;
        if seen == log {
            Ok(())
        } else {
            Err(format!(
                "finance (captures, orders, gross) {seen:?}, event log {log:?}"
            ))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_during_ingest_loses_nothing_and_each_replica_answers_the_event_logs_totals(
) {
    let dir = std::env::temp_dir().join(format!(
        "waybill-e2e-clickhouse-cluster-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let cluster = ClickHouseCluster::start(&dir);
    let urls = cluster.https_urls();
    let settings = cluster.waybill_settings(&urls);
    let extra: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let world = CheckoutWorld::start("clickhouse_cluster", &extra, &[("CHC-1", 1_000)]).await;
    let database = world.env.clickhouse_database.clone();

    // `serve all` migrates the cluster (as it starts serving): replicated local tables and
    // Distributed ones, on both replicas.
    for replica in [1, 2] {
        let sql = format!(
            "SELECT name, engine FROM system.tables WHERE database = '{database}' \
             AND name IN ('order_facts', 'order_facts_local') ORDER BY name"
        );
        eventually(
            &format!("the warehouse tables on replica {replica}"),
            Duration::from_secs(60),
            || async {
                let engines = cluster.query(replica, &sql).await?;
                if engines
                    == "order_facts\tDistributed\norder_facts_local\tReplicatedReplacingMergeTree"
                {
                    Ok(())
                } else {
                    Err(format!("tables: {engines:?}"))
                }
            },
        )
        .await;
    }

    // Orders flow; the preferred replica dies with -9 once the warehouse has some of them, and
    // comes back a little later while orders still flow.
    // Until 12 orders after the kill and 12 after the restart (the warehouse may answer
    // `view-catching-up` for a while after `serve all` starts, delaying the kill), at most 120.
    let mut placed = Vec::new();
    let mut killed_after = None;
    let mut restarted_after = None;
    for i in 0..120u32 {
        if restarted_after.is_some_and(|r| i >= r + 12) {
            break;
        }
        let body = order(&format!("CHC-{i}"), "CHC-1", 1 + i % 3, cards::APPROVED);
        let response = world.place(&body).await;
        placed.push(response["order_id"].as_str().expect("order id").to_owned());
        if killed_after.is_none() && i >= 8 {
            let (captures, _, _) = summary(&world.waybill.query_url())
                .await
                .unwrap_or_default();
            if captures > 0 {
                cluster.kill_hard(1);
                killed_after = Some(i + 1);
            }
        }
        if restarted_after.is_none() && killed_after.is_some_and(|k| i + 1 >= k + 12) {
            cluster.restart(1).await;
            restarted_after = Some(i + 1);
        }
    }
    let killed_after = killed_after.expect("the warehouse had captures before the kill");
    let restarted_after = restarted_after.expect("the replica was restarted while orders flowed");
    for id in &placed {
        let events = world.settled(id, None).await;
        assert!(
            events.iter().any(|e| e == "PaymentCaptured"),
            "order {id}: {events:?}"
        );
    }
    let log = log_totals(&world).await;
    assert_eq!(log.1, placed.len() as i64);
    assert!(log.0 > 0);

    // Through the cluster as configured (both replicas, failover)…
    summary_equals_the_log(
        "the finance summary over both replicas equals the event log",
        &world.waybill.query_url(),
        log,
    )
    .await;
    // …and from each replica alone: a query API that knows only that one.
    for replica in [1, 2] {
        let only = cluster.waybill_settings(&urls[replica - 1..replica]);
        let only: Vec<(&str, &str)> = only.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let query = world.env.start_with(Role::Query, &only).await;
        summary_equals_the_log(
            &format!("the finance summary read from replica {replica} alone equals the event log"),
            &query.query_url(),
            log,
        )
        .await;
        // The replica's own table holds every order once it caught up (the Distributed table
        // may answer from the other replica while this one is behind).
        let sql = format!("SELECT count() FROM {database}.order_facts_local FINAL");
        eventually(
            &format!("replica {replica}'s own table holds every order"),
            CONVERGE,
            || async {
                let facts = cluster.query(replica, &sql).await?;
                if facts == placed.len().to_string() {
                    Ok(())
                } else {
                    Err(format!("{facts} of {} orders", placed.len()))
                }
            },
        )
        .await;
    }

    // Both replicas active again in ZooKeeper's eyes.
    eventually("both replicas active", CONVERGE, || async {
        let active = cluster
            .query(
                2,
                &format!(
                    "SELECT min(active_replicas) FROM system.replicas WHERE database = '{database}'"
                ),
            )
            .await?;
        if active == "2" {
            Ok(())
        } else {
            Err(format!("active replicas: {active}"))
        }
    })
    .await;

    // What was configured is what protects it: TLS without the CA, or a wrong password, fails.
    let untrusted = reqwest::Client::new()
        .post(format!("{}/", urls[1]))
        .body("SELECT 1")
        .send()
        .await;
    assert!(untrusted.is_err(), "a client without the CA connected");
    let wrong = cluster
        .query(2, "SELECT 1")
        .await
        .expect("the right password works");
    assert_eq!(wrong, "1");
    let refused = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(cluster.setting("WAYBILL_CLICKHOUSE_CA_FILE")).expect("CA"),
            )
            .expect("PEM"),
        )
        .build()
        .expect("client")
        .post(format!("{}/", urls[1]))
        .header(
            "X-ClickHouse-User",
            cluster.setting("WAYBILL_CLICKHOUSE_USER"),
        )
        .header("X-ClickHouse-Key", "not-the-password")
        .body("SELECT 1")
        .send()
        .await
        .expect("an answer");
    assert!(
        !refused.status().is_success(),
        "a wrong password was accepted"
    );

    // `waybill rebuild analytics` on the cluster: a new generation of replicated tables is
    // switched in on both replicas (their local tables renamed under the Distributed ones), the
    // figures still equal the log through the cluster and each replica's own table holds every
    // order, and neither replica keeps a rebuild or retired database.
    let mut rebuild = tokio::process::Command::new(waybill_binary());
    rebuild
        .args(["rebuild", "analytics"])
        .kill_on_drop(true)
        .env_clear();
    for (key, value) in world.env.process_env(&extra) {
        rebuild.env(key, value);
    }
    let output = rebuild
        .output()
        .await
        .expect("run waybill rebuild analytics");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && stdout.contains("rebuilt analytics"),
        "waybill rebuild analytics failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    summary_equals_the_log(
        "the finance summary after the rebuild equals the event log",
        &world.waybill.query_url(),
        log,
    )
    .await;
    for replica in [1, 2] {
        let sql = format!("SELECT count() FROM {database}.order_facts_local FINAL");
        eventually(
            &format!("replica {replica}'s rebuilt table holds every order"),
            CONVERGE,
            || async {
                let facts = cluster.query(replica, &sql).await?;
                if facts == placed.len().to_string() {
                    Ok(())
                } else {
                    Err(format!("{facts} of {} orders", placed.len()))
                }
            },
        )
        .await;
        let path = cluster
            .query(
                replica,
                &format!(
                    "SELECT zookeeper_path FROM system.replicas \
                     WHERE database = '{database}' AND table = 'order_facts_local'"
                ),
            )
            .await
            .expect("replica path");
        assert!(
            path.contains(&format!("/{database}_rebuild_")),
            "replica {replica}'s order_facts_local is the rebuilt generation: {path}"
        );
        let left = cluster
            .query(
                replica,
                &format!(
                    "SELECT count() FROM system.databases WHERE startsWith(name, '{database}_')"
                ),
            )
            .await
            .expect("databases");
        assert_eq!(left, "0", "replica {replica} keeps no generation database");
    }

    eprintln!(
        "clickhouse cluster: {} orders, replica 1 killed after {killed_after} and restarted \
         after {restarted_after}; log totals (captures, orders, gross) {log:?}",
        placed.len()
    );
    drop(world);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
