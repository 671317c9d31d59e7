//! An order whose every unit is cancelled is a cancelled order, in every view: the event log
//! (`OrderCancelled`, decided with the cancellation that takes the last units), the tracking
//! view, the search document, the customer's own list (`/v1/me/orders`), the analytics facts in
//! ClickHouse and the tracking page. Whole-order cancels were always like that; cancelling the
//! lines one request at a time (or a pickup nobody collected, see `cancellation.rs`) left the
//! order `confirmed` with nothing in it.

use reqwest::Method;
use serde_json::{json, Value};
use waybill_e2e::checkout::SETTLE;
use waybill_e2e::fulfillment::{multi_line_order, FulfillmentWorld};
use waybill_e2e::{eventually, TestEnv, AGENT_KEY, SERVICE_KEY};

/// The order's `order_facts` status in ClickHouse, once the analytics view wrote one.
async fn warehouse_status(env: &TestEnv, order_id: &str) -> String {
    let client = reqwest::Client::new();
    let sql = format!(
        "SELECT status FROM {}.order_facts FINAL WHERE order_id = '{order_id}' FORMAT TabSeparated",
        env.clickhouse_database
    );
    let response = client
        .post(&env.clickhouse_url)
        .body(sql)
        .send()
        .await
        .expect("ClickHouse answers");
    response.text().await.unwrap_or_default().trim().to_owned()
}

/// Waits until every view of `order_id` says `cancelled`: tracking (service key), search
/// (agent), `/v1/me/orders` (the customer `customer_id`), ClickHouse and the tracking page.
pub async fn cancelled_everywhere(
    f: &FulfillmentWorld,
    order_id: &str,
    customer_id: &str,
    tracking_token: &str,
) -> Value {
    let api = &f.world.api;
    let view = f
        .view_when(order_id, "tracking says cancelled", |v| {
            v["status"] == json!("cancelled")
        })
        .await;
    eventually("search says cancelled", SETTLE, || async {
        let response = api
            .query_get("/v1/search/orders", &[("q", order_id)], Some(AGENT_KEY))
            .await;
        let body = response.json();
        match body["hits"][0]["document"]["status"].as_str() {
            Some("cancelled") => Ok(()),
            _ => Err(body.to_string()),
        }
    })
    .await;
    let jwt = f.world.env.jwt(customer_id, "customer");
    eventually("/v1/me/orders says cancelled", SETTLE, || async {
        let body = api
            .send(
                Method::GET,
                &format!("{}/v1/me/orders", api.query_url),
                Some(&jwt),
                None,
                None,
            )
            .await
            .json();
        let mine = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|item| item["order_id"] == json!(order_id))
            .cloned();
        match mine {
            Some(item) if item["status"] == json!("cancelled") => Ok(()),
            _ => Err(body.to_string()),
        }
    })
    .await;
    eventually("ClickHouse order_facts says cancelled", SETTLE, || async {
        let status = warehouse_status(&f.world.env, order_id).await;
        if status == "cancelled" {
            Ok(())
        } else {
            Err(format!("order_facts status {status:?}"))
        }
    })
    .await;
    let page = api
        .get(&format!(
            "{}/track/{order_id}?token={tracking_token}",
            api.query_url
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let html = page.text();
    assert!(
        html.contains("data-status=\"cancelled\""),
        "the page shows the order cancelled: {html}"
    );
    assert!(
        !html.contains("Ready for collection"),
        "nothing is waiting to be collected: {html}"
    );
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_every_line_one_request_at_a_time_cancels_the_order_everywhere() {
    let f = FulfillmentWorld::start("all_lines_cancelled", &[]).await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    f.world.restock("MUG-BLK", "wh-east", 5).await;
    let reference = "ALL-LINES-1";
    let placed = f
        .world
        .place(&multi_line_order(
            reference,
            &[("TEE-RED-M", 2), ("MUG-BLK", 1)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    let token = placed["tracking_token"].as_str().unwrap().to_owned();
    let grand_total = placed["totals"]["grand_total_minor"].as_i64().unwrap();
    f.tasks(&order_id, 1).await;
    f.world
        .wait_for_event(&order_id, "PaymentCaptured", 1)
        .await;

    // The fulfillment worker appends to the order meanwhile; a 409 concurrency-conflict says
    // "retry it", and a client does, with the same key.
    let cancel = |key: &'static str, body: Value| {
        let api = &f.world.api;
        let path = format!("/v1/orders/{order_id}/lines/cancel");
        async move {
            let mut attempts = 0;
            loop {
                let response = api.post_json(&path, SERVICE_KEY, key, &body).await;
                attempts += 1;
                let conflict = response.problem_slug().as_deref() == Some("concurrency-conflict");
                if !conflict || attempts == 5 {
                    return response;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    // Some units first: the order is still confirmed.
    let first = cancel(
        "cancel-some",
        json!({"lines": [{"line_no": 1, "quantity": 1}], "reason": "customer_request"}),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.describe());
    assert!(f
        .world
        .env
        .payloads_of(&order_id, "OrderCancelled")
        .await
        .is_empty());
    // Then the rest: the order is cancelled with them, in the same commit.
    let rest = cancel(
        "cancel-rest",
        json!({"lines": [{"line_no": 1, "quantity": 1}, {"line_no": 2, "quantity": 1}], "reason": "customer_request"}),
    )
    .await;
    assert_eq!(rest.status, 200, "{}", rest.describe());
    assert_eq!(rest.json()["current_total_minor"], json!(0));
    let cancelled = f.world.env.payloads_of(&order_id, "OrderCancelled").await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["reason"], json!("customer_request"));
    let types = f.world.env.event_types_of_order(&order_id).await;
    let last_cancel = types
        .iter()
        .rposition(|t| t == "OrderLinesCancelled")
        .unwrap();
    assert_eq!(
        types.get(last_cancel + 1).map(String::as_str),
        Some("OrderCancelled"),
        "decided together with the last units: {types:?}"
    );

    // Every penny back, and every view says cancelled.
    eventually("refunded in full", SETTLE, || async {
        let refunded: i64 = f
            .world
            .env
            .payloads_of(&order_id, "PaymentRefunded")
            .await
            .iter()
            .map(|r| r["amount"]["minor"].as_i64().unwrap_or(0))
            .sum();
        if refunded == grand_total {
            Ok(())
        } else {
            Err(format!("{refunded} of {grand_total} refunded"))
        }
    })
    .await;
    let view = cancelled_everywhere(&f, &order_id, reference, &token).await;
    assert_eq!(view["cancellation_reason"], json!("customer_request"));
    // A cancelled order takes no more cancellations.
    let again = cancel(
        "cancel-again",
        json!({"lines": [{"line_no": 1, "quantity": 1}], "reason": "customer_request"}),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.describe());
}
