//! Carrier and node webhooks dated ahead of their arrival: a time beyond the configured clock
//! skew is refused (422 naming the field, nothing stored), and no scan, however dated, can stop
//! a later genuine delivery scan from landing.

use chrono::{Duration, Utc};
use serde_json::{json, Value};
use waybill_e2e::fulfillment::{multi_line_order, FulfillmentWorld};

fn status_of(view: &Value) -> Value {
    view["shipments"][0]["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_dated_ahead_never_wedges_a_delivered_parcel() {
    let f = FulfillmentWorld::start("webhook_clock", &[]).await;
    f.world.restock("TEE-RED-M", "wh-east", 2).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "CLOCK-1",
            &[("TEE-RED-M", 1)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().expect("order id").to_owned();
    let tasks = f.pack_all(&order_id, 1).await;
    let parcels = f.parcels(&order_id, 1).await;
    let parcel = parcels[0]["tracking_number"].as_str().unwrap().to_owned();

    f.scan(
        &parcel,
        json!({"status_code": "DL", "received_by": "Front desk"}),
    )
    .await;
    f.view_when(&order_id, "delivered", |v| {
        status_of(v) == json!("delivered")
    })
    .await;

    // A correctly signed scan dated 9999-12-31 is refused, naming the field, and stores nothing.
    let forged = f
        .scan(
            &parcel,
            json!({"status_code": "IT", "carrier_time": "9999-12-31T23:59:59Z"}),
        )
        .await;
    assert_eq!(forged["waybill_status"], json!(422), "{forged}");
    assert_eq!(forged["waybill_response"]["field"], json!("carrier_time"));
    assert_eq!(
        forged["waybill_response"]["type"],
        json!("https://waybill.dev/problems/validation-failed")
    );
    let tracked = f.world.env.payloads_of(&order_id, "ShipmentTracked").await;
    assert_eq!(
        tracked.len(),
        1,
        "only the delivery is recorded: {tracked:?}"
    );

    // A scan a few minutes ahead (within the 300 s skew) is recorded as sent …
    let ahead = Utc::now() + Duration::minutes(4);
    let drifted = f
        .scan(
            &parcel,
            json!({"status_code": "IT", "carrier_time": ahead.to_rfc3339()}),
        )
        .await;
    assert_eq!(drifted["waybill_status"], json!(200), "{drifted}");
    f.view_when(&order_id, "back in transit", |v| {
        status_of(v) == json!("in_transit")
    })
    .await;
    // … yet it cannot outrank the genuine delivery scan that happens after it arrived.
    let redelivered = f
        .scan(
            &parcel,
            json!({"status_code": "DL", "received_by": "Neighbour"}),
        )
        .await;
    assert_eq!(redelivered["waybill_status"], json!(200));
    assert_eq!(
        redelivered["waybill_response"]["outcome"],
        json!("applied"),
        "the genuine delivery scan landed: {redelivered}"
    );
    let view = f
        .view_when(&order_id, "delivered again", |v| {
            status_of(v) == json!("delivered")
        })
        .await;
    assert_eq!(view["shipments"][0]["delivered_to"], json!("Neighbour"));

    // A node report dated far ahead is refused the same way, naming `occurred_at`.
    let fulfillment_id = tasks[0]["fulfillment_id"].as_str().unwrap();
    let response = f
        .signed_webhook(
            "/v1/webhooks/wms",
            &json!({
                "id": "node-future-1", "order_id": order_id, "fulfillment_id": fulfillment_id,
                "report": {"type": "picked"}, "occurred_at": "9999-12-31T23:59:59Z"
            }),
        )
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], json!("occurred_at"), "{problem}");
}
