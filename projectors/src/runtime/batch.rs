//! One fetched batch through one view: group by stream, load, apply in version order with gap
//! filling, compare-and-set write, then ack (or retry / dead-letter what failed).

use std::collections::BTreeMap;
use std::future::Future;

use async_nats::jetstream::{self, AckKind};
use chrono::{DateTime, Utc};
use waybill_schemas::EventEnvelope;
use waybill_write_side::event_store::{EventStore, EventStoreError};
use waybill_write_side::trace_context::{set_parent_from_traceparent, TRACEPARENT};

use super::stall::{Phase, StallClock};
use super::{backoff, catch_up, dead_letter, ProjectorConfig, View, ViewWrite};

/// Compare-and-set rounds before a stream's messages are handed back for redelivery.
const CAS_ROUNDS: usize = 3;

pub(crate) struct Processor<V: View> {
    pub view: V,
    pub events: EventStore,
    pub js: jetstream::Context,
    pub config: ProjectorConfig,
    pub clock: std::sync::Arc<StallClock>,
    /// Messages whose writes wait for the view's next commit (views with a commit interval).
    pub uncommitted: std::sync::Mutex<Uncommitted>,
    /// When [`View::between_batches`] is called next.
    pub between_batches_due: std::sync::Mutex<tokio::time::Instant>,
}

/// Messages settled as applied whose writes no commit has made durable yet.
#[derive(Default)]
pub(crate) struct Uncommitted {
    messages: Vec<jetstream::Message>,
    /// When the first of them was stored.
    since: Option<tokio::time::Instant>,
}

/// What happens to one message once the batch is settled.
#[derive(Debug, Clone)]
enum Fate {
    /// Applied (and written) or a duplicate: acknowledge.
    Ack,
    /// Could not be applied: redeliver later, or dead-letter after the last attempt.
    Fail(String),
}

/// Failures of the view's store or the event store: retried in process, never poison.
#[derive(Debug, thiserror::Error)]
enum Outage<E: std::error::Error> {
    #[error("view store: {0}")]
    View(E),
    #[error("event store: {0}")]
    Events(#[from] EventStoreError),
    #[error("view store gave no answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// A view store call that fails after `limit` instead of hanging the view.
async fn guarded<T, E: std::error::Error>(
    limit: std::time::Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, Outage<E>> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(Outage::View),
        Err(_) => Err(Outage::Timeout(limit)),
    }
}

#[derive(Default)]
struct Counts {
    applied: u64,
    duplicates: u64,
    gaps_filled: u64,
    newest_recorded: Option<DateTime<Utc>>,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.applied += other.applied;
        self.duplicates += other.duplicates;
        self.gaps_filled += other.gaps_filled;
        self.newest_recorded = self.newest_recorded.max(other.newest_recorded);
    }
}

/// One stream's outcome within a round.
struct StreamPlan<S> {
    write: Option<ViewWrite<S>>,
    fates: Vec<(usize, Fate)>,
    counts: Counts,
}

/// The event whose orders every view holding personal fields re-projects.
const ERASURE: &str = "CustomerErased";

impl<V: View> Processor<V> {
    /// Settles every message of the batch. Returns `true` if `shutdown` fired while the view or
    /// event store was unavailable (the unsettled messages are then handed back at once).
    pub async fn process<S>(&self, messages: Vec<jetstream::Message>, shutdown: &mut S) -> bool
    where
        S: Future<Output = ()> + Unpin,
    {
        self.clock.hold(messages.len());
        self.clock.set_phase(Phase::Processing);
        let stopped = self.settle(&messages, shutdown).await;
        self.clock.release(messages.len());
        stopped
    }

    /// Re-projects the orders a `CustomerErased` names, when this view keeps personal fields:
    /// read from the log now, they hold only the erased stand-ins.
    async fn scrub_erased(&self, envelope: &EventEnvelope) -> Fate {
        if !self.view.scrubs_on_erasure() {
            return Fate::Ack;
        }
        let erased = match envelope.decode() {
            Ok(waybill_schemas::OrderEvent::CustomerErased(erased)) => erased,
            Ok(_) | Err(_) => return Fate::Fail("not a CustomerErased payload".into()),
        };
        let streams: Vec<String> = erased.orders.iter().map(|o| o.stream_id()).collect();
        if let Err(err) = self.view.forget(&streams).await {
            return Fate::Fail(format!("forgetting erased orders: {err}"));
        }
        let report = match super::replay::refold_streams(&self.events, &self.view, &streams).await {
            Ok(report) => report,
            Err(err) => return Fate::Fail(format!("re-projecting erased orders: {err}")),
        };
        if let Err(err) = self.view.purge().await {
            return Fate::Fail(format!("purging erased orders: {err}"));
        }
        tracing::info!(
            view = self.view.name(),
            orders = streams.len(),
            rewritten = report.switched,
            "erased customer's orders re-projected"
        );
        Fate::Ack
    }

    /// Opens the personal fields of the batch's events (one key-store read); when they cannot
    /// be opened, those messages fail and come back later (`true` then).
    async fn open_personal_fields(
        &self,
        envelopes: &mut [Option<EventEnvelope>],
        fates: &mut [Option<Fate>],
    ) -> bool {
        let personal: Vec<usize> = (0..envelopes.len())
            .filter(|&i| {
                fates[i].is_none()
                    && envelopes[i].as_ref().is_some_and(|e| {
                        waybill_write_side::pii::fields::is_personal(&e.event_type)
                    })
            })
            .collect();
        if personal.is_empty() {
            return false;
        }
        let mut opened: Vec<EventEnvelope> = personal
            .iter()
            .filter_map(|&i| envelopes[i].take())
            .collect();
        let result = waybill_write_side::pii::open_envelopes(self.events.pool(), &mut opened).await;
        for (&i, envelope) in personal.iter().zip(opened) {
            if let Err(err) = &result {
                fates[i] = Some(Fate::Fail(format!("personal fields do not open: {err}")));
            }
            envelopes[i] = Some(envelope);
        }
        result.is_err()
    }

    async fn settle<S>(&self, messages: &[jetstream::Message], shutdown: &mut S) -> bool
    where
        S: Future<Output = ()> + Unpin,
    {
        let mut fates: Vec<Option<Fate>> = vec![None; messages.len()];
        let mut envelopes: Vec<Option<EventEnvelope>> = Vec::with_capacity(messages.len());
        let mut by_stream: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, message) in messages.iter().enumerate() {
            match serde_json::from_slice::<EventEnvelope>(&message.payload) {
                Ok(envelope) if envelope.event_type == ERASURE => {
                    fates[i] = Some(self.scrub_erased(&envelope).await);
                    envelopes.push(Some(envelope));
                }
                Ok(envelope) => {
                    if self.view.handles(&envelope.stream_id) {
                        by_stream
                            .entry(envelope.stream_id.clone())
                            .or_default()
                            .push(i);
                    } else {
                        fates[i] = Some(Fate::Ack);
                    }
                    envelopes.push(Some(envelope));
                }
                Err(err) => {
                    fates[i] = Some(Fate::Fail(format!("not an event envelope: {err}")));
                    envelopes.push(None);
                }
            }
        }
        if self.open_personal_fields(&mut envelopes, &mut fates).await {
            for indexes in by_stream.values_mut() {
                indexes.retain(|&i| fates[i].is_none());
            }
            by_stream.retain(|_, indexes| !indexes.is_empty());
        }
        for indexes in by_stream.values_mut() {
            indexes.sort_by_key(|&i| envelopes[i].as_ref().map_or(0, |e| e.stream_version));
        }

        let mut totals = Counts::default();
        let mut pending: Vec<String> = by_stream.keys().cloned().collect();
        let mut rounds = 0;
        let mut outages: u32 = 0;
        while !pending.is_empty() {
            if rounds == CAS_ROUNDS {
                for stream in &pending {
                    for &i in &by_stream[stream] {
                        fates[i] = Some(Fate::Fail(format!("{stream} kept changing under us")));
                    }
                }
                metrics::counter!("waybill_projector_conflicts_total", "view" => self.view.name().to_owned())
                    .increment(pending.len() as u64);
                break;
            }
            match self.round(&pending, &by_stream, &envelopes, messages).await {
                Ok((settled, conflicted, counts)) => {
                    for (i, fate) in settled {
                        fates[i] = Some(fate);
                    }
                    totals.add(&counts);
                    pending = conflicted;
                    rounds += 1;
                    outages = 0;
                }
                Err(err) => {
                    outages += 1;
                    self.clock.set_phase(Phase::StoreBackoff);
                    tracing::warn!(view = self.view.name(), error = %err, "view update postponed");
                    for stream in &pending {
                        for &i in &by_stream[stream] {
                            // Keeps the server from redelivering while we wait.
                            let _ = messages[i].ack_with(AckKind::Progress).await;
                        }
                    }
                    tokio::select! {
                        () = &mut *shutdown => {
                            self.hand_back(messages, &fates).await;
                            return true;
                        }
                        () = tokio::time::sleep(backoff(outages)) => {}
                    }
                    self.clock.set_phase(Phase::Processing);
                }
            }
        }

        let deferred = self.view.commit_interval().is_some();
        for (message, fate) in messages.iter().zip(fates) {
            match fate.unwrap_or(Fate::Fail("not settled".to_owned())) {
                // Acknowledged after the commit that makes its write durable.
                Fate::Ack if deferred => self.defer(message.clone()),
                Fate::Ack => {
                    if let Err(err) = message.ack().await {
                        tracing::warn!(view = self.view.name(), error = %err, "ack failed");
                    }
                }
                Fate::Fail(reason) => self.fail(message, &reason).await,
            }
        }
        self.record(&totals);
        self.clock.progressed();
        false
    }

    fn defer(&self, message: jetstream::Message) {
        let mut uncommitted = self.uncommitted.lock().unwrap_or_else(|e| e.into_inner());
        uncommitted
            .since
            .get_or_insert_with(tokio::time::Instant::now);
        uncommitted.messages.push(message);
    }

    /// When the view's next commit is due: `commit_interval` after the first uncommitted
    /// write, or now when the uncommitted messages reach half the consumer's ack-pending limit.
    pub fn commit_due(&self) -> Option<tokio::time::Instant> {
        let interval = self.view.commit_interval()?;
        let uncommitted = self.uncommitted.lock().unwrap_or_else(|e| e.into_inner());
        let since = uncommitted.since?;
        if uncommitted.messages.len() >= self.config.batch.saturating_mul(2) {
            return Some(since);
        }
        Some(since + interval)
    }

    /// Commits the view and acknowledges the messages the commit made durable; if the commit
    /// fails, hands them back at once (their writes are lost and are applied again).
    pub async fn commit(&self) {
        let messages = {
            let mut uncommitted = self.uncommitted.lock().unwrap_or_else(|e| e.into_inner());
            uncommitted.since = None;
            std::mem::take(&mut uncommitted.messages)
        };
        if messages.is_empty() {
            return;
        }
        self.clock.set_phase(Phase::Committing);
        let started = std::time::Instant::now();
        let committed = guarded(self.config.store_timeout, self.view.commit()).await;
        metrics::histogram!("waybill_projector_commit_seconds", "view" => self.view.name().to_owned())
            .record(started.elapsed().as_secs_f64());
        let kind = match committed {
            Ok(()) => AckKind::Ack,
            Err(err) => {
                tracing::warn!(
                    view = self.view.name(),
                    error = %err,
                    messages = messages.len(),
                    "view commit failed; its messages are handed back"
                );
                AckKind::Nak(None)
            }
        };
        for message in &messages {
            if let Err(err) = message.ack_with(kind).await {
                tracing::warn!(view = self.view.name(), error = %err, "ack failed");
            }
        }
        self.clock.progressed();
    }

    /// When [`View::between_batches`] is due next.
    pub fn between_batches_due(&self) -> tokio::time::Instant {
        *self
            .between_batches_due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Calls [`View::between_batches`] if it is due and nothing stored waits for a commit.
    pub async fn between_batches_if_due(&self) {
        let now = tokio::time::Instant::now();
        if self.between_batches_due() > now || self.commit_due().is_some() {
            return;
        }
        *self
            .between_batches_due
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = now + self.config.between_batches;
        self.clock.set_phase(Phase::Switching);
        let outcome = self
            .view
            .between_batches(&self.events, self.config.rebuild_page)
            .await;
        if let Err(error) = outcome {
            tracing::warn!(view = self.view.name(), %error, "view work between batches failed; trying again later");
        }
        self.clock.set_phase(Phase::Waiting);
    }

    /// Settles what was decided and naks the rest without delay: the server hands those out
    /// again at once (to this projector after a restart, or to another instance) instead of
    /// after `ack_wait`.
    async fn hand_back(&self, messages: &[jetstream::Message], fates: &[Option<Fate>]) {
        for (message, fate) in messages.iter().zip(fates) {
            let kind = match fate {
                Some(Fate::Ack) => AckKind::Ack,
                _ => AckKind::Nak(None),
            };
            if let Err(err) = message.ack_with(kind).await {
                tracing::warn!(view = self.view.name(), error = %err, "hand back failed");
            }
        }
    }

    /// Loads, plans and writes the pending streams once. Returns the settled messages, the
    /// streams whose compare-and-set lost (to plan again), and what was done.
    #[allow(clippy::type_complexity)]
    async fn round(
        &self,
        pending: &[String],
        by_stream: &BTreeMap<String, Vec<usize>>,
        envelopes: &[Option<EventEnvelope>],
        messages: &[jetstream::Message],
    ) -> Result<(Vec<(usize, Fate)>, Vec<String>, Counts), Outage<V::Error>> {
        let states = guarded(self.config.store_timeout, self.view.load(pending)).await?;
        let mut plans = Vec::with_capacity(pending.len());
        for (stream_id, state) in pending.iter().zip(states) {
            plans.push(
                self.plan_stream(stream_id, state, &by_stream[stream_id], envelopes, messages)
                    .await?,
            );
        }

        let mut settled = Vec::new();
        let mut counts = Counts::default();
        let mut writes = Vec::new();
        let mut written_plans = Vec::new();
        for plan in plans {
            match plan.write {
                Some(write) => {
                    writes.push(write);
                    written_plans.push((plan.fates, plan.counts));
                }
                None => {
                    counts.add(&plan.counts);
                    settled.extend(plan.fates);
                }
            }
        }
        let stream_ids: Vec<String> = writes.iter().map(|w| w.stream_id.clone()).collect();
        let results = if writes.is_empty() {
            if counts.duplicates > 0 {
                guarded(self.config.store_timeout, self.view.confirm_stored()).await?;
            }
            Vec::new()
        } else {
            guarded(self.config.store_timeout, self.view.store(writes)).await?
        };
        let mut conflicted = Vec::new();
        for ((stream_id, (fates, plan_counts)), written) in
            stream_ids.into_iter().zip(written_plans).zip(results)
        {
            if written {
                counts.add(&plan_counts);
                settled.extend(fates);
            } else {
                conflicted.push(stream_id);
            }
        }
        Ok((settled, conflicted, counts))
    }

    /// Applies one stream's messages, in version order, to its current state.
    async fn plan_stream(
        &self,
        stream_id: &str,
        state: Option<V::State>,
        indexes: &[usize],
        envelopes: &[Option<EventEnvelope>],
        messages: &[jetstream::Message],
    ) -> Result<StreamPlan<V::State>, Outage<V::Error>> {
        let original = state.as_ref().map_or(0, V::version_of);
        let mut state = state;
        let mut last = original;
        let mut fates = Vec::with_capacity(indexes.len());
        let mut counts = Counts::default();
        let mut blocked: Option<String> = None;

        for &i in indexes {
            let Some(event) = envelopes[i].as_ref() else {
                continue;
            };
            if let Some(reason) = &blocked {
                fates.push((i, Fate::Fail(format!("behind a failed event: {reason}"))));
                continue;
            }
            let version = event.stream_version;
            if version <= last {
                counts.duplicates += 1;
                fates.push((i, Fate::Ack));
                continue;
            }
            if version > last + 1 {
                match self
                    .fill_gap(stream_id, last, version, state.as_ref())
                    .await?
                {
                    Ok((filled, filled_count)) => {
                        state = Some(filled);
                        last = version - 1;
                        counts.gaps_filled += filled_count;
                    }
                    Err(reason) => {
                        fates.push((i, Fate::Fail(reason.clone())));
                        blocked = Some(reason);
                        continue;
                    }
                }
            }
            let traceparent = messages[i]
                .headers
                .as_ref()
                .and_then(|h| h.get(TRACEPARENT))
                .map(|v| v.as_str());
            match self.apply_one(state.as_ref(), event, traceparent) {
                Ok(next) => {
                    state = Some(next);
                    last = version;
                    counts.applied += 1;
                    counts.newest_recorded = counts.newest_recorded.max(Some(event.recorded_at));
                    fates.push((i, Fate::Ack));
                }
                Err(err) => {
                    let reason = err.to_string();
                    fates.push((i, Fate::Fail(reason.clone())));
                    blocked = Some(reason);
                }
            }
        }

        let write = match state {
            Some(state) if last > original => Some(ViewWrite {
                stream_id: stream_id.to_owned(),
                expected_version: original,
                state,
            }),
            _ => None,
        };
        Ok(StreamPlan {
            write,
            fates,
            counts,
        })
    }

    /// Reads versions `last + 1 .. version - 1` from the event store and applies them. The inner
    /// `Err` is a reason to retry the message later (the events are missing or do not apply).
    async fn fill_gap(
        &self,
        stream_id: &str,
        last: i64,
        version: i64,
        state: Option<&V::State>,
    ) -> Result<Result<(V::State, u64), String>, Outage<V::Error>> {
        let filled = catch_up::fill_gap(&self.events, stream_id, state, last, version, |s, e| {
            self.apply_one(s, e, e.traceparent.as_deref())
        })
        .await?;
        Ok(match filled {
            Ok((Some(filled), count)) => Ok((filled, count)),
            Ok((None, _)) => Err(format!("{stream_id}: nothing to fill")),
            Err(err) => Err(err.to_string()),
        })
    }

    /// Applies one event inside its `projector.apply` span, continuing the event's trace.
    fn apply_one(
        &self,
        state: Option<&V::State>,
        event: &EventEnvelope,
        traceparent: Option<&str>,
    ) -> Result<V::State, V::Error> {
        let span = tracing::info_span!(
            "projector.apply",
            view = self.view.name(),
            order_id = %event.stream_id,
            event_type = %event.event_type,
            stream_version = event.stream_version,
        );
        if let Some(parent) = traceparent {
            set_parent_from_traceparent(&span, parent);
        }
        let _entered = span.enter();
        self.view.apply(state, event)
    }

    /// Redelivers later, or after the last attempt dead-letters and terminates the message.
    async fn fail(&self, message: &jetstream::Message, reason: &str) {
        let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
        if delivered < self.config.max_deliver {
            tracing::debug!(view = self.view.name(), delivered, reason, "will retry");
            metrics::counter!("waybill_projector_retries_total", "view" => self.view.name().to_owned())
                .increment(1);
            let factor = u32::try_from(delivered.max(1)).unwrap_or(u32::MAX);
            let delay = self.config.retry_delay.saturating_mul(factor);
            if let Err(err) = message.ack_with(AckKind::Nak(Some(delay))).await {
                tracing::warn!(view = self.view.name(), error = %err, "nak failed");
            }
            return;
        }
        let subject = waybill_schemas::subject::dead_letter_subject(
            &self.config.subject_root,
            self.view.name(),
        );
        match dead_letter::publish(&self.js, &subject, message, reason, delivered).await {
            Ok(()) => {
                tracing::warn!(
                    view = self.view.name(),
                    subject,
                    reason,
                    "event dead-lettered"
                );
                metrics::counter!("waybill_projector_dead_lettered_total", "view" => self.view.name().to_owned())
                    .increment(1);
            }
            Err(err) => tracing::error!(
                view = self.view.name(),
                error = %err,
                reason,
                "event could not be dead-lettered; it stays in the event log for a rebuild"
            ),
        }
        if let Err(err) = message.ack_with(AckKind::Term).await {
            tracing::warn!(view = self.view.name(), error = %err, "term failed");
        }
    }

    fn record(&self, counts: &Counts) {
        let view = self.view.name().to_owned();
        metrics::counter!("waybill_projector_applied_total", "view" => view.clone())
            .increment(counts.applied);
        metrics::counter!("waybill_projector_duplicates_total", "view" => view.clone())
            .increment(counts.duplicates);
        metrics::counter!("waybill_projector_gaps_filled_total", "view" => view.clone())
            .increment(counts.gaps_filled);
        if let Some(recorded) = counts.newest_recorded {
            let lag = (Utc::now() - recorded).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::gauge!("waybill_projector_lag_seconds", "view" => view).set(lag);
        }
    }
}
