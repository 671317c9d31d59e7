//! `waybill bench lifecycle`: card orders from placement to delivery and close, beside the
//! checkout flow alone for the same orders, each on a scratch environment of its own.
//!
//! The lifecycle phase runs the command API, relay, projectors, query API, checkout and
//! fulfillment workers in this process, with the payment sandbox and the logistics sandbox
//! (simulated WMS + carrier). A driver acts as every node and the carrier: it packs each WMS
//! task it sees and scans each labelled parcel as delivered, through the sandbox's driver
//! endpoints (signed webhooks into Waybill). `WAYBILL_AUTO_CLOSE_DAYS` is 0 so a delivered order
//! closes at once: a lifecycle is complete at its `OrderClosed`. Throughput and latency are read
//! from the event store afterwards; tracking lag is the projector's
//! `waybill_projector_lag_seconds{view="tracking"}` gauge, sampled every 100 ms during the run.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};

use super::checkout::{api_client, finish_scratch, order_bodies, seed_stock, start, whole_flow};
use super::checkout_report::CheckoutRun;
use super::report::Percentiles;
use super::{load, Scratch, PLACEMENT_PARTS};
use crate::client::ApiClient;
use crate::config::{BenchCheckoutArgs, BenchLifecycleArgs, Settings};
use crate::services::Part;
use crate::shutdown::Shutdown;

#[derive(Debug, Serialize)]
struct LifecycleReport {
    orders: usize,
    clients: usize,
    /// The checkout flow alone (fulfillment worker off), same orders, own scratch environment.
    baseline_checkout: Option<CheckoutRun>,
    lifecycle: LifecycleRun,
}

#[derive(Debug, Serialize)]
struct LifecycleRun {
    accepted: u64,
    closed: u64,
    /// Closed orders over the span from the first placement to the last close.
    lifecycles_per_sec: f64,
    /// Every event appended over the span from the first to the last.
    events: u64,
    events_per_sec: f64,
    placed_to_closed_ms: Percentiles,
    /// Sampled `waybill_projector_lag_seconds{view="tracking"}`, in ms.
    tracking_lag_ms: Percentiles,
    lag_samples: u64,
}

pub async fn lifecycle(settings: &Settings, args: &BenchLifecycleArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.orders > 0 && args.clients > 0,
        "--orders and --clients must be positive"
    );
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let render = crate::metrics::install()?;
    let bodies = order_bodies(&run, args.orders)?;
    let checkout_args = BenchCheckoutArgs {
        orders: args.orders,
        clients: args.clients,
        out: args.out.clone(),
        deadline_secs: args.deadline_secs,
        no_baseline: true,
        keep: args.keep,
    };

    let baseline = if args.no_baseline {
        None
    } else {
        let scratch = Scratch::new(settings, &format!("{run}_co"));
        eprintln!(
            "bench lifecycle, phase 1/2: checkout only, {} orders, {} clients",
            args.orders, args.clients
        );
        let outcome = whole_flow(settings, &scratch, &run, &checkout_args, &bodies, &render).await;
        finish_scratch(settings, &scratch, args.keep).await;
        Some(outcome?)
    };

    let scratch = Scratch::new(settings, &format!("{run}_lc"));
    eprintln!(
        "bench lifecycle, phase 2/2: placement → delivery → close, {} orders, {} clients",
        args.orders, args.clients
    );
    let outcome = whole_lifecycle(settings, &scratch, &run, args, &bodies, &render).await;
    finish_scratch(settings, &scratch, args.keep).await;
    let report = LifecycleReport {
        orders: args.orders,
        clients: args.clients,
        baseline_checkout: baseline,
        lifecycle: outcome?,
    };
    let l = &report.lifecycle;
    println!(
        "lifecycle: {}/{} closed, {:.0} lifecycles/s, {} events at {:.0} events/s, placed→closed p50 {:.0} ms p99 {:.0} ms, tracking lag p99 {:.0} ms (max {:.0}, {} samples)",
        l.closed, l.accepted, l.lifecycles_per_sec, l.events, l.events_per_sec,
        l.placed_to_closed_ms.p50, l.placed_to_closed_ms.p99, l.tracking_lag_ms.p99, l.tracking_lag_ms.max, l.lag_samples
    );
    if let Some(b) = &report.baseline_checkout {
        println!(
            "baseline checkout only: {:.0} confirmed/s, {:.0} captured/s, placed→captured p99 {:.0} ms",
            b.confirmed_per_sec, b.captured_per_sec, b.placed_to_captured_ms.p99
        );
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}

async fn whole_lifecycle(
    settings: &Settings,
    scratch: &Scratch,
    run: &str,
    args: &BenchLifecycleArgs,
    bodies: &[bytes::Bytes],
    render: &waybill_query_api::MetricsRender,
) -> anyhow::Result<LifecycleRun> {
    let (mut settings, secrets) = scratch.settings(settings, run);
    let pool = crate::migrate::migrate(&settings.database_url).await?;
    sqlx::query("CREATE INDEX IF NOT EXISTS bench_lifecycle_progress ON events (event_type) WHERE event_type = 'OrderClosed'")
        .execute(&pool)
        .await?;
    seed_stock(&pool, args.orders).await?;
    settings.fulfillment.auto_close_days = 0.0;

    let shutdown = Shutdown::new();
    let api = start(&settings, &secrets, PLACEMENT_PARTS, render, &shutdown).await?;
    let command = api.command_addr.context("command API did not start")?;
    settings.checkout.payment_webhook_url = Some(format!("http://{command}/v1/webhooks/payments"));
    settings.fulfillment.logistics_webhook_base = Some(format!("http://{command}"));
    let sandboxes = start(
        &settings,
        &secrets,
        &[Part::PaymentSandbox, Part::LogisticsSandbox],
        render,
        &shutdown,
    )
    .await?;
    let gateway = sandboxes
        .payment_sandbox_addr
        .context("payment sandbox did not start")?;
    let logistics = sandboxes
        .logistics_sandbox_addr
        .context("logistics sandbox did not start")?;
    settings.checkout.payment_gateway_url = format!("http://{gateway}");
    settings.fulfillment.wms_url = format!("http://{logistics}");
    settings.fulfillment.carrier_url = format!("http://{logistics}");
    let workers = start(
        &settings,
        &secrets,
        &[Part::Checkout, Part::Fulfillment],
        render,
        &shutdown,
    )
    .await?;

    let outcome = drive(
        &pool,
        &api,
        &secrets,
        run,
        args,
        bodies,
        render,
        &format!("http://{logistics}"),
    )
    .await;
    shutdown.trigger();
    let stopped = [
        api.wait().await,
        sandboxes.wait().await,
        workers.wait().await,
    ];
    pool.close().await;
    let result = outcome?;
    for r in stopped {
        r?;
    }
    Ok(result)
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    pool: &PgPool,
    api: &crate::services::Running,
    secrets: &crate::secrets::Secrets,
    run: &str,
    args: &BenchLifecycleArgs,
    bodies: &[bytes::Bytes],
    render: &waybill_query_api::MetricsRender,
    sandbox: &str,
) -> anyhow::Result<LifecycleRun> {
    let client = api_client(api, secrets, args.clients)?;
    client.wait_ready(Duration::from_secs(30)).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let node = tokio::spawn(act_as_nodes_and_carrier(
        client.clone(),
        sandbox.to_owned(),
        stop_rx.clone(),
    ));
    let lag = tokio::spawn(sample_lag(render.clone(), stop_rx));

    let placed = Arc::new(AtomicU64::new(0));
    let (lag_tx, _) = mpsc::unbounded_channel();
    let load = load::run_bodies(
        &client,
        bodies.to_vec(),
        args.clients,
        run,
        lag_tx,
        placed,
        false,
    )
    .await?;
    let accepted = load.accepted;
    let deadline = Instant::now() + Duration::from_secs(args.deadline_secs);
    let started = Instant::now();
    loop {
        let closed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'OrderClosed'")
                .fetch_one(pool)
                .await?;
        eprintln!(
            "  {:>5.1}s after the load: {closed}/{accepted} closed",
            started.elapsed().as_secs_f64()
        );
        if u64::try_from(closed).unwrap_or(0) >= accepted || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _ = stop_tx.send(true);
    node.await.context("driver panicked")??;
    let lag = lag.await.context("lag sampler panicked")??;
    measure(pool, accepted, lag).await
}

/// Packs every WMS task and delivers every parcel, as nodes and the carrier would.
async fn act_as_nodes_and_carrier(
    client: ApiClient,
    sandbox: String,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut packed: HashSet<String> = HashSet::new();
    let mut delivered: HashSet<String> = HashSet::new();
    while !*stop.borrow() {
        let tasks = client.get_json(&format!("{sandbox}/sandbox/tasks")).await?;
        let new: Vec<String> = tasks["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["fulfillment_id"].as_str().map(str::to_owned))
            .filter(|id| !packed.contains(id))
            .collect();
        let results: Vec<(String, bool)> = futures::stream::iter(new)
            .map(|id| {
                let client = &client;
                let url = format!("{sandbox}/sandbox/nodes/{id}/report");
                async move {
                    let answer = client
                        .post_json_plain(&url, &json!({"type": "packed"}))
                        .await;
                    (id, answer.is_ok_and(|a| a["waybill_status"] == json!(200)))
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        packed.extend(results.into_iter().filter(|(_, ok)| *ok).map(|(id, _)| id));

        let parcels = client
            .get_json(&format!("{sandbox}/sandbox/parcels"))
            .await?;
        let new: Vec<String> = parcels["parcels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["tracking_number"].as_str().map(str::to_owned))
            .filter(|t| !delivered.contains(t))
            .collect();
        let results: Vec<(String, bool)> = futures::stream::iter(new)
            .map(|tracking| {
                let client = &client;
                let url = format!("{sandbox}/sandbox/parcels/{tracking}/scan");
                async move {
                    let answer = client
                        .post_json_plain(
                            &url,
                            &json!({"status_code": "DL", "received_by": "bench"}),
                        )
                        .await;
                    // 409: the label's append has not landed yet; scanned again next round.
                    (
                        tracking,
                        answer.is_ok_and(|a: Value| a["waybill_status"] == json!(200)),
                    )
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        delivered.extend(results.into_iter().filter(|(_, ok)| *ok).map(|(t, _)| t));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Samples the tracking projector's lag gauge every 100 ms until told to stop.
async fn sample_lag(
    render: waybill_query_api::MetricsRender,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new(3).context("histogram")?;
    while !*stop.borrow() {
        let text = render();
        if let Some(seconds) = text.lines().find_map(|line| {
            let rest = line.strip_prefix("waybill_projector_lag_seconds{")?;
            rest.contains("view=\"tracking\"")
                .then(|| rest.rsplit(' ').next()?.parse::<f64>().ok())
                .flatten()
        }) {
            let _ = h.record((seconds.max(0.0) * 1_000_000.0) as u64);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(h)
}

async fn measure(
    pool: &PgPool,
    accepted: u64,
    lag: Histogram<u64>,
) -> anyhow::Result<LifecycleRun> {
    let (events, first, last): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT count(*), min(recorded_at), max(recorded_at) FROM events")
            .fetch_one(pool)
            .await?;
    type PlacedClosed = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    let rows: Vec<PlacedClosed> = sqlx::query_as(
        "SELECT min(recorded_at) FILTER (WHERE event_type = 'OrderPlaced'), \
                min(recorded_at) FILTER (WHERE event_type = 'OrderClosed') \
         FROM events WHERE stream_id LIKE 'order-%' GROUP BY stream_id",
    )
    .fetch_all(pool)
    .await?;
    let mut latency = Histogram::<u64>::new(3).context("histogram")?;
    let mut first_placed: Option<DateTime<Utc>> = None;
    let mut last_closed: Option<DateTime<Utc>> = None;
    let mut closed = 0u64;
    for (placed, close) in rows {
        first_placed = first_placed.min(placed).or(placed).or(first_placed);
        if let (Some(p), Some(c)) = (placed, close) {
            closed += 1;
            last_closed = last_closed.max(Some(c));
            let _ =
                latency.record(u64::try_from((c - p).num_microseconds().unwrap_or(0)).unwrap_or(0));
        }
    }
    let span = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| match (a, b) {
        (Some(a), Some(b)) if b > a => (b - a).num_milliseconds() as f64 / 1_000.0,
        _ => 0.0,
    };
    let per_sec = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let events = u64::try_from(events).unwrap_or(0);
    Ok(LifecycleRun {
        accepted,
        closed,
        lifecycles_per_sec: per_sec(closed, span(first_placed, last_closed)),
        events,
        events_per_sec: per_sec(events, span(first, last)),
        placed_to_closed_ms: Percentiles::ms_of(&latency),
        lag_samples: lag.len(),
        tracking_lag_ms: Percentiles::ms_of(&lag),
    })
}
