//! Every HTTP service answers `/health`, `/live`, `/ready` and its OpenAPI document; Prometheus
//! `/metrics` is served on the process's own listener only, with buckets fitting each histogram;
//! `/ready` names the dependency that does not answer.

use waybill_e2e::{sample_order, Role, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_health_metrics_and_openapi() {
    let env = TestEnv::new("service_endpoints").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();

    for (service, base, path) in [
        ("command", &api.command_url, "/v1/orders"),
        ("query", &api.query_url, "/v1/orders/{id}/tracking"),
    ] {
        let health = api.get(&format!("{base}/health")).await;
        assert_eq!(
            health.status,
            200,
            "{service} /health: {}",
            health.describe()
        );

        let live = api.get(&format!("{base}/live")).await;
        assert_eq!(live.status, 200, "{service} /live: {}", live.describe());
        let ready = api.get(&format!("{base}/ready")).await;
        assert_eq!(ready.status, 200, "{service} /ready: {}", ready.describe());
        // `serve all` uses every dependency, and says each one is up.
        for dependency in ["postgres", "nats", "redis", "clickhouse", "search"] {
            assert_eq!(
                ready.json()["checks"][dependency],
                "up",
                "{service} /ready: {}",
                ready.describe()
            );
        }
        let metrics = api.get(&format!("{base}/metrics")).await;
        assert_eq!(
            metrics.status, 404,
            "{service} serves no /metrics on its public port"
        );

        let openapi = api.get(&format!("{base}/openapi.json")).await;
        assert_eq!(
            openapi.status,
            200,
            "{service} /openapi.json: {}",
            openapi.describe()
        );
        let document = openapi.json();
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with('3')),
            "{service} /openapi.json is not an OpenAPI 3 document"
        );
        assert!(
            document["paths"].get(path).is_some(),
            "{service} /openapi.json lacks {path}"
        );
    }

    // The metrics listener: the process's metrics, with count buckets for batch sizes.
    let placed = api
        .place_order("endpoints-1", &sample_order("ENDPOINTS-1"))
        .await;
    assert_eq!(placed.status, 201, "{}", placed.describe());
    let metrics_url = waybill.metrics_url();
    for path in ["/live", "/ready"] {
        let answer = api.get(&format!("{metrics_url}{path}")).await;
        assert_eq!(answer.status, 200, "metrics listener {path}");
    }
    let metrics = api.get(&format!("{metrics_url}/metrics")).await;
    assert_eq!(metrics.status, 200, "{}", metrics.describe());
    let content_type = metrics.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = metrics.text();
    let bucket = |name: &str, le: &str| {
        let le = format!("le=\"{le}\"");
        text.lines()
            .any(|l| l.starts_with(&format!("{name}_bucket{{")) && l.contains(&le))
    };
    assert!(
        bucket("waybill_commit_batch_size", "1") && !bucket("waybill_commit_batch_size", "0.0005"),
        "batch sizes are counted in items, not seconds:\n{text}"
    );
    assert!(
        bucket("waybill_command_duration_seconds", "0.0005"),
        "latencies in seconds:\n{text}"
    );
}

/// A query API whose ClickHouse does not answer is live but not ready, and says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_names_the_dependency_that_is_down() {
    let env = TestEnv::new("service_ready").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let query = env
        .start_with(
            Role::Query,
            &[("WAYBILL_CLICKHOUSE_URL", dead_url.as_str())],
        )
        .await;
    let api = query.api();
    for base in [api.query_url.clone(), query.metrics_url()] {
        let live = api.get(&format!("{base}/live")).await;
        assert_eq!(live.status, 200, "{base}/live");
        let ready = api.get(&format!("{base}/ready")).await;
        assert_eq!(ready.status, 503, "{base}/ready: {}", ready.describe());
        assert_eq!(
            ready.header("content-type"),
            Some("application/problem+json")
        );
        assert!(ready.header("retry-after").is_some());
        let body = ready.json();
        assert_eq!(body["down"], serde_json::json!(["clickhouse"]), "{body}");
        assert_eq!(body["checks"]["redis"], "up", "{body}");
        assert_eq!(body["checks"]["postgres"], "up", "{body}");
        assert!(
            body["checks"].get("nats").is_none(),
            "the query API uses no NATS: {body}"
        );
    }
}
