//! Customer notifications on the command API: a signed-in customer reads and sets their
//! notification preferences (`GET`/`PUT /v1/me/notification-preferences`, Bearer JWT with role
//! `customer`), and an agent or admin asks for a message to be sent again
//! (`POST /v1/orders/{id}/notifications/resend`). Carried out by
//! [`crate::commands::set_notification_preferences`] and
//! [`crate::commands::resend_notification`].

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::Instrument;
use waybill_schemas::api_keys::Role;

use super::handlers::{command_span, finish};
use super::problem::{Path, Problem};
use super::request::{CommandInput, CustomerCommandInput};
use super::AppState;
use crate::commands::{self, CommandError, PreferencesResponse};
use crate::notification_preferences::{self, Preferences};

/// `PUT /v1/me/notification-preferences` body.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct PreferencesRequest {
    /// The media messages go by, each at most once; `[]`: no messages at all.
    #[schema(example = json!(["email", "sms"]), max_items = 2)]
    media: Vec<MediumName>,
    /// The language of the messages: `en` or `de` (a region such as `de-AT` is accepted and
    /// dropped).
    #[schema(example = "de", max_length = 35)]
    locale: String,
}

#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub enum MediumName {
    #[schema(rename = "email")]
    Email,
    #[schema(rename = "sms")]
    Sms,
}

/// `POST /v1/orders/{id}/notifications/resend` body.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct ResendRequest {
    /// Which message: the order's latest of this kind.
    #[schema(
        pattern = "^(order_received|action_required|order_confirmed|payment_failed|order_cancelled|shipped|out_for_delivery|ready_for_pickup|delivered|refund_issued)$"
    )]
    kind: String,
    /// Only by this medium (`email` or `sms`), even if the customer turned it off; left out:
    /// by every medium the customer's preferences allow.
    #[schema(pattern = "^(email|sms)$", nullable = false)]
    medium: Option<String>,
    /// Why, for the order's history (at most 500 characters).
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// Read my notification preferences.
#[utoipa::path(
    get,
    path = "/v1/me/notification-preferences",
    tag = "customers",
    description = "The signed-in customer's notification preferences (Bearer JWT, role \
        `customer`): the media messages go by and their language. A customer who never set \
        any gets the defaults (`email` and `sms`, `en`) with `updated_at` null.",
    responses(
        (status = 200, description = "The preferences", body = PreferencesResponse),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (not a customer)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "unavailable (the database); retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_preferences(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let answer = async {
        let principal =
            super::request::require_role(&state, &headers, |role| role == Role::Customer)?;
        let stored = notification_preferences::get(&state.services.pool, &principal.client_id)
            .await
            .map_err(|e| Problem::from(CommandError::from(e)))?;
        Ok::<_, Problem>(match stored {
            Some(stored) => PreferencesResponse::new(
                &principal.client_id,
                &stored.preferences,
                Some(stored.updated_at),
            ),
            None => PreferencesResponse::new(&principal.client_id, &Preferences::default(), None),
        })
    };
    match answer.await {
        Ok(body) => {
            let mut response = Json(body).into_response();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(problem) => problem.into_response(),
    }
}

/// Set my notification preferences.
#[utoipa::path(
    put,
    path = "/v1/me/notification-preferences",
    tag = "customers",
    description = "Sets the signed-in customer's notification preferences (Bearer JWT, role \
        `customer`). They apply to every message sent from then on, for every order placed with \
        the customer's id. Requires `Idempotency-Key`: a repeat answers the first response.",
    params(("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")),
    request_body(content = PreferencesRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Preferences set", body = PreferencesResponse),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (not a customer)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (media, locale, an unknown field) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn put_preferences(
    State(state): State<AppState>,
    input: CustomerCommandInput,
) -> Response {
    let span = command_span("set_notification_preferences", &input.ctx);
    let started = Instant::now();
    let result = commands::set_notification_preferences(&state.services, &input.ctx, &input.body)
        .instrument(span.clone())
        .await;
    finish(&span, "set_notification_preferences", started, result)
}

/// Send a customer notification again.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/notifications/resend",
    tag = "orders",
    description = "Sends the order's latest message of `kind` again, once per request: records \
        a `NotificationResendRequested` event in the order's stream with the caller as its \
        actor; the notifications view then sends the message (freshly worded, with a new \
        tracking link) under the event's id, so a repeated request with the same \
        `Idempotency-Key` sends nothing more. Role `agent` or `admin`. 409 `invalid-transition` \
        when the order never had a message of that kind.",
    params(
        ("id" = String, Path, description = "Order id (UUID)"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    request_body(content = ResendRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Resend recorded; the message goes out when the notifications view applies it", body = commands::ResendResponse),
        (status = 403, description = "forbidden (not agent or admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found (id)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid-transition (no such message on this order)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (kind, medium, reason) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn resend(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    input: CommandInput,
) -> Response {
    let span = command_span("resend_notification", &input.ctx);
    let started = Instant::now();
    let result = if matches!(input.ctx.role, Role::Agent | Role::Admin) {
        commands::resend_notification(&state.services, &input.ctx, &raw_id, &input.body)
            .instrument(span.clone())
            .await
    } else {
        Err(CommandError::Forbidden)
    };
    finish(&span, "resend_notification", started, result)
}
