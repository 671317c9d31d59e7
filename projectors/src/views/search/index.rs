//! The one search-index trait both backends implement, and the enum the projector and the
//! query API hold (chosen at startup: Tantivy unless `ELASTICSEARCH_URL` is set).

use std::future::Future;

use waybill_schemas::views::OrderDocument;
use waybill_write_side::event_store::EventStore;

use super::elastic::ElasticIndex;
use super::query::{SearchPage, SearchQuery};
use super::tantivy_index::TantivyIndex;
use super::SearchError;

/// An index of [`OrderDocument`]s keyed by order id.
pub trait SearchIndex: Clone + Send + Sync + 'static {
    /// `tantivy` or `elasticsearch` (logs and metrics).
    fn backend(&self) -> &'static str;

    /// The stored documents of these orders (order uuid text), in the same order.
    fn get(
        &self,
        order_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<OrderDocument>>, SearchError>> + Send;

    /// The documents of these orders as searches see them now: staged documents not committed
    /// yet are left out (read-your-writes waits on this, so a search right after the wait
    /// finds what it waited for).
    fn get_searchable(
        &self,
        order_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<OrderDocument>>, SearchError>> + Send {
        self.get(order_ids)
    }

    /// Writes each document unless the index already holds its order at the same or a newer
    /// version (`false` then: a stale or duplicate write, never a regression), and makes the
    /// batch visible to searches (one commit / refresh per call).
    fn upsert(
        &self,
        documents: Vec<OrderDocument>,
    ) -> impl Future<Output = Result<Vec<bool>, SearchError>> + Send;

    /// Writes like [`SearchIndex::upsert`] without making the documents durable yet: they
    /// are durable after the next [`SearchIndex::commit`]. [`SearchIndex::get`] in this
    /// process sees them at once. Backends whose writes are durable when acknowledged
    /// (Elasticsearch's translog) simply upsert.
    fn stage(
        &self,
        documents: Vec<OrderDocument>,
    ) -> impl Future<Output = Result<Vec<bool>, SearchError>> + Send {
        self.upsert(documents)
    }

    /// Writes documents at their own versions even where the index holds those versions (a
    /// re-projection of an erased customer's orders); durable when it returns.
    fn replace(
        &self,
        documents: Vec<OrderDocument>,
    ) -> impl Future<Output = Result<Vec<bool>, SearchError>> + Send {
        self.upsert(documents)
    }

    /// Deletes the documents of these orders for good (staged ones included), so that a
    /// re-projection of an erased customer's orders writes them afresh.
    fn forget(&self, ids: Vec<String>) -> impl Future<Output = Result<(), SearchError>> + Send {
        let _ = ids;
        async { Ok(()) }
    }

    /// Rewrites the index without the documents deleted or replaced so far (their text stays
    /// on disk until then).
    fn purge(&self) -> impl Future<Output = Result<(), SearchError>> + Send {
        async { Ok(()) }
    }

    /// Makes every staged document durable and searchable. An error means the staged
    /// documents are lost and their events must be applied again.
    fn commit(&self) -> impl Future<Output = Result<(), SearchError>> + Send {
        async { Ok(()) }
    }

    fn search(
        &self,
        query: &SearchQuery,
    ) -> impl Future<Output = Result<SearchPage, SearchError>> + Send;

    /// Called by the projector between two batches with nothing staged: the embedded index
    /// adopts a generation `waybill rebuild search` built beside the live one, if one is
    /// offered (`tantivy_rebuild.rs`), reading the log `page` events at a time. Other backends
    /// switch without the projector (the alias).
    fn between_batches(
        &self,
        events: &EventStore,
        page: i64,
    ) -> impl Future<Output = Result<(), SearchError>> + Send {
        let _ = (events, page);
        async { Ok(()) }
    }
}

/// The configured backend.
#[derive(Clone)]
pub enum SearchBackend {
    Tantivy(TantivyIndex),
    Elastic(ElasticIndex),
}

impl SearchBackend {
    /// Whether the index answers: the embedded index's directory is there; the
    /// Elasticsearch/OpenSearch alias resolves to an index.
    pub async fn ping(&self) -> Result<(), SearchError> {
        match self {
            Self::Tantivy(index) => std::fs::metadata(index.dir())
                .map(|_| ())
                .map_err(|source| SearchError::Io {
                    dir: index.dir().display().to_string(),
                    source,
                }),
            Self::Elastic(index) => {
                if index.alias_indices().await?.is_empty() {
                    Err(SearchError::Elastic {
                        status: 404,
                        detail: format!("alias {} points at no index", index.alias()),
                    })
                } else {
                    Ok(())
                }
            }
        }
    }
}

impl SearchIndex for SearchBackend {
    fn backend(&self) -> &'static str {
        match self {
            Self::Tantivy(index) => index.backend(),
            Self::Elastic(index) => index.backend(),
        }
    }

    async fn get(&self, order_ids: &[String]) -> Result<Vec<Option<OrderDocument>>, SearchError> {
        match self {
            Self::Tantivy(index) => index.get(order_ids).await,
            Self::Elastic(index) => index.get(order_ids).await,
        }
    }

    async fn get_searchable(
        &self,
        order_ids: &[String],
    ) -> Result<Vec<Option<OrderDocument>>, SearchError> {
        match self {
            Self::Tantivy(index) => index.get_searchable(order_ids).await,
            Self::Elastic(index) => index.get_searchable(order_ids).await,
        }
    }

    async fn upsert(&self, documents: Vec<OrderDocument>) -> Result<Vec<bool>, SearchError> {
        match self {
            Self::Tantivy(index) => index.upsert(documents).await,
            Self::Elastic(index) => index.upsert(documents).await,
        }
    }

    async fn stage(&self, documents: Vec<OrderDocument>) -> Result<Vec<bool>, SearchError> {
        match self {
            Self::Tantivy(index) => index.stage(documents).await,
            Self::Elastic(index) => index.stage(documents).await,
        }
    }

    async fn commit(&self) -> Result<(), SearchError> {
        match self {
            Self::Tantivy(index) => index.commit().await,
            Self::Elastic(index) => index.commit().await,
        }
    }

    async fn replace(&self, documents: Vec<OrderDocument>) -> Result<Vec<bool>, SearchError> {
        match self {
            Self::Tantivy(index) => index.replace(documents).await,
            Self::Elastic(index) => index.replace(documents).await,
        }
    }

    async fn forget(&self, ids: Vec<String>) -> Result<(), SearchError> {
        match self {
            Self::Tantivy(index) => index.forget(ids).await,
            Self::Elastic(index) => index.forget(ids).await,
        }
    }

    async fn purge(&self) -> Result<(), SearchError> {
        match self {
            Self::Tantivy(index) => index.purge().await,
            Self::Elastic(index) => index.purge().await,
        }
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        match self {
            Self::Tantivy(index) => index.search(query).await,
            Self::Elastic(index) => index.search(query).await,
        }
    }

    async fn between_batches(&self, events: &EventStore, page: i64) -> Result<(), SearchError> {
        match self {
            Self::Tantivy(index) => index.between_batches(events, page).await,
            Self::Elastic(index) => index.between_batches(events, page).await,
        }
    }
}

impl From<TantivyIndex> for SearchBackend {
    fn from(index: TantivyIndex) -> Self {
        Self::Tantivy(index)
    }
}

impl From<ElasticIndex> for SearchBackend {
    fn from(index: ElasticIndex) -> Self {
        Self::Elastic(index)
    }
}
