//! The finance API, role `finance` (or `admin`) only: the daily money summary, payouts and what
//! each settles, the reconciliation report, and operational metrics, read from the ClickHouse
//! warehouse the analytics projector and the reconciliation runner write
//! ([`waybill_projectors::warehouse::finance`] holds the queries). Every endpoint takes a UTC date
//! range, pages with `limit`/`offset` and answers CSV with `?format=csv`.

mod dto;
pub mod handlers;
mod params;

pub(crate) use dto::csv;
pub use dto::{
    Cancellations, MetricsResponse, Payout, PayoutLine, PayoutLinesResponse, PayoutsResponse,
    ReconciledItem, ReconciliationResponse, ReconciliationTotal, ReturnRate, StageCount, StageTime,
    SummaryResponse, SummaryRow,
};
pub use handlers::{get_metrics, get_payout_lines, get_payouts, get_reconciliation, get_summary};
pub use params::{FinanceParams, Format};

use axum::http::{header, HeaderMap};
use waybill_projectors::warehouse::finance::Finance;
use waybill_schemas::api_keys::Role;

use crate::http::AppState;
use crate::problem::Problem;

/// The caller may read finance data: a Bearer key with role finance or admin.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Problem> {
    let unauthorized = Problem::Unauthorized {
        detail: "finance endpoints need a Bearer API key with role finance",
    };
    let header = headers
        .get(header::AUTHORIZATION)
        .ok_or(Problem::Unauthorized {
            detail: "finance endpoints need a Bearer API key with role finance",
        })?
        .to_str()
        .map_err(|_| Problem::Unauthorized {
            detail: "the Authorization header is not a valid Bearer API key",
        })?;
    let key = state
        .config
        .api_keys
        .authenticate_header(Some(header))
        .ok_or(unauthorized)?;
    match key.role {
        Role::Finance | Role::Admin => Ok(()),
        other => Err(Problem::RoleForbidden {
            role: other.to_string(),
            what: "finance data",
        }),
    }
}

/// The warehouse queries: 503 when no warehouse is configured, and 503 `view-catching-up`
/// while the analytics tables are being filled again after a loss
/// ([`crate::catching_up::analytics_complete`]): figures read then would be short without
/// saying so.
pub(crate) async fn finance(state: &AppState) -> Result<Finance, Problem> {
    let warehouse = state
        .config
        .warehouse
        .as_ref()
        .ok_or(Problem::Unavailable {
            what: "the analytics warehouse",
        })?;
    crate::catching_up::analytics_complete(state, warehouse).await?;
    Ok(Finance::new(warehouse.client()))
}

/// Logs a warehouse failure and answers 503.
pub(crate) fn unavailable(error: waybill_projectors::warehouse::WarehouseError) -> Problem {
    tracing::warn!(%error, "finance query failed");
    Problem::Unavailable {
        what: "the analytics warehouse",
    }
}

/// `offset + limit` when the page came back full (there may be more).
fn next_offset(len: usize, page: waybill_projectors::warehouse::finance::Page) -> Option<u64> {
    (len as u64 >= u64::from(page.limit)).then_some(page.offset + u64::from(page.limit))
}
