//! `waybill bench lifecycle`: card orders from placement to delivery and close, beside the
//! checkout flow alone for the same orders, each on a scratch environment of its own. The
//! lifecycle phase runs once per `--runs` mode (by default the old way, one
//! transaction per fulfillment step and per webhook, then rounds + webhook group commit), so
//! both are measured side by side in one invocation; the report has a run per mode, where each
//! lifecycle's time went (the gaps between its stages), the worker's and webhooks' batch sizes
//! and the CPU used, and a chart (`lifecycle.svg`) of closes per second and tracking lag.
//!
//! The lifecycle phase runs the command API, relay, projectors, query API, checkout and
//! fulfillment workers in this process, with the payment sandbox and the logistics sandbox
//! (simulated WMS + carrier). A driver acts as every node and the carrier: it packs each WMS
//! task it sees and scans each labelled parcel as delivered, through the sandbox's driver
//! endpoints (signed webhooks into Waybill). `WAYBILL_AUTO_CLOSE_DAYS` is 0 so a delivered order
//! closes at once: a lifecycle is complete at its (first) `OrderClosed`. A share of the closed
//! orders (`--return-share`, default 0.2) then sends a unit back (`lifecycle_returns`: return,
//! node receipt and inspection, restock, refund); the run ends once every order closed and
//! every return was refunded. Throughput and latency are read
//! from the event store afterwards; tracking lag is the projector's
//! `waybill_projector_lag_seconds{view="tracking"}` gauge, sampled every 100 ms during the run.
//!
//! `--external` runs one lifecycle run on services already running (the cluster stack, from
//! `infra/scripts/capacity.sh`) instead: see [`external_lifecycle`]. Every count and time of a
//! run, in either mode, is of the orders the run placed ([`RunOrders`]).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::checkout::{api_client, finish_scratch, order_bodies, seed_stock, start, whole_flow};
use super::checkout_report::{metric, CheckoutRun};
use super::cpu::{self, CpuReport};
use super::lag::Accepted;
use super::lifecycle_returns::{self, ReturnsRun};
use super::report::Percentiles;
use super::svg::{self, Series};
use super::{load, Scratch, PLACEMENT_PARTS};
use crate::client::ApiClient;
use crate::config::{BenchCheckoutArgs, BenchLifecycleArgs, FulfillmentCommit, Settings};
use crate::secrets::Secrets;
use crate::services::Part;
use crate::shutdown::Shutdown;

#[derive(Debug, Serialize)]
struct LifecycleReport {
    orders: usize,
    clients: usize,
    /// The checkout flow alone (fulfillment worker off), same orders, own scratch environment.
    baseline_checkout: Option<CheckoutRun>,
    /// One run per fulfillment commit mode, each on its own scratch environment.
    runs: Vec<LifecycleRun>,
}

#[derive(Debug, Serialize)]
struct LifecycleRun {
    /// `per-step` (one transaction per step and per webhook) or `rounds`.
    fulfillment_commit: String,
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
    /// Where a lifecycle's time goes: per order, the time from one stage to the next.
    stages: Vec<StageGap>,
    fulfillment: FulfillmentStats,
    /// CPU per closed lifecycle per process, from the first placement until every order
    /// closed and every return was refunded (or the deadline).
    cpu: CpuReport,
    timeline: Vec<LifecycleSecond>,
    /// The share of orders sent back after closing: opened, refunded, request → refund.
    returns: ReturnsRun,
}

/// The time from one stage of an order to the next, over the closed orders.
#[derive(Debug, Serialize)]
struct StageGap {
    from: &'static str,
    to: &'static str,
    ms: Percentiles,
}

/// One second of a lifecycle run, counted from its first placement.
#[derive(Debug, Serialize)]
struct LifecycleSecond {
    second: usize,
    placed: u64,
    closed: u64,
    /// Highest tracking lag sampled in this second, in ms.
    tracking_lag_max_ms: Option<f64>,
}

/// The fulfillment side's own numbers over a run, from the process's metrics.
#[derive(Debug, Default, Serialize)]
struct FulfillmentStats {
    flows_claimed: f64,
    /// Transactions appending fulfillment events (worker rounds or steps, webhooks).
    appends: f64,
    mean_orders_per_append: f64,
    webhook_batches: f64,
    mean_webhooks_per_batch: f64,
    webhook_batch_fallbacks: f64,
    round_conflicts: f64,
    mean_webhook_ms: f64,
    serialization_retries: f64,
}

impl FulfillmentStats {
    fn between(before: &str, after: &str) -> Self {
        let delta = |name: &str| metric(after, name) - metric(before, name);
        let mean = |sum: f64, count: f64| if count > 0.0 { sum / count } else { 0.0 };
        let appends = delta("waybill_fulfillment_append_orders_count");
        let batches = delta("waybill_logistics_webhook_batch_size_count");
        Self {
            flows_claimed: delta("waybill_fulfillment_flows_claimed_total"),
            appends,
            mean_orders_per_append: mean(delta("waybill_fulfillment_append_orders_sum"), appends),
            webhook_batches: batches,
            mean_webhooks_per_batch: mean(
                delta("waybill_logistics_webhook_batch_size_sum"),
                batches,
            ),
            webhook_batch_fallbacks: delta("waybill_logistics_webhook_batch_fallbacks_total"),
            round_conflicts: delta("waybill_fulfillment_round_conflicts_total"),
            mean_webhook_ms: mean(
                delta("waybill_logistics_webhook_duration_seconds_sum"),
                delta("waybill_logistics_webhook_duration_seconds_count"),
            ) * 1_000.0,
            serialization_retries: delta("waybill_serialization_retries_total"),
        }
    }
}

/// The stages of a delivered lifecycle, in order, by the event that marks each.
const STAGES: [(&str, &str); 8] = [
    ("placed", "OrderPlaced"),
    ("confirmed", "OrderConfirmed"),
    ("routed", "FulfillmentRouted"),
    ("submitted", "FulfillmentSubmitted"),
    ("packed", "FulfillmentProgressed"),
    ("shipped", "ShipmentCreated"),
    ("delivered", "ShipmentTracked"),
    ("closed", "OrderClosed"),
];

pub async fn lifecycle(settings: &Settings, args: &BenchLifecycleArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.orders > 0 && args.clients > 0,
        "--orders and --clients must be positive"
    );
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let render = crate::metrics::install()?;
    let bodies = order_bodies(&run, args.orders)?;
    if args.external {
        eprintln!(
            "bench lifecycle --external: placement → delivery → close on the running services, {} orders, {} clients",
            args.orders, args.clients
        );
        let mut outcome = external_lifecycle(settings, &run, args, &bodies).await?;
        outcome.fulfillment_commit = "as deployed".to_owned();
        return finish(args, None, vec![outcome]);
    }

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

    let modes = if args.runs.is_empty() {
        vec![FulfillmentCommit::PerStep, FulfillmentCommit::Rounds]
    } else {
        args.runs.clone()
    };
    let mut runs = Vec::with_capacity(modes.len());
    for (i, mode) in modes.iter().enumerate() {
        let scratch = Scratch::new(settings, &format!("{run}_lc{i}"));
        let mut settings = settings.clone();
        settings.fulfillment.fulfillment_commit = *mode;
        eprintln!(
            "bench lifecycle, lifecycle run {}/{}: placement → delivery → close, fulfillment commit {}, {} orders, {} clients",
            i + 1,
            modes.len(),
            commit_name(*mode),
            args.orders,
            args.clients
        );
        let outcome =
            whole_lifecycle(&settings, &scratch, run.as_str(), args, &bodies, &render).await;
        finish_scratch(&settings, &scratch, args.keep).await;
        let mut outcome = outcome?;
        outcome.fulfillment_commit = commit_name(*mode).to_owned();
        runs.push(outcome);
    }
    finish(args, baseline, runs)
}

/// Prints the runs and writes the report and its charts.
fn finish(
    args: &BenchLifecycleArgs,
    baseline: Option<CheckoutRun>,
    runs: Vec<LifecycleRun>,
) -> anyhow::Result<()> {
    let report = LifecycleReport {
        orders: args.orders,
        clients: args.clients,
        baseline_checkout: baseline,
        runs,
    };
    for l in &report.runs {
        println!(
            "lifecycle ({}): {}/{} closed, {:.0} lifecycles/s, {} events at {:.0} events/s, placed→closed p50 {:.0} ms p99 {:.0} ms, tracking lag p50 {:.0} ms p99 {:.0} ms (max {:.0}, {} samples), {:.1} orders per fulfillment append",
            l.fulfillment_commit, l.closed, l.accepted, l.lifecycles_per_sec, l.events, l.events_per_sec,
            l.placed_to_closed_ms.p50, l.placed_to_closed_ms.p99, l.tracking_lag_ms.p50, l.tracking_lag_ms.p99,
            l.tracking_lag_ms.max, l.lag_samples, l.fulfillment.mean_orders_per_append
        );
        println!(
            "  returns ({}): {}/{} opened, {} refunded, return request → refund p50 {:.0} ms p99 {:.0} ms",
            l.fulfillment_commit, l.returns.opened, l.returns.expected, l.returns.refunded,
            l.returns.requested_to_refunded_ms.p50, l.returns.requested_to_refunded_ms.p99
        );
        print!(
            "{}",
            l.cpu.table(&format!("lifecycle, {}", l.fulfillment_commit))
        );
    }
    if let Some(b) = &report.baseline_checkout {
        println!(
            "baseline checkout only: {:.0} confirmed/s, {:.0} captured/s, placed→captured p99 {:.0} ms",
            b.confirmed_per_sec, b.captured_per_sec, b.placed_to_captured_ms.p99
        );
        print!("{}", b.cpu.table("baseline checkout only"));
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let chart = args.out.with_extension("svg");
    std::fs::write(&chart, report.chart())
        .with_context(|| format!("writing {}", chart.display()))?;
    let names: Vec<String> = report
        .runs
        .iter()
        .map(|r| format!("lifecycle, {}", r.fulfillment_commit))
        .collect();
    let mut windows: Vec<(&str, &CpuReport)> = names
        .iter()
        .map(String::as_str)
        .zip(report.runs.iter().map(|r| &r.cpu))
        .collect();
    if let Some(b) = &report.baseline_checkout {
        windows.push(("checkout only", &b.cpu));
    }
    cpu::write_chart(
        &args.out,
        &chart,
        &format!(
            "bench lifecycle: CPU per unit by process, {} orders",
            args.orders
        ),
        &windows,
    )?;
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
    seed_stock(&pool, args.orders, run).await?;
    settings.fulfillment.auto_close_days = 0.0;

    let shutdown = Shutdown::new();
    let api = start(&settings, &secrets, PLACEMENT_PARTS, &shutdown).await?;
    let command = api.command_addr.context("command API did not start")?;
    settings.checkout.payment_webhook_url = Some(format!("http://{command}/v1/webhooks/payments"));
    settings.fulfillment.logistics_webhook_base = Some(format!("http://{command}"));
    // Each sandbox on its own runtime, so its CPU has a row of its own.
    let payment = start(&settings, &secrets, &[Part::PaymentSandbox], &shutdown).await?;
    let wms = start(&settings, &secrets, &[Part::LogisticsSandbox], &shutdown).await?;
    let gateway = payment
        .payment_sandbox_addr
        .context("payment sandbox did not start")?;
    let logistics = wms
        .logistics_sandbox_addr
        .context("logistics sandbox did not start")?;
    settings.checkout.payment_gateway_url = format!("http://{gateway}");
    settings.fulfillment.wms_url = format!("http://{logistics}");
    settings.fulfillment.carrier_url = format!("http://{logistics}");
    let workers = start(
        &settings,
        &secrets,
        &[Part::Checkout, Part::Fulfillment],
        &shutdown,
    )
    .await?;

    let client = api_client(&api, &secrets, args.clients)?;
    let metrics = MetricsSource::InProcess(render.clone());
    let outcome = drive(
        &pool,
        client,
        run,
        args,
        bodies,
        &metrics,
        &format!("http://{logistics}"),
    )
    .await;
    shutdown.trigger();
    let stopped = [
        api.wait().await,
        payment.wait().await,
        wms.wait().await,
        workers.wait().await,
    ];
    pool.close().await;
    let result = outcome?;
    for r in stopped {
        r?;
    }
    Ok(result)
}

/// The lifecycle on services already running (`--external`, the cluster stack): placements
/// through `WAYBILL_COMMAND_ADDR` with a key of `WAYBILL_API_KEYS`, stock seeded into
/// `DATABASE_URL` under a warehouse of its own, the nodes and the carrier acted through
/// `--sandbox-url`, the tracking lag and fulfillment counters read from `--metrics-url` pages.
/// The stack must close delivered orders at once (`WAYBILL_AUTO_CLOSE_DAYS=0`). Every count
/// is of this run's orders only; the processes' CPU is metered from outside (capacity.sh).
async fn external_lifecycle(
    settings: &Settings,
    run: &str,
    args: &BenchLifecycleArgs,
    bodies: &[bytes::Bytes],
) -> anyhow::Result<LifecycleRun> {
    let sandbox = args
        .sandbox_url
        .clone()
        .context("--external needs --sandbox-url (the stack's logistics sandbox)")?;
    let secrets = Secrets::resolve(settings)?;
    let key = secrets
        .client_key
        .clone()
        .context("WAYBILL_API_KEYS has no key with role service, agent or admin for the bench")?;
    let client = ApiClient::new(
        settings.command_addr,
        settings.query_addr,
        key,
        args.clients,
    )?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&settings.database_url)
        .await
        .context("connecting to DATABASE_URL")?;
    seed_stock(&pool, args.orders, run).await?;
    let metrics = MetricsSource::Scraped {
        client: client.clone(),
        urls: args.metrics_url.clone(),
    };
    let outcome = drive(&pool, client, run, args, bodies, &metrics, &sandbox).await;
    pool.close().await;
    outcome
}

/// The order streams a run placed, added as the command API accepts them: every count and time
/// of the run is of these only, so a run on a database with other orders (`--external`)
/// measures its own.
#[derive(Default)]
pub struct RunOrders {
    streams: std::sync::Mutex<Vec<String>>,
}

impl RunOrders {
    /// Collects the accepted orders `load` reports until it stops sending.
    fn collect(self: Arc<Self>, mut accepted: mpsc::UnboundedReceiver<Accepted>) -> JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(order) = accepted.recv().await {
                self.lock().push(format!("order-{}", order.order_id));
            }
        })
    }

    /// The streams accepted so far.
    pub fn streams(&self) -> Vec<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where the run's metrics come from: this process's registry, or the running services'
/// `/metrics` pages read one after another (counters add up over them).
#[derive(Clone)]
enum MetricsSource {
    InProcess(waybill_query_api::MetricsRender),
    Scraped {
        client: ApiClient,
        urls: Vec<String>,
    },
}

impl MetricsSource {
    async fn text(&self) -> String {
        match self {
            Self::InProcess(render) => render(),
            Self::Scraped { client, urls } => {
                let mut text = String::new();
                for url in urls {
                    match client.get_text(url).await {
                        Ok(page) => text.push_str(&page),
                        Err(error) => tracing::debug!(%url, %error, "metrics page not read"),
                    }
                    text.push('\n');
                }
                text
            }
        }
    }
}

async fn drive(
    pool: &PgPool,
    client: ApiClient,
    run: &str,
    args: &BenchLifecycleArgs,
    bodies: &[bytes::Bytes],
    metrics: &MetricsSource,
    sandbox: &str,
) -> anyhow::Result<LifecycleRun> {
    let orders = Arc::new(RunOrders::default());
    client.wait_ready(Duration::from_secs(30)).await?;
    let since: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
    let metrics_before = metrics.text().await;
    let cpu_before = cpu::Snapshot::start();
    let (stop_tx, stop_rx) = watch::channel(false);
    let node = tokio::spawn(act_as_nodes_and_carrier(
        client.clone(),
        sandbox.to_owned(),
        sandbox_cursors(&client, sandbox).await?,
        stop_rx.clone(),
    ));
    let lag = tokio::spawn(sample_lag(metrics.clone(), stop_rx.clone()));
    let customers = tokio::spawn(lifecycle_returns::act_as_returning_customers(
        pool.clone(),
        client.clone(),
        sandbox.to_owned(),
        args.return_share,
        orders.clone(),
        stop_rx,
    ));

    let placed = Arc::new(AtomicU64::new(0));
    let (accepted_tx, accepted_rx) = mpsc::unbounded_channel();
    let collected = orders.clone().collect(accepted_rx);
    let load = load::run_bodies(
        &client,
        bodies.to_vec(),
        args.clients,
        run,
        accepted_tx,
        placed,
        false,
    )
    .await?;
    collected.await.context("collecting the accepted orders")?;
    let accepted = load.accepted;
    let expected_returns = lifecycle_returns::expected_returns(accepted, args.return_share);
    let deadline = Instant::now() + Duration::from_secs(args.deadline_secs);
    let started = Instant::now();
    loop {
        let closed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE event_type = 'OrderClosed' AND stream_id = ANY($1)",
        )
        .bind(orders.streams())
        .fetch_one(pool)
        .await?;
        let refunded = lifecycle_returns::refunded(pool, &orders).await?;
        eprintln!(
            "  {:>5.1}s after the load: {closed}/{accepted} closed, {refunded}/{expected_returns} returns refunded",
            started.elapsed().as_secs_f64()
        );
        // A returned order closes twice (delivered, then again once its return is refunded).
        let done = u64::try_from(closed).unwrap_or(0) >= accepted + expected_returns
            && refunded >= expected_returns;
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let cpu_after = cpu::Snapshot::take();
    let fulfillment = FulfillmentStats::between(&metrics_before, &metrics.text().await);
    let _ = stop_tx.send(true);
    node.await.context("driver panicked")??;
    let lag = lag.await.context("lag sampler panicked")??;
    let opened = customers.await.context("returning customers panicked")??;
    let window = Window {
        orders: &orders,
        since,
        cpu: (&cpu_before, &cpu_after),
    };
    let mut run = measure(pool, &window, accepted, &lag, fulfillment).await?;
    run.returns = lifecycle_returns::measure(pool, &orders, expected_returns, opened).await?;
    Ok(run)
}

/// The drivers' requests in flight at once: enough for webhooks to arrive together.
const DRIVER_CONCURRENCY: usize = 64;

/// Packs every WMS task and delivers every parcel, as nodes and the carrier would. Lists only
/// what is new since the last look (`after`); a report Waybill did not take is sent again.
async fn act_as_nodes_and_carrier(
    client: ApiClient,
    sandbox: String,
    (mut tasks_seen, mut parcels_seen): (usize, usize),
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut to_pack: Vec<String> = Vec::new();
    let mut to_deliver: Vec<String> = Vec::new();
    while !*stop.borrow() {
        let tasks = client
            .get_json(&format!("{sandbox}/sandbox/tasks?after={tasks_seen}"))
            .await?;
        let new: Vec<String> = tasks["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["fulfillment_id"].as_str().map(str::to_owned))
            .collect();
        tasks_seen += new.len();
        to_pack.extend(new);
        to_pack = send_all(&client, std::mem::take(&mut to_pack), |id| {
            (
                format!("{sandbox}/sandbox/nodes/{id}/report"),
                json!({"type": "packed"}),
            )
        })
        .await;

        let parcels = client
            .get_json(&format!("{sandbox}/sandbox/parcels?after={parcels_seen}"))
            .await?;
        let new: Vec<String> = parcels["parcels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["tracking_number"].as_str().map(str::to_owned))
            .collect();
        parcels_seen += new.len();
        to_deliver.extend(new);
        // 409: the label's append has not landed yet; scanned again next round.
        to_deliver = send_all(&client, std::mem::take(&mut to_deliver), |tracking| {
            (
                format!("{sandbox}/sandbox/parcels/{tracking}/scan"),
                json!({"status_code": "DL", "received_by": "bench"}),
            )
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// How many WMS tasks and parcels the sandbox already has before the run places anything: the
/// driver starts past them, so a sandbox that served other orders (`--external`) is no
/// concern of the run's.
async fn sandbox_cursors(client: &ApiClient, sandbox: &str) -> anyhow::Result<(usize, usize)> {
    let count = |page: Value, key: &str| page[key].as_array().map_or(0, Vec::len);
    let tasks = client.get_json(&format!("{sandbox}/sandbox/tasks")).await?;
    let parcels = client
        .get_json(&format!("{sandbox}/sandbox/parcels"))
        .await?;
    Ok((count(tasks, "tasks"), count(parcels, "parcels")))
}

/// Posts one driver request per id, concurrently; returns the ids Waybill did not take.
async fn send_all(
    client: &ApiClient,
    ids: Vec<String>,
    request: impl Fn(&str) -> (String, Value),
) -> Vec<String> {
    futures::stream::iter(ids)
        .map(|id| {
            let (url, body) = request(&id);
            async move {
                let answer = client.post_json_plain(&url, &body).await;
                let taken = answer.is_ok_and(|a: Value| a["waybill_status"] == json!(200));
                (!taken).then_some(id)
            }
        })
        .buffer_unordered(DRIVER_CONCURRENCY)
        .filter_map(|left| async move { left })
        .collect()
        .await
}

/// Samples the tracking projector's lag gauge every 100 ms until told to stop: (when, ms), the
/// highest over the processes when several project tracking.
async fn sample_lag(
    metrics: MetricsSource,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<(DateTime<Utc>, f64)>> {
    let mut samples = Vec::new();
    while !*stop.borrow() {
        let text = metrics.text().await;
        if let Some(seconds) = text
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("waybill_projector_lag_seconds{")?;
                rest.contains("view=\"tracking\"")
                    .then(|| rest.rsplit(' ').next()?.parse::<f64>().ok())
                    .flatten()
            })
            .reduce(f64::max)
        {
            samples.push((Utc::now(), seconds.max(0.0) * 1_000.0));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(samples)
}

/// What a run's measurement covers: its orders, the time it started (by the database's clock)
/// and the CPU snapshots around it.
struct Window<'a> {
    orders: &'a RunOrders,
    since: DateTime<Utc>,
    cpu: (&'a cpu::Snapshot, &'a cpu::Snapshot),
}

async fn measure(
    pool: &PgPool,
    window: &Window<'_>,
    accepted: u64,
    lag_samples: &[(DateTime<Utc>, f64)],
    fulfillment: FulfillmentStats,
) -> anyhow::Result<LifecycleRun> {
    // Every event appended since the run began (on a shared database, others' too).
    let (events, first, last): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT count(*), min(recorded_at), max(recorded_at) FROM events WHERE recorded_at >= $1",
        )
        .bind(window.since)
        .fetch_one(pool)
        .await?;
    let columns: Vec<String> = STAGES
        .iter()
        .map(|(_, event)| format!("min(recorded_at) FILTER (WHERE event_type = '{event}')"))
        .collect();
    let sql = format!(
        "SELECT ARRAY[{}] FROM events WHERE stream_id = ANY($1) GROUP BY stream_id",
        columns.join(", ")
    );
    let rows: Vec<(Vec<Option<DateTime<Utc>>>,)> = sqlx::query_as(&sql)
        .bind(window.orders.streams())
        .fetch_all(pool)
        .await?;
    let mut latency = Histogram::<u64>::new(3).context("histogram")?;
    let mut gaps: Vec<Histogram<u64>> = (1..STAGES.len())
        .map(|_| Histogram::<u64>::new(3))
        .collect::<Result<_, _>>()
        .context("histogram")?;
    let micros = |a: DateTime<Utc>, b: DateTime<Utc>| {
        u64::try_from((b - a).num_microseconds().unwrap_or(0)).unwrap_or(0)
    };
    let mut first_placed: Option<DateTime<Utc>> = None;
    let mut last_closed: Option<DateTime<Utc>> = None;
    let mut closed = 0u64;
    let mut placed_at: Vec<DateTime<Utc>> = Vec::with_capacity(rows.len());
    let mut closed_at: Vec<DateTime<Utc>> = Vec::with_capacity(rows.len());
    for (times,) in rows {
        let placed = times.first().copied().flatten();
        let close = times.last().copied().flatten();
        first_placed = first_placed.min(placed).or(placed).or(first_placed);
        placed_at.extend(placed);
        if let (Some(p), Some(c)) = (placed, close) {
            closed += 1;
            closed_at.push(c);
            last_closed = last_closed.max(Some(c));
            let _ = latency.record(micros(p, c));
            for (k, pair) in times.windows(2).enumerate() {
                if let [Some(a), Some(b)] = pair {
                    let _ = gaps[k].record(micros(*a, *b));
                }
            }
        }
    }
    let span = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| match (a, b) {
        (Some(a), Some(b)) if b > a => (b - a).num_milliseconds() as f64 / 1_000.0,
        _ => 0.0,
    };
    let per_sec = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let events = u64::try_from(events).unwrap_or(0);
    let mut lag = Histogram::<u64>::new(3).context("histogram")?;
    for (_, ms) in lag_samples {
        let _ = lag.record((ms * 1_000.0) as u64);
    }
    Ok(LifecycleRun {
        fulfillment_commit: String::new(),
        accepted,
        closed,
        lifecycles_per_sec: per_sec(closed, span(first_placed, last_closed)),
        events,
        events_per_sec: per_sec(events, span(first, last)),
        placed_to_closed_ms: Percentiles::ms_of(&latency),
        lag_samples: lag.len(),
        tracking_lag_ms: Percentiles::ms_of(&lag),
        stages: STAGES
            .windows(2)
            .zip(&gaps)
            .map(|(pair, h)| StageGap {
                from: pair[0].0,
                to: pair[1].0,
                ms: Percentiles::ms_of(h),
            })
            .collect(),
        fulfillment,
        cpu: window.cpu.1.since(window.cpu.0, "lifecycle", closed),
        timeline: timeline(first_placed, &placed_at, &closed_at, lag_samples),
        returns: lifecycle_returns::ReturnsRun::none(),
    })
}

/// Placements, closes and the highest sampled tracking lag per second from the first placement.
fn timeline(
    start: Option<DateTime<Utc>>,
    placed: &[DateTime<Utc>],
    closed: &[DateTime<Utc>],
    lag: &[(DateTime<Utc>, f64)],
) -> Vec<LifecycleSecond> {
    let Some(start) = start else {
        return Vec::new();
    };
    let second = |t: DateTime<Utc>| usize::try_from((t - start).num_seconds()).ok();
    let last = placed
        .iter()
        .chain(closed)
        .filter_map(|t| second(*t))
        .max()
        .unwrap_or(0);
    let mut seconds: Vec<LifecycleSecond> = (0..=last)
        .map(|second| LifecycleSecond {
            second,
            placed: 0,
            closed: 0,
            tracking_lag_max_ms: None,
        })
        .collect();
    for s in placed.iter().filter_map(|t| second(*t)) {
        seconds[s].placed += 1;
    }
    for s in closed.iter().filter_map(|t| second(*t)) {
        seconds[s].closed += 1;
    }
    for (at, ms) in lag {
        if let Some(slot) = second(*at).and_then(|s| seconds.get_mut(s)) {
            slot.tracking_lag_max_ms = Some(slot.tracking_lag_max_ms.unwrap_or(0.0).max(*ms));
        }
    }
    seconds
}

fn commit_name(mode: FulfillmentCommit) -> &'static str {
    match mode {
        FulfillmentCommit::PerStep => "per-step",
        FulfillmentCommit::Rounds => "rounds",
    }
}

const COLORS: [&str; 4] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];

impl LifecycleReport {
    /// Closes per second (top) and the tracking lag (bottom) of every run, over time.
    fn chart(&self) -> String {
        let x_max = self
            .runs
            .iter()
            .map(|r| r.timeline.len())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let names: Vec<String> = self
            .runs
            .iter()
            .map(|r| format!("{} ({:.0}/s)", r.fulfillment_commit, r.lifecycles_per_sec))
            .collect();
        let closes: Vec<Series> = self
            .runs
            .iter()
            .zip(&names)
            .zip(COLORS.iter().cycle())
            .map(|((r, name), color)| Series {
                name,
                color,
                points: r
                    .timeline
                    .iter()
                    .map(|s| (s.second as f64 + 0.5, Some(s.closed as f64)))
                    .collect(),
            })
            .collect();
        let lags: Vec<Series> = self
            .runs
            .iter()
            .zip(&names)
            .zip(COLORS.iter().cycle())
            .map(|((r, name), color)| Series {
                name,
                color,
                points: r
                    .timeline
                    .iter()
                    .map(|s| (s.second as f64 + 0.5, s.tracking_lag_max_ms))
                    .collect(),
            })
            .collect();
        let height = svg::TOP + 2.0 * svg::PANEL_HEIGHT + svg::GAP + 50.0;
        let mut out = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{l}" y="20" font-size="14" font-weight="bold">{title}</text>"#,
            w = svg::WIDTH,
            l = svg::LEFT,
            title = svg::escape(&format!(
                "bench lifecycle: {} orders, {} clients (seconds from the first placement)",
                self.orders, self.clients
            )),
        );
        svg::panel(
            &mut out,
            svg::TOP,
            "lifecycles closed per second (goal 500)",
            x_max,
            &closes,
            Some(500.0),
        );
        svg::panel(
            &mut out,
            svg::TOP + svg::PANEL_HEIGHT + svg::GAP,
            "tracking lag, highest sample per second, ms (goal p99 < 200)",
            x_max,
            &lags,
            Some(200.0),
        );
        out.push_str("</svg>\n");
        out
    }
}
