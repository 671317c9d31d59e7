//! `rebuild search`: replays the event log into a new generation of the search index with the
//! runtime's replay ([`crate::runtime::replay_log`]), page by page, one upsert (commit) per
//! page, while the live one serves and the live projector keeps writing it; catch-up passes
//! bring the new generation level with the log before it is switched in.
//!
//! - Elasticsearch/OpenSearch API: a new versioned index; the alias is swapped in one call and
//!   events recorded since the last pass's last event (minus a margin for transactions that
//!   committed out of `recorded_at` order) are applied again to the new index (versions make
//!   that idempotent).
//! - Tantivy: a new generation directory, offered to the running projector, which catches it
//!   up and switches to it between two batches, or switched in by the rebuild itself when no
//!   projector runs (`tantivy_rebuild.rs`).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use waybill_write_side::event_store::{EventStore, EventStoreError, ReadAllCursor};

use crate::runtime::replay::resume_after;
use crate::runtime::{replay_log, ReplayError, ReplayReport};

use super::{
    ElasticIndex, SearchBackend, SearchError, SearchIndex, SearchProjection, TantivyIndex,
};

/// Catch-up passes into the new index before the alias moves.
const PRE_SWITCH_PASSES: usize = 5;

/// How far before the replay's last event a catch-up after the switch starts reading again.
pub(super) const CATCH_UP_MARGIN_SECS: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum SearchRebuildError {
    #[error("reading the event log failed: {0}")]
    EventStore(#[from] EventStoreError),
    #[error("writing the search index failed: {0}")]
    Search(#[from] SearchError),
    #[error("search documents kept changing under the rebuild: {0}")]
    Contended(String),
    #[error(
        "no search projector adopted the rebuilt generation {generation} within {seconds} s \
         (it holds the index's writer but did not switch; its log says why); the live \
         generation is unchanged"
    )]
    NotAdopted { generation: String, seconds: u64 },
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
    /// The index the alias points at now (Elasticsearch), or the generation directory
    /// (Tantivy).
    pub target: String,
    /// Who switched the new generation in: the alias swap (Elasticsearch), the running
    /// projector (it adopted the Tantivy generation), or the rebuild (no projector ran).
    pub switched_by: &'static str,
}

/// Rebuilds the search view of `backend` from `events`; `progress` gets the events replayed
/// so far after every page. With Tantivy, `backend` is a reader of the index directory (the
/// rebuild runs beside the projector) or the writer itself (the rebuild then switches it).
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
            super::tantivy_rebuild::rebuild(
                events,
                index,
                page_size,
                &mut progress,
                &mut report,
                &mut written,
            )
            .await?;
        }
        SearchBackend::Elastic(alias) => {
            let name = alias.create_index().await?;
            let fresh: ElasticIndex = alias.on_index(&name);
            let (last, done) = build(
                events,
                fresh,
                page_size,
                &mut progress,
                &mut report,
                &mut written,
            )
            .await?;
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
            report.switched_by = "the alias swap";
        }
    }
    report.documents = written.len() as u64;
    Ok(report)
}

/// Fills a new generation `index` from the whole log, then catches it up while the old one
/// serves, so that what the live projector wrote to the old one since the replay began is in
/// the new one before readers move: a few passes, until one finds nothing new to write.
/// Returns when the last event read was recorded and how many events were read.
pub(super) async fn build<I: SearchIndex>(
    events: &EventStore,
    index: I,
    page_size: i64,
    progress: &mut impl FnMut(u64),
    report: &mut SearchRebuildReport,
    written: &mut BTreeSet<String>,
) -> Result<(Option<DateTime<Utc>>, u64), SearchRebuildError> {
    let replayed = replay(events, index.clone(), None, page_size, progress).await?;
    let mut last = replayed.last_recorded;
    let mut done = replayed.events;
    report.absorb(replayed, written);
    for _ in 0..PRE_SWITCH_PASSES {
        let Some(at) = last else { break };
        let from = resume_after(at, Duration::seconds(CATCH_UP_MARGIN_SECS));
        let pass = replay(events, index.clone(), Some(from), page_size, &mut |n| {
            progress(done + n)
        })
        .await?;
        let quiet = pass.written.is_empty();
        last = pass.last_recorded.or(last);
        done += pass.events;
        report.absorb(pass, written);
        if quiet {
            break;
        }
    }
    Ok((last, done))
}

impl SearchRebuildReport {
    pub(super) fn absorb(&mut self, replayed: ReplayReport, written: &mut BTreeSet<String>) {
        self.events += replayed.events;
        self.unappliable += replayed.unappliable;
        written.extend(replayed.written);
    }
}

/// Replays the log after `from` into `index` with the runtime's replay (one upsert per page).
pub(super) async fn replay<I: SearchIndex>(
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

/// Opens the configured backend for a rebuild: the Tantivy directory (the rebuild writes a
/// generation of its own beside the live one, which it never reads, whatever its fields) or
/// the Elasticsearch alias.
pub async fn open_for_rebuild(config: &super::SearchConfig) -> Result<SearchBackend, SearchError> {
    match &config.elasticsearch_url {
        Some(url) => Ok(SearchBackend::Elastic(
            ElasticIndex::connect(url, &config.prefix, &config.elastic).await?,
        )),
        None => Ok(SearchBackend::Tantivy(TantivyIndex::detached(
            config.dir.clone(),
        )?)),
    }
}
