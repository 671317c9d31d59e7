//! The order-edits part of the demo. The demo's binary runs without a fulfillment hold, so its
//! orders are routed as soon as they are confirmed: the demo shows an edit being refused once
//! the order is at a node (409 `not-editable`), in one line. Editing inside the hold is shown by
//! the end-to-end test `edits::edit_before_fulfillment_is_previewed_then_reprices_and_ships_the_edited_lines`
//! (or run the binary with `WAYBILL_FULFILLMENT_HOLD_SECS`).

use serde_json::json;

use super::fulfillment::{order, place, wait_list};
use crate::client::ApiClient;

const SKU: &str = "DEMO-EDIT-LATE";

pub async fn run(client: &ApiClient, logistics_url: &str, run: &str) -> anyhow::Result<()> {
    let sandbox = logistics_url.trim_end_matches('/');
    if !client
        .get_plain(&format!("{sandbox}/health"))
        .await
        .is_ok_and(|s| s.is_success())
    {
        return Ok(());
    }
    println!("\nOrder edits (allowed only while an order waits in the fulfillment hold):");
    client
        .move_stock(
            SKU,
            "wh-east",
            "restock",
            &json!({"quantity": 5}),
            &format!("demo-{run}-{SKU}"),
        )
        .await?;
    let id = place(
        client,
        &order(&format!("DEMO-EDIT-{run}"), &[SKU], "standard"),
        run,
    )
    .await?;
    wait_list(client, sandbox, "tasks", &id, 1).await?;
    let response = client
        .post_command(
            &format!("/v1/orders/{id}/edits/preview"),
            &json!({"changes": [{"line_no": 1, "quantity": 2}]}),
            &format!("demo-{run}-edit-late"),
        )
        .await?;
    println!(
        "  order {id} already at wh-east: edit answered {} {}: {}",
        response.status.as_u16(),
        response.body["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or("-"),
        response.body["detail"].as_str().unwrap_or("-")
    );
    Ok(())
}
