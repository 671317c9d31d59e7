//! `GET /console`: order search for agents. The query string is the search API's own
//! ([`crate::search::SearchParams`], parsed by [`crate::search::parse_search`]), so the screen
//! and the API accept exactly the same filters; facet counts link to the same search narrowed
//! by that value, and the next page follows the index's cursor.

use crate::screens::table::{stacked, Column};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::{html, Markup};
use waybill_projectors::views::search::SearchIndex;
use waybill_schemas::views::{FacetCount, SearchHit};
use waybill_schemas::{Currency, Money};

use super::ROLES;
use crate::http::AppState;
use crate::problem::Problem;
use crate::screens::layout::page;
use crate::screens::{require_role, url_encode, ScreenError, Session};
use crate::search::{parse_search, SearchParams};

/// An amount in its currency's exponent (the one formatter, [`Money`]'s `Display`).
pub fn money(minor: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Ok(currency) => Money { minor, currency }.to_string(),
        Err(_) => format!("{minor} (minor units) {currency}"),
    }
}

/// The query string of this search with `changes` applied (`None` removes a parameter).
fn link(params: &SearchParams, changes: &[(&str, Option<&str>)]) -> String {
    let current: [(&str, Option<&String>); 9] = [
        ("q", params.q.as_ref()),
        ("status", params.status.as_ref()),
        ("channel", params.channel.as_ref()),
        ("created_from", params.created_from.as_ref()),
        ("created_to", params.created_to.as_ref()),
        ("has_return", params.has_return.as_ref()),
        ("has_exception", params.has_exception.as_ref()),
        ("sort", params.sort.as_ref()),
        ("limit", params.limit.as_ref()),
    ];
    let mut pairs: Vec<String> = Vec::new();
    for (name, value) in current {
        let value = match changes.iter().find(|(n, _)| *n == name) {
            Some((_, changed)) => changed.map(str::to_owned),
            None => value.filter(|v| !v.is_empty()).cloned(),
        };
        if let Some(value) = value {
            pairs.push(format!("{name}={}", url_encode(&value)));
        }
    }
    if let Some((_, Some(cursor))) = changes.iter().find(|(n, _)| *n == "cursor") {
        pairs.push(format!("cursor={}", url_encode(cursor)));
    }
    format!("/console?{}", pairs.join("&"))
}

/// A highlight fragment (`Ada <em>Lovelace</em>`) as text with `<mark>`s: the fragment is raw
/// order data, so it is split on the markers and every piece is escaped as text.
fn highlighted(fragment: &str) -> Markup {
    let mut pieces = Vec::new();
    let mut rest = fragment;
    while let Some(start) = rest.find("<em>") {
        let (before, after) = rest.split_at(start);
        let after = &after[4..];
        let (marked, tail) = after.split_once("</em>").unwrap_or((after, ""));
        pieces.push((before.to_owned(), false));
        pieces.push((marked.to_owned(), true));
        rest = tail;
    }
    pieces.push((rest.to_owned(), false));
    html! {
        @for (text, marked) in &pieces {
            @if *marked { mark { (text) } } @else { (text) }
        }
    }
}

fn facet(title: &str, name: &str, counts: &[FacetCount], params: &SearchParams) -> Markup {
    html! {
        h2 id={ "facet-" (name) } { (title) }
        ul aria-labelledby={ "facet-" (name) } {
            @for count in counts {
                li { a href=(link(params, &[(name, Some(&count.value))])) { (count.value) } " (" (count.count) ")" }
            }
            @if counts.is_empty() { li class="muted" { "none" } }
        }
    }
}

fn select(id: &str, label: &str, current: Option<&String>, options: &[(&str, &str)]) -> Markup {
    html! {
        div {
            label for=(id) { (label) }
            select id=(id) name=(id) {
                @for (value, text) in options {
                    option value=(value) selected[current.map(String::as_str).unwrap_or("") == *value] { (text) }
                }
            }
        }
    }
}

fn filters(params: &SearchParams) -> Markup {
    html! {
        form method="get" action="/console" role="search" aria-label="Search orders" class="card" {
            div class="filters" {
                div {
                    label for="q" { "Search" }
                    input id="q" name="q" type="search" value=[params.q.as_deref()]
                        placeholder="name, email, phone, order ref, SKU, tracking no.";
                }
                (select("status", "Status", params.status.as_ref(), &[("", "Any"), ("placed", "Placed"), ("in_review", "In review"), ("awaiting_payment", "Awaiting payment"), ("confirmed", "Confirmed"), ("cancelled", "Cancelled")]))
                (select("channel", "Channel", params.channel.as_ref(), &[("", "Any"), ("web", "Web"), ("app", "App"), ("pos", "POS"), ("marketplace", "Marketplace")]))
                (select("has_return", "Has a return", params.has_return.as_ref(), &[("", "Either"), ("true", "Yes"), ("false", "No")]))
                (select("has_exception", "Has an exception", params.has_exception.as_ref(), &[("", "Either"), ("true", "Yes"), ("false", "No")]))
                div {
                    label for="created_from" { "Placed from (UTC, RFC 3339)" }
                    input id="created_from" name="created_from" value=[params.created_from.as_deref()] placeholder="2026-12-01T00:00:00Z";
                }
                div {
                    label for="created_to" { "Placed before" }
                    input id="created_to" name="created_to" value=[params.created_to.as_deref()] placeholder="2026-12-07T00:00:00Z";
                }
                (select("sort", "Sort", params.sort.as_ref(), &[("", "Best match / newest"), ("-created_at", "Newest first"), ("created_at", "Oldest first"), ("-total", "Largest total"), ("total", "Smallest total"), ("-updated_at", "Recently updated")]))
                div { button type="submit" { "Search" } " " a href="/console" { "Clear" } }
            }
        }
    }
}

fn results(hits: &[SearchHit]) -> Markup {
    let columns = [
        Column::text("Order"),
        Column::text("Status"),
        Column::text("Channel"),
        Column::text("Customer"),
        Column::num("Total"),
        Column::day("Placed (UTC)"),
    ];
    let rows = hits.iter().map(|hit| {
        let d = &hit.document;
        vec![
            html! {
                div {
                    a href={ "/console/orders/" (d.order_id) } { (d.channel_order_ref) }
                    @for h in &hit.highlights {
                        div class="muted" { (h.field) ": " (highlighted(&h.fragment)) }
                    }
                }
            },
            html! { span class="badge" { (status_word(d)) } },
            html! { (d.channel.as_str()) },
            html! { span { (d.customer.name) br; span class="muted" { (d.customer.email) } } },
            html! { (money(d.grand_total_minor, &d.currency)) },
            html! { (d.created_at.format("%Y-%m-%d %H:%M")) },
        ]
    });
    stacked(None, Some("Matching orders"), &columns, rows)
}

/// The status as one word the badge shows (the search document's own serialisation).
pub fn status_word(document: &waybill_schemas::views::OrderDocument) -> String {
    serde_json::to_value(document.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `GET /console`.
pub async fn search(
    State(state): State<AppState>,
    session: Session,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, ScreenError> {
    require_role(&session, ROLES)?;
    let Query(params) = params.map_err(|_| ScreenError::bad_query())?;
    let mut params = params;
    for value in [
        &mut params.q,
        &mut params.status,
        &mut params.channel,
        &mut params.created_from,
        &mut params.created_to,
        &mut params.has_return,
        &mut params.has_exception,
        &mut params.sort,
        &mut params.limit,
        &mut params.cursor,
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *value = None;
        }
    }
    let query = match parse_search(&params) {
        Ok(query) => query,
        Err(Problem::BadParameter { field, detail }) => {
            return Err(ScreenError::BadInput { field, detail })
        }
        Err(_) => return Err(ScreenError::Internal),
    };
    let index = state.config.search.as_ref().ok_or_else(|| {
        tracing::error!("the console needs the search index, none is configured");
        ScreenError::Unavailable
    })?;
    let found = index.search(&query).await.map_err(|error| {
        tracing::error!(%error, "console search failed");
        ScreenError::Unavailable
    })?;
    let next = found.next.map(|c| c.encode());
    let main = html! {
        h1 { "Orders" }
        (filters(&params))
        div class="layout" {
            aside class="facets" aria-label="Narrow the search" {
                (facet("Status", "status", &found.facets.status, &params))
                (facet("Channel", "channel", &found.facets.channel, &params))
            }
            section aria-labelledby="results-heading" {
                h2 id="results-heading" { (crate::screens::plural::count(found.total, "order", "orders")) }
                @if found.hits.is_empty() {
                    p { "No order matches. Try fewer words or filters." }
                } @else {
                    (results(&found.hits))
                }
                nav class="pager" aria-label="Pages" {
                    @if params.cursor.is_some() {
                        a href=(link(&params, &[])) { "First page" }
                    }
                    @if let Some(next) = &next {
                        a href=(link(&params, &[("cursor", Some(next))])) rel="next" { "Next page" }
                    }
                }
            }
        }
    };
    Ok(page(&session, "Orders", "/console", main))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlight_markers_become_marks_and_order_data_stays_text() {
        let markup = highlighted("<b>Ada</b> <em>Love<i>lace</em> x").into_string();
        assert_eq!(
            markup,
            "&lt;b&gt;Ada&lt;/b&gt; <mark>Love&lt;i&gt;lace</mark> x"
        );
    }

    #[test]
    fn a_facet_link_keeps_the_other_filters_and_drops_the_cursor() {
        let params = SearchParams {
            q: Some("ada lovelace".into()),
            channel: Some("web".into()),
            cursor: Some("abc".into()),
            ..SearchParams::default()
        };
        assert_eq!(
            link(&params, &[("status", Some("placed"))]),
            "/console?q=ada+lovelace&status=placed&channel=web"
        );
    }
}
