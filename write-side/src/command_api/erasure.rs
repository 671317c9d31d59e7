//! Erasure on the command API: `POST /v1/customers/{id}/erasure` and `POST /v1/guests/erasure`
//! (role `admin`), carried out by [`crate::commands::erase_customer`] and
//! [`crate::commands::erase_guest`].

use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use tracing::Instrument;

use super::handlers::{command_span, finish};
use super::problem::{Path, Problem};
use super::request::{CommandInput, KeyedInput};
use super::AppState;
use crate::commands;

/// Erase a customer's personal data.
#[utoipa::path(
    post,
    path = "/v1/customers/{id}/erasure",
    tag = "customers",
    description = "Erases the personal data (name, email, phone, addresses, IP, device, who \
        signed for a parcel, and the free-text notes and reasons written about the orders) of \
        every order placed with channel customer id `id`, by destroying \
        the customer's data keys: the event log keeps every event, and their sealed personal \
        fields read as erased (`[erased]`, null, `erased@erased.invalid`) from then on, in \
        folds, views and rebuilds. Order history and money are untouched. Records a \
        `CustomerErased` event (no personal data in it) and scrubs stored responses and the \
        notification ledger; the tracking, search and analytics views re-project the orders \
        when they apply the event. A repeat scrubs again and destroys nothing more. Requires \
        `Idempotency-Key`; no body. Role `admin`.",
    params(
        ("id" = String, Path, description = "The channel customer id (`customer.customer_id` of the orders)"),
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    responses(
        (status = 200, description = "Erased", body = commands::ErasureResponse),
        (status = 403, description = "forbidden (not admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found (id): no order was ever placed with this customer id", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "unavailable (the database); retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn erase_customer(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    input: KeyedInput,
) -> Response {
    let span = command_span("erase_customer", &input.ctx);
    let started = Instant::now();
    let result = commands::erase_customer(&state.services, &input.ctx, &raw_id)
        .instrument(span.clone())
        .await;
    finish(&span, "erase_customer", started, result)
}

/// `POST /v1/guests/erasure` body.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct GuestErasureRequest {
    /// The email the guest checked out with (any case; surrounding white space is ignored).
    #[schema(example = "ada@example.com")]
    email: String,
}

/// Erase a guest's personal data.
#[utoipa::path(
    post,
    path = "/v1/guests/erasure",
    tag = "customers",
    description = "Erases the personal data of every guest checkout (an order placed without a \
        channel customer id) made with `email`, by destroying the guest's data key: guest \
        checkouts seal their personal fields under one key per email, found by a keyed digest \
        (HMAC under the master key) of the normalised email, so the email itself is stored \
        nowhere outside the sealed events. Everything else is as for a customer's erasure: the \
        log keeps every event, the sealed fields (name, email, phone, addresses, IP, device, \
        who signed for a parcel, and the free-text notes and reasons written about the orders) \
        read as erased from then on, money is untouched, a `CustomerErased` event with `guest` \
        true records it, and the views re-project the orders. The answer never repeats the \
        email. A repeat with the same `Idempotency-Key` answers the first response; a new key \
        scrubs again and destroys nothing more. Requires `Idempotency-Key`. Role `admin`.",
    params(
        ("Idempotency-Key" = String, Header, description = "Makes the request safe to retry")
    ),
    request_body(content = GuestErasureRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Erased", body = commands::GuestErasureResponse),
        (status = 403, description = "forbidden (not admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not-found (email): no guest checkout was placed with this email", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation-failed (email) or idempotency-key-reused", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "unavailable (the database); retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn erase_guest(State(state): State<AppState>, input: CommandInput) -> Response {
    let span = command_span("erase_guest", &input.ctx);
    let started = Instant::now();
    let result = commands::erase_guest(&state.services, &input.ctx, &input.body)
        .instrument(span.clone())
        .await;
    finish(&span, "erase_guest", started, result)
}
