//! Idempotency records: one row per (client, `Idempotency-Key`) holding the request's hash and
//! the exact response that was sent, written in the same transaction as the command's events.
//! A replay answers with the stored status, headers and body byte for byte; the same key with a
//! different request is refused.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

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

/// Inserts `records` with one statement, skipping every key already stored, and returns the
/// `(scope, key)` pairs it inserted. `records` must not repeat a key.
pub async fn insert_new(
    conn: &mut PgConnection,
    records: &[&IdempotencyRecord],
    created_at: DateTime<Utc>,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    if records.is_empty() {
        return Ok(Vec::new());
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
    sqlx::query_as(
        "INSERT INTO idempotency_records (scope, idempotency_key, request_hash, response_status, \
                                          response_headers, response_body, created_at) \
         SELECT s, k, h, st, hd::jsonb, b, $7 FROM UNNEST($1::text[], $2::text[], $3::bytea[], \
                $4::smallint[], $5::text[], $6::bytea[]) AS x(s, k, h, st, hd, b) \
         ON CONFLICT DO NOTHING \
         RETURNING scope, idempotency_key",
    )
    .bind(scopes)
    .bind(keys)
    .bind(hashes)
    .bind(statuses)
    .bind(headers)
    .bind(bodies)
    .bind(created_at)
    .fetch_all(conn)
    .await
}

/// Replaces each of `texts` by `replacement` in the stored responses that name one of
/// `mentions` (an erasure: the customer's personal values in the responses about their orders),
/// in the caller's transaction. Longest text first, so a name inside an address line goes with
/// the line.
pub async fn scrub_responses(
    conn: &mut PgConnection,
    mentions: &[String],
    texts: &[String],
    replacement: &str,
) -> Result<(), sqlx::Error> {
    let mut texts: Vec<&String> = texts.iter().collect();
    texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for text in texts {
        sqlx::query(
            "UPDATE idempotency_records r \
             SET response_body = \
                 convert_to(replace(convert_from(r.response_body, 'UTF8'), $2, $3), 'UTF8') \
             WHERE position(convert_to($2, 'UTF8') IN r.response_body) > 0 \
               AND EXISTS (SELECT 1 FROM UNNEST($1::text[]) AS o \
                           WHERE position(convert_to(o, 'UTF8') IN r.response_body) > 0)",
        )
        .bind(mentions)
        .bind(text)
        .bind(replacement)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes the records of `keys` (`(scope, key)` pairs) inserted earlier in the same transaction
/// by commands that turned out not to be carried out.
pub async fn delete(conn: &mut PgConnection, keys: &[(&str, &str)]) -> Result<(), sqlx::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let scopes: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let keys: Vec<&str> = keys.iter().map(|k| k.1).collect();
    sqlx::query(
        "DELETE FROM idempotency_records r USING UNNEST($1::text[], $2::text[]) AS x(s, k) \
         WHERE r.scope = x.s AND r.idempotency_key = x.k",
    )
    .bind(scopes)
    .bind(keys)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes up to `batch` records created before `before`; returns how many went. Small batches
/// keep each serializable transaction short next to live traffic.
pub async fn delete_expired(
    pool: &PgPool,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    crate::event_store::retry::serializable(|| async {
        let done = sqlx::query(
            "DELETE FROM idempotency_records WHERE (scope, idempotency_key) IN \
             (SELECT scope, idempotency_key FROM idempotency_records \
              WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    })
    .await
}

/// The lease whose turns decide which command API sweeps.
pub const SWEEP_LEASE: &str = "idempotency-sweep";

/// Keeps idempotency records for `retention`, then deletes them, checking every `every` until
/// `shutdown`. A retry later than the retention is treated as a new request. With several
/// command APIs, one sweeps per period (a turn of [`SWEEP_LEASE`]); the others skip it.
pub async fn sweep_expired(
    pool: PgPool,
    retention: std::time::Duration,
    every: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(1));
    loop {
        let mut removed = 0_u64;
        // Every command API runs this loop; one of them sweeps per period.
        let turn = crate::migrations::lease::claim_turn(&pool, SWEEP_LEASE, every.mul_f64(0.9));
        let mine = match turn.await {
            Ok(mine) => mine,
            Err(err) => {
                tracing::warn!(error = %err, "idempotency sweep: claiming the turn failed; sweeping anyway");
                true
            }
        };
        if mine {
            loop {
                match delete_expired(&pool, Utc::now() - retention, 1_000).await {
                    Ok(0) => break,
                    Ok(n) => removed += n,
                    Err(err) => {
                        tracing::warn!(error = %err, "idempotency sweep failed; retrying later");
                        break;
                    }
                }
            }
        }
        if removed > 0 {
            metrics::counter!("waybill_idempotency_records_expired_total").increment(removed);
            tracing::info!(removed, "expired idempotency records deleted");
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
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
