//! A hand-rolled SVG chart of a benchmark run: orders answered per second (top) and the
//! projection lag p50/p99 of the orders accepted in each second (bottom), over time.

use std::fmt::Write as _;

use super::report::BenchReport;

pub const WIDTH: f64 = 900.0;
pub const PANEL_HEIGHT: f64 = 260.0;
pub const LEFT: f64 = 70.0;
pub const RIGHT: f64 = 150.0;
pub const TOP: f64 = 50.0;
pub const GAP: f64 = 60.0;

/// One line of a panel: a name, a colour and (x, y) points; `None` breaks the line.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, Option<f64>)>,
}

pub fn chart(report: &BenchReport) -> String {
    let x = |s: usize| s as f64 + 0.5;
    let throughput = Series {
        name: "orders/s",
        color: "#1f77b4",
        points: report
            .timeline
            .iter()
            .map(|s| (x(s.second), Some(s.orders as f64)))
            .collect(),
    };
    let lag_p50 = Series {
        name: "lag p50 (ms)",
        color: "#2ca02c",
        points: report
            .timeline
            .iter()
            .map(|s| (x(s.second), s.lag_p50_ms))
            .collect(),
    };
    let lag_p99 = Series {
        name: "lag p99 (ms)",
        color: "#d62728",
        points: report
            .timeline
            .iter()
            .map(|s| (x(s.second), s.lag_p99_ms))
            .collect(),
    };
    let x_max = report.timeline.len().max(1) as f64;
    let height = TOP + 2.0 * PANEL_HEIGHT + GAP + 50.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "waybill bench place: {} orders, {} clients — {:.0} orders/s, latency p99 {:.1} ms, lag p99 {:.1} ms",
        report.orders, report.clients, report.orders_per_sec, report.latency_ms.p99, report.projection_lag_ms.p99
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="14" font-weight="bold">{}</text>"#,
        escape(&title)
    );
    panel(
        &mut svg,
        TOP,
        "Throughput (orders answered per second)",
        x_max,
        &[throughput],
        Some(report.goals.orders_per_sec),
    );
    panel(
        &mut svg,
        TOP + PANEL_HEIGHT + GAP,
        "Projection lag by second of acceptance (ms)",
        x_max,
        &[lag_p50, lag_p99],
        Some(report.goals.lag_p99_ms),
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since start</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        height - 12.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// Draws axes, grid, the series and a dashed goal line into a panel whose top edge is `top`.
pub fn panel(
    svg: &mut String,
    top: f64,
    title: &str,
    x_max: f64,
    series: &[Series<'_>],
    goal: Option<f64>,
) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let bottom = top + PANEL_HEIGHT;
    let data_max = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|(_, y)| *y))
        .chain(goal)
        .fold(0.0_f64, f64::max);
    let y_max = nice_ceiling(data_max);
    let px = |x: f64| LEFT + x / x_max * plot_w;
    let py = |y: f64| bottom - y / y_max * PANEL_HEIGHT;

    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{}" font-weight="bold">{}</text>"#,
        top - 8.0,
        escape(title)
    );
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = py(v);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            label(v)
        );
    }
    let step = (x_max / 10.0).ceil().max(1.0);
    let mut t = 0.0;
    while t <= x_max {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            px(t),
            bottom + 16.0,
            t as u64
        );
        t += step;
    }
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{bottom}" x2="{:.1}" y2="{bottom}" stroke="#333"/><line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="#333"/>"##,
        LEFT + plot_w
    );
    if let Some(goal) = goal {
        let y = py(goal);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#999" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#666">goal {}</text>"##,
            LEFT + plot_w,
            LEFT + plot_w + 6.0,
            y + 4.0,
            label(goal)
        );
    }
    for (i, s) in series.iter().enumerate() {
        for run in s
            .points
            .split(|(_, y)| y.is_none())
            .filter(|r| !r.is_empty())
        {
            let points: Vec<String> = run
                .iter()
                .filter_map(|(x, y)| y.map(|y| format!("{:.1},{:.1}", px(*x), py(y))))
                .collect();
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                s.color,
                points.join(" ")
            );
        }
        let ly = top + 14.0 + 18.0 * i as f64;
        let lx = LEFT + plot_w + 12.0;
        let _ = write!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 18.0,
            s.color,
            lx + 24.0,
            ly + 4.0,
            escape(s.name)
        );
    }
}

/// 1, 2 or 5 times a power of ten, at least `v` (and at least 1).
fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 1.0 {
        return 1.0;
    }
    let magnitude = 10_f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn label(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::bench::report::{Goals, GoalsMet, Percentiles, Second};

    fn report() -> BenchReport {
        let p = Percentiles {
            p50: 5.0,
            p95: 9.0,
            p99: 12.0,
            max: 20.0,
            mean: 6.0,
        };
        BenchReport {
            benchmark: "place",
            orders: 300,
            clients: 4,
            accepted: 300,
            statuses: [("201".to_owned(), 300)].into_iter().collect(),
            seconds: 3.0,
            orders_per_sec: 100.0,
            events_per_sec: 100.0,
            latency_ms: p.clone(),
            projection_lag_ms: p,
            projection_observed: 300,
            projection_missing: 0,
            search_lag_ms: None,
            search_missing: None,
            longest_stall_s: Default::default(),
            baseline: None,
            ratio_to_baseline: None,
            goals: Goals::issue_2(),
            goals_met: GoalsMet {
                throughput: false,
                latency_p99: true,
                lag_p99: true,
            },
            cpus: 2,
            cpu: None,
            baseline_cpu: None,
            finished_at: "2026-01-01T00:00:00Z".to_owned(),
            timeline: (0..3)
                .map(|second| Second {
                    second,
                    orders: 100,
                    lag_p50_ms: Some(5.0),
                    lag_p99_ms: Some(12.0),
                })
                .collect(),
        }
    }

    #[test]
    fn chart_has_both_panels_their_series_and_goal_lines() {
        let svg = chart(&report());
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(
            svg.matches("<polyline").count(),
            3,
            "throughput, lag p50, lag p99"
        );
        assert!(svg.contains("goal 2000") && svg.contains("goal 100"));
        assert!(svg.contains("Throughput") && svg.contains("Projection lag"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn nice_ceiling_rounds_up_to_1_2_5() {
        assert_eq!(nice_ceiling(0.3), 1.0);
        assert_eq!(nice_ceiling(1_800.0), 2_000.0);
        assert_eq!(nice_ceiling(2_001.0), 5_000.0);
        assert_eq!(nice_ceiling(60.0), 100.0);
    }

    #[test]
    fn panel_draws_one_polyline_per_unbroken_run_and_escapes_text() {
        let mut svg = String::new();
        let series = Series {
            name: "a<b",
            color: "red",
            points: vec![
                (0.5, Some(1.0)),
                (1.5, Some(2.0)),
                (2.5, None),
                (3.5, Some(4.0)),
            ],
        };
        panel(&mut svg, 10.0, "t & u", 4.0, &[series], None);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a&lt;b") && svg.contains("t &amp; u"));
        assert!(!svg.contains("NaN"));
    }
}

/// One bar of [`bars`]: a label, its value and a note printed beside it.
pub struct Bar<'a> {
    pub label: &'a str,
    pub value: f64,
    pub note: String,
    pub color: &'a str,
}

/// A horizontal bar chart comparing a few designs measured in one run (e.g. decisions/s).
pub fn bars(title: &str, unit: &str, bars: &[Bar<'_>]) -> String {
    const ROW: f64 = 46.0;
    const LABEL: f64 = 130.0;
    const BAR_WIDTH: f64 = 520.0;
    let height = TOP + ROW * bars.len() as f64 + 40.0;
    let max = bars
        .iter()
        .map(|b| b.value)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="28" font-size="16">{}</text>"#,
        escape(title)
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let width = (bar.value / max * BAR_WIDTH).max(1.0);
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{:.1}" y="{y:.1}" width="{width:.1}" height="28" fill="{}"/><text x="{:.1}" y="{:.1}">{:.0} {}  {}</text>"#,
            LEFT + LABEL - 8.0,
            y + 19.0,
            escape(bar.label),
            LEFT + LABEL,
            bar.color,
            LEFT + LABEL + width + 8.0,
            y + 19.0,
            bar.value,
            escape(unit),
            escape(&bar.note)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod bar_tests {
    use super::*;

    #[test]
    fn bars_are_scaled_to_the_largest_and_labels_are_escaped() {
        let svg = bars(
            "a <b> c",
            "decisions/s",
            &[
                Bar {
                    label: "batching",
                    value: 1000.0,
                    note: "p99 4 ms".into(),
                    color: "#1f77b4",
                },
                Bar {
                    label: "baseline",
                    value: 250.0,
                    note: String::new(),
                    color: "#ff7f0e",
                },
            ],
        );
        assert!(svg.contains(r#"width="520.0""#), "{svg}");
        assert!(svg.contains(r#"width="130.0""#), "{svg}");
        assert!(svg.contains("a &lt;b&gt; c"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
