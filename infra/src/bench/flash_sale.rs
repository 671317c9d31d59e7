//! `waybill bench flash-sale`: many orders of one unit each race for one hot SKU. Measured side
//! by side in one run on a scratch database:
//! - `batching`: every order through the inventory service's single writer (one serializable
//!   transaction per batch, decisions in memory against the locked row);
//! - `two writers`: the same orders split between two inventory services, each with its own
//!   connection pool and batching writer (what two `serve checkout` processes run; here in one
//!   OS process), racing for one SKU;
//! - `baseline`: one SERIALIZABLE transaction per reservation doing a conditional UPDATE
//!   (`... WHERE available >= 1`) plus the reservation row, retried on SQLSTATE 40001.
//!
//! For each: reservation decisions per second, reserved / rejected orders, oversold units (read
//! back from the table; must be 0) and latency percentiles. JSON to `--out`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use hdrhistogram::Histogram;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use waybill_schemas::{OrderId, Quantity, Sku};
use waybill_write_side::event_store::retry;
use waybill_write_side::inventory::{
    Country, Inventory, InventoryConfig, Location, LocationId, LocationKind, RequestedLine,
    ReserveOutcome, ReserveRequest, ShipTo,
};

use super::cpu::{self, CpuReport};
use super::roles::Role;
use crate::config::{BenchFlashSaleArgs, Settings};
use crate::migrate::quote_ident;

const LOCATION: &str = "FLASH-DC";
const BATCHED_SKU: &str = "FLASH-BATCHED";
const TWO_WRITERS_SKU: &str = "FLASH-TWO-WRITERS";
const BASELINE_SKU: &str = "FLASH-BASELINE";
/// The decisions per second issue 3 asks for on one hot SKU.
const GOAL_DECISIONS_PER_S: f64 = 1_000.0;

#[derive(Debug, Serialize)]
pub struct FlashSaleReport {
    pub orders: usize,
    pub stock: u32,
    pub goal_decisions_per_s: f64,
    pub batching: Run,
    pub two_writers: Run,
    pub baseline: Run,
}

#[derive(Debug, Serialize)]
pub struct Run {
    pub design: String,
    pub elapsed_s: f64,
    pub decisions_per_s: f64,
    pub reserved: usize,
    pub rejected: usize,
    pub failed: usize,
    /// Units reserved beyond the stock, read back from `inventory_stock`.
    pub oversold: i64,
    pub serialization_retries: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU per decision per process: the batching writer is the `waybill services` row; the
    /// baseline's transactions are sent by the load driver itself.
    pub cpu: Option<CpuReport>,
}

pub async fn flash_sale(settings: &Settings, args: &BenchFlashSaleArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.orders > 0 && args.stock > 0 && args.clients > 0,
        "--orders, --stock and --clients must be positive"
    );
    let run = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
    let database = format!("waybill_bench_flash_{run}");
    let options: PgConnectOptions = settings.database_url.parse()?;
    let url = options
        .clone()
        .database(&database)
        .to_url_lossy()
        .to_string();
    crate::migrate::migrate(&url).await?.close().await;
    let outcome = measure(&url, args).await;
    let mut admin = options.database("postgres").connect().await?;
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(&database)
    ))
    .execute(&mut admin)
    .await?;
    let _ = admin.close().await;
    let report = outcome?;

    for r in [&report.batching, &report.two_writers, &report.baseline] {
        println!(
            "{:<9} {:>9.0} decisions/s  reserved {:>6}  rejected {:>6}  failed {:>4}  oversold {}  \
             retries {:>6}  p50 {:>7.1} ms  p99 {:>7.1} ms",
            r.design,
            r.decisions_per_s,
            r.reserved,
            r.rejected,
            r.failed,
            r.oversold,
            r.serialization_retries,
            r.p50_ms,
            r.p99_ms
        );
        if let Some(cpu) = &r.cpu {
            print!("{}", cpu.table(&r.design));
        }
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let chart_path = args.out.with_extension("svg");
    let bar = |r: &Run, label, color| super::svg::Bar {
        label,
        value: r.decisions_per_s,
        note: format!(
            "p99 {:.1} ms, oversold {}, retries {}",
            r.p99_ms, r.oversold, r.serialization_retries
        ),
        color,
    };
    let chart = super::svg::bars(
        &format!(
            "Flash sale: {} reservations on one SKU with {} units",
            args.orders, args.stock
        ),
        "decisions/s",
        &[
            bar(&report.batching, "batching writer", "#1f77b4"),
            bar(&report.two_writers, "two writers", "#2ca02c"),
            bar(&report.baseline, "tx per request", "#ff7f0e"),
        ],
    );
    std::fs::write(&chart_path, chart)
        .with_context(|| format!("writing {}", chart_path.display()))?;
    let windows: Vec<(&str, &CpuReport)> = [
        ("batching writer", &report.batching),
        ("two writers", &report.two_writers),
        ("tx per request", &report.baseline),
    ]
    .into_iter()
    .filter_map(|(name, r)| Some((name, r.cpu.as_ref()?)))
    .collect();
    cpu::write_chart(
        &args.out,
        &chart_path,
        &format!(
            "bench flash-sale: CPU per decision by process, {} orders",
            args.orders
        ),
        &windows,
    )?;
    Ok(())
}

/// A connection pool of its own and an inventory service (batching writer) on it. The writer
/// runs on the services' runtime, so its CPU is told apart from the clients'.
async fn writer(url: &str, args: &BenchFlashSaleArgs) -> anyhow::Result<(PgPool, Inventory)> {
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(args.clients).unwrap_or(16).max(2))
        .connect(url)
        .await?;
    let _services = Role::Services.handle().enter();
    let inventory = Inventory::spawn(
        pool.clone(),
        InventoryConfig {
            batch_max: args.batch_max,
            ..InventoryConfig::default()
        },
    );
    Ok((pool, inventory))
}

async fn measure(url: &str, args: &BenchFlashSaleArgs) -> anyhow::Result<FlashSaleReport> {
    let (pool, inventory) = writer(url, args).await?;
    inventory
        .upsert_location(&Location {
            location_id: LocationId::parse(LOCATION)?,
            kind: LocationKind::Warehouse,
            name: "Flash sale DC".to_owned(),
            country: Country::parse("US")?,
            zone: 5,
            active: true,
        })
        .await?;
    for sku in [BATCHED_SKU, TWO_WRITERS_SKU, BASELINE_SKU] {
        inventory
            .restock(
                Sku::parse(sku)?,
                LocationId::parse(LOCATION)?,
                args.stock,
                &format!("bench:{sku}"),
                Utc::now(),
            )
            .await?;
    }

    eprintln!(
        "flash sale: {} orders for {} units, batching writer",
        args.orders, args.stock
    );
    let before = cpu::Snapshot::start();
    let mut batching = batched(std::slice::from_ref(&inventory), &pool, BATCHED_SKU, args).await?;
    batching.cpu = Some(cpu::Snapshot::take().since(&before, "decision", args.orders as u64));
    eprintln!(
        "flash sale: {} orders for {} units, two writers with pools of their own",
        args.orders, args.stock
    );
    let (second_pool, second) = writer(url, args).await?;
    let before = cpu::Snapshot::start();
    let mut two_writers = batched(&[inventory, second], &pool, TWO_WRITERS_SKU, args).await?;
    two_writers.cpu = Some(cpu::Snapshot::take().since(&before, "decision", args.orders as u64));
    second_pool.close().await;
    eprintln!(
        "flash sale: {} orders for {} units, baseline ({} clients)",
        args.orders, args.stock, args.clients
    );
    let before = cpu::Snapshot::start();
    let mut baseline = baseline(&pool, args).await?;
    baseline.cpu = Some(cpu::Snapshot::take().since(&before, "decision", args.orders as u64));
    pool.close().await;
    Ok(FlashSaleReport {
        orders: args.orders,
        stock: args.stock,
        goal_decisions_per_s: GOAL_DECISIONS_PER_S,
        batching,
        two_writers,
        baseline,
    })
}

/// Every order through `writers` (the n-th order to writer n mod their number), all at once.
async fn batched(
    writers: &[Inventory],
    pool: &PgPool,
    sku_name: &str,
    args: &BenchFlashSaleArgs,
) -> anyhow::Result<Run> {
    let sku = Sku::parse(sku_name)?;
    let ship_to = ShipTo::new("US", "50000")?;
    let one = Quantity::parse(1)?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.orders)
        .map(|n| {
            let inventory = writers[n % writers.len()].clone();
            let request = ReserveRequest {
                order_id: OrderId::new_v7(),
                ship_to: ship_to.clone(),
                lines: vec![RequestedLine {
                    line_no: 1,
                    sku: sku.clone(),
                    quantity: one,
                }],
                now: Utc::now(),
            };
            tokio::spawn(async move {
                let sent = Instant::now();
                let outcome = inventory.reserve(request).await;
                (outcome, sent.elapsed())
            })
        })
        .collect();
    let mut tally = Tally::new()?;
    for task in tasks {
        let (outcome, latency) = task.await?;
        tally.record(latency);
        match outcome {
            Ok(ReserveOutcome::Reserved { .. }) => tally.reserved += 1,
            Ok(ReserveOutcome::Insufficient { .. }) => tally.rejected += 1,
            Err(_) => tally.failed += 1,
        }
    }
    let design = if writers.len() == 1 {
        "batching".to_owned()
    } else {
        format!("{} writers", writers.len())
    };
    tally
        .finish(&design, started.elapsed(), pool, sku_name, args)
        .await
}

async fn baseline(pool: &PgPool, args: &BenchFlashSaleArgs) -> anyhow::Result<Run> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.clients)
        .map(|_| {
            let pool = pool.clone();
            let next = next.clone();
            let orders = args.orders;
            tokio::spawn(async move {
                let mut tally = Tally::new()?;
                while next.fetch_add(1, Ordering::Relaxed) < orders {
                    let sent = Instant::now();
                    let order = OrderId::new_v7().as_uuid();
                    let mut tries = 0_u32;
                    let outcome = loop {
                        tries += 1;
                        match conditional_reserve(&pool, order).await {
                            Err(e) if retry::is_serialization_failure(&e) => {
                                tally.retries += 1;
                                tokio::time::sleep(retry::backoff(tries)).await;
                            }
                            other => break other,
                        }
                    };
                    tally.record(sent.elapsed());
                    match outcome {
                        Ok(true) => tally.reserved += 1,
                        Ok(false) => tally.rejected += 1,
                        Err(_) => tally.failed += 1,
                    }
                }
                anyhow::Ok(tally)
            })
        })
        .collect();
    let mut total = Tally::new()?;
    for worker in workers {
        total.merge(worker.await??)?;
    }
    total
        .finish("baseline", started.elapsed(), pool, BASELINE_SKU, args)
        .await
}

/// One reservation in its own SERIALIZABLE transaction; false when no unit is left.
async fn conditional_reserve(pool: &PgPool, order: uuid::Uuid) -> Result<bool, sqlx::Error> {
    let mut tx = retry::begin(pool).await?;
    let updated = sqlx::query(
        "UPDATE inventory_stock SET reserved = reserved + 1 \
         WHERE sku = $1 AND location_id = $2 AND on_hand - reserved - allocated >= 1",
    )
    .bind(BASELINE_SKU)
    .bind(LOCATION)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 1 {
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO inventory_reservations (order_id, line_no, sku, location_id, quantity, \
                 state, ship_country, ship_postal_code, expires_at, created_at, updated_at) \
             VALUES ($1, 1, $2, $3, 1, 'reserved', 'US', '50000', $4, $5, $5)",
        )
        .bind(order)
        .bind(BASELINE_SKU)
        .bind(LOCATION)
        .bind(now + chrono::Duration::minutes(15))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    retry::commit(tx).await?;
    Ok(updated == 1)
}

struct Tally {
    reserved: usize,
    rejected: usize,
    failed: usize,
    retries: usize,
    latency_us: Histogram<u64>,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            reserved: 0,
            rejected: 0,
            failed: 0,
            retries: 0,
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        })
    }

    fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let _ = self.latency_us.record(micros.max(1));
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.reserved += other.reserved;
        self.rejected += other.rejected;
        self.failed += other.failed;
        self.retries += other.retries;
        self.latency_us.add(other.latency_us)?;
        Ok(())
    }

    async fn finish(
        self,
        design: &str,
        elapsed: Duration,
        pool: &PgPool,
        sku: &str,
        args: &BenchFlashSaleArgs,
    ) -> anyhow::Result<Run> {
        let (on_hand, reserved): (i64, i64) = sqlx::query_as(
            "SELECT on_hand, reserved + allocated FROM inventory_stock \
             WHERE sku = $1 AND location_id = $2",
        )
        .bind(sku)
        .bind(LOCATION)
        .fetch_one(pool)
        .await?;
        let rows: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(quantity), 0)::bigint FROM inventory_reservations \
             WHERE sku = $1 AND state <> 'released'",
        )
        .bind(sku)
        .fetch_one(pool)
        .await?;
        anyhow::ensure!(
            rows == reserved && on_hand == i64::from(args.stock),
            "{design}: reservation rows ({rows}) and stock ({reserved} of {on_hand}) disagree"
        );
        let decided = self.reserved + self.rejected;
        let ms = |q: f64| self.latency_us.value_at_quantile(q) as f64 / 1_000.0;
        Ok(Run {
            design: design.to_owned(),
            elapsed_s: elapsed.as_secs_f64(),
            decisions_per_s: decided as f64 / elapsed.as_secs_f64().max(1e-9),
            reserved: self.reserved,
            rejected: self.rejected,
            failed: self.failed,
            oversold: (reserved - on_hand).max(0) + (self.reserved as i64 - on_hand).max(0),
            serialization_retries: self.retries,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: self.latency_us.max() as f64 / 1_000.0,
            cpu: None,
        })
    }
}
