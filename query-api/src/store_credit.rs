//! `GET /v1/me/store-credit`: a signed-in customer's store credit (Bearer JWT, role
//! `customer`): the balance per currency and every credit issued, newest first, from the index
//! the tracking projector keeps per customer-id digest. Redeeming credit at checkout is not
//! built yet; this is the customer's statement.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use waybill_projectors::views::tracking::keys::store_credit_key;
use waybill_schemas::access::customer_digest;
use waybill_schemas::views::StoreCreditEntry;

use crate::http::AppState;
use crate::me::signed_in_customer;
use crate::problem::Problem;
use crate::tracking::{check_rate, ClientIp};

/// The balance in one currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StoreCreditBalance {
    pub currency: String,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MyStoreCredit {
    /// One balance per currency credited, by currency code.
    pub balances: Vec<StoreCreditBalance>,
    /// Every credit, newest first.
    pub entries: Vec<StoreCreditEntry>,
}

#[utoipa::path(get, path = "/v1/me/store-credit", tag = "customers",
    description = "The caller's store credit: given back on returns resolved as store credit \
        and by agents as goodwill. Redeeming it at checkout is not available yet.",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Balances and credits, newest first", body = MyStoreCredit),
        (status = 401, description = "No valid Bearer JWT", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a customer (staff roles have no credit of their own)", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis (the order views) cannot be read right now (`unavailable`), or they lost their data and are being filled again from the event log (`view-catching-up`); retry after the `Retry-After` seconds", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "query.my_store_credit", skip_all)]
pub async fn my_store_credit(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    check_rate(&state, client_ip).await?;
    let principal = signed_in_customer(&state, &headers)?;
    crate::catching_up::lists_complete(&state).await?;
    let key = store_credit_key(
        &state.config.redis_prefix,
        &customer_digest(&principal.client_id),
    );
    let mut redis = state.redis.clone();
    let raw: Vec<String> = redis::cmd("HVALS")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .map_err(|error| Problem::view_store(&error, "a customer's store credit"))?;
    let mut entries: Vec<StoreCreditEntry> = raw
        .iter()
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect();
    entries.sort_by(|a, b| (b.issued_at, &b.credit_id).cmp(&(a.issued_at, &a.credit_id)));
    let mut response = Json(statement(entries)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Balances per currency from the entries.
fn statement(entries: Vec<StoreCreditEntry>) -> MyStoreCredit {
    let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
    for entry in &entries {
        *sums.entry(entry.currency.as_str()).or_default() += entry.amount_minor;
    }
    let balances = sums
        .into_iter()
        .map(|(currency, amount_minor)| StoreCreditBalance {
            currency: currency.to_owned(),
            amount_minor,
        })
        .collect();
    MyStoreCredit { balances, entries }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn entry(id: &str, minor: i64, currency: &str) -> StoreCreditEntry {
        StoreCreditEntry {
            credit_id: id.into(),
            order_id: "o".into(),
            order_number: "W-1".into(),
            amount_minor: minor,
            currency: currency.into(),
            return_id: None,
            issued_at: Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap(),
        }
    }

    #[test]
    fn balances_add_up_per_currency() {
        let s = statement(vec![
            entry("a", 500, "USD"),
            entry("b", 250, "USD"),
            entry("c", 100, "EUR"),
        ]);
        let balances: Vec<(String, i64)> = s
            .balances
            .into_iter()
            .map(|b| (b.currency, b.amount_minor))
            .collect();
        assert_eq!(balances, vec![("EUR".into(), 100), ("USD".into(), 750)]);
    }
}
