//! The checkout process manager: drives each order from placement to confirmation and capture,
//! with compensations, over durable deadlines in Postgres.
//!
//! - [`flows`]: the `checkout_flows` table, the work list and deadlines, claimed with SKIP LOCKED;
//! - [`process`]: one pass over a batch of due orders, asking the pure
//!   [`crate::domain::checkout_flow::next_step`] what each needs and running it;
//! - [`append`]: storing the pass's events, re-deciding on a concurrent change;
//! - [`webhooks`]: applying the payment gateway's signed webhooks once each;
//! - [`worker`]: the loop that runs passes until shutdown.

pub mod append;
pub mod flows;
pub mod process;
pub mod webhooks;
pub mod worker;

pub use process::{run_pass, CheckoutServices};
pub use worker::{run_worker, WorkerConfig};

use crate::event_store::EventStoreError;

/// Why a pass of the process manager failed as a whole (single orders' failures are retried
/// through their flow rows instead).
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("checkout database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    EventStore(#[from] EventStoreError),
}
