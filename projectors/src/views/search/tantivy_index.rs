//! The embedded backend: a Tantivy index in a directory on disk (`WAYBILL_SEARCH_DIR`).
//!
//! One process holds the writer (the search projector; Tantivy's lock file refuses a second).
//! The projector stages documents ([`SearchIndex::stage`]) and commits on a time policy
//! ([`SearchIndex::commit`], every `WAYBILL_SEARCH_COMMIT_MS`), like a refresh interval; a
//! staged document is read back by this process at once, and its events are acknowledged only
//! after the commit that made it durable. Each
//! document stores its order's stream version; the writer reads it before every update and
//! skips a document whose stored version is the same or newer. Other processes (the query API
//! when run on its own) open the directory with a reader that reloads when a commit lands.
//!
//! The directory holds generations of the index (`generations.rs`): the handle reads and
//! writes the live one. A rebuild's generation replaces it in the projector's handle
//! ([`TantivyIndex::switch_to`], every clone at once), and a reader follows `CURRENT` to it.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
use tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue, SortByString};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, PhraseQuery, Query,
    RangeQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, Value, FAST, INDEXED, STORED, STRING, TEXT,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument,
    Term,
};
use waybill_schemas::views::{FacetCount, OrderDocument, SearchFacets, SearchHit};
use waybill_write_side::event_store::EventStore;

use super::fields::{boost, enum_word, fuzziness, query_terms, IndexFields, QueryTerm, TextMatch};
use super::generations::{Generation, Layout};
use super::highlight::highlight;
use super::index::SearchIndex;
use super::query::{Cursor, SearchPage, SearchQuery, SortField};
use super::tantivy_rebuild::Adoption;
use super::SearchError;

/// Writer memory budget (Tantivy flushes a segment when it is used up).
const WRITER_HEAP: usize = 64_000_000;

#[derive(Clone, Copy)]
struct Fields {
    order_id: Field,
    document: Field,
    names: Field,
    places: Field,
    keys: Field,
    phone_keys: Field,
    status: Field,
    channel: Field,
    tags: Field,
    created_at: Field,
    updated_at: Field,
    total: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        order_id: b.add_text_field("order_id", STRING | STORED | FAST),
        document: b.add_bytes_field("document", STORED),
        names: b.add_text_field("names", TEXT),
        places: b.add_text_field("places", TEXT),
        keys: b.add_text_field("keys", STRING),
        phone_keys: b.add_text_field("phone_keys", STRING),
        status: b.add_text_field("status", STRING | FAST),
        channel: b.add_text_field("channel", STRING | FAST),
        tags: b.add_text_field("tags", STRING | FAST),
        created_at: b.add_i64_field("created_at", INDEXED | FAST),
        updated_at: b.add_i64_field("updated_at", INDEXED | FAST),
        total: b.add_i64_field("total", INDEXED | FAST),
    };
    (b.build(), fields)
}

/// The writer and the documents it holds that no commit has made durable yet.
struct Writer {
    writer: IndexWriter,
    /// Order id → the document staged for it since the last commit; reads see these first.
    staged: HashMap<String, OrderDocument>,
}

/// One generation's index, opened for writing or reading.
struct Inner {
    dir: PathBuf,
    /// `None`: nothing to open yet (a reader of a directory no writer has made an index in);
    /// an empty index in memory answers meanwhile.
    generation: Option<Generation>,
    index: Index,
    reader: IndexReader,
    /// `None`: opened for reading. `Some(None)`: retired, this generation was replaced.
    writer: Option<Mutex<Option<Writer>>>,
    fields: Fields,
}

impl Drop for Inner {
    /// However a generation's last handle goes (closed, retired, a view restarted in this
    /// process), its writer's merges end before the directory's lock is free for another.
    fn drop(&mut self) {
        self.release_writer();
    }
}

/// The index handle: the live generation, which a rebuild's adoption replaces (every clone
/// sees the new one at once) and a reader follows from the `CURRENT` file.
struct Shared {
    layout: Layout,
    live: RwLock<Arc<Inner>>,
    /// Order ids written to the live generation since an adoption began catching a rebuilt
    /// generation up in the background (`None`: no adoption under way).
    touched: Mutex<Option<HashSet<String>>>,
    /// The adoption under way (the projector's handle).
    adoption: tokio::sync::Mutex<Option<Adoption>>,
}

/// A Tantivy index directory, opened for writing (the projector) or reading. Cheap to clone;
/// clones share the live generation.
#[derive(Clone)]
pub struct TantivyIndex(Arc<Shared>);

/// How often a reader looks at `CURRENT` for a new live generation.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

fn tantivy_err(dir: &Path) -> impl Fn(tantivy::TantivyError) -> SearchError + '_ {
    move |source| SearchError::Tantivy {
        dir: dir.display().to_string(),
        detail: source.to_string(),
    }
}

fn other_schema(dir: &Path, e: impl std::fmt::Display) -> SearchError {
    SearchError::Tantivy {
        dir: dir.display().to_string(),
        detail: format!(
            "the index was made with other fields ({e}): run `waybill rebuild search` \
             to make it anew"
        ),
    }
}

/// Opens (creating if needed) the index in `dir`, for its writer.
fn open_or_create(dir: &Path) -> Result<(Index, Fields), SearchError> {
    std::fs::create_dir_all(dir).map_err(|source| SearchError::Io {
        dir: dir.display().to_string(),
        source,
    })?;
    let directory = MmapDirectory::open(dir).map_err(|e| SearchError::Tantivy {
        dir: dir.display().to_string(),
        detail: e.to_string(),
    })?;
    let (schema, fields) = schema();
    let index = Index::open_or_create(directory, schema).map_err(|e| match e {
        tantivy::TantivyError::SchemaError(_) => other_schema(dir, e),
        e => tantivy_err(dir)(e),
    })?;
    Ok((index, fields))
}

/// Opens the index a writer made in `dir`, for reading (never creates one).
fn open_existing(dir: &Path) -> Result<(Index, Fields), SearchError> {
    let directory = MmapDirectory::open(dir).map_err(|e| SearchError::Tantivy {
        dir: dir.display().to_string(),
        detail: e.to_string(),
    })?;
    let index = Index::open(directory).map_err(tantivy_err(dir))?;
    let (schema, fields) = schema();
    if index.schema() != schema {
        return Err(other_schema(dir, "schema differs"));
    }
    Ok((index, fields))
}

impl Inner {
    fn open_writer(layout: &Layout, generation: Generation) -> Result<Self, SearchError> {
        let dir = layout.dir(&generation);
        let (index, fields) = open_or_create(&dir)?;
        let writer: IndexWriter = index
            .writer_with_num_threads(1, WRITER_HEAP)
            .map_err(tantivy_err(&dir))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_err(&dir))?;
        Ok(Self {
            dir,
            generation: Some(generation),
            index,
            reader,
            writer: Some(Mutex::new(Some(Writer {
                writer,
                staged: HashMap::new(),
            }))),
            fields,
        })
    }

    /// The live generation for a reader: the one `CURRENT` names, else the root's index, else
    /// (no writer made one yet) an empty index in memory.
    fn open_reader(layout: &Layout) -> Result<Self, SearchError> {
        let generation = layout.current()?;
        if !layout.has_index(&generation) {
            return Self::in_memory(layout);
        }
        let dir = layout.dir(&generation);
        let (index, fields) = open_existing(&dir)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(tantivy_err(&dir))?;
        Ok(Self {
            dir,
            generation: Some(generation),
            index,
            reader,
            writer: None,
            fields,
        })
    }

    /// An empty index in memory, standing for a directory without one.
    fn in_memory(layout: &Layout) -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_err(layout.base()))?;
        Ok(Self {
            dir: layout.base().to_path_buf(),
            generation: None,
            index,
            reader,
            writer: None,
            fields,
        })
    }

    /// The writer, locked (`None` inside once retired); `ReadOnly` for a reader.
    fn lock_writer(&self) -> Result<std::sync::MutexGuard<'_, Option<Writer>>, SearchError> {
        let writer = self.writer.as_ref().ok_or(SearchError::ReadOnly)?;
        writer.lock().map_err(|_| SearchError::WriterPoisoned)
    }

    /// Takes this generation's writer out and lets it go only once its merges have finished
    /// (blocking). Dropping a Tantivy writer stops it but leaves the merges it began running,
    /// and one that ends after the directory's lock has passed to the next writer still acts
    /// on the directory (it removes the files of what it merged away): seen as an order with
    /// two documents, at two versions, in a generation adopted after a rebuild.
    fn release_writer(&self) {
        let Ok(mut slot) = self.lock_writer() else {
            return;
        };
        if let Some(writer) = slot.take() {
            if let Err(error) = writer.writer.wait_merging_threads() {
                tracing::warn!(dir = %self.dir.display(), %error, "search index merges failed while its writer closed");
            }
        }
    }
}

impl TantivyIndex {
    /// Opens (creating if needed) the live generation of the index in `dir` with its single
    /// writer. Fails while another process holds the writer.
    pub fn open_writer(dir: impl Into<PathBuf>) -> Result<Self, SearchError> {
        let layout = Layout::new(dir);
        // A rebuild that ran without a projector may switch generations while this opens:
        // the writer is kept only if the generation it opened is still the live one.
        for _ in 0..5 {
            let generation = layout.current()?;
            let inner = Inner::open_writer(&layout, generation.clone())?;
            if layout.current()? == generation {
                return Ok(Self::holding(layout, inner));
            }
        }
        Err(SearchError::Tantivy {
            dir: layout.base().display().to_string(),
            detail: "the live generation kept changing while the writer opened".to_owned(),
        })
    }

    /// Opens (creating) one generation with its writer, whether live or not: a rebuild's new
    /// generation, which nobody reads until it is switched in.
    pub(super) fn open_generation_writer(
        layout: &Layout,
        generation: &Generation,
    ) -> Result<Self, SearchError> {
        let inner = Inner::open_writer(layout, generation.clone())?;
        Ok(Self::holding(layout.clone(), inner))
    }

    fn holding(layout: Layout, inner: Inner) -> Self {
        Self(Arc::new(Shared {
            layout,
            live: RwLock::new(Arc::new(inner)),
            touched: Mutex::new(None),
            adoption: tokio::sync::Mutex::new(None),
        }))
    }

    /// Opens the index in `dir` for searching only: the reader picks up the writer's commits
    /// by itself, and follows `CURRENT` to a new generation within [`FOLLOW_EVERY`], so a
    /// rebuild switched in is seen whole (never half-built), and never after an older one.
    pub fn open_reader(dir: impl Into<PathBuf>) -> Result<Self, SearchError> {
        let layout = Layout::new(dir);
        // The directory is there for the writer to come (and answers the readiness probe).
        std::fs::create_dir_all(layout.base()).map_err(|source| SearchError::Io {
            dir: layout.base().display().to_string(),
            source,
        })?;
        let inner = Inner::open_reader(&layout)?;
        let index = Self::holding(layout, inner);
        let shared = Arc::downgrade(&index.0);
        std::thread::Builder::new()
            .name("waybill-search-generation-follower".to_owned())
            .spawn(move || {
                while let Some(shared) = shared.upgrade() {
                    if let Err(error) = shared.follow() {
                        tracing::debug!(%error, "search index generation not followed yet");
                    }
                    drop(shared);
                    std::thread::sleep(FOLLOW_EVERY);
                }
            })
            .map_err(|source| SearchError::Io {
                dir: index.0.layout.base().display().to_string(),
                source,
            })?;
        Ok(index)
    }

    /// The directory without opening its live generation (an empty index in memory stands in
    /// for it): what a rebuild needs, which writes a generation of its own.
    pub fn detached(dir: impl Into<PathBuf>) -> Result<Self, SearchError> {
        let layout = Layout::new(dir);
        let inner = Inner::in_memory(&layout)?;
        Ok(Self::holding(layout, inner))
    }

    /// Lets go of this handle's writer once its merges have finished (blocking; see
    /// [`Inner::release_writer`]). Other clones of the handle can no longer write.
    pub(super) fn release_writer(&self) {
        self.0.live().release_writer();
    }

    /// Whether this handle holds the live generation's writer.
    pub(super) fn writes(&self) -> bool {
        self.0.live().writer.is_some() && self.generation().is_some()
    }

    /// The live generation's directory.
    pub fn dir(&self) -> PathBuf {
        self.0.live().dir.clone()
    }

    /// The configured directory, which holds every generation.
    pub fn base(&self) -> &Path {
        self.0.layout.base()
    }

    /// The live generation's name (`root` for an index made before generations, `None` for
    /// a reader that has found no index yet).
    pub fn generation(&self) -> Option<String> {
        self.0
            .live()
            .generation
            .as_ref()
            .map(|g| g.name().to_owned())
    }

    pub(super) fn layout(&self) -> &Layout {
        &self.0.layout
    }

    /// The adoption of a rebuilt generation under way in this (the projector's) handle.
    pub(super) fn adoption(&self) -> &tokio::sync::Mutex<Option<Adoption>> {
        &self.0.adoption
    }

    /// From now on, remembers the orders written to the live generation (`Some`) until
    /// tracking stops (`None`); returns those remembered so far and starts afresh.
    pub(super) fn track_writes(&self, on: bool) -> Vec<String> {
        let mut touched = self
            .0
            .touched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let seen = touched.take().unwrap_or_default();
        if on {
            *touched = Some(HashSet::new());
        }
        seen.into_iter().collect()
    }

    /// The order ids of `documents` to remember as written, if writes are tracked.
    fn tracked_ids(&self, documents: &[OrderDocument]) -> Option<Vec<String>> {
        let touched = self
            .0
            .touched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        touched.as_ref()?;
        Some(
            documents
                .iter()
                .map(|d| d.order_id.to_lowercase())
                .collect(),
        )
    }

    fn remember(&self, ids: Option<Vec<String>>, written: &[bool]) {
        let Some(ids) = ids else { return };
        let mut touched = self
            .0
            .touched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(touched) = touched.as_mut() {
            touched.extend(
                ids.into_iter()
                    .zip(written)
                    .filter_map(|(id, ok)| ok.then_some(id)),
            );
        }
    }

    /// Makes the latest commit visible now (instead of when the reload thread notices it),
    /// and for a reader the generation `CURRENT` names now.
    pub fn reload(&self) -> Result<(), SearchError> {
        if self.0.live().writer.is_none() {
            self.0.follow()?;
        }
        let live = self.0.live();
        live.reader.reload().map_err(tantivy_err(&live.dir))
    }

    /// Makes `green` (a generation opened with [`Self::open_generation_writer`], caught up
    /// and committed) the live one of this writer: `CURRENT` names it, every clone of this
    /// handle reads and writes it from now on, the old generation's writer is dropped and its
    /// directory removed.
    pub(super) async fn switch_to(&self, green: TantivyIndex) -> Result<(), SearchError> {
        let shared = self.0.clone();
        blocking(move || {
            let green = green.0.live();
            let generation = green.generation.clone().ok_or(SearchError::ReadOnly)?;
            shared.layout.switch_to(&generation)?;
            let retired = {
                let mut live = shared
                    .live
                    .write()
                    .map_err(|_| SearchError::WriterPoisoned)?;
                std::mem::replace(&mut *live, green)
            };
            // The old writer goes once its merges have finished; that releases its lock.
            retired.release_writer();
            if let Some(old) = &retired.generation {
                shared.layout.remove(old)?;
            }
            tracing::info!(
                dir = %shared.layout.base().display(),
                generation = generation.name(),
                retired = retired.generation.as_ref().map_or("none", |g| g.name()),
                "search index generation switched"
            );
            Ok(())
        })
        .await
    }

    /// Runs `work` on the live generation's writer, on a blocking thread; a generation retired
    /// in the meantime hands over to the one that replaced it.
    async fn on_writer<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner, &mut Writer) -> Result<T, SearchError> + Send + 'static,
    ) -> Result<T, SearchError> {
        let shared = self.0.clone();
        blocking(move || {
            for _ in 0..3 {
                let inner = shared.live();
                let mut guard = inner.lock_writer()?;
                if let Some(writer) = guard.as_mut() {
                    return work(&inner, writer);
                }
            }
            Err(SearchError::Retired)
        })
        .await
    }

    /// Runs `read` on the live generation, on a blocking thread (again on the new one if the
    /// generation was retired meanwhile).
    async fn on_live<T: Send + 'static>(
        &self,
        read: impl Fn(&Inner) -> Result<T, SearchError> + Send + 'static,
    ) -> Result<T, SearchError> {
        let shared = self.0.clone();
        blocking(move || {
            let mut outcome = Err(SearchError::Retired);
            for _ in 0..3 {
                outcome = read(&shared.live());
                if !matches!(outcome, Err(SearchError::Retired)) {
                    break;
                }
            }
            outcome
        })
        .await
    }
}

impl Shared {
    fn live(&self) -> Arc<Inner> {
        self.live
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A reader: opens the generation `CURRENT` names if it is not the one being read.
    fn follow(&self) -> Result<(), SearchError> {
        let wanted = self.layout.current()?;
        let live = self.live();
        if live.generation.as_ref() == Some(&wanted) || !self.layout.has_index(&wanted) {
            return Ok(());
        }
        let inner = Arc::new(Inner::open_reader(&self.layout)?);
        *self.live.write().map_err(|_| SearchError::WriterPoisoned)? = inner;
        tracing::info!(
            dir = %self.layout.base().display(),
            generation = wanted.name(),
            "search index reader moved to a new generation"
        );
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SearchError> + Send + 'static,
) -> Result<T, SearchError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SearchError::Worker(e.to_string()))?
}

impl Inner {
    fn load(
        &self,
        searcher: &Searcher,
        order_id: &str,
    ) -> Result<Option<OrderDocument>, SearchError> {
        let term = Term::from_field_text(self.fields.order_id, &order_id.to_lowercase());
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        let found = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(tantivy_err(&self.dir))?;
        match found.first() {
            Some((_, address)) => self.document_at(searcher, *address).map(Some),
            None => Ok(None),
        }
    }

    fn document_at(
        &self,
        searcher: &Searcher,
        address: DocAddress,
    ) -> Result<OrderDocument, SearchError> {
        let stored: TantivyDocument = searcher.doc(address).map_err(tantivy_err(&self.dir))?;
        let bytes = stored
            .get_first(self.fields.document)
            .and_then(|v| v.as_bytes())
            .unwrap_or_default();
        serde_json::from_slice(bytes).map_err(|source| SearchError::CorruptDocument {
            backend: "tantivy",
            source,
        })
    }

    fn tantivy_document(&self, document: &OrderDocument) -> Result<TantivyDocument, SearchError> {
        let f = &self.fields;
        let derived = IndexFields::of(document);
        let json = serde_json::to_vec(document).map_err(|source| SearchError::CorruptDocument {
            backend: "tantivy",
            source,
        })?;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.order_id, document.order_id.to_lowercase());
        doc.add_bytes(f.document, &json);
        for name in &derived.names {
            doc.add_text(f.names, name);
        }
        for place in &derived.places {
            doc.add_text(f.places, place);
        }
        for key in &derived.keys {
            doc.add_text(f.keys, key);
        }
        for key in &derived.phone_keys {
            doc.add_text(f.phone_keys, key);
        }
        doc.add_text(f.status, &derived.status);
        doc.add_text(f.channel, &derived.channel);
        for tag in &derived.tags {
            doc.add_text(f.tags, tag);
        }
        doc.add_i64(f.created_at, derived.created_at);
        doc.add_i64(f.updated_at, derived.updated_at);
        doc.add_i64(f.total, derived.total);
        Ok(doc)
    }

    /// Adds each document newer than what the index (staged documents included) holds, without
    /// committing: searches and [`SearchIndex::get`] of other processes do not see it until
    /// [`Inner::commit`]; `get` in this process does.
    fn stage(
        &self,
        writer: &mut Writer,
        documents: Vec<OrderDocument>,
    ) -> Result<Vec<bool>, SearchError> {
        let searcher = self.reader.searcher();
        let mut results = Vec::with_capacity(documents.len());
        for document in documents {
            let id = document.order_id.to_lowercase();
            let stored = match writer.staged.get(&id) {
                Some(staged) => Some(staged.version),
                None => self.load(&searcher, &id)?.map(|d| d.version),
            };
            if stored.is_some_and(|v| v >= document.version) {
                results.push(false);
                continue;
            }
            let doc = self.tantivy_document(&document)?;
            writer
                .writer
                .delete_term(Term::from_field_text(self.fields.order_id, &id));
            writer
                .writer
                .add_document(doc)
                .map_err(tantivy_err(&self.dir))?;
            writer.staged.insert(id, document);
            results.push(true);
        }
        Ok(results)
    }

    /// Makes every staged document durable and searchable (one Tantivy commit). A failed
    /// commit drops the staged documents (rolled back): their events must be applied again.
    fn commit(&self, writer: &mut Writer) -> Result<(), SearchError> {
        if writer.staged.is_empty() {
            return Ok(());
        }
        let committed = writer.writer.commit().map(drop);
        writer.staged.clear();
        if let Err(err) = committed {
            let _ = writer.writer.rollback();
            return Err(tantivy_err(&self.dir)(err));
        }
        self.reader.reload().map_err(tantivy_err(&self.dir))
    }

    /// Deletes the documents of `ids` (staged ones included) and commits.
    fn forget(&self, writer: &mut Writer, ids: &[String]) -> Result<(), SearchError> {
        for id in ids {
            let id = id.to_lowercase();
            writer
                .writer
                .delete_term(Term::from_field_text(self.fields.order_id, &id));
            writer.staged.remove(&id);
        }
        let committed = writer.writer.commit().map(drop);
        writer.staged.clear();
        if let Err(err) = committed {
            let _ = writer.writer.rollback();
            return Err(tantivy_err(&self.dir)(err));
        }
        self.reader.reload().map_err(tantivy_err(&self.dir))
    }

    /// Merges every segment into one, which leaves deleted documents behind, and removes the
    /// files no segment uses any more.
    fn purge(&self, writer: &mut Writer) -> Result<(), SearchError> {
        let segments = self
            .index
            .searchable_segment_ids()
            .map_err(tantivy_err(&self.dir))?;
        if !segments.is_empty() {
            writer
                .writer
                .merge(&segments)
                .wait()
                .map_err(tantivy_err(&self.dir))?;
        }
        self.reader.reload().map_err(tantivy_err(&self.dir))?;
        writer
            .writer
            .garbage_collect_files()
            .wait()
            .map_err(tantivy_err(&self.dir))?;
        Ok(())
    }

    /// The committed documents only: what a search sees.
    fn get_committed(&self, ids: &[String]) -> Result<Vec<Option<OrderDocument>>, SearchError> {
        let searcher = self.reader.searcher();
        ids.iter()
            .map(|id| self.load(&searcher, &id.to_lowercase()))
            .collect()
    }

    /// The staged (else stored) documents of these orders.
    fn get(&self, ids: &[String]) -> Result<Vec<Option<OrderDocument>>, SearchError> {
        let searcher = self.reader.searcher();
        let guard = match &self.writer {
            Some(_) => Some(self.lock_writer()?),
            None => None,
        };
        let staged = match &guard {
            Some(guard) => Some(guard.as_ref().ok_or(SearchError::Retired)?),
            None => None,
        };
        ids.iter()
            .map(|id| {
                let id = id.to_lowercase();
                match staged.and_then(|w| w.staged.get(&id)) {
                    Some(document) => Ok(Some(document.clone())),
                    None => self.load(&searcher, &id),
                }
            })
            .collect()
    }

    /// Every way a document can match one term (see [`super::fields`]), boosted for relevance.
    fn term_query(&self, term: &QueryTerm) -> Box<dyn Query> {
        let f = &self.fields;
        let boosted = |q: Box<dyn Query>, by: f32| -> (Occur, Box<dyn Query>) {
            (Occur::Should, Box::new(BoostQuery::new(q, by)))
        };
        let exact = |field: Field, word: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, word),
                IndexRecordOption::WithFreqs,
            ))
        };
        let phrase = |field: Field, words: &[String]| -> Box<dyn Query> {
            match words {
                [word] => exact(field, word),
                _ => Box::new(PhraseQuery::new(
                    words
                        .iter()
                        .map(|w| Term::from_field_text(field, w))
                        .collect(),
                )),
            }
        };
        let mut any = vec![boosted(
            Box::new(TermQuery::new(
                Term::from_field_text(f.keys, &term.raw),
                IndexRecordOption::Basic,
            )),
            boost::KEY_EXACT,
        )];
        if term.key_prefix() {
            any.push(boosted(prefix_query(f.keys, &term.raw), boost::KEY_PREFIX));
        }
        if let Some(digits) = &term.phone {
            any.push(boosted(
                prefix_query(f.phone_keys, digits),
                boost::PHONE_PREFIX,
            ));
        }
        match term.text() {
            Some(TextMatch::Word(word)) => {
                any.push(boosted(exact(f.names, &word), boost::NAME_EXACT));
                let distance = fuzziness(&word);
                if distance > 0 {
                    let fuzzy =
                        FuzzyTermQuery::new(Term::from_field_text(f.names, &word), distance, true);
                    any.push(boosted(Box::new(fuzzy), boost::NAME_TYPO));
                }
                any.push(boosted(exact(f.places, &word), boost::PLACE));
            }
            Some(TextMatch::Phrase(words)) => {
                any.push(boosted(phrase(f.names, &words), boost::NAME_EXACT));
                any.push(boosted(phrase(f.places, &words), boost::PLACE));
            }
            Some(TextMatch::PlacesPhrase(words)) => {
                any.push(boosted(phrase(f.places, &words), boost::PLACE));
            }
            None => {}
        }
        Box::new(BooleanQuery::new(any))
    }

    fn build_query(&self, query: &SearchQuery) -> Result<BooleanQuery, SearchError> {
        let f = &self.fields;
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for term in query_terms(&query.text) {
            must.push((Occur::Must, self.term_query(&term)));
        }
        // Filters narrow without changing relevance: they score nothing.
        let any_of = |field: Field, values: Vec<String>| -> Box<dyn Query> {
            filter(BooleanQuery::new(
                values
                    .iter()
                    .map(|v| {
                        let q: Box<dyn Query> = Box::new(TermQuery::new(
                            Term::from_field_text(field, v),
                            IndexRecordOption::Basic,
                        ));
                        (Occur::Should, q)
                    })
                    .collect(),
            ))
        };
        if !query.status.is_empty() {
            let values = query.status.iter().map(enum_word).collect();
            must.push((Occur::Must, any_of(f.status, values)));
        }
        if !query.channel.is_empty() {
            let values = query
                .channel
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect();
            must.push((Occur::Must, any_of(f.channel, values)));
        }
        let range = |field: Field, from: Option<i64>, to: Bound<i64>| -> Box<dyn Query> {
            let lower = from.map_or(Bound::Unbounded, |v| {
                Bound::Included(Term::from_field_i64(field, v))
            });
            let upper = match to {
                Bound::Included(v) => Bound::Included(Term::from_field_i64(field, v)),
                Bound::Excluded(v) => Bound::Excluded(Term::from_field_i64(field, v)),
                Bound::Unbounded => Bound::Unbounded,
            };
            filter(RangeQuery::new(lower, upper))
        };
        if query.created_from.is_some() || query.created_to.is_some() {
            must.push((
                Occur::Must,
                range(
                    f.created_at,
                    query.created_from.map(|t| t.timestamp_micros()),
                    query
                        .created_to
                        .map_or(Bound::Unbounded, |t| Bound::Excluded(t.timestamp_micros())),
                ),
            ));
        }
        if query.total_min.is_some() || query.total_max.is_some() {
            must.push((
                Occur::Must,
                range(
                    f.total,
                    query.total_min,
                    query.total_max.map_or(Bound::Unbounded, Bound::Included),
                ),
            ));
        }
        for (flag, tag) in [
            (query.has_return, "return"),
            (query.has_exception, "exception"),
        ] {
            if let Some(wanted) = flag {
                let q = filter(TermQuery::new(
                    Term::from_field_text(f.tags, tag),
                    IndexRecordOption::Basic,
                ));
                must.push((if wanted { Occur::Must } else { Occur::MustNot }, q));
            }
        }
        // Only exclusions (or nothing) left: they need something to exclude from.
        if !must.iter().any(|(occur, _)| *occur == Occur::Must) {
            must.push((Occur::Must, filter(AllQuery)));
        }
        Ok(BooleanQuery::new(must))
    }

    /// Orders strictly after `after` in the query's sort: a smaller (descending) or larger
    /// (ascending) sort value, or the same value and an order id further along.
    fn after_query(&self, query: &SearchQuery, after: &Cursor) -> Box<dyn Query> {
        let f = &self.fields;
        let field = match query.sort.field.field() {
            "updated_at" => f.updated_at,
            "total" => f.total,
            _ => f.created_at,
        };
        let value = Term::from_field_i64(field, after.value);
        let id = Term::from_field_text(f.order_id, &after.order_id.to_lowercase());
        let (beyond_value, beyond_id) = if query.sort.descending {
            (
                RangeQuery::new(Bound::Unbounded, Bound::Excluded(value.clone())),
                RangeQuery::new(Bound::Unbounded, Bound::Excluded(id)),
            )
        } else {
            (
                RangeQuery::new(Bound::Excluded(value.clone()), Bound::Unbounded),
                RangeQuery::new(Bound::Excluded(id), Bound::Unbounded),
            )
        };
        let same_value: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(value, IndexRecordOption::Basic)) as Box<dyn Query>,
            ),
            (Occur::Must, Box::new(beyond_id)),
        ]));
        Box::new(BooleanQuery::new(vec![
            (Occur::Should, Box::new(beyond_value) as Box<dyn Query>),
            (Occur::Should, same_value),
        ]))
    }

    fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        let searcher = self.reader.searcher();
        let built = self.build_query(query)?;
        let order = if query.sort.descending {
            Order::Desc
        } else {
            Order::Asc
        };
        let limit = query.page_size();
        let aggs: Aggregations = serde_json::from_value(serde_json::json!({
            "status": {"terms": {"field": "status", "size": 20}},
            "channel": {"terms": {"field": "channel", "size": 20}},
        }))
        .map_err(|source| SearchError::CorruptDocument {
            backend: "tantivy",
            source,
        })?;
        let facets = AggregationCollector::from_aggs(
            aggs,
            AggContextParams::new(
                AggregationLimitsGuard::default(),
                self.index.tokenizers().clone(),
            ),
        );
        let err = tantivy_err(&self.dir);
        // (sort value for the cursor, order id, address) of each hit on the page.
        type Found = Vec<(i64, Option<String>, DocAddress)>;
        let (found, total, facets): (Found, usize, _) = if query.sort.field == SortField::Relevance
        {
            let top = TopDocs::with_limit(limit)
                .and_offset(query.offset())
                .order_by((
                    (SortBySimilarityScore, Order::Desc),
                    (SortByString::for_field("order_id"), Order::Desc),
                ));
            let (top, total, facets) = searcher
                .search(&built, &(top, Count, facets))
                .map_err(&err)?;
            let found = top
                .into_iter()
                .map(|((_, id), address)| (0, id, address))
                .collect();
            (found, total, facets)
        } else {
            let top = TopDocs::with_limit(limit).order_by((
                (
                    SortByStaticFastValue::<i64>::for_field(query.sort.field.field()),
                    order,
                ),
                (SortByString::for_field("order_id"), order),
            ));
            // Like `search_after` elsewhere, the cursor limits the page, not the total or facets.
            let (top, total, facets) = match &query.after {
                None => searcher
                    .search(&built, &(top, Count, facets))
                    .map_err(&err)?,
                Some(after) => {
                    let (total, facets) =
                        searcher.search(&built, &(Count, facets)).map_err(&err)?;
                    let page = BooleanQuery::new(vec![
                        (Occur::Must, Box::new(built) as Box<dyn Query>),
                        (Occur::Must, self.after_query(query, after)),
                    ]);
                    (searcher.search(&page, &top).map_err(&err)?, total, facets)
                }
            };
            let found = top
                .into_iter()
                .map(|((value, id), address)| (value.unwrap_or_default(), id, address))
                .collect();
            (found, total, facets)
        };
        let terms = query_terms(&query.text);
        let mut hits = Vec::with_capacity(found.len());
        let mut last = None;
        for (value, order_id, address) in found {
            let document = self.document_at(&searcher, address)?;
            last = Some((value, order_id.unwrap_or_else(|| document.order_id.clone())));
            hits.push(SearchHit {
                highlights: highlight(&document, &terms),
                document,
            });
        }
        let facets = serde_json::to_value(&facets).unwrap_or_default();
        Ok(SearchPage {
            next: query.next_cursor(hits.len(), last),
            hits,
            total: total as u64,
            facets: SearchFacets {
                status: buckets(&facets["status"]),
                channel: buckets(&facets["channel"]),
            },
        })
    }
}

/// Facet counts from an Elasticsearch-style `terms` aggregation result (Tantivy writes the
/// same JSON shape), largest first, then by value.
pub(super) fn buckets(aggregation: &serde_json::Value) -> Vec<FacetCount> {
    let mut counts: Vec<FacetCount> = aggregation["buckets"]
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .filter_map(|b| {
                    Some(FacetCount {
                        value: b["key"].as_str()?.to_owned(),
                        count: b["doc_count"].as_u64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    counts
}

/// A query that selects without scoring (a filter).
fn filter(query: impl Query) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(Box::new(query), 0.0))
}

/// Terms of a raw (untokenized) field that start with `prefix`: a range over the term
/// dictionary, no automaton to build.
fn prefix_query(field: Field, prefix: &str) -> Box<dyn Query> {
    let upper = format!("{prefix}{}", char::MAX);
    Box::new(RangeQuery::new(
        Bound::Included(Term::from_field_text(field, prefix)),
        Bound::Excluded(Term::from_field_text(field, &upper)),
    ))
}

impl SearchIndex for TantivyIndex {
    fn backend(&self) -> &'static str {
        "tantivy"
    }

    async fn get(&self, order_ids: &[String]) -> Result<Vec<Option<OrderDocument>>, SearchError> {
        let ids = order_ids.to_vec();
        self.on_live(move |inner| inner.get(&ids)).await
    }

    async fn get_searchable(
        &self,
        order_ids: &[String],
    ) -> Result<Vec<Option<OrderDocument>>, SearchError> {
        let ids = order_ids.to_vec();
        self.on_live(move |inner| inner.get_committed(&ids)).await
    }

    async fn upsert(&self, documents: Vec<OrderDocument>) -> Result<Vec<bool>, SearchError> {
        let ids = self.tracked_ids(&documents);
        let written = self
            .on_writer(move |inner, writer| {
                let written = inner.stage(writer, documents)?;
                inner.commit(writer)?;
                Ok(written)
            })
            .await?;
        self.remember(ids, &written);
        Ok(written)
    }

    async fn stage(&self, documents: Vec<OrderDocument>) -> Result<Vec<bool>, SearchError> {
        let ids = self.tracked_ids(&documents);
        let written = self
            .on_writer(move |inner, writer| inner.stage(writer, documents))
            .await?;
        self.remember(ids, &written);
        Ok(written)
    }

    async fn commit(&self) -> Result<(), SearchError> {
        self.on_writer(|inner, writer| inner.commit(writer)).await
    }

    async fn forget(&self, ids: Vec<String>) -> Result<(), SearchError> {
        self.on_writer(move |inner, writer| inner.forget(writer, &ids))
            .await
    }

    async fn purge(&self) -> Result<(), SearchError> {
        self.on_writer(|inner, writer| inner.purge(writer)).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        let query = query.clone();
        self.on_live(move |inner| inner.search(&query)).await
    }

    async fn between_batches(&self, events: &EventStore, page: i64) -> Result<(), SearchError> {
        if !self.writes() {
            return Ok(());
        }
        super::tantivy_rebuild::adopt_offered(self, events, page)
            .await
            .map(drop)
    }
}
