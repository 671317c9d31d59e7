//! Replaying the event log into a view, written once for every view's rebuild: page after page
//! of the log in log order, each page grouped by stream, the view's states loaded with one
//! call, each stream brought forward with the runtime's [`catch_up`](super::catch_up) (the
//! contiguity check included), the new states written with one compare-and-set call and, for
//! a view that commits on a time policy, committed at the end of the page.
//!
//! A replay writes into whatever store the given view instance points at: a rebuild hands it a
//! new generation (staging keys, a new index, new tables) that nobody reads yet, and switches
//! readers over afterwards. A stream whose events do not apply (or have a hole in the log) is
//! left out of the replay and counted; the rest goes on.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use waybill_schemas::EventEnvelope;
use waybill_write_side::event_store::{EventStore, EventStoreError, ReadAllCursor, READ_AHEAD};

use super::{View, ViewWrite};

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E: std::error::Error> {
    #[error("reading the event log failed: {0}")]
    EventStore(#[from] EventStoreError),
    #[error("the view's store failed: {0}")]
    View(E),
    #[error("{count} streams kept changing under the replay's compare-and-set")]
    Contended { count: usize },
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Events read from the log (those of streams the view ignores included).
    pub events: u64,
    /// Streams whose state the replay wrote at least once.
    pub streams: u64,
    /// Their ids, for a rebuild that switches generations stream by stream.
    pub written: BTreeSet<String>,
    /// Streams left out because their events do not apply or are not all in the log.
    pub unappliable: u64,
    /// When the last event read was recorded (`None`: the log was empty after `from`).
    pub last_recorded: Option<DateTime<Utc>>,
}

/// Replays every event after `from` (`None`: the whole log) into `view`, `page` events per
/// read (the next pages read while one is applied); `progress` gets the number of events read
/// so far after every page.
///
/// The replay ends at the log's head as it was when the replay began: it stops after the
/// first page that reaches an event recorded later. A replay that chased the head instead
/// would never end while orders arrive faster than it reads (a loaded machine, a slow store).
/// What is recorded after the start is the live projector's, which fills each stream it
/// touches from the log; callers that switch generations catch up in further bounded passes.
pub async fn replay_log<V: View>(
    events: &EventStore,
    view: &V,
    from: Option<ReadAllCursor>,
    page: i64,
    mut progress: impl FnMut(u64),
) -> Result<ReplayReport, ReplayError<V::Error>> {
    let mut report = ReplayReport::default();
    let mut broken: HashSet<String> = HashSet::new();
    let mut pages = events.log_pages(from, page, READ_AHEAD, Some(Utc::now()));
    while let Some(batch) = pages.next().await {
        let batch = batch?;
        report.events += batch.len() as u64;
        if let Some(last) = batch.last() {
            report.last_recorded = Some(last.recorded_at);
        }
        let mut by_stream: BTreeMap<String, Vec<EventEnvelope>> = BTreeMap::new();
        for event in batch {
            if view.handles(&event.stream_id) && !broken.contains(&event.stream_id) {
                by_stream
                    .entry(event.stream_id.clone())
                    .or_default()
                    .push(event);
            }
        }
        if !by_stream.is_empty() {
            let stream_ids: Vec<String> = by_stream.keys().cloned().collect();
            let states = view.load(&stream_ids).await.map_err(ReplayError::View)?;
            let mut writes = Vec::new();
            for ((stream_id, mut stream_events), state) in by_stream.into_iter().zip(states) {
                stream_events.sort_by_key(|e| e.stream_version);
                let before = state.as_ref().map_or(0, V::version_of);
                match super::catch_up(events, state, V::version_of, stream_events, |s, e| {
                    view.apply(s, e)
                })
                .await?
                {
                    Ok(Some(state)) if V::version_of(&state) > before => writes.push(ViewWrite {
                        stream_id,
                        expected_version: before,
                        state,
                    }),
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(view = view.name(), stream_id, error = %err, "stream left out of the replay");
                        report.unappliable += 1;
                        broken.insert(stream_id);
                    }
                }
            }
            report
                .written
                .extend(writes.iter().map(|w| w.stream_id.clone()));
            store_all(events, view, writes).await?;
            if view.commit_interval().is_some() {
                view.commit().await.map_err(ReplayError::View)?;
            }
        }
        progress(report.events);
    }
    report.streams = report.written.len() as u64;
    Ok(report)
}

/// What switching a generation in stream by stream did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchReport {
    /// Streams whose live state was replaced by the rebuilt one.
    pub switched: u64,
    /// Streams the live view already held at the rebuilt version or newer, after bringing the
    /// rebuilt state level with the log (replaced too when they differed).
    pub caught_up: u64,
    /// Streams left as they were because their newer events do not apply.
    pub unappliable: u64,
}

/// A blue/green rebuild of a view that switches stream by stream: replays the whole log into
/// `green` (a generation nobody reads), then switches every rebuilt stream into `live`
/// ([`switch_streams`]). The caller drops the green generation afterwards.
pub async fn rebuild_into<V: View>(
    events: &EventStore,
    green: &V,
    live: &V,
    page: i64,
    progress: impl FnMut(u64),
) -> Result<(ReplayReport, SwitchReport), ReplayError<V::Error>>
where
    V::State: PartialEq,
{
    let replayed = replay_log(events, green, None, page, progress).await?;
    let switched = switch_streams(events, green, live, &replayed.written).await?;
    tracing::info!(
        view = live.name(),
        ?switched,
        events = replayed.events,
        "generation switched in"
    );
    Ok((replayed, switched))
}

/// Streams per load and write while switching.
const SWITCH_CHUNK: usize = 500;

/// Switches `streams` from `green` (a rebuilt generation) into `live`, each stream in one
/// compare-and-set, so a reader sees either the old state or the whole rebuilt one. Where the
/// live projector moved a stream on during the rebuild, the rebuilt state is first brought
/// level from the log; a stream is written whenever the live state differs from the rebuilt
/// one at the same version (a rebuild exists to correct views), never to an older version.
pub async fn switch_streams<V: View>(
    events: &EventStore,
    green: &V,
    live: &V,
    streams: &BTreeSet<String>,
) -> Result<SwitchReport, ReplayError<V::Error>>
where
    V::State: PartialEq,
{
    let mut report = SwitchReport::default();
    let ids: Vec<String> = streams.iter().cloned().collect();
    for chunk in ids.chunks(SWITCH_CHUNK) {
        let rebuilt = green.load(chunk).await.map_err(ReplayError::View)?;
        let pending: Vec<(String, V::State)> = chunk
            .iter()
            .cloned()
            .zip(rebuilt)
            .filter_map(|(id, state)| state.map(|s| (id, s)))
            .collect();
        switch_states(events, live, pending, &mut report, |a, b| a == b).await?;
    }
    Ok(report)
}

/// What [`bring_level`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Levelled {
    /// Streams written forward (compare-and-sets that won).
    pub written: Vec<String>,
    /// Streams whose missing events do not apply (left as they were, logged).
    pub unappliable: usize,
}

/// Brings `streams` in `view` level with their log, the way the live path fills a gap: each
/// stored state is loaded, the events it lacks are applied in order, and the new state is
/// written by one compare-and-set on the stored version (then committed, for a view that
/// commits on a policy). A write that loses its compare-and-set was overtaken by another
/// writer and is left to it. For a view's audit and a rebuilt generation's last passes.
pub async fn bring_level<V: View>(
    events: &EventStore,
    view: &V,
    streams: &[String],
) -> Result<Levelled, ReplayError<V::Error>> {
    let mut levelled = Levelled::default();
    if streams.is_empty() {
        return Ok(levelled);
    }
    let states = view.load(streams).await.map_err(ReplayError::View)?;
    let mut logged = events.read_streams(streams).await?;
    let mut writes = Vec::new();
    for (stream_id, state) in streams.iter().zip(states) {
        let stored = state.as_ref().map_or(0, V::version_of);
        let stream_events = logged.remove(stream_id).unwrap_or_default();
        match super::catch_up(events, state, V::version_of, stream_events, |s, e| {
            view.apply(s, e)
        })
        .await?
        {
            Ok(Some(state)) if V::version_of(&state) > stored => writes.push(ViewWrite {
                stream_id: stream_id.clone(),
                expected_version: stored,
                state,
            }),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(view = view.name(), stream_id, %error, "stream behind the log does not apply; left as it is");
                levelled.unappliable += 1;
            }
        }
    }
    if writes.is_empty() {
        return Ok(levelled);
    }
    let ids: Vec<String> = writes.iter().map(|w| w.stream_id.clone()).collect();
    let written = view.store(writes).await.map_err(ReplayError::View)?;
    if view.commit_interval().is_some() {
        view.commit().await.map_err(ReplayError::View)?;
    }
    levelled.written = ids
        .into_iter()
        .zip(written)
        .filter(|(_, written)| *written)
        .map(|(id, _)| id)
        .collect();
    Ok(levelled)
}

/// Re-projects `streams` into `view` from the whole log, replacing what the view holds for
/// them (a customer's orders after an erasure: their personal fields now read as erased, and
/// the view keeps nothing it projected from them before). Returns how many it rewrote.
pub async fn refold_streams<V: View>(
    events: &EventStore,
    view: &V,
    streams: &[String],
) -> Result<SwitchReport, ReplayError<V::Error>> {
    let mut report = SwitchReport::default();
    let wanted: Vec<String> = streams
        .iter()
        .filter(|s| view.handles(s))
        .cloned()
        .collect();
    for chunk in wanted.chunks(SWITCH_CHUNK) {
        let mut logged = events.read_streams(chunk).await?;
        let mut pending = Vec::new();
        for stream_id in chunk {
            let stream_events = logged.remove(stream_id).unwrap_or_default();
            match super::catch_up(events, None, V::version_of, stream_events, |s, e| {
                view.apply(s, e)
            })
            .await?
            {
                Ok(Some(state)) => pending.push((stream_id.clone(), state)),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(view = view.name(), stream_id, error = %err, "stream left as it was by the re-projection");
                    report.unappliable += 1;
                }
            }
        }
        switch_states(events, view, pending, &mut report, |_, _| false).await?;
    }
    Ok(report)
}

/// Writes each of `pending` (a stream and a state rebuilt from the log) over the live state of
/// `live`, in compare-and-set rounds (see [`switch_streams`]); a live state `same` as the
/// rebuilt one at its version is left alone.
async fn switch_states<V: View>(
    events: &EventStore,
    live: &V,
    mut pending: Vec<(String, V::State)>,
    report: &mut SwitchReport,
    same: impl Fn(&V::State, &V::State) -> bool,
) -> Result<(), ReplayError<V::Error>> {
    {
        for _ in 0..CAS_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let ids: Vec<String> = pending.iter().map(|(id, _)| id.clone()).collect();
            let current = live.load(&ids).await.map_err(ReplayError::View)?;
            let mut writes = Vec::new();
            for ((stream_id, state), current) in pending.drain(..).zip(current) {
                let live_version = current.as_ref().map_or(0, V::version_of);
                let mut state = state;
                if live_version > V::version_of(&state) {
                    // The live projector moved on: bring the rebuilt state level first.
                    let newer = events
                        .read_stream(&stream_id, V::version_of(&state) + 1, Some(live_version))
                        .await?;
                    match super::catch_up(events, Some(state), V::version_of, newer, |s, e| {
                        live.apply(s, e)
                    })
                    .await?
                    {
                        Ok(Some(level)) => state = level,
                        Ok(None) => continue,
                        Err(err) => {
                            tracing::warn!(view = live.name(), stream_id, error = %err, "stream left as it was by the switch");
                            report.unappliable += 1;
                            continue;
                        }
                    }
                    report.caught_up += 1;
                }
                if current.as_ref().is_some_and(|c| same(c, &state)) {
                    continue;
                }
                writes.push(ViewWrite {
                    stream_id,
                    expected_version: live_version,
                    state,
                });
            }
            if writes.is_empty() {
                break;
            }
            let states: Vec<(String, V::State)> = writes
                .iter()
                .map(|w| (w.stream_id.clone(), w.state.clone()))
                .collect();
            let written = live.store(writes).await.map_err(ReplayError::View)?;
            for ((stream_id, state), written) in states.into_iter().zip(written) {
                if written {
                    report.switched += 1;
                } else {
                    pending.push((stream_id, state));
                }
            }
        }
        if live.commit_interval().is_some() {
            live.commit().await.map_err(ReplayError::View)?;
        }
        if !pending.is_empty() {
            return Err(ReplayError::Contended {
                count: pending.len(),
            });
        }
    }
    Ok(())
}

/// Compare-and-set rounds for a stream another writer keeps moving (the live projector, when a
/// replay catches a switched-in generation up).
const CAS_ROUNDS: usize = 3;

/// Writes `writes`; a write whose compare-and-set lost (another writer moved the stream) is
/// reloaded and, if the stored state is still older than the write, brought forward from the
/// log and written again.
async fn store_all<V: View>(
    events: &EventStore,
    view: &V,
    mut writes: Vec<ViewWrite<V::State>>,
) -> Result<(), ReplayError<V::Error>> {
    for _ in 0..CAS_ROUNDS {
        if writes.is_empty() {
            return Ok(());
        }
        let targets: Vec<(String, i64)> = writes
            .iter()
            .map(|w| (w.stream_id.clone(), V::version_of(&w.state)))
            .collect();
        let results = view.store(writes).await.map_err(ReplayError::View)?;
        let lost: Vec<(String, i64)> = targets
            .into_iter()
            .zip(results)
            .filter_map(|(target, written)| (!written).then_some(target))
            .collect();
        writes = Vec::new();
        if lost.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = lost.iter().map(|(id, _)| id.clone()).collect();
        let stored = view.load(&ids).await.map_err(ReplayError::View)?;
        for ((stream_id, target), state) in lost.into_iter().zip(stored) {
            let before = state.as_ref().map_or(0, V::version_of);
            if before >= target {
                continue;
            }
            let newer = events
                .read_stream(&stream_id, before + 1, Some(target))
                .await?;
            match super::catch_up(events, state, V::version_of, newer, |s, e| view.apply(s, e))
                .await?
            {
                Ok(Some(state)) if V::version_of(&state) > before => writes.push(ViewWrite {
                    stream_id,
                    expected_version: before,
                    state,
                }),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(view = view.name(), stream_id, error = %err, "stream left behind by the replay");
                }
            }
        }
    }
    match writes.len() {
        0 => Ok(()),
        count => Err(ReplayError::Contended { count }),
    }
}

/// Where to read the log again after a generation built up to `last_recorded` is switched in:
/// `margin` before it, for transactions that committed out of `recorded_at` order. Replaying
/// from there is harmless: versions make every repeated event a duplicate.
pub fn resume_after(last_recorded: DateTime<Utc>, margin: chrono::Duration) -> ReadAllCursor {
    ReadAllCursor {
        recorded_at: last_recorded - margin,
        stream_id: String::new(),
        stream_version: 0,
    }
}
