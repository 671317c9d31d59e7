//! The process manager's loop: run passes while there is due work, poll when idle, sweep expired
//! stock reservations as a safety net behind the flows' own deadlines, and purge old risk
//! signals.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{flows, run_pass, CheckoutServices};
use crate::idle_backoff::IdleBackoff;

/// How often risk signals older than a few velocity windows are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// How the loop paces itself.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Wait after a pass that did not fill its batch; empty polls wait longer, up to
    /// [`crate::idle_backoff::IDLE_CEILING`].
    pub poll_interval: Duration,
    /// How often expired reservations are swept directly in the inventory.
    pub sweep_interval: Duration,
    /// Passes running at once. Several small passes keep an order from waiting behind a whole
    /// batch (latency), while each pass still batches its transactions (throughput).
    pub concurrency: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(10),
            sweep_interval: Duration::from_secs(5),
            concurrency: 4,
        }
    }
}

/// Runs `config.concurrency` pass loops until `shutdown` resolves; the first also does the
/// housekeeping (reservation sweep, risk-signal purge, the due-flows gauge).
pub async fn run_worker(
    services: CheckoutServices,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let loops: Vec<_> = (0..config.concurrency.max(1))
        .map(|index| {
            let services = services.clone();
            let config = config.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                run_loop(services, config, index == 0, shutdown).await;
            })
        })
        .collect();
    shutdown.await;
    let _ = stop.send(true);
    for handle in loops {
        let _ = handle.await;
    }
}

async fn run_loop(
    services: CheckoutServices,
    config: WorkerConfig,
    housekeeping: bool,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut last_sweep = Instant::now();
    let mut last_gauge = Instant::now() - Duration::from_secs(60);
    let mut last_purge = Instant::now();
    // The working pace doubles up to 4 × the interval; idle loops slow down further.
    let mut pace = IdleBackoff::new(config.poll_interval, config.poll_interval * 4);
    loop {
        let started = Instant::now();
        let claimed = match run_pass(&services, Utc::now()).await {
            Ok(n) => n,
            Err(error) => {
                tracing::error!(%error, "checkout pass failed");
                0
            }
        };
        if claimed > 0 {
            metrics::histogram!("waybill_checkout_pass_seconds").record(started.elapsed());
            metrics::counter!("waybill_checkout_flows_advanced_total").increment(claimed as u64);
        }
        if housekeeping && last_sweep.elapsed() >= config.sweep_interval {
            last_sweep = Instant::now();
            match services.inventory.release_expired(Utc::now(), 500).await {
                Ok(released) if !released.is_empty() => {
                    tracing::info!(count = released.len(), "released expired reservations");
                    // Their orders learn about it through their flows' own deadlines.
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "reservation sweep failed"),
            }
        }
        if housekeeping && last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            // Velocity counts only look back one window; keep a few for the record.
            let cutoff = Utc::now() - services.risk_window * 4;
            if let Err(error) = crate::risk_signals::purge_before(&services.pool, cutoff).await {
                tracing::warn!(%error, "purging old risk signals failed");
            }
        }
        if housekeeping && last_gauge.elapsed() >= Duration::from_secs(2) {
            last_gauge = Instant::now();
            if let Ok(due) = flows::due_count(&services.pool, Utc::now()).await {
                metrics::gauge!("waybill_checkout_flows_due").set(due as f64);
            }
        }
        // Idle polls back off (see idle_backoff) so idle loops do not keep Postgres busy; a
        // full batch polls again at once.
        let pause = pace.after_poll(claimed, Instant::now());
        if (claimed as i64) < services.batch {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(pause) => {}
            }
        } else if futures::FutureExt::now_or_never(&mut shutdown).is_some() {
            return;
        }
    }
}
