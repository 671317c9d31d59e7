//! The HTTP side of the Elasticsearch / OpenSearch backend: a list of nodes tried in turn (a node
//! that cannot be reached is skipped and the next one used from then on), API-key or basic
//! authentication, the operator's CA, and the index layout (shards, replicas, refresh interval)
//! and bulk retry policy from config.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;

use super::SearchError;

/// How requests prove who sends them.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum ElasticAuth {
    #[default]
    None,
    /// `Authorization: ApiKey <key>` (the base64 `id:api_key` Elasticsearch hands out).
    ApiKey(String),
    Basic {
        user: String,
        password: String,
    },
}

impl std::fmt::Debug for ElasticAuth {
    // Only which kind of credential is set, never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::ApiKey(_) => f.write_str("ApiKey(***)"),
            Self::Basic { user, .. } => write!(f, "Basic({user}, ***)"),
        }
    }
}

/// Everything about the search cluster besides its node list.
#[derive(Debug, Clone)]
pub struct ElasticOptions {
    pub auth: ElasticAuth,
    /// PEM file of the CA the nodes' certificates are checked against.
    pub ca_file: Option<PathBuf>,
    /// Primary shards of a new index.
    pub shards: u32,
    /// Replicas of each shard in a new index (0 on one node; 1 or more on a cluster).
    pub replicas: u32,
    /// The index's refresh interval (`1s`, `30s`); documents become searchable within it and
    /// the projector does not refresh after each batch. `None`: refresh after each batch.
    pub refresh_interval: Option<String>,
    /// Attempts of one `_bulk` write while the cluster answers 429 or 5xx (whole request or
    /// single items refused with 429).
    pub bulk_attempts: u32,
    /// Pause before the first retry; doubles per attempt (up to 5 s).
    pub retry_base: Duration,
}

impl Default for ElasticOptions {
    fn default() -> Self {
        Self {
            auth: ElasticAuth::None,
            ca_file: None,
            shards: 1,
            replicas: 0,
            refresh_interval: None,
            bulk_attempts: 6,
            retry_base: Duration::from_millis(100),
        }
    }
}

impl ElasticOptions {
    /// The pause before retry number `attempt` (1-based): `retry_base` doubling, at most 5 s.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(10);
        (self.retry_base * factor).min(Duration::from_secs(5))
    }
}

/// A request body.
pub(crate) enum Body {
    Empty,
    Json(Value),
    NdJson(String),
}

/// One client for every node of the cluster. Cheap to clone; clones share which node answers.
#[derive(Clone)]
pub(crate) struct ElasticClient {
    http: reqwest::Client,
    nodes: Arc<Vec<String>>,
    /// The node tried first: the last one that answered.
    current: Arc<AtomicUsize>,
    auth: ElasticAuth,
}

fn failed(detail: impl ToString) -> SearchError {
    SearchError::Elastic {
        status: 0,
        detail: detail.to_string(),
    }
}

impl ElasticClient {
    /// `urls`: one node's base URL or several, comma-separated.
    pub fn new(urls: &str, options: &ElasticOptions) -> Result<Self, SearchError> {
        let nodes: Vec<String> = urls
            .split(',')
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty())
            .collect();
        if nodes.is_empty() {
            return Err(failed("ELASTICSEARCH_URL names no node"));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(3));
        if let Some(path) = &options.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| failed(format!("reading the search CA {}: {e}", path.display())))?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| failed(format!("the search CA {}: {e}", path.display())))?;
            builder = builder.add_root_certificate(ca);
        }
        Ok(Self {
            http: builder.build().map_err(failed)?,
            nodes: Arc::new(nodes),
            current: Arc::new(AtomicUsize::new(0)),
            auth: options.auth.clone(),
        })
    }

    /// Sends `method path` to the current node, and on a connection error to each next one;
    /// returns the status and the JSON body (`Null` when not JSON) of the first that answers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: &Body,
    ) -> Result<(u16, Value), SearchError> {
        let first = self.current.load(Ordering::Relaxed) % self.nodes.len();
        let mut unreachable = Vec::new();
        for step in 0..self.nodes.len() {
            let i = (first + step) % self.nodes.len();
            let node = &self.nodes[i];
            let mut request = self.http.request(method.clone(), format!("{node}{path}"));
            request = match &self.auth {
                ElasticAuth::None => request,
                ElasticAuth::ApiKey(key) => request.header(AUTHORIZATION, format!("ApiKey {key}")),
                ElasticAuth::Basic { user, password } => request.basic_auth(user, Some(password)),
            };
            request = match body {
                Body::Empty => request,
                Body::Json(value) => request.json(value),
                Body::NdJson(text) => request
                    .header(CONTENT_TYPE, "application/x-ndjson")
                    .body(text.clone()),
            };
            match request.send().await {
                Ok(response) => {
                    if i != first {
                        self.current.store(i, Ordering::Relaxed);
                        tracing::warn!(node = %node, "search requests fail over to this node");
                    }
                    let status = response.status().as_u16();
                    let bytes = response.bytes().await.map_err(|e| SearchError::Elastic {
                        status,
                        detail: e.to_string(),
                    })?;
                    return Ok((
                        status,
                        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    ));
                }
                Err(err) if err.is_connect() => {
                    tracing::warn!(node = %node, error = %err, "search node unreachable");
                    unreachable.push(format!("{node}: {err}"));
                }
                Err(err) => return Err(failed(format!("{node}: {err}"))),
            }
        }
        Err(failed(format!(
            "no search node answered: {}",
            unreachable.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_five_seconds() {
        let options = ElasticOptions::default();
        assert_eq!(options.backoff(1), Duration::from_millis(100));
        assert_eq!(options.backoff(2), Duration::from_millis(200));
        assert_eq!(options.backoff(4), Duration::from_millis(800));
        assert_eq!(options.backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn secrets_are_not_printed() {
        let shown = format!(
            "{:?} {:?}",
            ElasticAuth::ApiKey("c2VjcmV0".into()),
            ElasticAuth::Basic {
                user: "waybill".into(),
                password: "hunter2".into()
            }
        );
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn a_node_list_is_split_and_an_empty_one_refused() {
        let client =
            ElasticClient::new(" http://a:9200/ ,http://b:9200", &ElasticOptions::default())
                .expect("two nodes");
        assert_eq!(*client.nodes, vec!["http://a:9200", "http://b:9200"]);
        assert!(ElasticClient::new(" , ", &ElasticOptions::default()).is_err());
    }
}
