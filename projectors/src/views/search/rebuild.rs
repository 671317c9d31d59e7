//! `rebuild search`: replays the event log into a search index with the runtime's replay
//! ([`crate::runtime::replay_log`]), page by page, one upsert (commit) per page.
//!
//! - Elasticsearch/OpenSearch API: into a new versioned index while the alias keeps serving the
//!   old one; then the alias is swapped in one call and events recorded since the replay's last
//!   page (minus a margin for transactions that committed out of `recorded_at` order) are applied
//!   again to the new index (versions make that idempotent). The live projector may keep running.
//! - Tantivy: in place, after removing every document; Tantivy allows one writer per directory,
//!   so the search projector must be stopped first (the open fails otherwise).

use std::collections::BTreeSet;

use chrono::Duration;
use waybill_write_side::event_store::{EventStore, EventStoreError, ReadAllCursor};

use crate::runtime::replay::resume_after;
use crate::runtime::{replay_log, ReplayError, ReplayReport};

use super::{
    ElasticIndex, SearchBackend, SearchError, SearchIndex, SearchProjection, TantivyIndex,
};

/// Catch-up passes into the new index before the alias moves.
const PRE_SWITCH_PASSES: usize = 5;

/// How far before the replay's last event the post-swap catch-up starts reading again.
const CATCH_UP_MARGIN_SECS: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum SearchRebuildError {
    #[error("reading the event log failed: {0}")]
    EventStore(#[from] EventStoreError),
    #[error("writing the search index failed: {0}")]
    Search(#[from] SearchError),
    #[error("search documents kept changing under the rebuild: {0}")]
    Contended(String),
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchRebuildReport {
    /// Events read from the log (catch-up included).
    pub events: u64,
    /// Orders whose document the rebuild wrote.
    pub documents: u64,
    /// Orders whose events do not apply (left out).
    pub unappliable: u64,
    /// The index the alias points at now (Elasticsearch), or the directory (Tantivy).
    pub target: String,
}

/// Rebuilds the search view of `backend` from `events`; `progress` gets the events replayed
/// so far after every page.
pub async fn rebuild_search(
    events: &EventStore,
    backend: SearchBackend,
    page_size: i64,
    mut progress: impl FnMut(u64),
) -> Result<SearchRebuildReport, SearchRebuildError> {
    let mut report = SearchRebuildReport::default();
    let mut written = BTreeSet::new();
    match backend {
        SearchBackend::Tantivy(index) => {
            index.clear().await?;
            report.target = index.dir().display().to_string();
            let replayed = replay(events, index, None, page_size, &mut progress).await?;
            report.absorb(replayed, &mut written);
        }
        SearchBackend::Elastic(alias) => {
            let name = alias.create_index().await?;
            let fresh: ElasticIndex = alias.on_index(&name);
            let replayed = replay(events, fresh.clone(), None, page_size, &mut progress).await?;
            let mut last = replayed.last_recorded;
            let mut done = replayed.events;
            report.absorb(replayed, &mut written);
            // Catch the new index up while the old one serves, so that what the live
            // projector wrote to the old index since the replay began is in the new one
            // before readers move: a few passes, until one finds nothing new to write.
            for _ in 0..PRE_SWITCH_PASSES {
                let Some(at) = last else { break };
                let from = resume_after(at, Duration::seconds(CATCH_UP_MARGIN_SECS));
                let pass = replay(events, fresh.clone(), Some(from), page_size, &mut |n| {
                    progress(done + n)
                })
                .await?;
                let quiet = pass.written.is_empty();
                last = pass.last_recorded.or(last);
                done += pass.events;
                report.absorb(pass, &mut written);
                if quiet {
                    break;
                }
            }
            alias.swap_alias(&name).await?;
            if let Some(last) = last {
                let from = resume_after(last, Duration::seconds(CATCH_UP_MARGIN_SECS));
                let caught_up = replay(events, alias, Some(from), page_size, &mut |n| {
                    progress(done + n)
                })
                .await?;
                report.absorb(caught_up, &mut written);
            }
            report.target = name;
        }
    }
    report.documents = written.len() as u64;
    Ok(report)
}

impl SearchRebuildReport {
    fn absorb(&mut self, replayed: ReplayReport, written: &mut BTreeSet<String>) {
        self.events += replayed.events;
        self.unappliable += replayed.unappliable;
        written.extend(replayed.written);
    }
}

/// Replays the log after `from` into `index` with the runtime's replay (one upsert per page).
async fn replay<I: SearchIndex>(
    events: &EventStore,
    index: I,
    from: Option<ReadAllCursor>,
    page_size: i64,
    progress: &mut impl FnMut(u64),
) -> Result<ReplayReport, SearchRebuildError> {
    replay_log(
        events,
        &SearchProjection::new(index),
        from,
        page_size,
        progress,
    )
    .await
    .map_err(|error| match error {
        ReplayError::EventStore(error) => SearchRebuildError::EventStore(error),
        ReplayError::View(error) => SearchRebuildError::Search(error),
        contended @ ReplayError::Contended { .. } => {
            SearchRebuildError::Contended(contended.to_string())
        }
    })
}

/// Opens the configured backend for a rebuild: the Tantivy writer (fails while the projector
/// holds it) or the Elasticsearch alias.
pub async fn open_for_rebuild(config: &super::SearchConfig) -> Result<SearchBackend, SearchError> {
    match &config.elasticsearch_url {
        Some(url) => Ok(SearchBackend::Elastic(
            ElasticIndex::connect(url, &config.prefix, &config.elastic).await?,
        )),
        None => Ok(SearchBackend::Tantivy(
            TantivyIndex::open_writer_for_rebuild(config.dir.clone())?,
        )),
    }
}
