//! Test support: a fresh serializable Postgres database per test, and an in-process command API.

#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;
use waybill_write_side::command_api::{self, ApiKeys, CommandApiConfig};

pub const KEY: &str = "test-service-key";
pub const FINANCE_KEY: &str = "test-finance-key";
pub const SECRET: &[u8] = b"test-tracking-secret";

/// A fresh serializable, migrated database per test.
pub type TestDb = waybill_write_side::testing::TestDatabase;

/// The command API on `db`, with batches of up to `batch_max`.
pub fn app(db: &TestDb, batch_max: usize) -> Router {
    app_with(db, |config| config.batch_max = batch_max)
}

/// The command API on `db`, with `configure` applied to the test configuration.
pub fn app_with(db: &TestDb, configure: impl FnOnce(&mut CommandApiConfig)) -> Router {
    let mut keys = ApiKeys::parse(&format!("{KEY}:shop-1:service,{FINANCE_KEY}:fin:finance"))
        .expect("test keys");
    keys.add("other-client-key", "shop-2", command_api::Role::Service);
    let mut config = CommandApiConfig::new(keys, SECRET.to_vec());
    config.batch_linger = Duration::from_millis(2);
    configure(&mut config);
    let (router, _workers) = command_api::router(config, db.pool.clone());
    router
}

pub use waybill_write_side::testing::order_body;

/// A response with its body read.
pub struct Reply {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn read(response: Response<Body>) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    Reply {
        status,
        headers,
        body,
    }
}

/// Sends a POST with the test service key.
pub async fn post(app: &Router, path: &str, key: Option<&str>, body: impl Into<Body>) -> Reply {
    post_with(app, path, key, Some(KEY), "application/json", body).await
}

pub async fn post_with(
    app: &Router,
    path: &str,
    idempotency_key: Option<&str>,
    api_key: Option<&str>,
    content_type: &str,
    body: impl Into<Body>,
) -> Reply {
    let mut request = Request::post(path).header("content-type", content_type);
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    if let Some(api_key) = api_key {
        request = request.header("authorization", format!("Bearer {api_key}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(body.into()).expect("request"))
        .await
        .expect("infallible");
    read(response).await
}

pub async fn get(app: &Router, path: &str) -> Reply {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    read(response).await
}
