//! Idempotency records: one row per (client, `Idempotency-Key`) holding the request's hash and
//! the exact response that was sent, written in the same transaction as the command's events.
//! A replay answers with the stored status, headers and body byte for byte; the same key with a
//! different request is refused.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use waybill_schemas::{Channel, OrderId};

use crate::event_store::retry;

/// A response as sent, so it can be sent again identically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// Header names (lower case) and values, in the order they were sent.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What is stored under one idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The client the key belongs to (from its API key).
    pub scope: String,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub response: StoredResponse,
}

/// sha256 over method, path and body, separated so no two requests share an encoding.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.update(body);
    hasher.finalize().to_vec()
}

type RecordRow = (Vec<u8>, i16, serde_json::Value, Vec<u8>);

fn record_from(scope: &str, key: &str, row: RecordRow) -> IdempotencyRecord {
    let (request_hash, status, headers, body) = row;
    let headers = serde_json::from_value::<Vec<(String, String)>>(headers).unwrap_or_default();
    IdempotencyRecord {
        scope: scope.to_owned(),
        key: key.to_owned(),
        request_hash,
        response: StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            headers,
            body: Bytes::from(body),
        },
    }
}

/// The record stored under `(scope, key)`, if any.
pub async fn find(
    pool: &PgPool,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>, sqlx::Error> {
    let row: Option<RecordRow> = retry::serializable(|| {
        sqlx::query_as(
            "SELECT request_hash, response_status, response_headers, response_body \
             FROM idempotency_records WHERE scope = $1 AND idempotency_key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(pool)
    })
    .await?;
    Ok(row.map(|row| record_from(scope, key, row)))
}

/// The pre-check of a placement in one round trip: the record under `(scope, key)` and the
/// order already captured for `(channel, channel_order_ref)`.
pub async fn find_with_channel_ref(
    pool: &PgPool,
    scope: &str,
    key: &str,
    channel: Channel,
    channel_order_ref: &str,
) -> Result<(Option<IdempotencyRecord>, Option<OrderId>), sqlx::Error> {
    type Row = (
        Option<Vec<u8>>,
        Option<i16>,
        Option<serde_json::Value>,
        Option<Vec<u8>>,
        Option<uuid::Uuid>,
    );
    let row: Row = retry::serializable(|| {
        sqlx::query_as(
            "SELECT i.request_hash, i.response_status, i.response_headers, i.response_body, \
                    c.order_id \
             FROM (SELECT 1) AS one \
             LEFT JOIN idempotency_records i ON i.scope = $1 AND i.idempotency_key = $2 \
             LEFT JOIN channel_orders c ON c.channel = $3 AND c.channel_order_ref = $4",
        )
        .bind(scope)
        .bind(key)
        .bind(channel.as_str())
        .bind(channel_order_ref)
        .fetch_one(pool)
    })
    .await?;
    let record = match row {
        (Some(hash), Some(status), Some(headers), Some(body), _) => {
            Some(record_from(scope, key, (hash, status, headers, body)))
        }
        _ => None,
    };
    Ok((record, row.4.map(OrderId::from_uuid)))
}

/// Inserts `records` with one statement; a key already stored fails it with a unique
/// violation on `idempotency_records_pkey`.
pub async fn insert(
    conn: &mut PgConnection,
    records: &[&IdempotencyRecord],
    created_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let scopes: Vec<&str> = records.iter().map(|r| r.scope.as_str()).collect();
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    let hashes: Vec<&[u8]> = records.iter().map(|r| r.request_hash.as_slice()).collect();
    let statuses: Vec<i16> = records
        .iter()
        .map(|r| i16::try_from(r.response.status).unwrap_or(500))
        .collect();
    let headers: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(&r.response.headers).unwrap_or_else(|_| "[]".into()))
        .collect();
    let bodies: Vec<&[u8]> = records.iter().map(|r| r.response.body.as_ref()).collect();
    sqlx::query(
        "INSERT INTO idempotency_records (scope, idempotency_key, request_hash, response_status, \
                                          response_headers, response_body, created_at) \
         SELECT s, k, h, st, hd::jsonb, b, $7 FROM UNNEST($1::text[], $2::text[], $3::bytea[], \
                $4::smallint[], $5::text[], $6::bytea[]) AS x(s, k, h, st, hd, b)",
    )
    .bind(scopes)
    .bind(keys)
    .bind(hashes)
    .bind(statuses)
    .bind(headers)
    .bind(bodies)
    .bind(created_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_separates_method_path_and_body() {
        let a = request_hash("POST", "/v1/orders", b"{}");
        assert_eq!(a, request_hash("POST", "/v1/orders", b"{}"));
        assert_ne!(a, request_hash("POST", "/v1/orders", b"{ }"));
        assert_ne!(a, request_hash("POST", "/v1/order", b"s{}"));
        assert_ne!(a, request_hash("PUT", "/v1/orders", b"{}"));
    }
}
