//! The transactional outbox: rows written in the same transaction as the events they name, and
//! the relay that publishes them to JetStream and deletes them once acknowledged.
//!
//! This module owns the insert (part of every append's one statement); [`relay`] owns
//! claiming, publishing and deleting.

pub mod relay;

/// Rows not yet published (the relay's backlog).
pub async fn pending_count(pool: &sqlx::PgPool) -> Result<i64, sqlx::Error> {
    crate::event_store::retry::serializable(|| {
        sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(pool)
    })
    .await
}

/// The statement that writes one outbox row per event row the data-modifying CTE `stored`
/// returned (`RETURNING event_id, stream_id, stream_version`), each created at the parameter
/// `created_at` (e.g. `$15`): appended to the events' insert, so an append writes both with one
/// statement ([`crate::event_store::rows::insert_events_and_outbox`]).
pub(crate) fn insert_stored(created_at: &str) -> String {
    format!(
        "INSERT INTO outbox (event_id, stream_id, stream_version, created_at) \
         SELECT event_id, stream_id, stream_version, {created_at} FROM stored"
    )
}
