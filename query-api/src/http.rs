//! The query API's axum router and server: routes, shared state, and the request-level layers
//! (timeout, tracing). Handlers live with what they serve (`tracking`, `me`, `page`, `openapi`).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::trace::TraceLayer;
use waybill_projectors::RedisConnection;

use crate::config::QueryApiConfig;
use crate::problem::Problem;
use crate::rate_limit::Limiter;
use crate::{finance, history, me, openapi, page, screens, search, store_credit, tracking};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub(crate) config: QueryApiConfig,
    pub(crate) redis: RedisConnection,
    pub(crate) rate_limiter: Option<Limiter>,
    pub(crate) lookup_limiter: Option<Limiter>,
    pub(crate) lookup_order_limiter: Option<Limiter>,
}

/// The query API's routes. Serve it with connect info (as [`serve`] does) for the per-IP limit.
pub fn router(config: QueryApiConfig, redis: RedisConnection) -> Router {
    let request_timeout = config.request_timeout;
    let api_keys = config.api_keys.clone();
    let state = AppState {
        rate_limiter: config
            .rate_limit
            .map(|quota| Limiter::new("ip", quota, redis.clone(), &config.redis_prefix)),
        lookup_limiter: config
            .lookup_rate_limit
            .map(|quota| Limiter::new("lookup-ip", quota, redis.clone(), &config.redis_prefix)),
        lookup_order_limiter: config
            .lookup_failures_per_order
            .map(|quota| Limiter::new("lookup-order", quota, redis.clone(), &config.redis_prefix)),
        config,
        redis,
    };
    Router::new()
        .route("/v1/orders/{id}/tracking", get(tracking::get_tracking))
        .route("/v1/me/orders", get(me::my_orders))
        .route("/v1/me/store-credit", get(store_credit::my_store_credit))
        .route("/track", get(page::lookup_form).post(page::lookup))
        .route("/track/{id}", get(page::tracking_page))
        .route(page::render::STYLESHEET_PATH, get(page::stylesheet))
        .route(page::render::SCRIPT_PATH, get(page::script))
        .route("/track/{id}/events", get(page::tracking_events))
        .route("/v1/search/orders", get(search::search_orders))
        .route("/v1/agent/orders/{id}", get(search::agent_order))
        .route("/v1/agent/orders/{id}/history", get(history::order_history))
        .route("/v1/agent/orders/{id}/diff", get(history::order_diff))
        .route("/v1/finance/summary", get(finance::get_summary))
        .route("/v1/finance/payouts", get(finance::get_payouts))
        .route(
            "/v1/finance/payouts/{payout_id}/lines",
            get(finance::get_payout_lines),
        )
        .route(
            "/v1/finance/reconciliation",
            get(finance::get_reconciliation),
        )
        .route("/v1/finance/metrics", get(finance::get_metrics))
        .merge(screens::routes())
        .route("/openapi.json", get(openapi::serve_document))
        .route("/health", get(health))
        .route("/live", get(waybill_write_side::readiness::live))
        .route("/ready", get(ready))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            api_keys,
            waybill_write_side::jwks::fresh_keys,
        ))
        .layer(middleware::from_fn_with_state(request_timeout, time_limit))
        .layer(middleware::from_fn(
            waybill_write_side::command_api::problem::safety_net,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(waybill_write_side::trace_context::request_span),
        )
        .layer(middleware::map_response(nosniff))
}

/// `X-Content-Type-Options: nosniff` on every response: browsers take each body for the type
/// it is declared as, never for script or HTML sniffed out of a JSON or text body.
pub async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Answers 503 problem+json when a request runs past `limit`.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::Timeout.into_response(),
    }
}

/// Serves the query API on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: QueryApiConfig,
    redis: RedisConnection,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(config, redis);
    tracing::info!(addr = %listener.local_addr()?, "query API listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Redis answers PING", body = Object),
              (status = 503, description = "Redis does not answer", body = Object)))]
pub(crate) async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Response {
    let mut redis = state.redis.clone();
    let ping: Result<String, _> = redis::cmd("PING").query_async(&mut redis).await;
    match ping {
        Ok(_) => Json(serde_json::json!({"status": "ok", "redis": "ok"})).into_response(),
        Err(error) => {
            tracing::warn!(%error, "health check: Redis does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "degraded", "redis": "unreachable"})),
            )
                .into_response()
        }
    }
}

/// Whether every dependency of this process answers (see
/// [`waybill_write_side::readiness`]).
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Every dependency answers", body = waybill_write_side::readiness::ReadyBody),
        (status = 503, description = "A dependency does not answer: `down` names it", body = waybill_write_side::readiness::NotReadyBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before asking again"))),
    ))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    state.config.readiness.answer().await
}

async fn not_found() -> Problem {
    Problem::NotFound
}
