//! `waybill bench checkout`: card orders through the whole checkout flow, measured beside
//! placement alone in the same run.
//!
//! Two phases, each on a scratch database, JetStream stream and Redis prefix of its own:
//! - `placement only`: command API, relay, projectors and query API, checkout worker off; the
//!   orders are placed and nothing else happens to them (the baseline);
//! - `checkout`: the same plus the checkout worker and the payment sandbox, with a location
//!   stocked for every SKU; each order goes risk → reserve → authorize → allocate + confirm →
//!   capture.
//!
//! The same order bodies go to both: one to three lines, US addresses, the sandbox's approving
//! card, and a customer email and IP of their own so the velocity rules never send one to
//! review. Placement is measured by the clients; how far the flow got and when is read from the
//! event store afterwards (`recorded_at` of each order's events, one query), not by polling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use waybill_schemas::Sku;
use waybill_write_side::inventory::LocationKind;
use waybill_write_side::inventory::{Country, Inventory, InventoryConfig, Location, LocationId};

use super::checkout_report::{CheckoutReport, CheckoutRun, OrderTimes, PlacementRun, WorkerStats};
use super::cpu::{self, CpuReport};
pub(super) use super::roles::start;
use super::{load, Scratch, PLACEMENT_PARTS};
use crate::client::ApiClient;
use crate::config::{BenchCheckoutArgs, Settings};
use crate::secrets::Secrets;
use crate::services::{Part, Running};
use crate::shutdown::Shutdown;

/// The sandbox card that authorizes at once.
const APPROVED_CARD: &str = "tok_4242424242424242";
const LOCATION: &str = "BENCH-DC";
/// SKUs the orders draw from, each stocked far beyond what the run can take.
const SKUS: &[(&str, i64)] = &[
    ("BENCH-TEE", 1_500),
    ("BENCH-MUG", 1_200),
    ("BENCH-CAP", 2_200),
    ("BENCH-TOTE", 1_800),
];

pub async fn checkout(settings: &Settings, args: &BenchCheckoutArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.orders > 0 && args.clients > 0,
        "--orders and --clients must be positive"
    );
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let render = crate::metrics::install()?;
    let bodies = order_bodies(&run, args.orders)?;

    let (baseline, baseline_cpu) = if args.no_baseline {
        (None, None)
    } else {
        let scratch = Scratch::new(settings, &format!("{run}_place"));
        eprintln!(
            "bench checkout, phase 1/2: placement only (checkout worker off), {} orders, {} clients",
            args.orders, args.clients
        );
        let outcome = placement_only(settings, &scratch, &run, args, &bodies).await;
        finish_scratch(settings, &scratch, args.keep).await;
        let (placement, cpu) = outcome?;
        (Some(placement), Some(cpu))
    };

    let scratch = Scratch::new(settings, &format!("{run}_flow"));
    eprintln!(
        "bench checkout, phase 2/2: the whole flow (checkout worker + payment sandbox), {} orders, {} clients",
        args.orders, args.clients
    );
    let outcome = whole_flow(settings, &scratch, &run, args, &bodies, &render).await;
    finish_scratch(settings, &scratch, args.keep).await;
    let flow = outcome?;

    let mut report = CheckoutReport::new(args, baseline, flow);
    report.placement_only_cpu = baseline_cpu;
    println!("{}", report.table());
    let svg_path = crate::bench::report::write_with_chart(&args.out, &report, &report.chart())?;
    let mut windows = vec![("whole flow", &report.flow.cpu)];
    if let Some(cpu) = &report.placement_only_cpu {
        windows.insert(0, ("placement only", cpu));
    }
    cpu::write_chart(
        &args.out,
        &svg_path,
        &format!(
            "bench checkout: CPU per unit by process, {} orders",
            args.orders
        ),
        &windows,
    )?;
    Ok(())
}

pub(super) async fn finish_scratch(settings: &Settings, scratch: &Scratch, keep: bool) {
    if keep {
        eprintln!(
            "kept database {}, stream {}, redis prefix {}",
            scratch.database, scratch.stream, scratch.redis_prefix
        );
    } else if let Err(error) = scratch.remove(settings).await {
        eprintln!("cleaning up the scratch environment failed: {error:#}");
    }
}

/// Phase 1: the orders placed with the checkout worker off, and the CPU per order.
async fn placement_only(
    settings: &Settings,
    scratch: &Scratch,
    run: &str,
    args: &BenchCheckoutArgs,
    bodies: &[bytes::Bytes],
) -> anyhow::Result<(PlacementRun, CpuReport)> {
    let (settings, secrets) = scratch.settings(settings, run);
    crate::migrate::migrate(&settings.database_url)
        .await?
        .close()
        .await;
    let shutdown = Shutdown::new();
    let running = start(&settings, &secrets, PLACEMENT_PARTS, &shutdown).await?;
    let outcome = async {
        let client = api_client(&running, &secrets, args.clients)?;
        client.wait_ready(Duration::from_secs(30)).await?;
        let (lag, _) = mpsc::unbounded_channel();
        let done = Arc::new(AtomicU64::new(0));
        let before = cpu::Snapshot::start();
        let load =
            load::run_bodies(&client, bodies.to_vec(), args.clients, run, lag, done, true).await?;
        let cpu = cpu::Snapshot::take().since(&before, "order", load.accepted);
        Ok::<_, anyhow::Error>((PlacementRun::of(&load), cpu))
    }
    .await;
    shutdown.trigger();
    running.wait().await?;
    outcome
}

/// Phase 2: the orders placed and driven through the flow.
pub(super) async fn whole_flow(
    settings: &Settings,
    scratch: &Scratch,
    run: &str,
    args: &BenchCheckoutArgs,
    bodies: &[bytes::Bytes],
    render: &waybill_query_api::MetricsRender,
) -> anyhow::Result<CheckoutRun> {
    let (mut settings, secrets) = scratch.settings(settings, run);
    let pool = crate::migrate::migrate(&settings.database_url).await?;
    add_progress_index(&pool).await?;
    seed_stock(&pool, args.orders, run).await?;

    // The sandbox needs the command API's address for its webhooks and the checkout worker the
    // sandbox's: start them in that order on ports the OS picks.
    let shutdown = Shutdown::new();
    let api = start(&settings, &secrets, PLACEMENT_PARTS, &shutdown).await?;
    let command = api.command_addr.context("command API did not start")?;
    settings.checkout.payment_webhook_url = Some(format!("http://{command}/v1/webhooks/payments"));
    let sandbox = start(&settings, &secrets, &[Part::PaymentSandbox], &shutdown).await?;
    let gateway = sandbox
        .payment_sandbox_addr
        .context("payment sandbox did not start")?;
    settings.checkout.payment_gateway_url = format!("http://{gateway}");
    let worker = start(&settings, &secrets, &[Part::Checkout], &shutdown).await?;
    eprintln!(
        "  checkout worker: batch {}, poll {} ms; sandbox at {gateway}",
        settings.checkout.checkout_batch, settings.checkout.checkout_poll_ms
    );

    let outcome = drive(&pool, &api, &secrets, run, args, bodies, render).await;
    shutdown.trigger();
    let stopped = [api.wait().await, sandbox.wait().await, worker.wait().await];
    pool.close().await;
    let flow = outcome?;
    for result in stopped {
        result?;
    }
    Ok(flow)
}

/// Places the orders, follows the flow until every accepted order is captured (or the deadline
/// passes), then reads every order's times from the event store.
async fn drive(
    pool: &PgPool,
    api: &Running,
    secrets: &Secrets,
    run: &str,
    args: &BenchCheckoutArgs,
    bodies: &[bytes::Bytes],
    render: &waybill_query_api::MetricsRender,
) -> anyhow::Result<CheckoutRun> {
    let client = api_client(api, secrets, args.clients)?;
    client.wait_ready(Duration::from_secs(30)).await?;
    let metrics_before = render();
    let cpu_before = cpu::Snapshot::start();

    let placed = Arc::new(AtomicU64::new(0));
    let (accepted_tx, accepted_rx) = watch::channel(None);
    let progress = tokio::spawn(follow(
        pool.clone(),
        placed.clone(),
        accepted_rx,
        args.orders,
        Duration::from_secs(args.deadline_secs),
    ));
    let (lag, _) = mpsc::unbounded_channel();
    let load = load::run_bodies(
        &client,
        bodies.to_vec(),
        args.clients,
        run,
        lag,
        placed,
        false,
    )
    .await;
    let accepted = load.as_ref().map_or(0, |l| l.accepted);
    let _ = accepted_tx.send(Some(accepted));
    let followed = progress.await.context("progress task panicked")?;
    let load = load?;
    let settled_after = followed?;

    let cpu_after = cpu::Snapshot::take();
    let worker = WorkerStats::between(&metrics_before, &render());
    let times = order_times(pool).await?;
    let confirmed = times.iter().filter(|t| t.confirmed.is_some()).count() as u64;
    let cpu = cpu_after.since(&cpu_before, "confirmed order", confirmed);
    Ok(CheckoutRun::new(
        PlacementRun::of(&load),
        &times,
        load.accepted,
        settled_after,
        worker,
        cpu,
    ))
}

/// Prints placed / confirmed / captured once a second until every accepted order is captured,
/// or `deadline` after the last placement. Returns how long after the load ended that was.
async fn follow(
    pool: PgPool,
    placed: Arc<AtomicU64>,
    mut accepted: watch::Receiver<Option<u64>>,
    orders: usize,
    deadline: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut load_ended: Option<(Instant, u64)> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = (0, 0);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = accepted.changed(), if load_ended.is_none() => {
                if changed.is_err() {
                    anyhow::bail!("the load generator stopped without reporting");
                }
            }
        }
        if load_ended.is_none() {
            if let Some(n) = *accepted.borrow() {
                load_ended = Some((Instant::now(), n));
            }
        }
        let (confirmed, captured) = progress_counts(&pool).await?;
        eprintln!(
            "  {:>5.1}s  {:>8}/{orders} placed  {confirmed:>8} confirmed ({:>5}/s)  {captured:>8} captured ({:>5}/s)",
            started.elapsed().as_secs_f64(),
            placed.load(Ordering::Relaxed),
            confirmed.saturating_sub(last.0),
            captured.saturating_sub(last.1),
        );
        last = (confirmed, captured);
        if let Some((ended, accepted)) = load_ended {
            if confirmed >= accepted && captured >= accepted {
                return Ok(ended.elapsed());
            }
            if ended.elapsed() > deadline {
                eprintln!(
                    "  deadline: {} of {accepted} orders not confirmed after {} s",
                    accepted.saturating_sub(confirmed),
                    deadline.as_secs()
                );
                return Ok(ended.elapsed());
            }
        }
    }
}

/// A partial index on the scratch database only, so the once-a-second progress count reads a
/// few thousand index entries instead of scanning the whole event log.
async fn add_progress_index(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE INDEX IF NOT EXISTS bench_checkout_progress ON events (event_type) \
         WHERE event_type IN ('OrderConfirmed', 'PaymentCaptured')",
    )
    .execute(pool)
    .await
    .context("creating the bench's progress index")?;
    Ok(())
}

/// OrderConfirmed and PaymentCaptured events so far. Read committed on purpose: the observer
/// must not take SIREAD locks that could fail the flow's serializable transactions.
async fn progress_counts(pool: &PgPool) -> anyhow::Result<(u64, u64)> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT event_type, count(*) FROM events \
         WHERE event_type IN ('OrderConfirmed', 'PaymentCaptured') GROUP BY event_type",
    )
    .fetch_all(pool)
    .await
    .context("counting confirmations")?;
    let count = |name: &str| {
        rows.iter()
            .find(|(t, _)| t == name)
            .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
    };
    Ok((count("OrderConfirmed"), count("PaymentCaptured")))
}

/// Every order's placement, first confirmation and first capture times, how many captures it
/// has and its latest event, in one query over the event log.
async fn order_times(pool: &PgPool) -> anyhow::Result<Vec<OrderTimes>> {
    type Row = (
        String,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        i64,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT stream_id, \
           min(recorded_at) FILTER (WHERE event_type = 'OrderPlaced'), \
           min(recorded_at) FILTER (WHERE event_type = 'OrderConfirmed'), \
           min(recorded_at) FILTER (WHERE event_type = 'PaymentCaptured'), \
           count(*) FILTER (WHERE event_type = 'PaymentCaptured'), \
           (array_agg(event_type ORDER BY stream_version DESC))[1] \
         FROM events WHERE stream_id LIKE 'order-%' GROUP BY stream_id",
    )
    .fetch_all(pool)
    .await
    .context("reading the orders' event times")?;
    Ok(rows
        .into_iter()
        .map(
            |(_, placed, confirmed, captured, captures, last_event)| OrderTimes {
                placed,
                confirmed,
                captured,
                captures: u32::try_from(captures).unwrap_or(u32::MAX),
                last_event: last_event.unwrap_or_default(),
            },
        )
        .collect())
}

/// One US warehouse with ten units per order of every SKU (an order takes at most 3 × 3).
/// Stocks the bench SKUs for `orders` orders at the bench warehouse; the restocks' keys name
/// the run, so a database other runs stocked (`--external`) is stocked again.
pub(super) async fn seed_stock(pool: &PgPool, orders: usize, run: &str) -> anyhow::Result<()> {
    let inventory = Inventory::spawn(pool.clone(), InventoryConfig::default());
    let location = LocationId::parse(LOCATION)?;
    inventory
        .upsert_location(&Location {
            location_id: location.clone(),
            kind: LocationKind::Warehouse,
            name: "Bench DC".to_owned(),
            country: Country::parse("US")?,
            zone: 5,
            active: true,
        })
        .await?;
    let units = u32::try_from(orders.saturating_mul(10)).unwrap_or(u32::MAX);
    for (sku, _) in SKUS {
        inventory
            .restock(
                Sku::parse(sku)?,
                location.clone(),
                units,
                &format!("bench-seed-{run}-{sku}"),
                Utc::now(),
            )
            .await?;
    }
    Ok(())
}

pub(super) fn api_client(
    running: &Running,
    secrets: &Secrets,
    clients: usize,
) -> anyhow::Result<ApiClient> {
    let command = running.command_addr.context("command API did not start")?;
    let query = running.query_addr.context("query API did not start")?;
    let key = secrets
        .client_key
        .clone()
        .context("the scratch secrets have no client key")?;
    ApiClient::new(command, query, key, clients)
}

/// The `orders` request bodies of this run, serialised before any clock starts.
pub(super) fn order_bodies(run: &str, orders: usize) -> anyhow::Result<Vec<bytes::Bytes>> {
    (0..orders)
        .map(|n| {
            serde_json::to_vec(&order_body(run, n))
                .map(bytes::Bytes::from)
                .context("serialising an order")
        })
        .collect()
}

/// The `n`-th card order of `run`: one to three lines of the stocked SKUs, a US address, the
/// approving card, and an email, customer id and IP used by no other order.
fn order_body(run: &str, n: usize) -> Value {
    let lines: Vec<Value> = (0..1 + n % 3)
        .map(|i| {
            let (sku, price) = SKUS[(n + i) % SKUS.len()];
            json!({"sku": sku, "name": sku, "quantity": 1 + (n / 3 + i) % 3, "unit_price_minor": price})
        })
        .collect();
    json!({
        "channel": "web",
        "channel_order_ref": format!("BENCH-{run}-{n}"),
        "currency": "USD",
        "customer": {"customer_id": format!("bench-{run}-{n}"), "name": "Grace Hopper",
                     "email": format!("buyer-{n}@bench-{run}.example.com"), "phone": null},
        "lines": lines,
        "shipping_address": {"name": "Grace Hopper", "line1": format!("{} Main St", 1 + n % 500),
                             "city": "Springfield", "region": "IL", "postal_code": "62701",
                             "country": "US"},
        "shipping": {"method": "standard"},
        "payment": {"method": "card", "token": APPROVED_CARD},
        "risk_context": {"ip": format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)},
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bench_orders_parse_and_never_share_an_email_or_ip() {
        let mut emails = std::collections::HashSet::new();
        let mut ips = std::collections::HashSet::new();
        for n in 0..300 {
            let order = order_body("r1", n);
            let parsed = waybill_write_side::domain::parse_place_order(&order)
                .unwrap_or_else(|e| panic!("order {n} refused: {e}"));
            assert!(parsed.payment.is_some(), "order {n} pays by card");
            assert!(emails.insert(order["customer"]["email"].to_string()));
            assert!(ips.insert(order["risk_context"]["ip"].to_string()));
            let lines = order["lines"].as_array().unwrap();
            assert!((1..=3).contains(&lines.len()));
            for line in lines {
                let sku = line["sku"].as_str().unwrap();
                assert!(SKUS.iter().any(|(s, _)| *s == sku), "{sku} is stocked");
                assert!((1..=3).contains(&line["quantity"].as_u64().unwrap()));
            }
        }
    }
}
