//! The outbox relay: moves committed events from the `outbox` table to JetStream.
//!
//! Each round claims up to `batch_size` outbox rows (oldest first, `FOR UPDATE OF outbox SKIP
//! LOCKED`, so several relays share the work) in one SERIALIZABLE transaction, publishes every
//! event pipelined (all sends first, then all acks) with `Nats-Msg-Id = event_id`, deletes the
//! acknowledged rows and commits. A relay that dies between publish and delete leaves its rows in
//! place; the next round publishes them again and JetStream drops the copies inside its
//! duplicate window, so every committed event reaches the stream exactly once.
//!
//! No LISTEN/NOTIFY (CockroachDB has none): the relay polls, 2 ms apart while there is work,
//! backing off to 50 ms when the outbox is empty.

use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use chrono::Utc;
use sqlx::{PgPool, Postgres, Transaction};
use tracing::Instrument;
use uuid::Uuid;
use waybill_schemas::subject::{stream_subjects, subject_for};

use crate::event_store::retry;
use crate::event_store::rows::{EnvelopeHead, EventRow};
use crate::event_store::EventStoreError;
use crate::nats::{StreamLimits, StreamSetupError};
use crate::trace_context::{self, TRACEPARENT};

/// NATS headers set on every published event besides `Nats-Msg-Id` and `traceparent`.
pub const HEADER_STREAM_ID: &str = "Waybill-Stream-Id";
pub const HEADER_STREAM_VERSION: &str = "Waybill-Stream-Version";
pub const HEADER_EVENT_TYPE: &str = "Waybill-Event-Type";

/// How long JetStream remembers a `Nats-Msg-Id` to drop re-publishes.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Acks in flight per JetStream context: measured fastest here at ~1,000 (see INFRA-FACTS.md).
pub const MAX_ACK_INFLIGHT: usize = 1_024;

/// What the relay publishes where, and how eagerly.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// JetStream stream name (`ORDERS`).
    pub stream_name: String,
    /// Subject root: events go to `<root>.v1.<partition>.<event_type>`.
    pub subject_root: String,
    pub partitions: u32,
    /// Outbox rows claimed per transaction; kept at or below [`MAX_ACK_INFLIGHT`].
    pub batch_size: i64,
    /// Pause after a round that found work but did not fill a batch.
    pub busy_poll: Duration,
    /// Longest pause while the outbox stays empty.
    pub idle_poll: Duration,
    /// Longest pause after repeated failures.
    pub max_backoff: Duration,
    /// How often the `waybill_outbox_depth` gauge is refreshed (a `count(*)`).
    pub depth_interval: Duration,
    /// Replicas and retention of the stream, applied when the relay creates or finds it.
    pub limits: StreamLimits,
}

impl RelayConfig {
    pub fn new(stream_name: impl Into<String>, subject_root: impl Into<String>) -> Self {
        Self {
            stream_name: stream_name.into(),
            subject_root: subject_root.into(),
            ..Self::default()
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            stream_name: waybill_schemas::subject::STREAM.to_owned(),
            subject_root: waybill_schemas::subject::DEFAULT_ROOT.to_owned(),
            partitions: 8,
            batch_size: 1_000,
            busy_poll: Duration::from_millis(2),
            idle_poll: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            depth_interval: Duration::from_secs(1),
            limits: StreamLimits::EVENTS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox database access failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Stream(#[from] StreamSetupError),
    #[error("an outbox event cannot be published: {0}")]
    Unreadable(#[from] EventStoreError),
    #[error("event {event_id} cannot be encoded: {source}")]
    Encode {
        event_id: Uuid,
        source: serde_json::Error,
    },
    #[error("publishing event {event_id} failed: {source}")]
    Publish {
        event_id: Uuid,
        source: jetstream::context::PublishError,
    },
    #[error("{failed} of {claimed} events were not acknowledged by JetStream; first: {first}")]
    Unacknowledged {
        claimed: usize,
        failed: usize,
        first: jetstream::context::PublishError,
    },
}

impl RelayError {
    /// SQLSTATE 40001/40P01: another transaction won; retry at once (with jitter).
    pub fn is_serialization_failure(&self) -> bool {
        matches!(self, Self::Database(err) if retry::is_serialization_failure(err))
    }
    fn stream_missing(&self) -> bool {
        match self {
            Self::Publish { source, .. } | Self::Unacknowledged { first: source, .. } => {
                source.kind() == PublishErrorKind::StreamNotFound
            }
            _ => false,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundOutcome {
    /// Rows claimed from the outbox.
    pub claimed: usize,
    /// Events JetStream acknowledged (new or duplicate).
    pub acked: usize,
    /// Acks that said "duplicate": the event was already in the stream.
    pub duplicates: usize,
    /// Outbox rows deleted.
    pub deleted: usize,
}

/// What a round does after JetStream acknowledged its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPublish {
    /// Delete the acknowledged rows and commit: normal operation.
    DeleteAndCommit,
    /// Roll back, keeping every row: what a relay killed between publish and delete leaves
    /// behind. For fault-injection tests and drills.
    Abandon,
}

/// A JetStream context tuned for the relay: at most [`MAX_ACK_INFLIGHT`] acks in flight, and a
/// publish waits for a free slot instead of failing.
pub fn relay_jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .max_ack_inflight(MAX_ACK_INFLIGHT)
        .backpressure_on_inflight(true)
        .build(client)
}

/// Creates the event stream (`<root>.v1.>`, 2-minute duplicate window) with the default
/// [`StreamLimits::EVENTS`] unless it exists.
pub async fn ensure_stream(
    js: &jetstream::Context,
    stream_name: &str,
    subject_root: &str,
) -> Result<stream::Stream, RelayError> {
    ensure_event_stream(js, stream_name, subject_root, &StreamLimits::EVENTS).await
}

/// Creates the event stream with `limits`, or finds it and brings its limits to `limits`.
pub async fn ensure_event_stream(
    js: &jetstream::Context,
    stream_name: &str,
    subject_root: &str,
    limits: &StreamLimits,
) -> Result<stream::Stream, RelayError> {
    let config = stream::Config {
        name: stream_name.to_owned(),
        subjects: vec![stream_subjects(subject_root)],
        duplicate_window: DUPLICATE_WINDOW,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        ..Default::default()
    };
    Ok(crate::nats::ensure_stream(js, config, limits).await?)
}

/// Runs the relay until `shutdown` completes. A round in progress is finished first; failures
/// are logged and retried with backoff, never returned.
pub async fn run_relay(
    config: RelayConfig,
    pool: PgPool,
    js: jetstream::Context,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let mut backoff = Backoff::new(config.max_backoff);
    let mut stream_ready = false;
    let mut idle = config.busy_poll;
    let mut last_depth: Option<Instant> = None;

    loop {
        let pause = if !stream_ready {
            match ensure_event_stream(
                &js,
                &config.stream_name,
                &config.subject_root,
                &config.limits,
            )
            .await
            {
                Ok(_) => {
                    stream_ready = true;
                    backoff.reset();
                    Duration::ZERO
                }
                Err(err) => {
                    tracing::warn!(error = %err, "relay cannot reach its stream yet");
                    backoff.next()
                }
            }
        } else {
            if last_depth.is_none_or(|at| at.elapsed() >= config.depth_interval) {
                last_depth = Some(Instant::now());
                record_outbox_depth(&pool).await;
            }
            match relay_round(&config, &pool, &js, AfterPublish::DeleteAndCommit).await {
                Ok(outcome) => {
                    backoff.reset();
                    if outcome.claimed as i64 >= config.batch_size.min(MAX_ACK_INFLIGHT as i64) {
                        idle = config.busy_poll;
                        Duration::ZERO
                    } else if outcome.claimed > 0 {
                        idle = config.busy_poll;
                        config.busy_poll
                    } else {
                        let pause = idle;
                        idle = (idle * 2).min(config.idle_poll);
                        pause
                    }
                }
                Err(err) if err.is_serialization_failure() => {
                    metrics::counter!("waybill_relay_serialization_retries_total").increment(1);
                    jitter(config.busy_poll)
                }
                Err(err) => {
                    metrics::counter!("waybill_relay_publish_errors_total").increment(1);
                    tracing::warn!(error = %err, "relay round failed; rows stay in the outbox");
                    if err.stream_missing() {
                        stream_ready = false;
                    }
                    backoff.next()
                }
            }
        };
        if pause.is_zero() {
            // Still give shutdown a chance between back-to-back full batches.
            tokio::task::yield_now().await;
            if futures::FutureExt::now_or_never(&mut shutdown).is_some() {
                break;
            }
            continue;
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!("relay stopped");
    Ok(())
}

/// One round: claim, publish, await acks, then delete and commit (or abandon, see
/// [`AfterPublish`]). Rows whose publish was not acknowledged stay in the outbox.
pub async fn relay_round(
    config: &RelayConfig,
    pool: &PgPool,
    js: &jetstream::Context,
    after: AfterPublish,
) -> Result<RoundOutcome, RelayError> {
    let mut tx = retry::begin(pool).await?;
    let limit = config.batch_size.clamp(1, MAX_ACK_INFLIGHT as i64);
    let envelopes = claim(&mut tx, limit).await?;
    let mut outcome = RoundOutcome {
        claimed: envelopes.len(),
        ..RoundOutcome::default()
    };
    if envelopes.is_empty() {
        retry::commit(tx).await?;
        return Ok(outcome);
    }

    let started = Instant::now();
    let mut pending: Vec<(Uuid, PublishAckFuture)> = Vec::with_capacity(envelopes.len());
    for envelope in &envelopes {
        let ack = publish(config, js, envelope).await?;
        pending.push((envelope.head.event_id, ack));
    }
    // The acks are already on their way. They are awaited together: each ack's timeout starts
    // when it is awaited, so awaiting them one by one after a stream leader died (its acks never
    // come) would wait the timeout once per message instead of once per round.
    let (ids, acks): (Vec<Uuid>, Vec<PublishAckFuture>) = pending.into_iter().unzip();
    let results =
        futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await;
    metrics::histogram!("waybill_relay_publish_seconds").record(started.elapsed().as_secs_f64());

    let mut acked: Vec<Uuid> = Vec::with_capacity(ids.len());
    let mut first_failure = None;
    let mut failed = 0;
    for (id, result) in ids.into_iter().zip(results) {
        match result {
            Ok(ack) => {
                if ack.duplicate {
                    outcome.duplicates += 1;
                }
                acked.push(id);
            }
            Err(err) => {
                failed += 1;
                first_failure.get_or_insert(err);
            }
        }
    }
    outcome.acked = acked.len();
    metrics::counter!("waybill_relay_published_total").increment(acked.len() as u64);
    metrics::counter!("waybill_relay_duplicates_total").increment(outcome.duplicates as u64);
    if let Some(oldest) = envelopes.iter().map(|e| e.head.recorded_at).min() {
        let age = (Utc::now() - oldest).to_std().unwrap_or_default();
        metrics::histogram!("waybill_relay_outbox_age_seconds").record(age.as_secs_f64());
    }

    match after {
        AfterPublish::Abandon => {
            tx.rollback().await?;
        }
        AfterPublish::DeleteAndCommit => {
            if !acked.is_empty() {
                let deleted = sqlx::query("DELETE FROM outbox WHERE event_id = ANY($1)")
                    .bind(&acked)
                    .execute(&mut *tx)
                    .await?;
                outcome.deleted = usize::try_from(deleted.rows_affected()).unwrap_or(usize::MAX);
            }
            retry::commit(tx).await?;
        }
    }
    match first_failure {
        None => Ok(outcome),
        Some(first) => Err(RelayError::Unacknowledged {
            claimed: outcome.claimed,
            failed,
            first,
        }),
    }
}

/// Sends one event (without waiting for its ack) inside a `relay.publish` span whose parent is
/// the command that recorded it.
async fn publish(
    config: &RelayConfig,
    js: &jetstream::Context,
    envelope: &Outgoing,
) -> Result<PublishAckFuture, RelayError> {
    let span = tracing::info_span!(
        "relay.publish",
        order_id = %envelope.head.stream_id,
        event_id = %envelope.head.event_id,
        event_type = %envelope.head.event_type,
        stream_version = envelope.head.stream_version,
    );
    if let Some(parent) = &envelope.head.traceparent {
        trace_context::set_parent_from_traceparent(&span, parent);
    }
    let body = envelope.body().map_err(|source| RelayError::Encode {
        event_id: envelope.head.event_id,
        source,
    })?;
    let mut headers = HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        envelope.head.event_id.to_string(),
    );
    // Our own span when an OpenTelemetry layer is installed, else the command's context as is.
    if let Some(traceparent) =
        trace_context::traceparent_of(&span).or_else(|| envelope.head.traceparent.clone())
    {
        headers.insert(TRACEPARENT, traceparent);
    }
    headers.insert(HEADER_STREAM_ID, envelope.head.stream_id.as_str());
    headers.insert(
        HEADER_STREAM_VERSION,
        envelope.head.stream_version.to_string(),
    );
    headers.insert(HEADER_EVENT_TYPE, envelope.head.event_type.as_str());
    let subject = subject_for(
        &config.subject_root,
        &envelope.head.stream_id,
        &envelope.head.event_type,
        config.partitions,
    );
    js.publish_with_headers(subject, headers, body.into())
        .instrument(span)
        .await
        .map_err(|source| RelayError::Publish {
            event_id: envelope.head.event_id,
            source,
        })
}

/// Locks up to `limit` of the oldest unpublished events; rows another relay holds are skipped.
/// Within a stream, versions come out in order. Payloads stay JSON text: the relay only
/// forwards them.
async fn claim(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<Outgoing>, RelayError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT e.stream_id, e.stream_version, e.event_id, e.event_type, e.schema_version, \
                e.occurred_at, e.recorded_at, e.correlation_id, e.causation_id, e.traceparent, \
                e.actor_kind, e.actor_id, e.channel, e.payload::text AS payload \
         FROM outbox o JOIN events e ON e.event_id = o.event_id \
         ORDER BY o.created_at, o.stream_id, o.stream_version \
         LIMIT $1 \
         FOR UPDATE OF o SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(Outgoing::try_from).collect()
}

/// An event on its way to JetStream: the envelope's fields and the payload's JSON text, which
/// is spliced into the message body as is (never parsed into a tree and printed again).
struct Outgoing {
    head: EnvelopeHead,
    payload: String,
}

impl TryFrom<EventRow> for Outgoing {
    type Error = RelayError;
    fn try_from(row: EventRow) -> Result<Self, RelayError> {
        let (head, payload) = row.split().map_err(RelayError::Unreadable)?;
        Ok(Self { head, payload })
    }
}

impl Outgoing {
    /// The message body: the [`EventEnvelope`](waybill_schemas::EventEnvelope) JSON, with the payload text spliced in.
    fn body(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut body = Vec::with_capacity(self.payload.len() + 512);
        serde_json::to_writer(&mut body, &self.head)?;
        // The head is a non-empty object: drop its closing brace and append the payload member.
        body.pop();
        body.extend_from_slice(b",\"payload\":");
        body.extend_from_slice(self.payload.as_bytes());
        body.push(b'}');
        Ok(body)
    }
}

async fn record_outbox_depth(pool: &PgPool) {
    match retry::serializable(|| {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox").fetch_one(pool)
    })
    .await
    {
        Ok(depth) => metrics::gauge!("waybill_outbox_depth").set(depth as f64),
        Err(err) => tracing::debug!(error = %err, "outbox depth not measured"),
    }
}

/// Exponential backoff from 10 ms, doubling to `max`, with jitter.
struct Backoff {
    current: Duration,
    max: Duration,
}

impl Backoff {
    const START: Duration = Duration::from_millis(10);

    fn new(max: Duration) -> Self {
        Self {
            current: Self::START,
            max,
        }
    }
    fn reset(&mut self) {
        self.current = Self::START;
    }
    fn next(&mut self) -> Duration {
        let pause = jitter(self.current);
        self.current = (self.current * 2).min(self.max);
        pause
    }
}

/// `base` plus up to 50 % more, so competing relays do not retry in lockstep.
fn jitter(base: Duration) -> Duration {
    // A v7 UUID's low 62 bits are random: enough entropy without another dependency.
    let random = Uuid::now_v7().as_u128() as u64;
    let extra = u64::try_from(base.as_nanos() / 2).unwrap_or(u64::MAX);
    base + Duration::from_nanos(random.checked_rem(extra).unwrap_or(0))
}

#[cfg(test)]
mod tests;
