//! Reading the `RoutingDecided` events of a time window, page by page, for the routing
//! simulator: keyset paging on the partial index `events_routing_decided` (migration 0014).
//! Payloads come back as text, so the caller can decode them in parallel.

use chrono::{DateTime, Utc};

use super::{retry, EventStore, EventStoreError, ReadAllCursor};

/// The statement's event type; the partial index is declared for exactly this literal (a bound
/// parameter would hide the index from a generic plan).
const KIND: &str = "RoutingDecided";

/// One stored decision, payload not decoded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredDecision {
    pub stream_id: String,
    pub stream_version: i64,
    pub recorded_at: DateTime<Utc>,
    pub schema_version: i32,
    pub payload: String,
}

impl EventStore {
    /// Up to `limit` decisions recorded in `[from, to)`, in log order after `after`; the cursor
    /// of the next page (`None` at the end of the window).
    pub async fn read_routing_decisions(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&ReadAllCursor>,
        limit: i64,
    ) -> Result<(Vec<StoredDecision>, Option<ReadAllCursor>), EventStoreError> {
        let limit = limit.max(1);
        let sql = format!(
            "SELECT stream_id, stream_version, recorded_at, schema_version, payload::text AS payload \
             FROM events WHERE event_type = '{KIND}' AND recorded_at >= $1 AND recorded_at < $2 \
             AND (recorded_at, stream_id, stream_version) > ($3, $4, $5) \
             ORDER BY recorded_at, stream_id, stream_version LIMIT $6"
        );
        // The first page starts before the window's first possible key.
        let (at, stream, version) = match after {
            Some(c) => (c.recorded_at, c.stream_id.clone(), c.stream_version),
            None => (from - chrono::Duration::microseconds(1), String::new(), 0),
        };
        let rows: Vec<StoredDecision> = retry::serializable(|| {
            sqlx::query_as(&sql)
                .bind(from)
                .bind(to)
                .bind(at)
                .bind(stream.as_str())
                .bind(version)
                .bind(limit)
                .fetch_all(&self.pool)
        })
        .await?;
        let next = if (rows.len() as i64) < limit {
            None
        } else {
            rows.last().map(|r| ReadAllCursor {
                recorded_at: r.recorded_at,
                stream_id: r.stream_id.clone(),
                stream_version: r.stream_version,
            })
        };
        Ok((rows, next))
    }

    /// How many decisions were recorded in `[from, to)` (for progress and the API's bound).
    pub async fn count_routing_decisions(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<i64, EventStoreError> {
        let sql = format!(
            "SELECT count(*) FROM events WHERE event_type = '{KIND}' \
             AND recorded_at >= $1 AND recorded_at < $2"
        );
        let (n,): (i64,) = retry::serializable(|| {
            sqlx::query_as(&sql)
                .bind(from)
                .bind(to)
                .fetch_one(&self.pool)
        })
        .await?;
        Ok(n)
    }
}
