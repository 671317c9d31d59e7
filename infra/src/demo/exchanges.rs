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
    let currency = first.view.as_ref().map_or("USD".into(), |v| v.currency.clone());
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
            || v.timeline.iter().any(|t| t.summary.contains("extra payment"))
    })
    .await?;
    let line = view.timeline.last().map(|t| t.summary.clone()).unwrap_or_default();
    println!("  {}: exchange price difference charged to the card: \"{line}\"", first.id);

    let target = captured.get(1).unwrap_or(first);
    let currency = target.view.as_ref().map_or("USD".into(), |v| v.currency.clone());
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
