//! Waybill's read API. In the ARCHITECTURE.md diagram this is the `query-api` box: it serves the
//! read models the projectors keep, never the event store. Today that is customer tracking
//! (`GET /v1/orders/{id}/tracking`) from the Redis hash the tracking projector writes, with
//! read-your-writes through consistency tokens: a query that names the version it needs waits,
//! bounded, until the view has caught up, or answers with an explicit stale marker. The finance
//! endpoints (`/v1/finance/...`, role finance) read the ClickHouse warehouse.
//!
//! The crate never installs a tracing subscriber or a metrics recorder; the `waybill` binary does,
//! and hands in a [`MetricsRender`] so this service can serve `GET /metrics`.

pub mod auth;
mod config;
pub mod finance;
mod http;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
pub mod tracking;

pub use auth::{ApiKeyError, ApiKeys, Principal, Role};
pub use config::{MetricsRender, QueryApiConfig};
pub use http::{router, serve};
pub use problem::Problem;
pub use tracking::{Consistency, TrackingResponse};
