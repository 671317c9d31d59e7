//! Money after checkout in the demo: partial and repeated refunds on captured orders, a card
//! dispute that is answered with evidence and lost (the money reversed and shown on the
//! order), then the day's settlement report imported from the sandbox with its payouts printed.

use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use waybill_schemas::views::{PaymentState, TrackingView};
use waybill_write_side::event_store::EventStore;

use super::follow::Actors;
use super::follow::Followed;
use crate::client::ApiClient;
use crate::config::Settings;
use crate::secrets::Secrets;
use crate::settlement::{describe, import_report, key_with_role};

const WAIT: Duration = Duration::from_secs(30);

/// Runs the money part on the demo's captured orders.
pub async fn after_checkout(
    settings: &Settings,
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
        .collect();
    println!(
        "\nMoney after checkout ({} captured orders):",
        captured.len()
    );
    let secrets = Secrets::resolve(settings)?;
    if let Some(first) = captured.first() {
        let total = captured_minor(first);
        refund(actors.agent, first, total / 10, "goodwill", "late delivery").await?;
        refund(
            actors.agent,
            first,
            total / 20,
            "goodwill",
            "second apology",
        )
        .await?;
        wait_view(client, &first.id, "two refunds", |v| {
            v.payment.refunded_minor == total / 10 + total / 20
        })
        .await?;
        println!(
            "  {}: two partial refunds ({} + {} minor units), shown on the order's tracking page",
            first.id,
            total / 10,
            total / 20
        );
    }
    if let Some(second) = captured.get(1) {
        let half = captured_minor(second) / 2;
        refund(actors.agent, second, half, "return", "one item returned").await?;
        // More than is left is refused, naming the field.
        let over = actors
            .agent
            .post_command(
                &format!("/v1/orders/{}/refunds", second.id),
                &json!({"amount_minor": captured_minor(second), "currency": currency(second), "reason": "too much"}),
                &format!("demo-overrefund-{}", second.id),
            )
            .await?;
        println!(
            "  {}: refund of half for a return; a refund of the full amount after it: HTTP {} field={}",
            second.id, over.status, over.body["field"]
        );
    }
    if let Some(disputed) = captured.get(2) {
        lost_chargeback(settings, &secrets, client, actors, disputed).await?;
    }
    let finance = key_with_role(&secrets.api_keys, &["finance", "admin"])
        .context("WAYBILL_API_KEYS has no finance or admin key for the settlement import")?;
    let today = chrono::Utc::now().date_naive().to_string();
    let answer = import_report(&client.with_key(finance.clone()), "sandbox", &today, None).await?;
    println!("\nThe sandbox's settlement report for {today}, imported:");
    print!("{}", describe(&answer));
    let again = import_report(&client.with_key(finance), "sandbox", &today, None).await?;
    println!(
        "Imported again: {}",
        again["status"].as_str().unwrap_or("?")
    );
    Ok(())
}

fn captured_minor(order: &Followed) -> i64 {
    order.view.as_ref().map_or(0, |v| v.payment.captured_minor)
}

fn currency(order: &Followed) -> String {
    order
        .view
        .as_ref()
        .map(|v| v.currency.clone())
        .unwrap_or_else(|| "USD".into())
}

async fn refund(
    agent: &ApiClient,
    order: &Followed,
    minor: i64,
    kind: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let response = agent
        .post_command(
            &format!("/v1/orders/{}/refunds", order.id),
            &json!({"amount_minor": minor, "currency": currency(order), "reason": reason, "kind": kind}),
            &format!("demo-refund-{}-{minor}", order.id),
        )
        .await?;
    anyhow::ensure!(
        response.status == StatusCode::ACCEPTED,
        "refund on {} answered {}: {}",
        order.id,
        response.status,
        String::from_utf8_lossy(&response.raw)
    );
    Ok(())
}

/// Opens a dispute at the sandbox, answers it with evidence, lets the bank decide against us.
async fn lost_chargeback(
    settings: &Settings,
    secrets: &Secrets,
    client: &ApiClient,
    actors: &Actors<'_>,
    order: &Followed,
) -> anyhow::Result<()> {
    let capture_id = first_payload(settings, &order.id, "PaymentCaptured")
        .await?
        .and_then(|p| p["capture_id"].as_str().map(str::to_owned))
        .context("the disputed order has no capture")?;
    let gateway = settings.checkout.payment_gateway_url.trim_end_matches('/');
    let (status, dispute) = client
        .gateway_call(
            Method::POST,
            &format!("{gateway}/v1/_sandbox/disputes"),
            &secrets.payment_api_key,
            &json!({"capture_id": capture_id, "reason": "fraudulent"}),
        )
        .await?;
    anyhow::ensure!(
        status == StatusCode::CREATED,
        "opening a dispute answered {status}: {dispute}"
    );
    let dispute_id = dispute["id"]
        .as_str()
        .context("dispute without id")?
        .to_owned();
    let until = tokio::time::Instant::now() + WAIT;
    while first_payload(settings, &order.id, "ChargebackOpened")
        .await?
        .is_none()
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "the dispute webhook never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let evidence = actors
        .agent
        .post_command(
            &format!("/v1/orders/{}/disputes/{dispute_id}/evidence", order.id),
            &json!({"text": "Delivered to the billing address; signed proof of delivery attached."}),
            &format!("demo-evidence-{dispute_id}"),
        )
        .await?;
    anyhow::ensure!(
        evidence.status == StatusCode::OK,
        "evidence answered {}: {}",
        evidence.status,
        String::from_utf8_lossy(&evidence.raw)
    );
    let (status, decided) = client
        .gateway_call(
            Method::POST,
            &format!("{gateway}/v1/_sandbox/disputes/{dispute_id}/decide"),
            &secrets.payment_api_key,
            &json!({"outcome": "lost"}),
        )
        .await?;
    anyhow::ensure!(
        status == StatusCode::OK,
        "deciding the dispute answered {status}: {decided}"
    );
    let view = wait_view(client, &order.id, "the chargeback reversal", |v| {
        v.payment.reversed_minor > 0
    })
    .await?;
    let line = view
        .timeline
        .last()
        .map(|t| t.summary.clone())
        .unwrap_or_default();
    println!(
        "  {}: dispute {dispute_id} opened, evidence sent, lost; the order shows \"{line}\"",
        order.id
    );
    Ok(())
}

async fn first_payload(
    settings: &Settings,
    order_id: &str,
    event_type: &str,
) -> anyhow::Result<Option<Value>> {
    let pool = crate::migrate::connect(&settings.database_url, 1).await?;
    let events = EventStore::new(pool.clone())
        .read_stream(&format!("order-{order_id}"), 1, None)
        .await
        .context("reading the order's stream")?;
    pool.close().await;
    Ok(events
        .into_iter()
        .find(|e| e.event_type == event_type)
        .map(|e| e.payload.to_value()))
}

pub(super) async fn wait_view(
    client: &ApiClient,
    order_id: &str,
    what: &str,
    done: impl Fn(&TrackingView) -> bool,
) -> anyhow::Result<TrackingView> {
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = client.staff_tracking(order_id).await?;
        if status == StatusCode::OK {
            if let Ok(view) = serde_json::from_value::<TrackingView>(body["view"].clone()) {
                if done(&view) {
                    return Ok(view);
                }
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "{order_id}: {what} did not show on the tracking view within {}s",
            WAIT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
