//! JSON log lines (`WAYBILL_LOG_FORMAT=json`), one object per line, on which every line emitted
//! inside a request or a message's handling says which trace and which order it belongs to:
//! `trace_id` (the W3C trace the request's `traceparent` or the event envelope named, from the
//! OpenTelemetry context of the innermost span that has one), and `order_id`,
//! `correlation_id`, `event_type` from the fields of the enclosing spans, lifted to the top
//! level so a log search needs no knowledge of which span recorded them.
//!
//! `{"timestamp", "level", "target", "message", "trace_id"?, "order_id"?, "correlation_id"?,
//! "event_type"?, "span"?, "fields": {...}}`

use std::fmt;

use opentelemetry::trace::TraceId;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Span fields lifted to the top level of each line.
const LIFTED: [&str; 3] = ["order_id", "correlation_id", "event_type"];

/// The event formatter; use with [`JsonFields`] as the field formatter.
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".into(), Value::String(metadata.level().to_string()));
        line.insert("target".into(), Value::String(metadata.target().to_owned()));
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        if let Some(scope) = ctx.event_scope() {
            let mut innermost = None;
            for span in scope {
                innermost.get_or_insert_with(|| span.name());
                let extensions = span.extensions();
                if !line.contains_key("trace_id") {
                    if let Some(trace_id) = extensions
                        .get::<tracing_opentelemetry::OtelData>()
                        .and_then(tracing_opentelemetry::OtelData::trace_id)
                        .filter(|id| *id != TraceId::INVALID)
                    {
                        line.insert("trace_id".into(), Value::String(trace_id.to_string()));
                    }
                }
                let Some(recorded) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                let Ok(Value::Object(span_fields)) =
                    serde_json::from_str::<Value>(&recorded.fields)
                else {
                    continue;
                };
                for name in LIFTED {
                    if !line.contains_key(name) {
                        if let Some(value) = span_fields.get(name) {
                            line.insert(name.into(), value.clone());
                        }
                    }
                }
            }
            if let Some(name) = innermost {
                line.insert("span".into(), Value::String(name.to_owned()));
            }
        }
        for name in LIFTED {
            if let Some(value) = fields.remove(name) {
                line.insert(name.into(), value);
            }
        }
        if !fields.is_empty() {
            line.insert("fields".into(), Value::Object(fields));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects an event's fields as JSON values.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_string()));
    }
}
