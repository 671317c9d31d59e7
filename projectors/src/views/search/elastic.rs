//! The Elasticsearch / OpenSearch API backend (used when `ELASTICSEARCH_URL` is set), over plain
//! HTTP with reqwest and serde_json.
//!
//! Documents live in a versioned index (`<prefix>-orders-<stamp>`, mappings in
//! `elastic_index.json`) reached through the alias `<prefix>-orders`, so a rebuild fills a new
//! index and swaps the alias in one `_aliases` call. Writes are `_bulk` index actions with
//! `version_type=external` and `version` = the order's stream version: the server refuses a
//! stale or duplicate write with 409, which counts as done. A `_bulk` answered 429 or 5xx (or
//! single items refused with 429) is retried with backoff. Each batch ends with an explicit
//! `_refresh` so searches see it, unless the index has a refresh interval of its own
//! ([`ElasticOptions::refresh_interval`]). Nodes, authentication and TLS are the
//! [`super::elastic_client`]'s.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use waybill_schemas::views::{OrderDocument, SearchFacets, SearchHit};

use super::elastic_client::{Body, ElasticClient, ElasticOptions};
use super::fields::{boost, enum_word, fuzziness, query_terms, IndexFields, QueryTerm, TextMatch};
use super::highlight::highlight;
use super::index::SearchIndex;
use super::query::{SearchPage, SearchQuery, SortField};
use super::tantivy_index::buckets;
use super::SearchError;

/// The index settings and mappings every versioned index is created with.
pub const INDEX_DEFINITION: &str = include_str!("elastic_index.json");

/// A client for one alias (or, during a rebuild, one concrete index). Cheap to clone.
#[derive(Clone)]
pub struct ElasticIndex {
    client: ElasticClient,
    options: Arc<ElasticOptions>,
    alias: String,
    /// Where reads and writes go: the alias, or the index a rebuild is filling.
    target: String,
}

/// The `_source` of one indexed order.
#[derive(serde::Serialize)]
struct Source<'a> {
    document: &'a OrderDocument,
    order_id: String,
    #[serde(flatten)]
    fields: IndexFields,
}

impl ElasticIndex {
    /// A client for `<prefix>-orders` on the nodes in `urls` (comma-separated). The alias and
    /// its first index are created if missing, safely when several processes start at once:
    /// the first index has a fixed name (`<alias>-initial`) and is created only if absent, and
    /// the alias is only ever added to it, never moved off an index another process made.
    pub async fn connect(
        urls: &str,
        prefix: &str,
        options: &ElasticOptions,
    ) -> Result<Self, SearchError> {
        let alias = alias_name(prefix);
        let index = Self {
            client: ElasticClient::new(urls, options)?,
            options: Arc::new(options.clone()),
            target: alias.clone(),
            alias,
        };
        index.ensure_alias().await?;
        Ok(index)
    }

    /// Makes the alias and its first index when the alias resolves to no index (the first
    /// start, or a store that lost its indices): the first index has a fixed name
    /// (`<alias>-initial`) and is created only if absent, so processes doing this at once agree.
    pub async fn ensure_alias(&self) -> Result<(), SearchError> {
        if self.alias_indices().await?.is_empty() {
            let initial = format!("{}-initial", self.alias);
            self.create_index_named(&initial, true).await?;
            let add = json!({"actions": [{"add": {"index": initial, "alias": self.alias}}]});
            Self::check(
                self.client
                    .send(Method::POST, "/_aliases", &Body::Json(add))
                    .await?,
            )?;
        }
        Ok(())
    }

    /// The index holding the search store's generation marker ([`super::marker`]).
    pub(crate) fn marker_index(&self) -> String {
        format!("{}-marker", self.alias)
    }

    /// One request to the cluster, answered with its status and JSON body.
    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        body: &Body,
    ) -> Result<(u16, Value), SearchError> {
        self.client.send(method, path, body).await
    }

    /// The body of a 2xx answer, or the answer as an error.
    pub(crate) fn checked(answer: (u16, Value)) -> Result<Value, SearchError> {
        Self::check(answer)
    }

    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The same client writing to and reading from `index` instead of the alias.
    pub fn on_index(&self, index: &str) -> Self {
        Self {
            target: index.to_owned(),
            ..self.clone()
        }
    }

    fn check((status, body): (u16, Value)) -> Result<Value, SearchError> {
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(SearchError::Elastic {
                status,
                detail: body.to_string().chars().take(500).collect(),
            })
        }
    }

    /// The concrete indices the alias points at (none before the first start).
    pub async fn alias_indices(&self) -> Result<Vec<String>, SearchError> {
        let (status, body) = self
            .client
            .send(
                Method::GET,
                &format!("/_alias/{}", self.alias),
                &Body::Empty,
            )
            .await?;
        if status == 404 {
            return Ok(Vec::new());
        }
        let body = Self::check((status, body))?;
        Ok(body
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// Creates a new, empty versioned index for this alias and returns its name.
    pub async fn create_index(&self) -> Result<String, SearchError> {
        let name = format!(
            "{}-{}",
            self.alias,
            chrono::Utc::now().format("%Y%m%d%H%M%S%6f")
        );
        self.create_index_named(&name, false).await?;
        Ok(name)
    }

    /// The mappings of `elastic_index.json` with the configured shards, replicas and refresh
    /// interval.
    fn definition(&self) -> Result<Value, SearchError> {
        let mut definition: Value = serde_json::from_str(INDEX_DEFINITION).map_err(corrupt)?;
        let settings = &mut definition["settings"];
        settings["number_of_shards"] = json!(self.options.shards);
        settings["number_of_replicas"] = json!(self.options.replicas);
        if let Some(interval) = &self.options.refresh_interval {
            settings["refresh_interval"] = json!(interval);
        }
        Ok(definition)
    }

    /// Creates index `name`; with `if_absent`, an index of that name another process created
    /// first is fine (it is used, never replaced).
    async fn create_index_named(&self, name: &str, if_absent: bool) -> Result<(), SearchError> {
        let path = format!("/{name}");
        let answer = self
            .client
            .send(Method::PUT, &path, &Body::Json(self.definition()?))
            .await?;
        if if_absent && !(200..300).contains(&answer.0) {
            let (exists, _) = self.client.send(Method::GET, &path, &Body::Empty).await?;
            if exists == 200 {
                return Ok(());
            }
        }
        Self::check(answer).map(|_| ())
    }

    /// Points the alias at `index` alone (one atomic `_aliases` call) and deletes the indices
    /// it pointed at before.
    pub async fn swap_alias(&self, index: &str) -> Result<(), SearchError> {
        let old = self.alias_indices().await?;
        let mut actions: Vec<Value> = old
            .iter()
            .filter(|name| name.as_str() != index)
            .map(|name| json!({"remove": {"index": name, "alias": self.alias}}))
            .collect();
        actions.push(json!({"add": {"index": index, "alias": self.alias}}));
        Self::check(
            self.client
                .send(
                    Method::POST,
                    "/_aliases",
                    &Body::Json(json!({ "actions": actions })),
                )
                .await?,
        )?;
        for name in old.iter().filter(|name| name.as_str() != index) {
            Self::check(
                self.client
                    .send(Method::DELETE, &format!("/{name}"), &Body::Empty)
                    .await?,
            )?;
        }
        Ok(())
    }

    /// The `_bulk` body writing `documents[i]` for each `i` in `which`.
    fn bulk_body(
        &self,
        documents: &[OrderDocument],
        which: &[usize],
        version_type: &str,
    ) -> Result<String, SearchError> {
        let mut body = String::new();
        for &i in which {
            let document = &documents[i];
            let id = document.order_id.to_lowercase();
            let mut action = json!({"index": {
                "_index": self.target,
                "_id": id,
                "version": document.version,
                "version_type": version_type,
            }});
            // Through the alias, a write never makes an index of the alias's name (with
            // guessed mappings) when the alias is gone: it fails until the alias is back.
            if self.target == self.alias {
                action["index"]["require_alias"] = json!(true);
            }
            let source = Source {
                document,
                order_id: id,
                fields: IndexFields::of(document),
            };
            body.push_str(&action.to_string());
            body.push('\n');
            body.push_str(&serde_json::to_string(&source).map_err(corrupt)?);
            body.push('\n');
        }
        Ok(body)
    }

    /// Records each item's outcome for the documents `sent`; returns those refused with 429
    /// or 5xx (to send again).
    fn settle_items(
        &self,
        sent: &[usize],
        items: &[Value],
        written: &mut [Option<bool>],
    ) -> Result<Vec<usize>, SearchError> {
        if items.len() != sent.len() {
            return Err(SearchError::Elastic {
                status: 200,
                detail: format!(
                    "_bulk answered {} items for {} documents",
                    items.len(),
                    sent.len()
                ),
            });
        }
        let mut refused = Vec::new();
        for (&i, item) in sent.iter().zip(items) {
            match item["index"]["status"].as_u64().unwrap_or(0) {
                200 | 201 => written[i] = Some(true),
                // version_conflict_engine_exception: the index holds this version or a newer one.
                409 => written[i] = Some(false),
                429 | 500..=599 => refused.push(i),
                status => {
                    return Err(SearchError::Elastic {
                        status: u16::try_from(status).unwrap_or(0),
                        detail: item["index"]["error"].to_string(),
                    })
                }
            }
        }
        Ok(refused)
    }

    /// Every way a document can match one term (see [`super::fields`]), boosted for relevance:
    /// the same clauses as the Tantivy backend.
    fn term_query(term: &QueryTerm) -> Value {
        let phrase = |field: &str, words: &[String], by: f32| match words {
            [word] => json!({"term": {field: {"value": word, "boost": by}}}),
            _ => json!({"match_phrase": {field: {"query": words.join(" "), "boost": by}}}),
        };
        let mut any =
            vec![json!({"term": {"keys": {"value": term.raw, "boost": boost::KEY_EXACT}}})];
        if term.key_prefix() {
            any.push(json!({"prefix": {"keys": {"value": term.raw, "boost": boost::KEY_PREFIX}}}));
        }
        if let Some(digits) = &term.phone {
            any.push(
                json!({"prefix": {"phone_keys": {"value": digits, "boost": boost::PHONE_PREFIX}}}),
            );
        }
        match term.text() {
            Some(TextMatch::Word(word)) => {
                any.push(json!({"term": {"names": {"value": word, "boost": boost::NAME_EXACT}}}));
                let distance = fuzziness(&word);
                if distance > 0 {
                    any.push(json!({"fuzzy": {"names": {
                        "value": word,
                        "fuzziness": distance,
                        "transpositions": true,
                        "boost": boost::NAME_TYPO,
                    }}}));
                }
                any.push(json!({"term": {"places": {"value": word, "boost": boost::PLACE}}}));
            }
            Some(TextMatch::Phrase(words)) => {
                any.push(phrase("names", &words, boost::NAME_EXACT));
                any.push(phrase("places", &words, boost::PLACE));
            }
            Some(TextMatch::PlacesPhrase(words)) => {
                any.push(phrase("places", &words, boost::PLACE));
            }
            None => {}
        }
        json!({"bool": {"should": any, "minimum_should_match": 1}})
    }

    fn search_body(query: &SearchQuery) -> Value {
        let must: Vec<Value> = query_terms(&query.text)
            .iter()
            .map(Self::term_query)
            .collect();
        // Filters narrow without changing relevance.
        let mut filter: Vec<Value> = Vec::new();
        let mut must_not: Vec<Value> = Vec::new();
        if !query.status.is_empty() {
            let values: Vec<String> = query.status.iter().map(enum_word).collect();
            filter.push(json!({"terms": {"status": values}}));
        }
        if !query.channel.is_empty() {
            let values: Vec<&str> = query.channel.iter().map(|c| c.as_str()).collect();
            filter.push(json!({"terms": {"channel": values}}));
        }
        if query.created_from.is_some() || query.created_to.is_some() {
            let mut range = serde_json::Map::new();
            if let Some(from) = query.created_from {
                range.insert("gte".into(), json!(from.timestamp_micros()));
            }
            if let Some(to) = query.created_to {
                range.insert("lt".into(), json!(to.timestamp_micros()));
            }
            filter.push(json!({"range": {"created_at": range}}));
        }
        if query.total_min.is_some() || query.total_max.is_some() {
            let mut range = serde_json::Map::new();
            if let Some(min) = query.total_min {
                range.insert("gte".into(), json!(min));
            }
            if let Some(max) = query.total_max {
                range.insert("lte".into(), json!(max));
            }
            filter.push(json!({"range": {"total": range}}));
        }
        for (flag, tag) in [
            (query.has_return, "return"),
            (query.has_exception, "exception"),
        ] {
            match flag {
                Some(true) => filter.push(json!({"term": {"tags": tag}})),
                Some(false) => must_not.push(json!({"term": {"tags": tag}})),
                None => {}
            }
        }
        let direction = if query.sort.descending { "desc" } else { "asc" };
        let mut body = json!({
            "size": query.page_size(),
            "track_total_hits": true,
            "query": {"bool": {"must": must, "filter": filter, "must_not": must_not}},
            "sort": [
                {query.sort.field.field(): {"order": direction}},
                {"order_id": {"order": direction}},
            ],
            "aggs": {
                "status": {"terms": {"field": "status", "size": 20}},
                "channel": {"terms": {"field": "channel", "size": 20}},
            },
            "_source": ["document"],
        });
        match &query.after {
            // Relevance pages by offset (scores are not stable values to resume after).
            Some(_) if query.sort.field == SortField::Relevance => {
                body["from"] = json!(query.offset());
            }
            Some(after) => {
                body["search_after"] = json!([after.value, after.order_id.to_lowercase()]);
            }
            None => {}
        }
        body
    }
}

/// `<prefix>-orders`, lowercased, with every character an index name may not hold (`:` in
/// `bench:<run>`, say) replaced by `-`.
pub fn alias_name(prefix: &str) -> String {
    let clean: String = prefix
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{}-orders", clean.trim_start_matches(['-', '_']))
}

fn corrupt(source: serde_json::Error) -> SearchError {
    SearchError::CorruptDocument {
        backend: "elasticsearch",
        source,
    }
}

impl SearchIndex for ElasticIndex {
    fn backend(&self) -> &'static str {
        "elasticsearch"
    }

    async fn get(&self, order_ids: &[String]) -> Result<Vec<Option<OrderDocument>>, SearchError> {
        if order_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = order_ids.iter().map(|id| id.to_lowercase()).collect();
        let body = Self::check(
            self.client
                .send(
                    Method::POST,
                    &format!("/{}/_mget", self.target),
                    &Body::Json(json!({ "ids": ids })),
                )
                .await?,
        )?;
        let docs = body["docs"].as_array().cloned().unwrap_or_default();
        let mut by_id = std::collections::HashMap::new();
        for doc in docs {
            if doc["found"].as_bool() == Some(true) {
                let document: OrderDocument =
                    serde_json::from_value(doc["_source"]["document"].clone()).map_err(corrupt)?;
                by_id.insert(doc["_id"].as_str().unwrap_or_default().to_owned(), document);
            }
        }
        Ok(ids.iter().map(|id| by_id.remove(id)).collect())
    }

    async fn upsert(&self, documents: Vec<OrderDocument>) -> Result<Vec<bool>, SearchError> {
        self.write(documents, "external").await
    }

    /// Writes at the documents' own versions even where the index holds those versions
    /// (`external_gte`): an erased customer's orders re-projected.
    async fn replace(&self, documents: Vec<OrderDocument>) -> Result<Vec<bool>, SearchError> {
        self.write(documents, "external_gte").await
    }

    /// Drops deleted and replaced documents from the index's segments.
    async fn purge(&self) -> Result<(), SearchError> {
        let path = format!("/{}/_forcemerge?only_expunge_deletes=true", self.target);
        Self::check(self.client.send(Method::POST, &path, &Body::Empty).await?)?;
        Ok(())
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        self.search_page(query).await
    }
}

impl ElasticIndex {
    /// One bulk request per attempt, documents refused with 429/5xx sent again.
    async fn write(
        &self,
        documents: Vec<OrderDocument>,
        version_type: &str,
    ) -> Result<Vec<bool>, SearchError> {
        if documents.is_empty() {
            return Ok(Vec::new());
        }
        let mut written: Vec<Option<bool>> = vec![None; documents.len()];
        let mut pending: Vec<usize> = (0..documents.len()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let body = self.bulk_body(&documents, &pending, version_type)?;
            let (status, response) = self
                .client
                .send(Method::POST, "/_bulk", &Body::NdJson(body))
                .await?;
            let refused = if status == 429 || status >= 500 {
                pending.clone()
            } else {
                let items = Self::check((status, response))?["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                self.settle_items(&pending, &items, &mut written)?
            };
            if refused.is_empty() {
                break;
            }
            metrics::counter!("waybill_search_bulk_retries_total").increment(1);
            if attempt >= self.options.bulk_attempts {
                return Err(SearchError::Elastic {
                    status: 429,
                    detail: format!(
                        "{} of {} documents still refused (429/5xx, last status {status}) after \
                         {attempt} attempts",
                        refused.len(),
                        documents.len()
                    ),
                });
            }
            let pause = self.options.backoff(attempt);
            tracing::warn!(
                refused = refused.len(),
                status,
                attempt,
                pause_ms = pause.as_millis() as u64,
                "search cluster refused a bulk write; retrying"
            );
            tokio::time::sleep(pause).await;
            pending = refused;
        }
        if self.options.refresh_interval.is_none() {
            Self::check(
                self.client
                    .send(
                        Method::POST,
                        &format!("/{}/_refresh", self.target),
                        &Body::Empty,
                    )
                    .await?,
            )?;
        }
        Ok(written.into_iter().map(|w| w.unwrap_or(false)).collect())
    }

    async fn search_page(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        let body = Self::check(
            self.client
                .send(
                    Method::POST,
                    &format!("/{}/_search", self.target),
                    &Body::Json(Self::search_body(query)),
                )
                .await?,
        )?;
        let terms = query_terms(&query.text);
        let raw_hits = body["hits"]["hits"].as_array().cloned().unwrap_or_default();
        let mut hits = Vec::with_capacity(raw_hits.len());
        let mut last = None;
        for hit in &raw_hits {
            let document: OrderDocument =
                serde_json::from_value(hit["_source"]["document"].clone()).map_err(corrupt)?;
            last = Some((
                hit["sort"][0].as_i64().unwrap_or_default(),
                hit["sort"][1]
                    .as_str()
                    .map_or_else(|| document.order_id.clone(), str::to_owned),
            ));
            hits.push(SearchHit {
                highlights: highlight(&document, &terms),
                document,
            });
        }
        let total = body["hits"]["total"]["value"]
            .as_u64()
            .or_else(|| body["hits"]["total"].as_u64())
            .unwrap_or(0);
        Ok(SearchPage {
            next: query.next_cursor(hits.len(), last),
            hits,
            total,
            facets: SearchFacets {
                status: buckets(&body["aggregations"]["status"]),
                channel: buckets(&body["aggregations"]["channel"]),
            },
        })
    }
}
