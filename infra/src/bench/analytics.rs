//! `waybill bench analytics`: the ClickHouse read side, three measurements in one run on a
//! scratch environment (Postgres database, JetStream stream, Redis prefix and ClickHouse
//! databases that are removed afterwards):
//!
//! 1. view lag at a paced rate: orders are offered over HTTP at `--rate`/s (open loop) with
//!    command API, relay, projectors and query API in-process; every accepted order is polled for
//!    in `order_facts` and its lag is the time from the 201 to its first sighting;
//! 2. ingest: a second copy of the analytics view (its own durable consumer and database) reads
//!    the whole stream from the start; rows/s is what it wrote over the time it took, beside the
//!    baseline of inserting the same rows into ClickHouse directly (no NATS, no runtime);
//! 3. query latency over `--synthetic-orders` bulk-inserted orders (30 days, a capture each,
//!    refunds, lost chargebacks, fees, one day's settlement report with awkward lines): the
//!    finance summary, time-in-stage metrics, a reconciliation run of one day and its report,
//!    beside the baseline of the same summary aggregation without FINAL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Days, NaiveDate, Utc};
use clickhouse::Row;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};
use waybill_projectors::reconciliation::run_reconciliation;
use waybill_projectors::runtime::{run_projector, ProjectorConfig};
use waybill_projectors::views::analytics::{AnalyticsProjection, AnalyticsStore, BATCH, LINGER};
use waybill_projectors::warehouse::finance::{DateRange, Finance, Page, SummaryFilter};
use waybill_projectors::warehouse::rows::{
    days, insert_rows, seconds, LedgerEntryRow, LineFactRow, OrderFactRow, SettlementLineRow,
};
use waybill_projectors::warehouse::{migrate, WarehouseConfig};

use super::cpu::{self, CpuReport};
use super::roles::{self, Role};
use super::svg::{bars, Bar};
use super::{Scratch, PLACEMENT_PARTS};
use crate::client::ApiClient;
use crate::config::{BenchAnalyticsArgs, Settings};
use crate::orders::OrderFactory;
use crate::secrets::Secrets;
use crate::shutdown::Shutdown;

#[derive(Debug, Serialize)]
struct LagReport {
    offered_rate: u32,
    achieved_rate: f64,
    accepted: u64,
    rejected: u64,
    seen: u64,
    missing: u64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    goal_p99_below_5s: bool,
}

#[derive(Debug, Serialize)]
struct IngestReport {
    events: u64,
    rows_written: u64,
    seconds: f64,
    projector_rows_per_s: f64,
    baseline_rows: u64,
    baseline_seconds: f64,
    baseline_direct_insert_rows_per_s: f64,
}

#[derive(Debug, Serialize)]
struct QueryTiming {
    /// Short label for the chart.
    label: String,
    name: String,
    rows: usize,
    p50_ms: f64,
    max_ms: f64,
    goal_below_1s: bool,
}

#[derive(Debug, Serialize)]
struct AnalyticsReport {
    run: String,
    clickhouse: String,
    lag: LagReport,
    ingest: IngestReport,
    synthetic_orders: usize,
    synthetic_rows: u64,
    load_seconds: f64,
    queries: Vec<QueryTiming>,
    /// CPU per accepted order per process while orders were offered and polled for.
    lag_cpu: CpuReport,
    /// CPU per row written per process while the second analytics view read the stream.
    ingest_cpu: CpuReport,
    /// CPU per query per process over the timed queries (each repetition of each query).
    queries_cpu: CpuReport,
}

pub async fn analytics(settings: &Settings, args: &BenchAnalyticsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.orders > 0 && args.rate > 0 && args.clients > 0 && args.repetitions > 0,
        "--orders, --rate, --clients and --repetitions must be positive"
    );
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let render = crate::metrics::install()?;
    let scratch = Scratch::new(settings, &run);
    let (settings, secrets) = scratch.settings(settings, &run);
    let base = settings.warehouse.config();
    let extra: Vec<WarehouseConfig> = ["ingest", "direct", "queries"]
        .iter()
        .map(|suffix| base.with_database(format!("{}_{suffix}", base.database)))
        .collect();
    let outcome = run_all(&settings, &secrets, args, &run, render, &extra).await;
    if args.keep {
        eprintln!(
            "kept database/stream/ClickHouse databases named after {}",
            scratch.database_name()
        );
    } else {
        for warehouse in &extra {
            let _ = waybill_projectors::warehouse::drop_database(warehouse).await;
        }
        if let Err(error) = scratch.remove(&settings).await {
            eprintln!("cleaning up the scratch environment failed: {error:#}");
        }
    }
    let report = outcome?;
    print_report(&report);
    let svg_path = crate::bench::report::write_with_chart(&args.out, &report, &chart(&report))?;
    cpu::write_chart(
        &args.out,
        &svg_path,
        "bench analytics: CPU per unit by process",
        &[
            ("view lag", &report.lag_cpu),
            ("ingest", &report.ingest_cpu),
            ("queries", &report.queries_cpu),
        ],
    )?;
    Ok(())
}

async fn run_all(
    settings: &Settings,
    secrets: &Secrets,
    args: &BenchAnalyticsArgs,
    run: &str,
    render: waybill_query_api::MetricsRender,
    extra: &[WarehouseConfig],
) -> anyhow::Result<AnalyticsReport> {
    let pool = crate::migrate::migrate(&settings.database_url).await?;
    let warehouse = settings.warehouse.config();
    crate::migrate::migrate_warehouse(&warehouse).await?;
    let clickhouse_version: String = warehouse
        .client()
        .query("SELECT version()")
        .fetch_one()
        .await
        .context("asking ClickHouse its version")?;

    let shutdown = Shutdown::new();
    let running = roles::start(settings, secrets, PLACEMENT_PARTS, &shutdown).await?;
    let command = running.command_addr.context("command API did not start")?;
    let query = running.query_addr.context("query API did not start")?;
    let key = secrets.client_key.clone().context("no client key")?;
    let client = ApiClient::new(command, query, key, args.clients)?;
    client.wait_ready(Duration::from_secs(30)).await?;

    eprintln!(
        "bench analytics (run {run}): {} orders offered at {}/s",
        args.orders, args.rate
    );
    let before = cpu::Snapshot::start();
    let lag = paced_lag(&client, &warehouse, args, run).await?;
    let lag_cpu = cpu::Snapshot::take().since(&before, "order", lag.accepted);
    shutdown.trigger();
    running.wait().await?;

    eprintln!("ingest: a second analytics view reads the stream from the start");
    let (ingest, ingest_cpu) =
        ingest(settings, pool, &render, &extra[0], &extra[1], lag.accepted).await?;

    eprintln!(
        "queries: bulk-inserting {} synthetic orders",
        args.synthetic_orders
    );
    let queries_db = &extra[2];
    migrate(queries_db).await?;
    let today = Utc::now().date_naive();
    let loaded = Instant::now();
    let synthetic_rows = load_synthetic(queries_db, args.synthetic_orders, today).await?;
    let load_seconds = loaded.elapsed().as_secs_f64();
    let before = cpu::Snapshot::start();
    let queries = time_queries(queries_db, settings, today, args.repetitions).await?;
    let queries_cpu =
        cpu::Snapshot::take().since(&before, "query", (queries.len() * args.repetitions) as u64);

    Ok(AnalyticsReport {
        run: run.to_owned(),
        clickhouse: clickhouse_version,
        lag,
        ingest,
        synthetic_orders: args.synthetic_orders,
        synthetic_rows,
        load_seconds,
        queries,
        lag_cpu,
        ingest_cpu,
        queries_cpu,
    })
}

#[derive(Debug, Row, Deserialize)]
struct Seen {
    order_id: String,
}

/// Offers orders at the configured rate; measures 201 → first row in `order_facts`.
async fn paced_lag(
    client: &ApiClient,
    warehouse: &WarehouseConfig,
    args: &BenchAnalyticsArgs,
    run: &str,
) -> anyhow::Result<LagReport> {
    let mut factory = OrderFactory::new(0xa11a, run.to_owned());
    let bodies: Vec<serde_json::Value> = (0..args.orders).map(|n| factory.order(n)).collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let sampler_client = warehouse.client();
    let sampler = tokio::spawn(async move {
        let mut lag = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).expect("bounds");
        let mut pending: HashMap<String, Instant> = HashMap::new();
        let mut closed_at: Option<Instant> = None;
        let missing = loop {
            loop {
                match rx.try_recv() {
                    Ok((id, at)) => {
                        pending.insert(id, at);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed_at.get_or_insert_with(Instant::now);
                        break;
                    }
                }
            }
            let ids: Vec<String> = pending.keys().cloned().collect();
            for chunk in ids.chunks(2_000) {
                let list = chunk
                    .iter()
                    .map(|id| format!("'{id}'"))
                    .collect::<Vec<_>>()
                    .join(",");
                let seen: Vec<Seen> = sampler_client
                    .query(&format!(
                        "SELECT DISTINCT order_id FROM order_facts WHERE order_id IN ({list})"
                    ))
                    .fetch_all()
                    .await
                    .unwrap_or_default();
                let now = Instant::now();
                for s in seen {
                    if let Some(at) = pending.remove(&s.order_id) {
                        let ms = now.duration_since(at).as_millis().max(1);
                        let _ = lag.record(u64::try_from(ms).unwrap_or(u64::MAX));
                    }
                }
            }
            if let Some(closed) = closed_at {
                if pending.is_empty() || closed.elapsed() > Duration::from_secs(120) {
                    break pending.len() as u64;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        (lag, missing)
    });

    let gate = Arc::new(Semaphore::new(args.clients));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, body) in bodies.into_iter().enumerate() {
        tokio::time::sleep_until((started + interval * n as u32).into()).await;
        let permit = gate.clone().acquire_owned().await.context("semaphore")?;
        let client = client.clone();
        let tx = tx.clone();
        let key = format!("bench-analytics-{run}-{n}");
        tasks.spawn(async move {
            let response = client.place(&body, &key).await;
            drop(permit);
            match response {
                Ok(r) if r.status == reqwest::StatusCode::CREATED => {
                    if let Some(id) = r.body["order_id"].as_str() {
                        let _ = tx.send((id.to_owned(), Instant::now()));
                    }
                    true
                }
                _ => false,
            }
        });
    }
    drop(tx);
    let mut accepted = 0u64;
    let mut rejected = 0u64;
    while let Some(done) = tasks.join_next().await {
        if done.unwrap_or(false) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    let placing = started.elapsed().as_secs_f64();
    eprintln!("placed {accepted} in {placing:.1}s; waiting for the last rows");
    let (lag, missing) = sampler.await.context("lag sampler")?;
    let p = |q: f64| lag.value_at_quantile(q) as f64;
    Ok(LagReport {
        offered_rate: args.rate,
        achieved_rate: accepted as f64 / placing,
        accepted,
        rejected,
        seen: lag.len(),
        missing,
        p50_ms: p(0.5),
        p95_ms: p(0.95),
        p99_ms: p(0.99),
        max_ms: lag.max() as f64,
        goal_p99_below_5s: p(0.99) < 5_000.0 && missing == 0,
    })
}

/// The value of a counter in the Prometheus text exposition.
fn counter(render: &waybill_query_api::MetricsRender, name: &str) -> u64 {
    render()
        .lines()
        .find(|line| line.starts_with(name) && !line.starts_with('#'))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[derive(Debug, Row, Deserialize)]
struct Count {
    n: u64,
}

async fn ingest(
    settings: &Settings,
    pool: sqlx::PgPool,
    render: &waybill_query_api::MetricsRender,
    ingest_db: &WarehouseConfig,
    direct_db: &WarehouseConfig,
    orders: u64,
) -> anyhow::Result<(IngestReport, CpuReport)> {
    migrate(ingest_db).await?;
    migrate(direct_db).await?;
    let nats = settings.nats_connection("bench")?.connect().await?;
    let js = async_nats::jetstream::new(nats);
    let stream_info = js
        .get_stream(&settings.nats_stream)
        .await
        .context("the scratch stream")?
        .info()
        .await
        .context("stream info")?
        .state
        .messages;
    let config = ProjectorConfig {
        batch: BATCH,
        linger: LINGER,
        ..ProjectorConfig::new(
            &settings.nats_stream,
            &settings.subject_root,
            &settings.redis_prefix,
        )
    };
    let name = format!("analytics_bench_{}", settings.subject_root);
    let view = AnalyticsProjection::named(AnalyticsStore::new(ingest_db.client()), name);
    let before = counter(render, "waybill_analytics_rows_written_total");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let cpu_before = cpu::Snapshot::start();
    let started = Instant::now();
    // On the services' runtime: the view's CPU is Waybill's, not the bench's.
    let task = Role::Services
        .handle()
        .spawn(run_projector(config, pool, js, view, async {
            let _ = stopped.await;
        }));
    let client = ingest_db.client();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let seen: Count = client
            .query("SELECT count() AS n FROM order_facts FINAL")
            .fetch_one()
            .await
            .context("counting ingested orders")?;
        if seen.n >= orders {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "ingest stalled at {} of {orders} orders",
            seen.n
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rows = counter(render, "waybill_analytics_rows_written_total").saturating_sub(before);
    let cpu = cpu::Snapshot::take().since(&cpu_before, "row", rows);
    let _ = stop.send(());
    let _ = task.await;

    // Baseline: the same final rows straight into ClickHouse, one insert per table.
    let facts: Vec<OrderFactRow> = client
        .query("SELECT ?fields FROM order_facts FINAL")
        .fetch_all()
        .await?;
    let lines: Vec<LineFactRow> = client
        .query("SELECT ?fields FROM line_facts FINAL")
        .fetch_all()
        .await?;
    let direct = direct_db.client();
    let timer = Instant::now();
    insert_rows(&direct, "order_facts", &facts).await?;
    insert_rows(&direct, "line_facts", &lines).await?;
    let baseline_seconds = timer.elapsed().as_secs_f64();
    let baseline_rows = (facts.len() + lines.len()) as u64;
    let report = IngestReport {
        events: stream_info,
        rows_written: rows,
        seconds: elapsed,
        projector_rows_per_s: rows as f64 / elapsed,
        baseline_rows,
        baseline_seconds,
        baseline_direct_insert_rows_per_s: baseline_rows as f64 / baseline_seconds,
    };
    Ok((report, cpu))
}

const CHANNELS: [&str; 4] = ["web", "app", "pos", "marketplace"];
const SPREAD_DAYS: u64 = 30;

/// Synthetic warehouse rows for `orders` orders over the 30 days ending `today`: a fact, a
/// line, a capture and a fee each, a refund every 10th, a lost chargeback every 100th; the last
/// day's captures in a settlement report with awkward lines (every 500th missing, every 499th a
/// cent off, every 997th with another fee, every 1000th twice). Returns the rows inserted.
async fn load_synthetic(
    warehouse: &WarehouseConfig,
    orders: usize,
    today: NaiveDate,
) -> anyhow::Result<u64> {
    let client = warehouse.client();
    let first = today - Days::new(SPREAD_DAYS - 1);
    let fee = waybill_projectors::reconciliation::FeeSchedule::default();
    let usd = waybill_schemas::Currency::parse("USD")?;
    let mut total = 0u64;
    for start in (0..orders).step_by(100_000) {
        let end = (start + 100_000).min(orders);
        let mut facts = Vec::with_capacity(end - start);
        let mut lines = Vec::with_capacity(end - start);
        let mut ledger = Vec::with_capacity(2 * (end - start));
        let mut report = Vec::new();
        for i in start..end {
            let day = first + Days::new(i as u64 % SPREAD_DAYS);
            let placed = seconds(day.and_hms_opt(8, 0, 0).unwrap_or_default().and_utc())
                + (i % 36_000) as u32;
            let id = format!("{:08x}-0000-7000-8000-{:012x}", i / 1_000_000, i);
            let channel = CHANNELS[i % 4].to_owned();
            let amount = 1_000 + (i % 9_000) as i64;
            facts.push(OrderFactRow {
                order_id: id.clone(),
                channel: channel.clone(),
                currency: "USD".into(),
                status: "captured".into(),
                line_count: 1,
                item_count: 1,
                subtotal: amount,
                discount_total: 0,
                tax_total: 0,
                shipping_total: 0,
                grand_total: amount,
                authorized: amount,
                captured: amount,
                refunded: 0,
                chargebacks_lost: 0,
                placed_at: placed,
                risk_assessed_at: Some(placed + 1),
                reserved_at: Some(placed + 2),
                authorized_at: Some(placed + 3 + (i % 5) as u32),
                confirmed_at: Some(placed + 10),
                captured_at: Some(placed + 12 + (i % 7) as u32),
                cancelled_at: None,
                cancel_reason: String::new(),
                version: 7,
            });
            lines.push(LineFactRow {
                order_id: id.clone(),
                line_no: 1,
                sku: format!("SKU-{}", i % 500),
                channel: channel.clone(),
                currency: "USD".into(),
                quantity: 1,
                unit_price: amount,
                discount: 0,
                tax: 0,
                total: amount,
                placed_at: placed,
                version: 7,
            });
            let entry =
                |suffix: &str, kind: &str, txn: String, amount: i64, ch: &str| LedgerEntryRow {
                    entry_id: format!("{id}:{suffix}"),
                    order_id: id.clone(),
                    kind: kind.into(),
                    gateway_txn_id: txn,
                    channel: ch.to_owned(),
                    currency: "USD".into(),
                    amount,
                    occurred_at: placed + 12,
                    day: days(day),
                    version: 7,
                };
            let capture_fee = fee.capture_fee(amount, usd);
            ledger.push(entry("c", "capture", format!("cap_{i}"), amount, &channel));
            // The projector gives a fee its order's channel when it writes it.
            ledger.push(entry("f", "fee", format!("cap_{i}"), capture_fee, &channel));
            if i % 10 == 0 {
                ledger.push(entry(
                    "r",
                    "refund",
                    format!("re_{i}"),
                    amount / 4,
                    &channel,
                ));
            }
            if i % 100 == 0 {
                ledger.push(entry(
                    "l",
                    "chargeback_lost",
                    format!("dp_{i}"),
                    amount,
                    &channel,
                ));
            }
            if day == today && i % 500 != 0 {
                let gross = if i % 499 == 0 { amount + 1 } else { amount };
                let line_fee = if i % 997 == 0 {
                    capture_fee + 25
                } else {
                    capture_fee
                };
                let copies = if i % 1_000 == 0 { 2 } else { 1 };
                for _ in 0..copies {
                    report.push(SettlementLineRow {
                        report_id: "bench-report".into(),
                        line_no: u32::try_from(report.len() + 1 + start).unwrap_or(u32::MAX),
                        gateway_txn_id: format!("cap_{i}"),
                        kind: "capture".into(),
                        order_id: id.clone(),
                        currency: "USD".into(),
                        gross,
                        fee: line_fee,
                        net: gross - line_fee,
                        original_currency: String::new(),
                        original_amount: 0,
                        payout_id: format!("po_{today}"),
                        transaction_date: days(day),
                        settled_date: days(day),
                        version: 1,
                    });
                }
            }
        }
        insert_rows(&client, "order_facts", &facts).await?;
        insert_rows(&client, "line_facts", &lines).await?;
        insert_rows(&client, "ledger_entries", &ledger).await?;
        insert_rows(&client, "settlement_lines", &report).await?;
        total += (facts.len() + lines.len() + ledger.len() + report.len()) as u64;
        eprintln!("  {end} orders loaded");
    }
    Ok(total)
}

async fn timed<T, F, Fut>(repetitions: usize, mut query: F) -> anyhow::Result<(Vec<f64>, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut times = Vec::with_capacity(repetitions);
    let mut last = None;
    for _ in 0..repetitions {
        let start = Instant::now();
        last = Some(query().await?);
        times.push(start.elapsed().as_secs_f64() * 1_000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((times, last.context("no repetition")?))
}

fn timing(label: &str, name: &str, rows: usize, times: &[f64]) -> QueryTiming {
    let p50 = times[times.len() / 2];
    let max = times[times.len() - 1];
    QueryTiming {
        label: label.to_owned(),
        name: name.to_owned(),
        rows,
        p50_ms: p50,
        max_ms: max,
        goal_below_1s: p50 < 1_000.0,
    }
}

#[derive(Debug, Row, Deserialize)]
struct RawSummary {
    day: u16,
    channel: String,
    orders: u64,
    gross: i64,
}

async fn time_queries(
    warehouse: &WarehouseConfig,
    settings: &Settings,
    today: NaiveDate,
    repetitions: usize,
) -> anyhow::Result<Vec<QueryTiming>> {
    let finance = Finance::new(warehouse.client());
    let month = DateRange {
        from: today - Days::new(SPREAD_DAYS - 1),
        to: today,
    };
    let day = DateRange {
        from: today,
        to: today,
    };
    let page = Page {
        limit: 1_000,
        offset: 0,
    };
    let mut out = Vec::new();

    let (times, rows) = timed(repetitions, || async {
        Ok(finance
            .daily_summary(month, &SummaryFilter::default(), page)
            .await?)
    })
    .await?;
    out.push(timing(
        "summary 30 d",
        "finance summary, 30 days (FINAL)",
        rows.len(),
        &times,
    ));

    let client = warehouse.client();
    let (times, rows) = timed(repetitions, || async {
        let rows: Vec<RawSummary> = client
            .query(&format!(
                "SELECT toDate(placed_at) AS day, channel, count() AS orders, \
                   sum(grand_total) AS gross FROM order_facts \
                 WHERE toDate(placed_at) BETWEEN toDate('{}') AND toDate('{}') \
                 GROUP BY day, channel ORDER BY day, channel",
                month.from, month.to
            ))
            .fetch_all()
            .await?;
        Ok(rows)
    })
    .await?;
    let _ = rows.first().map(|r| (r.day, &r.channel, r.orders, r.gross));
    out.push(timing(
        "baseline",
        "baseline: orders per day without FINAL",
        rows.len(),
        &times,
    ));

    let (times, rows) = timed(repetitions, || async {
        Ok(finance.time_in_stage(month).await?)
    })
    .await?;
    out.push(timing(
        "stages 30 d",
        "time in stage p50/p95, 30 days",
        rows.len(),
        &times,
    ));

    let fees = &settings.warehouse.fees();
    let mut version = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    let (times, report) = timed(repetitions, || {
        version += 1;
        let v = version;
        async move { Ok(run_reconciliation(warehouse, today, today, fees, v).await?) }
    })
    .await?;
    out.push(timing(
        "reconcile 1 d",
        "reconciliation run, 1 day",
        report.outcomes.values().sum::<u64>() as usize,
        &times,
    ));

    let (times, rows) = timed(repetitions, || async {
        let items = finance
            .reconciliation(
                day,
                &[
                    "missing_in_report",
                    "missing_in_ledger",
                    "amount_mismatch",
                    "fee_mismatch",
                    "duplicate",
                ],
                page,
            )
            .await?;
        let totals = finance.reconciliation_totals(day).await?;
        Ok(items.len() + totals.len())
    })
    .await?;
    out.push(timing(
        "recon. report",
        "reconciliation report, 1 day",
        rows,
        &times,
    ));
    Ok(out)
}

fn print_report(report: &AnalyticsReport) {
    let l = &report.lag;
    println!(
        "view lag at {}/s offered ({:.0}/s achieved, {} orders): p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms, missing {} (goal p99 < 5 s: {})",
        l.offered_rate, l.achieved_rate, l.accepted, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.missing, l.goal_p99_below_5s
    );
    let i = &report.ingest;
    println!(
        "ingest: projector {:.0} rows/s ({} rows from {} events in {:.2} s); baseline direct insert {:.0} rows/s",
        i.projector_rows_per_s, i.rows_written, i.events, i.seconds, i.baseline_direct_insert_rows_per_s
    );
    println!(
        "queries over {} synthetic orders ({} rows, loaded in {:.1} s), ClickHouse {}:",
        report.synthetic_orders, report.synthetic_rows, report.load_seconds, report.clickhouse
    );
    for q in &report.queries {
        println!(
            "  {:<42} p50 {:>8.1} ms  max {:>8.1} ms  rows {:>6}",
            q.name, q.p50_ms, q.max_ms, q.rows
        );
    }
    print!("{}", report.lag_cpu.table("view lag, paced orders"));
    print!("{}", report.ingest_cpu.table("ingest"));
    print!("{}", report.queries_cpu.table("queries"));
}

fn chart(report: &AnalyticsReport) -> String {
    let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
    let query_bars: Vec<Bar<'_>> = report
        .queries
        .iter()
        .enumerate()
        .map(|(i, q)| Bar {
            label: &q.label,
            value: q.p50_ms,
            note: format!("p50, max {:.0} ms ({})", q.max_ms, q.name),
            color: colors[i % colors.len()],
        })
        .collect();
    bars(
        &format!(
            "Finance queries over {} orders (ClickHouse {}); lag p99 {:.0} ms at {}/s; ingest {:.0} rows/s (direct {:.0})",
            report.synthetic_orders,
            report.clickhouse,
            report.lag.p99_ms,
            report.lag.offered_rate,
            report.ingest.projector_rows_per_s,
            report.ingest.baseline_direct_insert_rows_per_s
        ),
        "ms",
        &query_bars,
    )
}
