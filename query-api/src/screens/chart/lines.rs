//! Line charts over time: one line per label, drawn across the time the samples span (not an
//! empty window), with the latest value of each line in the legend.

use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};

use super::{colour, dash, frame, number, Key, Mark, Size};

/// Sized to be drawn about 360 px wide (a column of the operations grid, or a phone).
const SIZE: Size = Size {
    width: 360.0,
    height: 200.0,
    left: 44.0,
    bottom: 22.0,
    top: 12.0,
};

/// One line: its label and its points, oldest first.
pub struct Line<'a> {
    pub label: &'a str,
    pub points: &'a [(DateTime<Utc>, f64)],
}

/// The narrowest time axis: one sample is drawn at its right end.
const MIN_SPAN_SECS: i64 = 1;

/// The time axis of charts of `points`: from the first sample to the last, and at least
/// [`MIN_SPAN_SECS`] wide.
pub fn span<'a>(
    points: impl IntoIterator<Item = &'a DateTime<Utc>>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (first, last) =
        points
            .into_iter()
            .fold(None, |acc: Option<(DateTime<Utc>, DateTime<Utc>)>, at| {
                Some(acc.map_or((*at, *at), |(a, b)| (a.min(*at), b.max(*at))))
            })?;
    Some((first.min(last - Duration::seconds(MIN_SPAN_SECS)), last))
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
            let x = SIZE.left + (*at - from).num_milliseconds() as f64 / span * SIZE.plot_width();
            let y = SIZE.top + (1.0 - value.max(0.0) / max) * SIZE.plot_height();
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line chart of `lines` over the time their samples span (see [`span`]); `None` when
/// there is no sample to draw.
pub fn lines(id: &str, title: &str, unit: &str, lines: &[Line<'_>]) -> Option<Markup> {
    let (from, to) = span(lines.iter().flat_map(|l| l.points.iter().map(|(at, _)| at)))?;
    let max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|(_, v)| *v))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let middle = from + (to - from) / 2;
    // Minutes on a long axis; seconds too when minutes alone would repeat.
    let clock = if to - from < Duration::minutes(10) {
        "%H:%M:%S"
    } else {
        "%H:%M"
    };
    let mid_y = SIZE.top + SIZE.plot_height() / 2.0;
    let description = format!(
        "{} from {} to {} UTC; highest {} {unit}.",
        crate::screens::plural::count(lines.len() as u64, "series", "series"),
        from.format("%H:%M:%S"),
        to.format("%H:%M:%S"),
        number(max)
    );
    let body = html! {
        line x1=(SIZE.left) x2=(SIZE.width) y1=(SIZE.top) y2=(SIZE.top) stroke="#e0e0e0" stroke-width="1" {}
        line x1=(SIZE.left) x2=(SIZE.width) y1=(mid_y) y2=(mid_y) stroke="#e0e0e0" stroke-width="1" {}
        line x1=(SIZE.left) x2=(SIZE.width) y1=(SIZE.base()) y2=(SIZE.base()) stroke="#767676" stroke-width="1" {}
        text x=(SIZE.left - 4.0) y=(SIZE.top + 4.0) text-anchor="end" { (number(max)) }
        text x=(SIZE.left - 4.0) y=(mid_y + 4.0) text-anchor="end" { (number(max / 2.0)) }
        text x=(SIZE.left - 4.0) y=(SIZE.base() + 4.0) text-anchor="end" { "0" }
        text x=(SIZE.left) y=(SIZE.height - 4.0) { (from.format(clock)) }
        text x=(SIZE.left + SIZE.plot_width() / 2.0) y=(SIZE.height - 4.0) text-anchor="middle" { (middle.format(clock)) }
        text x=(SIZE.width) y=(SIZE.height - 4.0) text-anchor="end" { (to.format(clock)) " UTC" }
        @for (i, l) in lines.iter().enumerate() {
            polyline points=(path(l.points, from, to, max)) fill="none"
                stroke=(colour(i)) stroke-width="2" stroke-dasharray=[dash(i)] data-series=(i) {
                title { (l.label) }
            }
        }
    };
    let legend: Vec<Key<'_>> = lines
        .iter()
        .map(|l| Key {
            name: l.label,
            detail: html! {
                ": " strong { (l.points.last().map_or("–".to_owned(), |(_, v)| number(*v))) } " " (unit)
            },
        })
        .collect();
    Some(frame(
        id,
        title,
        &description,
        SIZE,
        body,
        Mark::Line,
        &legend,
    ))
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
            "44.0,178.0 202.0,95.0 360.0,12.0"
        );
    }

    #[test]
    fn the_time_axis_spans_the_samples_not_the_window_they_were_asked_in() {
        let a = [(t(600), 1.0), (t(660), 2.0)];
        let b = [(t(630), 1.0), (t(720), 2.0)];
        let all = a.iter().chain(b.iter()).map(|(at, _)| at);
        assert_eq!(span(all), Some((t(600), t(720))));
        // One sample: the narrowest axis, ending at it.
        assert_eq!(span([t(90)].iter()), Some((t(89), t(90))));
        assert_eq!(span(std::iter::empty()), None);
    }

    #[test]
    fn the_legend_shows_each_line_and_its_latest_value_in_the_line_colour() {
        let lag = [(t(0), 3.0), (t(10), 7.0)];
        assert!(lines("none", "Nothing", "messages", &[]).is_none());
        let chart = lines(
            "lag",
            "Lag <per view>",
            "messages",
            &[
                Line {
                    label: "tracking",
                    points: &lag,
                },
                Line {
                    label: "search",
                    points: &lag,
                },
            ],
        )
        .expect("samples to draw")
        .into_string();
        // The lines span the plot: the first sample at its left edge, the last at its right.
        assert!(chart.contains("points=\"44.0,"), "{chart}");
        assert!(chart.contains(" 360.0,"), "{chart}");
        assert!(
            chart.contains("tracking: <strong>7</strong> messages"),
            "{chart}"
        );
        assert!(chart.contains("Lag &lt;per view&gt;"));
        assert!(chart.contains(&format!("stroke=\"{}\"", colour(1))));
        assert!(chart.contains(&format!(
            "stroke=\"{}\" stroke-width=\"2\" stroke-dasharray=\"{}\"",
            colour(1),
            dash(1).unwrap_or_default()
        )));
    }
}
