//! `waybill bench tracking`: the customer read path at a fixed request rate. Places a few hundred
//! orders on a scratch environment (services in this process), waits for their views, then sends
//! open-loop load, one target after the other, at `--rate` requests per second for `--seconds`:
//! 1. `GET /health` of the query API (baseline: the HTTP stack and one Redis PING),
//! 2. `GET /v1/orders/{id}/tracking?token=` (the JSON endpoint),
//! 3. `GET /track/{id}?token=` (the HTML page).
//!
//! Each target first gets `--warmup-seconds` of the same load, not recorded (connection pool,
//! caches).
//!
//! Open loop: request i is due at start + i/rate and its latency counts from then, so a slow
//! server is not hidden by a client that waits (no coordinated omission). Writes a JSON report
//! and an SVG of p50/p99 per second per target.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::cpu::{self, CpuReport};
use super::svg::{escape, panel, Series, GAP, LEFT, PANEL_HEIGHT, RIGHT, TOP, WIDTH};
use super::{roles, Scratch};
use crate::client::ApiClient;
use crate::config::{BenchTrackingArgs, Settings};
use crate::orders::OrderFactory;
use crate::services::Part;
use crate::shutdown::Shutdown;

const PARTS: &[Part] = &[Part::Commands, Part::Relay, Part::Projector, Part::Query];
/// The issue's goal for the JSON endpoint at 2,000 requests/s.
const GOAL_JSON_P99_MS: f64 = 5.0;

#[derive(Debug, Serialize)]
pub struct TrackingBenchReport {
    pub bench: &'static str,
    pub rate_per_sec: u32,
    pub seconds: u64,
    pub warmup_seconds: u64,
    pub orders: usize,
    pub note: &'static str,
    pub goal_json_p99_ms: f64,
    pub goal_met: bool,
    pub targets: Vec<TargetReport>,
}

#[derive(Debug, Serialize)]
pub struct TargetReport {
    pub name: &'static str,
    pub label: &'static str,
    pub path: &'static str,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub achieved_per_sec: f64,
    pub latency_ms: Percentiles,
    pub per_second: Vec<SecondReport>,
    /// CPU per request per process over the recorded seconds.
    pub cpu: Option<CpuReport>,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Serialize)]
pub struct SecondReport {
    pub second: usize,
    pub requests: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Clone, Copy)]
enum Target {
    Health,
    Json,
    Page,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::Health => "baseline GET /health",
            Self::Json => "GET /v1/orders/{id}/tracking",
            Self::Page => "GET /track/{id} (HTML)",
        }
    }
    /// Legend label in the chart.
    fn label(self) -> &'static str {
        match self {
            Self::Health => "/health baseline",
            Self::Json => "JSON tracking",
            Self::Page => "HTML page",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Self::Health => "/health",
            Self::Json => "/v1/orders/{id}/tracking?token=",
            Self::Page => "/track/{id}?token=",
        }
    }
}

pub async fn tracking(settings: &Settings, args: &BenchTrackingArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate > 0 && args.seconds > 0 && args.orders > 0,
        "--rate, --seconds and --orders must be positive"
    );
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    crate::metrics::install()?;
    let scratch = Scratch::new(settings, &run);
    let (settings, secrets) = scratch.settings(settings, &run);
    let outcome = run_bench(&settings, &secrets, args, &run).await;
    if let Err(error) = scratch.remove(&settings).await {
        eprintln!("cleaning up the scratch environment failed: {error:#}");
    }
    let report = outcome?;
    for target in &report.targets {
        println!(
            "{:<32} sent {:>6}  ok {:>6}  errors {:>4}  {:>7.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  max {:>7.2} ms",
            target.name,
            target.sent,
            target.ok,
            target.errors,
            target.achieved_per_sec,
            target.latency_ms.p50,
            target.latency_ms.p99,
            target.latency_ms.p999,
            target.latency_ms.max
        );
        if let Some(cpu) = &target.cpu {
            print!("{}", cpu.table(target.name));
        }
    }
    println!(
        "goal: JSON endpoint p99 < {GOAL_JSON_P99_MS} ms at {}/s: {}",
        args.rate,
        if report.goal_met { "met" } else { "NOT met" }
    );
    let svg_path = crate::bench::report::write_with_chart(&args.out, &report, &chart(&report))?;
    let windows: Vec<(&str, &CpuReport)> = report
        .targets
        .iter()
        .filter_map(|t| Some((t.label, t.cpu.as_ref()?)))
        .collect();
    cpu::write_chart(
        &args.out,
        &svg_path,
        &format!(
            "bench tracking: CPU per request by process, {}/s",
            args.rate
        ),
        &windows,
    )?;
    Ok(())
}

async fn run_bench(
    settings: &Settings,
    secrets: &crate::secrets::Secrets,
    args: &BenchTrackingArgs,
    run: &str,
) -> anyhow::Result<TrackingBenchReport> {
    let shutdown = Shutdown::new();
    crate::migrate::migrate(&settings.database_url).await?;
    let running = roles::start(settings, secrets, PARTS, &shutdown).await?;
    let command = running.command_addr.context("command API did not start")?;
    let query = running.query_addr.context("query API did not start")?;
    let key = secrets.client_key.clone().context("no client key")?;
    let client = ApiClient::new(command, query, key, 64)?;
    client.wait_ready(Duration::from_secs(30)).await?;

    eprintln!("bench tracking: placing {} orders (run {run})", args.orders);
    let mut factory = OrderFactory::new(0x7ac4, run.to_owned());
    let mut orders = Vec::with_capacity(args.orders);
    for n in 0..args.orders {
        let placed = client
            .place(&factory.order(n), &format!("bench-tracking-{run}-{n}"))
            .await?;
        anyhow::ensure!(
            placed.status.is_success(),
            "placing order {n}: {}",
            placed.status
        );
        let id = placed.body["order_id"].as_str().context("order_id")?;
        let token = placed.body["tracking_token"]
            .as_str()
            .context("tracking_token")?;
        orders.push((id.to_owned(), token.to_owned()));
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()?;
    let base = format!("http://{query}");
    // Every view is in Redis before the clock starts.
    for (id, token) in &orders {
        let url = format!("{base}/v1/orders/{id}/tracking?token={token}&min_version=1");
        let status = http.get(&url).send().await?.status();
        anyhow::ensure!(status.is_success(), "view of {id}: {status}");
    }

    let mut targets = Vec::new();
    for target in [Target::Health, Target::Json, Target::Page] {
        eprintln!(
            "bench tracking: {} at {}/s for {} s",
            target.name(),
            args.rate,
            args.seconds
        );
        // Same rate, not recorded: opens the connection pool and warms caches first.
        open_loop(
            &http,
            &base,
            &orders,
            target,
            args.rate,
            args.warmup_seconds,
        )
        .await?;
        let before = cpu::Snapshot::start();
        let mut report = open_loop(&http, &base, &orders, target, args.rate, args.seconds).await?;
        report.cpu = Some(cpu::Snapshot::take().since(&before, "request", report.sent));
        targets.push(report);
    }
    shutdown.trigger();
    running.wait().await?;
    let goal_met = targets
        .iter()
        .find(|t| matches!(t.name, n if n == Target::Json.name()))
        .is_some_and(|t| t.errors == 0 && t.latency_ms.p99 < GOAL_JSON_P99_MS);
    Ok(TrackingBenchReport {
        bench: "tracking",
        rate_per_sec: args.rate,
        seconds: args.seconds,
        warmup_seconds: args.warmup_seconds,
        orders: args.orders,
        note: "load generator, query API, Redis and the idle pipeline share the machine's cores; \
               latency counts from each request's scheduled send time (open loop)",
        goal_json_p99_ms: GOAL_JSON_P99_MS,
        goal_met,
        targets,
    })
}

/// Sends `rate` requests per second for `seconds` at `target`, each on its own task.
async fn open_loop(
    http: &reqwest::Client,
    base: &str,
    orders: &[(String, String)],
    target: Target,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<TargetReport> {
    let total = u64::from(rate) * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Duration, u64, bool)>();
    let start = Instant::now();
    let tokio_start = tokio::time::Instant::now();
    for i in 0..total {
        let due = interval.mul_f64(i as f64);
        tokio::time::sleep_until(tokio_start + due).await;
        let (id, token) = &orders[(i as usize) % orders.len()];
        let url = match target {
            Target::Health => format!("{base}/health"),
            Target::Json => format!("{base}/v1/orders/{id}/tracking?token={token}"),
            Target::Page => format!("{base}/track/{id}?token={token}"),
        };
        let http = http.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let ok = match http.get(&url).send().await {
                Ok(response) => {
                    let status = response.status();
                    response.bytes().await.is_ok() && status.is_success()
                }
                Err(_) => false,
            };
            let latency = start.elapsed().saturating_sub(due);
            let _ = tx.send((due, latency.as_micros() as u64, ok));
        });
    }
    drop(tx);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut per_second: Vec<Histogram<u64>> = Vec::new();
    let (mut ok, mut errors) = (0u64, 0u64);
    while let Some((due, micros, success)) = rx.recv().await {
        let micros = micros.max(1);
        all.record(micros)?;
        let second = due.as_secs() as usize;
        while per_second.len() <= second {
            per_second.push(Histogram::new_with_bounds(1, 60_000_000, 3)?);
        }
        per_second[second].record(micros)?;
        if success {
            ok += 1;
        } else {
            errors += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(TargetReport {
        name: target.name(),
        label: target.label(),
        path: target.path(),
        sent: total,
        ok,
        errors,
        achieved_per_sec: total as f64 / elapsed.max(f64::MIN_POSITIVE),
        latency_ms: Percentiles {
            p50: ms(&all, 0.5),
            p90: ms(&all, 0.9),
            p99: ms(&all, 0.99),
            p999: ms(&all, 0.999),
            max: all.max() as f64 / 1000.0,
        },
        per_second: per_second
            .iter()
            .enumerate()
            .map(|(second, h)| SecondReport {
                second,
                requests: h.len(),
                p50_ms: (!h.is_empty()).then(|| ms(h, 0.5)),
                p99_ms: (!h.is_empty()).then(|| ms(h, 0.99)),
            })
            .collect(),
        cpu: None,
    })
}

fn chart(report: &TrackingBenchReport) -> String {
    const COLORS: [&str; 3] = ["#7f7f7f", "#1f77b4", "#d62728"];
    let x_max = report.seconds.max(1) as f64;
    let series = |quantile_99: bool| -> Vec<Series<'_>> {
        report
            .targets
            .iter()
            .zip(COLORS)
            .map(|(target, color)| Series {
                name: target.label,
                color,
                points: target
                    .per_second
                    .iter()
                    .map(|s| {
                        (
                            s.second as f64 + 0.5,
                            if quantile_99 { s.p99_ms } else { s.p50_ms },
                        )
                    })
                    .collect(),
            })
            .collect()
    };
    let height = TOP + 2.0 * PANEL_HEIGHT + GAP + 50.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    let title = format!(
        "waybill bench tracking: {} requests/s open loop, {} s per target",
        report.rate_per_sec, report.seconds
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="14" font-weight="bold">{}</text>"#,
        escape(&title)
    );
    panel(
        &mut svg,
        TOP,
        "Latency p99 by second (ms); dashed: JSON goal",
        x_max,
        &series(true),
        Some(report.goal_json_p99_ms),
    );
    panel(
        &mut svg,
        TOP + PANEL_HEIGHT + GAP,
        "Latency p50 by second (ms)",
        x_max,
        &series(false),
        None,
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since the target's start</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        height - 12.0
    );
    svg.push_str("</svg>\n");
    svg
}
