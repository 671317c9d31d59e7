//! `waybill routing simulate --config candidate.json --from D1 --to D2 [--out dir]`: replays
//! the routing decisions recorded in the window with the candidate config
//! (`waybill_write_side::routing_simulation`), shows progress on stderr, prints the aggregate
//! and writes `simulation.json`, `orders.csv` and `index.html` (charts of the per-order deltas)
//! into `--out`.

mod page;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use waybill_write_side::domain::fulfillment::RoutingConfig;
use waybill_write_side::event_store::EventStore;
use waybill_write_side::routing_simulation::{self, Simulation};

use crate::config::{RoutingSimulateArgs, Settings};
use crate::progress::LogProgress;

pub use page::{aggregate_lines, write_outputs};

pub async fn simulate(settings: &Settings, args: &RoutingSimulateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.to > args.from,
        "--to {} is not after --from {}",
        args.to,
        args.from
    );
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let candidate = RoutingConfig::parse(&text)
        .with_context(|| format!("{} is not a routing config", args.config.display()))?;
    let pool = crate::migrate::migrate(&settings.database_url).await?;
    let store = EventStore::new(pool);
    let (simulation, seconds) = run(&store, Arc::new(candidate), args.from, args.to, None).await?;
    let html = write_outputs(&args.out, &simulation)?;
    for line in aggregate_lines(&simulation.aggregate) {
        println!("{line}");
    }
    println!(
        "replayed {} decisions in {seconds:.2} s ({:.0} decisions/s)",
        simulation.aggregate.decisions,
        simulation.aggregate.decisions as f64 / seconds.max(1e-6)
    );
    println!("chart: {}", absolute(&html).display());
    Ok(())
}

/// Runs the simulation (on `threads`, or every core) with a progress line on stderr; the
/// simulation and the seconds taken.
pub async fn run(
    store: &EventStore,
    candidate: Arc<RoutingConfig>,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    threads: Option<Arc<rayon::ThreadPool>>,
) -> anyhow::Result<(Simulation, f64)> {
    let started = Instant::now();
    let total = store
        .count_routing_decisions(from, to)
        .await
        .context("counting the window's decisions")?;
    let mut progress = LogProgress::new("routing-sim", u64::try_from(total).unwrap_or(0));
    let simulation =
        routing_simulation::simulate(store, candidate, (from, to), None, threads, |done| {
            progress.update(done)
        })
        .await
        .context("replaying the window's decisions")?;
    progress.finish(simulation.aggregate.decisions);
    Ok((simulation, started.elapsed().as_secs_f64()))
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
