//! The returns part of the demo: five orders are delivered through the logistics sandbox
//! (simulated), and one in five returns some units with mixed reasons. The demo acts as the
//! customer's service (the return request) and as the receiving node (receipt and inspection
//! through `/sandbox/returns/{return_id}/report`); Waybill issues the label, restocks the
//! resellable units and refunds the accepted ones. One line per return says what happened.

use anyhow::Context;
use serde_json::{json, Value};

use super::fulfillment::{view_until, wait_list};
use crate::client::ApiClient;

pub(super) const TEE: &str = "DEMO-RET-TEE";
pub(super) const MUG: &str = "DEMO-RET-MUG";
const ORDERS: usize = 5;

pub async fn run(client: &ApiClient, logistics_url: &str, run: &str) -> anyhow::Result<()> {
    let sandbox = logistics_url.trim_end_matches('/');
    if !client
        .get_plain(&format!("{sandbox}/health"))
        .await
        .is_ok_and(|s| s.is_success())
    {
        println!("\nReturns: the logistics sandbox does not answer at {sandbox}; skipped.");
        return Ok(());
    }
    println!("\nReturns (one in five delivered orders sends something back):");
    for sku in [TEE, MUG] {
        client
            .move_stock(
                sku,
                "wh-east",
                "restock",
                &json!({"quantity": 20}),
                &format!("demo-{run}-{sku}"),
            )
            .await?;
    }
    let mut delivered = Vec::new();
    for n in 0..ORDERS {
        delivered.push(deliver(client, sandbox, &format!("DEMO-RET-{run}-{n}")).await?);
    }
    // Every fifth delivered order returns a tee (wrong size, resellable) and the mug (damaged).
    for order in delivered.iter().step_by(5) {
        let body = json!({"resolution": "refund", "lines": [
            {"line_no": 1, "quantity": 1, "reason": "wrong_size"},
            {"line_no": 2, "quantity": 1, "reason": "damaged", "note": "handle broken"}
        ]});
        let response = client
            .post_command(
                &format!("/v1/orders/{order}/returns"),
                &body,
                &format!("demo-{run}-return-{order}"),
            )
            .await?;
        anyhow::ensure!(
            response.status.as_u16() == 201,
            "return of {order}: {}",
            response.body
        );
        let return_id = response.body["return_id"]
            .as_str()
            .context("no return id")?
            .to_owned();
        let fees: i64 = response.body["fees"]
            .as_array()
            .map(|fs| fs.iter().filter_map(|f| f["amount_minor"].as_i64()).sum())
            .unwrap_or(0);
        returned(client, order, &return_id, |r| r["label_url"].is_string()).await?;
        node(client, sandbox, &return_id, json!({"type": "received"})).await?;
        node(
            client,
            sandbox,
            &return_id,
            json!({"type": "inspected", "lines": [
                {"line_no": 1, "sku": TEE, "accepted": 1, "rejected": 0, "resellable": 1},
                {"line_no": 2, "sku": MUG, "accepted": 1, "rejected": 0, "resellable": 0}
            ]}),
        )
        .await?;
        let ret = returned(client, order, &return_id, |r| {
            r["status"] == json!("refunded")
        })
        .await?;
        println!(
            "  return {return_id}: 1 tee (wrong_size) + 1 mug (damaged) accepted; refunded {} USD, fees {} USD; the tee restocked at wh-east, the mug written off",
            cents(ret["refunded_minor"].as_i64().unwrap_or(0)),
            cents(fees),
        );
    }
    println!(
        "  {} orders delivered without a return",
        delivered.len() - delivered.len().div_ceil(5)
    );
    Ok(())
}

fn cents(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Places a tee + mug order and takes it to delivered.
pub(super) async fn deliver(
    client: &ApiClient,
    sandbox: &str,
    reference: &str,
) -> anyhow::Result<String> {
    let body = json!({
        "channel": "web",
        "channel_order_ref": reference,
        "currency": "USD",
        "customer": {"customer_id": reference, "name": "Ada Lovelace",
                     "email": format!("{}@example.com", reference.to_lowercase()), "phone": null},
        "lines": [
            {"sku": TEE, "name": "Tee", "quantity": 2, "unit_price_minor": 2500},
            {"sku": MUG, "name": "Mug", "quantity": 1, "unit_price_minor": 1200}
        ],
        "shipping_address": {"name": "Ada Lovelace", "line1": "1 Main St", "city": "Springfield",
                             "region": "IL", "postal_code": "62701", "country": "US"},
        "shipping": {"method": "standard"},
        "payment": {"method": "card", "token": "tok_4242424242424242"}
    });
    let response = client.place(&body, &format!("demo-{reference}")).await?;
    anyhow::ensure!(
        response.status.is_success(),
        "placing {reference}: {}",
        response.body
    );
    let order = response.body["order_id"]
        .as_str()
        .context("no order id")?
        .to_owned();
    let task = first(wait_list(client, sandbox, "tasks", &order, 1).await?)?;
    let fulfillment_id = task["fulfillment_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for step in ["picked", "packed"] {
        let answer = client
            .post_json_plain(
                &format!("{sandbox}/sandbox/nodes/{fulfillment_id}/report"),
                &json!({"type": step}),
            )
            .await?;
        anyhow::ensure!(answer["waybill_status"] == json!(200), "{step}: {answer}");
    }
    let parcel = first(wait_list(client, sandbox, "parcels", &order, 1).await?)?;
    let tracking = parcel["tracking_number"].as_str().unwrap_or_default();
    view_until(client, &order, |v| {
        v["shipments"].as_array().is_some_and(|s| !s.is_empty())
    })
    .await?;
    client
        .post_json_plain(
            &format!("{sandbox}/sandbox/parcels/{tracking}/scan"),
            &json!({"status_code": "DL", "received_by": "front door"}),
        )
        .await?;
    view_until(client, &order, |v| v["delivery"] == json!("delivered")).await?;
    Ok(order)
}

pub(super) async fn node(
    client: &ApiClient,
    sandbox: &str,
    return_id: &str,
    report: Value,
) -> anyhow::Result<()> {
    let answer = client
        .post_json_plain(
            &format!("{sandbox}/sandbox/returns/{return_id}/report"),
            &report,
        )
        .await?;
    anyhow::ensure!(answer["waybill_status"] == json!(200), "{report}: {answer}");
    Ok(())
}

/// The order's return `return_id` in the tracking view once `check` accepts it.
pub(super) async fn returned(
    client: &ApiClient,
    order: &str,
    return_id: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let view = view_until(client, order, |v| {
        v["returns"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["rma"] == json!(return_id)))
            .is_some_and(&check)
    })
    .await?;
    view["returns"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["rma"] == json!(return_id)).cloned())
        .context("the return")
}

/// The first item a sandbox list gave back.
fn first(items: Vec<Value>) -> anyhow::Result<Value> {
    items
        .into_iter()
        .next()
        .context("the sandbox listed nothing")
}
