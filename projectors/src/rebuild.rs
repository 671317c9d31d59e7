//! `rebuild tracking`: replays the whole event log into a fresh key prefix (the green copy),
//! then swaps it in.
//!
//! The replay reads the log page by page (`EventStore::read_all_page`) and builds every view
//! under `<prefix>:rebuild-<id>:tracking:*`, reporting progress after each page. The swap then
//! copies each rebuilt view over the live key unless the live one is newer; where the live
//! projector has moved on during the rebuild, the rebuilt view is first caught up from the event
//! store. Each order switches atomically (one script call), never to an older version; the
//! staging keys are deleted at the end. The live projector can keep running throughout.

use std::collections::BTreeMap;

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::views::TrackingView;
use waybill_schemas::{EventEnvelope, OrderId};
use waybill_write_side::event_store::{EventStore, EventStoreError, ReadAllCursor};

use crate::runtime::{CatchUpError, ProjectorConfig};
use crate::views::tracking::{apply, TrackingError, TrackingStore, TrackingWrite};

/// Swap attempts per order when the live projector keeps moving it.
const CATCH_UP_ROUNDS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("reading the event log failed: {0}")]
    EventStore(#[from] EventStoreError),
    #[error("writing tracking views failed: {0}")]
    Tracking(#[from] TrackingError),
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Events read from the log.
    pub events: u64,
    /// Views rebuilt.
    pub views: u64,
    /// Live views replaced by their rebuilt copy.
    pub swapped: u64,
    /// Orders whose events do not apply (their live view is left as it is).
    pub unappliable: u64,
}

/// Rebuilds every tracking view from the event log and swaps the result in. `progress` gets the
/// number of events replayed so far after every page.
pub async fn rebuild_tracking(
    config: &ProjectorConfig,
    pool: PgPool,
    redis: ConnectionManager,
    mut progress: impl FnMut(u64),
) -> Result<RebuildReport, RebuildError> {
    let events = EventStore::new(pool);
    let live = TrackingStore::new(redis.clone(), config.redis_prefix.clone());
    let staging = TrackingStore::new(
        redis,
        format!(
            "{}:rebuild-{}",
            config.redis_prefix,
            Uuid::now_v7().simple()
        ),
    );
    let mut report = RebuildReport::default();
    let result = async {
        replay(
            &events,
            &staging,
            config.rebuild_page,
            &mut report,
            &mut progress,
        )
        .await?;
        swap(&events, &staging, &live, &mut report).await
    }
    .await;
    // The staging copy goes either way; a failed rebuild leaves the live views untouched.
    staging.delete_all().await?;
    result?;
    tracing::info!(?report, "tracking rebuild finished");
    Ok(report)
}

async fn replay(
    events: &EventStore,
    staging: &TrackingStore,
    page_size: i64,
    report: &mut RebuildReport,
    progress: &mut impl FnMut(u64),
) -> Result<(), RebuildError> {
    let mut cursor: Option<ReadAllCursor> = None;
    let mut broken: std::collections::HashSet<String> = Default::default();
    loop {
        let (page, next) = events.read_all_page(cursor.take(), page_size).await?;
        report.events += page.len() as u64;

        let mut by_stream: BTreeMap<String, Vec<EventEnvelope>> = BTreeMap::new();
        for event in page {
            if OrderId::from_stream_id(&event.stream_id).is_some()
                && !broken.contains(&event.stream_id)
            {
                by_stream
                    .entry(event.stream_id.clone())
                    .or_default()
                    .push(event);
            }
        }
        let stream_ids: Vec<String> = by_stream.keys().cloned().collect();
        let states = staging.load_streams(&stream_ids).await?;
        let mut writes = Vec::new();
        for ((stream_id, mut stream_events), state) in by_stream.into_iter().zip(states) {
            stream_events.sort_by_key(|e| e.stream_version);
            let before = state.as_ref().map_or(0, |v| v.version);
            if before == 0 {
                report.views += 1;
            }
            match catch_up(events, state, stream_events).await? {
                Ok(Some(view)) if view.version > before => writes.push(TrackingWrite {
                    expected_version: before,
                    view,
                }),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(stream_id, error = %err, "order left out of the rebuild");
                    report.unappliable += 1;
                    broken.insert(stream_id);
                }
            }
        }
        // The staging prefix has one writer: these compare-and-sets cannot lose.
        staging.compare_and_set(&writes).await?;
        progress(report.events);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Applies `events` (ascending) to `view` with the runtime's gap filling. The inner `Err`
/// means the order's events do not apply or are not all in the log.
async fn catch_up(
    store: &EventStore,
    view: Option<TrackingView>,
    events: Vec<EventEnvelope>,
) -> Result<Result<Option<TrackingView>, CatchUpError<TrackingError>>, RebuildError> {
    Ok(crate::runtime::catch_up(store, view, |v: &TrackingView| v.version, events, apply).await?)
}

async fn swap(
    events: &EventStore,
    staging: &TrackingStore,
    live: &TrackingStore,
    report: &mut RebuildReport,
) -> Result<(), RebuildError> {
    let mut cursor = 0;
    loop {
        let (next, keys) = staging.scan_keys(cursor).await?;
        let mut views: Vec<TrackingView> = staging
            .load_keys(keys)
            .await?
            .into_iter()
            .flatten()
            .collect();
        // The customer and lookup indexes are idempotent: (re)write them for every rebuilt view.
        live.index(&views.iter().collect::<Vec<_>>()).await?;
        for _ in 0..CATCH_UP_ROUNDS {
            if views.is_empty() {
                break;
            }
            let written = live.replace_unless_newer(&views).await?;
            let behind: Vec<TrackingView> = views
                .into_iter()
                .zip(written)
                .filter_map(|(view, written)| {
                    if written {
                        report.swapped += 1;
                        None
                    } else {
                        Some(view)
                    }
                })
                .collect();
            // The live projector moved these on during the rebuild: bring them level first.
            views = Vec::with_capacity(behind.len());
            for view in behind {
                let stream_id = OrderId::parse(&view.order_id)
                    .map(|id| id.stream_id())
                    .unwrap_or_default();
                let newer = events
                    .read_stream(&stream_id, view.version + 1, None)
                    .await?;
                match catch_up(events, Some(view), newer).await? {
                    Ok(Some(view)) => views.push(view),
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(stream_id, error = %err, "order left out of the swap");
                        report.unappliable += 1;
                    }
                }
            }
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
