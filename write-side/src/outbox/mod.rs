//! The transactional outbox: rows written in the same transaction as the events they name, and
//! the relay that publishes them to JetStream and deletes them once acknowledged.
//!
//! This module owns the insert (used by the event store and the commit batcher); [`relay`] owns
//! claiming, publishing and deleting.

pub mod relay;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use waybill_schemas::EventEnvelope;

/// Rows not yet published (the relay's backlog).
pub async fn pending_count(pool: &sqlx::PgPool) -> Result<i64, sqlx::Error> {
    crate::event_store::retry::serializable(|| {
        sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(pool)
    })
    .await
}

/// Inserts one outbox row per event with one statement.
pub async fn insert(
    conn: &mut PgConnection,
    events: &[&EventEnvelope],
    created_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let event_ids: Vec<uuid::Uuid> = events.iter().map(|e| e.event_id).collect();
    let stream_ids: Vec<&str> = events.iter().map(|e| e.stream_id.as_str()).collect();
    let versions: Vec<i64> = events.iter().map(|e| e.stream_version).collect();
    sqlx::query(
        "INSERT INTO outbox (event_id, stream_id, stream_version, created_at) \
         SELECT id, s, v, $4 FROM UNNEST($1::uuid[], $2::text[], $3::bigint[]) AS x(id, s, v)",
    )
    .bind(event_ids)
    .bind(stream_ids)
    .bind(versions)
    .bind(created_at)
    .execute(conn)
    .await?;
    Ok(())
}
