//! A tiny OTLP/HTTP (JSON) trace receiver: the `waybill` binary under test exports its spans
//! here (`OTEL_EXPORTER_OTLP_ENDPOINT=<endpoint()>`), and the test reads them back to check that
//! one order's journey is one trace with the right parent chain. Accepts a POST on any path
//! (`/v1/traces` when the endpoint comes from the standard variable).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use serde_json::Value;

/// One span as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// Attribute values rendered as strings.
    pub attributes: BTreeMap<String, String>,
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// Requests that were not JSON, by content type (a misconfigured exporter).
    rejected: Vec<String>,
}

pub struct OtlpReceiver {
    endpoint: String,
    received: Arc<Mutex<Received>>,
    server: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let received = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("OTLP receiver address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OtlpReceiver {
            endpoint: format!("http://{addr}"),
            received,
            server,
        }
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received
            .lock()
            .map(|r| r.spans.clone())
            .unwrap_or_default()
    }

    /// Content types of requests that could not be read as OTLP JSON.
    pub fn rejected(&self) -> Vec<String> {
        self.received
            .lock()
            .map(|r| r.rejected.clone())
            .unwrap_or_default()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let Ok(mut received) = received.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "poisoned").into_response();
    };
    match parsed {
        Some(request) => {
            received.spans.extend(spans_of(&request));
            (StatusCode::OK, [("content-type", "application/json")], "{}").into_response()
        }
        None => {
            received.rejected.push(content_type);
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "send OTLP JSON").into_response()
        }
    }
}

/// Walks `resourceSpans[].scopeSpans[].spans[]` of an ExportTraceServiceRequest.
fn spans_of(request: &Value) -> Vec<ReceivedSpan> {
    let empty = Vec::new();
    let array = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .clone()
    };
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut spans = Vec::new();
    for resource in array(request, "resourceSpans") {
        for scope in array(&resource, "scopeSpans") {
            for span in array(&scope, "spans") {
                let attributes = array(&span, "attributes")
                    .iter()
                    .filter_map(|a| {
                        let key = a.get("key")?.as_str()?.to_owned();
                        Some((key, attribute_text(a.get("value")?)))
                    })
                    .collect();
                spans.push(ReceivedSpan {
                    trace_id: text(&span, "traceId").to_lowercase(),
                    span_id: text(&span, "spanId").to_lowercase(),
                    parent_span_id: text(&span, "parentSpanId").to_lowercase(),
                    name: text(&span, "name"),
                    attributes,
                });
            }
        }
    }
    spans
}

/// `{"stringValue": "x"}` → `x`, `{"intValue": "3"}` → `3`, anything else as JSON text.
fn attribute_text(value: &Value) -> String {
    match value.as_object().and_then(|o| o.values().next()) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => value.to_string(),
    }
}
