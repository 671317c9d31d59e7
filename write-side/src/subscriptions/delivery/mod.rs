//! The delivery worker (`waybill serve webhooks`, and part of `serve all`): leases due
//! subscriptions, and for each runs rounds of [`plan`] → signed POSTs → one committed write of
//! the outcome. Several workers share the subscriptions through the leases; a killed worker's
//! lease runs out and its round is done again by another (at least once: receivers
//! de-duplicate on `Waybill-Event-Id`).

pub mod ledger;
pub mod plan;
pub mod sender;
mod worker;

pub use plan::RetryPolicy;
pub use worker::{run, WorkerConfig};
