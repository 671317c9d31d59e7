//! The tracking endpoint against a real Redis (`REDIS_URL`, default 127.0.0.1:6379); every test
//! uses its own key prefix.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::Utc;
use redis::aio::ConnectionManager;
use serde_json::Value;
use tower::ServiceExt;
use waybill_query_api::{ApiKeys, QueryApiConfig};
use waybill_schemas::access::tracking_token;
use waybill_schemas::views::{
    TimelineEntry, TrackingLine, TrackingStatus, TrackingTotals, TrackingView,
};
use waybill_schemas::{Channel, OrderId};

const SECRET: &[u8] = b"test-tracking-secret";

struct Harness {
    app: Router,
    redis: ConnectionManager,
    prefix: String,
}

async fn harness(max_wait: Duration) -> Harness {
    harness_with(|config| config.max_wait = max_wait).await
}

async fn harness_with(configure: impl FnOnce(&mut QueryApiConfig)) -> Harness {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis = redis::Client::open(url)
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let prefix = format!("test-query-{}", uuid::Uuid::now_v7());
    let mut config = QueryApiConfig::new(prefix.clone(), SECRET.to_vec());
    config.api_keys = ApiKeys::parse("agent-key:ann:agent,fin-key:fred:finance").unwrap();
    configure(&mut config);
    Harness {
        app: waybill_query_api::router(config, redis.clone().into()),
        redis,
        prefix,
    }
}

fn view(order: OrderId, version: i64) -> TrackingView {
    let now = Utc::now();
    TrackingView {
        order_id: order.to_string(),
        version,
        status: if version > 1 {
            TrackingStatus::Cancelled
        } else {
            TrackingStatus::Placed
        },
        channel: Channel::Web,
        channel_order_ref: "WEB-1".into(),
        currency: "USD".into(),
        lines: vec![TrackingLine {
            line_no: 1,
            sku: "TEE-RED-M".into(),
            name: "Red tee".into(),
            quantity: 2,
            unit_price_minor: 1500,
            total_minor: 3000,
            cancelled_quantity: 0,
        }],
        totals: TrackingTotals {
            subtotal_minor: 3000,
            discount_minor: 0,
            tax_minor: 240,
            shipping_minor: 500,
            grand_total_minor: 3740,
        },
        shipping_method: "standard".into(),
        placed_at: now,
        updated_at: now,
        cancellation_reason: None,
        payment: Default::default(),
        stock: Default::default(),
        confirmed_at: None,
        timeline: vec![TimelineEntry {
            version: 1,
            event_type: "OrderPlaced".into(),
            occurred_at: now,
            summary: "Order placed".into(),
        }],
        delivery: Default::default(),
        shipments: Vec::new(),
        pickup: None,
        returns: Vec::new(),
        access: Default::default(),
    }
}

/// Writes the hash the way the projector lays it out; keys expire so tests leave nothing behind.
async fn write_view(redis: &mut ConnectionManager, prefix: &str, order: OrderId, version: i64) {
    let json = serde_json::to_string(&view(order, version)).unwrap();
    let key = waybill_projectors::views::tracking::keys::view_key(prefix, order);
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg(&key)
        .arg("version")
        .arg(version)
        .arg("view")
        .arg(json)
        .ignore()
        .cmd("EXPIRE")
        .arg(&key)
        .arg(120)
        .ignore()
        .query_async(redis)
        .await
        .unwrap();
}

struct Answer {
    status: StatusCode,
    content_type: String,
    stale_header: Option<String>,
    body: Value,
}

async fn get(app: &Router, uri: &str, bearer: Option<&str>) -> Answer {
    let mut request = Request::get(uri);
    if let Some(key) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let stale_header = response
        .headers()
        .get("x-waybill-stale")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        stale_header,
        body,
    }
}

fn tracking_uri(order: OrderId, query: &str) -> String {
    format!("/v1/orders/{order}/tracking?{query}")
}

#[tokio::test]
async fn customer_with_token_sees_the_view() {
    let mut h = harness(Duration::from_secs(2)).await;
    let order = OrderId::new_v7();
    write_view(&mut h.redis, &h.prefix, order, 1).await;
    let token = tracking_token(SECRET, order);

    let answer = get(
        &h.app,
        &tracking_uri(order, &format!("token={token}")),
        None,
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["view"]["order_id"], order.to_string());
    assert_eq!(answer.body["view"]["status"], "placed");
    assert_eq!(answer.body["view"]["totals"]["grand_total_minor"], 3740);
    assert_eq!(answer.body["consistency"]["stale"], false);
    assert_eq!(answer.body["consistency"]["view_version"], 1);
    assert_eq!(answer.stale_header.as_deref(), Some("false"));
}

#[tokio::test]
async fn min_version_waits_for_a_write_that_lands_during_the_wait() {
    let mut h = harness(Duration::from_secs(2)).await;
    let order = OrderId::new_v7();
    write_view(&mut h.redis, &h.prefix, order, 1).await;
    let token = tracking_token(SECRET, order);
    let (mut redis, prefix) = (h.redis.clone(), h.prefix.clone());
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        write_view(&mut redis, &prefix, order, 2).await;
    });

    let answer = get(
        &h.app,
        &tracking_uri(order, &format!("token={token}&min_version=2")),
        None,
    )
    .await;
    writer.await.unwrap();

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["view"]["version"], 2);
    assert_eq!(answer.body["view"]["status"], "cancelled");
    assert_eq!(answer.body["consistency"]["stale"], false);
    assert_eq!(answer.body["consistency"]["requested_version"], 2);
}

#[tokio::test]
async fn consistency_token_waits_for_a_view_that_does_not_exist_yet() {
    let h = harness(Duration::from_secs(2)).await;
    let order = OrderId::new_v7();
    let token = tracking_token(SECRET, order);
    let (mut redis, prefix) = (h.redis.clone(), h.prefix.clone());
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        write_view(&mut redis, &prefix, order, 1).await;
    });

    let answer = get(
        &h.app,
        &tracking_uri(order, &format!("token={token}&consistency_token={order}.1")),
        None,
    )
    .await;
    writer.await.unwrap();

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["consistency"]["stale"], false);
    assert_eq!(answer.body["view"]["version"], 1);
}

#[tokio::test]
async fn view_still_behind_after_the_bound_is_marked_stale() {
    let mut h = harness(Duration::from_millis(300)).await;
    let order = OrderId::new_v7();
    write_view(&mut h.redis, &h.prefix, order, 1).await;
    let token = tracking_token(SECRET, order);

    let started = std::time::Instant::now();
    let answer = get(
        &h.app,
        &tracking_uri(order, &format!("token={token}&min_version=5")),
        None,
    )
    .await;

    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.stale_header.as_deref(), Some("true"));
    assert_eq!(
        answer.body["consistency"],
        serde_json::json!({"stale": true, "requested_version": 5, "view_version": 1})
    );
    assert_eq!(answer.body["view"]["version"], 1);
}

#[tokio::test]
async fn wrong_token_and_missing_order_get_the_identical_404() {
    let mut h = harness(Duration::from_secs(2)).await;
    let order = OrderId::new_v7();
    write_view(&mut h.redis, &h.prefix, order, 1).await;
    let missing = OrderId::new_v7();

    let wrong_token = get(
        &h.app,
        &tracking_uri(order, &format!("token={}", tracking_token(b"other", order))),
        None,
    )
    .await;
    let absent = get(
        &h.app,
        &tracking_uri(
            missing,
            &format!("token={}", tracking_token(SECRET, missing)),
        ),
        None,
    )
    .await;

    assert_eq!(wrong_token.status, StatusCode::NOT_FOUND);
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    assert_eq!(wrong_token.body, absent.body);
    assert_eq!(wrong_token.content_type, "application/problem+json");
    assert_eq!(
        absent.body["type"],
        "https://waybill.dev/problems/order-not-found"
    );
}

#[tokio::test]
async fn agent_api_key_reads_any_order_and_finance_or_unknown_keys_do_not() {
    let mut h = harness(Duration::from_secs(2)).await;
    let order = OrderId::new_v7();
    write_view(&mut h.redis, &h.prefix, order, 1).await;
    let uri = tracking_uri(order, "");

    let agent = get(&h.app, &uri, Some("agent-key")).await;
    let finance = get(&h.app, &uri, Some("fin-key")).await;
    let unknown = get(&h.app, &uri, Some("nope")).await;
    let anonymous = get(&h.app, &uri, None).await;

    assert_eq!(agent.status, StatusCode::OK);
    assert_eq!(agent.body["view"]["order_id"], order.to_string());
    assert_eq!(finance.status, StatusCode::FORBIDDEN);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.content_type, "application/problem+json");
}

#[tokio::test]
async fn bad_order_id_and_bad_min_version_are_422_naming_the_field() {
    let h = harness(Duration::from_secs(2)).await;
    let order = OrderId::new_v7();
    let token = tracking_token(SECRET, order);

    let bad_id = get(&h.app, "/v1/orders/not-a-uuid/tracking?token=x", None).await;
    let bad_min = get(
        &h.app,
        &tracking_uri(order, &format!("token={token}&min_version=zero")),
        None,
    )
    .await;
    let bad_consistency = get(
        &h.app,
        &tracking_uri(order, &format!("token={token}&consistency_token=abc")),
        None,
    )
    .await;

    for (answer, field) in [
        (&bad_id, "id"),
        (&bad_min, "min_version"),
        (&bad_consistency, "consistency_token"),
    ] {
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(answer.content_type, "application/problem+json");
        assert_eq!(answer.body["field"], field);
        assert_eq!(answer.body["status"], 422);
    }
}

#[tokio::test]
async fn openapi_health_and_metrics_are_served() {
    let h = harness(Duration::from_secs(2)).await;
    let doc = get(&h.app, "/openapi.json", None).await;
    let health = get(&h.app, "/health", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["paths"]["/v1/orders/{id}/tracking"].is_object());
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["redis"], "ok");
    for path in ["/live", "/ready"] {
        let answer = get(&h.app, path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    // Metrics are on the process's own listener, not on the public API.
    let metrics = get(&h.app, "/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_request_past_the_timeout_gets_503_problem_json() {
    // A read-your-writes wait longer than the whole-request limit: the limit wins.
    let mut h = harness_with(|config| {
        config.max_wait = Duration::from_secs(5);
        config.request_timeout = Duration::from_millis(200);
    })
    .await;
    let order = OrderId::new_v7();
    write_view(&mut h.redis, &h.prefix, order, 1).await;
    let token = tracking_token(SECRET, order);

    let answer = get(
        &h.app,
        &tracking_uri(order, &format!("token={token}&min_version=9")),
        None,
    )
    .await;

    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(
        answer.body["type"], "https://waybill.dev/problems/timeout",
        "{:?}",
        answer.body
    );
}
