//! `waybill demo`: runs a realistic mix of orders through the whole checkout flow over the
//! public APIs. It seeds locations and stock ([`seed`]), places orders whose outcomes are known
//! in advance ([`scenario`]: approved and declined cards, prepaid channel orders, 3-D Secure
//! passed and failed, fraud reviews an agent approves or rejects, a blocklisted customer, an
//! out-of-stock order, a customer cancel, a promotion code, an order priced by the rules), shows
//! the idempotent replay and the channel duplicate, follows every order until its flow is over
//! while acting as the customer or the agent where the flow waits for one ([`follow`]), and
//! prints the outcome table ([`report`]), the customer's side ([`tracking_page`]: tracking-page
//! links, the lookup form, a signed-in customer's order list), the agent searches that find every
//! order ([`search`]), the day's finance summary and reconciliation discrepancies ([`finance`])
//! and where to look. Then [`money`] refunds some of the captured orders,
//! loses a card dispute on one, and imports the day's settlement report; [`fulfillment`] drives
//! three orders through nodes and a carrier, [`returns`] sends units of one in five delivered
//! orders back, [`edits`] cancels units after capture, [`exchanges`] resolves returns as an
//! exchange and as store credit, and [`fulfillment_batching`] says how many transactions the
//! fulfillment side's writes took.

mod desk;
mod edits;
mod erasure;
mod exchanges;
mod finance;
mod follow;
mod fulfillment;
mod fulfillment_batching;
mod money;
mod notifications;
mod order_edits;
mod report;
mod returns;
mod scenario;
mod screens;
mod search;
mod seed;
mod subscriptions;
mod time_travel;
mod tracking_page;
mod views;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::Value;
use waybill_schemas::{Currency, Money};
use waybill_write_side::event_store::EventStore;

use crate::client::ApiClient;
use crate::config::{CaptureModeSetting, DemoArgs, Settings};
use crate::orders::OrderFactory;
use crate::secrets::Secrets;
use crate::services::{self, Addresses, Part};
use crate::shutdown::Shutdown;
use follow::{Actors, Followed};
use report::Row;
use scenario::{Action, Scenario};

pub async fn run(settings: &Settings, args: &DemoArgs) -> anyhow::Result<()> {
    let secrets = Secrets::resolve(settings)?;
    let key = secrets.client_key.clone().context(
        "WAYBILL_API_KEYS has no key with role service, agent or admin for the demo to use",
    )?;
    let inventory_key = key_with_role(&secrets.api_keys, &["admin", "service"])
        .context("WAYBILL_API_KEYS has no admin or service key to seed the inventory with")?;
    let agent_key = key_with_role(&secrets.api_keys, &["agent", "admin"])
        .context("WAYBILL_API_KEYS has no agent or admin key to decide the fraud reviews with")?;

    let shutdown = Shutdown::new();
    let running = if args.start {
        crate::migrate::migrate(&settings.database_url).await?;
        crate::metrics::install()?;
        shutdown.on_signals();
        let addresses = Addresses {
            command: settings.command_addr,
            query: settings.query_addr,
            payment_sandbox: settings.checkout.payment_sandbox_addr,
            logistics_sandbox: settings.fulfillment.logistics_sandbox_addr,
            sms_sandbox: settings.checkout.sms_sandbox_addr,
        };
        // What `serve all` runs, plus our simulated gateway the checkout worker talks to.
        let parts: Vec<Part> = Part::ALL
            .into_iter()
            .filter(|p| *p != Part::Checkout || settings.checkout.checkout_worker)
            .filter(|p| *p != Part::Fulfillment || settings.fulfillment.fulfillment_worker)
            .chain([Part::PaymentSandbox, Part::LogisticsSandbox])
            .collect();
        Some(services::start(settings, &secrets, &parts, addresses, &shutdown).await?)
    } else {
        None
    };

    let client = ApiClient::new(settings.command_addr, settings.query_addr, key, 8)?;
    client.wait_ready(Duration::from_secs(30)).await?;
    let outcome = async {
        gateway_ready(&client, &settings.checkout.payment_gateway_url).await?;
        let actors = Actors {
            client: &client.with_key(inventory_key),
            agent: &client.with_key(agent_key),
        };
        demo(settings, args, &client, &actors, &secrets.jwt_secret).await
    }
    .await;
    if let Err(error) = &outcome {
        eprintln!("demo failed: {error:#}");
    }
    where_to_look(settings, &client);

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

/// The first key in `key:client_id:role,...` with one of `roles`.
fn key_with_role(api_keys: &str, roles: &[&str]) -> Option<String> {
    api_keys.split(',').map(str::trim).find_map(|entry| {
        let mut parts = entry.splitn(3, ':');
        let (key, _client, role) = (parts.next()?, parts.next()?, parts.next()?);
        roles.contains(&role).then(|| key.to_owned())
    })
}

/// Fails early, with the fix, when the payment gateway does not answer: card orders would
/// otherwise sit in checkout until the deadline.
async fn gateway_ready(client: &ApiClient, gateway_url: &str) -> anyhow::Result<()> {
    let url = format!("{}/health", gateway_url.trim_end_matches('/'));
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client.get_plain(&url).await {
            Ok(status) if status.is_success() => return Ok(()),
            _ if tokio::time::Instant::now() >= until => anyhow::bail!(
                "the payment gateway does not answer at {url}; start the sandbox \
                 (`waybill serve payment-sandbox`) or use infra/scripts/demo.sh or --start"
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn demo(
    settings: &Settings,
    args: &DemoArgs,
    client: &ApiClient,
    actors: &Actors<'_>,
    jwt_secret: &[u8],
) -> anyhow::Result<()> {
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    seed::seed(actors.client, &run).await?;
    let admin_key = key_with_role(&Secrets::resolve(settings)?.api_keys, &["admin"]);
    let admin = admin_key.map(|key| client.with_key(key));
    let integrator = match &admin {
        Some(admin) => Some(subscriptions::register(admin, &run).await?),
        None => {
            println!("WAYBILL_API_KEYS has no admin key: no webhook subscription in this demo");
            None
        }
    };

    let mix = scenario::plan(args.orders);
    let mut factory = OrderFactory::new(
        u64::from_str_radix(&run[..8], 16).unwrap_or(42),
        run.clone(),
    );
    println!(
        "Placing {} orders (run {run}) at {}",
        mix.len(),
        client.command_base
    );
    let mut followed = Vec::with_capacity(mix.len());
    let mut pages = Vec::new();
    let mut placed = Vec::with_capacity(mix.len());
    let mut first_request: Option<(Value, String, bytes::Bytes)> = None;
    for (n, scenario) in mix.iter().enumerate() {
        let body = factory.shaped(n, &scenario.shape());
        let key = format!("demo-{run}-{n}");
        let response = client.place(&body, &key).await?;
        if response.status != StatusCode::CREATED {
            anyhow::bail!(
                "placing order {n} ({}) answered {}: {}",
                scenario.label(),
                response.status,
                String::from_utf8_lossy(&response.raw)
            );
        }
        let id = response.body["order_id"]
            .as_str()
            .context("201 without order_id")?
            .to_owned();
        let token = response.body["tracking_token"]
            .as_str()
            .context("201 without tracking_token")?
            .to_owned();
        println!(
            "  [{:>2}/{}] {:<34} {:<11} {:>14}{}  -> {id}",
            n + 1,
            mix.len(),
            scenario.label(),
            body["channel"].as_str().unwrap_or("?"),
            money(&response.body, "grand_total_minor"),
            priced_detail(*scenario, &response.body),
        );
        if n == 0 {
            first_request = Some((body.clone(), key.clone(), response.raw.clone()));
        }
        if pages.len() < 4 {
            pages.push(tracking_page::PageOrder::new(&id, &token, &body));
        }
        if scenario.action() == Action::CancelAtOnce {
            let cancelled = client
                .cancel(&id, "customer_request", &format!("demo-cancel-{id}"))
                .await?;
            anyhow::ensure!(
                cancelled.status == StatusCode::OK,
                "cancelling {id} answered {}: {}",
                cancelled.status,
                String::from_utf8_lossy(&cancelled.raw)
            );
            println!("          the customer cancelled it straight away (HTTP 200)");
        }
        placed.push(search::Placed {
            id: id.clone(),
            body: body.clone(),
        });
        followed.push(Followed {
            scenario: *scenario,
            id,
            token,
            view: None,
            settled: false,
            acted: None,
        });
    }
    if let Some((body, key, first_raw)) = &first_request {
        replay_showcase(client, body, key, first_raw, &followed[0].id).await?;
    }

    let immediate = settings.checkout.capture_mode == CaptureModeSetting::Immediate;
    println!(
        "\nFollowing the orders through checkout (up to {}s):",
        args.wait_secs
    );
    let unsettled = follow::follow(
        actors,
        &mut followed,
        immediate,
        Duration::from_secs(args.wait_secs),
    )
    .await?;
    if unsettled > 0 {
        println!(
            "  {unsettled} order(s) did not settle within {}s",
            args.wait_secs
        );
    }

    let events = event_types(settings, &followed).await;
    let rows: Vec<Row> = followed
        .iter()
        .map(|order| row(order, events.get(&order.id), immediate, client))
        .collect();
    println!("\nOutcome (status and payment from the tracking view, events from the event store):");
    print!("{}", report::render(&rows));
    let (all_as_labelled, summary) = report::summary(&rows);
    println!("{summary}");
    search::show(actors.agent, &placed).await?;
    time_travel::show(actors.agent, &followed).await?;
    anyhow::ensure!(all_as_labelled, "{summary}");
    tracking_page::show(client, jwt_secret, &pages).await?;
    money::after_checkout(settings, client, actors, &followed).await?;
    exchanges::run(client, actors, &followed).await?;
    // After the refunds, the lost dispute and the settlement import, so the summary and the
    // reconciliation show them.
    let order_ids: Vec<String> = followed.iter().map(|o| o.id.clone()).collect();
    finance::show(settings, client, &order_ids).await?;
    let api_keys = Secrets::resolve(settings)?.api_keys;
    let staff = key_with_role(&api_keys, &["agent", "admin"])
        .context("WAYBILL_API_KEYS has no agent or admin key to open the console with")?;
    screens::show(
        &client.query_base,
        &staff,
        key_with_role(&api_keys, &["finance", "admin"]).as_deref(),
        &settings.secrets_dir.join(crate::secrets::DEV_API_KEY_FILE),
        &order_ids,
    )
    .await?;
    let logistics = format!("http://{}", settings.fulfillment.logistics_sandbox_addr);
    fulfillment::run(actors.client, &logistics, &run).await?;
    returns::run(actors.client, &logistics, &run).await?;
    edits::run(actors.client, &logistics, &run).await?;
    order_edits::run(actors.client, &logistics, &run).await?;
    exchanges::resolutions(actors.client, &logistics, &run).await?;
    fulfillment_batching::show(client, &format!("http://{}/metrics", settings.metrics_addr)).await;
    views::rebuild(settings).await?;
    desk::show(actors.agent).await?;
    notifications::show(settings, actors.agent, jwt_secret, &followed).await?;
    if let (Some(integrator), Some(admin)) = (&integrator, &admin) {
        integrator.show(admin, actors.agent, &followed).await?;
    }
    if let (Some(admin), Some(template)) = (&admin, placed.first()) {
        erasure::show(actors.client, admin, actors.agent, template, &run).await?;
    }
    Ok(())
}

/// The idempotent replay of the first request and the same channel order under a new key.
async fn replay_showcase(
    client: &ApiClient,
    body: &Value,
    key: &str,
    first_raw: &bytes::Bytes,
    first_id: &str,
) -> anyhow::Result<()> {
    let replay = client.place(body, key).await?;
    println!(
        "Replayed order 1 with its Idempotency-Key: {} Idempotent-Replayed={} body identical={}",
        replay.status,
        replay.replayed,
        replay.raw == *first_raw
    );
    let again = client.place(body, &format!("{key}-resent")).await?;
    println!(
        "Re-sent order 1 from its channel under a new key: {} existing={} same order={}",
        again.status,
        again.body["existing"],
        again.body["order_id"].as_str() == Some(first_id)
    );
    Ok(())
}

/// Each order's event types from the event store; from the tracking timeline (customer-facing
/// steps only) when the store cannot be read.
async fn event_types(settings: &Settings, orders: &[Followed]) -> HashMap<String, Vec<String>> {
    let stream_ids: Vec<String> = orders.iter().map(|o| format!("order-{}", o.id)).collect();
    let read = async {
        let pool = crate::migrate::connect(&settings.database_url, 1).await?;
        let streams = EventStore::new(pool.clone())
            .read_streams(&stream_ids)
            .await
            .context("reading the orders' streams")?;
        pool.close().await;
        anyhow::Ok(streams)
    };
    match read.await {
        Ok(streams) => streams
            .into_iter()
            .map(|(stream, envelopes)| {
                let id = stream.trim_start_matches("order-").to_owned();
                (id, envelopes.into_iter().map(|e| e.event_type).collect())
            })
            .collect(),
        Err(error) => {
            println!(
                "(event store not readable: {error:#}; showing the tracking timeline instead)"
            );
            orders
                .iter()
                .filter_map(|o| {
                    let view = o.view.as_ref()?;
                    let types = view.timeline.iter().map(|t| t.event_type.clone());
                    Some((o.id.clone(), types.collect()))
                })
                .collect()
        }
    }
}

fn row(order: &Followed, events: Option<&Vec<String>>, immediate: bool, client: &ApiClient) -> Row {
    let expected = order.scenario.expected(immediate);
    let as_labelled = order.view.as_ref().is_some_and(|v| {
        expected.met_by(v.status, v.payment.state, v.cancellation_reason.as_deref())
    });
    let name = |value: Value| value.as_str().map(str::to_owned);
    Row {
        label: order.scenario.label(),
        order_id: order.id.clone(),
        status: order
            .view
            .as_ref()
            .and_then(|v| name(serde_json::to_value(v.status).ok()?)),
        payment: order
            .view
            .as_ref()
            .and_then(|v| name(serde_json::to_value(v.payment.state).ok()?)),
        events: events.cloned().unwrap_or_default(),
        as_labelled,
        settled: order.settled,
        link: client.tracking_url(&order.id, &order.token),
    }
}

/// Tax, shipping and discount of the orders whose point is how they were priced.
fn priced_detail(scenario: Scenario, response: &Value) -> String {
    match scenario {
        Scenario::PromoCode => format!("  (discount {})", money(response, "discount_minor")),
        Scenario::PricedByRules => format!(
            "  (tax {}, shipping {} by the rules)",
            money(response, "tax_minor"),
            money(response, "shipping_minor")
        ),
        _ => String::new(),
    }
}

/// One amount of a 201's totals, with its currency.
fn money(response: &Value, field: &str) -> String {
    let totals = &response["totals"];
    match (
        totals[field].as_i64(),
        totals["currency"]
            .as_str()
            .and_then(|c| Currency::parse(c).ok()),
    ) {
        (Some(minor), Some(currency)) => Money::new(minor, currency).to_string(),
        _ => "?".to_owned(),
    }
}

fn where_to_look(settings: &Settings, client: &ApiClient) {
    let notifications = &settings.checkout.notifications_dir;
    let notifications = std::env::current_dir()
        .map(|dir| dir.join(notifications))
        .unwrap_or_else(|_| notifications.clone());
    let key_file = settings.secrets_dir.join(crate::secrets::DEV_API_KEY_FILE);
    println!();
    println!(
        "Customer messages: {}/index.html   (the development notification sink; WAYBILL_NOTIFICATIONS_DIR)",
        notifications.display()
    );
    println!(
        "Review queue:      curl -H \"Authorization: Bearer $(cat {})\" {}/v1/reviews",
        key_file.display(),
        client.command_base
    );
    println!(
        "Stock:             {}/v1/inventory/stock/<sku>   (same key; e.g. {}, {})",
        client.command_base,
        scenario::REVIEW_SKU,
        scenario::SCARCE_SKU
    );
    println!(
        "Payment sandbox:   {}   (simulated gateway; its webhooks: GET /v1/_sandbox/webhooks)",
        settings.checkout.payment_gateway_url
    );
    println!(
        "Metrics:           http://{}/metrics   (its own listener; /live and /ready there and on both APIs)",
        settings.metrics_addr
    );
    println!(
        "OpenAPI:           {}/openapi.json   {}/openapi.json",
        client.command_base, client.query_base
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_picked_by_role() {
        let keys = "f:fin:finance, s:shop:service,g:ann:agent";
        assert_eq!(
            key_with_role(keys, &["admin", "service"]).as_deref(),
            Some("s")
        );
        assert_eq!(
            key_with_role(keys, &["agent", "admin"]).as_deref(),
            Some("g")
        );
        assert_eq!(
            key_with_role("a:dev:admin", &["agent", "admin"]).as_deref(),
            Some("a")
        );
        assert_eq!(key_with_role("f:fin:finance", &["agent", "admin"]), None);
    }
}
