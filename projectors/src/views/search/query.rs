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

/// Field to order by; ties are broken by order id in the same direction, so pages never skip
/// or repeat an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortField {
    #[default]
    CreatedAt,
    UpdatedAt,
    Total,
}

impl SortField {
    /// The indexed field's name (the same in both backends).
    pub fn field(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::Total => "total",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Sort {
    /// `created_at`, `-created_at` (newest first, the default), `updated_at`, `-updated_at`,
    /// `total`, `-total`.
    pub fn parse(raw: &str) -> Option<Self> {
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
    pub fn newest_first() -> Self {
        Self {
            field: SortField::CreatedAt,
            descending: true,
        }
    }
    fn code(self) -> String {
        format!(
            "{}{}",
            if self.descending { "-" } else { "" },
            self.field.field()
        )
    }
}

/// Where a page ended: the last hit's sort value and order id. Opaque to clients (hex of
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
    }
}
