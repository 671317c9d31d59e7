//! Waybill's read API. In the ARCHITECTURE.md diagram this is the `query-api` box: it serves the
//! read models the projectors keep, and reads the event store only for the agents' full order
//! timeline. Customer tracking (`GET /v1/orders/{id}/tracking`) comes from the Redis hash the
//! tracking projector writes, with read-your-writes through consistency tokens: a query that
//! names the version it needs waits, bounded, until the view has caught up, or answers with an
//! explicit stale marker. A signed-in customer lists their orders (`GET /v1/me/orders`); the
//! server-rendered tracking page has live updates and an order-number lookup form (`/track`,
//! [`page`]). Agents search orders (`GET /v1/search/orders`) in the index the search projector
//! keeps and read one order's detail (`GET /v1/agent/orders/{id}`). The finance endpoints
//! (`/v1/finance/...`, role finance) read the ClickHouse warehouse. Staff screens (the agent
//! console, the finance page) are server-rendered in [`screens`], signed in with a session cookie.
//!
//! The crate never installs a tracing subscriber or a metrics recorder; the `waybill` binary does,
//! and serves `GET /metrics` on its own listener (never this public port). `/live` and `/ready`
//! ([`waybill_write_side::readiness`]) answer here with the dependencies the binary registered.

pub mod auth;
mod catching_up;
pub mod client_ip;
mod config;
pub mod finance;
pub mod history;
mod http;
pub mod me;
pub mod openapi;
pub mod page;
pub mod problem;
pub mod rate_limit;
pub mod screens;
pub mod search;
pub mod store_credit;
pub mod tracking;

pub use auth::{ApiKeyError, ApiKeys, Principal, Role};
pub use config::{MetricsRender, QueryApiConfig};
pub use http::{router, serve};
pub use problem::Problem;
pub use tracking::{Consistency, TrackingResponse};
