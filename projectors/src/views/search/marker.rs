//! The search view's generation marker ([`crate::runtime::self_heal`]), kept in the search
//! store itself so that it vanishes with the documents:
//! - Elasticsearch/OpenSearch: the document `generation` in the index `<alias>-marker`
//!   (`generation`, `state` = `catching_up` | `ready`) and beside it the filler's lease, the
//!   document `filler` (`holder`, `until_ms`); every change is conditional (`_create`, or
//!   `if_seq_no`/`if_primary_term`), so instances agree. An in-memory server that restarts
//!   (osmem) or a cluster whose indices were deleted loses the marker with the documents.
//!   Beginning a generation first makes the alias and its first index again when they are
//!   gone, so the fill (and the live projector, whose writes require the alias) have somewhere
//!   to write.
//! - Tantivy: the file `waybill-generation.json` in the index directory (written whole by a
//!   rename). The embedded index has one writer, so the lease is always this process's. A new
//!   or wiped directory has no marker: the projector fills it from the log.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::elastic::ElasticIndex;
use super::elastic_client::Body;
use super::index::SearchBackend;
use super::SearchError;
use crate::runtime::{StoreMarker, StoreState};

const READY: &str = "ready";
const CATCHING_UP: &str = "catching_up";

/// The marker file of the embedded index.
pub const TANTIVY_MARKER_FILE: &str = "waybill-generation.json";

/// The marker of a search store.
#[derive(Clone)]
pub struct SearchStoreMarker {
    backend: SearchBackend,
}

impl SearchStoreMarker {
    pub fn new(backend: SearchBackend) -> Self {
        Self { backend }
    }

    /// What the marker says (readers use this to tell "no match" from "catching up").
    pub async fn read(&self) -> Result<StoreState, SearchError> {
        match &self.backend {
            SearchBackend::Tantivy(index) => {
                Ok(read_file(&marker_file(&index.dir()))?
                    .map_or(StoreState::Missing, Marker::state))
            }
            SearchBackend::Elastic(index) => Ok(elastic_doc::<Marker>(index, "generation")
                .await?
                .map_or(StoreState::Missing, |(marker, _)| marker.state())),
        }
    }
}

/// The marker's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    generation: String,
    state: String,
}

impl Marker {
    fn state(self) -> StoreState {
        if self.state == READY {
            StoreState::Ready {
                generation: self.generation,
            }
        } else {
            StoreState::CatchingUp {
                generation: self.generation,
            }
        }
    }
}

/// The filler's lease (Elasticsearch backend).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    holder: String,
    until_ms: i64,
}

fn marker_file(dir: &std::path::Path) -> PathBuf {
    dir.join(TANTIVY_MARKER_FILE)
}

fn io_error(path: &std::path::Path) -> impl Fn(std::io::Error) -> SearchError + '_ {
    move |source| SearchError::Io {
        dir: path.display().to_string(),
        source,
    }
}

fn read_file(path: &std::path::Path) -> Result<Option<Marker>, SearchError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SearchError::Worker(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Writes the marker whole: a temporary file renamed over the marker.
fn write_file(path: &std::path::Path, marker: &Marker) -> Result<(), SearchError> {
    let temporary = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(marker).map_err(|e| SearchError::Worker(e.to_string()))?;
    std::fs::write(&temporary, bytes).map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io_error(path))
}

/// Marks the generation of the embedded index in `dir` ready (a rebuilt generation, before it
/// is switched in: the projector's self-healing then finds it whole).
pub(super) fn mark_generation_ready(
    dir: &std::path::Path,
    generation: &str,
) -> Result<(), SearchError> {
    write_file(
        &marker_file(dir),
        &Marker {
            generation: generation.to_owned(),
            state: READY.to_owned(),
        },
    )
}

/// A document of the marker index with its sequence number and primary term, `None` when it
/// (or the index) does not exist.
async fn elastic_doc<T: for<'de> Deserialize<'de>>(
    index: &ElasticIndex,
    id: &str,
) -> Result<Option<(T, (u64, u64))>, SearchError> {
    let path = format!("/{}/_doc/{id}", index.marker_index());
    let (status, body) = index.raw(Method::GET, &path, &Body::Empty).await?;
    if status == 404 {
        return Ok(None);
    }
    let body = ElasticIndex::checked((status, body))?;
    if body["found"] == Value::Bool(false) {
        return Ok(None);
    }
    let source: T = serde_json::from_value(body["_source"].clone())
        .map_err(|e| SearchError::Worker(format!("marker document {id}: {e}")))?;
    let seq_no = body["_seq_no"].as_u64().unwrap_or(0);
    let term = body["_primary_term"].as_u64().unwrap_or(1);
    Ok(Some((source, (seq_no, term))))
}

/// Writes a marker-index document: created only if absent (`expected` `None`), or replaced
/// only if unchanged since it was read. `false` when another writer got there first.
async fn elastic_put(
    index: &ElasticIndex,
    id: &str,
    source: Value,
    expected: Option<(u64, u64)>,
) -> Result<bool, SearchError> {
    let marker = index.marker_index();
    let path = match expected {
        None => format!("/{marker}/_create/{id}?refresh=true"),
        Some((seq_no, term)) => {
            format!("/{marker}/_doc/{id}?refresh=true&if_seq_no={seq_no}&if_primary_term={term}")
        }
    };
    let (status, body) = index.raw(Method::PUT, &path, &Body::Json(source)).await?;
    if status == 409 {
        return Ok(false);
    }
    ElasticIndex::checked((status, body)).map(|_| true)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl StoreMarker for SearchStoreMarker {
    type Error = SearchError;

    async fn state(&self) -> Result<StoreState, SearchError> {
        self.read().await
    }

    async fn begin(&self, generation: &str) -> Result<bool, SearchError> {
        let marker = Marker {
            generation: generation.to_owned(),
            state: CATCHING_UP.to_owned(),
        };
        match &self.backend {
            SearchBackend::Tantivy(index) => {
                let path = marker_file(&index.dir());
                if read_file(&path)?.is_some() {
                    return Ok(false);
                }
                write_file(&path, &marker)?;
                Ok(true)
            }
            SearchBackend::Elastic(index) => {
                index.ensure_alias().await?;
                let source = serde_json::to_value(&marker)
                    .map_err(|e| SearchError::Worker(e.to_string()))?;
                elastic_put(index, "generation", source, None).await
            }
        }
    }

    async fn finish(&self, generation: &str) -> Result<bool, SearchError> {
        match &self.backend {
            SearchBackend::Tantivy(index) => {
                let path = marker_file(&index.dir());
                match read_file(&path)? {
                    Some(mut marker) if marker.generation == generation => {
                        marker.state = READY.to_owned();
                        write_file(&path, &marker)?;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            SearchBackend::Elastic(index) => {
                match elastic_doc::<Marker>(index, "generation").await? {
                    Some((mut marker, seen)) if marker.generation == generation => {
                        marker.state = READY.to_owned();
                        let source = serde_json::to_value(&marker)
                            .map_err(|e| SearchError::Worker(e.to_string()))?;
                        elastic_put(index, "generation", source, Some(seen)).await
                    }
                    _ => Ok(false),
                }
            }
        }
    }

    async fn lease(&self, holder: &str, ttl: Duration) -> Result<bool, SearchError> {
        let SearchBackend::Elastic(index) = &self.backend else {
            // One writer per directory: whoever runs this holds the index.
            return Ok(true);
        };
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let lease = json!({"holder": holder, "until_ms": now_ms().saturating_add(ttl_ms)});
        match elastic_doc::<Lease>(index, "filler").await? {
            None => elastic_put(index, "filler", lease, None).await,
            Some((current, seen)) if current.holder == holder || current.until_ms < now_ms() => {
                elastic_put(index, "filler", lease, Some(seen)).await
            }
            Some(_) => Ok(false),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::views::search::{ElasticOptions, TantivyIndex};

    /// The marker's life on one backend: missing, one generation begun (a second begin is
    /// refused), finished only for its own generation, lost with the store.
    async fn marker_lifecycle(
        marker: SearchStoreMarker,
        lose: impl std::future::Future<Output = ()>,
    ) {
        assert_eq!(marker.state().await.unwrap(), StoreState::Missing);
        assert!(marker.begin("g1").await.unwrap());
        assert!(
            !marker.begin("g2").await.unwrap(),
            "one generation at a time"
        );
        assert_eq!(
            marker.state().await.unwrap(),
            StoreState::CatchingUp {
                generation: "g1".into()
            }
        );
        assert!(!marker.finish("g2").await.unwrap(), "not g2's marker");
        assert!(marker.finish("g1").await.unwrap());
        assert_eq!(
            marker.state().await.unwrap(),
            StoreState::Ready {
                generation: "g1".into()
            }
        );
        lose.await;
        assert_eq!(marker.state().await.unwrap(), StoreState::Missing);
    }

    #[tokio::test]
    async fn tantivy_marker_lives_and_dies_with_the_index_directory() {
        let path = std::env::temp_dir().join(format!(
            "waybill-marker-test-{}",
            uuid::Uuid::now_v7().simple()
        ));
        let index = TantivyIndex::open_writer(&path).unwrap();
        let marker = SearchStoreMarker::new(SearchBackend::Tantivy(index));
        assert!(marker
            .lease("anyone", Duration::from_secs(1))
            .await
            .unwrap());
        let file = path.join(TANTIVY_MARKER_FILE);
        marker_lifecycle(marker, async move { std::fs::remove_file(file).unwrap() }).await;
        std::fs::remove_dir_all(&path).unwrap();
    }

    #[tokio::test]
    async fn elastic_marker_and_lease_are_conditional_and_the_alias_comes_back() {
        let Some(server) = crate::views::search::osmem::Osmem::start() else {
            return;
        };
        let prefix = format!("marker{}", uuid::Uuid::now_v7().simple());
        let options = ElasticOptions::default();
        let index = ElasticIndex::connect(&server.url, &prefix, &options)
            .await
            .unwrap();
        let marker = SearchStoreMarker::new(SearchBackend::Elastic(index.clone()));

        // The lease: one holder until it lapses.
        assert!(marker.lease("a", Duration::from_secs(30)).await.unwrap());
        assert!(
            marker.lease("a", Duration::from_secs(30)).await.unwrap(),
            "renewed"
        );
        assert!(!marker.lease("b", Duration::from_secs(30)).await.unwrap());
        assert!(marker.lease("a", Duration::from_millis(1)).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            marker.lease("b", Duration::from_secs(30)).await.unwrap(),
            "lapsed"
        );

        // The alias and the marker index deleted, as on a server that lost everything.
        let lose = {
            let index = index.clone();
            async move {
                for name in index.alias_indices().await.unwrap() {
                    index
                        .raw(Method::DELETE, &format!("/{name}"), &Body::Empty)
                        .await
                        .unwrap();
                }
                let marker_index = format!("/{}", index.marker_index());
                index
                    .raw(Method::DELETE, &marker_index, &Body::Empty)
                    .await
                    .unwrap();
                assert!(index.alias_indices().await.unwrap().is_empty());
            }
        };
        marker_lifecycle(marker.clone(), lose).await;
        assert!(marker.begin("g3").await.unwrap());
        assert_eq!(
            index.alias_indices().await.unwrap().len(),
            1,
            "alias made again"
        );
    }
}
