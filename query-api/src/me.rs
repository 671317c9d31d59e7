//! `GET /v1/me/orders`: a signed-in customer's orders (Bearer JWT, role `customer`), newest
//! first, from the index the tracking projector keeps per customer-id digest. Cursor pagination:
//! `next_cursor` is `<placed-at ms>.<order id>` of the last item; ties in the same millisecond
//! are ordered by id, so no order is skipped or repeated across pages.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use waybill_schemas::access::customer_digest;
use waybill_schemas::api_keys::Role;
use waybill_schemas::views::{TrackingStatus, TrackingView};
use waybill_schemas::OrderId;

use crate::http::AppState;
use crate::problem::Problem;
use crate::tracking::{check_rate, ClientIp};
use waybill_projectors::views::tracking::keys as tracking_keys;

const MAX_PAGE: usize = 100;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MyOrdersParams {
    /// Page size, 1–100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One of the customer's orders.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MyOrder {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: String,
    pub order_number: String,
    pub status: TrackingStatus,
    pub grand_total_minor: i64,
    pub currency: String,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The view version shown.
    pub version: i64,
    /// The order's tracking page (signed link).
    pub tracking_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MyOrders {
    pub items: Vec<MyOrder>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/me/orders", tag = "customers",
    params(MyOrdersParams),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The caller's orders, newest first", body = MyOrders),
        (status = 422, description = "Bad limit or cursor", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid Bearer JWT", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a customer (staff roles have no orders of their own)", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis (the order views) cannot be read right now (`unavailable`), or they lost their data and are being filled again from the event log (`view-catching-up`); retry after the `Retry-After` seconds", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "query.my_orders", skip_all)]
pub async fn my_orders(
    State(state): State<AppState>,
    params: Result<Query<MyOrdersParams>, QueryRejection>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    check_rate(&state, client_ip).await?;
    let principal = signed_in_customer(&state, &headers)?;
    let Query(params) = params.map_err(|_| Problem::BadParameter {
        field: "query",
        detail: "is not a valid query string".into(),
    })?;
    let limit = match params.limit.as_deref() {
        None => 20,
        Some(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| Problem::BadParameter {
                field: "limit",
                detail: format!("must be between 1 and {MAX_PAGE}"),
            })?,
    };
    let cursor = params
        .cursor
        .as_deref()
        .map(|raw| {
            parse_cursor(raw).ok_or_else(|| Problem::BadParameter {
                field: "cursor",
                detail: "must be a next_cursor of an earlier page".into(),
            })
        })
        .transpose()?;

    crate::catching_up::lists_complete(&state).await?;
    let key = state
        .config
        .customer_orders_key(&customer_digest(&principal.client_id));
    let mut redis = state.redis.clone();
    let max = cursor
        .as_ref()
        .map_or("+inf".to_owned(), |(score, _)| score.to_string());
    // Enough to skip the cursor's same-millisecond neighbours and still fill the page.
    let window = limit + 1 + 64;
    let members: Vec<(String, i64)> = redis::cmd("ZREVRANGEBYSCORE")
        .arg(&key)
        .arg(&max)
        .arg("-inf")
        .arg("WITHSCORES")
        .arg("LIMIT")
        .arg(0)
        .arg(window)
        .query_async(&mut redis)
        .await
        .map_err(|error| Problem::view_store(&error, "a customer's order index"))?;
    let mut page: Vec<(String, i64)> = members
        .into_iter()
        .filter(|(id, score)| match &cursor {
            // Same millisecond: members come in descending id order; keep those after the cursor.
            Some((at, last)) if score == at => id.as_str() < last.as_str(),
            _ => true,
        })
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);

    let mut pipe = redis::pipe();
    for (id, _) in &page {
        pipe.hget(state.config.tracking_key(id), tracking_keys::VIEW_FIELD);
    }
    let views: Vec<Option<String>> = if page.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(&mut redis)
            .await
            .map_err(|error| Problem::view_store(&error, "tracking views"))?
    };
    let items: Vec<MyOrder> = views
        .into_iter()
        .flatten()
        .filter_map(|raw| serde_json::from_str::<TrackingView>(&raw).ok())
        .filter_map(|view| {
            let order = OrderId::parse(&view.order_id).ok()?;
            Some(MyOrder {
                tracking_url: format!(
                    "/track/{order}?token={}",
                    state.config.tracking.token(order, chrono::Utc::now())
                ),
                order_id: view.order_id,
                order_number: view.channel_order_ref,
                status: view.status,
                grand_total_minor: view.totals.grand_total_minor,
                currency: view.currency,
                placed_at: view.placed_at,
                updated_at: view.updated_at,
                version: view.version,
            })
        })
        .collect();
    let next_cursor = more
        .then(|| page.last().map(|(id, score)| format!("{score}.{id}")))
        .flatten();
    let mut response = Json(MyOrders { items, next_cursor }).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The signed-in customer (Bearer JWT with role `customer`): 401 without valid credentials,
/// 403 for staff roles, which have no orders or credit of their own.
pub(crate) fn signed_in_customer(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<waybill_schemas::api_keys::Principal, Problem> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = state
        .config
        .api_keys
        .authenticate_header(authorization)
        .ok_or(Problem::Unauthorized {
            detail: "send a Bearer JWT with role customer",
        })?;
    if principal.role != Role::Customer {
        return Err(Problem::Forbidden {
            role: principal.role.to_string(),
        });
    }
    Ok(principal)
}

fn parse_cursor(raw: &str) -> Option<(i64, String)> {
    let (score, id) = raw.trim().split_once('.')?;
    let order = OrderId::parse(id).ok()?;
    Some((score.parse().ok()?, order.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let order = OrderId::new_v7();
        let (score, id) = parse_cursor(&format!("1700000000000.{order}")).unwrap();
        assert_eq!((score, id), (1_700_000_000_000, order.to_string()));
        assert!(parse_cursor("nope").is_none());
        assert!(parse_cursor("12.not-a-uuid").is_none());
        assert!(parse_cursor(&format!("x.{order}")).is_none());
    }
}
