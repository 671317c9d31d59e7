//! `rebuild search`: replays the event log into a search index, page by page, committing once
//! per page.
//!
//! - Elasticsearch/OpenSearch API: into a new versioned index while the alias keeps serving the
//!   old one; then the alias is swapped in one call and events recorded since the replay's last
//!   page (minus a margin for transactions that committed out of `recorded_at` order) are applied
//!   again to the new index (versions make that idempotent). The live projector may keep running.
//! - Tantivy: in place, after removing every document; Tantivy allows one writer per directory,
//!   so the search projector must be stopped first (the open fails otherwise).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use waybill_schemas::views::OrderDocument;
use waybill_schemas::{EventEnvelope, OrderId};
use waybill_write_side::event_store::{EventStore, EventStoreError, ReadAllCursor};

use crate::runtime::CatchUpError;

use super::{apply, ElasticIndex, SearchBackend, SearchError, SearchIndex, TantivyIndex};

/// How far before the replay's last event the post-swap catch-up starts reading again.
const CATCH_UP_MARGIN_SECS: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum SearchRebuildError {
    #[error("reading the event log failed: {0}")]
    EventStore(#[from] EventStoreError),
    #[error("writing the search index failed: {0}")]
    Search(#[from] SearchError),
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
    let mut written = std::collections::HashSet::new();
    match backend {
        SearchBackend::Tantivy(index) => {
            index.clear().await?;
            report.target = index.dir().display().to_string();
            replay(
                events,
                &index,
                None,
                page_size,
                &mut report,
                &mut written,
                &mut progress,
            )
            .await?;
        }
        SearchBackend::Elastic(alias) => {
            let name = alias.create_index().await?;
            let fresh: ElasticIndex = alias.on_index(&name);
            let last = replay(
                events,
                &fresh,
                None,
                page_size,
                &mut report,
                &mut written,
                &mut progress,
            )
            .await?;
            alias.swap_alias(&name).await?;
            let from = last.map(|at| ReadAllCursor {
                recorded_at: at - Duration::seconds(CATCH_UP_MARGIN_SECS),
                stream_id: String::new(),
                stream_version: 0,
            });
            if from.is_some() {
                replay(
                    events,
                    &alias,
                    from,
                    page_size,
                    &mut report,
                    &mut written,
                    &mut progress,
                )
                .await?;
            }
            report.target = name;
        }
    }
    report.documents = written.len() as u64;
    Ok(report)
}

/// Applies every event after `from` to `index`'s documents, one upsert per page. Returns when
/// the last event read was recorded.
async fn replay<I: SearchIndex>(
    events: &EventStore,
    index: &I,
    from: Option<ReadAllCursor>,
    page_size: i64,
    report: &mut SearchRebuildReport,
    written_orders: &mut std::collections::HashSet<String>,
    progress: &mut impl FnMut(u64),
) -> Result<Option<DateTime<Utc>>, SearchRebuildError> {
    let mut cursor = from;
    let mut last_recorded = None;
    let mut broken = std::collections::HashSet::new();
    loop {
        let (page, next) = events.read_all_page(cursor.take(), page_size).await?;
        report.events += page.len() as u64;
        if let Some(last) = page.last() {
            last_recorded = Some(last.recorded_at);
        }
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
        let ids: Vec<String> = by_stream
            .keys()
            .filter_map(|s| OrderId::from_stream_id(s).map(|id| id.to_string()))
            .collect();
        let current = index.get(&ids).await?;
        let mut documents = Vec::new();
        for ((stream_id, mut stream_events), document) in by_stream.into_iter().zip(current) {
            stream_events.sort_by_key(|e| e.stream_version);
            let before = document.as_ref().map_or(0, |d| d.version);
            match catch_up(events, document, stream_events).await? {
                Ok(Some(document)) if document.version > before => documents.push(document),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(stream_id, error = %err, "order left out of the search rebuild");
                    report.unappliable += 1;
                    broken.insert(stream_id);
                }
            }
        }
        let ids: Vec<String> = documents.iter().map(|d| d.order_id.clone()).collect();
        let written = index.upsert(documents).await?;
        for (id, written) in ids.into_iter().zip(written) {
            if written {
                written_orders.insert(id);
            }
        }
        progress(report.events);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(last_recorded),
        }
    }
}

/// Applies `events` (ascending) to `document` with the runtime's gap filling. The inner `Err`
/// means the order's events do not apply or are not all in the log.
async fn catch_up(
    store: &EventStore,
    document: Option<OrderDocument>,
    events: Vec<EventEnvelope>,
) -> Result<Result<Option<OrderDocument>, CatchUpError<SearchError>>, SearchRebuildError> {
    Ok(crate::runtime::catch_up(
        store,
        document,
        |d: &OrderDocument| d.version,
        events,
        apply,
    )
    .await?)
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
