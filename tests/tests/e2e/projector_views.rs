//! Views as deployable units: `serve projector --view ...` runs only the named views, and a view
//! whose store is broken never stops another. One process runs search alone (it holds the
//! Tantivy writer); a second runs tracking beside two broken views: search (a second writer,
//! refused by Tantivy's lock) and analytics (ClickHouse pointing at a closed port). Tracking
//! keeps applying, the broken search view restarts itself and logs at ERROR, and once the
//! first process is killed the second one's search view takes the writer over.

use serde_json::Value;
use waybill_e2e::{eventually, sample_order, Api, Role, TestEnv, AGENT_KEY, DEFAULT_DEADLINE};

use crate::place;

async fn found_by_search(api: &Api, order_id: &str) -> Result<(), String> {
    let response = api
        .query_get("/v1/search/orders", &[("q", order_id)], Some(AGENT_KEY))
        .await;
    if response.status != 200 {
        return Err(response.describe());
    }
    let body: Value = response.json();
    let found = body["hits"].as_array().is_some_and(|hits| {
        hits.iter()
            .any(|h| h["document"]["order_id"].as_str() == Some(order_id))
    });
    if found {
        Ok(())
    } else {
        Err(body.to_string())
    }
}

async fn tracked(env: &TestEnv, order_id: &str) -> Result<(), String> {
    match env.tracking_hash(order_id).await {
        Some((version, _)) if version >= 1 => Ok(()),
        other => Err(format!("tracking view: {other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_view_runs_where_it_is_named_and_a_broken_view_stops_no_other() {
    let env = TestEnv::new("projector_views").await;
    let commands = env.start(Role::Commands).await;
    let _relay = env.start(Role::Relay).await;
    let mut search_only = env
        .start_with(Role::Projector, &[("WAYBILL_PROJECTOR_VIEWS", "search")])
        .await;
    let mixed = env
        .start_with(
            Role::Projector,
            &[
                ("WAYBILL_PROJECTOR_VIEWS", "tracking,search,analytics"),
                ("WAYBILL_CLICKHOUSE_URL", "http://127.0.0.1:9"),
            ],
        )
        .await;
    let query = env.start(Role::Query).await;
    let api = Api::new(&commands.command_url(), &query.query_url());

    let first = place(&api, "views-1", &sample_order("VIEWS-1")).await;
    eventually(
        "tracking applied beside broken views",
        DEFAULT_DEADLINE,
        || tracked(&env, &first.order_id),
    )
    .await;
    eventually(
        "search applied by the search-only process",
        DEFAULT_DEADLINE,
        || found_by_search(&api, &first.order_id),
    )
    .await;

    // The mixed process's search view could not take the writer: it failed, logged at ERROR,
    // and restarts itself; its tracking view never stopped.
    let log = mixed.log_tail();
    assert!(
        log.contains("ERROR") && log.contains("search"),
        "a failed view is logged at ERROR\n{log}"
    );
    // Each process exports the views it runs, and only those.
    let metrics = reqwest::get(format!("{}/metrics", search_only.metrics_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("waybill_projector_applied_total{view=\"search\"}")
            && !metrics.contains("view=\"tracking\"")
            && !metrics.contains("view=\"analytics\""),
        "the search-only process runs search alone\n{metrics}"
    );

    // The search-only process dies: the mixed one's search view gets the writer on a restart
    // and catches up; tracking carries on throughout.
    search_only.kill_hard();
    let second = place(&api, "views-2", &sample_order("VIEWS-2")).await;
    eventually("tracking still applying", DEFAULT_DEADLINE, || {
        tracked(&env, &second.order_id)
    })
    .await;
    eventually(
        "search taken over by the other process",
        std::time::Duration::from_secs(90),
        || found_by_search(&api, &second.order_id),
    )
    .await;
}
