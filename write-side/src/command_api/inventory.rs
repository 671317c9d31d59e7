//! The inventory endpoints: register locations, restock and adjust stock, read stock levels.
//! Only `admin` and `service` keys may use them; mutations need an `Idempotency-Key` (a restock
//! or adjustment retried with the same key is applied once and answered again with
//! `Idempotent-Replayed: true`).

// A refusal is built once per refused request and rendered straight away; boxing it would only
// add noise to every parse step.
#![allow(clippy::result_large_err)]

use super::problem::{Path, RawBody};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use chrono::Utc;
use serde_json::Value;
use waybill_schemas::api_keys::{Principal, Role};
use waybill_schemas::{IdempotencyKey, Sku};

use super::handlers::REPLAYED_HEADER;
use super::problem::{Problem, ProblemType};
use super::request::IDEMPOTENCY_KEY_HEADER;
use super::AppState;
use crate::domain::fields::check_str;
use crate::domain::FieldError;
use crate::inventory::{
    Country, InventoryError, Location, LocationId, LocationKind, MovementOutcome, StockLevel,
};

/// Largest restock accepted in one request.
pub const MAX_RESTOCK: i64 = 1_000_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/inventory/locations/{id}", put(put_location))
        .route("/v1/inventory/stock/{sku}", get(get_stock))
        .route(
            "/v1/inventory/stock/{sku}/{location}/restock",
            post(restock),
        )
        .route("/v1/inventory/stock/{sku}/{location}/adjust", post(adjust))
}

fn field(name: &str, detail: impl Into<String>) -> Problem {
    Problem::validation(vec![FieldError {
        field: name.to_owned(),
        detail: detail.into(),
    }])
}

impl From<InventoryError> for Problem {
    fn from(error: InventoryError) -> Self {
        match error {
            InventoryError::Invalid {
                field: name,
                detail,
            } => field(name, detail),
            // Only restock and adjust meet it, where the location is in the path: an unknown
            // resource in a path is 404, like every other.
            InventoryError::UnknownLocation(id) => Self::new(
                ProblemType::NotFound,
                format!("no location {id}: create it with PUT /v1/inventory/locations/{{id}}"),
            )
            .with_field("location"),
            InventoryError::BelowCommitted { .. } => field("delta", error.to_string()),
            InventoryError::KeyReused(_) => Self::new(
                ProblemType::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different stock movement",
            ),
            InventoryError::NothingReserved(id) => Self::new(
                ProblemType::NothingReserved,
                format!("order {id} has no reservation"),
            ),
            InventoryError::NotEnoughAt { .. } => {
                Self::new(ProblemType::NotEnoughStock, error.to_string())
            }
            InventoryError::Database(ref db) if crate::event_store::retry::is_unavailable(db) => {
                tracing::warn!(error = %error, "inventory request failed: database unavailable");
                Self::database_unavailable()
            }
            InventoryError::Stopped | InventoryError::Database(_) => {
                tracing::error!(error = %error, "inventory request failed");
                Self::internal()
            }
        }
    }
}

/// The caller, if its key may manage inventory; and its idempotency key when `keyed`.
fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    keyed: bool,
) -> Result<(Principal, Option<IdempotencyKey>), Problem> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = state
        .api_keys
        .authenticate_header(authorization)
        .ok_or_else(Problem::unauthorized)?;
    if !matches!(principal.role, Role::Admin | Role::Service) {
        return Err(Problem::new(
            ProblemType::Forbidden,
            "inventory needs an admin or service API key",
        ));
    }
    if !keyed {
        return Ok((principal, None));
    }
    let key = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .and_then(|raw| raw.to_str().ok())
        .and_then(|raw| IdempotencyKey::parse(raw).ok())
        .ok_or_else(|| {
            Problem::missing_idempotency_key(
                "send an Idempotency-Key header (1-255 visible ASCII characters)",
            )
        })?;
    Ok((principal, Some(key)))
}

fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, Problem> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(Problem::unsupported_media_type());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::malformed_json(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(field("body", "must be a JSON object"));
    }
    Ok(value)
}

/// Longest location name or adjustment reason.
const MAX_TEXT: usize = 200;

/// A required string field: trimmed, 1-200 characters, no control characters.
fn text_field(body: &Value, name: &str) -> Result<String, Problem> {
    let raw = body
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| field(name, format!("must be a string of 1-{MAX_TEXT} characters")))?;
    check_str(raw, MAX_TEXT)
        .map(str::to_owned)
        .map_err(|detail| field(name, detail))
}

fn sku_of(raw: &str) -> Result<Sku, Problem> {
    Sku::parse(raw).map_err(|e| field("sku", e.to_string()))
}

/// What every stock movement request carries, checked in this order: a caller allowed to manage
/// inventory with an idempotency key, a JSON object body, the SKU and the location from the path.
struct Movement {
    sku: Sku,
    location: LocationId,
    body: Value,
    /// The caller's idempotency key scoped to its client, so two clients never collide.
    id: String,
}

impl Movement {
    fn parse(
        state: &AppState,
        headers: &HeaderMap,
        body: &Bytes,
        sku: &str,
        location: &str,
    ) -> Result<Self, Problem> {
        let (principal, key) = authorize(state, headers, true)?;
        let body = json_body(headers, body)?;
        let key = key.map(|k| k.as_str().to_owned()).unwrap_or_default();
        Ok(Self {
            sku: sku_of(sku)?,
            location: LocationId::parse(location).map_err(Problem::from)?,
            body,
            id: format!("{}:{key}", principal.client_id),
        })
    }
}

fn moved(outcome: Result<MovementOutcome, InventoryError>) -> Response {
    match outcome {
        Ok(outcome) => {
            let mut response = axum::Json(outcome.level).into_response();
            if outcome.replayed {
                response
                    .headers_mut()
                    .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            }
            response
        }
        Err(error) => Problem::from(error).into_response(),
    }
}

/// `PUT /v1/inventory/locations/{id}` body.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct LocationRequest {
    /// warehouse, store or third_party.
    #[schema(pattern = "^(warehouse|store|third_party)$")]
    kind: String,
    /// 1-200 characters, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// An assigned ISO-3166 alpha-2 code (any case), by the same rule as order addresses;
    /// an unassigned one such as `XX` is 422 `country`.
    #[schema(example = "US", pattern = "^[A-Za-z]{2}$")]
    country: String,
    /// 0-9: compared with the first character of the ship-to postal code.
    #[schema(minimum = 0, maximum = 9)]
    zone: i32,
    /// Default true; an inactive location gives no stock to new orders.
    active: Option<bool>,
}

/// `POST .../restock` body.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct RestockRequest {
    /// 1 to 1,000,000 units.
    #[schema(minimum = 1, maximum = 1000000)]
    quantity: i64,
}

/// `POST .../adjust` body.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct AdjustRequest {
    /// Units added (positive) or removed (negative); never below what is reserved or allocated.
    #[schema(minimum = -1000000, maximum = 1000000)]
    delta: i64,
    /// 1-200 characters, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    reason: String,
}

/// Stock of one SKU per location.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct StockResponse {
    sku: String,
    levels: Vec<StockLevel>,
}

fn parse_location(id: &str, body: &Value) -> Result<Location, Problem> {
    let text = |name: &str| body.get(name).and_then(Value::as_str);
    let location_id = LocationId::parse(id).map_err(Problem::from)?;
    let kind = LocationKind::parse(text("kind").unwrap_or_default()).map_err(Problem::from)?;
    let name = text_field(body, "name")?;
    let country = Country::parse(text("country").unwrap_or_default()).map_err(Problem::from)?;
    let zone = body
        .get("zone")
        .and_then(crate::domain::fields::integral_value)
        .filter(|z| (0..=9).contains(z))
        .ok_or_else(|| field("zone", "must be an integer from 0 to 9"))?;
    let active = match body.get("active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(field("active", "must be true or false")),
    };
    Ok(Location {
        location_id,
        kind,
        name,
        country,
        zone: zone as i32,
        active,
    })
}

/// Create or replace a location.
#[utoipa::path(
    put,
    path = "/v1/inventory/locations/{id}",
    tag = "inventory",
    params(
        ("id" = String, Path, description = "Location id: 1-64 letters, digits, '-', '_', '.'"),
        ("Idempotency-Key" = String, Header, description = "Required on every inventory mutation")
    ),
    request_body(content = LocationRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The location as stored"),
        (status = 400, description = "missing-idempotency-key or malformed-json", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: not an admin or service key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed with the field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn put_location(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let result = async {
        authorize(&state, &headers, true)?;
        let location = parse_location(&id, &json_body(&headers, &body)?)?;
        state.inventory.upsert_location(&location).await?;
        Ok::<_, Problem>(axum::Json(location).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Add units on hand.
#[utoipa::path(
    post,
    path = "/v1/inventory/stock/{sku}/{location}/restock",
    tag = "inventory",
    params(
        ("sku" = String, Path, description = "SKU"),
        ("location" = String, Path, description = "Location id"),
        ("Idempotency-Key" = String, Header, description = "The same key is applied once")
    ),
    request_body(content = RestockRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Stock after the restock", body = StockLevel),
        (status = 400, description = "missing-idempotency-key or malformed-json", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found: no location with this id", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (quantity, location_id, sku) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn restock(
    State(state): State<AppState>,
    Path((sku, location)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let result = async {
        let Movement {
            sku,
            location,
            body,
            id,
        } = Movement::parse(&state, &headers, &body, &sku, &location)?;
        let quantity = body
            .get("quantity")
            .and_then(crate::domain::fields::integral_value)
            .filter(|q| (1..=MAX_RESTOCK).contains(q))
            .and_then(|q| u32::try_from(q).ok())
            .ok_or_else(|| field("quantity", "must be an integer from 1 to 1000000"))?;
        Ok::<_, Problem>(moved(
            state
                .inventory
                .restock(sku, location, quantity, &id, Utc::now())
                .await,
        ))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Correct units on hand.
#[utoipa::path(
    post,
    path = "/v1/inventory/stock/{sku}/{location}/adjust",
    tag = "inventory",
    params(
        ("sku" = String, Path, description = "SKU"),
        ("location" = String, Path, description = "Location id"),
        ("Idempotency-Key" = String, Header, description = "The same key is applied once")
    ),
    request_body(content = AdjustRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Stock after the adjustment", body = StockLevel),
        (status = 400, description = "missing-idempotency-key or malformed-json", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found: no location with this id", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (delta, reason, location_id) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn adjust(
    State(state): State<AppState>,
    Path((sku, location)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let result = async {
        let Movement {
            sku,
            location,
            body,
            id,
        } = Movement::parse(&state, &headers, &body, &sku, &location)?;
        let delta = body
            .get("delta")
            .and_then(crate::domain::fields::integral_value)
            .filter(|d| *d != 0 && d.abs() <= MAX_RESTOCK)
            .ok_or_else(|| {
                field(
                    "delta",
                    "must be a non-zero integer from -1000000 to 1000000",
                )
            })?;
        let reason = text_field(&body, "reason")?;
        Ok::<_, Problem>(moved(
            state
                .inventory
                .adjust(sku, location, delta, &reason, &id, Utc::now())
                .await,
        ))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Stock of a SKU at every location.
#[utoipa::path(
    get,
    path = "/v1/inventory/stock/{sku}",
    tag = "inventory",
    params(("sku" = String, Path, description = "SKU")),
    responses(
        (status = 200, description = "Stock per location", body = StockResponse),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed: sku", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_stock(
    State(state): State<AppState>,
    Path(sku): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorize(&state, &headers, false)?;
        let sku = sku_of(&sku)?;
        let levels = state.inventory.stock(&sku).await?;
        Ok::<_, Problem>(
            axum::Json(StockResponse {
                sku: sku.as_str().to_owned(),
                levels,
            })
            .into_response(),
        )
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}
