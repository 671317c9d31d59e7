//! `waybill bench routing-sim`: how fast `waybill routing simulate` replays a window. Seeds a
//! scratch database with N recorded routing decisions (one order each, generated from a fixed
//! seed and routed by the bundled config, so their outcomes are real) plus filler events of
//! other kinds around them, then runs the simulation over the whole window with a candidate
//! config (carbon weight ×10, one warehouse disabled): once on every core (what the command
//! does) and once on one thread (the baseline), both reading from Postgres. Reports decisions/s,
//! CPU per decision, and writes the simulation's own outputs (JSON, CSV, HTML) beside the
//! report.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use waybill_schemas::events::{
    CandidateLocation, FulfillmentLine, RouteCause, RoutingCandidate, RoutingShipTo,
};
use waybill_schemas::{OrderId, Quantity, Sku};
use waybill_write_side::domain::fulfillment::decision::RoutingInputs;
use waybill_write_side::domain::fulfillment::routing::TransitHistory;
use waybill_write_side::domain::fulfillment::RoutingConfig;
use waybill_write_side::event_store::EventStore;

use super::cpu::{self, CpuReport};
use super::svg::{self, Bar};
use super::Scratch;
use crate::config::{BenchRoutingSimArgs, Settings};
use crate::progress::LogProgress;

/// The goal: 100,000 orders in under 30 s.
const GOAL_SECONDS_PER_100K: f64 = 30.0;
/// Decisions per insert statement.
const CHUNK: usize = 5_000;
/// Events of other kinds per order (placeholders the simulator must not read).
const FILLER_PER_ORDER: i64 = 10;

/// The nodes of the generated network: id, kind, zone.
const NODES: [(&str, CandidateLocation, i32); 7] = [
    ("wh-east", CandidateLocation::Warehouse, 1),
    ("wh-central", CandidateLocation::Warehouse, 5),
    ("wh-west", CandidateLocation::Warehouse, 8),
    ("store-soho", CandidateLocation::Store, 1),
    ("store-chicago", CandidateLocation::Store, 5),
    ("3pl-north", CandidateLocation::ThirdParty, 3),
    ("3pl-south", CandidateLocation::ThirdParty, 7),
];

#[derive(Debug, Serialize)]
struct Pass {
    threads: usize,
    decisions: u64,
    orders: u64,
    seconds: f64,
    decisions_per_sec: f64,
    /// Seconds 100,000 decisions take at this rate.
    seconds_per_100k: f64,
}

#[derive(Debug, Serialize)]
struct RoutingSimReport {
    bench: &'static str,
    decisions: u64,
    filler_events: u64,
    payload_bytes_avg: f64,
    candidate: &'static str,
    changed_orders: u64,
    parallel: Pass,
    parallel_cpu: CpuReport,
    baseline_one_thread: Pass,
    goal_seconds_per_100k: f64,
    goal_met: bool,
}

pub async fn routing_sim(settings: &Settings, args: &BenchRoutingSimArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.orders > 0, "--orders must be positive");
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
    let svg_path = super::report::write_with_chart(&args.out, &report, &chart(&report))?;
    println!("chart: {}", svg_path.display());
    Ok(())
}

/// The bench's candidate: the carbon weight ×10 and `wh-central` disabled.
pub fn candidate() -> anyhow::Result<RoutingConfig> {
    let bundled: serde_json::Value =
        serde_json::from_str(include_str!("../../../write-side/fulfillment-routing.json"))?;
    let mut candidate = bundled;
    candidate["weights"]["carbon"] = serde_json::json!(50);
    if let Some(nodes) = candidate["nodes"].as_array_mut() {
        nodes.push(serde_json::json!({"node_id": "wh-central", "disabled": true}));
    }
    Ok(RoutingConfig::parse(&candidate.to_string())?)
}

async fn run_bench(
    database_url: &str,
    args: &BenchRoutingSimArgs,
) -> anyhow::Result<RoutingSimReport> {
    let pool = crate::migrate::migrate(database_url).await?;
    let start = Utc::now() - Duration::days(2);
    let (payload_bytes_avg, filler) = seed(&pool, args.orders, start).await?;
    let store = EventStore::new(pool);
    let candidate = Arc::new(candidate()?);
    let (from, to) = (start, Utc::now());

    eprintln!("simulating on every core");
    let before = cpu::Snapshot::start();
    let (simulation, seconds) =
        crate::routing::run(&store, candidate.clone(), from, to, None).await?;
    let decisions = simulation.aggregate.decisions;
    let parallel_cpu = cpu::Snapshot::take().since(&before, "decision", decisions);
    anyhow::ensure!(
        decisions == args.orders,
        "the simulation replayed {decisions} of {} decisions",
        args.orders
    );
    let pages = args.out.with_extension("");
    let html = crate::routing::write_outputs(&pages, &simulation)?;
    for line in crate::routing::aggregate_lines(&simulation.aggregate) {
        eprintln!("{line}");
    }
    eprintln!("simulation page: {}", html.display());
    let parallel = pass(
        rayon::current_num_threads(),
        decisions,
        simulation.aggregate.orders,
        seconds,
    );

    eprintln!("baseline: the same simulation on one thread");
    let one = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .context("building a one-thread pool")?,
    );
    let (single, single_seconds) =
        crate::routing::run(&store, candidate, from, to, Some(one)).await?;
    let baseline_one_thread = pass(
        1,
        single.aggregate.decisions,
        single.aggregate.orders,
        single_seconds,
    );
    anyhow::ensure!(
        single.aggregate == simulation.aggregate,
        "one thread and every core disagree on the aggregate"
    );
    Ok(RoutingSimReport {
        bench: "routing-sim",
        decisions,
        filler_events: filler,
        payload_bytes_avg,
        candidate: "bundled config, carbon weight 5 -> 50, wh-central disabled",
        changed_orders: simulation.aggregate.changed_orders,
        goal_met: parallel.seconds_per_100k < GOAL_SECONDS_PER_100K,
        parallel,
        parallel_cpu,
        baseline_one_thread,
        goal_seconds_per_100k: GOAL_SECONDS_PER_100K,
    })
}

fn pass(threads: usize, decisions: u64, orders: u64, seconds: f64) -> Pass {
    let rate = decisions as f64 / seconds.max(1e-6);
    Pass {
        threads,
        decisions,
        orders,
        seconds,
        decisions_per_sec: rate,
        seconds_per_100k: 100_000.0 / rate.max(1e-6),
    }
}

/// Seeds `n` decisions recorded over a day from `start`, and filler events of other kinds.
/// Returns the average decision payload size and the filler count.
async fn seed(pool: &sqlx::PgPool, n: u64, start: DateTime<Utc>) -> anyhow::Result<(f64, u64)> {
    let config = RoutingConfig::bundled()?;
    let mut rng = StdRng::seed_from_u64(17);
    let mut progress = LogProgress::new("seed", n);
    let (mut done, mut bytes) = (0u64, 0usize);
    let step_us = (86_400_000_000 / n.max(1)).max(1) as i64;
    while done < n {
        let size = usize::try_from((n - done).min(CHUNK as u64)).unwrap_or(CHUNK);
        let mut streams = Vec::with_capacity(size);
        let mut times = Vec::with_capacity(size);
        let mut payloads = Vec::with_capacity(size);
        for i in 0..size {
            let at = start + Duration::microseconds(step_us * (done as i64 + i as i64));
            let order_id = OrderId::new_v7();
            let inputs = generate(&mut rng, at);
            let plan = inputs.plan(&config);
            let decided = inputs.record(order_id, RouteCause::Confirmation, &config.version, &plan);
            let payload = serde_json::to_string(&decided)?;
            bytes += payload.len();
            streams.push(order_id.stream_id());
            times.push(at);
            payloads.push(payload);
        }
        sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, \
             schema_version, occurred_at, recorded_at, correlation_id, actor_kind, actor_id, \
             payload) \
             SELECT s, 1, gen_random_uuid(), 'RoutingDecided', 1, t, t, gen_random_uuid(), \
                    'system', 'fulfillment', p::jsonb \
             FROM UNNEST($1::text[], $2::timestamptz[], $3::text[]) AS x(s, t, p)",
        )
        .bind(&streams)
        .bind(&times)
        .bind(&payloads)
        .execute(pool)
        .await
        .context("seeding decisions")?;
        // The rest of each order's stream: placeholders of other kinds, interleaved in time.
        sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, \
             schema_version, occurred_at, recorded_at, correlation_id, actor_kind, actor_id, \
             payload) \
             SELECT s, 1 + v, gen_random_uuid(), 'ShipmentTracked', 1, t, \
                    t + make_interval(secs => v), gen_random_uuid(), 'system', 'bench', '{}'::jsonb \
             FROM UNNEST($1::text[], $2::timestamptz[]) AS x(s, t), generate_series(1, $3) AS v",
        )
        .bind(&streams)
        .bind(&times)
        .bind(FILLER_PER_ORDER)
        .execute(pool)
        .await
        .context("seeding filler events")?;
        done += size as u64;
        progress.update(done);
    }
    progress.finish(done);
    sqlx::query("ANALYZE events")
        .execute(pool)
        .await
        .context("analyzing the scratch log")?;
    Ok((
        bytes as f64 / n.max(1) as f64,
        n * u64::try_from(FILLER_PER_ORDER).unwrap_or(0),
    ))
}

/// One order's routing inputs: 1-4 lines, the allocation at one node (sometimes two), free
/// stock at a few others, some learned transit times; mostly standard shipping.
fn generate(rng: &mut StdRng, now: DateTime<Utc>) -> RoutingInputs {
    let zone: i32 = rng.random_range(0..10);
    let node = |i: usize, units: BTreeMap<u32, u32>| {
        let (id, location, node_zone) = NODES[i];
        RoutingCandidate {
            node_id: id.to_owned(),
            location,
            distance: node_zone.abs_diff(zone),
            units,
        }
    };
    let n_lines = rng.random_range(1..=4u32);
    let lines: Vec<FulfillmentLine> = (1..=n_lines)
        .map(|no| FulfillmentLine {
            line_no: no,
            sku: Sku::parse(&format!("SKU-{}", rng.random_range(0..500)))
                .unwrap_or_else(|_| unreachable!("generated skus are valid")),
            quantity: Quantity::parse(rng.random_range(1..=3))
                .unwrap_or_else(|_| unreachable!("1-3 is a valid quantity")),
        })
        .collect();
    let roll: f64 = rng.random();
    let (method, pickup) = if roll < 0.05 {
        let store = if rng.random_bool(0.5) { 3 } else { 4 };
        ("pickup", Some(store))
    } else if roll < 0.15 {
        ("express", None)
    } else {
        ("standard", None)
    };
    let first = pickup.unwrap_or_else(|| [0, 1, 2, 5, 6][rng.random_range(0..5)]);
    let all: BTreeMap<u32, u32> = lines
        .iter()
        .map(|l| (l.line_no, l.quantity.get()))
        .collect();
    let allocated = if pickup.is_none() && n_lines > 1 && rng.random_bool(0.2) {
        let second = (first + 1 + rng.random_range(0..NODES.len() - 1)) % NODES.len();
        let (a, b): (BTreeMap<u32, u32>, BTreeMap<u32, u32>) =
            all.iter().partition(|(no, _)| *no % 2 == 1);
        vec![node(first, a), node(second, b)]
    } else {
        vec![node(first, all)]
    };
    let free_stock = (0..rng.random_range(1..=4))
        .map(|_| rng.random_range(0..NODES.len()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|i| {
            let units = lines
                .iter()
                .map(|l| (l.line_no, rng.random_range(0..10u32)))
                .filter(|(_, n)| *n > 0)
                .collect();
            node(i, units)
        })
        .filter(|c| !c.units.is_empty())
        .collect();
    let mut history = TransitHistory::default();
    for carrier in ["parcelco", "swiftpost"] {
        for distance in 0..8u32 {
            if rng.random_bool(0.5) {
                let hours = i64::from(distance + 1) * rng.random_range(10..30);
                history
                    .0
                    .insert((carrier.to_owned(), distance), (4, 4 * hours));
            }
        }
    }
    RoutingInputs {
        shipping_method: method.to_owned(),
        pickup_location: pickup.map(|i| NODES[i].0.to_owned()),
        ship_to: RoutingShipTo {
            country: "US".to_owned(),
            postal_zone: zone,
        },
        lines,
        allocated: Some(allocated),
        free_stock,
        history,
        now,
    }
}

fn table(report: &RoutingSimReport) -> String {
    let row = |name: &str, pass: &Pass| {
        format!(
            "{name:<28} {:>2} threads {:>8} decisions {:>8.2} s {:>10.0} decisions/s  ({:.1} s per 100k)\n",
            pass.threads, pass.decisions, pass.seconds, pass.decisions_per_sec, pass.seconds_per_100k
        )
    };
    let mut out = format!(
        "bench routing-sim: {} recorded decisions ({:.0} B each on average) among {} other events; candidate: {}; {} orders changed\n",
        report.decisions,
        report.payload_bytes_avg,
        report.filler_events,
        report.candidate,
        report.changed_orders
    );
    out.push_str(&row("every core (rayon)", &report.parallel));
    out.push_str(&row("baseline: one thread", &report.baseline_one_thread));
    out.push_str(&format!(
        "goal: 100,000 orders in < {:.0} s: {}\n",
        report.goal_seconds_per_100k,
        if report.goal_met { "met" } else { "NOT met" }
    ));
    out.push_str(&report.parallel_cpu.table("CPU per decision, every core"));
    out
}

fn chart(report: &RoutingSimReport) -> String {
    svg::bars(
        &format!(
            "bench routing-sim: {} recorded decisions replayed (read from Postgres, decoded, re-routed)",
            report.decisions
        ),
        "decisions/s",
        &[
            Bar {
                label: "every core",
                value: report.parallel.decisions_per_sec,
                note: format!("{:.1} s per 100k", report.parallel.seconds_per_100k),
                color: "#1f77b4",
            },
            Bar {
                label: "one thread",
                value: report.baseline_one_thread.decisions_per_sec,
                note: format!("{:.1} s per 100k", report.baseline_one_thread.seconds_per_100k),
                color: "#9e9e9e",
            },
        ],
    )
}
