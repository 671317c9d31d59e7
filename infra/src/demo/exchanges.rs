//! Exchanges' money in the demo: an extra charge on a captured order's card (the price
//! difference of an exchange for a dearer item, authorized and captured by the checkout worker
//! through the payment sandbox) and a goodwill refund given as store credit, each with a line
//! saying what the customer sees.

use reqwest::StatusCode;
use serde_json::json;
use waybill_schemas::views::PaymentState;

use super::follow::{Actors, Followed};
use super::money::wait_view;
use crate::client::ApiClient;

/// Runs the exchanges part on captured orders the money part left alone.
pub async fn run(
    client: &ApiClient,
    actors: &Actors<'_>,
    orders: &[Followed],
) -> anyhow::Result<()> {
    let captured: Vec<&Followed> = orders
        .iter()
        .filter(|o| {
            o.view
                .as_ref()
                .is_some_and(|v| v.payment.state == PaymentState::Captured)
        })
        .skip(3)
        .collect();
    println!("\nExchanges and store credit:");
    let Some(first) = captured.first() else {
        println!("  (no captured order left to show them on)");
        return Ok(());
    };
    let currency = first
        .view
        .as_ref()
        .map_or("USD".into(), |v| v.currency.clone());
    let charged = actors
        .agent
        .post_command(
            &format!("/v1/orders/{}/charges", first.id),
            &json!({"amount_minor": 1200, "currency": currency, "reason": "exchange for the next size up"}),
            &format!("demo-charge-{}", first.id),
        )
        .await?;
    anyhow::ensure!(
        charged.status == StatusCode::ACCEPTED,
        "extra charge on {} answered {}: {}",
        first.id,
        charged.status,
        String::from_utf8_lossy(&charged.raw)
    );
    let view = wait_view(client, &first.id, "the extra charge", |v| {
        v.payment.extra_charged_minor > 0
            || v.timeline
                .iter()
                .any(|t| t.summary.contains("extra payment"))
    })
    .await?;
    let line = view
        .timeline
        .last()
        .map(|t| t.summary.clone())
        .unwrap_or_default();
    println!(
        "  {}: exchange price difference charged to the card: \"{line}\"",
        first.id
    );

    let target = captured.get(1).unwrap_or(first);
    let currency = target
        .view
        .as_ref()
        .map_or("USD".into(), |v| v.currency.clone());
    let credit = actors
        .agent
        .post_command(
            &format!("/v1/orders/{}/refunds", target.id),
            &json!({"amount_minor": 500, "currency": currency, "reason": "sorry for the wait",
                    "destination": "store_credit"}),
            &format!("demo-credit-{}", target.id),
        )
        .await?;
    if credit.status == StatusCode::ACCEPTED {
        let view = wait_view(client, &target.id, "the store credit", |v| {
            v.payment.store_credit_minor > 0
        })
        .await?;
        println!(
            "  {}: goodwill as store credit: {} minor units on the customer's account (GET /v1/me/store-credit)",
            target.id, view.payment.store_credit_minor
        );
    } else {
        println!(
            "  {}: store credit refused: HTTP {} field={}",
            target.id, credit.status, credit.body["field"]
        );
    }
    Ok(())
}

/// Exchanges and store credit as resolutions of returns, on two orders delivered through the
/// logistics sandbox (SIMULATED): a tee swapped for a dearer one (the difference charged to
/// the card, the replacement routed as its own fulfillment order), and a mug returned for
/// store credit. Runs after the returns part, which stocked the SKUs.
pub async fn resolutions(client: &ApiClient, logistics_url: &str, run: &str) -> anyhow::Result<()> {
    use super::returns::{deliver, node, returned, MUG, TEE};
    let sandbox = logistics_url.trim_end_matches('/');
    if !client
        .get_plain(&format!("{sandbox}/health"))
        .await
        .is_ok_and(|s| s.is_success())
    {
        return Ok(());
    }
    println!("\nExchanges and store credit as return resolutions:");
    let cases = [
        (
            "exchange",
            json!({"kind": "exchange", "replacements": [{"for_line_no": 1, "sku": TEE, "quantity": 1,
                   "unit_price": {"minor": 3200, "currency": "USD"}}]}),
            json!([{"line_no": 1, "quantity": 1, "reason": "wrong_size"}]),
            json!([{"line_no": 1, "sku": TEE, "accepted": 1, "rejected": 0, "resellable": 1}]),
        ),
        (
            "credit",
            json!("store_credit"),
            json!([{"line_no": 2, "quantity": 1, "reason": "changed_mind"}]),
            json!([{"line_no": 2, "sku": MUG, "accepted": 1, "rejected": 0, "resellable": 1}]),
        ),
    ];
    for (kind, resolution, lines, inspected) in cases {
        let order = deliver(client, sandbox, &format!("DEMO-XCHG-{run}-{kind}")).await?;
        let response = client
            .post_command(
                &format!("/v1/orders/{order}/returns"),
                &json!({"lines": lines, "resolution": resolution}),
                &format!("demo-{run}-{kind}-{order}"),
            )
            .await?;
        anyhow::ensure!(
            response.status.as_u16() == 201,
            "{kind} return of {order}: {}",
            response.body
        );
        let return_id = response.body["return_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        returned(client, &order, &return_id, |r| r["label_url"].is_string()).await?;
        node(client, sandbox, &return_id, json!({"type": "received"})).await?;
        node(
            client,
            sandbox,
            &return_id,
            json!({"type": "inspected", "lines": inspected}),
        )
        .await?;
        if kind == "exchange" {
            let ret = returned(client, &order, &return_id, |r| {
                r["exchange"]["fulfillment_id"].is_string()
            })
            .await?;
            let x = &ret["exchange"];
            println!(
                "  {return_id}: tee (wrong size) exchanged for a 32.00 USD one; difference {} minor units charged to the card; replacement routed as {}",
                x["difference_minor"],
                x["fulfillment_id"].as_str().unwrap_or("?")
            );
        } else {
            let view = wait_view(client, &order, "the return's store credit", |v| {
                v.payment.store_credit_minor > 0
            })
            .await?;
            println!(
                "  {return_id}: mug (changed mind) returned for store credit: {} minor units on the customer's account, nothing back to the card",
                view.payment.store_credit_minor
            );
        }
    }
    Ok(())
}
