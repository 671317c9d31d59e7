//! Server-rendered SVG line charts over time (no script, presentation attributes only, which
//! the screens' CSP allows): one line per label, a title and a description for screen readers,
//! and the latest value of each line in the legend.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;
/// Line colours, matching the legend swatches in the stylesheet (`.swatch-N`).
const COLOURS: [&str; 5] = ["#0b5394", "#a4161a", "#7a4b00", "#1e6b2f", "#6a1b9a"];

/// One line: its label and its points, oldest first.
pub struct Line<'a> {
    pub label: &'a str,
    pub points: &'a [(DateTime<Utc>, f64)],
}

/// A number for an axis or legend: whole numbers as such, others with one decimal.
pub fn number(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// The chart's points as SVG coordinates: time on x from `from` to `to`, values on y from 0 to
/// `max`.
fn path(
    points: &[(DateTime<Utc>, f64)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max: f64,
) -> String {
    let span = (to - from).num_milliseconds().max(1) as f64;
    points
        .iter()
        .map(|(at, value)| {
            let x = LEFT + (*at - from).num_milliseconds() as f64 / span * (WIDTH - LEFT);
            let y = TOP + (1.0 - value.max(0.0) / max) * (HEIGHT - TOP - BOTTOM);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line chart of `lines` between `from` and `to`.
pub fn lines(
    id: &str,
    title: &str,
    unit: &str,
    lines: &[Line<'_>],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Markup {
    let max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|(_, v)| *v))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    html! {
        figure class="ops-chart" id=(id) {
            svg class="chart" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
                aria-labelledby={ (id) "-title " (id) "-desc" } xmlns="http://www.w3.org/2000/svg" {
                title id={ (id) "-title" } { (title) }
                desc id={ (id) "-desc" } {
                    (lines.len()) " series from " (from.format("%H:%M:%S")) " to " (to.format("%H:%M:%S")) " UTC; highest " (number(max)) " " (unit) "."
                }
                line x1=(LEFT) x2=(WIDTH) y1=(HEIGHT - BOTTOM) y2=(HEIGHT - BOTTOM) stroke="#767676" stroke-width="1" {}
                text x=(LEFT - 6.0) y=(TOP + 8.0) text-anchor="end" { (number(max)) }
                text x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { "0" }
                text x=(LEFT) y=(HEIGHT - 6.0) { (from.format("%H:%M")) }
                text x=(WIDTH) y=(HEIGHT - 6.0) text-anchor="end" { (to.format("%H:%M")) " UTC" }
                @for (i, l) in lines.iter().enumerate() {
                    polyline points=(path(l.points, from, to, max)) fill="none"
                        stroke=(COLOURS[i % COLOURS.len()]) stroke-width="2" {
                        title { (l.label) }
                    }
                }
            }
            figcaption {
                ul class="legend" {
                    @for (i, l) in lines.iter().enumerate() {
                        li {
                            span class={ "swatch-" (i % COLOURS.len()) } {}
                            (l.label) ": "
                            strong { (l.points.last().map_or("–".to_owned(), |(_, v)| number(*v))) } " " (unit)
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0)
            .single()
            .unwrap()
    }

    #[test]
    fn points_span_the_plot_from_the_first_moment_to_the_last() {
        let points = [(t(0), 0.0), (t(50), 5.0), (t(100), 10.0)];
        assert_eq!(
            path(&points, t(0), t(100), 10.0),
            "56.0,176.0 388.0,93.0 720.0,10.0"
        );
    }

    #[test]
    fn the_legend_shows_each_line_and_its_latest_value() {
        let lag = [(t(0), 3.0), (t(10), 7.0)];
        let chart = lines(
            "lag",
            "Lag <per view>",
            "messages",
            &[Line {
                label: "tracking",
                points: &lag,
            }],
            t(0),
            t(10),
        )
        .into_string();
        assert!(
            chart.contains("tracking: <strong>7</strong> messages"),
            "{chart}"
        );
        assert!(chart.contains("Lag &lt;per view&gt;"));
        assert_eq!(number(0.25), "0.2");
        assert_eq!(number(12.0), "12");
    }
}
