//! `POST /v1/routing/simulations` (admin): replays the routing decisions recorded in a window
//! (at most [`MAX_WINDOW_DAYS`] days and [`MAX_DECISIONS`] decisions) with the candidate config
//! in the body and answers the aggregate and the per-order rows, each linking to the order in
//! the agent API. Stores nothing: a simulation is a function of the log and the body; larger
//! windows are for `waybill routing simulate`.

// A refusal is the response itself, built once per refused request; boxing it buys nothing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;
use utoipa::ToSchema;
use waybill_schemas::api_keys::Role;

use super::handlers::command_span;
use super::problem::{Problem, ProblemType};
use super::request::MoneyCommandInput;
use super::AppState;
use crate::domain::fulfillment::simulation::{Aggregate, OrderDelta};
use crate::domain::fulfillment::RoutingConfig;
use crate::domain::FieldError;
use crate::routing_simulation::{self, SimulationError};

/// Longest window one request may replay.
pub const MAX_WINDOW_DAYS: i64 = 31;
/// Most decisions one request may replay.
pub const MAX_DECISIONS: i64 = 20_000;
/// Most order rows one answer carries.
pub const MAX_ROWS: usize = 1_000;

/// `POST /v1/routing/simulations` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct SimulationRequest {
    /// The candidate routing config: the format of `write-side/fulfillment-routing.json`
    /// (`weights`, `rules`, `carriers`, `default_node`, optional `nodes` — a node may be
    /// `"disabled": true` — and `currency`). Refused naming the field: `config.weights.carbon`.
    #[schema(value_type = Object)]
    config: Value,
    /// Start of the window (RFC 3339, inclusive).
    from: DateTime<Utc>,
    /// End of the window (RFC 3339, exclusive); at most 31 days after `from`.
    to: DateTime<Utc>,
    /// `changed` (default): only orders whose plan the candidate changes; `all`: every order.
    #[schema(pattern = "^(changed|all)$")]
    orders: Option<String>,
    /// Most order rows in the answer, 1-1000 (default 100); `orders_total` counts them all.
    #[schema(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// One order's row with a link to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderRow {
    #[serde(flatten)]
    pub delta: OrderDelta,
    /// The order in the agent API (query API).
    pub href: String,
}

/// The simulation's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimulationResponse {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `sha256:…` of the candidate config as sent.
    pub candidate_config_version: String,
    pub aggregate: Aggregate,
    /// Rows selected by `orders` (changed or all).
    pub orders_total: u64,
    /// The first `limit` of them, in the order of their first decision.
    pub orders: Vec<OrderRow>,
}

/// A request, parsed.
struct Parsed {
    config: RoutingConfig,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    all: bool,
    limit: usize,
}

fn parse(body: &Value) -> Result<Parsed, Problem> {
    let mut errors = Vec::new();
    let mut fail = |field: &str, detail: String| {
        errors.push(FieldError {
            field: field.to_owned(),
            detail,
        })
    };
    let Some(object) = body.as_object() else {
        return Err(Problem::field("", "the body must be a JSON object"));
    };
    for key in object.keys() {
        if !["config", "from", "to", "orders", "limit"].contains(&key.as_str()) {
            fail(key, "is not a field of a simulation request".into());
        }
    }
    let time = |field: &str| -> Result<DateTime<Utc>, String> {
        match object.get(field).and_then(Value::as_str) {
            Some(raw) => DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| "must be an RFC 3339 time".to_owned()),
            None => Err("is required (an RFC 3339 time)".to_owned()),
        }
    };
    let from = time("from").map_err(|e| fail("from", e)).ok();
    let to = time("to").map_err(|e| fail("to", e)).ok();
    if let (Some(from), Some(to)) = (from, to) {
        if to <= from {
            fail("to", "must be after from".into());
        } else if to - from > chrono::Duration::days(MAX_WINDOW_DAYS) {
            fail(
                "to",
                format!("must be at most {MAX_WINDOW_DAYS} days after from; use `waybill routing simulate` for longer windows"),
            );
        }
    }
    let all = match object.get("orders") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "changed" => false,
        Some(Value::String(s)) if s == "all" => true,
        Some(_) => {
            fail("orders", "must be changed or all".into());
            false
        }
    };
    let limit = match object.get("limit") {
        None | Some(Value::Null) => 100,
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (1..=MAX_ROWS).contains(&n) => n,
            _ => {
                fail("limit", format!("must be an integer from 1 to {MAX_ROWS}"));
                100
            }
        },
    };
    let config = match object.get("config") {
        Some(config @ Value::Object(_)) => RoutingConfig::parse(&config.to_string())
            .map_err(|e| {
                let field = match e.field() {
                    "" => "config".to_owned(),
                    inner => format!("config.{inner}"),
                };
                fail(&field, e.to_string());
            })
            .ok(),
        Some(_) => {
            fail("config", "must be a routing config object".into());
            None
        }
        None => {
            fail("config", "is required (a routing config object)".into());
            None
        }
    };
    match (config, from, to) {
        (Some(config), Some(from), Some(to)) if errors.is_empty() => Ok(Parsed {
            config,
            from,
            to,
            all,
            limit,
        }),
        _ => Err(Problem::validation(errors)),
    }
}

/// Replay recorded routing decisions with a candidate config.
#[utoipa::path(
    post,
    path = "/v1/routing/simulations",
    tag = "routing",
    description = "Replays the routing decisions (`RoutingDecided` events) recorded in \
        `[from, to)` with the candidate config in the body, over the inputs each decision read \
        (allocation, free stock, distances, learned transit times, clock), and answers the \
        change in cost, ETA, carbon and split rate: in aggregate and per order (each row links \
        to the order in the agent API). Records nothing. Admin only. At most 31 days and \
        20,000 decisions per request (`waybill routing simulate` has no bound). Requires \
        `Idempotency-Key` like every command.",
    params(
        ("Idempotency-Key" = String, Header, description = "Required like every command"),
    ),
    request_body(content = SimulationRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The simulation", body = SimulationResponse),
        (status = 400, description = "malformed-json or missing-idempotency-key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (not an admin)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported-media-type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed naming the field (`config.weights.carbon`, `config.nodes[1].carriers[0]`, `to`, `limit`, ...), also for a window of more than 20,000 decisions (`to`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "database-unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn simulate(State(state): State<AppState>, input: MoneyCommandInput) -> Response {
    let span = command_span("simulate_routing", &input.ctx);
    let started = Instant::now();
    if input.ctx.role != Role::Admin {
        return Problem::forbidden().into_response();
    }
    let parsed = match parse(&input.body) {
        Ok(parsed) => parsed,
        Err(problem) => return problem.into_response(),
    };
    let outcome = routing_simulation::simulate(
        &state.services.store,
        Arc::new(parsed.config),
        (parsed.from, parsed.to),
        Some(MAX_DECISIONS),
        None,
        |_| {},
    )
    .instrument(span.clone())
    .await;
    let response = match outcome {
        Ok(simulation) => {
            let selected: Vec<OrderDelta> = simulation
                .orders
                .into_iter()
                .filter(|o| parsed.all || o.changed)
                .collect();
            let body = SimulationResponse {
                from: simulation.from,
                to: simulation.to,
                candidate_config_version: simulation.candidate_version,
                aggregate: simulation.aggregate,
                orders_total: selected.len() as u64,
                orders: selected
                    .into_iter()
                    .take(parsed.limit)
                    .map(|delta| OrderRow {
                        href: format!("/v1/agent/orders/{}", delta.order_id),
                        delta,
                    })
                    .collect(),
            };
            Json(body).into_response()
        }
        Err(SimulationError::TooMany { found, limit }) => Problem::field(
            "to",
            format!("the window holds {found} routing decisions, more than the {limit} one request may replay; narrow it or use `waybill routing simulate`"),
        )
        .into_response(),
        Err(SimulationError::Store(error)) => {
            tracing::warn!(parent: &span, %error, "routing simulation could not read the log");
            Problem::new(
                ProblemType::DatabaseUnavailable,
                "the event log could not be read; retry shortly",
            )
            .into_response()
        }
        Err(error) => {
            tracing::error!(parent: &span, %error, "routing simulation failed");
            Problem::new(ProblemType::Internal, "the simulation failed").into_response()
        }
    };
    tracing::info!(parent: &span, elapsed_ms = started.elapsed().as_millis() as u64, status = response.status().as_u16(), "routing simulation answered");
    response
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bundled() -> Value {
        serde_json::from_str(include_str!("../../fulfillment-routing.json")).unwrap()
    }

    fn field_of(body: Value) -> Option<String> {
        parse(&body).err().and_then(|p| p.field)
    }

    #[test]
    fn a_request_is_refused_naming_the_field_that_is_wrong() {
        let ok = json!({"config": bundled(), "from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"});
        assert!(parse(&ok).is_ok());
        let mut bad = ok.clone();
        bad["config"]["weights"]["carbon"] = json!("high");
        assert_eq!(field_of(bad), Some("config.weights.carbon".into()));
        let mut bad = ok.clone();
        bad["config"]["default_node"]["carriers"] = json!(["nobody"]);
        assert_eq!(
            field_of(bad),
            Some("config.default_node.carriers[0]".into())
        );
        let mut bad = ok.clone();
        bad["config"]["rules"] = json!([]);
        assert_eq!(field_of(bad), Some("config.rules".into()));
        let mut bad = ok.clone();
        bad["to"] = json!("2027-02-01T00:00:00Z");
        assert_eq!(field_of(bad), Some("to".into()));
        let mut bad = ok.clone();
        bad["limit"] = json!(0);
        assert_eq!(field_of(bad), Some("limit".into()));
        let mut bad = ok.clone();
        bad["config"] = json!([1]);
        assert_eq!(field_of(bad), Some("config".into()));
        assert_eq!(field_of(json!({"from": "x"})), Some("from".into()));
    }
}
