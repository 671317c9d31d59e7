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
/// `max_deliver` attempts, one subject filter (`<root>.v1.>` for a whole view,
/// `<root>.v1.<partition>.>` for one partition; multi-filter is ignored by nats-server 2.9).
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
    stream
        .get_or_create_consumer(
            view,
            consumer::pull::Config {
                durable_name: Some(view.to_owned()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                max_deliver: config.max_deliver,
                filter_subject: filter.to_owned(),
                max_ack_pending: i64::try_from(config.batch.saturating_mul(4)).unwrap_or(2_000),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .map_err(|err| RuntimeError::Consumer {
            stream: config.stream_name.clone(),
            consumer: view.to_owned(),
            detail: err.to_string(),
        })
}
