//! `waybill bench search`: indexes N synthetic orders (1M by default) into a scratch Tantivy
//! index through the same versioned upsert the search projector uses (one commit per batch),
//! printing progress, then measures agent queries single-threaded: filtered free-text queries
//! (a misspelt surname with a status filter and a 30-day window; an email prefix with a channel
//! filter; a product word with an amount range and `has_exception=false`) beside an
//! unfiltered exact-id query as the baseline, both at 10 % of the index and at the full index.
//! Writes a JSON report and an SVG of the p99s.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, TimeZone, Utc};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use waybill_projectors::views::search::{SearchIndex, SearchQuery, Sort, TantivyIndex};
use waybill_schemas::views::{
    OrderDocument, PaymentState, SearchAddress, SearchCustomer, SearchLine, TrackingStatus,
};
use waybill_schemas::Channel;

use super::cpu::{self, CpuReport};
use super::report::Percentiles;
use super::roles::Role;
use super::svg;
use crate::config::BenchSearchArgs;

/// The goal for filtered free-text queries on 1M orders.
const GOAL_P99_MS: f64 = 20.0;

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Ken",
    "Frances",
    "Donald",
    "Margaret",
    "Katherine",
    "Dennis",
    "Radia",
    "John",
    "Hedy",
    "Tim",
    "Linus",
    "Guido",
    "Anita",
    "Leslie",
    "Niklaus",
    "Shafi",
    "Sophie",
    "Fernando",
    "Yukihiro",
    "Bjarne",
    "Adele",
    "Jean",
    "Marvin",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Thompson",
    "Allen",
    "Knuth",
    "Hamilton",
    "Johnson",
    "Ritchie",
    "Perlman",
    "McCarthy",
    "Lamarr",
    "Berners",
    "Torvalds",
    "Rossum",
    "Borg",
    "Lamport",
    "Wirth",
    "Goldwasser",
    "Wilson",
    "Corbato",
    "Matsumoto",
    "Stroustrup",
    "Goldberg",
    "Sammet",
    "Minsky",
    "Kernighan",
    "Backus",
    "Engelbart",
    "Sutherland",
];
const PRODUCTS: &[(&str, &str)] = &[
    ("TEE-RED-M", "Red tee"),
    ("TEE-BLK-L", "Black tee"),
    ("HOOD-GRY-M", "Grey hoodie"),
    ("CAP-NVY", "Navy cap"),
    ("MUG-LOGO", "Logo mug"),
    ("SOCK-3P", "Socks three pack"),
    ("TOTE-CNV", "Canvas tote"),
    ("JKT-RAIN-S", "Rain jacket"),
    ("WATCH-GOLD", "Gold watch"),
    ("PRINT-SGN", "Signed print"),
    ("BOOT-HIKE", "Hiking boots"),
    ("LAMP-DESK", "Desk lamp"),
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Springfield", "62701", "US"),
    ("Berlin", "10115", "DE"),
    ("London", "SW1A 1AA", "GB"),
    ("Lyon", "69001", "FR"),
    ("Osaka", "530-0001", "JP"),
];

/// Order `n` of the synthetic set (same `n`, same order).
fn document(n: u64, rng: &mut StdRng) -> OrderDocument {
    let first = FIRST[rng.random_range(0..FIRST.len())];
    let last = LAST[rng.random_range(0..LAST.len())];
    let name = format!("{first} {last}");
    let (city, postal, country) = CITIES[rng.random_range(0..CITIES.len())];
    let lines: Vec<SearchLine> = (0..rng.random_range(1..=3))
        .map(|_| {
            let (sku, product) = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
            SearchLine {
                sku: sku.to_owned(),
                name: product.to_owned(),
                quantity: rng.random_range(1..=3),
            }
        })
        .collect();
    let channel = [
        Channel::Web,
        Channel::App,
        Channel::Pos,
        Channel::Marketplace,
    ][rng.random_range(0..4)];
    let status = match rng.random_range(0..100) {
        0..=59 => TrackingStatus::Confirmed,
        60..=74 => TrackingStatus::Placed,
        75..=79 => TrackingStatus::InReview,
        80..=84 => TrackingStatus::AwaitingPayment,
        _ => TrackingStatus::Cancelled,
    };
    let mut tags = Vec::new();
    if status == TrackingStatus::InReview {
        tags.push("fraud_review".to_owned());
    }
    if status == TrackingStatus::Cancelled {
        tags.push("cancelled".to_owned());
        if rng.random_bool(0.4) {
            tags.extend(["payment_declined".to_owned(), "exception".to_owned()]);
        }
    }
    let epoch = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let created = epoch + Duration::seconds(rng.random_range(0..330 * 86_400));
    let id = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | u128::from(n));
    OrderDocument {
        order_id: id.to_string(),
        version: rng.random_range(1..=8),
        channel,
        channel_order_ref: format!("{}-{n:08}", channel.as_str().to_uppercase()),
        customer: SearchCustomer {
            customer_id: Some(format!("c-{}", n % 200_000)),
            email: format!(
                "{}.{}{}@example.com",
                first.to_lowercase(),
                last.to_lowercase(),
                n % 5_000
            ),
            phone: Some(format!("+1 {:03} 555 {:04}", 200 + n % 700, n % 10_000)),
            name: name.clone(),
        },
        shipping_address: SearchAddress {
            name,
            line1: format!("{} Main St", 1 + n % 500),
            line2: None,
            city: city.to_owned(),
            region: None,
            postal_code: postal.to_owned(),
            country: country.to_owned(),
        },
        billing_address: None,
        lines,
        status,
        stage: "confirmed".to_owned(),
        currency: "USD".to_owned(),
        grand_total_minor: rng.random_range(500..500_000),
        payment_state: PaymentState::Captured,
        tracking_numbers: Vec::new(),
        rma_numbers: Vec::new(),
        created_at: created,
        updated_at: created + Duration::minutes(rng.random_range(0..600)),
        tags,
    }
}

fn typo(word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let i = chars.len() / 2;
    chars.swap(i - 1, i);
    chars.into_iter().collect()
}

/// The `i`-th filtered free-text query (three kinds in turn, random values).
fn filtered_query(i: usize, rng: &mut StdRng) -> SearchQuery {
    let base = SearchQuery {
        sort: Sort::newest_first(),
        limit: 20,
        ..SearchQuery::default()
    };
    let epoch = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    match i % 3 {
        0 => {
            let from = epoch + Duration::days(rng.random_range(0..300));
            SearchQuery {
                text: typo(LAST[rng.random_range(0..LAST.len())]),
                status: vec![TrackingStatus::Confirmed, TrackingStatus::Placed],
                created_from: Some(from),
                created_to: Some(from + Duration::days(30)),
                ..base
            }
        }
        1 => {
            let first = FIRST[rng.random_range(0..FIRST.len())].to_lowercase();
            let last = LAST[rng.random_range(0..LAST.len())].to_lowercase();
            SearchQuery {
                text: format!("{first}.{}", &last[..3]),
                channel: vec![Channel::Web, Channel::App],
                ..base
            }
        }
        _ => {
            let (_, product) = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
            let min = rng.random_range(0..400_000);
            SearchQuery {
                text: product.split(' ').next_back().unwrap_or(product).to_owned(),
                total_min: Some(min),
                total_max: Some(min + 50_000),
                has_exception: Some(false),
                ..base
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct Measured {
    queries: usize,
    queries_per_sec: f64,
    latency_ms: Percentiles,
    /// Mean hits counted per query (all matches, not only the page).
    mean_total_hits: f64,
    /// CPU per query per process: the index's work is the `waybill services` row.
    cpu: CpuReport,
}

#[derive(Debug, Serialize)]
struct AtSize {
    documents: u64,
    filtered_free_text: Measured,
    baseline_exact_id: Measured,
}

#[derive(Debug, Serialize)]
struct SearchBenchReport {
    backend: &'static str,
    documents: u64,
    batch: usize,
    index_secs: f64,
    documents_per_sec: f64,
    index_bytes: u64,
    sizes: Vec<AtSize>,
    goal_filtered_p99_ms: f64,
    goal_met: bool,
}

async fn measure(
    index: &TantivyIndex,
    queries: usize,
    seed: u64,
    make: impl Fn(usize, &mut StdRng) -> SearchQuery,
) -> anyhow::Result<Measured> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut histogram = Histogram::<u64>::new(3).context("histogram")?;
    let mut hits = 0u64;
    let cpu_before = cpu::Snapshot::start();
    let started = Instant::now();
    for i in 0..queries {
        let query = make(i, &mut rng);
        let t = Instant::now();
        let page = index.search(&query).await?;
        histogram.record(t.elapsed().as_micros() as u64).ok();
        hits += page.total;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Measured {
        queries,
        queries_per_sec: queries as f64 / secs.max(1e-9),
        latency_ms: Percentiles::ms_of(&histogram),
        mean_total_hits: hits as f64 / queries.max(1) as f64,
        cpu: cpu::Snapshot::take().since(&cpu_before, "query", queries as u64),
    })
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub async fn search(args: &BenchSearchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.orders >= 10 && args.batch > 0,
        "--orders ≥ 10 and --batch > 0"
    );
    let dir: PathBuf = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "waybill-bench-search-{}",
            uuid::Uuid::now_v7().simple()
        ))
    });
    // The index (its writer threads, its blocking searches) on the services' runtime, so its
    // CPU is told apart from this process's main thread.
    let outcome = {
        let (args, dir) = (args.clone(), dir.clone());
        Role::Services
            .handle()
            .spawn(async move { run(&args, &dir).await })
            .await
            .context("the search bench panicked")
            .and_then(|outcome| outcome)
    };
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = outcome?;
    if let Some(parent) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let measured: Vec<(String, &Measured, &str)> = report
        .sizes
        .iter()
        .flat_map(|size| {
            let k = size.documents / 1_000;
            [
                (
                    format!("filtered @{k}k"),
                    &size.filtered_free_text,
                    "#d95f02",
                ),
                (
                    format!("exact id @{k}k"),
                    &size.baseline_exact_id,
                    "#7570b3",
                ),
            ]
        })
        .collect();
    let bars: Vec<svg::Bar<'_>> = measured
        .iter()
        .map(|(label, m, color)| svg::Bar {
            label,
            value: m.latency_ms.p99,
            note: format!(
                "p99 {:.2} ms, p50 {:.2} ms, {:.0} q/s",
                m.latency_ms.p99, m.latency_ms.p50, m.queries_per_sec
            ),
            color,
        })
        .collect();
    let svg_path = args.out.with_extension("svg");
    std::fs::write(
        &svg_path,
        svg::bars(
            "Agent search latency p99 (Tantivy, one client)",
            "ms",
            &bars,
        ),
    )
    .with_context(|| format!("writing {}", svg_path.display()))?;
    let windows: Vec<(&str, &CpuReport)> = measured
        .iter()
        .map(|(label, m, _)| (label.as_str(), &m.cpu))
        .collect();
    cpu::write_chart(
        &args.out,
        &svg_path,
        "bench search: CPU per query by process (Tantivy in the bench process)",
        &windows,
    )?;
    Ok(())
}

async fn run(args: &BenchSearchArgs, dir: &Path) -> anyhow::Result<SearchBenchReport> {
    let index = TantivyIndex::open_writer(dir.to_path_buf())?;
    let total = args.orders as u64;
    let checkpoint = (total / 10).max(1);
    let mut rng = StdRng::seed_from_u64(7);
    let mut sizes = Vec::new();
    let started = Instant::now();
    let mut indexing_secs = 0.0;
    let mut n = 0u64;
    eprintln!(
        "indexing {total} synthetic orders into {} (batches of {})",
        dir.display(),
        args.batch
    );
    while n < total {
        let upto = (n + args.batch as u64).min(total);
        let docs: Vec<OrderDocument> = (n..upto).map(|i| document(i, &mut rng)).collect();
        let t = Instant::now();
        let written = index.upsert(docs).await?;
        indexing_secs += t.elapsed().as_secs_f64();
        anyhow::ensure!(written.iter().all(|w| *w), "a fresh document was refused");
        n = upto;
        if n.is_multiple_of(args.batch as u64 * 10) || n == total {
            eprintln!(
                "  {n:>9}/{total} indexed  {:5.1} %  {:>7.0} docs/s",
                n as f64 * 100.0 / total as f64,
                n as f64 / indexing_secs.max(1e-9)
            );
        }
        if (n >= checkpoint && sizes.is_empty()) || n == total {
            eprintln!(
                "  measuring {} queries of each kind at {n} documents",
                args.queries
            );
            let filtered = measure(&index, args.queries, 11, filtered_query).await?;
            let baseline = measure(&index, args.queries, 13, |_, rng| SearchQuery {
                text: uuid::Uuid::from_u128(
                    0x0190_0000_0000_7000_8000_0000_0000_0000 | u128::from(rng.random_range(0..n)),
                )
                .to_string(),
                sort: Sort::newest_first(),
                limit: 20,
                ..SearchQuery::default()
            })
            .await?;
            anyhow::ensure!(
                baseline.mean_total_hits == 1.0,
                "the exact-id baseline found {} hits per query on average, not 1",
                baseline.mean_total_hits
            );
            eprintln!(
                "    filtered free text: p50 {:.2} ms  p99 {:.2} ms  {:.0} q/s   exact id: p50 {:.2} ms  p99 {:.2} ms  {:.0} q/s",
                filtered.latency_ms.p50,
                filtered.latency_ms.p99,
                filtered.queries_per_sec,
                baseline.latency_ms.p50,
                baseline.latency_ms.p99,
                baseline.queries_per_sec
            );
            eprint!(
                "{}",
                filtered.cpu.table(&format!("filtered free text at {n}"))
            );
            eprint!("{}", baseline.cpu.table(&format!("exact id at {n}")));
            sizes.push(AtSize {
                documents: n,
                filtered_free_text: filtered,
                baseline_exact_id: baseline,
            });
        }
    }
    let full = sizes
        .last()
        .map_or(f64::MAX, |s| s.filtered_free_text.latency_ms.p99);
    let report = SearchBenchReport {
        backend: "tantivy",
        documents: total,
        batch: args.batch,
        index_secs: indexing_secs,
        documents_per_sec: total as f64 / indexing_secs.max(1e-9),
        index_bytes: dir_size(dir),
        sizes,
        goal_filtered_p99_ms: GOAL_P99_MS,
        goal_met: full < GOAL_P99_MS,
    };
    println!(
        "search bench: {total} orders indexed in {:.1}s ({:.0} docs/s, index {} MB, wall {:.1}s); filtered free-text p99 {:.2} ms at {total} (goal < {GOAL_P99_MS} ms: {})",
        report.index_secs,
        report.documents_per_sec,
        report.index_bytes / 1_000_000,
        started.elapsed().as_secs_f64(),
        full,
        if report.goal_met { "met" } else { "NOT met" }
    );
    Ok(report)
}
