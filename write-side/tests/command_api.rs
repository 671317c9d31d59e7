//! The command API against a real Postgres: placing, replaying, cancelling, refusing.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{app, app_with, get, order_body, post, post_with, TestDb, FINANCE_KEY, KEY, SECRET};
use waybill_schemas::access::TrackingKeys;
use waybill_schemas::OrderId;

const PROBLEM: &str = "application/problem+json";

fn body(v: &Value) -> String {
    v.to_string()
}

#[tokio::test]
async fn placing_an_order_returns_its_tokens_and_stores_one_event_with_its_outbox_row() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let reply = post(&app, "/v1/orders", Some("k-1"), body(&order_body("WEB-1"))).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let json = reply.json();
    let order_id = OrderId::parse(json["order_id"].as_str().expect("id")).expect("uuid");
    assert_eq!(json["status"], "placed");
    assert_eq!(json["version"], 1);
    assert_eq!(json["consistency_token"], format!("{order_id}.1"));
    assert_eq!(
        reply.header("x-consistency-token"),
        Some(format!("{order_id}.1").as_str())
    );
    // No Location: the command API serves no order resource to point at.
    assert_eq!(reply.header("location"), None);
    assert_eq!(json["totals"]["grand_total_minor"], 3240);
    assert!(TrackingKeys::new(SECRET).verify(
        order_id,
        json["tracking_token"].as_str().expect("token"),
        chrono::Utc::now()
    ));
    assert_eq!(db.count("events").await, 1);
    assert_eq!(db.count("outbox").await, 1);
    let (actor_kind, actor_id, channel): (String, String, Option<String>) =
        sqlx::query_as("SELECT actor_kind, actor_id, channel FROM events")
            .fetch_one(&db.pool)
            .await
            .expect("event row");
    assert_eq!(
        (actor_kind.as_str(), actor_id.as_str(), channel.as_deref()),
        ("service", "shop-1", Some("web"))
    );
    db.drop().await;
}

#[tokio::test]
async fn an_order_without_taxes_or_shipping_price_is_enriched_and_the_event_carries_it() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let mut order = order_body("WEB-ENRICH");
    order["lines"][0]
        .as_object_mut()
        .expect("line")
        .remove("tax_minor");
    order["shipping"] = json!({"method": "express"});
    order["promo_codes"] = json!(["welcome5", "FREESHIP"]);
    order["shipping_address"]["postal_code"] = json!(" 62701-1234 ");
    let reply = post(&app, "/v1/orders", Some("k-enrich"), body(&order)).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    // Illinois 6.25 % of 30.00 = 1.875 → 1.88; express 15.00, taken off again by FREESHIP.
    let totals = &reply.json()["totals"];
    assert_eq!(totals["tax_minor"], 188);
    assert_eq!(totals["shipping_minor"], 1500);
    assert_eq!(totals["discount_minor"], 500 + 1500);
    assert_eq!(totals["grand_total_minor"], 3000 - 2000 + 188 + 1500);
    let (stream, stored): (String, Value) = sqlx::query_as("SELECT stream_id, payload FROM events")
        .fetch_one(&db.pool)
        .await
        .expect("event row");
    // Stored with the personal fields sealed; the event store's reads open them.
    assert!(!stored.to_string().contains("62701"), "{stored}");
    let events = waybill_write_side::event_store::EventStore::new(db.pool.clone())
        .read_stream(&stream, 1, None)
        .await
        .expect("read the order");
    let payload = &events[0].payload.to_value();
    assert_eq!(
        payload["discounts"],
        json!([{"code": "WELCOME5", "amount": {"minor": 500, "currency": "USD"}},
               {"code": "FREESHIP", "amount": {"minor": 1500, "currency": "USD"}}])
    );
    assert_eq!(payload["shipping_address"]["postal_code"], "62701-1234");
    assert_eq!(
        payload["payment"],
        json!({"method": "card", "token": "tok_4242424242424242"})
    );
    assert_eq!(
        payload["risk_context"],
        json!({"ip": "203.0.113.7", "device_id": "dev-1"})
    );
    db.drop().await;
}

#[tokio::test]
async fn duplicate_idempotency_key_returns_the_first_response_byte_for_byte_and_appends_nothing() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let request = body(&order_body("WEB-2"));
    let first = post(&app, "/v1/orders", Some("k-2"), request.clone()).await;
    assert_eq!(first.status, 201);
    let again = post(&app, "/v1/orders", Some("k-2"), request).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body, "byte for byte");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    for name in ["content-type", "location", "x-consistency-token"] {
        assert_eq!(again.header(name), first.header(name), "{name}");
    }
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(db.count("events").await, 1);
    db.drop().await;
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_append_once() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let request = body(&order_body("WEB-3"));
    let replies = futures::future::join_all((0..20).map(|_| {
        let app = app.clone();
        let request = request.clone();
        async move { post(&app, "/v1/orders", Some("k-3"), request).await }
    }))
    .await;
    let first = &replies[0];
    for reply in &replies {
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        assert_eq!(reply.body, first.body);
    }
    assert_eq!(db.count("events").await, 1);
    assert_eq!(db.count("idempotency_records").await, 1);
    db.drop().await;
}

#[tokio::test]
async fn reusing_a_key_with_another_body_is_refused_with_422() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    assert_eq!(
        post(&app, "/v1/orders", Some("k-4"), body(&order_body("WEB-4")))
            .await
            .status,
        201
    );
    let reused = post(&app, "/v1/orders", Some("k-4"), body(&order_body("WEB-5"))).await;
    assert_eq!(reused.status, 422);
    assert_eq!(reused.header("content-type"), Some(PROBLEM));
    assert_eq!(
        reused.json()["type"],
        "https://waybill.dev/problems/idempotency-key-reused"
    );
    assert_eq!(db.count("events").await, 1);
    db.drop().await;
}

#[tokio::test]
async fn the_same_key_from_another_client_is_another_request() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    assert_eq!(
        post(&app, "/v1/orders", Some("k-9"), body(&order_body("WEB-9")))
            .await
            .status,
        201
    );
    let other = post_with(
        &app,
        "/v1/orders",
        Some("k-9"),
        Some("other-client-key"),
        "application/json",
        body(&order_body("WEB-10")),
    )
    .await;
    assert_eq!(other.status, 201);
    assert_eq!(db.count("events").await, 2);
    db.drop().await;
}

#[tokio::test]
async fn the_same_channel_reference_twice_yields_one_order_id() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let first = post(&app, "/v1/orders", Some("k-5"), body(&order_body("WEB-6"))).await;
    assert_eq!(first.status, 201);
    let second = post(&app, "/v1/orders", Some("k-6"), body(&order_body("WEB-6"))).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["order_id"], first.json()["order_id"]);
    assert_eq!(second.json()["existing"], true);
    assert_eq!(second.json()["version"], 1);
    // The 200 is what k-6 stored: a replay gives it back.
    let replay = post(&app, "/v1/orders", Some("k-6"), body(&order_body("WEB-6"))).await;
    assert_eq!((replay.status, &replay.body), (200, &second.body));
    assert_eq!(db.count("events").await, 1);
    db.drop().await;
}

#[tokio::test]
async fn concurrent_captures_of_one_channel_reference_agree_on_the_order() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let request = body(&order_body("WEB-7"));
    let replies = futures::future::join_all((0..8).map(|i| {
        let app = app.clone();
        let request = request.clone();
        async move { post(&app, "/v1/orders", Some(&format!("k-7-{i}")), request).await }
    }))
    .await;
    let ids: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| r.json()["order_id"].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "one order id for one channel reference");
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 1);
    assert_eq!(db.count("events").await, 1);
    db.drop().await;
}

#[tokio::test]
async fn cancel_returns_version_2_then_409_and_unknown_orders_are_404() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let placed = post(&app, "/v1/orders", Some("k-8"), body(&order_body("WEB-8")))
        .await
        .json();
    let id = placed["order_id"].as_str().expect("id").to_owned();
    let path = format!("/v1/orders/{id}/cancel");
    let cancel = json!({"reason":"customer_request","note":null}).to_string();
    let cancelled = post(&app, &path, Some("c-1"), cancel.clone()).await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.json()["status"], "cancelled");
    assert_eq!(cancelled.json()["version"], 2);
    assert_eq!(
        cancelled.header("x-consistency-token"),
        Some(format!("{id}.2").as_str())
    );
    let replay = post(&app, &path, Some("c-1"), cancel.clone()).await;
    assert_eq!((replay.status, &replay.body), (200, &cancelled.body));
    let again = post(&app, &path, Some("c-2"), cancel.clone()).await;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.json()["type"],
        "https://waybill.dev/problems/order-already-cancelled"
    );
    let unknown = post(
        &app,
        &format!("/v1/orders/{}/cancel", OrderId::new_v7()),
        Some("c-3"),
        cancel.clone(),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json()["type"],
        "https://waybill.dev/problems/order-not-found"
    );
    let garbage = post(&app, "/v1/orders/not-a-uuid/cancel", Some("c-4"), cancel).await;
    assert_eq!(garbage.status, 404);
    assert_eq!(db.count("events").await, 2);
    db.drop().await;
}

#[tokio::test]
async fn concurrent_cancels_of_one_order_cancel_it_once() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let placed = post(
        &app,
        "/v1/orders",
        Some("k-10"),
        body(&order_body("WEB-11")),
    )
    .await
    .json();
    let path = format!(
        "/v1/orders/{}/cancel",
        placed["order_id"].as_str().expect("id")
    );
    let replies = futures::future::join_all((0..6).map(|i| {
        let app = app.clone();
        let path = path.clone();
        async move {
            post(
                &app,
                &path,
                Some(&format!("c-{i}")),
                json!({"reason":"fraud"}).to_string(),
            )
            .await
        }
    }))
    .await;
    assert_eq!(replies.iter().filter(|r| r.status == 200).count(), 1);
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 409));
    assert_eq!(db.count("events").await, 2);
    db.drop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_problem_json_and_nothing_is_stored() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let with = |pointer: &str, value: Value| {
        let mut b = order_body("BAD-1");
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        match b.pointer_mut(parent).expect("parent") {
            Value::Array(items) => items[key.parse::<usize>().expect("index")] = value,
            parent => parent[key] = value,
        }
        b.to_string()
    };
    let mut missing = order_body("BAD-1");
    missing.as_object_mut().expect("object").remove("customer");
    let cases: Vec<(&str, String, u16, &str, Option<&str>)> = vec![
        (
            "malformed json",
            "{\"channel\":".into(),
            400,
            "malformed-json",
            None,
        ),
        (
            "missing field",
            missing.to_string(),
            422,
            "validation-failed",
            Some("customer"),
        ),
        (
            "zero quantity",
            with("/lines/0/quantity", json!(0)),
            422,
            "validation-failed",
            Some("lines[0].quantity"),
        ),
        (
            "negative quantity",
            with("/lines/0/quantity", json!(-2)),
            422,
            "validation-failed",
            Some("lines[0].quantity"),
        ),
        (
            "wrong type",
            with("/lines/0/quantity", json!("2")),
            422,
            "validation-failed",
            Some("lines[0].quantity"),
        ),
        (
            "negative price",
            with("/lines/0/unit_price_minor", json!(-1)),
            422,
            "validation-failed",
            Some("lines[0].unit_price_minor"),
        ),
        (
            "unknown currency",
            with("/currency", json!("XYZ")),
            422,
            "validation-failed",
            Some("currency"),
        ),
        (
            "unknown channel",
            with("/channel", json!("fax")),
            422,
            "validation-failed",
            Some("channel"),
        ),
        (
            "bad email",
            with("/customer/email", json!("nope")),
            422,
            "validation-failed",
            Some("customer.email"),
        ),
        (
            "country",
            with("/shipping_address/country", json!("USA")),
            422,
            "validation-failed",
            Some("shipping_address.country"),
        ),
        (
            "discount",
            with(
                "/discounts",
                json!([{"code": "MKT-1", "amount_minor": 999_999}]),
            ),
            422,
            "validation-failed",
            Some("discounts"),
        ),
        (
            "no payment",
            with("/payment", Value::Null),
            422,
            "validation-failed",
            Some("payment"),
        ),
        (
            "unknown payment method",
            with("/payment/method", json!("cash")),
            422,
            "validation-failed",
            Some("payment.method"),
        ),
        (
            "unknown promotion code",
            with("/promo_codes/0", json!("FREE4ALL")),
            422,
            "validation-failed",
            Some("promo_codes[0]"),
        ),
        (
            "postal code",
            with("/shipping_address/postal_code", json!("ABC")),
            422,
            "validation-failed",
            Some("shipping_address.postal_code"),
        ),
        (
            "ip address",
            with("/risk_context/ip", json!("localhost")),
            422,
            "validation-failed",
            Some("risk_context.ip"),
        ),
        (
            "too large",
            format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024)),
            413,
            "payload-too-large",
            None,
        ),
    ];
    for (name, request, status, slug, field) in cases {
        let reply = post(&app, "/v1/orders", Some("bad-key"), request).await;
        assert_eq!(reply.status, status, "{name}: {:?}", reply.body);
        assert_eq!(reply.header("content-type"), Some(PROBLEM), "{name}");
        let json = reply.json();
        assert_eq!(
            json["type"],
            format!("https://waybill.dev/problems/{slug}"),
            "{name}"
        );
        assert_eq!(json["status"], status, "{name}");
        assert_eq!(json["field"].as_str(), field, "{name}");
    }
    let valid = order_body("BAD-1").to_string();
    let no_key = post(&app, "/v1/orders", None, valid.clone()).await;
    assert_eq!(
        (no_key.status, no_key.json()["type"].as_str()),
        (
            400,
            Some("https://waybill.dev/problems/missing-idempotency-key")
        )
    );
    let text = post_with(
        &app,
        "/v1/orders",
        Some("bad-key"),
        Some(KEY),
        "text/plain",
        valid.clone(),
    )
    .await;
    assert_eq!(
        (text.status, text.header("content-type")),
        (415, Some(PROBLEM))
    );
    let anonymous = post_with(
        &app,
        "/v1/orders",
        Some("bad-key"),
        None,
        "application/json",
        valid.clone(),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    let wrong_key = post_with(
        &app,
        "/v1/orders",
        Some("bad-key"),
        Some("nope"),
        "application/json",
        valid.clone(),
    )
    .await;
    assert_eq!(wrong_key.status, 401);
    let finance = post_with(
        &app,
        "/v1/orders",
        Some("bad-key"),
        Some(FINANCE_KEY),
        "application/json",
        valid.clone(),
    )
    .await;
    assert_eq!(finance.status, 403);
    for table in ["events", "outbox", "idempotency_records", "channel_orders"] {
        assert_eq!(db.count(table).await, 0, "{table}");
    }
    // The key was never used, so the valid request still goes through.
    assert_eq!(
        post(&app, "/v1/orders", Some("bad-key"), valid)
            .await
            .status,
        201
    );
    db.drop().await;
}

#[tokio::test]
async fn several_field_errors_are_listed_together() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let mut b = order_body("BAD-2");
    b["lines"][0]["quantity"] = json!(0);
    b["customer"]["email"] = json!("nope");
    let reply = post(&app, "/v1/orders", Some("k"), b.to_string()).await;
    assert_eq!(reply.status, 422);
    let json = reply.json();
    let fields: Vec<&str> = json["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, vec!["customer.email", "lines[0].quantity"]);
    assert_eq!(json["field"], "customer.email");
    db.drop().await;
}

#[tokio::test]
async fn unbatched_mode_places_orders_too() {
    let db = TestDb::create("write").await;
    let app = app(&db, 1);
    let replies = futures::future::join_all((0..10).map(|i| {
        let app = app.clone();
        async move {
            post(
                &app,
                "/v1/orders",
                Some(&format!("u-{i}")),
                order_body(&format!("U-{i}")).to_string(),
            )
            .await
        }
    }))
    .await;
    assert!(replies.iter().all(|r| r.status == 201));
    assert_eq!(db.count("events").await, 10);
    db.drop().await;
}

#[tokio::test]
async fn openapi_health_and_metrics_are_served() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let doc = get(&app, "/openapi.json").await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["paths"]["/v1/orders"]["post"].is_object());
    assert!(
        doc["paths"]["/v1/orders/{id}/cancel"]["post"]["description"]
            .as_str()
            .expect("description")
            .contains("concurrency-conflict")
    );
    assert_eq!(get(&app, "/health").await.status, 200);
    assert_eq!(get(&app, "/live").await.status, 200);
    assert_eq!(get(&app, "/ready").await.status, 200);
    // Metrics are on the process's own listener, not on the public API.
    assert_eq!(get(&app, "/metrics").await.status, 404);
    let missing = get(&app, "/nope").await;
    assert_eq!(
        (missing.status, missing.header("content-type")),
        (404, Some(PROBLEM))
    );
    db.drop().await;
}

#[tokio::test]
async fn a_command_past_the_request_timeout_gets_503_problem_json_and_its_retry_applies_once() {
    let db = TestDb::create("write").await;
    let hasty = app_with(&db, |config| {
        config.batch_max = 64;
        config.request_timeout = Duration::ZERO;
    });
    let order = body(&order_body("WEB-SLOW"));
    let reply = post(&hasty, "/v1/orders", Some("k-slow"), order.clone()).await;
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.json()["type"], "https://waybill.dev/problems/timeout");

    // The client retries with the same key: whether or not the first commit landed, the order
    // exists exactly once afterwards.
    let patient = app(&db, 64);
    let retry = post(&patient, "/v1/orders", Some("k-slow"), order).await;
    assert_eq!(retry.status, 201, "{:?}", retry.body);
    assert_eq!(db.count("events").await, 1);
    assert_eq!(db.count("channel_orders").await, 1);
    db.drop().await;
}

#[tokio::test]
async fn expired_idempotency_records_are_deleted_and_a_late_retry_still_finds_the_one_order() {
    let db = TestDb::create("write").await;
    let app = app(&db, 64);
    let first = post(
        &app,
        "/v1/orders",
        Some("k-old"),
        body(&order_body("WEB-OLD")),
    )
    .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let second = post(
        &app,
        "/v1/orders",
        Some("k-new"),
        body(&order_body("WEB-NEW")),
    )
    .await;
    assert_eq!(second.status, 201, "{:?}", second.body);
    sqlx::query(
        "UPDATE idempotency_records SET created_at = now() - interval '2 days' \
         WHERE idempotency_key = 'k-old'",
    )
    .execute(&db.pool)
    .await
    .expect("age one record");

    let cutoff = chrono::Utc::now() - chrono::Duration::hours(24);
    let removed = waybill_write_side::idempotency::delete_expired(&db.pool, cutoff, 1_000)
        .await
        .expect("sweep");
    assert_eq!(removed, 1);
    assert_eq!(db.count("idempotency_records").await, 1);

    // A retry after the retention is a new request, and the channel reference still maps it
    // to the order it already created.
    let late = post(
        &app,
        "/v1/orders",
        Some("k-old"),
        body(&order_body("WEB-OLD")),
    )
    .await;
    assert_eq!(late.status, 200, "{:?}", late.body);
    assert_eq!(late.json()["existing"], true);
    assert_eq!(late.json()["order_id"], first.json()["order_id"]);
    assert_eq!(db.count("events").await, 2);
    db.drop().await;
}
