//! Event subscriptions for integrators (issue 17 part 1): admins register webhook endpoints with
//! event-type filters and a secret; the delivery worker sends every matching event, signed, at
//! least once and in order per order, with retries, backoff, dead letters and redelivery on
//! request; and a pull feed serves the same events to consumers that poll.
//!
//! - [`feed`]: the event feed (positions a reader can page after without ever missing an event)
//!   and [`feed::FeedEvent`], the one shape integrators see in the pull feed and in webhooks.
//! - [`request`]: registrations and changes parsed once, every refusal naming its field.
//! - [`store`]: the admin API's reads and idempotent writes.
//! - [`seal`]: secrets sealed at rest; [`signature`]: `Waybill-Signature` signing and checking.
//! - [`delivery`]: the worker (`serve webhooks`): leases, the pure round [`delivery::plan`], the
//!   signed POSTs and the committed outcome.

pub mod delivery;
pub mod feed;
pub mod request;
pub mod seal;
pub mod signature;
pub mod store;

use crate::domain::FieldError;

/// Why a subscription request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    #[error("{field} {id} not found")]
    NotFound { field: &'static str, id: String },
    #[error("idempotency key {0} was used for a different request")]
    KeyReused(String),
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}
