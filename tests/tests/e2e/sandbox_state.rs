//! The sandboxes keep their state across a kill -9 (`WAYBILL_SANDBOX_STATE_DIR`), as the gateway
//! and the carrier they simulate do: after both are killed mid-flow and started again, a refund
//! of an order captured before the kill is made (the gateway still knows the capture), an order
//! whose payment was under way at the kill completes, and the carrier scans parcels labelled
//! before its restart.

use serde_json::{json, Value};
use waybill_e2e::checkout::SETTLE;
use waybill_e2e::fulfillment::{multi_line_order, FulfillmentWorld};
use waybill_e2e::{eventually, AGENT_KEY};

/// Waits until the order has an event of `event_type`; returns its payloads.
async fn recorded(f: &FulfillmentWorld, order_id: &str, event_type: &str) -> Vec<Value> {
    let env = &f.world.env;
    eventually(&format!("{event_type} on {order_id}"), SETTLE, || async {
        let payloads = env.payloads_of(order_id, event_type).await;
        if payloads.is_empty() {
            Err(format!(
                "events so far: {:?}",
                env.event_types_of_order(order_id).await
            ))
        } else {
            Ok(payloads)
        }
    })
    .await
}

/// Ships `order_id` from its one node and returns the parcel's tracking number.
async fn shipped_parcel(f: &FulfillmentWorld, order_id: &str) -> String {
    f.pack_all(order_id, 1).await;
    let parcels = f.parcels(order_id, 1).await;
    parcels[0]["tracking_number"]
        .as_str()
        .expect("tracking number")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_killed_mid_flow_remember_captures_and_parcels_after_a_restart() {
    let state_dir = std::env::temp_dir().join(format!(
        "waybill-e2e-sandbox-state-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let state = state_dir.display().to_string();
    let mut f = FulfillmentWorld::start(
        "sandbox_state",
        &[("WAYBILL_SANDBOX_STATE_DIR", state.as_str())],
    )
    .await;
    f.world.restock("KEEP-1", "wh-east", 10).await;

    // Order A: captured, labelled, shipped, all before the kills.
    let a = f
        .world
        .place(&multi_line_order("KEEP-A", &[("KEEP-1", 1)], "standard"))
        .await["order_id"]
        .as_str()
        .expect("order id")
        .to_owned();
    let captured = recorded(&f, &a, "PaymentCaptured").await;
    let parcel_a = shipped_parcel(&f, &a).await;
    assert!(state_dir.join("payment-sandbox.json").exists());
    assert!(state_dir.join("logistics-sandbox.json").exists());

    // Order B is placed and both sandboxes die with -9 while its checkout runs.
    let b = f
        .world
        .place(&multi_line_order("KEEP-B", &[("KEEP-1", 1)], "standard"))
        .await["order_id"]
        .as_str()
        .expect("order id")
        .to_owned();
    f.world.sandbox.kill_hard();
    f.logistics.kill_hard();
    f.world.sandbox.restart().await;
    f.logistics.restart().await;

    // The gateway still knows A's capture: a refund after the restart is made, not refused
    // as capture_not_found.
    let refund = f
        .world
        .api
        .post_json(
            &format!("/v1/orders/{a}/refunds"),
            AGENT_KEY,
            "keep-refund-a",
            &json!({"amount_minor": 700, "currency": "USD", "reason": "late"}),
        )
        .await;
    assert_eq!(refund.status, 202, "{}", refund.describe());
    let refunded = recorded(&f, &a, "PaymentRefunded").await;
    assert_eq!(refunded[0]["amount"]["minor"], json!(700));
    assert_eq!(refunded[0]["capture_id"], captured[0]["capture_id"]);

    // The carrier still knows A's parcel: its delivery scan reaches Waybill.
    let answer = f
        .scan(
            &parcel_a,
            json!({"status_code": "DL", "received_by": "porch"}),
        )
        .await;
    assert_eq!(
        answer["waybill_response"]["outcome"],
        json!("applied"),
        "{answer}"
    );
    f.view_when(&a, "delivered", |v| {
        v["delivery"] == json!("delivered") || v["delivery"] == json!("closed")
    })
    .await;

    // B, under way at the kill, is captured and ships; it can be refunded too.
    recorded(&f, &b, "PaymentCaptured").await;
    let parcel_b = shipped_parcel(&f, &b).await;
    let refund = f
        .world
        .api
        .post_json(
            &format!("/v1/orders/{b}/refunds"),
            AGENT_KEY,
            "keep-refund-b",
            &json!({"amount_minor": 500, "currency": "USD", "reason": "late"}),
        )
        .await;
    assert_eq!(refund.status, 202, "{}", refund.describe());
    recorded(&f, &b, "PaymentRefunded").await;

    // A second kill of the carrier after B's label: B's parcel is known as well.
    f.logistics.kill_hard();
    f.logistics.restart().await;
    let answer = f
        .scan(
            &parcel_b,
            json!({"status_code": "DL", "received_by": "door"}),
        )
        .await;
    assert_eq!(
        answer["waybill_response"]["outcome"],
        json!("applied"),
        "{answer}"
    );

    drop(f);
    let _ = std::fs::remove_dir_all(&state_dir);
}
