//! Server-rendered SVG bar charts (no script, no inline style: presentation attributes only,
//! which the pages' CSP allows). Each chart has a title and a description for screen readers;
//! the table beside it carries the same numbers.

use maud::{html, Markup};

/// One series of a chart: a name and one value per category (minor units).
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<i64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 10.0;
/// Bar colours, matching the legend swatches in the stylesheet (`.swatch-N`).
const COLOURS: [&str; 6] = [
    "#0b5394", "#a4161a", "#7a4b00", "#4a4a4a", "#1e6b2f", "#6a1b9a",
];

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
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: i64| TOP + (max - v) as f64 / span * plot_h;
    let group_w = (WIDTH - LEFT) / categories.len().max(1) as f64;
    let bar_w = (group_w * 0.8 / series.len().max(1) as f64).max(1.0);
    let zero = y(0);
    let label_every = (categories.len() / 10).max(1);
    html! {
        figure {
            svg class="chart" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
                aria-labelledby={ (id) "-title " (id) "-desc" } xmlns="http://www.w3.org/2000/svg" {
                title id={ (id) "-title" } { (title) }
                desc id={ (id) "-desc" } {
                    (categories.len()) " days; highest " (label(max)) ", lowest " (label(min)) ". The table below has every value."
                }
                line x1=(LEFT) x2=(WIDTH) y1=(zero) y2=(zero) stroke="#767676" stroke-width="1" {}
                text x=(LEFT - 6.0) y=(TOP + 8.0) text-anchor="end" { (label(max)) }
                @if min < 0 { text x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { (label(min)) } }
                text x=(LEFT - 6.0) y=(zero + 4.0) text-anchor="end" { (label(0)) }
                @for (i, category) in categories.iter().enumerate() {
                    @let x0 = LEFT + i as f64 * group_w + group_w * 0.1;
                    @for (j, s) in series.iter().enumerate() {
                        @let v = s.values.get(i).copied().unwrap_or(0);
                        @let top = y(v.max(0));
                        @let h = (y(v.min(0)) - top).max(if v == 0 { 0.0 } else { 1.0 });
                        rect x=(x0 + j as f64 * bar_w) y=(top) width=(bar_w) height=(h)
                            fill=(COLOURS[j % COLOURS.len()]) {
                            title { (category) " · " (s.name) ": " (label(v)) }
                        }
                    }
                    @if i % label_every == 0 {
                        text x=(x0 + group_w * 0.4) y=(HEIGHT - 8.0) text-anchor="middle" { (category.get(5..).unwrap_or(category)) }
                    }
                }
            }
            figcaption {
                ul class="legend" {
                    @for (j, s) in series.iter().enumerate() {
                        li { span class={ "swatch-" (j % COLOURS.len()) } aria-hidden="true" {} (s.name) }
                    }
                }
            }
        }
    }
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
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(svg.contains("2026-12-02 · collected: 2500 minor"));
        assert!(svg.contains("2026-12-01 · net: -300 minor"));
        assert!(svg.contains("role=\"img\""));
        assert!(!svg.contains("style="), "the CSP allows no inline style");
    }
}
