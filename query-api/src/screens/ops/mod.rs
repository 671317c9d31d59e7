//! The operations page (role admin): `GET /ops` charts the last hour (`?minutes=` up to a day)
//! of what the operations sampler recorded (`projectors/src/desk/ops.rs`, with the desk view of
//! `serve projector`): each view's lag and stalls, delivery throughput, events appended per
//! second, dead letters, and the backlogs of the outbox and the checkout and fulfillment work
//! lists. Charts are SVG drawn on the server ([`crate::screens::chart`]), each on a time axis
//! spanning its samples; the table under them has the latest numbers.

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use maud::html;
use serde::Deserialize;
use waybill_projectors::desk::ops::{metric, series, Series};
use waybill_schemas::api_keys::Role;

use crate::http::AppState;
use crate::screens::chart::{self, lines::Line};
use crate::screens::layout::page;
use crate::screens::table::{stacked, Column};
use crate::screens::{require_role, ScreenError, Session};

/// Who may open the operations page.
pub const ROLES: &[Role] = &[Role::Admin];
pub const PATH: &str = "/ops";

pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, get(ops_page))
}

#[derive(Debug, Default, Deserialize)]
pub struct OpsParams {
    pub minutes: Option<String>,
}

/// The charts, in page order: metric, title, unit.
const CHARTS: &[(&str, &str, &str)] = &[
    (metric::LAG, "Lag per view", "messages"),
    (metric::STALL, "Stalls per view", "s"),
    (metric::THROUGHPUT, "Delivered per view", "msg/s"),
    (metric::EVENTS_RATE, "Events appended", "events/s"),
    (metric::DLQ, "Dead letters", "messages"),
    (metric::BACKLOG, "Work-list backlogs", "rows"),
];

/// `GET /ops`.
pub async fn ops_page(
    State(state): State<AppState>,
    session: Session,
    Query(params): Query<OpsParams>,
) -> Result<Response, ScreenError> {
    require_role(&session, ROLES)?;
    let minutes = match params.minutes.as_deref().filter(|m| !m.is_empty()) {
        None => 60,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|m| (1..=1440).contains(m))
            .ok_or(ScreenError::BadInput {
                field: "minutes",
                detail: "must be a whole number of minutes from 1 to 1440".to_owned(),
            })?,
    };
    let pool = state
        .config
        .events
        .as_ref()
        .map(|store| store.pool())
        .ok_or(ScreenError::Unavailable)?;
    let from = Utc::now() - chrono::Duration::minutes(minutes);
    let all = series(pool, from).await.map_err(|error| {
        tracing::warn!(%error, "reading operations samples failed");
        ScreenError::Unavailable
    })?;
    let of = |name: &str| -> Vec<&Series> { all.iter().filter(|s| s.metric == name).collect() };
    // The latest value of every series, named by its chart's title and unit.
    let latest_rows = CHARTS.iter().flat_map(|(name, title, unit)| {
        of(name).into_iter().filter_map(move |s| {
            s.points.last().map(|(at, value)| {
                vec![
                    html! { (title) },
                    html! { (s.label) },
                    html! { (chart::number(*value)) " " (unit) },
                    html! { time datetime=(at.to_rfc3339()) { (at.format("%H:%M:%S")) } },
                ]
            })
        })
    });
    let main = html! {
        h1 { "Operations" }
        p class="hint" {
            "The last " (minutes) " minutes, sampled by the projector with the desk view (WAYBILL_OPS_SAMPLE_MS). "
            a href="?minutes=15" { "15 min" } " · " a href="?minutes=60" { "1 hour" } " · " a href="?minutes=1440" { "1 day" }
        }
        @if all.is_empty() {
            p class="notice warn" id="no-samples" { "No samples yet: is a projector with the desk view running?" }
        }
        div class="grid charts" {
            @for (i, (name, title, unit)) in CHARTS.iter().enumerate() {
                @let found = of(name);
                section aria-labelledby={ "ops-h-" (i) } {
                    h2 id={ "ops-h-" (i) } { (title) }
                    @let drawn: Vec<Line<'_>> = found.iter().map(|s| Line { label: &s.label, points: &s.points }).collect();
                    @match chart::lines::lines(&format!("ops-{name}"), title, unit, &drawn) {
                        Some(chart) => { (chart) }
                        None => { p class="muted" { "No samples." } }
                    }
                }
            }
        }
        h2 { "Latest values" }
        (stacked(
            Some("ops-latest"),
            None,
            &[Column::text("Metric"), Column::text("Of"), Column::num("Value"), Column::text("At (UTC)")],
            latest_rows,
        ))
    };
    Ok(page(&session, "Operations", PATH, main))
}
