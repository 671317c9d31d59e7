//! The finance handlers: parse, authorize, run the warehouse queries, answer JSON or CSV.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use waybill_projectors::warehouse::finance::SummaryFilter;
use waybill_write_side::command_api::problem::Path;

use super::dto::{
    csv, MetricsResponse, Payout, PayoutLine, PayoutLinesResponse, PayoutsResponse, ReconciledItem,
    ReconciliationResponse, SummaryResponse, SummaryRow,
};
use super::params::{FinanceParams, Format};
use super::{authorize, finance, next_offset, unavailable};
use crate::http::AppState;
use crate::problem::Problem;

/// The query string, every parameter checked whichever endpoint uses it: a value that would be
/// refused on one finance endpoint is refused on all of them (not silently ignored), as the
/// OpenAPI document says.
fn params(raw: Result<Query<FinanceParams>, QueryRejection>) -> Result<FinanceParams, Problem> {
    let params = raw.map(|Query(p)| p).map_err(|_| Problem::BadParameter {
        field: "query",
        detail: "is not a valid query string".into(),
    })?;
    params.range(chrono::Utc::now().date_naive())?;
    params.page()?;
    params.format()?;
    params.channel()?;
    params.currency()?;
    params.outcomes()?;
    Ok(params)
}

#[utoipa::path(
    get,
    path = "/v1/finance/summary",
    tag = "finance",
    params(FinanceParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Gross sales, captures, refunds, fees, lost chargebacks and net per day, channel and currency (CSV with ?format=csv)", body = SummaryResponse),
        (status = 422, description = "A bad parameter, named in `field`", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role is not finance or admin", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The warehouse is unavailable, or its analytics tables are being filled again from the event log after a loss (`view-catching-up`); with Retry-After", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "query.finance.summary", skip_all)]
pub async fn get_summary(
    State(state): State<AppState>,
    raw: Result<Query<FinanceParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers)?;
    let params = params(raw)?;
    let range = params.range(Utc::now().date_naive())?;
    let page = params.page()?;
    let format = params.format()?;
    let filter = SummaryFilter {
        channel: params.channel()?,
        currency: params.currency()?,
    };
    let rows = finance(&state)
        .await?
        .daily_summary(range, &filter, page)
        .await
        .map_err(unavailable)?;
    let items: Vec<SummaryRow> = rows.into_iter().map(Into::into).collect();
    Ok(match format {
        Format::Csv => csv("finance-summary", &items),
        Format::Json => Json(SummaryResponse {
            from: range.from.to_string(),
            to: range.to.to_string(),
            next_offset: next_offset(items.len(), page),
            items,
        })
        .into_response(),
    })
}

#[utoipa::path(
    get,
    path = "/v1/finance/payouts",
    tag = "finance",
    params(FinanceParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Payouts paid in the range with the sums of the report lines each settles", body = PayoutsResponse),
        (status = 422, description = "A bad parameter, named in `field`", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role is not finance or admin", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The warehouse is unavailable, or its analytics tables are being filled again from the event log after a loss (`view-catching-up`); with Retry-After", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "query.finance.payouts", skip_all)]
pub async fn get_payouts(
    State(state): State<AppState>,
    raw: Result<Query<FinanceParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers)?;
    let params = params(raw)?;
    let range = params.range(Utc::now().date_naive())?;
    let page = params.page()?;
    let format = params.format()?;
    let rows = finance(&state)
        .await?
        .payouts(range, page)
        .await
        .map_err(unavailable)?;
    let items: Vec<Payout> = rows.into_iter().map(Into::into).collect();
    Ok(match format {
        Format::Csv => csv("payouts", &items),
        Format::Json => Json(PayoutsResponse {
            from: range.from.to_string(),
            to: range.to.to_string(),
            next_offset: next_offset(items.len(), page),
            items,
        })
        .into_response(),
    })
}

#[utoipa::path(
    get,
    path = "/v1/finance/payouts/{payout_id}/lines",
    tag = "finance",
    params(("payout_id" = String, Path, description = "The gateway's payout id"), FinanceParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The settlement report lines the payout settles, in report order (empty for an unknown payout)", body = PayoutLinesResponse),
        (status = 422, description = "A bad parameter, named in `field`", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role is not finance or admin", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The warehouse is unavailable, or its analytics tables are being filled again from the event log after a loss (`view-catching-up`); with Retry-After", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "query.finance.payout_lines", skip_all, fields(payout_id = %payout_id))]
pub async fn get_payout_lines(
    State(state): State<AppState>,
    Path(payout_id): Path<String>,
    raw: Result<Query<FinanceParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers)?;
    let params = params(raw)?;
    if payout_id.is_empty() || payout_id.len() > 200 {
        return Err(Problem::BadParameter {
            field: "payout_id",
            detail: "must be 1 to 200 characters".into(),
        });
    }
    let page = params.page()?;
    let format = params.format()?;
    let rows = finance(&state)
        .await?
        .payout_lines(&payout_id, page)
        .await
        .map_err(unavailable)?;
    let items: Vec<PayoutLine> = rows.into_iter().map(Into::into).collect();
    Ok(match format {
        Format::Csv => csv(&format!("payout-{}", sanitize(&payout_id)), &items),
        Format::Json => Json(PayoutLinesResponse {
            payout_id,
            next_offset: next_offset(items.len(), page),
            items,
        })
        .into_response(),
    })
}

/// A file name part: letters, digits, `-` and `_` only.
fn sanitize(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[utoipa::path(
    get,
    path = "/v1/finance/reconciliation",
    tag = "finance",
    params(FinanceParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The latest reconciliation run of each day in the range: the items of the requested outcomes (default: the discrepancies) and totals per day, channel, currency, payout and outcome. Runs are written by `waybill reconcile --from --to`.", body = ReconciliationResponse),
        (status = 422, description = "A bad parameter, named in `field`", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role is not finance or admin", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The warehouse is unavailable, or its analytics tables are being filled again from the event log after a loss (`view-catching-up`); with Retry-After", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "query.finance.reconciliation", skip_all)]
pub async fn get_reconciliation(
    State(state): State<AppState>,
    raw: Result<Query<FinanceParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers)?;
    let params = params(raw)?;
    let range = params.range(Utc::now().date_naive())?;
    let page = params.page()?;
    let format = params.format()?;
    let outcomes = params.outcomes()?;
    let names: Vec<&str> = outcomes.iter().map(|o| o.as_str()).collect();
    let finance = finance(&state).await?;
    let rows = finance
        .reconciliation(range, &names, page)
        .await
        .map_err(unavailable)?;
    let items: Vec<ReconciledItem> = rows.into_iter().map(Into::into).collect();
    if format == Format::Csv {
        return Ok(csv("reconciliation", &items));
    }
    let totals = finance
        .reconciliation_totals(range)
        .await
        .map_err(unavailable)?;
    Ok(Json(ReconciliationResponse {
        from: range.from.to_string(),
        to: range.to.to_string(),
        next_offset: next_offset(items.len(), page),
        items,
        totals: totals.into_iter().map(Into::into).collect(),
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/finance/metrics",
    tag = "finance",
    params(FinanceParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Orders placed in the range per stage, time from stage to stage (p50/p95 seconds), cancellation rate and return rate by SKU and reason (CSV: one metric value per row)", body = MetricsResponse),
        (status = 422, description = "A bad parameter, named in `field`", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role is not finance or admin", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The warehouse is unavailable, or its analytics tables are being filled again from the event log after a loss (`view-catching-up`); with Retry-After", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "query.finance.metrics", skip_all)]
pub async fn get_metrics(
    State(state): State<AppState>,
    raw: Result<Query<FinanceParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorize(&state, &headers)?;
    let params = params(raw)?;
    let range = params.range(Utc::now().date_naive())?;
    let format = params.format()?;
    let finance = finance(&state).await?;
    let stages = finance.orders_per_stage(range).await.map_err(unavailable)?;
    let times = finance.time_in_stage(range).await.map_err(unavailable)?;
    let cancellations = finance.cancellations(range).await.map_err(unavailable)?;
    let returns = finance.return_rates(range).await.map_err(unavailable)?;
    let metrics = MetricsResponse::new(
        range.from.to_string(),
        range.to.to_string(),
        stages,
        times,
        cancellations,
        returns,
    );
    Ok(match format {
        Format::Csv => csv("metrics", &metrics.csv_rows()),
        Format::Json => Json(metrics).into_response(),
    })
}
