//! Logs and traces for the whole process: a `tracing` subscriber with an env filter (`RUST_LOG`),
//! human-readable or JSON lines (`WAYBILL_LOG_FORMAT`; JSON lines carry `trace_id`, `order_id`
//! and `correlation_id` at the top level, see [`crate::json_logs`]), and a tracing-opentelemetry layer over an
//! OpenTelemetry tracer provider that always exists, so every span has a trace id that travels
//! through envelopes and NATS headers. Spans leave the process over OTLP/HTTP (JSON) only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The W3C TraceContext propagator is installed globally.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// `RUST_LOG` when unset: services log at info; the demo and the bench only warnings, so their
/// own output stays readable.
pub const SERVICE_FILTER: &str = "info,sqlx=warn,async_nats=warn,tower_http=warn";
pub const QUIET_FILTER: &str = "warn,sqlx=error";

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes spans still buffered.
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    /// Installs the subscriber and propagator. Call once, at startup.
    pub fn init(
        service: &'static str,
        format: LogFormat,
        default_filter: &str,
        otlp_endpoint: Option<&str>,
    ) -> anyhow::Result<Self> {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let resource = Resource::builder()
            .with_service_name(service)
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let mut builder = SdkTracerProvider::builder().with_resource(resource);
        let endpoint = otlp_endpoint.map(str::trim).filter(|e| !e.is_empty());
        if let Some(endpoint) = endpoint {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint(traces_url(endpoint))
                .with_timeout(Duration::from_secs(5))
                .build()
                .with_context(|| format!("building the OTLP exporter for {endpoint}"))?;
            let mut batch = BatchConfigBuilder::default();
            if std::env::var_os("OTEL_BSP_SCHEDULE_DELAY").is_none() {
                // Spans of one order show up within a second instead of the default five.
                batch = batch.with_scheduled_delay(Duration::from_millis(500));
            }
            let processor = BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch.build())
                .build();
            builder = builder.with_span_processor(processor);
        }
        let provider = builder.build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("waybill"));

        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
        let fmt = match format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(crate::json_logs::JsonLines)
                .with_writer(std::io::stderr)
                .boxed(),
        };
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .with(otel)
            .try_init()
            .context("installing the tracing subscriber")?;
        if let Some(endpoint) = endpoint {
            tracing::info!(endpoint, "exporting spans over OTLP/HTTP JSON");
        }
        Ok(Self {
            provider,
            exporting: endpoint.is_some(),
        })
    }

    /// Flushes and stops the exporter. Call outside the async runtime (it may block).
    pub fn shutdown(self) {
        if self.exporting {
            if let Err(error) = self.provider.force_flush() {
                eprintln!("flushing spans failed: {error}");
            }
        }
        if let Err(error) = self.provider.shutdown() {
            if self.exporting {
                eprintln!("stopping the span exporter failed: {error}");
            }
        }
    }
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` is the collector's base URL; traces go to `/v1/traces` under it.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn traces_go_under_v1_traces_of_the_endpoint() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
