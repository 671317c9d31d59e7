//! Tables that stack on a phone: each row becomes a block and each cell a "label: value" line,
//! the label taken from the cell's column (`data-label`, shown by the stylesheet), so a header
//! and the label a phone shows for it are written once.

use maud::{html, Markup};

/// A column: its header, and the class its cells share (`num` right-aligns, `day` keeps a
/// date on one line).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub label: &'static str,
    pub class: Option<&'static str>,
}

impl Column {
    pub const fn text(label: &'static str) -> Self {
        Self { label, class: None }
    }

    pub const fn num(label: &'static str) -> Self {
        Self {
            label,
            class: Some("num"),
        }
    }

    pub const fn day(label: &'static str) -> Self {
        Self {
            label,
            class: Some("day"),
        }
    }
}

/// A table of `rows` (one cell per column, in column order) under `columns`; `id` and
/// `caption` when given.
pub fn stacked(
    id: Option<&str>,
    caption: Option<&str>,
    columns: &[Column],
    rows: impl IntoIterator<Item = Vec<Markup>>,
) -> Markup {
    html! {
        div class="table-wrap" {
            table class="stack" id=[id] {
                @if let Some(caption) = caption { caption class="muted" { (caption) } }
                thead { tr { @for c in columns { th scope="col" class=[c.class] { (c.label) } } } }
                tbody {
                    @for row in rows {
                        tr {
                            @for (c, cell) in columns.iter().zip(row) {
                                td data-label=(c.label) class=[c.class] { (cell) }
                            }
                        }
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
    fn every_cell_is_labelled_by_its_column_header() {
        let table = stacked(
            Some("t"),
            None,
            &[Column::day("Day"), Column::num("Net <after fees>")],
            [vec![html! { "2026-12-01" }, html! { "1.00" }]],
        )
        .into_string();
        assert!(table.contains(r#"<th scope="col" class="num">Net &lt;after fees&gt;</th>"#));
        assert!(table.contains(r#"<td data-label="Day" class="day">2026-12-01</td>"#));
        assert!(table.contains(r#"<td data-label="Net &lt;after fees&gt;" class="num">1.00</td>"#));
        assert!(table.contains(r#"<table class="stack" id="t">"#));
    }
}
