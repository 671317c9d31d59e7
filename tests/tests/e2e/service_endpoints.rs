//! Every HTTP service answers `/health`, serves Prometheus `/metrics` and its OpenAPI document.

use waybill_e2e::{Role, TestEnv};

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

        let metrics = api.get(&format!("{base}/metrics")).await;
        assert_eq!(
            metrics.status,
            200,
            "{service} /metrics: {}",
            metrics.describe()
        );
        let content_type = metrics.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("text/plain"),
            "{service} /metrics content type {content_type}"
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
}
