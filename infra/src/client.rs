//! A small HTTP client for Waybill's public APIs (and the payment sandbox's customer-facing
//! challenge route), used by the demo and the benchmark.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::Value;

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    pub command_base: String,
    pub query_base: String,
    key: String,
}

/// One command response.
pub struct CommandResponse {
    pub status: StatusCode,
    pub replayed: bool,
    pub body: Value,
    pub raw: bytes::Bytes,
}

impl ApiClient {
    pub fn new(
        command: SocketAddr,
        query: SocketAddr,
        key: String,
        pool: usize,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(pool)
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            command_base: format!("http://{command}"),
            query_base: format!("http://{query}"),
            key,
        })
    }

    /// Polls both services' `/health` until they answer or `timeout` passes.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let until = tokio::time::Instant::now() + timeout;
        for base in [&self.command_base, &self.query_base] {
            let url = format!("{base}/health");
            loop {
                match self.http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => break,
                    _ if tokio::time::Instant::now() >= until => {
                        anyhow::bail!("{url} does not answer; are the services running? (`waybill serve all`, or pass --start)")
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        Ok(())
    }

    pub async fn place(
        &self,
        body: &Value,
        idempotency_key: &str,
    ) -> anyhow::Result<CommandResponse> {
        self.command(
            &format!("{}/v1/orders", self.command_base),
            body,
            idempotency_key,
        )
        .await
    }

    pub async fn cancel(
        &self,
        order_id: &str,
        reason: &str,
        idempotency_key: &str,
    ) -> anyhow::Result<CommandResponse> {
        let body = serde_json::json!({"reason": reason, "note": null});
        self.command(
            &format!("{}/v1/orders/{order_id}/cancel", self.command_base),
            &body,
            idempotency_key,
        )
        .await
    }

    /// `POST /v1/orders/{id}/review` (agent or admin key): `approve` or `reject`.
    pub async fn review(
        &self,
        order_id: &str,
        decision: &str,
        note: &str,
        idempotency_key: &str,
    ) -> anyhow::Result<CommandResponse> {
        let body = serde_json::json!({"decision": decision, "note": note});
        self.command(
            &format!("{}/v1/orders/{order_id}/review", self.command_base),
            &body,
            idempotency_key,
        )
        .await
    }

    /// `PUT /v1/inventory/locations/{id}` (admin or service key).
    pub async fn put_location(
        &self,
        id: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> anyhow::Result<CommandResponse> {
        let url = format!("{}/v1/inventory/locations/{id}", self.command_base);
        self.send(self.http.put(&url), &url, body, idempotency_key)
            .await
    }

    /// `POST /v1/inventory/stock/{sku}/{location}/{movement}` with `movement` `restock`
    /// (`{"quantity"}`) or `adjust` (`{"delta", "reason"}`).
    pub async fn move_stock(
        &self,
        sku: &str,
        location: &str,
        movement: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> anyhow::Result<CommandResponse> {
        self.command(
            &format!(
                "{}/v1/inventory/stock/{sku}/{location}/{movement}",
                self.command_base
            ),
            body,
            idempotency_key,
        )
        .await
    }

    /// `GET` a command-API path with this client's key; status and JSON body (null if none).
    pub async fn command_get(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.keyed_get(&format!("{}{path}", self.command_base), &[])
            .await
    }

    /// `GET <query API><path>` with this client's key (the finance endpoints).
    pub async fn query_get(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.keyed_get(&format!("{}{path}", self.query_base), &[])
            .await
    }

    /// The tracking view read with this client's key (staff reads are not rate limited).
    pub async fn staff_tracking(&self, order_id: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.query_get(&format!("/v1/orders/{order_id}/tracking"))
            .await
    }

    /// `GET /v1/search/orders` with this client's key (an agent's or admin's).
    pub async fn search_orders(
        &self,
        query: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.keyed_get(&format!("{}/v1/search/orders", self.query_base), query)
            .await
    }

    /// `GET <url>?<query>` with this client's key; status and JSON body (null if none).
    async fn keyed_get(
        &self,
        url: &str,
        query: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self.http.get(url).bearer_auth(&self.key);
        if !query.is_empty() {
            request = request.query(query);
        }
        let response = request.send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// POSTs JSON without a key, as a customer's browser would (the sandbox's challenge route).
    pub async fn post_as_customer(
        &self,
        url: &str,
        body: &Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// `GET` any URL without a key; the JSON body (null if none).
    pub async fn get_json(&self, url: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    /// `POST` JSON to any URL without a key (the logistics sandbox's driver endpoints).
    pub async fn post_json_plain(&self, url: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    /// `GET` any URL without a key; the body as text (a `/metrics` page).
    pub async fn get_text(&self, url: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        Ok(response.text().await.unwrap_or_default())
    }

    /// `GET` any URL without a key; the status (`/health` of a service this client does not
    /// otherwise talk to).
    pub async fn get_plain(&self, url: &str) -> anyhow::Result<StatusCode> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        Ok(response.status())
    }

    /// The same client with another API key.
    pub fn with_key(&self, key: String) -> Self {
        Self {
            key,
            ..self.clone()
        }
    }

    async fn command(
        &self,
        url: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> anyhow::Result<CommandResponse> {
        self.send(self.http.post(url), url, body, idempotency_key)
            .await
    }

    /// Sends the command; a `409 concurrency-conflict` (the order changed while the command was
    /// decided: the API says to retry with the same key) is sent again, up to
    /// [`CONFLICT_ATTEMPTS`] times with a growing pause, as any client of the API should.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> anyhow::Result<CommandResponse> {
        let request = request
            .bearer_auth(&self.key)
            .header("Idempotency-Key", idempotency_key)
            .json(body);
        let mut attempt = 1;
        loop {
            let again = request
                .try_clone()
                .context("a JSON request can be sent again")?;
            let response = self.send_once(again, url).await?;
            if attempt >= CONFLICT_ATTEMPTS || !is_concurrency_conflict(&response) {
                return Ok(response);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> anyhow::Result<CommandResponse> {
        let response = request
            .send()
            .await
            .with_context(|| format!("request to {url}"))?;
        let status = response.status();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v.as_bytes() == b"true");
        let raw = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Ok(CommandResponse {
            status,
            replayed,
            body,
            raw,
        })
    }

    pub fn tracking_url(&self, order_id: &str, token: &str) -> String {
        format!(
            "{}/v1/orders/{order_id}/tracking?token={token}",
            self.query_base
        )
    }
}

/// Times a command answered `409 concurrency-conflict` is sent before that answer is returned.
const CONFLICT_ATTEMPTS: u32 = 6;

/// A `409` whose problem type is `concurrency-conflict`.
fn is_concurrency_conflict(response: &CommandResponse) -> bool {
    response.status == reqwest::StatusCode::CONFLICT
        && response.body["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/concurrency-conflict"))
}

impl ApiClient {
    /// POSTs pre-serialised JSON with an Idempotency-Key; returns status and body bytes.
    pub async fn post_raw(
        &self,
        url: &str,
        body: bytes::Bytes,
        idempotency_key: &str,
    ) -> anyhow::Result<(StatusCode, bytes::Bytes)> {
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.key)
            .header("Idempotency-Key", idempotency_key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.bytes().await?))
    }
}

impl ApiClient {
    /// `POST <command API><path>` with this client's key and an Idempotency-Key.
    pub async fn post_command(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> anyhow::Result<CommandResponse> {
        self.command(
            &format!("{}{path}", self.command_base),
            body,
            idempotency_key,
        )
        .await
    }

    /// `PATCH <command API><path>` with this client's key and an Idempotency-Key.
    pub async fn patch_command(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> anyhow::Result<CommandResponse> {
        let url = format!("{}{path}", self.command_base);
        self.send(self.http.patch(&url), &url, body, idempotency_key)
            .await
    }

    /// A call to the payment sandbox's operator routes with the gateway's API key.
    pub async fn gateway_call(
        &self,
        method: reqwest::Method,
        url: &str,
        gateway_key: &str,
        body: &Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let response = self
            .http
            .request(method, url)
            .bearer_auth(gateway_key)
            .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
            .json(body)
            .send()
            .await
            .with_context(|| format!("calling {url}"))?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }
}

#[cfg(test)]
mod conflict_tests {
    use super::*;

    fn answer(status: u16, body: Value) -> CommandResponse {
        CommandResponse {
            status: reqwest::StatusCode::from_u16(status).expect("status"),
            replayed: false,
            body,
            raw: bytes::Bytes::new(),
        }
    }

    #[test]
    fn only_a_concurrency_conflict_is_sent_again() {
        let conflict =
            serde_json::json!({"type": "https://waybill.dev/problems/concurrency-conflict"});
        assert!(is_concurrency_conflict(&answer(409, conflict.clone())));
        let cancelled =
            serde_json::json!({"type": "https://waybill.dev/problems/order-already-cancelled"});
        assert!(!is_concurrency_conflict(&answer(409, cancelled)));
        assert!(!is_concurrency_conflict(&answer(422, conflict)));
    }
}
