//! `rebuild analytics`: a blue/green rebuild of the view's warehouse tables while the live ones
//! serve and the live projector keeps writing them.
//!
//! 1. A new generation: the database `<live>_rebuild_<id>` with the same schema
//!    ([`generation::create`]), which nobody reads.
//! 2. The whole log replayed into it with the runtime's [`replay_log`], then caught up in
//!    passes from a margin before the last event read, until a pass finds nothing to write (at
//!    most [`PRE_SWITCH_PASSES`]).
//! 3. The switch: the view's tables ([`super::TABLES`]) of the new generation take the live
//!    names, one `RENAME TABLE` statement per table and server ([`generation::switch`] says
//!    why not one for all); the old ones move to `<live>_retired_<id>`. Readers see old or
//!    rebuilt tables, never a half-built generation.
//! 4. Repair after the switch: the live projector went on writing to the old tables until the
//!    rename, and a batch under way at that moment may have put some rows into the old tables
//!    and its positions into the new ones. Every stream with an event recorded since the
//!    margin before the last pass's last event is therefore folded again from its whole log
//!    and written whole ([`refold_streams`]); rows are keyed by their natural key with the
//!    stream version, so rows written twice are one row.
//! 5. The retired and the emptied rebuild databases are dropped.

use std::collections::BTreeSet;

use chrono::Duration;
use waybill_write_side::event_store::{EventStore, EventStoreError, ReadAllCursor, READ_AHEAD};

use super::{AnalyticsError, AnalyticsProjection, AnalyticsStore, TABLES};
use crate::runtime::replay::{refold_streams, resume_after};
use crate::runtime::{replay_log, ReplayError, ReplayReport, View};
use crate::warehouse::{drop_database, generation, WarehouseConfig, WarehouseError};

/// Catch-up passes into the new generation before the switch.
pub const PRE_SWITCH_PASSES: usize = 5;

/// How far before the last event read the catch-up passes and the repair read the log again
/// (transactions commit out of `recorded_at` order).
pub const CATCH_UP_MARGIN_SECS: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsRebuildError {
    #[error("reading the event log failed: {0}")]
    EventStore(#[from] EventStoreError),
    #[error("writing the analytics tables failed: {0}")]
    Analytics(#[from] AnalyticsError),
    #[error("the warehouse failed: {0}")]
    Warehouse(#[from] WarehouseError),
    #[error("analytics rows kept changing under the repair: {0}")]
    Contended(String),
}

impl From<ReplayError<AnalyticsError>> for AnalyticsRebuildError {
    fn from(error: ReplayError<AnalyticsError>) -> Self {
        match error {
            ReplayError::EventStore(error) => Self::EventStore(error),
            ReplayError::View(error) => Self::Analytics(error),
            contended @ ReplayError::Contended { .. } => Self::Contended(contended.to_string()),
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalyticsRebuildReport {
    /// Events read from the log (catch-up passes and repair included).
    pub events: u64,
    /// Streams (orders, settlement reports, payouts) the new generation holds.
    pub streams: u64,
    /// Streams folded again after the switch.
    pub repaired: u64,
    /// Streams whose events do not apply (left out).
    pub unappliable: u64,
    /// The database the new generation was built in.
    pub generation: String,
}

/// Rebuilds the analytics view of `live` from `events` (see the module doc); `progress` gets
/// the events read so far after every page.
pub async fn rebuild_analytics(
    events: &EventStore,
    live: &WarehouseConfig,
    page: i64,
    mut progress: impl FnMut(u64),
) -> Result<AnalyticsRebuildReport, AnalyticsRebuildError> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let label = format!("rebuild_{}", &id[id.len() - 12..]);
    let green = generation::create(live, &label).await?;
    let retired = format!("{}_retired_{}", live.database, &id[id.len() - 12..]);
    tracing::info!(database = %green.database, "analytics rebuild: new generation");
    let built = build(events, &green, page, &mut progress).await;
    let (mut report, last) = match built {
        Ok(built) => built,
        Err(error) => {
            // The live tables were never touched.
            drop_database(&green).await.ok();
            return Err(error);
        }
    };
    report.generation = green.database.clone();

    generation::switch(live, &green, &retired, TABLES).await?;
    tracing::info!(database = %live.database, generation = %green.database, retired = %retired,
        "analytics rebuild: generation switched in");
    let repaired = match last {
        Some(last) => {
            let from = resume_after(last, Duration::seconds(CATCH_UP_MARGIN_SECS));
            repair(events, live, from, page, &mut report).await
        }
        None => Ok(()),
    };
    drop_database(&live.with_database(retired)).await?;
    drop_database(&green).await?;
    repaired?;
    tracing::info!(?report, "analytics rebuild finished");
    Ok(report)
}

/// Replays the log into `green` and catches it up; returns the report so far and when the
/// last event read was recorded.
async fn build(
    events: &EventStore,
    green: &WarehouseConfig,
    page: i64,
    progress: &mut impl FnMut(u64),
) -> Result<
    (
        AnalyticsRebuildReport,
        Option<chrono::DateTime<chrono::Utc>>,
    ),
    AnalyticsRebuildError,
> {
    let view = AnalyticsProjection::named(
        AnalyticsStore::new(green.client()),
        format!("{}-rebuild", super::VIEW_NAME),
    );
    let mut report = AnalyticsRebuildReport::default();
    let mut streams = BTreeSet::new();
    let replayed = replay_log(events, &view, None, page, &mut *progress).await?;
    let mut last = replayed.last_recorded;
    let mut done = replayed.events;
    absorb(&mut report, &mut streams, replayed);
    for _ in 0..PRE_SWITCH_PASSES {
        let Some(at) = last else { break };
        let from = resume_after(at, Duration::seconds(CATCH_UP_MARGIN_SECS));
        let pass = replay_log(events, &view, Some(from), page, |n| progress(done + n)).await?;
        let quiet = pass.written.is_empty();
        last = pass.last_recorded.or(last);
        done += pass.events;
        absorb(&mut report, &mut streams, pass);
        if quiet {
            break;
        }
    }
    report.streams = streams.len() as u64;
    Ok((report, last))
}

fn absorb(report: &mut AnalyticsRebuildReport, streams: &mut BTreeSet<String>, pass: ReplayReport) {
    report.events += pass.events;
    report.unappliable += pass.unappliable;
    streams.extend(pass.written);
}

/// Folds every stream with an event after `from` again from its whole log into the live
/// tables (see the module doc, step 4).
async fn repair(
    events: &EventStore,
    live: &WarehouseConfig,
    from: ReadAllCursor,
    page: i64,
    report: &mut AnalyticsRebuildReport,
) -> Result<(), AnalyticsRebuildError> {
    let view = AnalyticsProjection::new(AnalyticsStore::new(live.client()));
    let mut touched = BTreeSet::new();
    // Up to the head as of now: what is recorded later goes to the switched-in tables through
    // the live projector (and a read chasing the head might never end).
    let mut pages = events.log_pages(Some(from), page, READ_AHEAD, Some(chrono::Utc::now()));
    while let Some(batch) = pages.next().await {
        let batch = batch?;
        report.events += batch.len() as u64;
        touched.extend(
            batch
                .into_iter()
                .filter(|e| view.handles(&e.stream_id))
                .map(|e| e.stream_id),
        );
    }
    let streams: Vec<String> = touched.into_iter().collect();
    let refolded = refold_streams(events, &view, &streams).await?;
    report.repaired = refolded.switched;
    report.unappliable += refolded.unappliable;
    Ok(())
}
