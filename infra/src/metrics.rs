//! Prometheus metrics for the process: installs the `metrics` recorder once and serves it at
//! `/metrics` on a listener of its own (`WAYBILL_METRICS_ADDR`), never on the public API ports,
//! with `/live`, `/ready` and `/health` beside it for supervisors and load balancers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::header;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use waybill_query_api::MetricsRender;
use waybill_write_side::readiness::Readiness;

/// Latency buckets in seconds: the default, for every `*_seconds` histogram of one operation.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Ages in seconds (how long a row waited): milliseconds to a quarter of an hour.
const AGE_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];
/// Counts of things handled together (batch sizes): powers of two up to 4,096.
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// The exporter with buckets fitting each histogram: sizes are counts, not seconds.
fn builder() -> anyhow::Result<PrometheusBuilder> {
    let sizes = [
        Matcher::Suffix("_batch_size".into()),
        Matcher::Full("waybill_fulfillment_append_orders".into()),
    ];
    let mut builder = PrometheusBuilder::new()
        .set_buckets(SECONDS_BUCKETS)
        .context("configuring histogram buckets")?
        .set_buckets_for_metric(
            Matcher::Full("waybill_relay_outbox_age_seconds".into()),
            AGE_BUCKETS,
        )
        .context("configuring age buckets")?;
    for matcher in sizes {
        builder = builder
            .set_buckets_for_metric(matcher, SIZE_BUCKETS)
            .context("configuring size buckets")?;
    }
    Ok(builder)
}

/// Installs the global recorder and returns its renderer. Call once, inside the runtime.
pub fn install() -> anyhow::Result<MetricsRender> {
    let handle = builder()?
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

/// Serves `/metrics`, `/live`, `/ready` and `/health` until `shutdown` resolves.
pub async fn serve_metrics(
    addr: SocketAddr,
    render: MetricsRender,
    readiness: Readiness,
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
        .route("/health", get(|| async { r#"{"status":"ok"}"# }))
        .route("/live", get(waybill_write_side::readiness::live))
        .route(
            "/ready",
            get(move || {
                let readiness = readiness.clone();
                async move { readiness.answer().await }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener on {addr}"))?;
    tracing::info!(%addr, "worker metrics listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving worker metrics")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_histogram_gets_buckets_in_its_own_unit() {
        let recorder = builder().unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("waybill_commit_batch_size").record(37.0);
            metrics::histogram!("waybill_fulfillment_append_orders").record(3.0);
            metrics::histogram!("waybill_command_duration_seconds").record(0.004);
            metrics::histogram!("waybill_relay_outbox_age_seconds").record(42.0);
        });
        let text = handle.render();
        let has = |line: &str| text.lines().any(|l| l.starts_with(line));
        assert!(
            has("waybill_commit_batch_size_bucket{le=\"64\"} 1"),
            "{text}"
        );
        assert!(
            !has("waybill_commit_batch_size_bucket{le=\"0.0005\"}"),
            "{text}"
        );
        assert!(
            has("waybill_fulfillment_append_orders_bucket{le=\"4\"} 1"),
            "{text}"
        );
        assert!(
            has("waybill_command_duration_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            has("waybill_relay_outbox_age_seconds_bucket{le=\"60\"} 1"),
            "{text}"
        );
        assert!(
            has("waybill_relay_outbox_age_seconds_bucket{le=\"30\"} 0"),
            "{text}"
        );
    }
}
