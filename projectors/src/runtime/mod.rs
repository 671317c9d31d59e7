//! The consumer runtime, written once for every view: a durable pull consumer per view
//! (explicit ack), batches of up to `batch` messages, idempotent and gap-filling apply, acks only
//! after the view write succeeded, dead-lettering after `max_deliver` attempts, and lag metrics.
//!
//! Per fetched batch: messages are grouped by stream, the views' current states are read with one
//! call, each stream's events are applied in version order (`version <= last` is a duplicate
//! and is dropped, `last + 1` is applied, anything further first pulls the missing versions from
//! the event store), the new states are written with one compare-and-set call, and only then
//! are the messages acknowledged. A view that cannot be written (store down) is retried in
//! process, keeping its messages in progress, so outages do not burn delivery attempts.

pub mod audit;
mod batch;
pub mod catch_up;
pub(crate) mod consumer;
mod dead_letter;
mod lag;
pub mod leases;
mod partitions;
pub mod replay;
pub mod self_heal;
mod stall;

pub use audit::{keep_converged, Audit};
pub use catch_up::{catch_up, fill_gap, CatchUpError};
pub use consumer::{dead_letter_stream_name, ensure_consumer, ensure_dead_letter_stream};
pub use dead_letter::{HEADER_DELIVERIES, HEADER_ERROR, HEADER_ORIGINAL_SUBJECT};
pub use partitions::Sharing;
pub use replay::{replay_log, switch_streams, ReplayError, ReplayReport, SwitchReport};
pub use self_heal::{keep_filled, SelfHeal, StoreMarker, StoreState};
pub use stall::{Phase, StallClock};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::{FutureExt, StreamExt};
use sqlx::PgPool;
use tokio::time::Instant;
use waybill_schemas::EventEnvelope;
use waybill_write_side::event_store::EventStore;

/// Where a projector reads from and how patiently.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// JetStream stream name (`ORDERS`).
    pub stream_name: String,
    /// Subject root; the consumer filters `<root>.v1.>` and dead letters go to
    /// `waybill.dlq.<root>.<view>`.
    pub subject_root: String,
    /// Redis key prefix (`waybill`).
    pub redis_prefix: String,
    /// A message whose processing fails on this delivery or a later one is dead-lettered
    /// (the server itself redelivers without limit: see [`consumer::ensure_consumer`]).
    pub max_deliver: i64,
    /// Messages per fetch.
    pub batch: usize,
    /// How long one pull request stays open at the server (the client re-pulls before it
    /// ends; idle heartbeats come every quarter of it).
    pub fetch_expiry: Duration,
    /// Redelivery after no ack for this long (a crashed projector's messages come back).
    pub ack_wait: Duration,
    /// A failed message is redelivered after `retry_delay × delivery count`.
    pub retry_delay: Duration,
    /// How often consumer lag is read from the server.
    pub lag_interval: Duration,
    /// Events per page when a rebuild reads the whole log.
    pub rebuild_page: i64,
    /// How long the first messages of a batch wait for more before the batch is processed (up
    /// to `batch` messages). Zero processes whatever has arrived at once; a view whose store
    /// prefers large writes (ClickHouse) sets a short linger.
    pub linger: Duration,
    /// A view store call (load, store, commit) without an answer for this long is treated as
    /// an outage and retried, never waited on forever.
    pub store_timeout: Duration,
    /// How often the stall watchdog reads the consumer's backlog.
    pub stall_poll: Duration,
    /// A view that applies nothing for this long while it has a backlog is logged at WARN.
    pub stall_warn: Duration,
    /// Replicas and retention of the dead-letter stream.
    pub dead_letter_limits: waybill_write_side::nats::StreamLimits,
    /// `Some`: the view consumes per partition, on the partitions this instance holds leases
    /// on, so several instances share it ([`Sharing`]). `None`: one consumer for all.
    pub sharing: Option<Sharing>,
    /// How a view that keeps its store filled ([`keep_filled`]) checks and refills it.
    pub self_heal: SelfHeal,
    /// How often the runtime calls [`View::between_batches`].
    pub between_batches: Duration,
    /// How a view compares itself with the log and fills what its store lost
    /// ([`keep_converged`]).
    pub audit: Audit,
}

impl ProjectorConfig {
    pub fn new(
        stream_name: impl Into<String>,
        subject_root: impl Into<String>,
        redis_prefix: impl Into<String>,
    ) -> Self {
        Self {
            stream_name: stream_name.into(),
            subject_root: subject_root.into(),
            redis_prefix: redis_prefix.into(),
            ..Self::default()
        }
    }
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            stream_name: waybill_schemas::subject::STREAM.to_owned(),
            subject_root: waybill_schemas::subject::DEFAULT_ROOT.to_owned(),
            redis_prefix: "waybill".to_owned(),
            max_deliver: 5,
            batch: 500,
            fetch_expiry: Duration::from_secs(5),
            ack_wait: Duration::from_secs(30),
            retry_delay: Duration::from_millis(500),
            lag_interval: Duration::from_secs(1),
            rebuild_page: 1_000,
            linger: Duration::ZERO,
            store_timeout: Duration::from_secs(30),
            stall_poll: Duration::from_millis(250),
            stall_warn: Duration::from_secs(1),
            dead_letter_limits: waybill_write_side::nats::StreamLimits::DEAD_LETTERS,
            sharing: None,
            self_heal: SelfHeal::default(),
            between_batches: Duration::from_secs(1),
            audit: Audit::default(),
        }
    }
}

/// A state that must be written only if its stored version is still `expected_version`.
#[derive(Debug, Clone)]
pub struct ViewWrite<S> {
    pub stream_id: String,
    pub expected_version: i64,
    pub state: S,
}

/// A read model the runtime feeds. `load` and `store` do the I/O for a whole batch at once;
/// `apply` is pure.
pub trait View: Send + Sync + 'static {
    /// One stream's state in this view.
    type State: Clone + Send + Sync + 'static;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Consumer durable name, dead-letter subject suffix and metric label.
    fn name(&self) -> &str;
    /// Whether this view cares about the stream; other streams' events are acked and skipped.
    fn handles(&self, stream_id: &str) -> bool;
    /// The last stream version applied to `state`.
    fn version_of(state: &Self::State) -> i64;
    /// Current states of these streams, in the same order (`None`: nothing applied yet).
    fn load(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Self::State>>, Self::Error>> + Send;
    /// The stored versions of these streams, in the same order (0: nothing applied yet): what
    /// the anti-entropy audit ([`audit`]) compares with the log. The default loads the states;
    /// a store that can answer the version alone overrides it.
    fn versions(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<Vec<i64>, Self::Error>> + Send {
        async move {
            Ok(self
                .load(stream_ids)
                .await?
                .iter()
                .map(|state| state.as_ref().map_or(0, Self::version_of))
                .collect())
        }
    }
    /// The state after `event`, which is exactly the next version of its stream. An error makes
    /// the event poison: it is retried and then dead-lettered.
    fn apply(
        &self,
        state: Option<&Self::State>,
        event: &EventEnvelope,
    ) -> Result<Self::State, Self::Error>;
    /// Compare-and-set writes; `true` per write that happened, `false` where the stored version
    /// was no longer the expected one. With a [`View::commit_interval`], the writes need only
    /// be visible to this view's `load`; [`View::commit`] makes them durable.
    fn store(
        &self,
        writes: Vec<ViewWrite<Self::State>>,
    ) -> impl Future<Output = Result<Vec<bool>, Self::Error>> + Send;

    /// Whether the view re-projects the orders a `CustomerErased` event names (views that
    /// keep personal fields of orders: tracking, search, analytics). A view that only appends
    /// (the feed) or sends (notifications) answers `false` and is scrubbed otherwise.
    fn scrubs_on_erasure(&self) -> bool {
        false
    }

    /// Before an erased customer's orders are re-projected: drops what the view keeps of these
    /// streams beyond its states (files), or states the re-projection could not overwrite.
    fn forget(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = stream_ids;
        async { Ok(()) }
    }

    /// After the re-projection: physically removes what it replaced, where the store keeps
    /// replaced data until it compacts (a search index's deleted documents).
    fn purge(&self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// `Some(interval)`: stored writes become durable only at [`View::commit`], which the
    /// runtime calls at most `interval` after the first write it has not committed (a refresh
    /// interval), acknowledging the messages after the commit that contains them. `None` (the
    /// default): `store` is durable when it returns and messages are acknowledged then.
    fn commit_interval(&self) -> Option<Duration> {
        None
    }

    /// Called before messages are acknowledged as duplicates (their events were in the stored
    /// state, nothing was written this round): makes sure what the store holds is durable.
    /// Needed where `store` can fail after its write reached the store (a Redis write that its
    /// replicas did not confirm: the redelivery finds the write on the master, and
    /// acknowledging it then would lose it with that master). The default does nothing.
    fn confirm_stored(&self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Makes every write stored since the last commit durable. An error means those writes are
    /// lost: their messages are handed back and applied again.
    fn commit(&self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Called between two batches, with nothing stored left uncommitted, at most every
    /// [`ProjectorConfig::between_batches`] (also while no messages come): a view whose store
    /// a rebuild replaces under the consumer's feet switches here (the embedded search index
    /// adopts a rebuilt generation, catching it up from `events`, `page` events per read). An
    /// error is logged and the call made again next time. The default does nothing.
    fn between_batches(
        &self,
        events: &EventStore,
        page: i64,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (events, page);
        async { Ok(()) }
    }
}

/// Why a projector could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("JetStream stream {stream} is not available: {detail}")]
    Stream { stream: String, detail: String },
    #[error("consumer {consumer} on {stream} cannot be created: {detail}")]
    Consumer {
        stream: String,
        consumer: String,
        detail: String,
    },
}

/// Runs `view`'s projector until `shutdown` completes. A batch in progress is finished first.
/// The stream must exist (the relay creates it); until it does the projector waits. With
/// [`ProjectorConfig::sharing`] the view runs one consumer per partition it holds a lease on.
pub async fn run_projector<V: View>(
    config: ProjectorConfig,
    pool: PgPool,
    js: jetstream::Context,
    view: V,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    match config.sharing.clone() {
        Some(sharing) => {
            partitions::run_partitioned(config, pool, js, view, sharing, shutdown).await
        }
        None => {
            let scope = Scope {
                durable: view.name().to_owned(),
                filter: waybill_schemas::subject::stream_subjects(&config.subject_root),
                label: view.name().to_owned(),
            };
            run_consumer(config, pool, js, view, scope, shutdown).await
        }
    }
}

/// What one consumer of a view reads: its durable name, its subject filter, and the `view`
/// label of its lag and stall metrics.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub durable: String,
    pub filter: String,
    pub label: String,
}

/// One durable consumer of `view` over `scope` until `shutdown`.
pub(crate) async fn run_consumer<V: View>(
    config: ProjectorConfig,
    pool: PgPool,
    js: jetstream::Context,
    view: V,
    scope: Scope,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let view_name = scope.label.clone();

    let consumer = loop {
        let ready = async {
            ensure_dead_letter_stream(
                &js,
                &config.subject_root,
                &config.stream_name,
                &config.dead_letter_limits,
            )
            .await?;
            ensure_consumer(&js, &config, &scope.durable, &scope.filter).await
        };
        match ready.await {
            Ok(consumer) => break consumer,
            Err(err) => tracing::warn!(view = %view_name, error = %err, "projector waiting"),
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };

    let lag = tokio::spawn(lag::report_lag(
        consumer.clone(),
        view_name.clone(),
        config.lag_interval,
    ));
    let clock = Arc::new(stall::StallClock::default());
    let watchdog = tokio::spawn(stall::watch(
        consumer.clone(),
        view_name.clone(),
        clock.clone(),
        config.stall_poll,
        config.stall_warn,
    ));
    let processor = batch::Processor {
        view,
        events: EventStore::new(pool),
        js: js.clone(),
        config: config.clone(),
        clock: clock.clone(),
        uncommitted: Default::default(),
        between_batches_due: std::sync::Mutex::new(Instant::now() + config.between_batches),
    };

    let mut failures: u32 = 0;
    'fetching: loop {
        // One continuous pull: the client keeps a request outstanding (re-pulling at half the
        // batch), idle heartbeats reveal a dead connection, and messages that arrive while a
        // batch is processed wait in the subscription instead of being dropped with it.
        clock.set_phase(Phase::Waiting);
        let messages = match consumer
            .stream()
            .max_messages_per_batch(config.batch)
            .expires(config.fetch_expiry)
            .heartbeat(config.fetch_expiry / 4)
            .messages()
            .await
        {
            Ok(messages) => messages,
            Err(err) => {
                failures += 1;
                clock.set_phase(Phase::FetchBackoff);
                tracing::warn!(view = %view_name, error = %err, "pull subscription failed");
                tokio::select! {
                    () = &mut shutdown => break 'fetching,
                    () = tokio::time::sleep(backoff(failures)) => continue 'fetching,
                }
            }
        };
        failures = 0;
        // Whatever has arrived is processed at once; the rest keeps coming meanwhile.
        let mut chunks = messages.ready_chunks(config.batch);
        loop {
            clock.set_phase(Phase::Waiting);
            let commit_due = processor.commit_due();
            let chunk = tokio::select! {
                () = &mut shutdown => {
                    hand_back_buffered(&view_name, &mut chunks).await;
                    break 'fetching;
                }
                () = sleep_until(commit_due) => {
                    processor.commit().await;
                    processor.between_batches_if_due().await;
                    continue;
                }
                () = tokio::time::sleep_until(processor.between_batches_due()), if commit_due.is_none() => {
                    processor.between_batches_if_due().await;
                    continue;
                }
                chunk = chunks.next() => chunk,
            };
            let Some(chunk) = chunk else {
                tracing::debug!(view = %view_name, "pull subscription ended; subscribing again");
                break;
            };
            let mut received = Vec::with_capacity(chunk.len());
            keep_messages(&view_name, chunk, &mut received);
            if !config.linger.is_zero() {
                // Gather up to a full batch, for at most `linger`.
                let deadline = tokio::time::Instant::now() + config.linger;
                while received.len() < config.batch {
                    match tokio::time::timeout_at(deadline, chunks.next()).await {
                        Ok(Some(more)) => keep_messages(&view_name, more, &mut received),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            if !received.is_empty() && processor.process(received, &mut shutdown).await {
                break 'fetching;
            }
            if processor
                .commit_due()
                .is_some_and(|due| due <= Instant::now())
            {
                processor.commit().await;
            }
            processor.between_batches_if_due().await;
        }
    }
    // What was stored is committed (or handed back) before the projector stops.
    processor.commit().await;
    lag.abort();
    watchdog.abort();
    tracing::info!(view = %view_name, "projector stopped");
    Ok(())
}

/// Sleeps until `due`, or forever without one.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Naks (without delay) the messages already delivered into the subscription but not yet
/// taken, so the server hands them out again at once instead of after `ack_wait`.
async fn hand_back_buffered<S, E>(view_name: &str, chunks: &mut S)
where
    S: futures::Stream<Item = Vec<Result<jetstream::Message, E>>> + Unpin,
{
    let mut handed_back = 0;
    while let Some(Some(chunk)) = chunks.next().now_or_never() {
        for message in chunk.into_iter().flatten() {
            if message.ack_with(AckKind::Nak(None)).await.is_ok() {
                handed_back += 1;
            }
        }
    }
    if handed_back > 0 {
        tracing::info!(
            view = %view_name,
            handed_back,
            "unprocessed messages handed back for redelivery"
        );
    }
}

/// Moves the messages of a pulled chunk into `received`, logging subscription errors (missed
/// heartbeats while NATS reconnects, a pull the server refused): the subscription recovers by
/// itself, or ends and is subscribed afresh.
fn keep_messages<E: std::fmt::Display>(
    view_name: &str,
    chunk: Vec<Result<jetstream::Message, E>>,
    received: &mut Vec<jetstream::Message>,
) {
    for item in chunk {
        match item {
            Ok(message) => received.push(message),
            Err(err) => tracing::info!(view = %view_name, error = %err, "pull subscription error"),
        }
    }
}

/// 100 ms doubling to 1 s: a store that comes back is noticed within a second.
pub(crate) fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(4);
    Duration::from_millis(100 * (1u64 << exp)).min(Duration::from_secs(1))
}
