//! A thin HTTP client for the command and query APIs that keeps every response whole (status,
//! headers, exact body bytes), because several tests compare responses byte for byte.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// Admin key every test process accepts (`WAYBILL_API_KEYS`).
pub const ADMIN_KEY: &str = "e2e-admin-key";
/// Service (checkout) key every test process accepts.
pub const SERVICE_KEY: &str = "e2e-service-key";
/// Support agent key every test process accepts.
pub const AGENT_KEY: &str = "e2e-agent-key";
/// Finance key every test process accepts.
pub const FINANCE_KEY: &str = "e2e-finance-key";
pub(crate) const API_KEYS_SETTING: &str = "e2e-admin-key:e2e-admin:admin,\
     e2e-service-key:e2e-checkout:service,e2e-agent-key:e2e-agent:agent,\
     e2e-finance-key:e2e-finance:finance";

/// One HTTP response, read to the end.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the raw body if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response {} is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// The problem `type` slug (`validation-failed`, ...) if this is a problem+json response.
    pub fn problem_slug(&self) -> Option<String> {
        let content_type = self.header("content-type").unwrap_or_default();
        if !content_type.starts_with("application/problem+json") {
            return None;
        }
        let body: Value = serde_json::from_slice(&self.body).ok()?;
        let kind = body.get("type")?.as_str()?;
        Some(
            kind.strip_prefix("https://waybill.dev/problems/")
                .unwrap_or(kind)
                .to_owned(),
        )
    }

    /// Every field a problem names: `field` and each `errors[].field`, each once.
    pub fn problem_fields(&self) -> Vec<String> {
        let Ok(body) = serde_json::from_slice::<Value>(&self.body) else {
            return Vec::new();
        };
        let mut fields: Vec<String> = body
            .get("field")
            .and_then(Value::as_str)
            .map(|f| vec![f.to_owned()])
            .unwrap_or_default();
        if let Some(errors) = body.get("errors").and_then(Value::as_array) {
            fields.extend(
                errors
                    .iter()
                    .filter_map(|e| e.get("field").and_then(Value::as_str))
                    .map(str::to_owned),
            );
        }
        // `field` repeats the first of `errors[]`: each field once, in order.
        let mut seen = std::collections::HashSet::new();
        fields.retain(|f| seen.insert(f.clone()));
        fields
    }

    /// A one-line description for assertion messages.
    pub fn describe(&self) -> String {
        format!("HTTP {} {}", self.status, self.text())
    }

    /// Asserts this is `application/problem+json` with `status` and the problem type `slug`
    /// (`what` names the case in the failure message).
    pub fn assert_problem(&self, status: u16, slug: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: {}", self.describe());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{what}"
        );
        assert_eq!(self.problem_slug().as_deref(), Some(slug), "{what}");
    }

    /// `Retry-After` in whole seconds; panics (naming `what`) when it is missing or not that.
    pub fn retry_after_secs(&self, what: &str) -> u64 {
        self.header("retry-after")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{what}: Retry-After in seconds: {}", self.describe()))
    }
}

/// Client for one deployment: the command API and the query API base URLs.
#[derive(Debug, Clone)]
pub struct Api {
    pub command_url: String,
    pub query_url: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(command_url: &str, query_url: &str) -> Api {
        Api {
            command_url: command_url.trim_end_matches('/').to_owned(),
            query_url: query_url.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        }
    }

    /// Reads a response of any request (for requests the helpers here do not send).
    pub async fn read(response: reqwest::Response) -> HttpResponse {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("read the response body");
        HttpResponse {
            status,
            headers,
            body,
        }
    }

    /// Any request to the command API: `bearer`/`idempotency_key`/`content_type` are left out
    /// when `None`, so tests can send exactly the malformed request they mean.
    pub async fn command_request(
        &self,
        path: &str,
        bearer: Option<&str>,
        idempotency_key: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> HttpResponse {
        let mut request = self
            .client
            .post(format!("{}{path}", self.command_url))
            .body(body);
        if let Some(key) = bearer {
            request = request.bearer_auth(key);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        Self::read(request.send().await.expect("send a command request")).await
    }

    /// `POST /v1/orders` as the checkout service.
    pub async fn place_order(&self, idempotency_key: &str, body: &Value) -> HttpResponse {
        self.command_request(
            "/v1/orders",
            Some(SERVICE_KEY),
            Some(idempotency_key),
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// `POST /v1/orders/{id}/cancel` as the checkout service.
    pub async fn cancel_order(
        &self,
        order_id: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> HttpResponse {
        self.command_request(
            &format!("/v1/orders/{order_id}/cancel"),
            Some(SERVICE_KEY),
            Some(idempotency_key),
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// `GET /v1/orders/{id}/tracking` with query parameters and an optional bearer key.
    pub async fn tracking(
        &self,
        order_id: &str,
        query: &[(&str, &str)],
        bearer: Option<&str>,
    ) -> HttpResponse {
        let mut request = self
            .client
            .get(format!("{}/v1/orders/{order_id}/tracking", self.query_url))
            .query(query);
        if let Some(key) = bearer {
            request = request.bearer_auth(key);
        }
        Self::read(request.send().await.expect("send a tracking request")).await
    }

    /// `POST <command API><path>` with a JSON body, a bearer key and an Idempotency-Key.
    pub async fn post_json(
        &self,
        path: &str,
        bearer: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> HttpResponse {
        self.send_json(reqwest::Method::POST, path, bearer, idempotency_key, body)
            .await
    }

    /// `PUT <command API><path>` with a JSON body, a bearer key and an Idempotency-Key.
    pub async fn put_json(
        &self,
        path: &str,
        bearer: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> HttpResponse {
        self.send_json(reqwest::Method::PUT, path, bearer, idempotency_key, body)
            .await
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> HttpResponse {
        let request = self
            .client
            .request(method, format!("{}{path}", self.command_url))
            .bearer_auth(bearer)
            .header("Idempotency-Key", idempotency_key)
            .json(body);
        Self::read(request.send().await.expect("send a command request")).await
    }

    /// `GET <command API><path>` with a bearer key.
    pub async fn command_get(&self, path: &str, bearer: &str) -> HttpResponse {
        let request = self
            .client
            .get(format!("{}{path}", self.command_url))
            .bearer_auth(bearer);
        Self::read(request.send().await.expect("send a GET")).await
    }

    /// `POST <url>` with a JSON body and no credentials (the payment sandbox's test controls).
    pub async fn post_plain(&self, url: &str, body: &Value) -> HttpResponse {
        Self::read(
            self.client
                .post(url)
                .json(body)
                .send()
                .await
                .expect("send a POST"),
        )
        .await
    }

    /// Any request: `bearer`, `Idempotency-Key` and a JSON body only when given. Redirects are
    /// followed (use your own client to see a 303).
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        bearer: Option<&str>,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> HttpResponse {
        let mut request = self.client.request(method, url);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        Self::read(request.send().await.expect("send a request")).await
    }

    /// The status of `GET <url>` without reading the body (event streams stay open).
    pub async fn status_only(&self, url: &str, bearer: Option<&str>) -> u16 {
        let mut request = self.client.get(url);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send().await.expect("send a GET").status().as_u16()
    }

    /// `GET <query API><path>` with query parameters and an optional bearer key.
    pub async fn query_get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        bearer: Option<&str>,
    ) -> HttpResponse {
        let mut request = self
            .client
            .get(format!("{}{path}", self.query_url))
            .query(query);
        if let Some(key) = bearer {
            request = request.bearer_auth(key);
        }
        Self::read(request.send().await.expect("send a query API request")).await
    }

    /// Exactly the request given: method, URL, headers and body bytes, nothing added.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> HttpResponse {
        let mut request = self.client.request(method, url).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::read(request.send().await.expect("send a request")).await
    }

    /// `GET <url>` (health, metrics, openapi).
    pub async fn get(&self, url: &str) -> HttpResponse {
        Self::read(self.client.get(url).send().await.expect("send a GET")).await
    }
}
