//! `waybill demo`: places a realistic mix of orders through the public command API (several
//! channels and currencies, multi-line orders with discounts and taxes, a few cancellations, one
//! order re-sent from its channel under a new key, one request replayed with its key), follows
//! each one to the tracking endpoint, and prints where to look.

use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::Value;
use waybill_schemas::{Currency, Money};

use crate::client::ApiClient;
use crate::config::{DemoArgs, Settings};
use crate::orders::OrderFactory;
use crate::secrets::Secrets;
use crate::services::{self, Addresses, Part};
use crate::shutdown::Shutdown;

struct Placed {
    id: String,
    token: String,
    version: i64,
    label: String,
}

pub async fn run(settings: &Settings, args: &DemoArgs) -> anyhow::Result<()> {
    let secrets = Secrets::resolve(settings)?;
    let key = secrets.client_key.clone().context(
        "WAYBILL_API_KEYS has no key with role service, agent or admin for the demo to use",
    )?;

    let shutdown = Shutdown::new();
    let running = if args.start {
        crate::migrate::migrate(&settings.database_url).await?;
        let render = crate::metrics::install()?;
        shutdown.on_signals();
        let addresses = Addresses {
            command: settings.command_addr,
            query: settings.query_addr,
            payment_sandbox: settings.checkout.payment_sandbox_addr,
        };
        Some(services::start(settings, &secrets, &Part::ALL, addresses, render, &shutdown).await?)
    } else {
        None
    };

    let client = ApiClient::new(settings.command_addr, settings.query_addr, key, 8)?;
    client.wait_ready(Duration::from_secs(30)).await?;
    let outcome = place_orders(&client, args.orders).await;
    if let Err(error) = &outcome {
        eprintln!("demo failed: {error:#}");
    }

    println!();
    println!(
        "Metrics:   {}/metrics   {}/metrics",
        client.command_base, client.query_base
    );
    println!(
        "OpenAPI:   {}/openapi.json   {}/openapi.json",
        client.command_base, client.query_base
    );

    match running {
        Some(running) => {
            if outcome.is_ok() {
                println!("\nServices keep running; Ctrl-C to stop.");
            } else {
                shutdown.trigger();
            }
            running.wait().await?;
            outcome
        }
        None => outcome,
    }
}

async fn place_orders(client: &ApiClient, count: usize) -> anyhow::Result<()> {
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let mut factory = OrderFactory::new(
        u64::from_str_radix(&run[..8], 16).unwrap_or(42),
        run.clone(),
    );
    let mut placed: Vec<Placed> = Vec::new();
    let mut first_request: Option<(Value, String, bytes::Bytes)> = None;

    println!(
        "Placing {count} orders (run {run}) at {}",
        client.command_base
    );
    for n in 0..count {
        let body = factory.order(n);
        let key = format!("demo-{run}-{n}");
        let response = client.place(&body, &key).await?;
        if response.status != StatusCode::CREATED {
            anyhow::bail!(
                "placing order {n} answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.raw)
            );
        }
        let placed_order = placed_from(&response.body, &body)?;
        println!(
            "  [{:>2}/{count}] {:<11} {:<24} {} line(s)  {:>14}  -> {}",
            n + 1,
            body["channel"].as_str().unwrap_or("?"),
            body["channel_order_ref"].as_str().unwrap_or("?"),
            body["lines"].as_array().map_or(0, Vec::len),
            grand_total(&response.body),
            placed_order.id
        );
        if n == 0 {
            first_request = Some((body.clone(), key.clone(), response.raw.clone()));
        }
        placed.push(placed_order);
    }

    if let Some((body, key, first_raw)) = &first_request {
        let replay = client.place(body, key).await?;
        let identical = replay.raw == *first_raw;
        println!(
            "Replayed order 1 with its Idempotency-Key: {} Idempotent-Replayed={} body identical={identical}",
            replay.status, replay.replayed
        );
        let again = client.place(body, &format!("{key}-resent")).await?;
        println!(
            "Re-sent order 1 from its channel under a new key: {} existing={} same order={}",
            again.status,
            again.body["existing"],
            again.body["order_id"].as_str() == placed.first().map(|p| p.id.as_str())
        );
    }

    let reasons = ["customer_request", "out_of_stock", "fraud"];
    for (i, order) in placed.iter_mut().enumerate().filter(|(i, _)| i % 5 == 2) {
        let reason = reasons[i % reasons.len()];
        let response = client
            .cancel(&order.id, reason, &format!("demo-cancel-{}", order.id))
            .await?;
        if response.status != StatusCode::OK {
            anyhow::bail!(
                "cancelling {} answered {}: {}",
                order.id,
                response.status,
                String::from_utf8_lossy(&response.raw)
            );
        }
        order.version = response.body["version"]
            .as_i64()
            .unwrap_or(order.version + 1);
        println!("Cancelled {} ({reason})", order.label);
    }

    println!("\nTracking (read-your-writes with min_version):");
    for order in &placed {
        let (status, body) = client
            .tracking(&order.id, &order.token, order.version)
            .await?;
        let state = if status == StatusCode::OK {
            format!(
                "{} v{}{}",
                body["view"]["status"].as_str().unwrap_or("?"),
                body["view"]["version"],
                if body["consistency"]["stale"] == true {
                    " (stale)"
                } else {
                    ""
                }
            )
        } else {
            format!("HTTP {status}")
        };
        println!(
            "  {:<26} {:<18} {}",
            order.label,
            state,
            client.tracking_url(&order.id, &order.token)
        );
    }
    Ok(())
}

fn placed_from(response: &Value, request: &Value) -> anyhow::Result<Placed> {
    let id = response["order_id"]
        .as_str()
        .context("201 without order_id")?
        .to_owned();
    let token = response["tracking_token"]
        .as_str()
        .context("201 without tracking_token")?
        .to_owned();
    Ok(Placed {
        id,
        token,
        version: response["version"].as_i64().unwrap_or(1),
        label: request["channel_order_ref"]
            .as_str()
            .unwrap_or("?")
            .to_owned(),
    })
}

fn grand_total(response: &Value) -> String {
    let totals = &response["totals"];
    match (
        totals["grand_total_minor"].as_i64(),
        totals["currency"]
            .as_str()
            .and_then(|c| Currency::parse(c).ok()),
    ) {
        (Some(minor), Some(currency)) => Money::new(minor, currency).to_string(),
        _ => "?".to_owned(),
    }
}
