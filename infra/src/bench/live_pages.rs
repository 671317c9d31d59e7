//! `waybill bench live-pages`: many open tracking pages (server-sent events) on one query
//! instance, fed by the tracking view's change announcements.
//!
//! The services run in this process on a scratch environment (command API, relay, projectors,
//! one query API). Orders are placed and their views awaited; then a child process of this
//! binary (`--pages-client`: 10,000 connections and this process's 10,000 would not fit one
//! process's file limit here) opens `--pages` event streams spread evenly over the orders and
//! reports every view event it receives with its arrival time. Measured:
//! 1. CPU of the services while idle with no page open (the baseline), then while idle with
//!    every page open: push costs nothing while nothing changes;
//! 2. update latency: the orders are cancelled one after another (`--interval-ms` apart); each
//!    page's latency runs from its order's `OrderCancelled` append (`recorded_at` in the event
//!    store, same clock) to the page receiving the new view.
//!
//! Writes a JSON report and an SVG chart beside it.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::cpu::{self, CpuReport};
use super::report::Percentiles;
use super::svg::{bars, Bar};
use super::{roles, Scratch};
use crate::client::ApiClient;
use crate::config::{BenchLivePagesArgs, Settings};
use crate::orders::OrderFactory;
use crate::services::Part;
use crate::shutdown::Shutdown;

const PARTS: &[Part] = &[Part::Commands, Part::Relay, Part::Projector, Part::Query];
/// The goal: update latency p99 from the event's append.
const GOAL_P99_MS: f64 = 1_000.0;
/// Pages the client opens at once.
const OPENING: usize = 256;

#[derive(Debug, Serialize)]
pub struct LivePagesReport {
    pub bench: &'static str,
    pub pages: usize,
    pub orders: usize,
    pub pages_open: usize,
    pub idle_seconds: u64,
    pub interval_ms: u64,
    pub note: &'static str,
    /// Services' CPU over the idle window with no page open (the baseline).
    pub idle_without_pages: CpuReport,
    /// Services' CPU over the same window with every page open.
    pub idle_with_pages: CpuReport,
    /// Page updates received / expected.
    pub updates_received: usize,
    pub updates_expected: usize,
    /// From the event's append to the page receiving the view.
    pub update_latency_ms: Percentiles,
    /// CPU while the updates went out, per page update.
    pub updating: CpuReport,
    pub goal_p99_ms: f64,
    pub goal_met: bool,
}

pub async fn live_pages(settings: &Settings, args: &BenchLivePagesArgs) -> anyhow::Result<()> {
    if args.pages_client {
        return pages_client().await;
    }
    anyhow::ensure!(
        args.pages > 0 && args.orders > 0 && args.orders <= args.pages,
        "--pages and --orders must be positive, with at least one page per order"
    );
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    crate::metrics::install()?;
    let scratch = Scratch::new(settings, &run);
    let (mut settings, secrets) = scratch.settings(settings, &run);
    settings.query_live_push = true;
    let outcome = run_bench(&settings, &secrets, args, &run).await;
    if let Err(error) = scratch.remove(&settings).await {
        eprintln!("cleaning up the scratch environment failed: {error:#}");
    }
    let report = outcome?;
    print!("{}", report.idle_without_pages.table("idle, no page open"));
    print!(
        "{}",
        report
            .idle_with_pages
            .table(&format!("idle, {} pages open", report.pages_open))
    );
    print!("{}", report.updating.table("updates going out"));
    println!(
        "{} pages open on one query instance; {} of {} page updates received; latency from the append: p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        report.pages_open,
        report.updates_received,
        report.updates_expected,
        report.update_latency_ms.p50,
        report.update_latency_ms.p95,
        report.update_latency_ms.p99,
        report.update_latency_ms.max
    );
    println!(
        "goal: update p99 < {GOAL_P99_MS} ms with {} pages: {}",
        report.pages,
        if report.goal_met { "met" } else { "NOT met" }
    );
    let svg_path = crate::bench::report::write_with_chart(&args.out, &report, &chart(&report))?;
    cpu::write_chart(
        &args.out,
        &svg_path,
        &format!("bench live-pages: CPU by process, {} pages", report.pages),
        &[
            ("idle, no page", &report.idle_without_pages),
            ("idle, pages open", &report.idle_with_pages),
            ("updates", &report.updating),
        ],
    )?;
    Ok(())
}

async fn run_bench(
    settings: &Settings,
    secrets: &crate::secrets::Secrets,
    args: &BenchLivePagesArgs,
    run: &str,
) -> anyhow::Result<LivePagesReport> {
    let shutdown = Shutdown::new();
    crate::migrate::migrate(&settings.database_url).await?;
    let running = roles::start(settings, secrets, PARTS, &shutdown).await?;
    let command = running.command_addr.context("command API did not start")?;
    let query = running.query_addr.context("query API did not start")?;
    let key = secrets.client_key.clone().context("no client key")?;
    let client = ApiClient::new(command, query, key, 16)?;
    client.wait_ready(Duration::from_secs(30)).await?;
    let pool = crate::migrate::connect(&settings.database_url, 2).await?;

    eprintln!(
        "bench live-pages: placing {} orders (run {run})",
        args.orders
    );
    let mut factory = OrderFactory::new(0x11fe, run.to_owned());
    let mut orders = Vec::with_capacity(args.orders);
    for n in 0..args.orders {
        let placed = client
            .place(&factory.order(n), &format!("bench-live-{run}-{n}"))
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
    let base = format!("http://{query}");
    let http = reqwest::Client::new();
    for (id, token) in &orders {
        let url = format!("{base}/v1/orders/{id}/tracking?token={token}&min_version=1");
        let status = http.get(&url).send().await?.status();
        anyhow::ensure!(status.is_success(), "view of {id}: {status}");
    }

    eprintln!(
        "bench live-pages: services idle, no page open, {} s",
        args.idle_seconds
    );
    let before = cpu::Snapshot::start();
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let idle_without_pages = cpu::Snapshot::take().since(&before, "second", args.idle_seconds);

    // The pages, in a child process: page i follows order i % orders from version 1.
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut child = tokio::process::Command::new(exe)
        .args(["bench", "live-pages", "--pages-client"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the page client")?;
    let mut stdin = child.stdin.take().context("page client stdin")?;
    let mut list = String::new();
    for page in 0..args.pages {
        let (id, token) = &orders[page % orders.len()];
        list.push_str(&format!(
            "{page} {base}/track/{id}/events?token={token}&after=1\n"
        ));
    }
    stdin.write_all(list.as_bytes()).await?;
    drop(stdin);
    let mut lines = BufReader::new(child.stdout.take().context("page client stdout")?).lines();

    eprintln!("bench live-pages: opening {} pages", args.pages);
    let mut open = 0usize;
    let mut failed = 0usize;
    let opening = tokio::time::Instant::now() + Duration::from_secs(180);
    while open + failed < args.pages {
        let line = tokio::time::timeout_at(opening, lines.next_line())
            .await
            .context("pages did not open within 180 s")??
            .context("the page client ended early")?;
        if line.starts_with("open ") {
            open += 1;
        } else if line.starts_with("failed ") {
            failed += 1;
        }
    }
    anyhow::ensure!(open > 0, "no page opened ({failed} failed)");
    eprintln!(
        "bench live-pages: {open} pages open ({failed} failed); idle {} s",
        args.idle_seconds
    );
    let before = cpu::Snapshot::start();
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let idle_with_pages = cpu::Snapshot::take().since(&before, "second", args.idle_seconds);

    // Collect view events from now on.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, i64, u64)>();
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut parts = line.split(' ');
            if parts.next() != Some("event") {
                continue;
            }
            let parsed = (|| {
                Some((
                    parts.next()?.parse().ok()?,
                    parts.next()?.parse().ok()?,
                    parts.next()?.parse().ok()?,
                ))
            })();
            if let Some(event) = parsed {
                if tx.send(event).is_err() {
                    return;
                }
            }
        }
    });

    eprintln!(
        "bench live-pages: cancelling {} orders, {} ms apart",
        orders.len(),
        args.interval_ms
    );
    let before = cpu::Snapshot::start();
    let mut appended: HashMap<usize, u64> = HashMap::new();
    for (n, (id, _)) in orders.iter().enumerate() {
        let response = client
            .cancel(
                id,
                "customer_request",
                &format!("bench-live-cancel-{run}-{n}"),
            )
            .await?;
        anyhow::ensure!(
            response.status.is_success(),
            "cancelling {id}: {}",
            response.status
        );
        let recorded: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            "SELECT recorded_at FROM events WHERE stream_id = $1 AND event_type = 'OrderCancelled'",
        )
        .bind(format!("order-{id}"))
        .fetch_one(&pool)
        .await
        .with_context(|| format!("the OrderCancelled of {id}"))?;
        appended.insert(n, u64::try_from(recorded.timestamp_micros()).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }

    let expected = open;
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut updated = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while updated.len() < expected {
        let Ok(Some((page, version, micros))) = tokio::time::timeout_at(deadline, rx.recv()).await
        else {
            break;
        };
        if version < 2 || !updated.insert(page) {
            continue;
        }
        if let Some(at) = appended.get(&(page % orders.len())) {
            latencies.record(micros.saturating_sub(*at).max(1))?;
        }
    }
    let updating = cpu::Snapshot::take().since(&before, "page update", updated.len() as u64);
    reader.abort();
    let _ = child.kill().await;
    shutdown.trigger();
    running.wait().await?;

    let update_latency_ms = Percentiles::ms_of(&latencies);
    let goal_met =
        updated.len() == expected && open == args.pages && update_latency_ms.p99 < GOAL_P99_MS;
    Ok(LivePagesReport {
        bench: "live-pages",
        pages: args.pages,
        orders: args.orders,
        pages_open: open,
        idle_seconds: args.idle_seconds,
        interval_ms: args.interval_ms,
        note: "services (command API, relay, projectors, one query API) in this process; the \
               pages in a child process on the same cores; latency from the event's \
               recorded_at to the page receiving the view",
        idle_without_pages,
        idle_with_pages,
        updates_received: updated.len(),
        updates_expected: expected,
        update_latency_ms,
        updating,
        goal_p99_ms: GOAL_P99_MS,
        goal_met,
    })
}

/// The child: reads `<page> <url>` lines from stdin, opens every event stream (prints
/// `open <page>` or `failed <page>`), then prints `event <page> <view version> <unix micros>`
/// for every view event received, until killed.
async fn pages_client() -> anyhow::Result<()> {
    let mut input = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut input).await?;
    let pages: Vec<(usize, String)> = input
        .lines()
        .filter_map(|line| {
            let (page, url) = line.split_once(' ')?;
            Some((page.parse().ok()?, url.to_owned()))
        })
        .collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .build()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
        while let Some(line) = rx.recv().await {
            let mut batch = line;
            while let Ok(more) = rx.try_recv() {
                batch.push_str(&more);
            }
            if out.write_all(batch.as_bytes()).await.is_err() || out.flush().await.is_err() {
                return;
            }
        }
    });
    let opening = std::sync::Arc::new(tokio::sync::Semaphore::new(OPENING));
    let mut tasks = tokio::task::JoinSet::new();
    for (page, url) in pages {
        let (http, tx, opening) = (http.clone(), tx.clone(), opening.clone());
        tasks.spawn(async move {
            let permit = opening.acquire_owned().await;
            let response = match http.get(&url).send().await {
                Ok(response) if response.status().is_success() => response,
                Ok(response) => {
                    eprintln!("page {page}: {}", response.status());
                    let _ = tx.send(format!("failed {page}\n"));
                    return;
                }
                Err(error) => {
                    eprintln!("page {page}: {error}");
                    let _ = tx.send(format!("failed {page}\n"));
                    return;
                }
            };
            drop(permit);
            let _ = tx.send(format!("open {page}\n"));
            let mut response = response;
            let mut pending = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                let micros = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros());
                pending.push_str(&String::from_utf8_lossy(&chunk));
                // One SSE event ends with a blank line; its id is the view version.
                while let Some(end) = pending.find("\n\n") {
                    let event: String = pending.drain(..end + 2).collect();
                    if let Some(version) = event
                        .lines()
                        .find_map(|l| l.strip_prefix("id:"))
                        .and_then(|v| v.trim().parse::<i64>().ok())
                    {
                        let _ = tx.send(format!("event {page} {version} {micros}\n"));
                    }
                }
            }
        });
    }
    drop(tx);
    while tasks.join_next().await.is_some() {}
    let _ = writer.await;
    Ok(())
}

fn chart(report: &LivePagesReport) -> String {
    let p = &report.update_latency_ms;
    bars(
        &format!(
            "bench live-pages: update latency from the append, {} pages on one query instance",
            report.pages_open
        ),
        "ms",
        &[
            Bar {
                label: "p50",
                value: p.p50,
                note: format!("{:.1} ms", p.p50),
                color: "#4c78a8",
            },
            Bar {
                label: "p95",
                value: p.p95,
                note: format!("{:.1} ms", p.p95),
                color: "#4c78a8",
            },
            Bar {
                label: "p99",
                value: p.p99,
                note: format!("{:.1} ms (goal < {GOAL_P99_MS} ms)", p.p99),
                color: if report.goal_met {
                    "#54a24b"
                } else {
                    "#e45756"
                },
            },
            Bar {
                label: "max",
                value: p.max,
                note: format!("{:.1} ms", p.max),
                color: "#9d9d9d",
            },
        ],
    )
}
