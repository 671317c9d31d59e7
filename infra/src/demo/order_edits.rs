//! The order-edits part of the demo. `infra/scripts/demo.sh` runs `serve all` with a short
//! fulfillment hold (`WAYBILL_FULFILLMENT_HOLD_SECS`, 4 s unless set): a confirmed order waits
//! that long before routing, and may be edited meanwhile. The demo previews an edit (one more
//! unit and an added line), confirms it, shows the node's task carrying the edited quantities,
//! and then shows a second edit refused once the order is at the node (409 `not-editable`).

use std::time::Duration;

use serde_json::{json, Value};

use super::fulfillment::{order, place, wait_list};
use crate::client::ApiClient;

const SKU: &str = "DEMO-EDIT";
const ADDED: &str = "DEMO-EDIT-ADDED";

pub async fn run(client: &ApiClient, logistics_url: &str, run: &str) -> anyhow::Result<()> {
    let sandbox = logistics_url.trim_end_matches('/');
    if !client
        .get_plain(&format!("{sandbox}/health"))
        .await
        .is_ok_and(|s| s.is_success())
    {
        return Ok(());
    }
    println!("\nOrder edits (allowed while a confirmed order waits in the fulfillment hold):");
    for sku in [SKU, ADDED] {
        client
            .move_stock(
                sku,
                "wh-east",
                "restock",
                &json!({"quantity": 10}),
                &format!("demo-{run}-{sku}"),
            )
            .await?;
    }
    let id = place(
        client,
        &order(&format!("DEMO-EDIT-{run}"), &[SKU], "standard"),
        run,
    )
    .await?;
    if !confirmed(client, &id).await? {
        println!("  order {id} was not confirmed in time; skipping the edit");
        return Ok(());
    }
    let edit = json!({
        "changes": [{"line_no": 1, "quantity": 2}],
        "add": [{"sku": ADDED, "name": "Gift wrap", "quantity": 1,
                 "unit_price": {"amount_minor": 500, "currency": "USD"}}],
    });
    let preview = client
        .post_command(
            &format!("/v1/orders/{id}/edits/preview"),
            &edit,
            &format!("demo-{run}-edit-preview"),
        )
        .await?;
    if !preview.status.is_success() {
        println!(
            "  order {id}: the preview answered {}: {}",
            preview.status.as_u16(),
            preview.body["detail"].as_str().unwrap_or("-")
        );
        return Ok(());
    }
    println!(
        "  order {id}: preview of 2 × {SKU} + 1 gift wrap: total {} → {} minor units, money: {}",
        minor(&preview.body, "previous_total_minor"),
        minor(&preview.body, "grand_total_minor"),
        preview.body["money_action"].as_str().unwrap_or("-")
    );
    let confirmed = client
        .post_command(
            &format!("/v1/orders/{id}/edits"),
            &edit,
            &format!("demo-{run}-edit"),
        )
        .await?;
    println!(
        "  order {id}: edit confirmed ({}), edit id {}",
        confirmed.status.as_u16(),
        confirmed.body["edit_id"].as_str().unwrap_or("-")
    );
    let tasks = wait_list(client, sandbox, "tasks", &id, 1).await?;
    let lines: Vec<String> = tasks
        .iter()
        .flat_map(|t| t["lines"].as_array().cloned().unwrap_or_default())
        .map(|l| format!("{} × {}", l["quantity"], l["sku"].as_str().unwrap_or("?")))
        .collect();
    println!(
        "  after the hold the node's task carries the edited lines: {}",
        lines.join(", ")
    );
    let late = client
        .post_command(
            &format!("/v1/orders/{id}/edits/preview"),
            &json!({"changes": [{"line_no": 1, "quantity": 3}]}),
            &format!("demo-{run}-edit-late"),
        )
        .await?;
    println!(
        "  a second edit now that it is at the node answers {} {}",
        late.status.as_u16(),
        late.body["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or("-"),
    );
    Ok(())
}

/// Waits until the tracking view shows the order confirmed (or 20 s pass).
async fn confirmed(client: &ApiClient, order_id: &str) -> anyhow::Result<bool> {
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < until {
        let (_, answer) = client.staff_tracking(order_id).await?;
        if answer["view"]["confirmed_at"].is_string() {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}

/// A total from an edit answer, in minor units (`"-"` when absent).
fn minor(body: &Value, field: &str) -> String {
    body[field]
        .as_i64()
        .map_or_else(|| "-".to_owned(), |m| m.to_string())
}
