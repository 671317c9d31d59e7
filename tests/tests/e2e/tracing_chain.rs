//! One order's journey is one trace: the HTTP command, the event store append, the relay's
//! publish and the projector's apply are exported over OTLP with one trace id, and each later
//! step descends from the command through the envelope's `traceparent` and the NATS headers:
//! command → event_store.append, command → relay.publish → projector.apply.

use std::collections::HashMap;
use std::time::Duration;

use waybill_e2e::{
    eventually, sample_order, OtlpReceiver, ReceivedSpan, Role, TestEnv, DEFAULT_DEADLINE,
};

use crate::{place, tracking_at};

const STEPS: [&str; 4] = [
    "command",
    "event_store.append",
    "relay.publish",
    "projector.apply",
];

/// The span ids from `span` up to the root, as far as the exported spans reach.
fn ancestors<'a>(span: &'a ReceivedSpan, by_id: &HashMap<&str, &'a ReceivedSpan>) -> Vec<&'a str> {
    let mut chain = Vec::new();
    let mut parent = span.parent_span_id.as_str();
    while !parent.is_empty() && chain.len() < 64 {
        chain.push(parent);
        parent = by_id
            .get(parent)
            .map(|p| p.parent_span_id.as_str())
            .unwrap_or("");
    }
    chain
}

fn describe(spans: &[ReceivedSpan]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{} trace={} span={} parent={}",
                s.name, s.trace_id, s.span_id, s.parent_span_id
            )
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_journey_is_one_trace_from_command_to_projector() {
    let receiver = OtlpReceiver::start().await;
    let env = TestEnv::new("trace_chain").await;
    let waybill = env
        .start_with(
            Role::All,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
                ("OTEL_BSP_SCHEDULE_DELAY", "200"),
                ("OTEL_SERVICE_NAME", "waybill-e2e"),
            ],
        )
        .await;
    let api = waybill.api();
    let placed = place(&api, "trace-1", &sample_order("WEB-TRACE")).await;
    tracking_at(&api, &placed.order_id, &placed.tracking_token, 1).await;
    let order_id = placed.order_id.clone();

    let trace: HashMap<&str, ReceivedSpan> = eventually(
        "command, append, publish and apply spans of one trace",
        DEFAULT_DEADLINE + Duration::from_secs(30),
        || async {
            let spans = receiver.spans();
            let commands: Vec<&ReceivedSpan> =
                spans.iter().filter(|s| s.name == "command").collect();
            // The command span of our order: by its order_id field, or the only one there is.
            let command = commands
                .iter()
                .find(|s| s.attributes.get("order_id") == Some(&order_id))
                .or(if commands.len() == 1 {
                    commands.first()
                } else {
                    None
                });
            let Some(command) = command else {
                return Err(format!(
                    "no command span for {order_id}; rejected posts {:?}; received:\n  {}",
                    receiver.rejected(),
                    describe(&spans)
                ));
            };
            let mut found = HashMap::new();
            for step in STEPS {
                match spans
                    .iter()
                    .find(|s| s.name == step && s.trace_id == command.trace_id)
                {
                    Some(span) => {
                        found.insert(step, span.clone());
                    }
                    None => {
                        return Err(format!(
                            "no {step} span in trace {}; received:\n  {}",
                            command.trace_id,
                            describe(&spans)
                        ))
                    }
                }
            }
            Ok(found)
        },
    )
    .await;

    let all = receiver.spans();
    let by_id: HashMap<&str, &ReceivedSpan> = all.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let command = &trace["command"];
    eprintln!(
        "trace {}:\n  {}",
        command.trace_id,
        describe(
            &all.iter()
                .filter(|s| s.trace_id == command.trace_id)
                .cloned()
                .collect::<Vec<_>>()
        )
    );
    for step in ["event_store.append", "relay.publish", "projector.apply"] {
        let span = &trace[step];
        assert_eq!(span.trace_id, command.trace_id, "{step} in another trace");
        let chain = ancestors(span, &by_id);
        assert!(
            chain.contains(&command.span_id.as_str()),
            "{step} does not descend from the command span {}; its ancestors: {chain:?}\n  {}",
            command.span_id,
            describe(&all)
        );
    }
    // The projector continues the relay's span (its context travels in the NATS headers).
    let publish = &trace["relay.publish"];
    let apply_chain = ancestors(&trace["projector.apply"], &by_id);
    assert!(
        apply_chain.contains(&publish.span_id.as_str()),
        "projector.apply does not descend from relay.publish {}; its ancestors: {apply_chain:?}",
        publish.span_id
    );
}
