//! The Elasticsearch / OpenSearch backend as a production cluster meets it, on osmem-server: a
//! node that is down is skipped, two projectors starting on an empty server at once end up on
//! one index, and bulk writes refused with 429 are retried until written.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::osmem::Osmem;
use super::tests::{document, query};
use super::*;

fn prefix() -> String {
    format!("t{}", Uuid::now_v7().simple())
}

/// An address nothing listens on.
fn dead_node() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn a_node_that_is_down_is_skipped_and_the_next_one_serves_writes_and_searches() {
    let Some(server) = Osmem::start() else { return };
    let urls = format!("{},{}", dead_node(), server.url);
    let index = ElasticIndex::connect(&urls, &prefix(), &ElasticOptions::default())
        .await
        .expect("the alias is created on the second node");
    let doc = document(1, "Ada Lovelace", "ada@example.com", None, "Red tee");
    assert_eq!(index.upsert(vec![doc.clone()]).await.expect("bulk"), [true]);
    let found = index
        .get(std::slice::from_ref(&doc.order_id))
        .await
        .expect("mget");
    assert_eq!(found[0].as_ref().map(|d| d.version), Some(doc.version));
    let page = index.search(&query("lovelace")).await.expect("search");
    assert_eq!(page.total, 1);
}

#[tokio::test]
async fn two_projectors_starting_at_once_on_an_empty_server_share_one_index() {
    let Some(server) = Osmem::start() else { return };
    let prefix = prefix();
    let options = ElasticOptions::default();
    let (a, b) = tokio::join!(
        ElasticIndex::connect(&server.url, &prefix, &options),
        ElasticIndex::connect(&server.url, &prefix, &options)
    );
    let (a, b) = (a.expect("first starts"), b.expect("second starts"));
    let docs: Vec<_> = (1..=6)
        .map(|n| {
            document(
                n,
                "Grace Hopper",
                &format!("g{n}@example.com"),
                None,
                "Cobol",
            )
        })
        .collect();
    let (first, second) = tokio::join!(a.upsert(docs[..3].to_vec()), b.upsert(docs[3..].to_vec()));
    first.expect("first writes");
    second.expect("second writes");

    let indices = a.alias_indices().await.expect("alias");
    assert_eq!(indices.len(), 1, "one index behind the alias: {indices:?}");
    assert_eq!(b.alias_indices().await.expect("alias"), indices);
    let ids: Vec<String> = docs.iter().map(|d| d.order_id.clone()).collect();
    for index in [&a, &b] {
        let found = index.get(&ids).await.expect("mget");
        assert!(
            found.iter().all(Option::is_some),
            "every document: {found:?}"
        );
    }
}

/// Forwards everything to `upstream` except the first `refuse` `_bulk` requests, which it
/// answers 429 like a cluster whose write queues are full.
#[derive(Clone)]
struct Throttle {
    upstream: String,
    refuse: usize,
    bulks: Arc<AtomicUsize>,
    http: reqwest::Client,
}

async fn throttle(State(proxy): State<Throttle>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let content_type = request.headers().get("content-type").cloned();
    let body: Bytes = axum::body::to_bytes(request.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    if method == Method::POST && path.starts_with("/_bulk") {
        let n = proxy.bulks.fetch_add(1, Ordering::SeqCst);
        if n < proxy.refuse {
            let refusal = serde_json::json!({"error": {"type": "es_rejected_execution_exception"}, "status": 429});
            return (StatusCode::TOO_MANY_REQUESTS, refusal.to_string()).into_response();
        }
    }
    let mut forward = proxy
        .http
        .request(method, format!("{}{path}", proxy.upstream))
        .body(body);
    if let Some(content_type) = content_type {
        forward = forward.header("content-type", content_type);
    }
    match forward.send().await {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let bytes = answer.bytes().await.unwrap_or_default();
            (status, [("content-type", "application/json")], bytes).into_response()
        }
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

async fn start_throttle(upstream: &str, refuse: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let bulks = Arc::new(AtomicUsize::new(0));
    let proxy = Throttle {
        upstream: upstream.trim_end_matches('/').to_owned(),
        refuse,
        bulks: bulks.clone(),
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new().fallback(throttle).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, bulks)
}

#[tokio::test]
async fn bulk_writes_refused_with_429_are_retried_with_backoff_and_nothing_is_lost() {
    let Some(server) = Osmem::start() else { return };
    let (proxy, bulks) = start_throttle(&server.url, 3).await;
    let options = ElasticOptions {
        retry_base: std::time::Duration::from_millis(10),
        ..ElasticOptions::default()
    };
    let index = ElasticIndex::connect(&format!("http://{proxy}"), &prefix(), &options)
        .await
        .expect("connect through the proxy");
    let docs: Vec<_> = (1..=5)
        .map(|n| {
            document(
                n,
                "Katherine Johnson",
                &format!("k{n}@example.com"),
                None,
                "Orbit",
            )
        })
        .collect();
    let written = index
        .upsert(docs.clone())
        .await
        .expect("written after retries");
    assert_eq!(written, vec![true; 5]);
    assert_eq!(
        bulks.load(Ordering::SeqCst),
        4,
        "three refusals, then the write"
    );
    let ids: Vec<String> = docs.iter().map(|d| d.order_id.clone()).collect();
    let found = index.get(&ids).await.expect("mget");
    assert!(found.iter().all(Option::is_some), "{found:?}");

    // A cluster that keeps refusing is an error after the configured attempts, not a hang.
    let (stubborn, _) = start_throttle(&server.url, usize::MAX).await;
    let giving_up = ElasticIndex::connect(
        &format!("http://{stubborn}"),
        &prefix(),
        &ElasticOptions {
            bulk_attempts: 3,
            ..options
        },
    )
    .await
    .expect("connect");
    let err = giving_up.upsert(docs).await.expect_err("still refused");
    assert!(err.to_string().contains("429"), "{err}");
}

#[tokio::test]
async fn shards_replicas_and_refresh_interval_come_from_config() {
    let Some(server) = Osmem::start() else { return };
    let options = ElasticOptions {
        shards: 3,
        replicas: 1,
        refresh_interval: Some("2s".to_owned()),
        ..ElasticOptions::default()
    };
    let index = ElasticIndex::connect(&server.url, &prefix(), &options)
        .await
        .expect("connect");
    let name = index.alias_indices().await.expect("alias").remove(0);
    let settings = reqwest::get(format!("{}/{name}/_settings", server.url))
        .await
        .expect("settings")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let settings = &settings[&name]["settings"]["index"];
    assert_eq!(
        settings["number_of_shards"].to_string().trim_matches('"'),
        "3",
        "{settings}"
    );
    assert_eq!(
        settings["number_of_replicas"].to_string().trim_matches('"'),
        "1",
        "{settings}"
    );
    assert_eq!(settings["refresh_interval"], "2s", "{settings}");
}
