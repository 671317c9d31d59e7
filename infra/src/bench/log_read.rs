//! `waybill bench log-read`: how fast a rebuild or a catch-up reads the whole event log. Fills a
//! scratch database with N events (every one carrying a real `OrderPlaced` payload, the largest
//! event, five versions per order), then reads the log to the end through
//! `EventStore::log_pages` (keyset pages on the `events_log_order` index, fetched ahead and
//! decoded into envelopes on several cores, as a rebuild gets them) on the services runtime,
//! decodes each into its typed event (what a view folds), and reports events/s and CPU per
//! event per process. Three baselines in the same run: the same pages read one at a time with
//! `EventStore::read_all_page` (fetch, decode, then the next: how rebuilds read before), one
//! streaming `SELECT *` of the table (what Postgres and the driver deliver without paging or
//! decoding), and a few pages of the statement `read_all_page` ran
//! before the index (`cursor IS NULL OR (...) > cursor`, which sorts the table for every page),
//! started half way through the log. Writes a JSON report with a bar chart and the CPU chart
//! beside it.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::Row;
use waybill_write_side::domain::{parse_place_order, Order, OrderCommand};
use waybill_write_side::event_store::{EventStore, ReadAllCursor, READ_AHEAD};

use super::cpu::{self, CpuReport};
use super::roles::Role;
use super::svg::{self, Bar};
use super::Scratch;
use crate::config::{BenchLogReadArgs, Settings};
use crate::orders::OrderFactory;
use crate::progress::LogProgress;

/// The goal for reading the log.
const GOAL_EVENTS_PER_SEC: f64 = 50_000.0;
/// Versions per generated order stream.
pub(super) const VERSIONS: i64 = 5;
/// Distinct payloads the generated events cycle through.
const PAYLOADS: usize = 64;
/// Rows per fill statement.
const FILL_CHUNK: usize = 100_000;

/// The statement `read_all_page` ran before migration 0007, kept as the baseline.
const SORTED_PAGE: &str = "SELECT * FROM events WHERE $1::timestamptz IS NULL \
     OR (recorded_at, stream_id, stream_version) > ($1, $2::text, $3::bigint) \
     ORDER BY recorded_at, stream_id, stream_version LIMIT $4";

#[derive(Debug, Serialize)]
struct Pass {
    events: u64,
    pages: u64,
    seconds: f64,
    events_per_sec: f64,
}

impl Pass {
    fn new(events: u64, pages: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-6);
        Self {
            events,
            pages,
            seconds,
            events_per_sec: events as f64 / seconds,
        }
    }
}

#[derive(Debug, Serialize)]
struct LogReadReport {
    bench: &'static str,
    events: u64,
    page: i64,
    payload_bytes_avg: f64,
    /// Whether the payloads' personal fields were stored sealed (`--sealed`), so each read
    /// opened them.
    sealed: bool,
    /// The keyset read of the whole log, decoded into envelopes (`log_pages`).
    keyset: Pass,
    keyset_cpu: CpuReport,
    /// The same pages one at a time (`read_all_page`).
    baseline_one_at_a_time: Pass,
    baseline_one_at_a_time_cpu: CpuReport,
    /// One streaming `SELECT *` of the table, rows not decoded.
    baseline_scan: Pass,
    baseline_scan_cpu: CpuReport,
    /// The pre-index statement, a few pages from the middle of the log.
    baseline_sorted_pages: Pass,
    goal_events_per_sec: f64,
    goal_met: bool,
}

pub async fn log_read(settings: &Settings, args: &BenchLogReadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events > 0 && args.page > 0,
        "--events and --page must be positive"
    );
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let scratch = Scratch::new(settings, &run);
    let (scratch_settings, _) = scratch.settings(settings, &run);
    let outcome = run_bench(&scratch_settings.database_url, args).await;
    if args.keep {
        eprintln!("kept database {}", scratch.database_name());
    } else if let Err(error) = scratch.remove(&scratch_settings).await {
        eprintln!("cleaning up the scratch environment failed: {error:#}");
    }
    let report = outcome?;

    println!("{}", table(&report));
    let svg_path = crate::bench::report::write_with_chart(&args.out, &report, &chart(&report))?;
    cpu::write_chart(
        &args.out,
        &svg_path,
        &format!(
            "bench log-read: CPU per event by process, {} events",
            report.events
        ),
        &[
            ("keyset pages", &report.keyset_cpu),
            ("one page at a time", &report.baseline_one_at_a_time_cpu),
            ("SELECT * (baseline)", &report.baseline_scan_cpu),
        ],
    )
}

async fn run_bench(database_url: &str, args: &BenchLogReadArgs) -> anyhow::Result<LogReadReport> {
    let pool = crate::migrate::migrate(database_url).await?;
    let payload_bytes_avg = fill(&pool, args.events, args.sealed).await?;
    let events = EventStore::new(pool.clone());
    let total = events.count().await.context("counting events")?.max(0) as u64;

    eprintln!("keyset read of {total} events, {} per page", args.page);
    let before = cpu::Snapshot::start();
    let page = args.page;
    let reader = events.clone();
    // On the services runtime: its CPU is the `waybill services` row.
    let (read, pages, elapsed) = Role::Services
        .handle()
        .spawn(async move { read_all(&reader, page, total).await })
        .await
        .context("the reader panicked")??;
    let keyset_cpu = cpu::Snapshot::take().since(&before, "event", read);
    let keyset = Pass::new(read, pages, elapsed);
    anyhow::ensure!(
        read == total,
        "the keyset read returned {read} of {total} events"
    );

    eprintln!("baseline: the same pages one at a time (read_all_page)");
    let before = cpu::Snapshot::start();
    let reader = events.clone();
    let (read, pages, elapsed) = Role::Services
        .handle()
        .spawn(async move { read_one_at_a_time(&reader, page, total).await })
        .await
        .context("the reader panicked")??;
    let baseline_one_at_a_time_cpu = cpu::Snapshot::take().since(&before, "event", read);
    let baseline_one_at_a_time = Pass::new(read, pages, elapsed);

    eprintln!("baseline: one streaming SELECT * of the table");
    let before = cpu::Snapshot::start();
    let started = Instant::now();
    let scanned = sqlx::query("SELECT * FROM events")
        .fetch(&pool)
        .try_fold(0u64, |n, _| async move { Ok(n + 1) })
        .await
        .context("scanning the table")?;
    let baseline_scan = Pass::new(scanned, 1, started.elapsed());
    let baseline_scan_cpu = cpu::Snapshot::take().since(&before, "event", scanned);

    eprintln!(
        "baseline: {} pages of the pre-index statement from the middle of the log",
        args.sorted_pages
    );
    let baseline_sorted_pages = sorted_pages(&pool, total, args).await?;

    Ok(LogReadReport {
        bench: "log-read",
        events: total,
        page: args.page,
        payload_bytes_avg,
        sealed: args.sealed,
        goal_met: keyset.events_per_sec >= GOAL_EVENTS_PER_SEC,
        keyset,
        keyset_cpu,
        baseline_one_at_a_time,
        baseline_one_at_a_time_cpu,
        baseline_scan,
        baseline_scan_cpu,
        baseline_sorted_pages,
        goal_events_per_sec: GOAL_EVENTS_PER_SEC,
    })
}

/// Reads the log to its end in pages of `page`: (events, pages, time taken).
async fn read_all(
    events: &EventStore,
    page: i64,
    total: u64,
) -> anyhow::Result<(u64, u64, Duration)> {
    let mut progress = LogProgress::new("log-read", total);
    let started = Instant::now();
    let (mut read, mut pages) = (0u64, 0u64);
    let mut log = events.log_pages(None, page, READ_AHEAD, None);
    while let Some(batch) = log.next().await {
        let batch = batch.context("reading a page of the log")?;
        decode_all(&batch)?;
        read += batch.len() as u64;
        pages += 1;
        progress.update(read);
    }
    let elapsed = started.elapsed();
    progress.finish(read);
    Ok((read, pages, elapsed))
}

/// Decodes every envelope of a page into its typed event, as each view of a rebuild does before
/// folding it: the read is measured up to what a view consumes.
fn decode_all(batch: &[waybill_schemas::EventEnvelope]) -> anyhow::Result<()> {
    for envelope in batch {
        envelope
            .decode()
            .with_context(|| format!("{} v{}", envelope.stream_id, envelope.stream_version))?;
    }
    Ok(())
}

/// The baseline: [`read_all`]'s pages read one at a time, each fetched and decoded before the
/// next is asked for.
async fn read_one_at_a_time(
    events: &EventStore,
    page: i64,
    total: u64,
) -> anyhow::Result<(u64, u64, Duration)> {
    let mut progress = LogProgress::new("one-at-a-time", total);
    let started = Instant::now();
    let (mut read, mut pages) = (0u64, 0u64);
    let mut cursor: Option<ReadAllCursor> = None;
    loop {
        let (batch, next) = events
            .read_all_page(cursor.take(), page)
            .await
            .context("reading a page of the log")?;
        decode_all(&batch)?;
        read += batch.len() as u64;
        pages += 1;
        progress.update(read);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let elapsed = started.elapsed();
    progress.finish(read);
    Ok((read, pages, elapsed))
}

/// Times `--sorted-pages` pages of [`SORTED_PAGE`] from the cursor half way through the log.
async fn sorted_pages(
    pool: &sqlx::PgPool,
    total: u64,
    args: &BenchLogReadArgs,
) -> anyhow::Result<Pass> {
    let middle: Option<(chrono::DateTime<Utc>, String, i64)> = sqlx::query_as(
        "SELECT recorded_at, stream_id, stream_version FROM events \
         ORDER BY recorded_at, stream_id, stream_version OFFSET $1 LIMIT 1",
    )
    .bind(i64::try_from(total / 2).unwrap_or(0))
    .fetch_optional(pool)
    .await
    .context("finding the middle of the log")?;
    let mut cursor = middle.map(|(recorded_at, stream_id, stream_version)| ReadAllCursor {
        recorded_at,
        stream_id,
        stream_version,
    });
    let started = Instant::now();
    let (mut read, mut pages) = (0u64, 0u64);
    for _ in 0..args.sorted_pages {
        let (at, stream, version) = match &cursor {
            Some(c) => (
                Some(c.recorded_at),
                Some(c.stream_id.clone()),
                Some(c.stream_version),
            ),
            None => (None, None, None),
        };
        let rows = sqlx::query(SORTED_PAGE)
            .bind(at)
            .bind(stream)
            .bind(version)
            .bind(args.page)
            .fetch_all(pool)
            .await
            .context("reading a page with the pre-index statement")?;
        read += rows.len() as u64;
        pages += 1;
        match rows.last() {
            Some(last) => {
                cursor = Some(ReadAllCursor {
                    recorded_at: last.try_get("recorded_at")?,
                    stream_id: last.try_get("stream_id")?,
                    stream_version: last.try_get("stream_version")?,
                })
            }
            None => break,
        }
    }
    Ok(Pass::new(read, pages, started.elapsed()))
}

/// Fills the log with `n` events: order streams of [`VERSIONS`] events, recorded a microsecond
/// apart, payloads from real placements, their personal fields sealed under one data key per
/// payload when `sealed` (as the event store stores a placement). Returns the average payload
/// size in bytes.
pub(super) async fn fill(pool: &sqlx::PgPool, n: u64, sealed: bool) -> anyhow::Result<f64> {
    let mut payloads = placed_payloads()?;
    if sealed {
        seal(pool, &mut payloads).await?;
    }
    let avg =
        payloads.iter().map(|p| p.to_string().len()).sum::<usize>() as f64 / payloads.len() as f64;
    let payloads: Vec<sqlx::types::Json<serde_json::Value>> =
        payloads.into_iter().map(sqlx::types::Json).collect();
    let mut progress = LogProgress::new("fill", n);
    let mut from = 0u64;
    while from < n {
        let to = (from + FILL_CHUNK as u64).min(n);
        sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, \
             schema_version, occurred_at, recorded_at, correlation_id, actor_kind, actor_id, \
             channel, payload) \
             SELECT 'order-' || md5(((i - 1) / $3)::text)::uuid, (i - 1) % $3 + 1, \
                    gen_random_uuid(), 'OrderPlaced', $6, $4, $4 + make_interval(secs => i / 1e6), \
                    gen_random_uuid(), 'service', 'bench', 'web', \
                    ($5::jsonb[])[1 + ((i - 1) / $3) % array_length($5::jsonb[], 1)] \
             FROM generate_series($1::bigint, $2::bigint) AS i",
        )
        .bind(i64::try_from(from + 1).unwrap_or(i64::MAX))
        .bind(i64::try_from(to).unwrap_or(i64::MAX))
        .bind(VERSIONS)
        .bind(Utc::now() - chrono::Duration::days(1))
        .bind(&payloads)
        .bind(waybill_schemas::OrderEventKind::OrderPlaced.current_version())
        .execute(pool)
        .await
        .context("filling the scratch log")?;
        from = to;
        progress.update(from);
    }
    progress.finish(from);
    sqlx::query("ANALYZE events")
        .execute(pool)
        .await
        .context("analyzing the scratch log")?;
    Ok(avg)
}

/// Seals the personal fields of each of `payloads` under a data key of its own (made in the key
/// store of `pool`'s database, as a first order of a customer makes one).
async fn seal(pool: &sqlx::PgPool, payloads: &mut [serde_json::Value]) -> anyhow::Result<()> {
    use waybill_write_side::pii::{self, fields, KeyStore as _};
    let store = pii::key_store().context("no master key of personal data installed")?;
    let subjects: Vec<String> = (0..payloads.len())
        .map(|n| fields::customer_subject(&format!("bench-log-read-{n}")))
        .collect();
    let mut conn = pool.acquire().await.context("connecting to seal")?;
    let keys = store
        .live_keys(&mut conn, &subjects)
        .await
        .context("making the data keys")?;
    for (payload, subject) in payloads.iter_mut().zip(&subjects) {
        let key = keys.get(subject).context("a data key was not made")?;
        fields::seal("OrderPlaced", payload, key.key_id, &key.key);
    }
    Ok(())
}

/// `OrderPlaced` payloads decided by the domain from the bench's order factory.
fn placed_payloads() -> anyhow::Result<Vec<serde_json::Value>> {
    let mut factory = OrderFactory::new(13, "log-read");
    (0..PAYLOADS)
        .map(|n| {
            let order = parse_place_order(&factory.order(n))
                .map_err(|e| anyhow::anyhow!("the order factory made an invalid order: {e:?}"))?;
            let events = Order::default()
                .handle(
                    &OrderCommand::Place {
                        order_id: waybill_schemas::OrderId::new_v7(),
                        order: Box::new(order),
                    },
                    Utc::now(),
                )
                .map_err(|e| anyhow::anyhow!("placement refused the factory's order: {e:?}"))?;
            events
                .first()
                .map(|e| e.to_payload().to_value())
                .context("placement decided no event")
        })
        .collect()
}

fn table(report: &LogReadReport) -> String {
    let row = |name: &str, pass: &Pass| {
        format!(
            "{name:<34} {:>10} events {:>7} pages {:>8.2} s {:>10.0} events/s\n",
            pass.events, pass.pages, pass.seconds, pass.events_per_sec
        )
    };
    let mut out = format!(
        "bench log-read: {} events, {} per page, payload {:.0} B on average{}\n",
        report.events,
        report.page,
        report.payload_bytes_avg,
        if report.sealed {
            ", personal fields sealed (opened on read)"
        } else {
            ""
        }
    );
    out.push_str(&row("keyset pages (log_pages)", &report.keyset));
    out.push_str(&row(
        "baseline: pages one at a time",
        &report.baseline_one_at_a_time,
    ));
    out.push_str(&row("baseline: one SELECT * stream", &report.baseline_scan));
    out.push_str(&row(
        "baseline: pre-index sorted pages",
        &report.baseline_sorted_pages,
    ));
    out.push_str(&format!(
        "goal ≥ {:.0} events/s: {}\n",
        report.goal_events_per_sec,
        if report.goal_met { "met" } else { "NOT met" }
    ));
    out.push_str(&report.keyset_cpu.table("CPU per event, keyset read"));
    out
}

fn chart(report: &LogReadReport) -> String {
    let bar = |label, pass: &Pass, color| Bar {
        label,
        value: pass.events_per_sec,
        note: format!(
            "{:.0} events/s ({} events)",
            pass.events_per_sec, pass.events
        ),
        color,
    };
    svg::bars(
        &format!(
            "bench log-read: reading {} events (goal ≥ {:.0}/s)",
            report.events, report.goal_events_per_sec
        ),
        "events/s",
        &[
            bar("keyset pages", &report.keyset, "#2b7a3d"),
            bar(
                "one page at a time",
                &report.baseline_one_at_a_time,
                "#b7791f",
            ),
            bar("SELECT * stream", &report.baseline_scan, "#6b7280"),
            bar("pre-index pages", &report.baseline_sorted_pages, "#b42318"),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_payloads_decode_into_their_typed_events() {
        for payload in placed_payloads().unwrap() {
            let stored = waybill_schemas::Payload::from_value(&payload);
            let version = waybill_schemas::OrderEventKind::OrderPlaced.current_version();
            let decoded =
                waybill_schemas::OrderEvent::decode_payload("OrderPlaced", version, &stored);
            assert!(decoded.is_ok(), "{decoded:?}\n{payload:#}");
        }
    }
}
