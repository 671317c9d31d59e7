//! The JetStream side of a projector: its durable pull consumer and the dead-letter stream.

use async_nats::jetstream::{self, consumer, stream};
use waybill_schemas::subject::dead_letter_subject;
use waybill_write_side::nats::StreamLimits;

use super::{ProjectorConfig, RuntimeError};

/// `<stream>_DLQ`: the stream that keeps a root's dead letters.
pub fn dead_letter_stream_name(stream_name: &str) -> String {
    format!("{stream_name}_DLQ")
}

/// Creates the dead-letter stream for `root` (subjects `waybill.dlq.<root>.>`) with `limits`,
/// or finds it and brings its limits to `limits`.
pub async fn ensure_dead_letter_stream(
    js: &jetstream::Context,
    subject_root: &str,
    stream_name: &str,
    limits: &StreamLimits,
) -> Result<stream::Stream, RuntimeError> {
    let name = dead_letter_stream_name(stream_name);
    let config = stream::Config {
        name: name.clone(),
        subjects: vec![dead_letter_subject(subject_root, ">")],
        storage: stream::StorageType::File,
        ..Default::default()
    };
    waybill_write_side::nats::ensure_stream(js, config, limits)
        .await
        .map_err(|err| RuntimeError::Stream {
            stream: name,
            detail: err.to_string(),
        })
}

/// The durable pull consumer `durable` on the event stream (created if absent): explicit acks,
/// one subject filter (`<root>.v1.>` for a whole view, `<root>.v1.<partition>.>` for one
/// partition; multi-filter is ignored by nats-server 2.9), and **no delivery limit on the
/// server**. The server counts every delivery, also those that end without a verdict: messages
/// handed back when a partition moves, in hand when an instance is killed, or past `ack_wait`
/// behind a slow batch. With a server-side `max_deliver` it would silently stop delivering a
/// message that churn alone had used up, and the view would never get it (a chaos run lost
/// the last events of orders that way). Giving up is the runtime's decision instead: a message
/// whose processing *failed* on or after its `max_deliver`-th delivery goes to the dead-letter
/// stream (`batch.rs`). A consumer made with a limit by an earlier version has it lifted.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    config: &ProjectorConfig,
    durable: &str,
    filter: &str,
) -> Result<consumer::PullConsumer, RuntimeError> {
    let view = durable;
    let stream = js
        .get_stream(&config.stream_name)
        .await
        .map_err(|err| RuntimeError::Stream {
            stream: config.stream_name.clone(),
            detail: err.to_string(),
        })?;
    let wanted = consumer::pull::Config {
        durable_name: Some(view.to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        max_deliver: UNLIMITED_DELIVERIES,
        filter_subject: filter.to_owned(),
        max_ack_pending: i64::try_from(config.batch.saturating_mul(4)).unwrap_or(2_000),
        deliver_policy: consumer::DeliverPolicy::All,
        ..Default::default()
    };
    let failed = |err: &dyn std::fmt::Display| RuntimeError::Consumer {
        stream: config.stream_name.clone(),
        consumer: view.to_owned(),
        detail: err.to_string(),
    };
    let found: consumer::PullConsumer = stream
        .get_or_create_consumer(view, wanted.clone())
        .await
        .map_err(|err| failed(&err))?;
    if found.cached_info().config.max_deliver == UNLIMITED_DELIVERIES {
        return Ok(found);
    }
    // Made by an earlier version with a delivery limit: `max_deliver` is editable, and creating
    // the durable again with the new value updates it in place (its position is kept).
    let updated = stream
        .create_consumer(wanted)
        .await
        .map_err(|err| failed(&err))?;
    tracing::info!(consumer = view, "delivery limit of the consumer lifted");
    Ok(updated)
}

/// `max_deliver` of a consumer the server redelivers to without limit.
const UNLIMITED_DELIVERIES: i64 = -1;
