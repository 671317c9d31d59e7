//! The finance page (roles finance and admin), over the same warehouse queries as the finance
//! API ([`crate::finance`]):
//! - `GET /finance?from=&to=&channel=&currency=` per day, channel and currency: collected
//!   (captures), refunded, chargebacks, fees, net; payouts; a bar chart per currency; the
//!   reconciliation discrepancies, each linking to the order's timeline;
//! - `GET /finance/summary.csv`, `/finance/reconciliation.csv`, `/finance/payouts.csv` the same
//!   rows as CSV (the API's CSV writer: amounts by their currency's exponent, formula cells
//!   neutralised);
//! - `GET /finance/orders/{id}` the drill-down: the order's full event timeline.
//!
//! Every amount is shown through [`waybill_schemas::Money`]'s formatting (the currency's
//! exponent), never as raw minor units.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use maud::{html, Markup};
use waybill_projectors::warehouse::finance::{Page, SummaryFilter};
use waybill_schemas::api_keys::Role;
use waybill_schemas::OrderId;
use waybill_write_side::command_api::problem::Path;

use crate::finance::{
    csv, finance, unavailable, FinanceParams, Payout, ReconciledItem, SummaryRow,
};
use crate::http::AppState;
use crate::problem::Problem;
use crate::screens::chart::bars::{bars, Series};
use crate::screens::console::search_page::money;
use crate::screens::layout::page;
use crate::screens::table::{stacked, Column};
use crate::screens::{require_role, url_encode, ScreenError, Session};

/// Who may open the finance page.
pub const ROLES: &[Role] = &[Role::Finance, Role::Admin];

/// Rows the page reads per table (the CSV downloads take the API's largest page).
const ROWS: Page = Page {
    limit: 1_000,
    offset: 0,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/finance", get(finance_page))
        .route("/finance/summary.csv", get(summary_csv))
        .route("/finance/payouts.csv", get(payouts_csv))
        .route("/finance/reconciliation.csv", get(reconciliation_csv))
        .route("/finance/orders/{id}", get(order_timeline))
}

fn problem(error: Problem) -> ScreenError {
    match error {
        Problem::BadParameter { field, detail } => ScreenError::BadInput { field, detail },
        Problem::OrderNotFound | Problem::NotFound => ScreenError::NotFound,
        Problem::Unavailable { .. } | Problem::Timeout => ScreenError::Unavailable,
        _ => ScreenError::Internal,
    }
}

/// The page's query with blank fields (an empty form input) read as absent.
fn cleaned(mut params: FinanceParams) -> FinanceParams {
    for value in [
        &mut params.from,
        &mut params.to,
        &mut params.channel,
        &mut params.currency,
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *value = None;
        }
    }
    params.limit = None;
    params.offset = None;
    params.format = None;
    params.outcome = None;
    params
}

struct Data {
    summary: Vec<SummaryRow>,
    payouts: Vec<Payout>,
    discrepancies: Vec<ReconciledItem>,
}

async fn read(state: &AppState, params: &FinanceParams) -> Result<Data, ScreenError> {
    let range = params.range(Utc::now().date_naive()).map_err(problem)?;
    let filter = SummaryFilter {
        channel: params.channel().map_err(problem)?,
        currency: params.currency().map_err(problem)?,
    };
    let warehouse = finance(state).await.map_err(problem)?;
    let summary = warehouse
        .daily_summary(range, &filter, ROWS)
        .await
        .map_err(|e| problem(unavailable(e)))?;
    let payouts = warehouse
        .payouts(range, ROWS)
        .await
        .map_err(|e| problem(unavailable(e)))?;
    let discrepancy_names: Vec<&str> = waybill_projectors::reconciliation::Outcome::DISCREPANCIES
        .iter()
        .map(|o| o.as_str())
        .collect();
    let discrepancies = warehouse
        .reconciliation(range, &discrepancy_names, ROWS)
        .await
        .map_err(|e| problem(unavailable(e)))?;
    Ok(Data {
        summary: summary.into_iter().map(Into::into).collect(),
        payouts: payouts.into_iter().map(Into::into).collect(),
        discrepancies: discrepancies.into_iter().map(Into::into).collect(),
    })
}

/// The query string of the current filters, for the CSV links.
fn query_of(params: &FinanceParams) -> String {
    [
        ("from", &params.from),
        ("to", &params.to),
        ("channel", &params.channel),
        ("currency", &params.currency),
    ]
    .iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={}", url_encode(v))))
    .collect::<Vec<_>>()
    .join("&")
}

/// One chart per currency: collected, refunded, chargebacks, fees and net per day (all
/// channels), and payouts paid that day.
fn charts(data: &Data) -> Markup {
    let mut by_currency: BTreeMap<&str, BTreeMap<&str, [i64; 6]>> = BTreeMap::new();
    for row in &data.summary {
        let day = by_currency
            .entry(row.currency.as_str())
            .or_default()
            .entry(row.day.as_str())
            .or_default();
        day[0] += row.captures;
        day[1] += row.refunds;
        day[2] += row.chargebacks;
        day[3] += row.fees;
        day[4] += row.net;
    }
    for payout in &data.payouts {
        let day = by_currency
            .entry(payout.currency.as_str())
            .or_default()
            .entry(payout.paid_on.as_str())
            .or_default();
        day[5] += payout.amount;
    }
    html! {
        @for (currency, days) in &by_currency {
            @let categories: Vec<String> = days.keys().map(|d| (*d).to_owned()).collect();
            @let column = |i: usize| days.values().map(|v| v[i]).collect::<Vec<i64>>();
            @let label = |minor: i64| money(minor, currency);
            (bars(
                &format!("chart-{currency}"),
                &format!("Money per day in {currency}"),
                &categories,
                &[
                    Series { name: "collected", values: column(0) },
                    Series { name: "refunded", values: column(1) },
                    Series { name: "chargebacks", values: column(2) },
                    Series { name: "fees", values: column(3) },
                    Series { name: "net", values: column(4) },
                    Series { name: "payouts", values: column(5) },
                ],
                &label,
            ))
        }
        @if by_currency.is_empty() { p class="muted" { "No money moved in this range." } }
    }
}

fn summary_table(rows: &[SummaryRow]) -> Markup {
    let columns = [
        Column::day("Day"),
        Column::text("Channel"),
        Column::text("Currency"),
        Column::num("Orders"),
        Column::num("Collected"),
        Column::num("Refunded"),
        Column::num("Chargebacks"),
        Column::num("Fees"),
        Column::num("Net"),
    ];
    let cells = rows.iter().map(|r| {
        vec![
            html! { (r.day) },
            html! { (r.channel) },
            html! { (r.currency) },
            html! { (r.orders) },
            html! { (money(r.captures, &r.currency)) },
            html! { (money(r.refunds, &r.currency)) },
            html! { (money(r.chargebacks, &r.currency)) },
            html! { (money(r.fees, &r.currency)) },
            html! { strong { (money(r.net, &r.currency)) } },
        ]
    });
    stacked(
        Some("summary"),
        Some("Per day, channel and currency"),
        &columns,
        cells,
    )
}

fn payouts_table(rows: &[Payout]) -> Markup {
    if rows.is_empty() {
        return html! { p class="muted" { "No payout in this range." } };
    }
    let columns = [
        Column::day("Paid on"),
        Column::text("Payout"),
        Column::num("Transactions"),
        Column::num("Gross"),
        Column::num("Fees"),
        Column::num("Amount"),
    ];
    let cells = rows.iter().map(|p| {
        vec![
            html! { (p.paid_on) },
            html! { (p.payout_id) },
            html! { (p.transaction_count) },
            html! { (money(p.gross, &p.currency)) },
            html! { (money(p.fees, &p.currency)) },
            html! { (money(p.amount, &p.currency)) },
        ]
    });
    stacked(Some("payouts"), None, &columns, cells)
}

fn discrepancies_table(rows: &[ReconciledItem]) -> Markup {
    if rows.is_empty() {
        return html! { p { "No discrepancy: every ledger entry matches the gateway's report." } };
    }
    let columns = [
        Column::day("Day"),
        Column::text("Outcome"),
        Column::text("Order"),
        Column::text("Kind"),
        Column::text("Channel"),
        Column::num("Ledger"),
        Column::num("Report"),
        Column::num("Fee expected / reported"),
        Column::text("Detail"),
    ];
    let cells = rows.iter().map(|r| {
        vec![
            html! { (r.day) },
            html! { span class="badge bad" { (r.outcome.replace('_', " ")) } },
            html! {
                @if r.order_id.is_empty() { span class="muted" { "unknown (" (r.transaction_id) ")" } }
                @else { a href={ "/finance/orders/" (r.order_id) } { "Timeline of " (r.order_id.get(..8).unwrap_or(&r.order_id)) "…" } }
            },
            html! { (r.kind) },
            html! { (r.channel) },
            html! { (money(r.ledger_amount, &r.currency)) },
            html! { (money(r.report_amount, &r.currency)) },
            html! { (money(r.expected_fee, &r.currency)) " / " (money(r.report_fee, &r.currency)) },
            html! { (r.detail) },
        ]
    });
    stacked(Some("discrepancies"), None, &columns, cells)
}

fn filters(params: &FinanceParams) -> Markup {
    html! {
        form method="get" action="/finance" class="card" aria-label="Range and filters" {
            div class="filters" {
                div { label for="from" { "From (UTC day)" } input id="from" name="from" type="date" value=[params.from.as_deref()]; }
                div { label for="to" { "To (included)" } input id="to" name="to" type="date" value=[params.to.as_deref()]; }
                div {
                    label for="channel" { "Channel" }
                    select id="channel" name="channel" {
                        @for (value, text) in [("", "All"), ("web", "Web"), ("app", "App"), ("pos", "POS"), ("marketplace", "Marketplace")] {
                            option value=(value) selected[params.channel.as_deref().unwrap_or("") == value] { (text) }
                        }
                    }
                }
                div { label for="currency" { "Currency" } input id="currency" name="currency" value=[params.currency.as_deref()] placeholder="all (e.g. USD)"; }
                div { button type="submit" { "Show" } }
            }
        }
    }
}

/// `GET /finance`.
pub async fn finance_page(
    State(state): State<AppState>,
    session: Session,
    params: Result<Query<FinanceParams>, QueryRejection>,
) -> Result<Response, ScreenError> {
    require_role(&session, ROLES)?;
    let Query(params) = params.map_err(|_| ScreenError::bad_query())?;
    let mut params = cleaned(params);
    let data = read(&state, &params).await?;
    let query = query_of(&params);
    // Show the range the page covers, defaults included.
    let range = params.range(Utc::now().date_naive()).map_err(problem)?;
    params.from = Some(range.from.to_string());
    params.to = Some(range.to.to_string());
    let main = html! {
        h1 { "Finance" }
        (filters(&params))
        section aria-labelledby="h-charts" {
            h2 id="h-charts" { "Money per day" }
            (charts(&data))
        }
        section aria-labelledby="h-summary" {
            h2 id="h-summary" { "Daily summary" }
            p { a href={ "/finance/summary.csv?" (query) } download id="download-summary" { "Download CSV" } }
            (summary_table(&data.summary))
        }
        section aria-labelledby="h-payouts" {
            h2 id="h-payouts" { "Payouts" }
            p { a href={ "/finance/payouts.csv?" (query) } download { "Download CSV" } }
            (payouts_table(&data.payouts))
        }
        section aria-labelledby="h-recon" {
            h2 id="h-recon" { "Reconciliation discrepancies (" (data.discrepancies.len()) ")" }
            p { a href={ "/finance/reconciliation.csv?" (query) } download id="download-reconciliation" { "Download CSV" } }
            (discrepancies_table(&data.discrepancies))
        }
    };
    Ok(page(&session, "Finance", "/finance", main))
}

/// `GET /finance/summary.csv`.
pub async fn summary_csv(
    State(state): State<AppState>,
    session: Session,
    params: Result<Query<FinanceParams>, QueryRejection>,
) -> Result<Response, ScreenError> {
    let data = read_allowed(&state, &session, params).await?;
    Ok(no_store(csv("finance-summary", &data.summary)))
}

/// `GET /finance/payouts.csv`.
pub async fn payouts_csv(
    State(state): State<AppState>,
    session: Session,
    params: Result<Query<FinanceParams>, QueryRejection>,
) -> Result<Response, ScreenError> {
    let data = read_allowed(&state, &session, params).await?;
    Ok(no_store(csv("payouts", &data.payouts)))
}

/// `GET /finance/reconciliation.csv`.
pub async fn reconciliation_csv(
    State(state): State<AppState>,
    session: Session,
    params: Result<Query<FinanceParams>, QueryRejection>,
) -> Result<Response, ScreenError> {
    let data = read_allowed(&state, &session, params).await?;
    Ok(no_store(csv("reconciliation", &data.discrepancies)))
}

/// The finance data a CSV download serves, once the session's role and the query are checked.
async fn read_allowed(
    state: &AppState,
    session: &Session,
    params: Result<Query<FinanceParams>, QueryRejection>,
) -> Result<Data, ScreenError> {
    require_role(session, ROLES)?;
    let Query(params) = params.map_err(|_| ScreenError::bad_query())?;
    read(state, &cleaned(params)).await
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// `GET /finance/orders/{id}`: the drill-down from a discrepancy — the order's timeline.
pub async fn order_timeline(
    State(state): State<AppState>,
    session: Session,
    Path(raw_id): Path<String>,
) -> Result<Response, ScreenError> {
    require_role(&session, ROLES)?;
    let order = OrderId::parse(&raw_id).map_err(|_| ScreenError::NotFound)?;
    let loaded = crate::search::load_agent_order(&state, order, None)
        .await
        .map_err(problem)?;
    let reference = loaded
        .tracking
        .as_ref()
        .map(|t| t.channel_order_ref.clone())
        .unwrap_or_else(|| order.to_string());
    let main = html! {
        p { a href="/finance" { "← Finance" } }
        h1 { "Order " (reference) }
        @if let Some(view) = &loaded.tracking {
            dl class="facts" {
                dt { "Total" } dd { (money(view.totals.grand_total_minor, &view.currency)) }
                dt { "Captured" } dd { (money(view.payment.captured_minor, &view.currency)) }
                dt { "Refunded" } dd { (money(view.payment.refunded_minor, &view.currency)) }
                dt { "Charged back" } dd { (money(view.payment.reversed_minor, &view.currency)) }
            }
        }
        (crate::screens::console::order_page::timeline(&loaded))
    };
    Ok(page(
        &session,
        &format!("Order {reference}"),
        "/finance",
        main,
    ))
}
