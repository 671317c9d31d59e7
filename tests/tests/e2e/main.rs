//! End-to-end tests: each starts the real `waybill` binary against the real Postgres, NATS
//! JetStream and Redis, in an environment of its own (see the `waybill_e2e` harness), and checks
//! what a channel, a customer or an operator would see over HTTP.

mod access_control;
mod bad_input;
mod bench_external;
mod cancel;
mod cancellation;
mod chaos;
mod checkout;
mod checkout_resilience;
mod clickhouse_cluster;
mod compose;
mod console;
mod contract;
mod database_sessions;
mod desk;
mod edits;
mod erasure;
mod exchanges;
mod finance;
mod finance_page;
mod fulfillment;
mod fully_cancelled;
mod idempotency;
mod identity_provider;
mod json_bodies;
mod json_logs;
mod ledger;
mod live_pages;
mod migrations;
mod nats_cluster;
mod nats_secured;
mod notifications;
mod postgres_tls;
mod problems;
mod projector_sharing;
mod projector_views;
mod query_outage;
mod rate_limits;
mod rebuild_live;
mod redis_cluster;
mod relay_crash;
mod returns;
mod routing_simulation;
mod sandbox_state;
mod search;
mod self_heal;
mod service_endpoints;
mod settlement;
mod subscriptions;
mod time_travel;
mod tracing_chain;
mod tracking;
mod tracking_page;
mod webhook_clock;

use serde_json::Value;
use waybill_e2e::{eventually, Api, HttpResponse, DEFAULT_DEADLINE};

/// A 201 from `POST /v1/orders`, read into its parts.
pub struct Placed {
    pub order_id: String,
    pub tracking_token: String,
    pub consistency_token: String,
    pub response: HttpResponse,
}

/// Places `body` and insists on 201.
pub async fn place(api: &Api, key: &str, body: &Value) -> Placed {
    let response = api.place_order(key, body).await;
    assert_eq!(response.status, 201, "place order: {}", response.describe());
    let json = response.json();
    let text = |field: &str| {
        json[field]
            .as_str()
            .unwrap_or_else(|| panic!("201 body has no {field}: {json}"))
            .to_owned()
    };
    Placed {
        order_id: text("order_id"),
        tracking_token: text("tracking_token"),
        consistency_token: text("consistency_token"),
        response,
    }
}

/// Polls the tracking endpoint with `min_version` until it answers 200 and not stale; returns
/// the body (`{"view": .., "consistency": ..}`).
pub async fn tracking_at(api: &Api, order_id: &str, token: &str, min_version: i64) -> Value {
    let min_version = min_version.to_string();
    eventually(
        &format!("tracking of {order_id} at version {min_version}"),
        DEFAULT_DEADLINE,
        || async {
            let response = api
                .tracking(
                    order_id,
                    &[("token", token), ("min_version", &min_version)],
                    None,
                )
                .await;
            if response.status != 200 {
                return Err(response.describe());
            }
            let body = response.json();
            if body["consistency"]["stale"] == Value::Bool(false) {
                Ok(body)
            } else {
                Err(response.describe())
            }
        },
    )
    .await
}

/// Waits until the tracking view of `order_id` exists (read as the service); returns it.
pub async fn tracking_at_as_service(api: &Api, order_id: &str) -> Value {
    eventually(
        &format!("tracking view of {order_id}"),
        DEFAULT_DEADLINE,
        || async {
            let response = api
                .tracking(order_id, &[], Some(waybill_e2e::SERVICE_KEY))
                .await;
            if response.status == 200 {
                Ok(response.json()["view"].clone())
            } else {
                Err(response.describe())
            }
        },
    )
    .await
}
