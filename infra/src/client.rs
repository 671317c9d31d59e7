//! A small HTTP client for Waybill's public APIs, used by the demo and the benchmark.

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

    async fn command(
        &self,
        url: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> anyhow::Result<CommandResponse> {
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.key)
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v.as_bytes() == b"true");
        let raw = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer of POST {url}"))?;
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Ok(CommandResponse {
            status,
            replayed,
            body,
            raw,
        })
    }

    /// `GET /v1/orders/{id}/tracking?token=..&min_version=..` as the customer.
    pub async fn tracking(
        &self,
        order_id: &str,
        token: &str,
        min_version: i64,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let url = self.tracking_url(order_id, token);
        let response = self
            .http
            .get(format!("{url}&min_version={min_version}"))
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    pub fn tracking_url(&self, order_id: &str, token: &str) -> String {
        format!(
            "{}/v1/orders/{order_id}/tracking?token={token}",
            self.query_base
        )
    }
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
