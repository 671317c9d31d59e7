//! The event feed: every event of the log with a position that a reader can page after and
//! never step over an event committed later (migration 0010 says why the positions are safe).
//! This module owns `event_feed`, `event_feed_head` and `event_feed_streams`: the feed view
//! (`projectors/src/views/feed`) appends through [`append`], the pull feed and the delivery
//! workers read through [`read_after`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::{EventEnvelope, OrderId};

use crate::event_store::retry;
use crate::event_store::rows::{qualified_columns, EventRow};
use crate::event_store::EventStoreError;

/// One event the feed view adds: which event, in its stream's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
}

/// One stream's new feed entries, written only if the feed still holds `expected_version` of
/// it (a compare-and-set, so a redelivered batch appends nothing twice).
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream_id: String,
    pub expected_version: i64,
    pub version: i64,
    pub entries: Vec<FeedEntry>,
}

/// The versions of `stream_ids` the feed holds (0: none), in the same order.
pub async fn versions(pool: &PgPool, stream_ids: &[String]) -> Result<Vec<i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = retry::serializable(|| {
        sqlx::query_as(
            "SELECT stream_id, version FROM event_feed_streams WHERE stream_id = ANY($1)",
        )
        .bind(stream_ids)
        .fetch_all(pool)
    })
    .await?;
    let found: std::collections::HashMap<String, i64> = rows.into_iter().collect();
    Ok(stream_ids
        .iter()
        .map(|id| found.get(id).copied().unwrap_or(0))
        .collect())
}

/// Appends the entries of every write whose stream is still at its expected version, giving
/// them the next positions in the order given (streams in `writes` order, each stream's entries
/// in version order), in one transaction. Returns per write whether it was appended.
pub async fn append(pool: &PgPool, writes: &[StreamAppend]) -> Result<Vec<bool>, sqlx::Error> {
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    retry::serializable_idempotent(|| async {
        let mut tx = retry::begin(pool).await?;
        let ids: Vec<&str> = writes.iter().map(|w| w.stream_id.as_str()).collect();
        let stored: Vec<(String, i64)> = sqlx::query_as(
            "SELECT stream_id, version FROM event_feed_streams WHERE stream_id = ANY($1) FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let stored: std::collections::HashMap<String, i64> = stored.into_iter().collect();
        let applied: Vec<bool> = writes
            .iter()
            .map(|w| stored.get(&w.stream_id).copied().unwrap_or(0) == w.expected_version)
            .collect();
        let entries: Vec<&FeedEntry> = writes
            .iter()
            .zip(&applied)
            .filter(|(_, ok)| **ok)
            .flat_map(|(w, _)| w.entries.iter())
            .collect();
        if entries.is_empty() {
            tx.rollback().await?;
            return Ok(applied);
        }
        // The head row's lock orders feed writers: positions are handed out, and become
        // visible, strictly in order.
        let last: i64 = sqlx::query_scalar(
            "UPDATE event_feed_head SET position = position + $1 WHERE id = 1 RETURNING position",
        )
        .bind(entries.len() as i64)
        .fetch_one(&mut *tx)
        .await?;
        let first = last - entries.len() as i64 + 1;
        let positions: Vec<i64> = (first..=last).collect();
        let streams: Vec<&str> = entries.iter().map(|e| e.stream_id.as_str()).collect();
        let versions: Vec<i64> = entries.iter().map(|e| e.stream_version).collect();
        let types: Vec<&str> = entries.iter().map(|e| e.event_type.as_str()).collect();
        sqlx::query(
            "INSERT INTO event_feed (position, stream_id, stream_version, event_type) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[])",
        )
        .bind(&positions)
        .bind(&streams)
        .bind(&versions)
        .bind(&types)
        .execute(&mut *tx)
        .await?;
        let moved: Vec<(&str, i64)> = writes
            .iter()
            .zip(&applied)
            .filter(|(_, ok)| **ok)
            .map(|(w, _)| (w.stream_id.as_str(), w.version))
            .collect();
        sqlx::query(
            "INSERT INTO event_feed_streams (stream_id, version) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version",
        )
        .bind(moved.iter().map(|m| m.0).collect::<Vec<_>>())
        .bind(moved.iter().map(|m| m.1).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        retry::commit(tx).await?;
        Ok(applied)
    })
    .await
}

/// An event as integrators see it, in the pull feed and as a webhook body: its feed position,
/// identity, order, and its payload in the event type's current schema version.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FeedEvent {
    /// Feed position; pass it as `after` to read on from here.
    pub position: i64,
    /// UUIDv7, the same on every delivery of this event: receivers de-duplicate on it.
    pub event_id: Uuid,
    pub event_type: String,
    /// The schema version of `data` (the event type's current one).
    pub schema_version: i32,
    /// `order-<uuid>` for order events.
    pub stream_id: String,
    /// The order the event belongs to, when it belongs to one.
    #[schema(format = Uuid)]
    pub order_id: Option<String>,
    /// 1-based, contiguous within the stream: a receiver can tell a gap or a repeat.
    pub stream_version: i64,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub channel: Option<String>,
    /// The event's payload.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl FeedEvent {
    /// From the stored envelope: old payload versions are upcast to the current one.
    pub fn from_envelope(position: i64, envelope: EventEnvelope) -> Self {
        let (schema_version, data) = match envelope.decode() {
            Ok(event) => (
                event.kind().current_version(),
                serde_json::to_value(&event).unwrap_or(Value::Null),
            ),
            // Not a known type (an event newer than this binary): as stored.
            Err(_) => (envelope.schema_version, envelope.payload.to_value()),
        };
        Self {
            position,
            event_id: envelope.event_id,
            event_type: envelope.event_type,
            schema_version,
            order_id: OrderId::from_stream_id(&envelope.stream_id).map(|id| id.to_string()),
            stream_id: envelope.stream_id,
            stream_version: envelope.stream_version,
            occurred_at: envelope.occurred_at,
            recorded_at: envelope.recorded_at,
            correlation_id: envelope.correlation_id,
            channel: envelope.channel.map(|c| c.as_str().to_owned()),
            data,
        }
    }
}

/// A page of the feed.
#[derive(Debug, Clone)]
pub struct FeedPage {
    pub events: Vec<FeedEvent>,
    /// Where the next read starts: the last position returned, or, when fewer than `limit`
    /// matched, the head of the feed as this read saw it (positions up to it are all
    /// committed, so skipping the ones that did not match is safe).
    pub next: i64,
    /// More matching events may follow right away.
    pub more: bool,
}

#[derive(sqlx::FromRow)]
struct FeedRow {
    position: i64,
    #[sqlx(flatten)]
    event: EventRow,
}

/// Up to `limit` events after `after`, only of `types` when it is not empty, in feed order.
pub async fn read_after(
    pool: &PgPool,
    after: i64,
    limit: i64,
    types: &[String],
) -> Result<FeedPage, EventStoreError> {
    let columns = qualified_columns("e");
    let sql = format!(
        "SELECT f.position, {columns} FROM event_feed f \
         JOIN events e ON e.stream_id = f.stream_id AND e.stream_version = f.stream_version \
         WHERE f.position > $1 AND (cardinality($3::text[]) = 0 OR f.event_type = ANY($3)) \
         ORDER BY f.position LIMIT $2"
    );
    let (rows, head): (Vec<FeedRow>, i64) = retry::serializable(|| async {
        let mut tx = retry::begin(pool).await?;
        let rows: Vec<FeedRow> = sqlx::query_as(&sql)
            .bind(after)
            .bind(limit)
            .bind(types)
            .fetch_all(&mut *tx)
            .await?;
        let head: i64 = sqlx::query_scalar("SELECT position FROM event_feed_head WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
        retry::commit(tx).await?;
        Ok((rows, head))
    })
    .await?;
    let more = rows.len() as i64 >= limit;
    let mut positions = Vec::with_capacity(rows.len());
    let mut envelopes = Vec::with_capacity(rows.len());
    for row in rows {
        positions.push(row.position);
        envelopes.push(EventEnvelope::try_from(row.event)?);
    }
    crate::pii::open_envelopes(pool, &mut envelopes).await?;
    let events: Vec<FeedEvent> = positions
        .into_iter()
        .zip(envelopes)
        .map(|(position, envelope)| FeedEvent::from_envelope(position, envelope))
        .collect();
    let next = match (more, events.last()) {
        (true, Some(last)) => last.position,
        _ => head.max(after),
    };
    Ok(FeedPage { events, next, more })
}

/// The last position handed out.
pub async fn head(pool: &PgPool) -> Result<i64, sqlx::Error> {
    retry::serializable(|| {
        sqlx::query_scalar("SELECT position FROM event_feed_head WHERE id = 1").fetch_one(pool)
    })
    .await
}

/// Events at exactly these positions (a subscription's retries), keyed by position.
pub async fn read_positions(
    pool: &PgPool,
    positions: &[i64],
) -> Result<std::collections::HashMap<i64, FeedEvent>, EventStoreError> {
    if positions.is_empty() {
        return Ok(Default::default());
    }
    let columns = qualified_columns("e");
    let sql = format!(
        "SELECT f.position, {columns} FROM event_feed f \
         JOIN events e ON e.stream_id = f.stream_id AND e.stream_version = f.stream_version \
         WHERE f.position = ANY($1)"
    );
    let rows: Vec<FeedRow> =
        retry::serializable(|| sqlx::query_as(&sql).bind(positions).fetch_all(pool)).await?;
    let mut positions = Vec::with_capacity(rows.len());
    let mut envelopes = Vec::with_capacity(rows.len());
    for row in rows {
        positions.push(row.position);
        envelopes.push(EventEnvelope::try_from(row.event)?);
    }
    crate::pii::open_envelopes(pool, &mut envelopes).await?;
    let mut out = std::collections::HashMap::with_capacity(positions.len());
    for (position, envelope) in positions.into_iter().zip(envelopes) {
        out.insert(position, FeedEvent::from_envelope(position, envelope));
    }
    Ok(out)
}
