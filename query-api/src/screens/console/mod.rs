//! The agent console (roles agent and admin):
//! - `GET /console` search with filters, facets and paging ([`search_page`]), over the same
//!   search index and query parsing as `GET /v1/search/orders`;
//! - `GET /console/orders/{id}` one order with everything an agent needs and its actions
//!   ([`order_page`]); `POST /console/orders/{id}/actions/{action}` confirms, then sends the
//!   action to the command API ([`actions`] decides what each form means).

pub mod actions;
pub mod notifications;
pub mod order_page;
pub mod search_page;

use axum::routing::{get, post};
use axum::Router;
use waybill_schemas::api_keys::Role;

use crate::http::AppState;

/// Who may use the console.
pub const ROLES: &[Role] = &[Role::Agent, Role::Admin];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(search_page::search))
        .route("/console/orders/{id}", get(order_page::order_page))
        .route(
            "/console/orders/{id}/actions/{action}",
            post(order_page::order_action),
        )
}
