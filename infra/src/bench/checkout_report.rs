//! The result of `bench checkout`: what each phase measured, the flow's times worked out from
//! the event store, the goals of issue 3, and the table, JSON and SVG made of them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::cpu::CpuReport;
use super::load::LoadResult;
use super::report::Percentiles;
use super::svg::{self, Series};
use crate::config::BenchCheckoutArgs;

/// Issue 3's targets on this 2-core machine.
#[derive(Debug, Clone, Serialize)]
pub struct CheckoutGoals {
    pub confirmed_per_sec: f64,
    pub placed_to_confirmed_p99_ms: f64,
}

impl CheckoutGoals {
    pub fn issue_3() -> Self {
        Self {
            confirmed_per_sec: 1_000.0,
            placed_to_confirmed_p99_ms: 250.0,
        }
    }
}

/// Placement as the HTTP clients saw it.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementRun {
    pub accepted: u64,
    pub statuses: BTreeMap<String, u64>,
    pub seconds: f64,
    pub orders_per_sec: f64,
    pub latency_ms: Percentiles,
}

impl PlacementRun {
    pub fn of(load: &LoadResult) -> Self {
        let seconds = load.elapsed.as_secs_f64().max(1e-6);
        Self {
            accepted: load.accepted,
            statuses: load.statuses.clone(),
            seconds,
            orders_per_sec: load.accepted as f64 / seconds,
            latency_ms: Percentiles::ms_of(&load.latency_us),
        }
    }
}

/// One order's progress, read back from the event store.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderTimes {
    pub placed: Option<DateTime<Utc>>,
    pub confirmed: Option<DateTime<Utc>>,
    pub captured: Option<DateTime<Utc>>,
    pub captures: u32,
    pub last_event: String,
}

/// The checkout worker's own numbers over the phase, from the process's metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerStats {
    pub passes: f64,
    pub flows_claimed: f64,
    pub flows_per_pass: f64,
    pub mean_pass_ms: f64,
    pub inventory_batches: f64,
    pub mean_inventory_batch: f64,
    pub commit_batches: f64,
    pub mean_commit_batch: f64,
    pub serialization_retries: f64,
    pub webhooks: f64,
}

impl WorkerStats {
    /// The change between two renderings of the Prometheus metrics.
    pub fn between(before: &str, after: &str) -> Self {
        let delta = |name: &str| metric(after, name) - metric(before, name);
        let mean = |sum: f64, count: f64| if count > 0.0 { sum / count } else { 0.0 };
        let passes = delta("waybill_checkout_pass_seconds_count");
        let flows_claimed = delta("waybill_checkout_flows_advanced_total");
        let inventory_batches = delta("waybill_inventory_batch_size_count");
        let commit_batches = delta("waybill_commit_batch_size_count");
        Self {
            passes,
            flows_claimed,
            flows_per_pass: mean(flows_claimed, passes),
            mean_pass_ms: mean(delta("waybill_checkout_pass_seconds_sum"), passes) * 1_000.0,
            inventory_batches,
            mean_inventory_batch: mean(
                delta("waybill_inventory_batch_size_sum"),
                inventory_batches,
            ),
            commit_batches,
            mean_commit_batch: mean(delta("waybill_commit_batch_size_sum"), commit_batches),
            serialization_retries: delta("waybill_serialization_retries_total"),
            webhooks: delta("waybill_webhooks_total"),
        }
    }
}

/// The sum over every label set of the series `name` in a Prometheus text rendering.
pub(super) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One second of the flow phase, counted from the first placement.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlowSecond {
    pub second: usize,
    pub placed: u64,
    pub confirmed: u64,
    pub captured: u64,
    /// Placement → confirmation of the orders placed in this second.
    pub confirm_p50_ms: Option<f64>,
    pub confirm_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckoutRun {
    pub placement: PlacementRun,
    pub orders_in_store: usize,
    pub confirmed: u64,
    pub captured: u64,
    /// Accepted orders with no OrderConfirmed when the wait ended.
    pub unconfirmed: u64,
    /// Their latest events, counted.
    pub unconfirmed_by_last_event: BTreeMap<String, u64>,
    pub uncaptured: u64,
    /// Orders with more than one PaymentCaptured (must be 0).
    pub multiply_captured: u64,
    /// Confirmed orders over the span from the first placement to the last confirmation.
    pub confirmed_per_sec: f64,
    pub captured_per_sec: f64,
    pub placed_to_confirmed_ms: Percentiles,
    pub placed_to_captured_ms: Percentiles,
    /// How long after the last placement the last order was captured (1 s resolution).
    pub settled_after_load_s: f64,
    pub worker: WorkerStats,
    /// CPU per confirmed order per process, from the first placement until every order was
    /// captured (or the deadline).
    pub cpu: CpuReport,
    pub timeline: Vec<FlowSecond>,
}

impl CheckoutRun {
    pub fn new(
        placement: PlacementRun,
        orders: &[OrderTimes],
        accepted: u64,
        settled_after_load: std::time::Duration,
        worker: WorkerStats,
        cpu: CpuReport,
    ) -> Self {
        let mut to_confirmed = histogram();
        let mut to_captured = histogram();
        let mut unconfirmed_by_last_event: BTreeMap<String, u64> = BTreeMap::new();
        let (mut confirmed, mut captured, mut multiply_captured) = (0, 0, 0);
        let first_placed = orders.iter().filter_map(|o| o.placed).min();
        let mut last_confirmed = first_placed;
        let mut last_captured = first_placed;
        let micros = |from: DateTime<Utc>, to: DateTime<Utc>| {
            u64::try_from((to - from).num_microseconds().unwrap_or(0).max(1)).unwrap_or(1)
        };
        for order in orders {
            match (order.placed, order.confirmed) {
                (Some(placed), Some(at)) => {
                    confirmed += 1;
                    to_confirmed.saturating_record(micros(placed, at));
                    last_confirmed = last_confirmed.max(Some(at));
                }
                _ => {
                    *unconfirmed_by_last_event
                        .entry(order.last_event.clone())
                        .or_default() += 1;
                }
            }
            if let (Some(placed), Some(at)) = (order.placed, order.captured) {
                captured += 1;
                to_captured.saturating_record(micros(placed, at));
                last_captured = last_captured.max(Some(at));
            }
            if order.captures > 1 {
                multiply_captured += 1;
            }
        }
        let rate = |n: u64, last: Option<DateTime<Utc>>| match (first_placed, last) {
            (Some(first), Some(last)) if last > first => {
                n as f64 / ((last - first).num_microseconds().unwrap_or(1) as f64 / 1e6)
            }
            _ => 0.0,
        };
        Self {
            placement,
            orders_in_store: orders.len(),
            confirmed,
            captured,
            unconfirmed: accepted.saturating_sub(confirmed),
            unconfirmed_by_last_event,
            uncaptured: accepted.saturating_sub(captured),
            multiply_captured,
            confirmed_per_sec: rate(confirmed, last_confirmed),
            captured_per_sec: rate(captured, last_captured),
            placed_to_confirmed_ms: Percentiles::ms_of(&to_confirmed),
            placed_to_captured_ms: Percentiles::ms_of(&to_captured),
            settled_after_load_s: settled_after_load.as_secs_f64(),
            worker,
            cpu,
            timeline: timeline(orders, first_placed),
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Placements, confirmations and captures per second since `start`, with the confirmation
/// latency of the orders placed in each second.
fn timeline(orders: &[OrderTimes], start: Option<DateTime<Utc>>) -> Vec<FlowSecond> {
    let Some(start) = start else {
        return Vec::new();
    };
    let second_of = |at: DateTime<Utc>| usize::try_from((at - start).num_seconds()).unwrap_or(0);
    let last = orders
        .iter()
        .flat_map(|o| [o.placed, o.confirmed, o.captured])
        .flatten()
        .max()
        .map_or(0, second_of);
    let mut seconds: Vec<(u64, u64, u64, Vec<f64>)> = vec![(0, 0, 0, Vec::new()); last + 1];
    for order in orders {
        if let Some(placed) = order.placed {
            let slot = &mut seconds[second_of(placed)];
            slot.0 += 1;
            if let Some(confirmed) = order.confirmed {
                slot.3
                    .push((confirmed - placed).num_microseconds().unwrap_or(0) as f64 / 1e3);
            }
        }
        if let Some(confirmed) = order.confirmed {
            seconds[second_of(confirmed)].1 += 1;
        }
        if let Some(captured) = order.captured {
            seconds[second_of(captured)].2 += 1;
        }
    }
    seconds
        .into_iter()
        .enumerate()
        .map(|(second, (placed, confirmed, captured, mut latencies))| {
            latencies.sort_by(f64::total_cmp);
            let at = |q: f64| {
                (!latencies.is_empty())
                    .then(|| latencies[((latencies.len() - 1) as f64 * q).round() as usize])
            };
            FlowSecond {
                second,
                placed,
                confirmed,
                captured,
                confirm_p50_ms: at(0.50),
                confirm_p99_ms: at(0.99),
            }
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckoutGoalsMet {
    pub confirmed_per_sec: bool,
    pub placed_to_confirmed_p99: bool,
    pub all_confirmed: bool,
    pub no_double_capture: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckoutReport {
    pub benchmark: &'static str,
    pub orders: usize,
    pub clients: usize,
    pub deadline_secs: u64,
    /// Placement alone (checkout worker off), same orders, its own scratch environment.
    pub placement_only: Option<PlacementRun>,
    /// CPU per placed order per process while the placement-only load ran.
    pub placement_only_cpu: Option<CpuReport>,
    pub flow: CheckoutRun,
    /// Placement orders/s with the flow running divided by placement alone.
    pub placement_ratio_to_baseline: Option<f64>,
    /// Confirmed orders/s divided by placement-alone orders/s.
    pub confirmed_ratio_to_baseline: Option<f64>,
    pub goals: CheckoutGoals,
    pub goals_met: CheckoutGoalsMet,
    pub cpus: usize,
    pub finished_at: String,
}

impl CheckoutReport {
    pub fn new(
        args: &BenchCheckoutArgs,
        placement_only: Option<PlacementRun>,
        flow: CheckoutRun,
    ) -> Self {
        let goals = CheckoutGoals::issue_3();
        let base = placement_only
            .as_ref()
            .map(|b| b.orders_per_sec)
            .filter(|r| *r > 0.0);
        let goals_met = CheckoutGoalsMet {
            confirmed_per_sec: flow.confirmed_per_sec >= goals.confirmed_per_sec,
            placed_to_confirmed_p99: flow.confirmed > 0
                && flow.placed_to_confirmed_ms.p99 < goals.placed_to_confirmed_p99_ms,
            all_confirmed: flow.unconfirmed == 0 && flow.placement.accepted as usize == args.orders,
            no_double_capture: flow.multiply_captured == 0,
        };
        Self {
            benchmark: "checkout",
            orders: args.orders,
            clients: args.clients,
            deadline_secs: args.deadline_secs,
            placement_ratio_to_baseline: base.map(|b| flow.placement.orders_per_sec / b),
            confirmed_ratio_to_baseline: base.map(|b| flow.confirmed_per_sec / b),
            placement_only,
            placement_only_cpu: None,
            flow,
            goals,
            goals_met,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            finished_at: Utc::now().to_rfc3339(),
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
        let f = &self.flow;
        let _ = writeln!(
            out,
            "\nwaybill bench checkout — {} orders, {} clients, {} CPUs",
            self.orders, self.clients, self.cpus
        );
        let _ = writeln!(
            out,
            "{:<36} {:>14} {:>14}  goal",
            "metric", "placement only", "whole flow"
        );
        let _ = writeln!(out, "{}", "-".repeat(78));
        let base = self.placement_only.as_ref();
        let both = |out: &mut String, name: &str, b: Option<String>, v: String, goal: &str| {
            let _ = writeln!(
                out,
                "{name:<36} {:>14} {v:>14}  {goal}",
                b.unwrap_or_else(|| "-".to_owned())
            );
        };
        both(
            &mut out,
            "placed (201)",
            base.map(|b| b.accepted.to_string()),
            f.placement.accepted.to_string(),
            "",
        );
        both(
            &mut out,
            "placement orders/s",
            base.map(|b| format!("{:.0}", b.orders_per_sec)),
            format!("{:.0}", f.placement.orders_per_sec),
            "",
        );
        for (name, pick) in [
            ("placement latency p50 (ms)", 0),
            ("placement latency p99 (ms)", 1),
            ("placement latency max (ms)", 2),
        ] {
            let get = |p: &Percentiles| [p.p50, p.p99, p.max][pick];
            both(
                &mut out,
                name,
                base.map(|b| format!("{:.2}", get(&b.latency_ms))),
                format!("{:.2}", get(&f.placement.latency_ms)),
                "",
            );
        }
        let _ = writeln!(out, "{}", "-".repeat(78));
        let one = |out: &mut String, name: &str, v: String, goal: String| {
            let _ = writeln!(out, "{name:<36} {:>14} {v:>14}  {goal}", "");
        };
        one(
            &mut out,
            "confirmed orders/s",
            format!("{:.0}", f.confirmed_per_sec),
            format!(
                ">= {:.0} {}",
                self.goals.confirmed_per_sec,
                mark(self.goals_met.confirmed_per_sec)
            ),
        );
        one(
            &mut out,
            "captured orders/s",
            format!("{:.0}", f.captured_per_sec),
            String::new(),
        );
        let c = &f.placed_to_confirmed_ms;
        one(
            &mut out,
            "placed→confirmed p50 (ms)",
            format!("{:.1}", c.p50),
            String::new(),
        );
        one(
            &mut out,
            "placed→confirmed p95 (ms)",
            format!("{:.1}", c.p95),
            String::new(),
        );
        one(
            &mut out,
            "placed→confirmed p99 (ms)",
            format!("{:.1}", c.p99),
            format!(
                "< {:.0} {}",
                self.goals.placed_to_confirmed_p99_ms,
                mark(self.goals_met.placed_to_confirmed_p99)
            ),
        );
        one(
            &mut out,
            "placed→confirmed max (ms)",
            format!("{:.1}", c.max),
            String::new(),
        );
        one(
            &mut out,
            "placed→captured p99 (ms)",
            format!("{:.1}", f.placed_to_captured_ms.p99),
            String::new(),
        );
        one(
            &mut out,
            "confirmed / captured",
            format!("{}/{}", f.confirmed, f.captured),
            String::new(),
        );
        one(
            &mut out,
            &format!("unconfirmed after {} s", self.deadline_secs),
            f.unconfirmed.to_string(),
            format!("= 0 {}", mark(self.goals_met.all_confirmed)),
        );
        if !f.unconfirmed_by_last_event.is_empty() {
            one(
                &mut out,
                "  their latest events",
                String::new(),
                format!("{:?}", f.unconfirmed_by_last_event),
            );
        }
        one(
            &mut out,
            "orders captured more than once",
            f.multiply_captured.to_string(),
            format!("= 0 {}", mark(self.goals_met.no_double_capture)),
        );
        if let Some(r) = self.placement_ratio_to_baseline {
            one(
                &mut out,
                "placement / placement only",
                format!("{r:.3}"),
                String::new(),
            );
        }
        if let Some(r) = self.confirmed_ratio_to_baseline {
            one(
                &mut out,
                "confirmed/s / placement only",
                format!("{r:.3}"),
                String::new(),
            );
        }
        let _ = writeln!(out, "{}", "-".repeat(78));
        let w = &f.worker;
        one(
            &mut out,
            "worker passes / flows per pass",
            format!("{:.0} / {:.1}", w.passes, w.flows_per_pass),
            String::new(),
        );
        one(
            &mut out,
            "worker mean pass (ms)",
            format!("{:.1}", w.mean_pass_ms),
            String::new(),
        );
        one(
            &mut out,
            "inventory batches / mean size",
            format!("{:.0} / {:.1}", w.inventory_batches, w.mean_inventory_batch),
            String::new(),
        );
        one(
            &mut out,
            "commit batches / mean size",
            format!("{:.0} / {:.1}", w.commit_batches, w.mean_commit_batch),
            String::new(),
        );
        one(
            &mut out,
            "serialization retries / webhooks",
            format!("{:.0} / {:.0}", w.serialization_retries, w.webhooks),
            String::new(),
        );
        if let Some(cpu) = &self.placement_only_cpu {
            out.push_str(&cpu.table("placement only, during the load"));
        }
        out.push_str(&f.cpu.table("whole flow"));
        out
    }

    /// Placements, confirmations and captures per second (top) and the placement →
    /// confirmation latency of the orders placed in each second (bottom).
    pub fn chart(&self) -> String {
        let t = &self.flow.timeline;
        let x = |s: usize| s as f64 + 0.5;
        let per_second = |name, color, pick: fn(&FlowSecond) -> u64| Series {
            name,
            color,
            points: t
                .iter()
                .map(|s| (x(s.second), Some(pick(s) as f64)))
                .collect(),
        };
        let latency = |name, color, pick: fn(&FlowSecond) -> Option<f64>| Series {
            name,
            color,
            points: t.iter().map(|s| (x(s.second), pick(s))).collect(),
        };
        let x_max = t.len().max(1) as f64;
        let height = svg::TOP + 2.0 * svg::PANEL_HEIGHT + svg::GAP + 50.0;
        let width = svg::WIDTH;
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let f = &self.flow;
        let title = format!(
            "waybill bench checkout: {} orders, {} clients — {:.0} confirmed/s, placed→confirmed p99 {:.0} ms",
            self.orders, self.clients, f.confirmed_per_sec, f.placed_to_confirmed_ms.p99
        );
        let _ = write!(
            out,
            r#"<text x="{}" y="24" font-size="14" font-weight="bold">{}</text>"#,
            svg::LEFT,
            svg::escape(&title)
        );
        svg::panel(
            &mut out,
            svg::TOP,
            "Orders per second (from the event store)",
            x_max,
            &[
                per_second("placed", "#1f77b4", |s| s.placed),
                per_second("confirmed", "#2ca02c", |s| s.confirmed),
                per_second("captured", "#ff7f0e", |s| s.captured),
            ],
            Some(self.goals.confirmed_per_sec),
        );
        svg::panel(
            &mut out,
            svg::TOP + svg::PANEL_HEIGHT + svg::GAP,
            "Placed → confirmed by second of placement (ms)",
            x_max,
            &[
                latency("p50 (ms)", "#2ca02c", |s| s.confirm_p50_ms),
                latency("p99 (ms)", "#d62728", |s| s.confirm_p99_ms),
            ],
            Some(self.goals.placed_to_confirmed_p99_ms),
        );
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">seconds since the first placement</text>"#,
            svg::LEFT + (width - svg::LEFT - svg::RIGHT) / 2.0,
            height - 12.0
        );
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn order(placed: i64, confirmed: Option<i64>, captures: u32) -> OrderTimes {
        OrderTimes {
            placed: Some(at(placed)),
            confirmed: confirmed.map(at),
            captured: confirmed.filter(|_| captures > 0).map(|c| at(c + 5)),
            captures,
            last_event: if captures > 0 {
                "PaymentCaptured".to_owned()
            } else {
                "PaymentAuthorized".to_owned()
            },
        }
    }

    fn placement() -> PlacementRun {
        PlacementRun {
            accepted: 4,
            statuses: BTreeMap::new(),
            seconds: 1.0,
            orders_per_sec: 4.0,
            latency_ms: Percentiles::ms_of(&histogram()),
        }
    }

    #[test]
    fn flow_counts_unconfirmed_and_double_captured_orders_and_their_latency() {
        let orders = vec![
            order(0, Some(100), 1),
            order(200, Some(400), 2),
            order(1_100, Some(1_900), 1),
            order(1_500, None, 0),
        ];
        let run = CheckoutRun::new(
            placement(),
            &orders,
            4,
            Duration::from_secs(1),
            WorkerStats::default(),
            CpuReport::empty(),
        );
        assert_eq!((run.confirmed, run.captured), (3, 3));
        assert_eq!(run.unconfirmed, 1);
        assert_eq!(run.unconfirmed_by_last_event["PaymentAuthorized"], 1);
        assert_eq!(run.multiply_captured, 1);
        // 3 confirmations between the first placement (0) and the last confirmation (1.9 s).
        assert!((run.confirmed_per_sec - 3.0 / 1.9).abs() < 1e-6);
        assert!((run.placed_to_confirmed_ms.max - 800.0).abs() < 1.0);
        assert!((run.placed_to_confirmed_ms.p50 - 200.0).abs() < 1.0);
        assert_eq!(run.timeline.len(), 2);
        assert_eq!((run.timeline[0].placed, run.timeline[0].confirmed), (2, 2));
        assert_eq!(run.timeline[1].confirm_p50_ms, Some(800.0));
    }

    #[test]
    fn worker_stats_are_the_difference_between_two_renderings() {
        let before = "# TYPE waybill_checkout_pass_seconds histogram\n\
                      waybill_checkout_pass_seconds_sum 1\nwaybill_checkout_pass_seconds_count 10\n\
                      waybill_checkout_flows_advanced_total 100\n";
        let after = "waybill_checkout_pass_seconds_sum 3\nwaybill_checkout_pass_seconds_count 30\n\
                     waybill_checkout_flows_advanced_total 2100\n\
                     waybill_webhooks_total{outcome=\"applied\"} 4\n\
                     waybill_webhooks_total{outcome=\"ignored\"} 6\n";
        let w = WorkerStats::between(before, after);
        assert_eq!((w.passes, w.flows_claimed), (20.0, 2000.0));
        assert!((w.flows_per_pass - 100.0).abs() < 1e-9);
        assert!((w.mean_pass_ms - 100.0).abs() < 1e-9);
        assert_eq!(w.webhooks, 10.0);
        assert_eq!(w.serialization_retries, 0.0);
    }

    #[test]
    fn report_fails_goals_honestly_and_charts_both_panels() {
        let orders = vec![order(0, Some(300), 1), order(10, None, 0)];
        let flow = CheckoutRun::new(
            PlacementRun {
                accepted: 2,
                ..placement()
            },
            &orders,
            2,
            Duration::from_secs(1),
            WorkerStats::default(),
            CpuReport::empty(),
        );
        let args = BenchCheckoutArgs {
            orders: 2,
            clients: 1,
            out: "x.json".into(),
            deadline_secs: 5,
            no_baseline: false,
            keep: false,
        };
        let report = CheckoutReport::new(&args, Some(placement()), flow);
        assert!(!report.goals_met.confirmed_per_sec);
        assert!(!report.goals_met.placed_to_confirmed_p99);
        assert!(!report.goals_met.all_confirmed);
        assert!(report.goals_met.no_double_capture);
        let table = report.table();
        assert!(table.contains("MISSED") && table.contains("unconfirmed after 5 s"));
        let svg = report.chart();
        assert_eq!(svg.matches("<polyline").count(), 5);
        assert!(svg.contains("goal 1000") && svg.contains("goal 250"));
        assert!(!svg.contains("NaN"));
    }
}
