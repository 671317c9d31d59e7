//! Turning an HTTP request into a command's inputs, refusing early what is not one: no or an
//! unknown API key (401/403), no `Idempotency-Key` (400), not JSON (415), over the body limit
//! (413, the limit itself is a layer), unparsable JSON (400). Nothing is stored for any of these.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use serde_json::Value;
use uuid::Uuid;
use waybill_schemas::api_keys::{Principal, Role};
use waybill_schemas::IdempotencyKey;

use super::problem::Problem;
use super::AppState;
use crate::commands::CommandContext;
use crate::domain::{parse_place_order_bytes, PlaceOrder};
use crate::idempotency::request_hash;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";

/// An authenticated, keyed command request with its body parsed as JSON.
pub struct CommandInput {
    pub ctx: CommandContext,
    pub body: Value,
}

/// A place-order request: the body already read into an order on the typed fast path, or, when
/// that path defers, parsed as JSON for the field walker (which reports the errors).
pub struct PlaceOrderInput {
    pub ctx: CommandContext,
    pub body: PlaceOrderBody,
}

pub enum PlaceOrderBody {
    Parsed(Box<PlaceOrder>),
    Json(Value),
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// `X-Correlation-Id` when it is a UUID, else a new UUIDv7.
fn correlation_id(headers: &HeaderMap) -> Uuid {
    headers
        .get(CORRELATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
        .unwrap_or_else(Uuid::now_v7)
}

fn malformed(e: serde_json::Error) -> Problem {
    Problem::malformed_json(format!("the body is not valid JSON: {e}"))
}

impl FromRequest<AppState> for CommandInput {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let (ctx, body) = read(request, state, Role::may_command).await?;
        let body = serde_json::from_slice(&body).map_err(malformed)?;
        Ok(Self { ctx, body })
    }
}

impl FromRequest<AppState> for PlaceOrderInput {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let (ctx, body) = read(request, state, Role::may_command).await?;
        let body = match parse_place_order_bytes(&body) {
            Some(order) => PlaceOrderBody::Parsed(Box::new(order)),
            None => PlaceOrderBody::Json(serde_json::from_slice(&body).map_err(malformed)?),
        };
        Ok(Self { ctx, body })
    }
}

/// A keyed JSON command a signed-in customer sends about themselves (Bearer JWT with role
/// `customer`): their notification preferences.
pub struct CustomerCommandInput {
    pub ctx: CommandContext,
    pub body: Value,
}

impl FromRequest<AppState> for CustomerCommandInput {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let (ctx, body) = read(request, state, |role| role == Role::Customer).await?;
        let body = serde_json::from_slice(&body).map_err(malformed)?;
        Ok(Self { ctx, body })
    }
}

/// A keyed JSON command on money (refunds, dispute evidence, settlement imports): like
/// [`CommandInput`], but the `finance` role gets through too; each handler then names exactly
/// which roles it serves.
pub struct MoneyCommandInput {
    pub ctx: CommandContext,
    pub body: Value,
}

impl FromRequest<AppState> for MoneyCommandInput {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let (ctx, body) = read(request, state, |_| true).await?;
        let body = serde_json::from_slice(&body).map_err(malformed)?;
        Ok(Self { ctx, body })
    }
}

/// A keyed request whose body may be left out (a delete, an action without options): like
/// [`CommandInput`], but an empty body needs no `Content-Type`; a body sent must be JSON.
pub struct KeyedInput {
    pub ctx: CommandContext,
}

impl FromRequest<AppState> for KeyedInput {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let (ctx, body) = read_checked(request, state, Role::may_command, true).await?;
        if !body.is_empty() {
            serde_json::from_slice::<Value>(&body).map_err(malformed)?;
        }
        Ok(Self { ctx })
    }
}

/// The checks every command request passes, then its context and raw body.
async fn read(
    request: Request,
    state: &AppState,
    allowed: fn(Role) -> bool,
) -> Result<(CommandContext, Bytes), Problem> {
    read_checked(request, state, allowed, false).await
}

/// [`read`], with the body optional when `body_optional` (then only a body sent must be JSON).
/// The caller named by the `Authorization` header's Bearer API key: 401 without a valid one.
#[allow(clippy::result_large_err)] // Problem is the handlers' error type, as in the modules using it
pub(crate) fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, Problem> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state
        .api_keys
        .authenticate_header(authorization)
        .ok_or_else(Problem::unauthorized)
}

/// The caller, when its role is `allowed`: 401 without a valid key, 403 with another role.
#[allow(clippy::result_large_err)]
pub(crate) fn require_role(
    state: &AppState,
    headers: &HeaderMap,
    allowed: fn(Role) -> bool,
) -> Result<Principal, Problem> {
    let principal = authenticate(state, headers)?;
    if allowed(principal.role) {
        Ok(principal)
    } else {
        Err(Problem::forbidden())
    }
}

async fn read_checked(
    request: Request,
    state: &AppState,
    allowed: fn(Role) -> bool,
    body_optional: bool,
) -> Result<(CommandContext, Bytes), Problem> {
    let headers = request.headers();
    let principal = require_role(state, headers, allowed)?;
    let key = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => {
            return Err(Problem::missing_idempotency_key(
                "send an Idempotency-Key header (1-255 visible ASCII characters)",
            ))
        }
        Some(raw) => raw
            .to_str()
            .ok()
            .and_then(|raw| IdempotencyKey::parse(raw).ok())
            .ok_or_else(|| {
                Problem::missing_idempotency_key(
                    "the Idempotency-Key must be 1-255 visible ASCII characters",
                )
            })?,
    };
    let json = is_json(headers);
    if !json && !body_optional {
        return Err(Problem::unsupported_media_type());
    }
    let correlation_id = correlation_id(headers);
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let body = read_body(request, state.body_limit).await?;
    if !json && !body.is_empty() {
        return Err(Problem::unsupported_media_type());
    }
    let ctx = CommandContext {
        actor: principal.actor(),
        role: principal.role,
        client_id: principal.client_id,
        idempotency_key: key.as_str().to_owned(),
        request_hash: request_hash(&method, &path, &body),
        correlation_id,
    };
    Ok((ctx, body))
}

/// The whole body, within the body limit the router's `DefaultBodyLimit` layer set (`limit` is
/// the same number, for the answer).
pub(super) async fn read_body(request: Request, limit: usize) -> Result<Bytes, Problem> {
    Bytes::from_request(request, &())
        .await
        .map_err(|rejection| Problem::from_body_rejection(&rejection, limit))
}
