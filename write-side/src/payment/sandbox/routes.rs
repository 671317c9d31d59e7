//! The sandbox's HTTP shell: authenticate, parse the body into typed values (naming the field
//! that was wrong), run the ledger operation once per `Idempotency-Key`, answer JSON or
//! problem+json, and hand the resulting events to webhook delivery.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Form, Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use subtle::ConstantTimeEq;
use waybill_schemas::{Currency, Money, OrderId};

use super::challenge;
use super::idempotency::{fingerprint, Begin, StoredResponse};
use super::state::{card_behaviour, CardBehaviour, Ledger, Refusal};
use super::Sandbox;
use crate::payment::webhook::GatewayEventKind;
use crate::payment::wire::{
    ChallengeCompletion, ChallengeResult, Problem, IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED,
    PROBLEM_JSON,
};

const JSON: &str = "application/json";
const MAX_BODY: usize = 16 * 1024;
const MAX_KEY_LEN: usize = 255;

pub(super) fn routes(sandbox: Arc<Sandbox>) -> Router {
    Router::new()
        .route("/v1/authorizations", post(authorize))
        .route("/v1/authorizations/{id}", get(show_authorization))
        .route(
            "/v1/authorizations/{id}/capture",
            amount_route(Ledger::capture),
        )
        .route("/v1/authorizations/{id}/void", post(void))
        .route("/v1/captures/{id}/refunds", amount_route(Ledger::refund))
        .route("/v1/challenges/{id}/complete", post(complete_challenge))
        .route(
            "/challenge/{id}",
            get(challenge_page).post(challenge_page_answer),
        )
        .route("/v1/_sandbox/webhooks", get(list_webhooks))
        .route("/v1/_sandbox/webhooks/{id}/resend", post(resend_webhook))
        .route("/health", get(|| async { "ok" }))
        .merge(super::operator::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(sandbox)
}

/// What an operation produced: the answer to store and send, and the events it caused.
pub(super) struct Outcome {
    response: StoredResponse,
    events: Vec<GatewayEventKind>,
}

impl Outcome {
    fn ok<T: Serialize>(status: StatusCode, body: &T, events: Vec<GatewayEventKind>) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => Self {
                response: StoredResponse {
                    status: status.as_u16(),
                    content_type: JSON,
                    body: Bytes::from(bytes),
                },
                events,
            },
            Err(error) => Self::problem(&Problem::new(
                500,
                "internal",
                "Internal error",
                error.to_string(),
            )),
        }
    }

    pub(super) fn problem(problem: &Problem) -> Self {
        Self {
            response: problem_response(problem),
            events: Vec::new(),
        }
    }

    pub(super) fn from_result<T: Serialize>(
        status: StatusCode,
        result: Result<(T, Vec<GatewayEventKind>), Refusal>,
    ) -> Self {
        match result {
            Ok((body, events)) => Self::ok(status, &body, events),
            Err(refusal) => Self::problem(&problem_for(&refusal)),
        }
    }
}

fn problem_response(problem: &Problem) -> StoredResponse {
    StoredResponse {
        status: problem.status,
        content_type: PROBLEM_JSON,
        body: Bytes::from(serde_json::to_vec(problem).unwrap_or_default()),
    }
}

pub(super) fn problem_for(refusal: &Refusal) -> Problem {
    let detail = refusal.to_string();
    match refusal {
        Refusal::NotFound { what, .. } => {
            Problem::new(404, &format!("{what}_not_found"), "Not found", detail)
        }
        Refusal::Refused { code, .. } => Problem::new(402, code, "Refused", detail),
        Refusal::AlreadySettled { .. } => Problem::new(
            409,
            "challenge_already_completed",
            "Challenge already completed",
            detail,
        ),
        Refusal::Invalid { field, .. } => invalid(field, detail),
        Refusal::ProcessingError => {
            Problem::new(502, "processing_error", "Processing error", detail)
        }
    }
}

fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    let detail = detail.into();
    Problem {
        field: Some(field.to_owned()),
        ..Problem::new(
            422,
            "validation_failed",
            "Validation failed",
            format!("{field} {detail}"),
        )
    }
}

fn respond(stored: StoredResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(stored.content_type),
    );
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

pub(super) fn refuse(problem: &Problem) -> Response {
    respond(problem_response(problem), false)
}

pub(super) fn authenticated(sandbox: &Sandbox, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(
        presented
            .as_bytes()
            .ct_eq(sandbox.config.api_key.as_bytes()),
    )
}

pub(super) fn unauthorized() -> Response {
    refuse(&Problem::new(
        401,
        "unauthorized",
        "Unauthorized",
        "send Authorization: Bearer <api key>",
    ))
}

/// Runs `operation` once per idempotency key: replays a finished answer byte for byte, answers
/// 409 while the first request is still running and 422 when the key came with another request.
/// The operation runs in its own task, so a caller that gives up does not cancel it. Answers
/// of 5xx are not stored (nothing happened), so a retry runs again.
pub(super) async fn idempotent(
    sandbox: Arc<Sandbox>,
    headers: &HeaderMap,
    uri: &Uri,
    body: &Bytes,
    delay: Duration,
    operation: impl FnOnce(&Sandbox, DateTime<Utc>) -> Outcome + Send + 'static,
) -> Response {
    if !authenticated(&sandbox, headers) {
        return unauthorized();
    }
    let key = match headers.get(IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        Some(Ok(key)) if !key.is_empty() && key.len() <= MAX_KEY_LEN => key.to_owned(),
        _ => {
            return refuse(&Problem::new(
                400,
                "missing_idempotency_key",
                "Missing idempotency key",
                format!("send an Idempotency-Key header of 1 to {MAX_KEY_LEN} characters"),
            ))
        }
    };
    let print = fingerprint(uri.path(), body);
    let begun = sandbox.idempotency().begin(&key, print);
    match begun {
        Begin::New => {}
        Begin::Replay(stored) => return respond(stored, true),
        Begin::InFlight => {
            return refuse(&Problem::new(
                409,
                "request_in_progress",
                "Request in progress",
                "a request with this idempotency key is still being processed; retry later",
            ))
        }
        Begin::Mismatch => {
            return refuse(&Problem::new(
                422,
                "idempotency_key_reused",
                "Idempotency key reused",
                "this idempotency key was used with a different request",
            ))
        }
    }
    let task_sandbox = sandbox.clone();
    let task_key = key.clone();
    let task = tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let now = Utc::now();
        let outcome = operation(&task_sandbox, now);
        if outcome.response.status >= 500 {
            task_sandbox.idempotency().abandon(&task_key);
        } else {
            task_sandbox
                .idempotency()
                .finish(&task_key, outcome.response.clone());
        }
        // Saved (the change and its answer) before the webhooks go and the answer is sent.
        task_sandbox.commit(outcome.events, now).await;
        outcome.response
    });
    match task.await {
        Ok(stored) => respond(stored, false),
        Err(error) => {
            sandbox.idempotency().abandon(&key);
            tracing::error!(%error, "sandbox operation failed");
            refuse(&Problem::new(
                500,
                "internal",
                "Internal error",
                "the sandbox failed",
            ))
        }
    }
}

/// A request body that is not what the route expects.
#[derive(Debug)]
enum BadInput {
    Malformed(String),
    Field { field: &'static str, detail: String },
}

impl BadInput {
    fn field(field: &'static str, detail: impl Into<String>) -> Self {
        BadInput::Field {
            field,
            detail: detail.into(),
        }
    }

    fn problem(&self) -> Problem {
        match self {
            BadInput::Malformed(detail) => {
                Problem::new(400, "malformed_json", "Malformed JSON", detail.clone())
            }
            BadInput::Field { field, detail } => invalid(field, detail.clone()),
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value, BadInput> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(BadInput::Malformed("the body must be a JSON object".into())),
        Err(error) => Err(BadInput::Malformed(error.to_string())),
    }
}

fn string_field<'a>(body: &'a Value, field: &'static str) -> Result<&'a str, BadInput> {
    match body.get(field) {
        Some(Value::String(value)) if !value.is_empty() => Ok(value),
        Some(Value::String(_)) => Err(BadInput::field(field, "must not be empty")),
        Some(_) => Err(BadInput::field(field, "must be a string")),
        None => Err(BadInput::field(field, "is required")),
    }
}

fn money_field(body: &Value) -> Result<Money, BadInput> {
    let amount = match body.get("amount") {
        Some(amount @ Value::Object(_)) => amount,
        Some(_) => {
            return Err(BadInput::field(
                "amount",
                "must be an object {minor, currency}",
            ))
        }
        None => return Err(BadInput::field("amount", "is required")),
    };
    let minor = match amount.get("minor") {
        Some(minor) => minor
            .as_i64()
            .ok_or_else(|| BadInput::field("amount.minor", "must be an integer (minor units)"))?,
        None => return Err(BadInput::field("amount.minor", "is required")),
    };
    if minor <= 0 {
        return Err(BadInput::field(
            "amount.minor",
            format!("must be positive, got {minor}"),
        ));
    }
    let currency = match amount.get("currency") {
        Some(Value::String(code)) => {
            Currency::parse(code).map_err(|e| BadInput::field("amount.currency", e.to_string()))?
        }
        Some(_) => return Err(BadInput::field("amount.currency", "must be a string")),
        None => return Err(BadInput::field("amount.currency", "is required")),
    };
    Ok(Money::new(minor, currency))
}

struct AuthorizeCommand {
    order_id: OrderId,
    amount: Money,
    token: String,
}

fn parse_authorize(body: &[u8]) -> Result<AuthorizeCommand, BadInput> {
    let body = parse_json(body)?;
    let order_id = OrderId::parse(string_field(&body, "order_id")?)
        .map_err(|e| BadInput::field("order_id", e.to_string()))?;
    let amount = money_field(&body)?;
    let token = string_field(&body, "token")?.to_owned();
    Ok(AuthorizeCommand {
        order_id,
        amount,
        token,
    })
}

async fn authorize(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let command = parse_authorize(&body);
    let delay = match &command {
        Ok(c) if card_behaviour(&c.token) == CardBehaviour::Slow => sandbox.config.slow_response,
        _ => Duration::ZERO,
    };
    idempotent(
        sandbox,
        &headers,
        &uri,
        &body,
        delay,
        move |sandbox, now| {
            let command = match command {
                Ok(command) => command,
                Err(bad) => return Outcome::problem(&bad.problem()),
            };
            let _span =
                tracing::debug_span!("sandbox_authorize", order_id = %command.order_id).entered();
            let result = sandbox
                .ledger()
                .authorize(command.order_id, command.amount, &command.token, now)
                .map(|authorization| (authorization, Vec::new()));
            Outcome::from_result(StatusCode::CREATED, result)
        },
    )
    .await
}

async fn show_authorization(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authenticated(&sandbox, &headers) {
        return unauthorized();
    }
    let found = sandbox.ledger().authorization(&id, Utc::now());
    match found {
        Ok(authorization) => Json(authorization).into_response(),
        Err(refusal) => refuse(&problem_for(&refusal)),
    }
}

async fn void(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    idempotent(
        sandbox,
        &headers,
        &uri,
        &body,
        Duration::ZERO,
        move |sandbox, now| {
            let result = sandbox
                .ledger()
                .void(&id, now)
                .map(|(authorization, event)| (authorization, event.into_iter().collect()));
            Outcome::from_result(StatusCode::OK, result)
        },
    )
    .await
}

/// A ledger operation that moves an amount on a resource: [`Ledger::capture`], [`Ledger::refund`].
type AmountOperation<T> =
    fn(&mut Ledger, &str, Money, DateTime<Utc>) -> Result<(T, GatewayEventKind), Refusal>;

/// A `POST` route that runs `operation` (capture, refund) once per idempotency key on the `{id}`
/// in the path with the `amount` in the body, and answers 201 with what it created. A body
/// without a valid amount is answered, and remembered under the key, as the problem it is.
fn amount_route<T: Serialize + Send + 'static>(
    operation: AmountOperation<T>,
) -> MethodRouter<Arc<Sandbox>> {
    post(
        move |State(sandbox): State<Arc<Sandbox>>,
              headers: HeaderMap,
              uri: Uri,
              Path(id): Path<String>,
              body: Bytes| async move {
            let amount = parse_json(&body).and_then(|body| money_field(&body));
            idempotent(
                sandbox,
                &headers,
                &uri,
                &body,
                Duration::ZERO,
                move |sandbox, now| {
                    let amount = match amount {
                        Ok(amount) => amount,
                        Err(bad) => return Outcome::problem(&bad.problem()),
                    };
                    let result = operation(&mut sandbox.ledger(), &id, amount, now)
                        .map(|(created, event)| (created, vec![event]));
                    Outcome::from_result(StatusCode::CREATED, result)
                },
            )
            .await
        },
    )
}

/// Settles a challenge, saves and queues its webhook; shared by the JSON route and the HTML
/// page.
async fn settle(
    sandbox: &Sandbox,
    id: &str,
    result: ChallengeResult,
) -> Result<crate::payment::wire::Authorization, Refusal> {
    let now = Utc::now();
    let (authorization, event) = sandbox.ledger().complete_challenge(id, result, now)?;
    sandbox.commit(event.into_iter().collect(), now).await;
    Ok(authorization)
}

async fn complete_challenge(
    State(sandbox): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let completion: ChallengeCompletion = match serde_json::from_slice(&body) {
        Ok(completion) => completion,
        Err(_) => return refuse(&invalid("result", "must be \"pass\" or \"fail\"")),
    };
    match settle(&sandbox, &id, completion.result).await {
        Ok(authorization) => Json(authorization).into_response(),
        Err(refusal) => refuse(&problem_for(&refusal)),
    }
}

async fn challenge_page(State(sandbox): State<Arc<Sandbox>>, Path(id): Path<String>) -> Response {
    let found = sandbox.ledger().authorization(&id, Utc::now());
    match found {
        Ok(authorization) => challenge::page(&authorization, None).into_response(),
        Err(_) => challenge::not_found().into_response(),
    }
}

async fn challenge_page_answer(
    State(sandbox): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    Form(completion): Form<ChallengeCompletion>,
) -> Response {
    match settle(&sandbox, &id, completion.result).await {
        Ok(authorization) => challenge::page(&authorization, None).into_response(),
        Err(Refusal::NotFound { .. }) => challenge::not_found().into_response(),
        Err(refusal) => {
            let found = sandbox.ledger().authorization(&id, Utc::now());
            match found {
                Ok(authorization) => {
                    challenge::page(&authorization, Some(&refusal.to_string())).into_response()
                }
                Err(_) => challenge::not_found().into_response(),
            }
        }
    }
}

async fn list_webhooks(State(sandbox): State<Arc<Sandbox>>, headers: HeaderMap) -> Response {
    if !authenticated(&sandbox, &headers) {
        return unauthorized();
    }
    Json(sandbox.webhooks.list()).into_response()
}

async fn resend_webhook(
    State(sandbox): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authenticated(&sandbox, &headers) {
        return unauthorized();
    }
    if sandbox.webhooks.resend(&id) {
        (StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))).into_response()
    } else {
        refuse(&Problem::new(
            404,
            "event_not_found",
            "Not found",
            format!("event {id} does not exist"),
        ))
    }
}
