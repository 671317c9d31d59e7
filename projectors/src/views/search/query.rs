//! What an agent asks the search index: free text, filters, sort, a page size and a cursor.
//! Backends turn it into their own query language; parsing it from HTTP is the query API's job.

use chrono::{DateTime, Utc};
use waybill_schemas::views::{SearchFacets, SearchHit, TrackingStatus};
use waybill_schemas::Channel;

/// Largest page a search returns.
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchQuery {
    /// Free text (see [`super::fields::query_terms`]); empty matches every order.
    pub text: String,
    /// Any of these statuses (empty: any).
    pub status: Vec<TrackingStatus>,
    /// Any of these channels (empty: any).
    pub channel: Vec<Channel>,
    /// Placed at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Placed before.
    pub created_to: Option<DateTime<Utc>>,
    /// Grand total at least (minor units).
    pub total_min: Option<i64>,
    /// Grand total at most (minor units).
    pub total_max: Option<i64>,
    pub has_return: Option<bool>,
    pub has_exception: Option<bool>,
    pub sort: Sort,
    pub limit: usize,
    /// Continue after this hit of the previous page (same sort).
    pub after: Option<Cursor>,
}

/// Largest number of hits a relevance-ranked search pages through (like Elasticsearch's
/// `max_result_window`); narrow the query or sort by a field to go further.
pub const MAX_RELEVANCE_WINDOW: usize = 10_000;

/// Field to order by; ties are broken by order id in the same direction, so pages never skip
/// or repeat an order.
///
/// `Relevance` ranks by how well the free text matched (see [`super::fields`] for the
/// boosts), best first; ties, and every hit of a query without text, go newest first by order
/// id (ids are UUIDv7: time-ordered). Its pages are counted by offset, up to
/// [`MAX_RELEVANCE_WINDOW`]: scores are not stable values to resume after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortField {
    #[default]
    CreatedAt,
    UpdatedAt,
    Total,
    Relevance,
}

impl SortField {
    /// The indexed field's name (the same in both backends); `_score` for relevance.
    pub fn field(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::Total => "total",
            Self::Relevance => "_score",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Sort {
    /// `relevance` (best match first), `created_at`, `-created_at` (newest first),
    /// `updated_at`, `-updated_at`, `total`, `-total`.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw == "relevance" {
            return Some(Self::relevance());
        }
        let (descending, name) = match raw.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, raw),
        };
        let field = match name {
            "created_at" => SortField::CreatedAt,
            "updated_at" => SortField::UpdatedAt,
            "total" => SortField::Total,
            _ => return None,
        };
        Some(Self { field, descending })
    }
    /// The order when none is asked for: by relevance when there is free text to rank by,
    /// newest first when there is none.
    pub fn default_for(text: &str) -> Self {
        if text.trim().is_empty() {
            Self::newest_first()
        } else {
            Self::relevance()
        }
    }
    pub fn relevance() -> Self {
        Self {
            field: SortField::Relevance,
            descending: true,
        }
    }
    pub fn newest_first() -> Self {
        Self {
            field: SortField::CreatedAt,
            descending: true,
        }
    }
    fn code(self) -> String {
        if self.field == SortField::Relevance {
            return "relevance".to_owned();
        }
        format!(
            "{}{}",
            if self.descending { "-" } else { "" },
            self.field.field()
        )
    }
}

/// Where a page ended: the last hit's sort value and order id (for relevance: the number of
/// hits already returned, and the last one's id). Opaque to clients (hex of
/// `<sort>|<value>|<order id>`); a cursor is only valid with the sort it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort: Sort,
    pub value: i64,
    pub order_id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        hex::encode(format!(
            "{}|{}|{}",
            self.sort.code(),
            self.value,
            self.order_id
        ))
    }
    /// `None` for anything that is not a cursor this code made.
    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = hex::decode(raw).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '|');
        let sort = Sort::parse(parts.next()?)?;
        let value = parts.next()?.parse().ok()?;
        let order_id = parts.next()?;
        waybill_schemas::OrderId::parse(order_id).ok()?;
        Some(Self {
            sort,
            value,
            order_id: order_id.to_owned(),
        })
    }
}

impl SearchQuery {
    /// Hits a relevance-ranked page skips (from its cursor); 0 for other sorts.
    pub fn offset(&self) -> usize {
        match (&self.sort.field, &self.after) {
            (SortField::Relevance, Some(after)) => usize::try_from(after.value)
                .unwrap_or(0)
                .min(MAX_RELEVANCE_WINDOW),
            _ => 0,
        }
    }

    /// The page size (at least one hit; a relevance page never reaches past the window).
    pub fn page_size(&self) -> usize {
        let limit = self.limit.max(1);
        match self.sort.field {
            SortField::Relevance => limit.min(MAX_RELEVANCE_WINDOW - self.offset()),
            _ => limit,
        }
    }

    /// The cursor after a page of `returned` hits ending at `last` (sort value, order id):
    /// `None` when the page was not full, or a relevance page reached the window's end.
    pub fn next_cursor(&self, returned: usize, last: Option<(i64, String)>) -> Option<Cursor> {
        let (value, order_id) = last?;
        if returned < self.limit.max(1) {
            return None;
        }
        let value = match self.sort.field {
            SortField::Relevance => {
                let next = self.offset() + returned;
                if next >= MAX_RELEVANCE_WINDOW {
                    return None;
                }
                i64::try_from(next).ok()?
            }
            _ => value,
        };
        Some(Cursor {
            sort: self.sort,
            value,
            order_id,
        })
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// All orders matching the query (not only this page).
    pub total: u64,
    pub facets: SearchFacets,
    /// Present when the page was full: pass it as `after` for the next page.
    pub next: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_refuses_garbage() {
        let cursor = Cursor {
            sort: Sort::newest_first(),
            value: -12,
            order_id: "0190f0c4-0000-7000-8000-000000000001".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("zz"), None);
        assert_eq!(Cursor::decode(&hex::encode("-total|1|not-an-id")), None);
    }

    #[test]
    fn sort_names_parse_with_direction() {
        assert_eq!(
            Sort::parse("-total"),
            Some(Sort {
                field: SortField::Total,
                descending: true
            })
        );
        assert_eq!(Sort::parse("name"), None);
        assert_eq!(Sort::parse("relevance"), Some(Sort::relevance()));
        assert_eq!(Sort::parse("-relevance"), None);
        assert_eq!(Sort::default_for(" "), Sort::newest_first());
        assert_eq!(Sort::default_for("ada"), Sort::relevance());
        let cursor = Cursor {
            sort: Sort::relevance(),
            value: 40,
            order_id: "0190f0c4-0000-7000-8000-000000000001".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
    }
}
