//! The process manager's loop: run passes while there is due work, poll when idle, sweep expired
//! stock reservations as a safety net behind the flows' own deadlines, and purge old risk
//! signals.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{flows, run_pass, CheckoutServices};

/// How often risk signals older than a few velocity windows are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// How the loop paces itself.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Wait between polls when nothing was due.
    pub poll_interval: Duration,
    /// How often expired reservations are swept directly in the inventory.
    pub sweep_interval: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(10),
            sweep_interval: Duration::from_secs(5),
        }
    }
}

/// Runs passes until `shutdown` resolves.
pub async fn run_worker(
    services: CheckoutServices,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut last_sweep = Instant::now();
    let mut last_gauge = Instant::now() - Duration::from_secs(60);
    let mut last_purge = Instant::now();
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
        if last_sweep.elapsed() >= config.sweep_interval {
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
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            // Velocity counts only look back one window; keep a few for the record.
            let cutoff = Utc::now() - services.risk_window * 4;
            if let Err(error) = crate::risk_signals::purge_before(&services.pool, cutoff).await {
                tracing::warn!(%error, "purging old risk signals failed");
            }
        }
        if last_gauge.elapsed() >= Duration::from_secs(2) {
            last_gauge = Instant::now();
            if let Ok(due) = flows::due_count(&services.pool, Utc::now()).await {
                metrics::gauge!("waybill_checkout_flows_due").set(due as f64);
            }
        }
        if (claimed as i64) < services.batch {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(config.poll_interval) => {}
            }
        } else if futures::FutureExt::now_or_never(&mut shutdown).is_some() {
            return;
        }
    }
}
