//! The desk's detector: every `tick` it turns the watches, the dead-letter stream and the
//! per-channel signal counts into desk entries, and resolves entries whose condition went away.
//! Safe to run in several processes: an entry is opened once per dedupe key and resolved once
//! (its stream at expected version 0).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::events::desk::desk_stream_id;
use waybill_schemas::events::DeskEntryResolved;
use waybill_schemas::{Actor, EventEnvelope, OrderEvent, OrderId};
use waybill_write_side::desk::{entries, Action, Entry, EntryKind, NewEntry};
use waybill_write_side::event_store::{new_events, EventMeta, EventStore, EventStoreError};

use super::anomaly::{detect, AnomalyPolicy};
use super::conditions::{conditions, DeadlinePolicy};
use super::learning::{LearningPolicy, Limits};
use super::watch::SignalKind;
use super::{DeskError, DeskStore};
use crate::runtime::{
    dead_letter_stream_name, HEADER_DELIVERIES, HEADER_ERROR, HEADER_ORIGINAL_SUBJECT,
};

/// The actor of automatic resolutions.
pub const DESK_ACTOR: &str = "desk";
/// Kinds judged from order watches.
const ORDER_KINDS: &[EntryKind] = &[
    EntryKind::StageOverdue,
    EntryKind::CarrierException,
    EntryKind::FailedHandoff,
    EntryKind::AuthorizationExpiring,
    EntryKind::ReservationExpiring,
    EntryKind::ReviewDeadline,
];
/// Dead letters read per tick at most.
const DEAD_LETTERS_PER_TICK: u64 = 1_000;

/// How the detector works.
#[derive(Debug, Clone)]
pub struct DeskConfig {
    /// How often it looks.
    pub tick: Duration,
    pub learning: LearningPolicy,
    pub deadlines: DeadlinePolicy,
    pub anomaly: AnomalyPolicy,
    /// The event stream; its dead letters are in `<stream>_DLQ`.
    pub stream_name: String,
    /// How far back stage durations are learned from.
    pub history: Duration,
}

impl Default for DeskConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
            learning: LearningPolicy::default(),
            deadlines: DeadlinePolicy::default(),
            anomaly: AnomalyPolicy::default(),
            stream_name: waybill_schemas::subject::STREAM.to_owned(),
            history: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    pub opened: usize,
    pub cleared: usize,
}

/// The detector's state between passes.
pub struct Detector {
    config: DeskConfig,
    store: DeskStore,
    events: EventStore,
    js: jetstream::Context,
    dead_letter_cursor: u64,
    passes: u64,
}

impl Detector {
    pub fn new(config: DeskConfig, pool: PgPool, js: jetstream::Context) -> Self {
        Self {
            config,
            store: DeskStore::new(pool.clone()),
            events: EventStore::new(pool),
            js,
            dead_letter_cursor: 0,
            passes: 0,
        }
    }

    /// One look at everything.
    pub async fn pass(&mut self, now: DateTime<Utc>) -> Result<Pass, DeskError> {
        let mut pass = Pass::default();
        // Open entries first, then the watches: a condition of an entry read here is in the
        // newer snapshot of watches if it still holds, so nothing is cleared by mistake.
        let open = entries::open_of_kinds(self.store.pool(), ORDER_KINDS).await?;
        let history = chrono::Duration::from_std(self.config.history).unwrap_or_default();
        let limits = Limits::learn(
            self.store
                .recent_samples(now - history, self.config.learning.recent)
                .await?,
            self.config.learning.clone(),
        );
        let watches = self.store.active_watches().await?;
        let mut present: HashSet<String> = HashSet::new();
        for watch in &watches {
            for condition in conditions(watch, &limits, &self.config.deadlines, now) {
                if condition.due {
                    let entry = NewEntry {
                        dedupe_key: condition.key.clone(),
                        kind: condition.kind,
                        order_id: Uuid::parse_str(&watch.order_id).ok(),
                        channel: Some(watch.channel.clone()),
                        reason: condition.reason,
                        suggested_action: condition.suggested,
                        details: condition.details,
                    };
                    if self.open(&entry, now).await? {
                        pass.opened += 1;
                    }
                }
                present.insert(condition.key);
            }
        }
        for entry in open.iter().filter(|e| !present.contains(&e.key)) {
            let why = "the condition went away: the order moved on, or the problem was answered";
            if self.clear(entry, why, now).await? {
                pass.cleared += 1;
            }
        }
        let (opened, cleared) = self.dead_letters(now).await?;
        pass.opened += opened;
        pass.cleared += cleared;
        pass.opened += self.anomalies(now).await?;
        self.gauges().await?;
        self.passes += 1;
        if self.passes % 720 == 1 {
            let signals_kept =
                self.config.anomaly.window * (self.config.anomaly.baseline_windows as u32 + 2);
            self.store
                .prune(
                    now - history,
                    now - chrono::Duration::from_std(signals_kept).unwrap_or_default(),
                )
                .await?;
        }
        Ok(pass)
    }

    async fn open(&self, entry: &NewEntry, now: DateTime<Utc>) -> Result<bool, DeskError> {
        let opened = entries::open(self.store.pool(), entry, now)
            .await?
            .is_some();
        if opened {
            metrics::counter!("waybill_desk_entries_opened_total", "kind" => entry.kind.as_str())
                .increment(1);
            tracing::info!(
                kind = entry.kind.as_str(),
                key = %entry.dedupe_key,
                reason = %entry.reason,
                "desk entry opened"
            );
        }
        Ok(opened)
    }

    /// Resolves `entry` as cleared, by the desk. `false` when it was resolved meanwhile.
    async fn clear(&self, entry: &Entry, why: &str, now: DateTime<Utc>) -> Result<bool, DeskError> {
        let event = DeskEntryResolved {
            entry_id: entry.entry_id,
            kind: entry.kind.as_str().to_owned(),
            order_id: entry.order_id.map(OrderId::from_uuid),
            action: Action::Cleared.as_str().to_owned(),
            note: Some(why.to_owned()),
            automatic: true,
            resolved_at: now,
        };
        let meta = EventMeta {
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            traceparent: None,
            actor: Actor::system(DESK_ACTOR),
            channel: None,
        };
        match self
            .events
            .append(
                &desk_stream_id(entry.entry_id),
                0,
                new_events(vec![OrderEvent::DeskEntryResolved(event)], now),
                &meta,
            )
            .await
        {
            Ok(_) => {
                tracing::info!(entry_id = %entry.entry_id, key = %entry.key, "desk entry cleared");
                Ok(true)
            }
            Err(EventStoreError::Conflict { .. }) => Ok(false),
            Err(EventStoreError::Database(e)) => Err(DeskError::Database(e)),
            Err(other) => {
                tracing::warn!(entry_id = %entry.entry_id, error = %other, "desk entry not cleared");
                Ok(false)
            }
        }
    }

    /// New dead letters become entries; entries of dead letters no longer in the stream are
    /// cleared. Returns (opened, cleared).
    async fn dead_letters(&mut self, now: DateTime<Utc>) -> Result<(usize, usize), DeskError> {
        let name = dead_letter_stream_name(&self.config.stream_name);
        let Ok(stream) = self.js.get_stream(&name).await else {
            // No projector has created it yet: nothing can be in it.
            return Ok((0, 0));
        };
        let Ok(info) = stream.get_info().await else {
            return Ok((0, 0));
        };
        let first = info.state.first_sequence;
        let last = info.state.last_sequence;
        metrics::gauge!("waybill_desk_dead_letters", "stream" => name.clone())
            .set(info.state.messages as f64);
        let mut opened = 0;
        let from = self.dead_letter_cursor.saturating_add(1).max(first);
        let to = last.min(from.saturating_add(DEAD_LETTERS_PER_TICK - 1));
        if info.state.messages > 0 {
            for sequence in from..=to {
                let Ok(message) = stream.get_raw_message(sequence).await else {
                    continue; // deleted meanwhile
                };
                let header = |name: &str| {
                    message
                        .headers
                        .get(name)
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default()
                };
                let envelope: Option<EventEnvelope> = serde_json::from_slice(&message.payload).ok();
                let view = message
                    .subject
                    .as_str()
                    .rsplit('.')
                    .next()
                    .unwrap_or("?")
                    .to_owned();
                let what = envelope.as_ref().map_or_else(
                    || "a message that is not an event".to_owned(),
                    |e| format!("{} v{} of {}", e.event_type, e.stream_version, e.stream_id),
                );
                let entry = NewEntry {
                    dedupe_key: format!("dead_letter:{name}:{sequence}"),
                    kind: EntryKind::DeadLetter,
                    order_id: envelope
                        .as_ref()
                        .and_then(|e| OrderId::from_stream_id(&e.stream_id))
                        .map(|id| id.as_uuid()),
                    channel: envelope
                        .as_ref()
                        .and_then(|e| e.channel)
                        .map(|c| c.as_str().to_owned()),
                    reason: format!(
                        "the {view} view gave up on {what} after {} deliveries: {}",
                        header(HEADER_DELIVERIES),
                        header(HEADER_ERROR)
                    ),
                    suggested_action: EntryKind::DeadLetter.suggested(),
                    details: json!({
                        "dead_letter_stream": name,
                        "sequence": sequence,
                        "view": view,
                        "original_subject": header(HEADER_ORIGINAL_SUBJECT),
                        "deliveries": header(HEADER_DELIVERIES),
                        "error": header(HEADER_ERROR),
                    }),
                };
                if self.open(&entry, now).await? {
                    opened += 1;
                }
            }
            self.dead_letter_cursor = to;
        }
        let mut cleared = 0;
        for entry in entries::open_of_kinds(self.store.pool(), &[EntryKind::DeadLetter]).await? {
            let gone = entry.details["dead_letter_stream"] == name.as_str()
                && entry.details["sequence"]
                    .as_u64()
                    .is_some_and(|s| s < first || info.state.messages == 0);
            if gone
                && self
                    .clear(
                        &entry,
                        "the message is no longer in the dead-letter stream",
                        now,
                    )
                    .await?
            {
                cleared += 1;
            }
        }
        Ok((opened, cleared))
    }

    /// Judges every channel's signals; returns the entries opened.
    async fn anomalies(&self, now: DateTime<Utc>) -> Result<usize, DeskError> {
        let policy = &self.config.anomaly;
        let window = policy.window.as_secs().max(1) as i64;
        let current = now.timestamp().div_euclid(window);
        let oldest = current - policy.baseline_windows as i64 - 1;
        let since = DateTime::<Utc>::from_timestamp(oldest * window, 0).unwrap_or(now);
        let mut series: BTreeMap<(String, SignalKind), Vec<u64>> = BTreeMap::new();
        for (channel, signal, bucket, count) in self.store.signal_counts(window, since).await? {
            let Some(at) = usize::try_from(bucket - oldest)
                .ok()
                .filter(|i| *i as i64 <= current - oldest)
            else {
                continue;
            };
            series
                .entry((channel, signal))
                .or_insert_with(|| vec![0; (current - oldest + 1) as usize])[at] = count;
        }
        let mut opened = 0;
        for ((channel, signal), counts) in &series {
            let found = detect(*signal, counts, policy);
            let kind = super::anomaly::AnomalyKind::of(*signal);
            metrics::gauge!(
                "waybill_desk_anomaly",
                "channel" => channel.clone(),
                "anomaly" => kind.as_str()
            )
            .set(if found.is_some() { 1.0 } else { 0.0 });
            let Some(anomaly) = found else { continue };
            let bucket = current - anomaly.windows_ago as i64;
            let entry = NewEntry {
                dedupe_key: format!("anomaly:{channel}:{}:{bucket}", kind.as_str()),
                kind: EntryKind::Anomaly,
                order_id: None,
                channel: Some(channel.clone()),
                reason: anomaly.reason(channel, policy.window),
                suggested_action: EntryKind::Anomaly.suggested(),
                details: json!({
                    "anomaly": kind.as_str(),
                    "count": anomaly.count,
                    "baseline": anomaly.baseline,
                    "window_secs": window,
                    "window_start": DateTime::<Utc>::from_timestamp(bucket * window, 0),
                    "counts": counts,
                }),
            };
            if self.open(&entry, now).await? {
                opened += 1;
                metrics::counter!(
                    "waybill_desk_alerts_total",
                    "channel" => channel.clone(),
                    "anomaly" => kind.as_str()
                )
                .increment(1);
                tracing::warn!(channel = %channel, anomaly = kind.as_str(), reason = %entry.reason, "anomaly");
            }
        }
        Ok(opened)
    }

    async fn gauges(&self) -> Result<(), DeskError> {
        let counts = entries::open_counts(self.store.pool()).await?;
        for kind in EntryKind::ALL {
            let open = counts
                .iter()
                .find(|(k, _)| k == kind.as_str())
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("waybill_desk_open_entries", "kind" => kind.as_str()).set(open as f64);
        }
        Ok(())
    }
}

/// Runs the detector every `config.tick` until `shutdown`.
pub async fn run_detector(
    config: DeskConfig,
    pool: PgPool,
    js: jetstream::Context,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let tick = config.tick;
    let mut detector = Detector::new(config, pool, js);
    loop {
        match detector.pass(Utc::now()).await {
            Ok(pass) if pass != Pass::default() => {
                tracing::debug!(opened = pass.opened, cleared = pass.cleared, "desk pass")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "desk pass failed; trying again next tick"),
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(tick) => {}
        }
    }
}
