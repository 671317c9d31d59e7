//! The support search view: one [`OrderDocument`] per order (ids, channel ref, the customer's
//! name, email and phone, addresses, SKUs and product names, status and stage, totals, payment
//! state, tracking and RMA numbers, dates, tags) in a search index agents query through the
//! query API. Personal data is in it, so only agent and admin roles may search it.
//!
//! Rooms: `apply.rs` (pure: how an event changes a document), `fields.rs` (what both backends
//! index and how free text is read), `query.rs` (the search request and page), `highlight.rs`,
//! `index.rs` (the [`SearchIndex`] trait), the backends `tantivy_index.rs` (embedded, default)
//! and `elastic.rs` (Elasticsearch/OpenSearch API, over `elastic_client.rs`: nodes with
//! failover, authentication, TLS, index layout and retries), `tests.rs` (one suite run against
//! both) and `elastic_tests.rs` (the cluster behaviours of the Elasticsearch backend).
//! `rebuild.rs` rebuilds either backend into a new generation while the projector runs; for
//! Tantivy the directory's generations are `generations.rs` and their switch
//! `tantivy_rebuild.rs` (tested in `rebuild_tests.rs`). Every write carries the order's stream
//! version and never regresses a document.

mod apply;
mod elastic;
mod elastic_client;
#[cfg(test)]
mod elastic_tests;
pub mod fields;
pub mod generations;
mod highlight;
mod index;
pub mod marker;
#[cfg(test)]
pub(crate) mod osmem;
mod query;
mod rebuild;
#[cfg(test)]
mod rebuild_tests;
mod tantivy_index;
mod tantivy_rebuild;
#[cfg(test)]
mod tests;

pub use apply::apply;
pub use elastic::{alias_name, ElasticIndex, INDEX_DEFINITION};
pub use elastic_client::{ElasticAuth, ElasticOptions};
pub use highlight::highlight;
pub use index::{SearchBackend, SearchIndex};
pub use marker::SearchStoreMarker;
pub use query::{Cursor, SearchPage, SearchQuery, Sort, SortField, MAX_LIMIT};
pub use rebuild::{open_for_rebuild, rebuild_search, SearchRebuildError, SearchRebuildReport};
pub use tantivy_index::TantivyIndex;

use std::future::Future;
use std::path::PathBuf;

use waybill_schemas::events::DecodeError;
use waybill_schemas::views::OrderDocument;
use waybill_schemas::{EventEnvelope, OrderId};

use crate::runtime::{View, ViewWrite};

/// The durable consumer and dead-letter name of this view.
pub const VIEW_NAME: &str = "search";

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("event {event_type} v{version} of {stream_id} cannot be decoded: {source}")]
    Decode {
        stream_id: String,
        event_type: String,
        version: i64,
        source: DecodeError,
    },
    #[error("{stream_id} v{version}: {event_type} before the order was placed")]
    NotPlaced {
        stream_id: String,
        event_type: String,
        version: i64,
    },
    #[error("{stream_id} v{version}: OrderPlaced for an order that is already placed")]
    AlreadyPlaced { stream_id: String, version: i64 },
    #[error("search index in {dir}: {detail}")]
    Tantivy { dir: String, detail: String },
    #[error("search index directory {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
    #[error("this search index was opened read-only")]
    ReadOnly,
    #[error("this search index generation was replaced by a rebuilt one")]
    Retired,
    #[error("reading the event log: {0}")]
    EventLog(String),
    #[error("the search index writer panicked earlier")]
    WriterPoisoned,
    #[error("search worker: {0}")]
    Worker(String),
    #[error("elasticsearch answered {status}: {detail}")]
    Elastic { status: u16, detail: String },
    #[error("a stored {backend} document is unreadable: {source}")]
    CorruptDocument {
        backend: &'static str,
        source: serde_json::Error,
    },
}

/// Which backend to use: Elasticsearch/OpenSearch when `elasticsearch_url` is set, else
/// Tantivy in `dir`.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    pub dir: PathBuf,
    /// One node's base URL, or several comma-separated.
    pub elasticsearch_url: Option<String>,
    /// Authentication, TLS, index layout and retries of the Elasticsearch/OpenSearch backend.
    pub elastic: ElasticOptions,
    /// Alias prefix (`<prefix>-orders`).
    pub prefix: String,
}

impl SearchConfig {
    /// The backend for the process that writes the index (the projector, a rebuild).
    pub async fn open_writer(&self) -> Result<SearchBackend, SearchError> {
        match &self.elasticsearch_url {
            Some(url) => Ok(SearchBackend::Elastic(
                ElasticIndex::connect(url, &self.prefix, &self.elastic).await?,
            )),
            None => Ok(SearchBackend::Tantivy(TantivyIndex::open_writer(
                self.dir.clone(),
            )?)),
        }
    }
    /// The backend for a process that only searches (the query API on its own).
    pub async fn open_reader(&self) -> Result<SearchBackend, SearchError> {
        match &self.elasticsearch_url {
            Some(url) => Ok(SearchBackend::Elastic(
                ElasticIndex::connect(url, &self.prefix, &self.elastic).await?,
            )),
            None => Ok(SearchBackend::Tantivy(TantivyIndex::open_reader(
                self.dir.clone(),
            )?)),
        }
    }
}

/// The search view plugged into the consumer runtime.
#[derive(Clone)]
pub struct SearchProjection<I: SearchIndex> {
    index: I,
    commit_interval: Option<std::time::Duration>,
}

impl<I: SearchIndex> SearchProjection<I> {
    /// Commits the index once per batch.
    pub fn new(index: I) -> Self {
        Self {
            index,
            commit_interval: None,
        }
    }

    /// Commits the index at most `interval` after the first uncommitted write, like a refresh
    /// interval; events are acknowledged after the commit that contains their document.
    pub fn with_commit_interval(mut self, interval: std::time::Duration) -> Self {
        self.commit_interval = Some(interval);
        self
    }
    pub fn index(&self) -> &I {
        &self.index
    }
}

fn order_uuid(stream_id: &str) -> String {
    OrderId::from_stream_id(stream_id).map_or_else(|| stream_id.to_owned(), |id| id.to_string())
}

impl<I: SearchIndex> View for SearchProjection<I> {
    type State = OrderDocument;
    type Error = SearchError;

    fn name(&self) -> &str {
        VIEW_NAME
    }

    fn scrubs_on_erasure(&self) -> bool {
        true
    }

    fn forget(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<(), SearchError>> + Send {
        let ids: Vec<String> = stream_ids.iter().map(|s| order_uuid(s)).collect();
        let index = self.index.clone();
        async move { index.forget(ids).await }
    }

    fn purge(&self) -> impl Future<Output = Result<(), SearchError>> + Send {
        let index = self.index.clone();
        async move { index.purge().await }
    }

    fn handles(&self, stream_id: &str) -> bool {
        OrderId::from_stream_id(stream_id).is_some()
    }

    fn version_of(state: &OrderDocument) -> i64 {
        state.version
    }

    fn load(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<OrderDocument>>, SearchError>> + Send {
        let ids: Vec<String> = stream_ids.iter().map(|s| order_uuid(s)).collect();
        let index = self.index.clone();
        async move { index.get(&ids).await }
    }

    fn apply(
        &self,
        state: Option<&OrderDocument>,
        event: &EventEnvelope,
    ) -> Result<OrderDocument, SearchError> {
        apply(state, event)
    }

    /// One upsert (one commit / refresh) for the whole batch, or, with a commit interval, the
    /// documents staged for the next commit. A document the index already holds at the same or
    /// a newer version reports `false`: the runtime reloads it and finds its events to be
    /// duplicates.
    async fn store(&self, writes: Vec<ViewWrite<OrderDocument>>) -> Result<Vec<bool>, SearchError> {
        // A write at the version the view already holds is a re-projection (an erased
        // customer's orders): written over the document, never refused as a duplicate.
        let (rewrites, writes): (Vec<_>, Vec<_>) = writes
            .into_iter()
            .enumerate()
            .partition(|(_, w)| w.expected_version > 0 && w.expected_version == w.state.version);
        let mut written = vec![false; rewrites.len() + writes.len()];
        if !rewrites.is_empty() {
            let (at, documents): (Vec<usize>, Vec<OrderDocument>) =
                rewrites.into_iter().map(|(i, w)| (i, w.state)).unzip();
            for (i, ok) in at.into_iter().zip(self.index.replace(documents).await?) {
                written[i] = ok;
            }
        }
        let (at, documents): (Vec<usize>, Vec<OrderDocument>) =
            writes.into_iter().map(|(i, w)| (i, w.state)).unzip();
        let stored = match self.commit_interval {
            Some(_) => self.index.stage(documents).await?,
            None => self.index.upsert(documents).await?,
        };
        for (i, ok) in at.into_iter().zip(stored) {
            written[i] = ok;
        }
        Ok(written)
    }

    fn commit_interval(&self) -> Option<std::time::Duration> {
        self.commit_interval
    }

    async fn commit(&self) -> Result<(), SearchError> {
        self.index.commit().await
    }

    /// A rebuilt generation of the embedded index is adopted here (see
    /// [`SearchIndex::between_batches`]).
    fn between_batches(
        &self,
        events: &waybill_write_side::event_store::EventStore,
        page: i64,
    ) -> impl Future<Output = Result<(), SearchError>> + Send {
        self.index.between_batches(events, page)
    }
}
