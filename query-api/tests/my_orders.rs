//! `GET /v1/me/orders` against a real Redis (`REDIS_URL`): the customer index the tracking
//! projector writes, paged by cursor, including orders placed in the same millisecond.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::HashSet;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::{TimeZone, Utc};
use serde_json::Value;
use tower::ServiceExt;
use waybill_query_api::{ApiKeys, QueryApiConfig};
use waybill_schemas::access::customer_digest;
use waybill_schemas::jwt::{Claims, JwtKey};
use waybill_schemas::OrderId;

const JWT_SECRET: &[u8] = b"test-jwt-secret";

fn jwt(sub: &str, role: &str) -> String {
    JwtKey::new(JWT_SECRET).issue(&Claims {
        sub: sub.into(),
        role: role.into(),
        exp: Utc::now().timestamp() + 600,
    })
}

async fn get(app: &Router, uri: &str, bearer: &str) -> (StatusCode, Value) {
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Writes a view and its index entry the way the projector does; keys expire after the test.
async fn write_order(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    customer: &str,
    order: OrderId,
    placed_ms: i64,
) {
    let placed_at = Utc.timestamp_millis_opt(placed_ms).unwrap();
    let view = serde_json::json!({
        "order_id": order.to_string(), "version": 1, "status": "placed", "channel": "web",
        "channel_order_ref": format!("ME-{order}"), "currency": "USD", "lines": [],
        "totals": {"subtotal_minor": 100, "discount_minor": 0, "tax_minor": 0,
                   "shipping_minor": 0, "grand_total_minor": 100},
        "shipping_method": "standard", "placed_at": placed_at, "updated_at": placed_at,
        "cancellation_reason": null, "timeline": [],
        "access": {"customer": customer_digest(customer), "lookup": []}
    });
    let key = waybill_projectors::views::tracking::keys::view_key(prefix, order);
    let index = format!("{prefix}:customer-orders:{}", customer_digest(customer));
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg(&key)
        .arg("version")
        .arg(1)
        .arg("view")
        .arg(view.to_string())
        .ignore()
        .cmd("EXPIRE")
        .arg(&key)
        .arg(120)
        .ignore()
        .cmd("ZADD")
        .arg(&index)
        .arg(placed_ms)
        .arg(order.to_string())
        .ignore()
        .cmd("EXPIRE")
        .arg(&index)
        .arg(120)
        .ignore()
        .query_async(redis)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_customer_pages_through_exactly_their_orders_newest_first() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let prefix = format!("test-me-{}", uuid::Uuid::now_v7());
    let mut config = QueryApiConfig::new(prefix.clone(), b"tracking".to_vec());
    config.api_keys = ApiKeys::parse("agent-key:ann:agent")
        .unwrap()
        .with_jwt(JWT_SECRET);
    config.rate_limit = None;
    let app = waybill_query_api::router(config, redis.clone().into());

    // Seven orders of cust-1, three of them in the same millisecond; one of cust-2.
    let base = 1_790_000_000_000_i64;
    let mut mine = Vec::new();
    for (n, ms) in [0, 10, 20, 20, 20, 30, 40].into_iter().enumerate() {
        let order = OrderId::new_v7();
        write_order(&mut redis, &prefix, "cust-1", order, base + ms).await;
        mine.push((base + ms, order.to_string(), n));
    }
    let theirs = OrderId::new_v7();
    write_order(&mut redis, &prefix, "cust-2", theirs, base + 25).await;

    let token = jwt("cust-1", "customer");
    let mut seen = Vec::new();
    let mut uri = "/v1/me/orders?limit=2".to_owned();
    for _page in 0..10 {
        let (status, body) = get(&app, &uri, &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for item in items {
            seen.push((
                item["placed_at"].as_str().unwrap().to_owned(),
                item["order_id"].as_str().unwrap().to_owned(),
            ));
            assert!(item["tracking_url"]
                .as_str()
                .unwrap()
                .starts_with("/track/"));
        }
        match body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/v1/me/orders?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let ids: Vec<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), 7, "every order once: {ids:?}");
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        7,
        "no repeats: {ids:?}"
    );
    assert!(
        !ids.contains(&theirs.to_string().as_str()),
        "never another customer's"
    );
    let times: Vec<chrono::DateTime<Utc>> =
        seen.iter().map(|(at, _)| at.parse().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");

    // Staff have no orders of their own; bad paging input names its field.
    let (status, _) = get(&app, "/v1/me/orders", "agent-key").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = get(&app, "/v1/me/orders?limit=0", &token).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("limit"))
    );
    let (status, body) = get(&app, "/v1/me/orders?cursor=garbage", &token).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cursor"))
    );
}
