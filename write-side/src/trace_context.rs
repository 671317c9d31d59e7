//! W3C trace context across process boundaries: the command span's `traceparent` is stored in
//! the event envelope, travels in the NATS headers, and becomes the parent of the relay's and the
//! projectors' spans, so one order's journey is one trace.
//!
//! The [`TraceContextPropagator`] is used directly rather than through the global propagator, so
//! this works whether or not the binary installed one. Without an OpenTelemetry tracing layer the
//! spans carry no OpenTelemetry context: `current_traceparent` then returns `None` and
//! `set_parent_from_traceparent` does nothing.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (and carrier key) W3C trace context travels in.
pub const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current tracing span, if it carries a valid OpenTelemetry context.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The `traceparent` of `span`, if it carries a valid OpenTelemetry span context.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The span of one HTTP request on either API (`make_span_with` of their trace layer): it
/// continues the caller's trace when the request carries a `traceparent`, so the caller's
/// trace id is in every log line and span of the request, and in the envelopes of the events
/// a command appends.
pub fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let span = tracing::info_span!(
        "http.request",
        method = %request.method(),
        path = %request.uri().path(),
    );
    if let Some(parent) = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
    {
        set_parent_from_traceparent(&span, parent);
    }
    span
}

/// Makes the remote span named by `traceparent` the parent of `span`. An unparsable value or a
/// span without an OpenTelemetry layer is ignored: tracing must never fail the work it observes.
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let mut carrier: HashMap<String, String> = HashMap::new();
    carrier.insert(TRACEPARENT.to_owned(), traceparent.to_owned());
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        // Fails only when the span is disabled or has no OpenTelemetry layer: nothing to link.
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    const REMOTE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with_otel_subscriber(f: impl FnOnce()) {
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
    }

    #[test]
    fn child_span_continues_the_remote_trace() {
        with_otel_subscriber(|| {
            let span = tracing::info_span!("relay.publish");
            set_parent_from_traceparent(&span, REMOTE);
            let _entered = span.enter();
            let injected = current_traceparent().expect("span has a trace context");
            let parts: Vec<&str> = injected.split('-').collect();
            assert_eq!(parts.len(), 4);
            assert_eq!(
                parts[1], "4bf92f3577b34da6a3ce929d0e0e4736",
                "same trace id"
            );
            assert_ne!(parts[2], "00f067aa0ba902b7", "a new span id of its own");
        });
    }

    #[test]
    fn garbage_traceparent_is_ignored() {
        with_otel_subscriber(|| {
            let span = tracing::info_span!("relay.publish");
            set_parent_from_traceparent(&span, "not-a-traceparent");
            let _entered = span.enter();
            let injected = current_traceparent().expect("a root trace of its own");
            assert!(!injected.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
        });
    }

    #[test]
    fn no_otel_layer_means_no_traceparent() {
        let span = tracing::info_span!("command");
        let _entered = span.enter();
        assert_eq!(current_traceparent(), None);
    }
}
