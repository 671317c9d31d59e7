//! The fulfillment part of the demo: after checkout, three orders are driven through
//! fulfillment the way nodes and a carrier would, through our logistics sandbox (simulated WMS +
//! carrier): a split order shipped from two warehouses and delivered parcel by parcel, a BOPIS
//! order made ready and collected with its code, and a parcel whose handoff fails (retried, then
//! an agent is alerted).

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use crate::client::ApiClient;

/// The SKUs only the demo's split order uses: one stocked only in the east, one only in the
/// west, so no single node can ship the order.
const SPLIT_EAST: &str = "DEMO-SPLIT-EAST";
const SPLIT_WEST: &str = "DEMO-SPLIT-WEST";
const WAIT: Duration = Duration::from_secs(60);

pub async fn run(client: &ApiClient, logistics_url: &str, run: &str) -> anyhow::Result<()> {
    let sandbox = logistics_url.trim_end_matches('/');
    if !client
        .get_plain(&format!("{sandbox}/health"))
        .await
        .is_ok_and(|s| s.is_success())
    {
        println!("\nFulfillment: the logistics sandbox does not answer at {sandbox}; skipped (start `waybill serve logistics-sandbox`).");
        return Ok(());
    }
    println!("\nFulfillment (nodes and carrier simulated by the logistics sandbox at {sandbox}):");
    for (sku, location) in [(SPLIT_EAST, "wh-east"), (SPLIT_WEST, "wh-west")] {
        client
            .move_stock(
                sku,
                location,
                "restock",
                &json!({"quantity": 5}),
                &format!("demo-{run}-{sku}"),
            )
            .await?;
    }

    // 1. A split order: two nodes, two parcels, partially delivered then delivered.
    let split = place(
        client,
        &order(
            &format!("DEMO-SPLIT-{run}"),
            &[SPLIT_EAST, SPLIT_WEST],
            "standard",
        ),
        run,
    )
    .await?;
    let tasks = wait_list(client, sandbox, "tasks", &split, 2).await?;
    for task in &tasks {
        let node = task["node_id"].as_str().unwrap_or("?");
        let id = task["fulfillment_id"].as_str().unwrap_or_default();
        node_report(client, sandbox, id, json!({"type": "picked"})).await?;
        node_report(client, sandbox, id, json!({"type": "packed"})).await?;
        println!("  split order {split}: node {node} picked and packed {id}");
    }
    let parcels = wait_list(client, sandbox, "parcels", &split, 2).await?;
    let numbers: Vec<String> = parcels
        .iter()
        .filter_map(|p| p["tracking_number"].as_str().map(str::to_owned))
        .collect();
    scan(
        client,
        sandbox,
        &numbers[0],
        json!({"status_code": "IT", "location": "Chicago hub"}),
    )
    .await?;
    scan(
        client,
        sandbox,
        &numbers[0],
        json!({"status_code": "DL", "received_by": "front porch"}),
    )
    .await?;
    let view = view_until(client, &split, |v| {
        v["delivery"] == json!("partially_delivered")
    })
    .await?;
    println!(
        "  split order: parcel {} delivered, order is {}",
        numbers[0], view["delivery"]
    );
    scan(
        client,
        sandbox,
        &numbers[1],
        json!({"status_code": "DL", "received_by": "J. Smith"}),
    )
    .await?;
    let view = view_until(client, &split, |v| {
        v["delivery"] == json!("delivered") || v["delivery"] == json!("closed")
    })
    .await?;
    println!(
        "  split order: parcel {} delivered, order is {}",
        numbers[1], view["delivery"]
    );
    // A signed scan dated a year ahead is refused (beyond WAYBILL_WEBHOOK_CLOCK_SKEW_SECS of
    // receipt), so it cannot take a delivered parcel back to "shipped".
    let ahead = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    let refused = client
        .post_json_plain(
            &format!("{sandbox}/sandbox/parcels/{}/scan", numbers[1]),
            &json!({"status_code": "IT", "carrier_time": ahead}),
        )
        .await?;
    let fields: Vec<&str> = refused["waybill_response"]["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    anyhow::ensure!(
        refused["waybill_status"] == json!(422),
        "a scan dated {ahead} was not refused: {refused}"
    );
    let view = view_until(client, &split, |v| v["version"].as_i64().is_some()).await?;
    println!(
        "  a carrier scan dated {ahead}: HTTP {} naming {fields:?}; the order is still {}",
        refused["waybill_status"], view["delivery"]
    );

    // 2. BOPIS at the Chicago store, the store the customer chose at checkout.
    let mut bopis_order = order(&format!("DEMO-BOPIS-{run}"), &["TEE-RED-M"], "pickup");
    bopis_order["shipping"]["pickup_location"] = json!("store-chicago");
    let bopis = place(client, &bopis_order, run).await?;
    let tasks = wait_list(client, sandbox, "tasks", &bopis, 1).await?;
    let id = tasks[0]["fulfillment_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ready = node_report(client, sandbox, &id, json!({"type": "ready_for_pickup"})).await?;
    let code = ready["pickup_code"].as_str().unwrap_or_default().to_owned();
    let view = view_until(client, &bopis, |v| v["pickup"]["ready"] == json!(true)).await?;
    println!(
        "  BOPIS order {bopis}: ready at {} (the page shows code hint {})",
        view["pickup"]["store_name"], view["pickup"]["code_hint"]
    );
    node_report(
        client,
        sandbox,
        &id,
        json!({"type": "picked_up", "pickup_code": code}),
    )
    .await?;
    let view = view_until(client, &bopis, |v| v["delivery"] == json!("delivered")).await?;
    println!(
        "  BOPIS order: collected with the code at {}",
        view["pickup"]["picked_up_at"]
    );

    // 3. A failed handoff: the carrier is asked again.
    let failed = place(
        client,
        &order(&format!("DEMO-EXC-{run}"), &["TEE-RED-M"], "standard"),
        run,
    )
    .await?;
    let tasks = wait_list(client, sandbox, "tasks", &failed, 1).await?;
    let id = tasks[0]["fulfillment_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    node_report(client, sandbox, &id, json!({"type": "packed"})).await?;
    let parcels = wait_list(client, sandbox, "parcels", &failed, 1).await?;
    let number = parcels[0]["tracking_number"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    scan(
        client,
        sandbox,
        &number,
        json!({"status_code": "FH", "description": "Nobody home"}),
    )
    .await?;
    let view = view_until(client, &failed, |v| {
        v["timeline"]
            .to_string()
            .contains("try to deliver your parcel again")
    })
    .await?;
    println!(
        "  exception order {failed}: parcel {number} is {}; the carrier was asked to try again",
        view["shipments"][0]["status"]
    );
    Ok(())
}

pub(super) fn order(reference: &str, skus: &[&str], method: &str) -> Value {
    json!({
        "channel": "web",
        "channel_order_ref": reference,
        "currency": "USD",
        "customer": {"customer_id": reference, "name": "Grace Hopper",
                     "email": format!("{}@example.com", reference.to_lowercase()), "phone": null},
        "lines": skus.iter().map(|sku| json!({"sku": sku, "name": sku, "quantity": 1, "unit_price_minor": 2500})).collect::<Vec<_>>(),
        "shipping_address": {"name": "Grace Hopper", "line1": "1 Main St", "city": "Springfield",
                             "region": "IL", "postal_code": "62701", "country": "US"},
        "shipping": {"method": method},
        "payment": {"method": "card", "token": "tok_4242424242424242"}
    })
}

pub(super) async fn place(client: &ApiClient, body: &Value, run: &str) -> anyhow::Result<String> {
    let key = format!(
        "demo-{run}-{}",
        body["channel_order_ref"].as_str().unwrap_or_default()
    );
    let response = client.place(body, &key).await?;
    anyhow::ensure!(
        response.status.is_success(),
        "placing {}: {}",
        body["channel_order_ref"],
        response.body
    );
    response.body["order_id"]
        .as_str()
        .map(str::to_owned)
        .context("no order id")
}

pub(super) async fn wait_list(
    client: &ApiClient,
    sandbox: &str,
    what: &str,
    order: &str,
    n: usize,
) -> anyhow::Result<Vec<Value>> {
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let body = client
            .get_json(&format!("{sandbox}/sandbox/{what}?order_id={order}"))
            .await?;
        let items = body[what].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return Ok(items);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "order {order}: {n} {what} not seen within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) async fn node_report(
    client: &ApiClient,
    sandbox: &str,
    id: &str,
    report: Value,
) -> anyhow::Result<Value> {
    let answer = client
        .post_json_plain(&format!("{sandbox}/sandbox/nodes/{id}/report"), &report)
        .await?;
    anyhow::ensure!(
        answer["waybill_status"] == json!(200),
        "node report {report}: {answer}"
    );
    Ok(answer)
}

async fn scan(
    client: &ApiClient,
    sandbox: &str,
    tracking: &str,
    scan: Value,
) -> anyhow::Result<Value> {
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let answer: Value = client
            .post_json_plain(&format!("{sandbox}/sandbox/parcels/{tracking}/scan"), &scan)
            .await?;
        // 409: the parcel's label is bought but its shipment not yet recorded (with several
        // fulfillment workers another process may still be appending it): the carrier sends
        // the scan again, as real carriers redeliver a webhook.
        let not_yet = answer["waybill_status"] == json!(409);
        if !not_yet || tokio::time::Instant::now() >= until {
            anyhow::ensure!(
                answer["waybill_status"] == json!(200),
                "scan {scan}: {answer}"
            );
            return Ok(answer);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) async fn view_until(
    client: &ApiClient,
    order: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, body) = client.staff_tracking(order).await?;
        if check(&body["view"]) {
            return Ok(body["view"].clone());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "order {order} did not get there: {}",
            body["view"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
