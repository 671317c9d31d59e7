//! Prometheus metrics for the process: installs the `metrics` recorder once and hands out the
//! render callback each HTTP service serves at `/metrics`. Worker processes (relay, projector)
//! get a tiny listener of their own with `/metrics` and `/health`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::header;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusBuilder;
use waybill_query_api::MetricsRender;

/// Latency buckets in seconds for every `*_seconds` histogram.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the global recorder and returns its renderer. Call once, inside the runtime.
pub fn install() -> anyhow::Result<MetricsRender> {
    let handle = PrometheusBuilder::new()
        .set_buckets(SECONDS_BUCKETS)
        .context("configuring histogram buckets")?
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(Arc::new(move || handle.render()))
}

/// Serves `/metrics` and `/health` for a worker process until `shutdown` resolves.
pub async fn serve_worker_metrics(
    addr: SocketAddr,
    render: MetricsRender,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let render = render.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        render(),
                    )
                }
            }),
        )
        .route("/health", get(|| async { r#"{"status":"ok"}"# }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener on {addr}"))?;
    tracing::info!(%addr, "worker metrics listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving worker metrics")
}
