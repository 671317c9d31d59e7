//! `GET /v1/orders/{id}/tracking`: one order's tracking view from Redis, for its customer or a
//! staff client. With `min_version` (or a `consistency_token` from a command response) the query
//! waits, polling Redis, until the view has reached that version or the bound runs out; then it
//! answers with what it has and `"stale": true`.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use waybill_projectors::views::tracking::keys as tracking_keys;
use waybill_projectors::RedisConnection;
use waybill_schemas::views::{ConsistencyToken, TrackingView};
use waybill_schemas::OrderId;
use waybill_write_side::command_api::problem::Path;

use crate::auth::{authorize, Denied, Reader};
use crate::http::AppState;
use crate::problem::Problem;
use crate::rate_limit::retry_after_secs;

/// Query string of the tracking endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrackingParams {
    /// The customer's tracking token from the order confirmation.
    pub token: Option<String>,
    /// Wait (bounded) until the view has reached this stream version.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 9007199254740991.0)]
    pub min_version: Option<String>,
    /// `<order id>.<version>` from a command response; same effect as `min_version`.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\\.[1-9][0-9]{0,15}$"
    )]
    pub consistency_token: Option<String>,
}

/// Whether the view answered is as new as the request asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Consistency {
    /// True when a version was requested and the view had not reached it within the bound.
    pub stale: bool,
    /// The version asked for through `min_version`/`consistency_token`, if any.
    pub requested_version: Option<i64>,
    /// The version of the view returned.
    pub view_version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrackingResponse {
    pub view: TrackingView,
    pub consistency: Consistency,
}

/// The client's address when the server was started with connect info: the TCP peer, or the
/// address a trusted proxy forwarded ([`crate::client_ip`]).
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(
            |info| {
                state
                    .config
                    .trusted_proxies
                    .client_ip(info.0.ip(), &parts.headers)
            },
        )))
    }
}

#[utoipa::path(
    get,
    path = "/v1/orders/{id}/tracking",
    tag = "tracking",
    params(("id" = String, Path, description = "Order id (UUID)"), TrackingParams),
    security(("tracking_token" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The tracking view; `consistency.stale` says whether it reached the requested version (header `X-Waybill-Stale: true` when stale)", body = TrackingResponse),
        (status = 422, description = "Bad order id, min_version or consistency_token", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token and no valid API key", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "API key role may not read tracking", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or the token does not belong to it (indistinguishable)", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis (the order views) cannot be read right now (`unavailable`), or the views lost their data and are being filled again from the event log, this order included (`view-catching-up`); retry after the `Retry-After` seconds", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "query.tracking", skip_all, fields(order_id = %raw_id))]
pub async fn get_tracking(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    params: Result<Query<TrackingParams>, QueryRejection>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let Query(params) = params.map_err(|_| Problem::BadParameter {
        field: "query",
        detail: "is not a valid query string".into(),
    })?;
    let order = OrderId::parse(&raw_id).map_err(|_| Problem::BadParameter {
        field: "id",
        detail: "must be an order id (a UUID)".into(),
    })?;
    let requested = requested_version(order, &params)?;

    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| {
            v.to_str().map_err(|_| Problem::Unauthorized {
                detail: "the Authorization header is not a valid Bearer API key",
            })
        })
        .transpose()?;
    let reader = authorize(
        &state.config.api_keys,
        &state.config.tracking,
        order,
        authorization,
        params.token.as_deref(),
    );
    // Customers (token holders, signed-in shoppers) and failed attempts are limited per client
    // address; staff and service clients are trusted.
    if reader.as_ref().map_or(true, Reader::is_public) {
        check_rate(&state, client_ip).await?;
    }
    let reader = reader.map_err(|denied| match denied {
        Denied::NoCredentials => Problem::Unauthorized {
            detail: "pass the order's tracking token as ?token= or a Bearer API key or JWT",
        },
        Denied::BadApiKey => Problem::Unauthorized {
            detail: "the Authorization header is not a valid Bearer API key or JWT",
        },
        Denied::RoleNotAllowed(role) => Problem::Forbidden {
            role: role.to_string(),
        },
        Denied::WrongToken => Problem::OrderNotFound,
    })?;
    let reader_kind = match &reader {
        Reader::TokenHolder => "token",
        Reader::SignedIn { .. } => "customer",
        Reader::Client { .. } => "client",
    };
    tracing::debug!(order_id = %order, reader = reader_kind, ?requested, "tracking query");

    let mut redis = state.redis.clone();
    let started = Instant::now();
    let outcome = read_tracking(&state, &mut redis, order, requested).await?;
    metrics::histogram!("waybill_query_tracking_wait_seconds")
        .record(started.elapsed().as_secs_f64());
    // Another customer's order is answered exactly like a missing one.
    let Some(mut view) = outcome.filter(|view| reader.may_see(view)) else {
        metrics::counter!("waybill_query_tracking_total", "outcome" => "not_found").increment(1);
        return Err(Problem::OrderNotFound);
    };
    view.access = Default::default();
    let stale = requested.is_some_and(|wanted| view.version < wanted);
    metrics::counter!("waybill_query_tracking_total",
        "outcome" => if stale { "stale" } else { "fresh" })
    .increment(1);
    let consistency = Consistency {
        stale,
        requested_version: requested,
        view_version: view.version,
    };
    let token = ConsistencyToken {
        order_id: order,
        version: view.version,
    };
    let mut response = Json(TrackingResponse { view, consistency }).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&token.to_string()) {
        headers.insert("x-consistency-token", value);
    }
    headers.insert(
        "x-waybill-stale",
        HeaderValue::from_static(if stale { "true" } else { "false" }),
    );
    Ok(response)
}

/// Counts one request of `client` against the shared per-client limit, or answers 429.
pub(crate) async fn check_rate(state: &AppState, client_ip: Option<IpAddr>) -> Result<(), Problem> {
    if let (Some(limiter), Some(ip)) = (&state.rate_limiter, client_ip) {
        limiter
            .take(&ip.to_string())
            .await
            .map_err(|wait| Problem::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            })?;
    }
    Ok(())
}

/// Largest `min_version` accepted: 2^53 - 1, an integer every JSON client holds exactly (and
/// far beyond any order's stream), so the documented maximum is exactly the server's.
pub(crate) const MAX_VERSION: i64 = 9_007_199_254_740_991;

/// `min_version`: an integer from 1 to [`MAX_VERSION`].
pub(crate) fn parse_min_version(raw: &str) -> Result<i64, Problem> {
    parse_version("min_version", raw)
}

/// A stream version named by the query parameter `field`: an integer from 1 to [`MAX_VERSION`].
pub(crate) fn parse_version(field: &'static str, raw: &str) -> Result<i64, Problem> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|v| (1..=MAX_VERSION).contains(v))
        .ok_or_else(|| Problem::BadParameter {
            field,
            detail: format!("must be an integer from 1 to {MAX_VERSION}"),
        })
}

/// The version the caller needs: the larger of `min_version` and the consistency token's.
pub(crate) fn requested_version(
    order: OrderId,
    params: &TrackingParams,
) -> Result<Option<i64>, Problem> {
    let from_min = params
        .min_version
        .as_deref()
        .map(parse_min_version)
        .transpose()?;
    let from_token = params
        .consistency_token
        .as_deref()
        .map(|raw| {
            let token =
                ConsistencyToken::parse(raw.trim()).ok_or_else(|| Problem::BadParameter {
                    field: "consistency_token",
                    detail: "must be `<order id>.<version>`".into(),
                })?;
            if token.order_id != order {
                return Err(Problem::BadParameter {
                    field: "consistency_token",
                    detail: "belongs to another order".into(),
                });
            }
            Ok(token.version)
        })
        .transpose()?;
    Ok(from_min.max(from_token))
}

/// [`read_until`] for a reader that needs the view: `None` only when the order is not found,
/// 503 `view-catching-up` while the views are filled again after a loss and the order exists.
pub(crate) async fn read_tracking(
    state: &AppState,
    redis: &mut RedisConnection,
    order: OrderId,
    requested: Option<i64>,
) -> Result<Option<TrackingView>, Problem> {
    match read_until(state, redis, order, requested).await? {
        Some(view) => Ok(Some(view)),
        None => {
            let key = state.config.tracking_key(order.as_uuid());
            crate::catching_up::missing_view(state, &key, order).await
        }
    }
}

/// Reads the view, and while a requested version is not reached, polls until the bound.
pub(crate) async fn read_until(
    state: &AppState,
    redis: &mut RedisConnection,
    order: OrderId,
    requested: Option<i64>,
) -> Result<Option<TrackingView>, Problem> {
    let key = state.config.tracking_key(order.as_uuid());
    let deadline = tokio::time::Instant::now() + state.config.max_wait;
    // Watching starts before the first read, so a write between the two is not missed.
    let mut watch = match (requested, &state.config.changes) {
        (Some(_), Some(feed)) => Some(feed.watch(&order.to_string())),
        _ => None,
    };
    loop {
        let view = read_view(redis, &key).await?;
        let satisfied = match (&view, requested) {
            (_, None) => true,
            (Some(view), Some(wanted)) => view.version >= wanted,
            (None, Some(_)) => false,
        };
        if satisfied || tokio::time::Instant::now() >= deadline {
            return Ok(view);
        }
        match &mut watch {
            // Woken by the order's announcement (or the deadline): no polling.
            Some(watch) => {
                let _ = tokio::time::timeout_at(deadline, watch.changed()).await;
            }
            None => {
                tokio::time::sleep_until(
                    (tokio::time::Instant::now() + state.config.poll_interval).min(deadline),
                )
                .await
            }
        }
    }
}

pub(crate) async fn read_view(
    redis: &mut RedisConnection,
    key: &str,
) -> Result<Option<TrackingView>, Problem> {
    let (version, view): (Option<i64>, Option<String>) = redis::cmd("HMGET")
        .arg(key)
        .arg(tracking_keys::VERSION_FIELD)
        .arg(tracking_keys::VIEW_FIELD)
        .query_async(redis)
        .await
        .map_err(|error| Problem::view_store(&error, "a tracking view"))?;
    tracking_keys::decode_view(version, view.as_deref()).map_err(|error| {
        tracing::error!(%error, key, "tracking view in Redis does not decode");
        Problem::Internal
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(min: Option<&str>, token: Option<&str>) -> TrackingParams {
        TrackingParams {
            token: None,
            min_version: min.map(str::to_owned),
            consistency_token: token.map(str::to_owned),
        }
    }

    #[test]
    fn requested_version_takes_the_larger_of_min_version_and_token() {
        let order = OrderId::new_v7();
        let token = format!("{order}.3");
        assert_eq!(
            requested_version(order, &params(Some("2"), Some(&token))).unwrap(),
            Some(3)
        );
        assert_eq!(
            requested_version(order, &params(Some("5"), None)).unwrap(),
            Some(5)
        );
        assert_eq!(requested_version(order, &params(None, None)).unwrap(), None);
    }

    #[test]
    fn bad_min_version_and_foreign_tokens_name_their_field() {
        let order = OrderId::new_v7();
        for bad in ["0", "-1", "x", ""] {
            let err = requested_version(order, &params(Some(bad), None)).unwrap_err();
            assert!(matches!(
                err,
                Problem::BadParameter {
                    field: "min_version",
                    ..
                }
            ));
        }
        let foreign = format!("{}.1", OrderId::new_v7());
        for bad in [foreign.as_str(), "nope"] {
            let err = requested_version(order, &params(None, Some(bad))).unwrap_err();
            assert!(matches!(
                err,
                Problem::BadParameter {
                    field: "consistency_token",
                    ..
                }
            ));
        }
    }
}
