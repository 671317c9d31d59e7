//! Grouped bar charts: one group per category (a day), one bar per series, negatives below
//! the zero line; each bar's amount in its tooltip, and the table beside the chart carries the
//! same numbers.

use maud::{html, Markup};

use super::{colour, frame, Key, Mark, Size};

/// Sized to be drawn 360 to 576 px wide (a phone to the stylesheet's cap): axis text 11 to
/// 17 px.
const SIZE: Size = Size {
    width: 400.0,
    height: 220.0,
    left: 72.0,
    bottom: 24.0,
    top: 12.0,
};

/// Category labels shown at most (every n-th one past that).
const MAX_LABELS: usize = 8;

/// One series of a chart: a name and one value per category (minor units).
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<i64>,
}

/// A grouped bar chart: one group per category, one bar per series; `label` formats an amount
/// (the currency's exponent) for the axis and each bar's tooltip.
pub fn bars(
    id: &str,
    title: &str,
    categories: &[String],
    series: &[Series<'_>],
    label: &dyn Fn(i64) -> String,
) -> Markup {
    let all = series.iter().flat_map(|s| s.values.iter().copied());
    let max = all.clone().max().unwrap_or(0).max(0);
    let min = all.min().unwrap_or(0).min(0);
    let span = ((max - min) as f64).max(1.0);
    let y = |v: i64| SIZE.top + (max - v) as f64 / span * SIZE.plot_height();
    let group_w = SIZE.plot_width() / categories.len().max(1) as f64;
    let bar_w = (group_w * 0.8 / series.len().max(1) as f64).max(1.0);
    let zero = y(0);
    let label_every = categories.len().div_ceil(MAX_LABELS).max(1);
    let description = format!(
        "{}; highest {}, lowest {}. The table below has every value.",
        crate::screens::plural::count(categories.len() as u64, "day", "days"),
        label(max),
        label(min)
    );
    let body = html! {
        line x1=(SIZE.left) x2=(SIZE.width) y1=(zero) y2=(zero) stroke="#767676" stroke-width="1" {}
        text x=(SIZE.left - 4.0) y=(SIZE.top + 4.0) text-anchor="end" { (label(max)) }
        @if min < 0 { text x=(SIZE.left - 4.0) y=(SIZE.base()) text-anchor="end" { (label(min)) } }
        @if min == 0 || max > 0 { text x=(SIZE.left - 4.0) y=(zero + 4.0) text-anchor="end" { (label(0)) } }
        @for (i, category) in categories.iter().enumerate() {
            @let x0 = SIZE.left + i as f64 * group_w + group_w * 0.1;
            @for (j, s) in series.iter().enumerate() {
                @let v = s.values.get(i).copied().unwrap_or(0);
                @let top = y(v.max(0));
                @let h = (y(v.min(0)) - top).max(if v == 0 { 0.0 } else { 1.0 });
                rect x=(x0 + j as f64 * bar_w) y=(top) width=(bar_w) height=(h)
                    fill=(colour(j)) data-series=(j) {
                    title { (category) " · " (s.name) ": " (label(v)) }
                }
            }
            @if i % label_every == 0 {
                text x=(x0 + group_w * 0.4) y=(SIZE.height - 6.0) text-anchor="middle" { (category.get(5..).unwrap_or(category)) }
            }
        }
    };
    let legend: Vec<Key<'_>> = series
        .iter()
        .map(|s| Key {
            name: s.name,
            detail: html! {},
        })
        .collect();
    frame(id, title, &description, SIZE, body, Mark::Bar, &legend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_one_bar_per_value_with_its_amount_as_tooltip() {
        let svg = bars(
            "c",
            "Net per day",
            &["2026-12-01".to_owned(), "2026-12-02".to_owned()],
            &[
                Series {
                    name: "collected",
                    values: vec![1000, 2500],
                },
                Series {
                    name: "net",
                    values: vec![-300, 2000],
                },
            ],
            &|v| format!("{v} minor"),
        )
        .into_string();
        assert_eq!(svg.matches("<rect x=").count(), 4);
        assert!(svg.contains("2026-12-02 · collected: 2500 minor"));
        assert!(svg.contains("2026-12-01 · net: -300 minor"));
        assert!(svg.contains("2 days;"), "{svg}");
        assert!(svg.contains("role=\"img\""));
        assert!(!svg.contains("style="), "the CSP allows no inline style");
    }

    #[test]
    fn at_most_eight_day_labels_are_drawn() {
        let days: Vec<String> = (1..=30).map(|d| format!("2026-11-{d:02}")).collect();
        let svg = bars(
            "c",
            "Net",
            &days,
            &[Series {
                name: "net",
                values: vec![1; 30],
            }],
            &|v| v.to_string(),
        )
        .into_string();
        let labels = days
            .iter()
            .filter(|d| svg.contains(&format!(">{}</text>", &d[5..])))
            .count();
        assert!((1..=MAX_LABELS).contains(&labels), "{labels} labels");
    }
}
