//! Anti-entropy: a view compares itself with the event log, stream by stream, and fills what it
//! is missing, whatever lost it.
//!
//! The consumer acknowledges an event only after the view's store has it, and the store's own
//! safeguards (Redis `WAIT` for replicas, search and warehouse commits) make that write durable
//! where they can. They cannot always: Redis replicates asynchronously, so a failover may
//! promote a replica that never received a write its master had confirmed (the Redis Cluster
//! documentation says so of `WAIT` too), and a stream whose last event was lost that way would
//! never be corrected by the live path, which only fills a gap when the next event arrives.
//! The self-heal ([`super::self_heal`]) covers a store that lost everything; this covers one
//! that lost a few writes.
//!
//! [`keep_converged`] runs beside the view's consumer. Every [`Audit::every`] it reads the
//! streams the log changed since its last pass, up to [`Audit::settle`] ago (the live path has
//! had that long to apply them), asks the view for their stored versions
//! ([`View::versions`], one round trip per chunk), and brings any stream found behind up to
//! the log exactly as the live path fills a gap: load, apply the missing events in order,
//! compare-and-set. A write that loses its compare-and-set was overtaken by the consumer and
//! is left to it. Each repair is counted (`waybill_view_audit_repaired_total{view}`) and logged
//! at WARN with the streams: a repair means a store lost a write it had confirmed.
//!
//! The first pass of a process looks [`Audit::lookback`] back, so writes lost just before a
//! restart (or before this instance took the view over) are found too. Instances of a view
//! audit independently; their repairs are compare-and-sets and cannot apply an event twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use waybill_write_side::event_store::{ChangedStream, EventStore};

use super::replay::bring_level;
use super::View;

/// How a view audits itself against the log.
#[derive(Debug, Clone)]
pub struct Audit {
    /// How often a pass runs; zero turns the audit off.
    pub every: Duration,
    /// Streams changed less than this long ago are left to the live path (a view lagging by
    /// more than this is filled from the log by the audit, which only costs work).
    pub settle: Duration,
    /// How far back the first pass of a process looks.
    pub lookback: Duration,
    /// Streams read per pass at most; the rest is read by the next passes.
    pub limit: i64,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(15),
            settle: Duration::from_secs(15),
            lookback: Duration::from_secs(300),
            limit: 20_000,
        }
    }
}

/// Streams per versions read and repair.
const CHUNK: usize = 500;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Streams of this view compared with the log.
    pub checked: usize,
    /// Streams found behind the log and brought up to it.
    pub repaired: Vec<String>,
    /// Streams found behind whose events do not apply (left to the consumer's dead letters).
    pub unappliable: usize,
}

/// Audits `view` against the log every [`Audit::every`] until dropped (beside the consumer),
/// skipping passes while `ready` says the store is not filled (the self-heal's fill is then
/// writing every stream, and the skipped span is read once it is done).
pub async fn keep_converged<V, R, F>(events: EventStore, view: V, audit: Audit, ready: R)
where
    V: View,
    R: Fn() -> F,
    F: std::future::Future<Output = bool>,
{
    if audit.every.is_zero() {
        return std::future::pending().await;
    }
    let name = view.name().to_owned();
    let mut checked_until = Utc::now() - chrono_duration(audit.lookback);
    let mut ticks = tokio::time::interval(audit.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut failures: u32 = 0;
    loop {
        ticks.tick().await;
        if !ready().await {
            continue;
        }
        let until = Utc::now() - chrono_duration(audit.settle);
        match pass(&events, &view, checked_until, until, audit.limit).await {
            Ok((report, reached)) => {
                failures = 0;
                checked_until = reached;
                metrics::counter!("waybill_view_audit_checked_total", "view" => name.clone())
                    .increment(report.checked as u64);
                if !report.repaired.is_empty() {
                    metrics::counter!("waybill_view_audit_repaired_total", "view" => name.clone())
                        .increment(report.repaired.len() as u64);
                    let shown: Vec<&str> = report
                        .repaired
                        .iter()
                        .take(10)
                        .map(String::as_str)
                        .collect();
                    tracing::warn!(view = %name, repaired = report.repaired.len(),
                        streams = ?shown,
                        "view was behind the event log by more than the settle time (a store that lost confirmed writes, or a consumer that lags): filled from the log");
                }
            }
            Err(error) => {
                // The store or the log is down: the same span is read again next time. Said at
                // WARN from the third pass in a row that fails, so a view that cannot be
                // checked for long shows up.
                failures += 1;
                if failures >= 3 {
                    tracing::warn!(view = %name, %error, failures, "view audit postponed again");
                } else {
                    tracing::debug!(view = %name, %error, "view audit postponed");
                }
            }
        }
    }
}

/// Compares the streams changed in `(after, until]` (at most `limit`) with `view` and fills
/// those behind. Returns what it did and how far the log was read.
pub async fn pass<V: View>(
    events: &EventStore,
    view: &V,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<(AuditReport, DateTime<Utc>), String> {
    if until <= after {
        return Ok((AuditReport::default(), after));
    }
    let changed = events
        .streams_changed(after, until, limit)
        .await
        .map_err(|e| e.to_string())?;
    let reached = reached(&changed, after, until, limit);
    let changed: Vec<ChangedStream> = changed
        .into_iter()
        .filter(|c| view.handles(&c.stream_id))
        .collect();
    let mut report = AuditReport {
        checked: changed.len(),
        ..AuditReport::default()
    };
    for chunk in changed.chunks(CHUNK) {
        let ids: Vec<String> = chunk.iter().map(|c| c.stream_id.clone()).collect();
        let stored = view.versions(&ids).await.map_err(|e| e.to_string())?;
        let behind: Vec<String> = chunk
            .iter()
            .zip(stored)
            .filter(|(logged, stored)| *stored < logged.version)
            .map(|(logged, _)| logged.stream_id.clone())
            .collect();
        let levelled = bring_level(events, view, &behind)
            .await
            .map_err(|e| e.to_string())?;
        report.repaired.extend(levelled.written);
        report.unappliable += levelled.unappliable;
    }
    Ok((report, reached))
}

/// How far a read of `(after, until]` covered the log: all of it, or (cut at `limit`) up to
/// just before the last stream's change, so streams changed at that same instant are read
/// again rather than skipped.
fn reached(
    changed: &[ChangedStream],
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> DateTime<Utc> {
    match changed.last() {
        Some(last) if changed.len() as i64 >= limit => {
            let before = last.changed_at - chrono::Duration::microseconds(1);
            if before > after {
                before
            } else {
                last.changed_at
            }
        }
        _ => until,
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
