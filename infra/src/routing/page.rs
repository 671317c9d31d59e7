//! What `waybill routing simulate` writes: `simulation.json` (the aggregate and every order's
//! row), `orders.csv` (one line per order) and `index.html`, a self-contained page with the
//! aggregate and SVG histograms of the per-order cost, ETA and carbon deltas.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use waybill_schemas::Currency;
use waybill_write_side::domain::fulfillment::simulation::{Aggregate, OrderDelta};
use waybill_write_side::routing_simulation::Simulation;

use crate::bench::svg::escape;

#[derive(Serialize)]
struct SimulationFile<'a> {
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    candidate_config_version: &'a str,
    aggregate: &'a Aggregate,
    orders: &'a [OrderDelta],
}

/// Writes the three files into `dir`; the HTML page's path.
pub fn write_outputs(dir: &Path, simulation: &Simulation) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("simulation.json");
    let file = SimulationFile {
        from: simulation.from,
        to: simulation.to,
        candidate_config_version: &simulation.candidate_version,
        aggregate: &simulation.aggregate,
        orders: &simulation.orders,
    };
    std::fs::write(&json, serde_json::to_vec_pretty(&file)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let csv_path = dir.join("orders.csv");
    std::fs::write(&csv_path, csv(&simulation.orders)?)
        .with_context(|| format!("writing {}", csv_path.display()))?;
    let html = dir.join("index.html");
    std::fs::write(&html, page(simulation))
        .with_context(|| format!("writing {}", html.display()))?;
    Ok(html)
}

/// One line per order: recorded and candidate cost, carbon, ETA hours, nodes, and the deltas.
pub fn csv(orders: &[OrderDelta]) -> anyhow::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "order_id",
        "decided_at",
        "decisions",
        "changed",
        "recorded_cost_minor",
        "candidate_cost_minor",
        "cost_delta_minor",
        "recorded_co2_grams",
        "candidate_co2_grams",
        "co2_delta_grams",
        "recorded_eta_hours",
        "candidate_eta_hours",
        "eta_delta_hours",
        "recorded_nodes",
        "candidate_nodes",
        "recorded_unroutable_units",
        "candidate_unroutable_units",
    ])?;
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    for o in orders {
        out.write_record([
            o.order_id.to_string(),
            o.decided_at.to_rfc3339(),
            o.decisions.to_string(),
            o.changed.to_string(),
            o.recorded.cost_minor.to_string(),
            o.candidate.cost_minor.to_string(),
            o.cost_delta_minor.to_string(),
            o.recorded.co2_grams.to_string(),
            o.candidate.co2_grams.to_string(),
            o.co2_delta_grams.to_string(),
            opt(o.recorded.eta_hours),
            opt(o.candidate.eta_hours),
            opt(o.eta_delta_hours),
            o.recorded.nodes.to_string(),
            o.candidate.nodes.to_string(),
            o.recorded.unroutable_units.to_string(),
            o.candidate.unroutable_units.to_string(),
        ])?;
    }
    out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The aggregate in a few lines, for the terminal.
pub fn aggregate_lines(a: &Aggregate) -> Vec<String> {
    let money = |minor: i64| match Currency::parse(&a.currency) {
        Ok(c) => format!("{} {}", c.format_minor(minor), c.code()),
        Err(_) => format!("{minor} minor units"),
    };
    let eta = |h: Option<f64>| h.map_or("-".to_owned(), |h| format!("{h:.1} h"));
    vec![
        format!(
            "routing simulation: {} orders ({} decisions), {} changed by the candidate",
            a.orders, a.decisions, a.changed_orders
        ),
        format!(
            "  cost       {:>14} -> {:>14}  (delta {})",
            money(a.recorded.cost_minor),
            money(a.candidate.cost_minor),
            money(a.cost_delta_minor)
        ),
        format!(
            "  mean ETA   {:>14} -> {:>14}  (delta {})",
            eta(a.recorded.mean_eta_hours),
            eta(a.candidate.mean_eta_hours),
            eta(a.mean_eta_delta_hours)
        ),
        format!(
            "  carbon     {:>12} g -> {:>12} g  (delta {} g)",
            a.recorded.co2_grams, a.candidate.co2_grams, a.co2_delta_grams
        ),
        format!(
            "  split rate {:>13.2}% -> {:>13.2}%  (delta {:+.2} points; {} newly split, {} no longer)",
            a.recorded.split_rate * 100.0,
            a.candidate.split_rate * 100.0,
            a.split_rate_delta * 100.0,
            a.newly_split_orders,
            a.no_longer_split_orders
        ),
        format!(
            "  unroutable units {} -> {}",
            a.recorded.unroutable_units, a.candidate.unroutable_units
        ),
    ]
}

/// One histogram bin: `[low, high]` and how many orders fall in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bin {
    pub low: i64,
    pub high: i64,
    pub count: u64,
}

/// Up to `max_bins` equal-width integer bins from the smallest to the largest value.
pub fn histogram(values: &[i64], max_bins: i64) -> Vec<Bin> {
    let (Some(&min), Some(&max)) = (values.iter().min(), values.iter().max()) else {
        return Vec::new();
    };
    let span = u64::try_from(max - min + 1).unwrap_or(1);
    let per_bin = span
        .div_ceil(u64::try_from(max_bins.max(1)).unwrap_or(1))
        .max(1);
    let bins = i64::try_from(span.div_ceil(per_bin)).unwrap_or(1);
    let width = i64::try_from(per_bin).unwrap_or(1);
    let mut out: Vec<Bin> = (0..bins)
        .map(|i| Bin {
            low: min + i * width,
            high: min + (i + 1) * width - 1,
            count: 0,
        })
        .collect();
    for v in values {
        let i = usize::try_from((v - min) / width).unwrap_or(0);
        if let Some(bin) = out.get_mut(i) {
            bin.count += 1;
        }
    }
    out
}

/// An SVG bar chart of `bins`.
fn histogram_svg(title: &str, unit: &str, bins: &[Bin]) -> String {
    const W: f64 = 820.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 50.0;
    const TOP: f64 = 40.0;
    const PLOT_H: f64 = 150.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="22" font-size="14">{}</text>"#,
        escape(title)
    );
    if bins.is_empty() {
        let _ = write!(svg, r#"<text x="{LEFT}" y="80">no orders</text></svg>"#);
        return svg;
    }
    let max = bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
    let slot = (W - LEFT - 20.0) / bins.len() as f64;
    for (i, bin) in bins.iter().enumerate() {
        let x = LEFT + slot * i as f64;
        let h = if bin.count == 0 {
            0.0
        } else {
            (bin.count as f64 / max * PLOT_H).max(1.5)
        };
        let y = TOP + PLOT_H - h;
        let color = if bin.low <= 0 && bin.high >= 0 {
            "#9e9e9e"
        } else if bin.high < 0 {
            "#2e7d32"
        } else {
            "#c62828"
        };
        let label = if bin.low == bin.high {
            bin.low.to_string()
        } else {
            format!("{}…{}", bin.low, bin.high)
        };
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{} {}: {} orders</title></rect>"#,
            x + 1.0,
            (slot - 2.0).max(1.0),
            escape(&label),
            escape(unit),
            bin.count
        );
        if bin.count > 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x + slot / 2.0,
                y - 3.0,
                bin.count
            );
        }
        if bins.len() <= 12 || i % (bins.len() / 8).max(1) == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x + slot / 2.0,
                TOP + PLOT_H + 16.0,
                escape(&label)
            );
        }
    }
    let _ = write!(
        svg,
        r#"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="black"/><text x="{LEFT}" y="{2:.1}">per-order delta, {3} (candidate − recorded); green: lower, red: higher, grey: includes 0</text></svg>"#,
        TOP + PLOT_H,
        W - 20.0,
        TOP + PLOT_H + 36.0,
        escape(unit)
    );
    svg
}

/// The self-contained HTML page.
pub fn page(simulation: &Simulation) -> String {
    let a = &simulation.aggregate;
    let orders = &simulation.orders;
    let cost: Vec<i64> = orders.iter().map(|o| o.cost_delta_minor).collect();
    let eta: Vec<i64> = orders.iter().filter_map(|o| o.eta_delta_hours).collect();
    let co2: Vec<i64> = orders.iter().map(|o| o.co2_delta_grams).collect();
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Routing simulation</title><style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th:first-child,td:first-child{{text-align:left}}</style></head><body><h1>Routing simulation</h1><p>Decisions recorded from {} to {}, replayed with candidate config <code>{}</code> (recorded under {}).</p>"#,
        simulation.from.to_rfc3339(),
        simulation.to.to_rfc3339(),
        escape(&simulation.candidate_version),
        escape(
            &a.config_versions
                .iter()
                .map(|(v, n)| format!("{v} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
    let _ = write!(html, "<pre>");
    for line in aggregate_lines(a) {
        let _ = writeln!(html, "{}", escape(&line));
    }
    let _ = write!(html, "</pre>");
    let cost_unit = format!("minor units of {}", a.currency);
    for (title, unit, values) in [
        ("Cost change per order", cost_unit.as_str(), &cost),
        ("ETA change per order", "hours", &eta),
        ("Carbon change per order", "g CO2e", &co2),
    ] {
        let _ = write!(html, "<h2>{}</h2>", escape(title));
        html.push_str(&histogram_svg(title, unit, &histogram(values, 24)));
    }
    let mut changed: Vec<&OrderDelta> = orders.iter().filter(|o| o.changed).collect();
    changed.sort_by_key(|o| std::cmp::Reverse(o.cost_delta_minor.abs()));
    let _ = write!(
        html,
        "<h2>Changed orders (largest cost change first, up to 100 of {})</h2><table><tr><th>order</th><th>cost Δ</th><th>ETA Δ h</th><th>CO2 Δ g</th><th>nodes</th></tr>",
        changed.len()
    );
    for o in changed.iter().take(100) {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td></tr>",
            o.order_id,
            o.cost_delta_minor,
            o.eta_delta_hours.map(|h| h.to_string()).unwrap_or_default(),
            o.co2_delta_grams,
            o.recorded.nodes,
            o.candidate.nodes
        );
    }
    let _ = write!(
        html,
        "</table><p>Every order: <code>orders.csv</code>, <code>simulation.json</code> beside this page.</p></body></html>"
    );
    html
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_cover_every_value_once() {
        let values = [-30, -1, 0, 0, 0, 5, 60];
        let bins = histogram(&values, 10);
        assert_eq!(
            bins.iter().map(|b| b.count).sum::<u64>(),
            values.len() as u64
        );
        assert_eq!(bins.first().unwrap().low, -30);
        assert!(bins.last().unwrap().high >= 60);
        assert!(bins.len() <= 10);
        let zero = bins.iter().find(|b| b.low <= 0 && b.high >= 0).unwrap();
        assert!(zero.count >= 3);
    }

    #[test]
    fn one_value_is_one_bin() {
        assert_eq!(
            histogram(&[0, 0], 24),
            vec![Bin {
                low: 0,
                high: 0,
                count: 2
            }]
        );
        assert!(histogram(&[], 24).is_empty());
    }
}
