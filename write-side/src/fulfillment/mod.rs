//! The fulfillment process manager (issue 4), the shell around `domain::fulfillment`: its work
//! list (`flows`, durable deadlines), the worker (`worker`, storing by `rounds`), appending with
//! webhook receipts (`append`), node and carrier webhooks (`webhooks`, grouped into shared
//! transactions by `webhook_batcher`), the HTTP adapter for WMS and carrier
//! (`logistics`) and our simulated WMS + carrier (`sandbox`, see `write-side/FULFILLMENT.md`).
//! Started by `OrderConfirmed` (the checkout flow's append creates the row in the same
//! transaction); independent of the checkout worker otherwise.

pub mod append;
pub mod flows;
pub mod logistics;
pub mod rounds;
pub mod sandbox;
pub mod webhook_batcher;
pub mod webhooks;
mod withdraw;
pub mod worker;

#[cfg(test)]
mod tests;

pub use worker::{run_pass, run_worker, CommitMode, FulfillmentServices};

/// Why a fulfillment step could not be taken (it is retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum FulfillmentError {
    #[error(transparent)]
    Store(#[from] crate::event_store::EventStoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    Logistics(#[from] logistics::LogisticsError),
    #[error(transparent)]
    Refused(#[from] crate::domain::fulfillment::FulfillmentError),
    #[error(transparent)]
    ReturnRefused(#[from] crate::domain::returns::ReturnError),
    #[error("inconsistent fulfillment state: {0}")]
    Inconsistent(String),
}
