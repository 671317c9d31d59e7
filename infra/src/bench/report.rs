//! The benchmark's result: what is printed as a table and written as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::baseline::BaselineResult;
use super::cpu::CpuReport;
use super::lag::LagResult;
use super::load::LoadResult;
use crate::config::BenchPlaceArgs;

/// Targets from issue 2 on this 2-core machine.
#[derive(Debug, Clone, Serialize)]
pub struct Goals {
    pub orders_per_sec: f64,
    pub latency_p99_ms: f64,
    pub lag_p99_ms: f64,
}

impl Goals {
    pub fn issue_2() -> Self {
        Self {
            orders_per_sec: 2_000.0,
            latency_p99_ms: 50.0,
            lag_p99_ms: 100.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// From a histogram of microseconds, in milliseconds.
    pub fn ms_of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1_000.0;
        if h.is_empty() {
            return Self {
                p50: 0.0,
                p95: 0.0,
                p99: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1_000.0,
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Second {
    pub second: usize,
    /// Commands answered in this second.
    pub orders: u64,
    /// Lag of the orders accepted in this second (None when none were).
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub benchmark: &'static str,
    pub orders: usize,
    pub clients: usize,
    pub accepted: u64,
    pub statuses: std::collections::BTreeMap<String, u64>,
    pub seconds: f64,
    pub orders_per_sec: f64,
    /// One `OrderPlaced` event per order.
    pub events_per_sec: f64,
    pub latency_ms: Percentiles,
    pub projection_lag_ms: Percentiles,
    pub projection_observed: u64,
    pub projection_missing: u64,
    /// 201 received → the order's document in the search index (in-process runs).
    pub search_lag_ms: Option<Percentiles>,
    pub search_missing: Option<u64>,
    /// Per view, the longest time it applied nothing while events waited
    /// (`waybill_projector_stall_longest_seconds`, in-process runs).
    pub longest_stall_s: std::collections::BTreeMap<String, f64>,
    pub baseline: Option<BaselineResult>,
    /// Pipeline events/s divided by the plain-INSERT baseline's events/s.
    pub ratio_to_baseline: Option<f64>,
    pub goals: Goals,
    pub goals_met: GoalsMet,
    pub cpus: usize,
    /// CPU per accepted order per process, from the first placement until every order was
    /// seen in the views the bench samples (in-process runs).
    pub cpu: Option<CpuReport>,
    /// CPU per event of the baseline's inserts.
    pub baseline_cpu: Option<CpuReport>,
    pub finished_at: String,
    pub timeline: Vec<Second>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GoalsMet {
    pub throughput: bool,
    pub latency_p99: bool,
    pub lag_p99: bool,
}

impl BenchReport {
    pub fn new(
        args: &BenchPlaceArgs,
        load: &LoadResult,
        lag: &LagResult,
        baseline: Option<BaselineResult>,
        goals: Goals,
    ) -> Self {
        let seconds = load.elapsed.as_secs_f64().max(1e-6);
        let orders_per_sec = load.accepted as f64 / seconds;
        let latency_ms = Percentiles::ms_of(&load.latency_us);
        let projection_lag_ms = Percentiles::ms_of(&lag.lag_us);
        let ratio_to_baseline = baseline
            .as_ref()
            .filter(|b| b.events_per_sec > 0.0)
            .map(|b| orders_per_sec / b.events_per_sec);
        let goals_met = GoalsMet {
            throughput: orders_per_sec >= goals.orders_per_sec,
            latency_p99: latency_ms.p99 < goals.latency_p99_ms,
            lag_p99: lag.missing == 0 && projection_lag_ms.p99 < goals.lag_p99_ms,
        };
        let lag_by_second = lag
            .samples
            .iter()
            .map(|(at, lag)| (at.saturating_duration_since(load.started), *lag));
        Self {
            benchmark: "place",
            orders: args.orders,
            clients: args.clients,
            accepted: load.accepted,
            statuses: load.statuses.clone(),
            seconds,
            orders_per_sec,
            events_per_sec: orders_per_sec,
            latency_ms,
            projection_lag_ms,
            projection_observed: lag.lag_us.len(),
            projection_missing: lag.missing,
            search_lag_ms: None,
            search_missing: None,
            longest_stall_s: Default::default(),
            baseline,
            ratio_to_baseline,
            goals,
            goals_met,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu: None,
            baseline_cpu: None,
            finished_at: chrono::Utc::now().to_rfc3339(),
            timeline: timeline(&load.per_second, lag_by_second),
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
        let _ = writeln!(
            out,
            "\nwaybill bench place — {} orders, {} clients, {} CPUs",
            self.orders, self.clients, self.cpus
        );
        let _ = writeln!(out, "{:<34} {:>12}  goal", "metric", "value");
        let _ = writeln!(out, "{}", "-".repeat(64));
        let _ = writeln!(out, "{:<34} {:>12}", "accepted (201)", self.accepted);
        let _ = writeln!(
            out,
            "{:<34} {:>12}",
            "responses by status",
            format!("{:?}", self.statuses)
        );
        let _ = writeln!(out, "{:<34} {:>12.2}", "duration (s)", self.seconds);
        let _ = writeln!(
            out,
            "{:<34} {:>12.0}  >= {:.0} {}",
            "orders/s",
            self.orders_per_sec,
            self.goals.orders_per_sec,
            mark(self.goals_met.throughput)
        );
        let l = &self.latency_ms;
        let _ = writeln!(out, "{:<34} {:>12.2}", "command latency p50 (ms)", l.p50);
        let _ = writeln!(out, "{:<34} {:>12.2}", "command latency p95 (ms)", l.p95);
        let _ = writeln!(
            out,
            "{:<34} {:>12.2}  < {:.0} {}",
            "command latency p99 (ms)",
            l.p99,
            self.goals.latency_p99_ms,
            mark(self.goals_met.latency_p99)
        );
        let _ = writeln!(out, "{:<34} {:>12.2}", "command latency max (ms)", l.max);
        let g = &self.projection_lag_ms;
        let _ = writeln!(out, "{:<34} {:>12.2}", "projection lag p50 (ms)", g.p50);
        let _ = writeln!(
            out,
            "{:<34} {:>12.2}  < {:.0} {}",
            "projection lag p99 (ms)",
            g.p99,
            self.goals.lag_p99_ms,
            mark(self.goals_met.lag_p99)
        );
        let _ = writeln!(out, "{:<34} {:>12.2}", "projection lag max (ms)", g.max);
        let _ = writeln!(
            out,
            "{:<34} {:>12}",
            "views seen / missing",
            format!("{}/{}", self.projection_observed, self.projection_missing)
        );
        if let Some(s) = &self.search_lag_ms {
            let _ = writeln!(out, "{:<34} {:>12.2}", "search view lag p50 (ms)", s.p50);
            let _ = writeln!(
                out,
                "{:<34} {:>12.2}  < 1000 {}",
                "search view lag p99 (ms)",
                s.p99,
                mark(s.p99 < 1_000.0 && self.search_missing == Some(0))
            );
            let _ = writeln!(
                out,
                "{:<34} {:>12}",
                "search documents missing",
                self.search_missing.unwrap_or(0)
            );
        }
        for (view, stall) in &self.longest_stall_s {
            let _ = writeln!(
                out,
                "{:<34} {:>12.2}  <= 1 {}",
                format!("longest stall, {view} (s)"),
                stall,
                mark(*stall <= 1.0)
            );
        }
        if let Some(b) = &self.baseline {
            let _ = writeln!(
                out,
                "{:<34} {:>12.0}",
                "baseline multi-row INSERT events/s", b.events_per_sec
            );
            let _ = writeln!(
                out,
                "{:<34} {:>12}",
                "  (events x rows/stmt, connections)",
                format!("{}x{}, {}", b.events, b.batch, b.connections)
            );
        }
        if let Some(r) = self.ratio_to_baseline {
            let _ = writeln!(out, "{:<34} {:>12.3}", "pipeline / baseline", r);
        }
        if let Some(cpu) = &self.cpu {
            out.push_str(&cpu.table("pipeline"));
        }
        if let Some(cpu) = &self.baseline_cpu {
            out.push_str(&cpu.table("baseline multi-row INSERT"));
        }
        out
    }
}

/// Per-second throughput joined with the lag of the orders accepted in that second.
fn timeline(per_second: &[u64], lags: impl Iterator<Item = (Duration, Duration)>) -> Vec<Second> {
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); per_second.len()];
    for (offset, lag) in lags {
        let s = offset.as_secs() as usize;
        if s >= buckets.len() {
            buckets.resize(s + 1, Vec::new());
        }
        buckets[s].push(lag.as_secs_f64() * 1_000.0);
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(second, mut lags)| {
            lags.sort_by(f64::total_cmp);
            let at = |q: f64| {
                (!lags.is_empty()).then(|| lags[((lags.len() - 1) as f64 * q).round() as usize])
            };
            Second {
                second,
                orders: per_second.get(second).copied().unwrap_or(0),
                lag_p50_ms: at(0.50),
                lag_p99_ms: at(0.99),
            }
        })
        .collect()
}

/// Writes `report` as JSON to `out` (making its folder) and `svg` beside it (`out` with the
/// extension `svg`); returns the chart's path.
pub fn write_with_chart(
    out: &std::path::Path,
    report: &impl serde::Serialize,
    svg: &str,
) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    let svg_path = out.with_extension("svg");
    std::fs::write(&svg_path, svg).with_context(|| format!("writing {}", svg_path.display()))?;
    Ok(svg_path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timeline_joins_throughput_and_lag_per_second() {
        let ms = Duration::from_millis;
        let lags = vec![(ms(100), ms(10)), (ms(900), ms(30)), (ms(1_500), ms(5))];
        let t = timeline(&[10, 20, 5], lags.into_iter());
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].orders, 10);
        assert_eq!(t[0].lag_p50_ms, Some(30.0));
        assert_eq!(t[1].lag_p99_ms, Some(5.0));
        assert_eq!(t[2].lag_p50_ms, None);
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in 1..=1000 {
            h.record(us * 100).unwrap();
        }
        let p = Percentiles::ms_of(&h);
        assert!((p.p50 - 50.0).abs() < 0.5, "{p:?}");
        assert!((p.p99 - 99.0).abs() < 0.5, "{p:?}");
        assert!((p.max - 100.0).abs() < 0.5, "{p:?}");
    }
}

/// `waybill_projector_stall_longest_seconds` per view, read from a Prometheus text rendering.
pub fn longest_stalls(metrics: &str) -> std::collections::BTreeMap<String, f64> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("waybill_projector_stall_longest_seconds{view=\""))
        .filter_map(|rest| {
            let (view, value) = rest.split_once("\"}")?;
            Some((view.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod stall_tests {
    #[test]
    fn longest_stalls_are_read_per_view() {
        let text = "# TYPE waybill_projector_stall_longest_seconds gauge\n\
            waybill_projector_stall_longest_seconds{view=\"tracking\"} 0.25\n\
            waybill_projector_stall_longest_seconds{view=\"search\"} 4.5\n\
            waybill_projector_lag_seconds{view=\"search\"} 1\n";
        let stalls = super::longest_stalls(text);
        assert_eq!(stalls.len(), 2);
        assert_eq!(stalls["tracking"], 0.25);
        assert_eq!(stalls["search"], 4.5);
    }
}
