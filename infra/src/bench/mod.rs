//! `waybill bench place`: N concurrent HTTP clients place a fixed number of orders while the
//! relay and the tracking projector run; measures throughput, command latency and projection lag
//! (201 received → view visible in Redis), then inserts the same number of events with plain
//! multi-row INSERTs as a baseline of what Postgres alone does here. Prints a table and writes
//! a JSON report with an SVG chart beside it.
//!
//! By default everything runs in this process against a scratch database, JetStream stream and
//! Redis prefix that are removed afterwards; `--external` measures services already running.

mod analytics;
mod baseline;
mod checkout;
mod checkout_report;
mod cpu;
mod flash_sale;
mod lag;
mod lifecycle;
mod lifecycle_returns;
mod live_pages;
mod load;
mod log_read;
pub mod report;
mod roles;
mod routing_sim;
mod search;
mod search_lag;
pub mod svg;
mod tracking;
mod webhooks;

pub use analytics::analytics;
pub use checkout::checkout;
pub use flash_sale::flash_sale;
pub use lifecycle::lifecycle;
pub use live_pages::live_pages;
pub use log_read::log_read;
pub use routing_sim::routing_sim;
pub use search::search;
pub use tracking::tracking;
pub use webhooks::webhooks;

use std::time::Duration;

use anyhow::Context;
use rand::RngCore;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::client::ApiClient;
use crate::config::{BenchPlaceArgs, Settings};
use crate::migrate::quote_ident;
use crate::secrets::Secrets;
use crate::services::{self, Part};
use crate::shutdown::Shutdown;
use report::{BenchReport, Goals};

/// What `bench place` runs: placement and its read path, without the checkout worker (measured
/// on its own by `bench checkout`).
pub(crate) const PLACEMENT_PARTS: &[Part] =
    &[Part::Commands, Part::Relay, Part::Projector, Part::Query];

pub async fn place(settings: &Settings, args: &BenchPlaceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.orders > 0 && args.clients > 0,
        "--orders and --clients must be positive"
    );
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let render = crate::metrics::install()?;

    let (settings, secrets, scratch) = if args.external {
        (settings.clone(), Secrets::resolve(settings)?, None)
    } else {
        let scratch = Scratch::new(settings, &run);
        let (s, secrets) = scratch.settings(settings, &run);
        (s, secrets, Some(scratch))
    };

    let outcome = run_bench(&settings, &secrets, args, &run, render, scratch.is_some()).await;
    if let Some(scratch) = scratch {
        if args.keep {
            eprintln!(
                "kept database {}, stream {}, redis prefix {}",
                scratch.database, scratch.stream, scratch.redis_prefix
            );
        } else if let Err(error) = scratch.remove(&settings).await {
            eprintln!("cleaning up the scratch environment failed: {error:#}");
        }
    }
    let report = outcome?;

    println!("{}", report.table());
    let svg_path =
        crate::bench::report::write_with_chart(&args.out, &report, &svg::chart(&report))?;
    let windows: Vec<(&str, &cpu::CpuReport)> = [
        ("pipeline", report.cpu.as_ref()),
        ("baseline INSERT", report.baseline_cpu.as_ref()),
    ]
    .into_iter()
    .filter_map(|(name, cpu)| Some((name, cpu?)))
    .collect();
    cpu::write_chart(
        &args.out,
        &svg_path,
        &format!(
            "bench place: CPU per unit by process, {} orders",
            args.orders
        ),
        &windows,
    )?;
    Ok(())
}

async fn run_bench(
    settings: &Settings,
    secrets: &Secrets,
    args: &BenchPlaceArgs,
    run: &str,
    render: waybill_query_api::MetricsRender,
    in_process: bool,
) -> anyhow::Result<BenchReport> {
    let shutdown = Shutdown::new();
    let metrics = render;
    let (command_addr, query_addr, running) = if in_process {
        crate::migrate::migrate(&settings.database_url).await?;
        let running = roles::start(settings, secrets, PLACEMENT_PARTS, &shutdown).await?;
        let command = running.command_addr.context("command API did not start")?;
        let query = running.query_addr.context("query API did not start")?;
        (command, query, Some(running))
    } else {
        (settings.command_addr, settings.query_addr, None)
    };
    let key = secrets
        .client_key
        .clone()
        .context("WAYBILL_API_KEYS has no key with role service, agent or admin for the bench")?;
    let client = ApiClient::new(command_addr, query_addr, key, args.clients)?;
    client.wait_ready(Duration::from_secs(30)).await?;
    let redis = services::connect_redis(settings).await?;

    eprintln!(
        "bench place: {} orders, {} clients, {} (run {run})",
        args.orders,
        args.clients,
        if in_process {
            "services in-process on a scratch database"
        } else {
            "external services"
        }
    );
    let (lag_tx, lag_task) = lag::spawn(redis, settings.redis_prefix.clone());
    // In-process runs also time each order's arrival in the search index.
    let search_index = running.as_ref().and_then(|r| r.search.clone());
    let (accepted_tx, search_task) = match search_index {
        Some(index) => {
            let (tx, task) = search_lag::spawn(index, lag_tx);
            (tx, Some(task))
        }
        None => (lag_tx, None),
    };
    let cpu_before = cpu::Snapshot::start();
    let load = load::run(&client, args.orders, args.clients, run, accepted_tx).await?;
    eprintln!("load done; waiting for the last views to appear in Redis");
    let lag = lag_task.await.context("lag sampler panicked")?;
    let search_lag = match search_task {
        Some(task) => Some(task.await.context("search lag sampler panicked")?),
        None => None,
    };
    let cpu = cpu::Snapshot::take().since(&cpu_before, "order", load.accepted);

    let (baseline, baseline_cpu) = if args.no_baseline {
        (None, None)
    } else {
        eprintln!("baseline: {} events by multi-row INSERT", load.accepted);
        let before = cpu::Snapshot::start();
        let baseline = baseline::run(
            &settings.database_url,
            load.accepted.max(1) as usize,
            args.baseline_batch,
            args.baseline_connections,
        )
        .await?;
        let cpu = cpu::Snapshot::take().since(&before, "event", baseline.events as u64);
        (Some(baseline), Some(cpu))
    };

    let stalls = report::longest_stalls(&metrics());
    if let Some(running) = running {
        shutdown.trigger();
        running.wait().await?;
    }
    let mut report = BenchReport::new(args, &load, &lag, baseline, Goals::issue_2());
    report.longest_stall_s = stalls;
    // Against external services (`--external`) this process is only the load driver: the
    // report has no services row then, only the driver's and the servers'.
    report.cpu = Some(cpu);
    report.baseline_cpu = baseline_cpu;
    if let Some(search_lag) = search_lag {
        report.search_lag_ms = Some(report::Percentiles::ms_of(&search_lag.lag_us));
        report.search_missing = Some(search_lag.missing);
    }
    Ok(report)
}

/// Where a run's development message files go: the memory-backed `/dev/shm` where the machine
/// has it, else the temporary directory. Deployments send over SMTP and an SMS provider; the
/// file sink is development's. On this machine's ext4 (no journal) a new file's cost is the
/// kernel's inode search, which skips inodes freed in the last seconds to minutes, so it
/// depended on how recently the previous run had deleted its files (the sink took 4 % of the
/// services' CPU in one run and 28 % in the next of the same build), not on Waybill.
fn message_files_root() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Names of the throwaway database, stream and Redis prefix of an in-process run.
pub(crate) struct Scratch {
    database: String,
    database_url: String,
    stream: String,
    subject_root: String,
    redis_prefix: String,
    /// Where the notifications projector writes its messages during the run.
    notifications_dir: std::path::PathBuf,
    /// The run's embedded search index.
    search_dir: std::path::PathBuf,
}

impl Scratch {
    pub(crate) fn database_name(&self) -> &str {
        &self.database
    }

    pub(crate) fn new(settings: &Settings, run: &str) -> Self {
        let database = format!("waybill_bench_{run}");
        let database_url = match settings.database_url.parse::<PgConnectOptions>() {
            Ok(options) => options.database(&database).to_url_lossy().to_string(),
            Err(_) => settings.database_url.clone(),
        };
        Self {
            database_url,
            database,
            stream: format!("BENCH_{}", run.to_uppercase()),
            subject_root: format!("bench_{run}"),
            redis_prefix: format!("bench:{run}"),
            notifications_dir: message_files_root().join(format!("waybill-bench-{run}")),
            search_dir: std::env::temp_dir().join(format!("waybill-bench-search-{run}")),
        }
    }

    /// `settings` pointed at this scratch environment, with fresh secrets for one run.
    pub(crate) fn settings(&self, settings: &Settings, run: &str) -> (Settings, Secrets) {
        let mut s = settings.clone();
        s.database_url = self.database_url.clone();
        s.nats_stream = self.stream.clone();
        s.subject_root = self.subject_root.clone();
        s.redis_prefix = self.redis_prefix.clone();
        s.query_rate_limit = 0;
        s.checkout.notifications_dir = self.notifications_dir.clone();
        s.search_dir = self.search_dir.clone();
        s.warehouse.clickhouse_database = self.database.clone();
        let mut key = [0u8; 16];
        rand::rng().fill_bytes(&mut key);
        let key = hex::encode(key);
        let secrets = Secrets {
            api_keys: format!("{key}:bench:service"),
            client_key: Some(key),
            tracking: waybill_schemas::access::TrackingKeys::new(run.as_bytes().to_vec()),
            jwt_secret: format!("bench-jwt-{run}").into_bytes(),
            payment_api_key: format!("bench-gateway-{run}"),
            payment_webhook_secret: format!("bench-webhooks-{run}").into_bytes(),
            logistics_webhook_secret: format!("bench-logistics-{run}").into_bytes(),
            sms_api_key: format!("bench-sms-{run}"),
            webhook_sealing_key: waybill_write_side::subscriptions::seal::SealingKey::parse(
                &hex::encode(rand::random::<[u8; 32]>()),
            )
            .unwrap_or_else(|_| unreachable!("32 random bytes in hex are a key")),
        };
        (s, secrets)
    }

    pub(crate) async fn remove(&self, settings: &Settings) -> anyhow::Result<()> {
        for dir in [&self.notifications_dir, &self.search_dir] {
            if let Err(error) = std::fs::remove_dir_all(dir) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    eprintln!("removing {} failed: {error}", dir.display());
                }
            }
        }
        let options: PgConnectOptions = self.database_url.parse()?;
        let mut admin = options.database("postgres").connect().await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.database)
        ))
        .execute(&mut admin)
        .await?;
        let _ = admin.close().await;

        let _ = waybill_projectors::warehouse::drop_database(
            &settings.warehouse.config().with_database(&self.database),
        )
        .await;

        let nats = settings.nats_connection("bench")?.connect().await?;
        let js = async_nats::jetstream::new(nats);
        let _ = js.delete_stream(&self.stream).await;
        let dead_letters = waybill_projectors::runtime::dead_letter_stream_name(&self.stream);
        let _ = js.delete_stream(&dead_letters).await;

        let redis = services::connect_redis(settings).await?;
        redis
            .delete_matching(format!("{}:*", self.redis_prefix))
            .await?;
        Ok(())
    }
}
