//! `/live` and `/ready`, answered the same way by every role on every listener it has (the
//! command API, the query API and the metrics listener):
//!
//! - `GET /live`: the process is up and serving HTTP. Always 200 while it is; a supervisor
//!   restarts the process when it stops answering.
//! - `GET /ready`: every dependency this process uses answers (the binary registers one probe
//!   per connection it made: Postgres, NATS, Redis, ClickHouse, the search index). 200 with each
//!   check's state, or 503 `application/problem+json` (`type` `.../not-ready`) whose `detail`
//!   and `down` name what does not answer, with `Retry-After`. A load balancer takes the
//!   process out of rotation on 503; the cause of each failure is logged, never returned.
//!
//! Probes run concurrently, each bounded by [`PROBE_TIMEOUT`], so a hung dependency makes the
//! answer 503, never slow.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Longest a single probe may take before its dependency counts as down.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// `Retry-After` of a 503 from `/ready`, in seconds.
const RETRY_AFTER_SECS: u64 = 5;

type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Probe = Arc<dyn Fn() -> ProbeFuture + Send + Sync>;

/// The dependencies a process checks for `/ready`. Cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    probes: Vec<(&'static str, Probe)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.probes.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Readiness {
    /// No dependencies (always ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the dependency `name`, up when `probe` resolves to `Ok`.
    pub fn check<F, Fut>(mut self, name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.probes
            .push((name, Arc::new(move || Box::pin(probe()) as ProbeFuture)));
        self
    }

    /// The names of the dependencies checked, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.probes.iter().map(|(name, _)| *name).collect()
    }

    /// Runs every probe (concurrently, each bounded) and returns each dependency's result.
    pub async fn run(&self) -> Vec<(&'static str, Result<(), String>)> {
        let checks = self.probes.iter().map(|(name, probe)| {
            let probe = probe.clone();
            async move {
                let result = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
                };
                (*name, result)
            }
        });
        futures::future::join_all(checks).await
    }

    /// The `/ready` answer.
    pub async fn answer(&self) -> Response {
        let results = self.run().await;
        let mut checks = BTreeMap::new();
        let mut down = Vec::new();
        for (name, result) in &results {
            let state = match result {
                Ok(()) => CheckState::Up,
                Err(error) => {
                    tracing::warn!(dependency = name, %error, "readiness check failed");
                    down.push((*name).to_owned());
                    CheckState::Down
                }
            };
            checks.insert((*name).to_owned(), state);
        }
        if down.is_empty() {
            let body = ReadyBody {
                status: "ready".to_owned(),
                checks,
            };
            return no_store(axum::Json(body).into_response());
        }
        let body = NotReadyBody {
            kind: "https://waybill.dev/problems/not-ready".to_owned(),
            title: "Not ready".to_owned(),
            status: 503,
            detail: format!("not answering: {}", down.join(", ")),
            down,
            checks,
        };
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        no_store(response)
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The state of one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    Up,
    Down,
}

/// `GET /ready` when every dependency answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyBody {
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: String,
    /// Each dependency this process uses (`postgres`, `nats`, `redis`, `clickhouse`,
    /// `search`) and its state.
    pub checks: BTreeMap<String, CheckState>,
}

/// `GET /ready` when a dependency does not answer (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReadyBody {
    /// `https://waybill.dev/problems/not-ready`
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    /// 503.
    pub status: u16,
    /// `not answering: <names>`.
    pub detail: String,
    /// The dependencies that do not answer.
    pub down: Vec<String>,
    pub checks: BTreeMap<String, CheckState>,
}

/// `GET /live` (always `{"status": "live"}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveBody {
    #[schema(example = "live")]
    pub status: String,
}

/// The `/live` answer.
#[utoipa::path(get, path = "/live", tag = "operations",
    responses((status = 200, description = "The process is up and serving", body = LiveBody)))]
pub async fn live() -> Response {
    no_store(
        axum::Json(LiveBody {
            status: "live".to_owned(),
        })
        .into_response(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    async fn body(response: Response) -> (StatusCode, Option<String>, Value) {
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (
            status,
            content_type,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn ready_names_every_dependency_that_does_not_answer() {
        let readiness = Readiness::new()
            .check("postgres", || async { Ok(()) })
            .check("redis", || async { Err("connection refused".to_owned()) })
            .check("nats", || async {
                tokio::time::sleep(PROBE_TIMEOUT * 3).await;
                Ok(())
            });
        assert_eq!(readiness.names(), ["postgres", "redis", "nats"]);
        let started = std::time::Instant::now();
        let (status, content_type, json) = body(readiness.answer().await).await;
        assert!(
            started.elapsed() < PROBE_TIMEOUT * 2,
            "a hung probe is cut off"
        );
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        assert_eq!(json["down"], json!(["redis", "nats"]));
        assert_eq!(json["detail"], "not answering: redis, nats");
        assert_eq!(json["checks"]["postgres"], "up");
        assert!(
            !json.to_string().contains("refused"),
            "causes are logged, not returned"
        );

        let ok = Readiness::new().check("postgres", || async { Ok(()) });
        let (status, _, json) = body(ok.answer().await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            json,
            json!({"status": "ready", "checks": {"postgres": "up"}})
        );
    }
}
