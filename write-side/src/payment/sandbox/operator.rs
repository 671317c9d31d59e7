//! The sandbox's money-after-capture routes (SIMULATED): disputes an operator opens and decides
//! (`/v1/_sandbox/disputes…`), evidence the merchant sends (`POST /v1/disputes/{id}/evidence`,
//! once per idempotency key), and settlement reports (`GET /v1/settlement-reports?date=`, with
//! the awkward cases switched by `PUT /v1/_sandbox/settlement-quirks`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::routes::{authenticated, idempotent, problem_for, refuse, unauthorized, Outcome};
use super::settlement::Quirk;
use super::Sandbox;
use crate::payment::wire::Problem;

pub(super) fn routes() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/v1/_sandbox/disputes", post(open_dispute))
        .route("/v1/_sandbox/disputes/{id}/decide", post(decide_dispute))
        .route("/v1/disputes/{id}/evidence", post(submit_evidence))
        .route(
            "/v1/settlement-reports",
            axum::routing::get(settlement_report),
        )
        .route("/v1/_sandbox/settlement-quirks", put(set_quirks))
}

fn field_problem(field: &str, detail: &str) -> Response {
    refuse(&Problem {
        field: Some(field.to_owned()),
        ..Problem::new(
            422,
            "validation_failed",
            "Validation failed",
            format!("{field} {detail}"),
        )
    })
}

fn text_field(body: &Value, field: &str) -> Option<String> {
    body.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// `{"capture_id": "cap_…", "reason": "fraudulent"}` → 201 with the dispute; the
/// `dispute.opened` webhook follows.
async fn open_dispute(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authenticated(&sandbox, &headers) {
        return unauthorized();
    }
    let Some(capture_id) = text_field(&body, "capture_id") else {
        return field_problem("capture_id", "is required");
    };
    let reason = text_field(&body, "reason").unwrap_or_else(|| "fraudulent".to_owned());
    let now = Utc::now();
    let opened = sandbox.ledger().open_dispute(&capture_id, &reason, now);
    match opened {
        Ok((dispute, event)) => {
            sandbox.commit(vec![event], now).await;
            (StatusCode::CREATED, Json(dispute)).into_response()
        }
        Err(refusal) => refuse(&problem_for(&refusal)),
    }
}

/// `{"outcome": "won" | "lost"}` → 200 with the dispute; `dispute.won` / `dispute.lost` follows.
async fn decide_dispute(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if !authenticated(&sandbox, &headers) {
        return unauthorized();
    }
    let won = match text_field(&body, "outcome").as_deref() {
        Some("won") => true,
        Some("lost") => false,
        _ => return field_problem("outcome", "must be \"won\" or \"lost\""),
    };
    let now = Utc::now();
    let decided = sandbox.ledger().decide_dispute(&id, won, now);
    match decided {
        Ok((dispute, event)) => {
            sandbox.commit(event.into_iter().collect(), now).await;
            Json(dispute).into_response()
        }
        Err(refusal) => refuse(&problem_for(&refusal)),
    }
}

/// `{"text": "…"}`, once per `Idempotency-Key` → 200 with the dispute.
async fn submit_evidence(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| text_field(&v, "text"));
    idempotent(
        sandbox,
        &headers,
        &uri,
        &body,
        Duration::ZERO,
        move |sandbox, now| {
            let Some(text) = text else {
                return Outcome::problem(&Problem {
                    field: Some("text".into()),
                    ..Problem::new(
                        422,
                        "validation_failed",
                        "Validation failed",
                        "text is required",
                    )
                });
            };
            let result = sandbox
                .ledger()
                .submit_evidence(&id, &text, now)
                .map(|dispute| (dispute, Vec::new()));
            Outcome::from_result(StatusCode::OK, result)
        },
    )
    .await
}

#[derive(Deserialize)]
struct ReportQuery {
    date: Option<String>,
}

/// `text/csv` of what settled on `date` (YYYY-MM-DD).
async fn settlement_report(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Query(query): Query<ReportQuery>,
) -> Response {
    if !authenticated(&sandbox, &headers) {
        return unauthorized();
    }
    let Some(date) = query
        .date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    else {
        return field_problem("date", "must be a date YYYY-MM-DD");
    };
    let quirks = sandbox.quirks().clone();
    let csv = sandbox.ledger().settlement_report(date, &quirks);
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response()
}

/// `{"quirks": ["missing", "off_by_one_cent", …]}` (empty for clean reports) → 200 with the set.
async fn set_quirks(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authenticated(&sandbox, &headers) {
        return unauthorized();
    }
    let Some(names) = body.get("quirks").and_then(Value::as_array) else {
        return field_problem("quirks", "must be an array of names");
    };
    let mut quirks = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match name.as_str().and_then(Quirk::parse) {
            Some(quirk) => quirks.push(quirk),
            None => {
                let known: Vec<&str> = Quirk::ALL.iter().map(|q| q.name()).collect();
                return field_problem(
                    &format!("quirks[{i}]"),
                    &format!("must be one of {}", known.join(", ")),
                );
            }
        }
    }
    let names: Vec<&str> = quirks.iter().map(|q| q.name()).collect();
    let answer = Json(serde_json::json!({ "quirks": names })).into_response();
    *sandbox.quirks() = quirks;
    sandbox.commit(Vec::new(), Utc::now()).await;
    answer
}
