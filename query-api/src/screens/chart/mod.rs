//! Server-rendered SVG charts for the staff screens (no script, no inline style: presentation
//! attributes only, which the screens' CSP allows): line charts over time ([`lines`], the
//! operations page) and grouped bar charts ([`bars`], the finance page).
//!
//! Both share one frame ([`frame`]): the `figure`, the `svg` with a title and a description for
//! screen readers, and a legend whose swatches are drawn from the same [`PALETTE`] entry (and,
//! for lines, the same [`DASHES`] entry) as their series, so a swatch cannot disagree with its
//! line or bar. Lines differ by dash as well as colour: series that lie on top of each other
//! stay visible, and colour is not the only cue.

pub mod bars;
pub mod lines;

use maud::{html, Markup};

/// Series colours, in series order (each at least 4.5:1 on white).
pub const PALETTE: [&str; 6] = [
    "#0b5394", "#a4161a", "#7a4b00", "#1e6b2f", "#6a1b9a", "#4a4a4a",
];

/// Line dash patterns, in series order (`None`: solid).
pub const DASHES: [Option<&str>; 6] = [
    None,
    Some("7 3"),
    Some("2 3"),
    Some("10 3 2 3"),
    Some("4 4"),
    Some("1 2"),
];

/// The colour of series `i`.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The dash pattern of line `i`.
pub fn dash(i: usize) -> Option<&'static str> {
    DASHES[i % DASHES.len()]
}

/// What a chart's marks are, so the legend draws the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Bar,
    Line,
}

/// The drawing area of a chart, in SVG user units. Axis text is 12 units high (the
/// stylesheet), so a chart drawn about `width` pixels wide shows it at 12 px.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub width: f64,
    pub height: f64,
    /// Room for the value axis' labels.
    pub left: f64,
    /// Room for the category or time axis' labels.
    pub bottom: f64,
    pub top: f64,
}

impl Size {
    /// The bottom of the plot (the value 0 on charts without negatives).
    pub fn base(&self) -> f64 {
        self.height - self.bottom
    }

    pub fn plot_width(&self) -> f64 {
        self.width - self.left
    }

    pub fn plot_height(&self) -> f64 {
        self.height - self.top - self.bottom
    }
}

/// One legend entry: the series' name and what follows it (e.g. its latest value).
pub struct Key<'a> {
    pub name: &'a str,
    pub detail: Markup,
}

/// A chart: `body` (the marks and axes, in `size`'s coordinates) inside the common frame.
pub fn frame(
    id: &str,
    title: &str,
    description: &str,
    size: Size,
    body: Markup,
    mark: Mark,
    legend: &[Key<'_>],
) -> Markup {
    html! {
        figure class="chart" id=(id) {
            svg class="chart" viewBox={ "0 0 " (size.width) " " (size.height) } role="img"
                aria-labelledby={ (id) "-title " (id) "-desc" } xmlns="http://www.w3.org/2000/svg" {
                title id={ (id) "-title" } { (title) }
                desc id={ (id) "-desc" } { (description) }
                (body)
            }
            figcaption {
                ul class="legend" {
                    @for (i, key) in legend.iter().enumerate() {
                        li data-series=(i) {
                            @match mark {
                                Mark::Bar => {
                                    svg class="swatch" viewBox="0 0 10 10" aria-hidden="true" focusable="false" {
                                        rect width="10" height="10" fill=(colour(i)) {}
                                    }
                                }
                                Mark::Line => {
                                    svg class="swatch line" viewBox="0 0 24 10" aria-hidden="true" focusable="false" {
                                        line x1="0" y1="5" x2="24" y2="5" stroke=(colour(i)) stroke-width="3" stroke-dasharray=[dash(i)] {}
                                    }
                                }
                            }
                            (key.name) (key.detail)
                        }
                    }
                }
            }
        }
    }
}

/// A number for an axis or legend: whole numbers as such, others with one decimal.
pub fn number(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_legend_swatch_has_its_series_colour_even_past_the_palette() {
        let keys: Vec<Key<'_>> = (0..8)
            .map(|_| Key {
                name: "s",
                detail: html! {},
            })
            .collect();
        let size = Size {
            width: 100.0,
            height: 50.0,
            left: 10.0,
            bottom: 10.0,
            top: 0.0,
        };
        let chart = frame("c", "T", "D", size, html! {}, Mark::Bar, &keys).into_string();
        for i in 0..8 {
            let swatch = format!(
                "<li data-series=\"{i}\"><svg class=\"swatch\" viewBox=\"0 0 10 10\" aria-hidden=\"true\" focusable=\"false\"><rect width=\"10\" height=\"10\" fill=\"{}\">",
                colour(i)
            );
            assert!(chart.contains(&swatch), "series {i}: {chart}");
        }
        assert_eq!(colour(6), colour(0));
        let lines = frame("c", "T", "D", size, html! {}, Mark::Line, &keys).into_string();
        assert!(
            lines.contains(&format!(
                "<line x1=\"0\" y1=\"5\" x2=\"24\" y2=\"5\" stroke=\"{}\" stroke-width=\"3\" stroke-dasharray=\"7 3\">",
                colour(1)
            )),
            "{lines}"
        );
        assert!(!chart.contains("style="), "the CSP allows no inline style");
    }

    #[test]
    fn numbers_are_whole_or_have_one_decimal() {
        assert_eq!(number(0.25), "0.2");
        assert_eq!(number(12.0), "12");
    }
}
