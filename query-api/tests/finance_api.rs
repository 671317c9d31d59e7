//! The finance endpoints against a real ClickHouse (`WAYBILL_CLICKHOUSE_URL`, default
//! 127.0.0.1:8124, as `infra/scripts/ensure-clickhouse.sh` starts it); every test has its own
//! database. Rows are written the way the analytics projector writes them.

#![allow(clippy::unwrap_used)] // tests may unwrap

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;
use waybill_projectors::warehouse::rows::{
    days, insert_rows, seconds, LedgerEntryRow, OrderFactRow,
};
use waybill_projectors::WarehouseConfig;
use waybill_query_api::{ApiKeys, QueryApiConfig};

const KEYS: &str =
    "agent-key:ann:agent,svc-key:shop:service,fin-key:fred:finance,adm-key:ada:admin";
const DAY: &str = "2026-11-20";

async fn warehouse() -> WarehouseConfig {
    let url = std::env::var("WAYBILL_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8124".to_owned());
    let config = WarehouseConfig::new(
        url,
        format!("waybill_qtest_{}", uuid::Uuid::now_v7().simple()),
    );
    waybill_projectors::warehouse::migrate(&config)
        .await
        .expect("ClickHouse must be running (infra/scripts/ensure-clickhouse.sh)");
    config
}

async fn drop_warehouse(config: &WarehouseConfig) {
    config
        .server_client()
        .query(&format!("DROP DATABASE IF EXISTS {}", config.database))
        .execute()
        .await
        .unwrap();
}

async fn app(warehouse: &WarehouseConfig) -> Router {
    let redis = redis::Client::open(
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    )
    .unwrap()
    .get_connection_manager()
    .await
    .unwrap();
    let mut config = QueryApiConfig::new("test-finance", b"secret".to_vec());
    config.api_keys = ApiKeys::parse(KEYS).unwrap();
    config.warehouse = Some(warehouse.clone());
    waybill_query_api::router(config, redis.into())
}

async fn get(app: &Router, uri: &str, key: Option<&str>) -> (StatusCode, String, String) {
    let mut request = Request::get(uri);
    if let Some(key) = key {
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
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn at(time: &str) -> u32 {
    seconds(
        chrono::DateTime::parse_from_rfc3339(&format!("{DAY}T{time}Z"))
            .unwrap()
            .with_timezone(&chrono::Utc),
    )
}

/// Two web orders and one app order with captures, a refund, a lost chargeback and a fee.
async fn seed(warehouse: &WarehouseConfig) {
    let client = warehouse.client();
    let fact = |id: &str, channel: &str, total: i64| OrderFactRow {
        order_id: id.into(),
        channel: channel.into(),
        currency: "USD".into(),
        status: "captured".into(),
        line_count: 1,
        item_count: 1,
        subtotal: total,
        discount_total: 0,
        tax_total: 0,
        shipping_total: 0,
        grand_total: total,
        authorized: total,
        captured: total,
        refunded: 0,
        chargebacks_lost: 0,
        placed_at: at("10:00:00"),
        risk_assessed_at: None,
        reserved_at: None,
        authorized_at: None,
        confirmed_at: Some(at("10:00:10")),
        captured_at: Some(at("10:00:12")),
        cancelled_at: None,
        cancel_reason: String::new(),
        version: 6,
    };
    insert_rows(
        &client,
        "order_facts",
        &[
            fact("o1", "web", 1000),
            fact("o2", "web", 2000),
            fact("o3", "app", 500),
        ],
    )
    .await
    .unwrap();
    let day = days(chrono::NaiveDate::parse_from_str(DAY, "%Y-%m-%d").unwrap());
    let entry = |id: &str, order: &str, kind: &str, channel: &str, amount: i64| LedgerEntryRow {
        entry_id: id.into(),
        order_id: order.into(),
        kind: kind.into(),
        gateway_txn_id: format!("tx-{id}"),
        channel: channel.into(),
        currency: "USD".into(),
        amount,
        occurred_at: at("11:00:00"),
        day,
        version: 6,
    };
    insert_rows(
        &client,
        "ledger_entries",
        &[
            entry("e1", "o1", "capture", "web", 1000),
            entry("e2", "o2", "capture", "web", 2000),
            entry("e3", "o3", "capture", "app", 500),
            entry("e4", "o1", "refund", "web", 250),
            entry("e5", "o2", "chargeback_lost", "web", 2000),
            // Fees come from reports without a channel: the order's is used.
            entry("e6", "o1", "fee", "", 59),
            entry("e7", "o3", "authorization", "app", 500),
        ],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn finance_endpoints_refuse_every_role_but_finance_and_admin() {
    let warehouse = warehouse().await;
    let app = app(&warehouse).await;
    let paths = [
        "/v1/finance/summary",
        "/v1/finance/payouts",
        "/v1/finance/payouts/po_1/lines",
        "/v1/finance/reconciliation",
        "/v1/finance/metrics",
    ];
    for path in paths {
        for key in ["agent-key", "svc-key"] {
            let (status, content_type, body) = get(&app, path, Some(key)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path} with {key}: {body}");
            assert_eq!(content_type, "application/problem+json");
        }
        let (status, _, _) = get(&app, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} without a key");
        let (status, _, _) = get(&app, path, Some("wrong-key")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with a wrong key");
        for key in ["fin-key", "adm-key"] {
            let (status, _, body) = get(&app, path, Some(key)).await;
            assert_eq!(status, StatusCode::OK, "{path} with {key}: {body}");
        }
    }
    drop_warehouse(&warehouse).await;
}

#[tokio::test]
async fn the_summary_sums_money_per_day_channel_and_currency_in_json_and_csv() {
    let warehouse = warehouse().await;
    seed(&warehouse).await;
    let app = app(&warehouse).await;
    let uri = format!("/v1/finance/summary?from={DAY}&to={DAY}");
    let (status, _, body) = get(&app, &uri, Some("fin-key")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["items"],
        serde_json::json!([
            {"day": DAY, "channel": "app", "currency": "USD", "orders": 1, "gross_sales": 500,
             "captures": 500, "refunds": 0, "fees": 0, "chargebacks": 0, "net": 500,
             "formatted": {"gross_sales": "5.00", "captures": "5.00", "refunds": "0.00",
                           "fees": "0.00", "chargebacks": "0.00", "net": "5.00"}},
            {"day": DAY, "channel": "web", "currency": "USD", "orders": 2, "gross_sales": 3000,
             "captures": 3000, "refunds": 250, "fees": 59, "chargebacks": 2000, "net": 691,
             "formatted": {"gross_sales": "30.00", "captures": "30.00", "refunds": "2.50",
                           "fees": "0.59", "chargebacks": "20.00", "net": "6.91"}},
        ])
    );
    assert_eq!(json["next_offset"], Value::Null);

    let (_, _, page) = get(&app, &format!("{uri}&limit=1"), Some("fin-key")).await;
    let page: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_offset"], 1);

    let (status, content_type, csv) = get(
        &app,
        &format!("{uri}&format=csv&channel=web"),
        Some("fin-key"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/csv; charset=utf-8");
    assert_eq!(
        csv,
        format!(
            "day,channel,currency,orders,gross_sales,captures,refunds,fees,chargebacks,net\n\
             {DAY},web,USD,2,30.00,30.00,2.50,0.59,20.00,6.91\n"
        )
    );
    drop_warehouse(&warehouse).await;
}

#[tokio::test]
async fn bad_parameters_are_problems_naming_the_parameter() {
    let warehouse = warehouse().await;
    let app = app(&warehouse).await;
    for (query, field) in [
        ("from=yesterday", "from"),
        ("from=2026-11-20&to=2026-11-19", "to"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
        ("format=pdf", "format"),
        ("channel=telegraph", "channel"),
        ("currency=XYZ", "currency"),
    ] {
        let (status, content_type, body) = get(
            &app,
            &format!("/v1/finance/summary?{query}"),
            Some("fin-key"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(content_type, "application/problem+json");
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["field"], field, "{query}");
    }
    let (status, _, body) = get(
        &app,
        "/v1/finance/reconciliation?outcome=lost",
        Some("fin-key"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["field"],
        "outcome"
    );
    drop_warehouse(&warehouse).await;
}

#[tokio::test]
async fn metrics_report_stages_and_time_in_stage() {
    let warehouse = warehouse().await;
    seed(&warehouse).await;
    let app = app(&warehouse).await;
    let (status, _, body) = get(
        &app,
        &format!("/v1/finance/metrics?from={DAY}&to={DAY}"),
        Some("adm-key"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["orders_per_stage"],
        serde_json::json!([{"status": "captured", "orders": 3}])
    );
    let stage = json["time_in_stage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "confirmed_to_captured")
        .unwrap()
        .clone();
    assert_eq!(
        stage,
        serde_json::json!({"stage": "confirmed_to_captured", "orders": 3, "p50_seconds": 2, "p95_seconds": 2})
    );
    assert_eq!(
        json["cancellations"],
        serde_json::json!({"orders": 3, "cancelled": 0, "rate": 0.0})
    );
    drop_warehouse(&warehouse).await;
}
