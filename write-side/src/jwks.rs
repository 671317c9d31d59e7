//! The identity provider's public keys (JWKS), fetched over HTTP for both APIs: once at start,
//! again every `refresh_every` (so keys the provider withdrew stop verifying), and again when a
//! token names a `kid` not seen yet (the provider rotated its keys), at most once per
//! `min_interval`. That limit is what keeps a flood of tokens with made-up `kid`s from
//! hammering the provider: inside the interval such tokens are refused at once (401) without a
//! fetch. Concurrent requests with the same new `kid` share one fetch.
//!
//! Verification itself is pure and synchronous ([`waybill_schemas::jwt`]); the one async step,
//! fetching keys for an unknown `kid`, is the [`fresh_keys`] layer both routers put in front of
//! their handlers, so every extractor that authenticates finds the key already there.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use waybill_schemas::api_keys::ApiKeys;
use waybill_schemas::jwt::{looks_like_jwt, JwksKeys, JwksSource};

/// How a JWKS fetch failed (logged; the keys fetched before stay in use).
#[derive(Debug, thiserror::Error)]
pub enum JwksFetchError {
    #[error("fetching {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {source}")]
    Document {
        url: String,
        #[source]
        source: waybill_schemas::jwt::JwksError,
    },
}

/// Fetches and holds the provider's keys.
pub struct JwksFetcher {
    url: String,
    http: reqwest::Client,
    keys: JwksKeys,
    min_interval: Duration,
    /// When the last fetch started; held across a fetch so concurrent callers wait for it.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwksFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksFetcher")
            .field("url", &self.url)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl JwksFetcher {
    /// A fetcher for `url` (nothing fetched yet), fetching for unknown `kid`s at most once per
    /// `min_interval`, each fetch bounded by `timeout`.
    pub fn new(url: &str, min_interval: Duration, timeout: Duration) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("WAYBILL_JWKS_URL {url} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            anyhow::bail!("WAYBILL_JWKS_URL {url} is not http(s)");
        }
        Ok(Self {
            url: url.to_owned(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()?,
            keys: JwksKeys::default(),
            min_interval,
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    /// Fetches the key set now (whatever the interval), replacing the keys held.
    pub async fn fetch(&self) -> Result<usize, JwksFetchError> {
        let mut last = self.last_fetch.lock().await;
        *last = Some(Instant::now());
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<usize, JwksFetchError> {
        let result = self.download().await;
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        metrics::counter!("waybill_jwks_fetches_total", "outcome" => outcome).increment(1);
        match &result {
            Ok(count) => {
                tracing::info!(url = %self.url, keys = count, "identity provider keys fetched")
            }
            Err(error) => {
                tracing::warn!(error = %error, "identity provider keys not fetched; the previous ones stay in use")
            }
        }
        result
    }

    async fn download(&self) -> Result<usize, JwksFetchError> {
        let response = self
            .http
            .get(&self.url)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|source| JwksFetchError::Http {
                url: self.url.clone(),
                source,
            })?;
        if !response.status().is_success() {
            return Err(JwksFetchError::Status {
                url: self.url.clone(),
                status: response.status().as_u16(),
            });
        }
        let body = response
            .bytes()
            .await
            .map_err(|source| JwksFetchError::Http {
                url: self.url.clone(),
                source,
            })?;
        self.keys
            .replace_from_json(&body)
            .map_err(|source| JwksFetchError::Document {
                url: self.url.clone(),
                source,
            })
    }

    /// Fetches again because a token named `kid`, unless the key arrived meanwhile or the last
    /// fetch is more recent than the minimum interval.
    async fn refresh_for_kid(&self, kid: &str) {
        let mut last = self.last_fetch.lock().await;
        if self.keys.knows(kid) {
            return;
        }
        if last.is_some_and(|at| at.elapsed() < self.min_interval) {
            metrics::counter!("waybill_jwks_refresh_skipped_total").increment(1);
            tracing::debug!(
                kid,
                "unknown kid; key set fetched too recently to fetch again"
            );
            return;
        }
        *last = Some(Instant::now());
        let _ = self.fetch_locked().await;
    }

    /// Fetches every `every` until `stop` resolves (a failed fetch keeps the previous keys).
    pub async fn keep_fresh(self: Arc<Self>, every: Duration, stop: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => { let _ = self.fetch().await; }
            }
        }
    }
}

impl JwksSource for JwksFetcher {
    fn keys(&self) -> &JwksKeys {
        &self.keys
    }

    fn refresh_for<'a>(&'a self, kid: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(self.refresh_for_kid(kid))
    }
}

/// The layer in front of both APIs: a Bearer JWT signed by the identity provider with a key
/// not known yet gets the key set fetched (rate-limited) before the handler authenticates it.
/// Everything else passes straight through.
pub async fn fresh_keys(State(keys): State<ApiKeys>, request: Request, next: Next) -> Response {
    let unknown = keys.jwt().and_then(|verifier| {
        let credential = request
            .headers()
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .trim()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))?
            .1
            .trim();
        looks_like_jwt(credential)
            .then(|| verifier.unknown_kid(credential))
            .flatten()
    });
    if let Some((source, kid)) = unknown {
        source.refresh_for(&kid).await;
    }
    next.run(request).await
}
