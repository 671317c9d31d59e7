//! The order-changes part of the demo: a two-line order whose first line ships while the
//! customer cancels the second; the demo shows the refund of the cancelled units and the node's
//! amended task, a line each. Then an order whose every line is cancelled, one request at a
//! time, which cancels the order. (Nodes are simulated by the logistics sandbox.)

use serde_json::json;

use super::fulfillment::{node_report, order, place, view_until, wait_list};
use crate::client::ApiClient;

const SHIPS: &str = "DEMO-CANCEL-SHIPS";
const CANCELLED: &str = "DEMO-CANCEL-LATER";

pub async fn run(client: &ApiClient, logistics_url: &str, run: &str) -> anyhow::Result<()> {
    let sandbox = logistics_url.trim_end_matches('/');
    if !client
        .get_plain(&format!("{sandbox}/health"))
        .await
        .is_ok_and(|s| s.is_success())
    {
        return Ok(());
    }
    println!("\nOrder changes after confirmation:");
    for (sku, location) in [(SHIPS, "wh-east"), (CANCELLED, "wh-west")] {
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
    let id = place(
        client,
        &order(
            &format!("DEMO-CANCEL-{run}"),
            &[SHIPS, CANCELLED],
            "standard",
        ),
        run,
    )
    .await?;
    let tasks = wait_list(client, sandbox, "tasks", &id, 2).await?;
    let shipping = tasks
        .iter()
        .find(|t| t["node_id"] == json!("wh-east"))
        .and_then(|t| t["fulfillment_id"].as_str())
        .unwrap_or_default()
        .to_owned();
    node_report(client, sandbox, &shipping, json!({"type": "picked"})).await?;
    node_report(client, sandbox, &shipping, json!({"type": "packed"})).await?;
    wait_list(client, sandbox, "parcels", &id, 1).await?;
    let response = client
        .post_command(
            &format!("/v1/orders/{id}/lines/cancel"),
            &json!({"lines": [{"line_no": 2, "quantity": 1}], "reason": "customer_request"}),
            &format!("demo-{run}-cancel-line-2"),
        )
        .await?;
    anyhow::ensure!(
        response.status.is_success(),
        "cancel line 2: {}",
        response.body
    );
    let value = response.body["value_minor"].as_i64().unwrap_or_default();
    let view = view_until(client, &id, |v| {
        v["payment"]["refunded_minor"].as_i64() == Some(value)
    })
    .await?;
    println!(
        "  order {id}: line 1 shipped, line 2 cancelled after capture: {:.2} USD refunded, order now {:.2} USD",
        value as f64 / 100.0,
        response.body["current_total_minor"].as_i64().unwrap_or_default() as f64 / 100.0
    );
    let amended = wait_list(client, sandbox, "tasks", &id, 2).await?;
    let cancelled_at_node = amended
        .iter()
        .find(|t| t["node_id"] == json!("wh-west"))
        .map(|t| t["cancelled"].clone())
        .unwrap_or_default();
    println!(
        "  wh-west's task amended (cancelled units {cancelled_at_node}); its stock given back; tracking says: {}",
        view["timeline"]
            .as_array()
            .and_then(|t| t.iter().rev().find(|e| e["summary"].as_str().is_some_and(|s| s.contains("cancelled"))))
            .and_then(|e| e["summary"].as_str())
            .unwrap_or("-")
    );
    every_line_cancelled(client, sandbox, run).await
}

/// A two-line order whose lines the customer cancels one request at a time: the request that
/// takes the last units cancels the order too, and every view says cancelled.
async fn every_line_cancelled(client: &ApiClient, sandbox: &str, run: &str) -> anyhow::Result<()> {
    let id = place(
        client,
        &order(
            &format!("DEMO-CANCEL-ALL-{run}"),
            &[SHIPS, CANCELLED],
            "standard",
        ),
        run,
    )
    .await?;
    wait_list(client, sandbox, "tasks", &id, 2).await?;
    for line_no in [1, 2] {
        let response = client
            .post_command(
                &format!("/v1/orders/{id}/lines/cancel"),
                &json!({"lines": [{"line_no": line_no, "quantity": 1}], "reason": "customer_request"}),
                &format!("demo-{run}-cancel-all-{line_no}"),
            )
            .await?;
        anyhow::ensure!(
            response.status.is_success(),
            "cancel line {line_no}: {}",
            response.body
        );
    }
    let view = view_until(client, &id, |v| v["status"] == json!("cancelled")).await?;
    println!(
        "  order {id}: both lines cancelled one request at a time -> the order is {} ({}), {:.2} USD refunded",
        view["status"].as_str().unwrap_or("?"),
        view["cancellation_reason"].as_str().unwrap_or("?"),
        view["payment"]["refunded_minor"].as_i64().unwrap_or_default() as f64 / 100.0
    );
    Ok(())
}
