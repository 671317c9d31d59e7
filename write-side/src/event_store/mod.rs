//! The event store: the append-only `events` table in Postgres (CockroachDB at scale).
//!
//! The primary key `(stream_id, stream_version)` is the optimistic concurrency check: an append
//! carries the version it expects the stream to be at, and a second writer of the same version
//! collides on the key and gets [`EventStoreError::Conflict`]. Every append writes the outbox
//! rows in the same SERIALIZABLE transaction, retried on SQLSTATE 40001. The command API appends
//! through the [`crate::commit_batcher`], which writes many commands' rows per transaction with
//! the same statements.

pub mod decisions;
mod log_pages;
pub use log_pages::{LogPages, READ_AHEAD};
pub mod retry;
pub mod rows;
pub mod stream_cache;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;
use waybill_schemas::{Actor, Channel, EventEnvelope, NewEvent};

use rows::{EventRow, COLUMNS_TEXT_PAYLOAD};
use stream_cache::StreamCache;

/// Why the event store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    #[error("stream {stream_id} was expected at version {expected} but is at {actual:?}")]
    Conflict {
        stream_id: String,
        expected: i64,
        actual: Option<i64>,
    },
    #[error("stored event {stream_id} v{stream_version} is unreadable: {detail}")]
    Corrupt {
        stream_id: String,
        stream_version: i64,
        detail: String,
    },
    #[error("event store database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Metadata shared by the events one command produces.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMeta {
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub traceparent: Option<String>,
    pub actor: Actor,
    pub channel: Option<Channel>,
}

/// Gives each decided event its id (UUIDv7) and time.
pub fn new_events(events: Vec<waybill_schemas::OrderEvent>, now: DateTime<Utc>) -> Vec<NewEvent> {
    events
        .into_iter()
        .map(|event| NewEvent {
            event_id: Uuid::now_v7(),
            event,
            occurred_at: now,
        })
        .collect()
}

/// Gives `events` their places after `expected_version` in `stream_id`, with `meta`.
pub fn stamp(
    stream_id: &str,
    expected_version: i64,
    events: Vec<NewEvent>,
    meta: &EventMeta,
    recorded_at: DateTime<Utc>,
) -> Vec<EventEnvelope> {
    events
        .into_iter()
        .zip(expected_version + 1..)
        .map(|(new, stream_version)| EventEnvelope {
            event_id: new.event_id,
            stream_id: stream_id.to_owned(),
            stream_version,
            event_type: new.event.event_type().to_owned(),
            schema_version: new.event.schema_version(),
            occurred_at: new.occurred_at,
            recorded_at,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            traceparent: meta.traceparent.clone(),
            actor: meta.actor.clone(),
            channel: meta.channel,
            payload: new.event.to_payload(),
        })
        .collect()
}

/// The log order of [`EventStore::read_all_page`]: the key of the `events_log_order` index.
const LOG_ORDER: &str = "ORDER BY recorded_at, stream_id, stream_version";

/// Keyset position in the whole log for [`EventStore::read_all_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAllCursor {
    pub recorded_at: DateTime<Utc>,
    pub stream_id: String,
    pub stream_version: i64,
}

/// A stream that changed in a span of the log: [`EventStore::streams_changed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedStream {
    pub stream_id: String,
    /// The highest version recorded in the span.
    pub version: i64,
    /// When that version was recorded.
    pub changed_at: DateTime<Utc>,
}

/// Reads and appends events.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: PgPool,
    /// The streams [`EventStore::read_streams`] read lately, shared by every store of this
    /// process on the same database.
    streams: Arc<Mutex<StreamCache>>,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            streams: stream_cache::of_database(&pool),
            pool,
        }
    }

    fn stream_cache(&self) -> MutexGuard<'_, StreamCache> {
        // A reader that panicked while holding it left whole entries behind: still usable.
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Events of one stream with `from <= version <= to` (`to = None`: to the end), in order.
    pub async fn read_stream(
        &self,
        stream_id: &str,
        from: i64,
        to: Option<i64>,
    ) -> Result<Vec<EventEnvelope>, EventStoreError> {
        let sql = format!(
            "SELECT {COLUMNS_TEXT_PAYLOAD} FROM events WHERE stream_id = $1 AND stream_version >= $2 \
             AND ($3::bigint IS NULL OR stream_version <= $3) ORDER BY stream_version"
        );
        let rows: Vec<EventRow> = retry::serializable(|| {
            sqlx::query_as(&sql)
                .bind(stream_id)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
        })
        .await?;
        let mut events = rows
            .into_iter()
            .map(EventEnvelope::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        crate::pii::open_envelopes(&self.pool, &mut events).await?;
        Ok(events)
    }

    /// Every event of each of `stream_ids`, grouped by stream in version order (one query).
    ///
    /// Streams this process read lately from the same database are cached as stored
    /// ([`stream_cache`]): the query then fetches the cached prefix's last event and the events
    /// above it. That last event must be the one cached (same id at the same version), or the
    /// prefix is dropped and the stream read whole: a database restored or recreated under the
    /// same name is never answered from memory. Personal fields are opened at every read, so an
    /// erased subject reads as erased at once.
    pub async fn read_streams(
        &self,
        stream_ids: &[String],
    ) -> Result<HashMap<String, Vec<EventEnvelope>>, EventStoreError> {
        let mut ids: Vec<&str> = stream_ids.iter().map(String::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        let prefixes: Vec<Arc<[EventEnvelope]>> = {
            let mut cache = self.stream_cache();
            ids.iter().map(|id| cache.prefix(id)).collect()
        };
        let from: Vec<i64> = prefixes
            .iter()
            .map(|p| p.last().map_or(1, |e| e.stream_version))
            .collect();
        let mut tails = self.read_from(&ids, &from).await?;
        let mut stale: Vec<&str> = Vec::new();
        for (id, prefix) in ids.iter().zip(&prefixes) {
            let Some(last) = prefix.last() else { continue };
            let overlap = tails.get_mut(*id).filter(|tail| {
                tail.first().is_some_and(|first| {
                    first.event_id == last.event_id && first.stream_version == last.stream_version
                })
            });
            match overlap {
                Some(tail) => {
                    tail.remove(0);
                }
                None => stale.push(id),
            }
        }
        if !stale.is_empty() {
            tracing::warn!(
                streams = stale.len(),
                "cached stream prefixes differ from the stored events; reading those streams whole"
            );
            let whole = self.read_from(&stale, &vec![1; stale.len()]).await?;
            let mut cache = self.stream_cache();
            for id in &stale {
                cache.forget(id);
                tails.remove(*id);
            }
            tails.extend(whole);
        }
        // Every stream's events in one list, so the data keys are read once for all of them.
        let mut events: Vec<EventEnvelope> = Vec::new();
        {
            let mut cache = self.stream_cache();
            for (id, prefix) in ids.iter().zip(prefixes) {
                let tail = tails.remove(*id).unwrap_or_default();
                let start = events.len();
                if !stale.contains(id) {
                    events.extend_from_slice(&prefix);
                }
                let grew = !tail.is_empty();
                events.extend(tail);
                if grew {
                    cache.store(id, &events[start..]);
                }
            }
        }
        crate::pii::open_envelopes(&self.pool, &mut events).await?;
        let mut streams: HashMap<String, Vec<EventEnvelope>> = HashMap::with_capacity(ids.len());
        for envelope in events {
            streams
                .entry(envelope.stream_id.clone())
                .or_default()
                .push(envelope);
        }
        Ok(streams)
    }

    /// The stored events of each of `ids` from version `from` (same index) on, sealed, by
    /// stream in version order.
    async fn read_from(
        &self,
        ids: &[&str],
        from: &[i64],
    ) -> Result<HashMap<String, Vec<EventEnvelope>>, EventStoreError> {
        let sql = format!(
            "SELECT {COLUMNS_TEXT_PAYLOAD} FROM events \
             JOIN UNNEST($1::text[], $2::bigint[]) AS x(s, v) \
             ON stream_id = x.s AND stream_version >= x.v \
             ORDER BY stream_id, stream_version"
        );
        let rows: Vec<EventRow> = retry::serializable(|| {
            sqlx::query_as(&sql)
                .bind(ids)
                .bind(from)
                .fetch_all(&self.pool)
        })
        .await?;
        let mut streams: HashMap<String, Vec<EventEnvelope>> = HashMap::new();
        for row in rows {
            let envelope = EventEnvelope::try_from(row)?;
            streams
                .entry(envelope.stream_id.clone())
                .or_default()
                .push(envelope);
        }
        Ok(streams)
    }

    /// Pages over all events for rebuilds and catch-up, in log order `(recorded_at, stream_id,
    /// stream_version)`. Returns the page and the cursor to pass for the next one (`None` at the
    /// end).
    ///
    /// Keyset paging on the `events_log_order` index (migration 0007): each page is an index
    /// range scan that starts after the cursor and stops after `limit` rows, so a page costs the
    /// same at the end of a large log as at its start (no sort of the table per page). The
    /// first page and the following ones are two statements, since `cursor IS NULL OR (...) >`
    /// would hide the range condition from the planner.
    pub async fn read_all_page(
        &self,
        after: Option<ReadAllCursor>,
        limit: i64,
    ) -> Result<(Vec<EventEnvelope>, Option<ReadAllCursor>), EventStoreError> {
        let (rows, next) = self.fetch_log_rows(after, limit).await?;
        Ok((self.decode_log_rows(rows).await?, next))
    }

    /// The rows of [`Self::read_all_page`], payloads as the stored text (not parsed yet), and
    /// the cursor for the next page.
    pub(crate) async fn fetch_log_rows(
        &self,
        after: Option<ReadAllCursor>,
        limit: i64,
    ) -> Result<(Vec<EventRow>, Option<ReadAllCursor>), EventStoreError> {
        let limit = limit.max(1);
        let rows: Vec<EventRow> = match &after {
            None => {
                let sql = format!("SELECT {COLUMNS_TEXT_PAYLOAD} FROM events {LOG_ORDER} LIMIT $1");
                retry::serializable(|| sqlx::query_as(&sql).bind(limit).fetch_all(&self.pool))
                    .await?
            }
            Some(cursor) => {
                let sql = read_all_after_sql();
                retry::serializable(|| {
                    sqlx::query_as(&sql)
                        .bind(cursor.recorded_at)
                        .bind(cursor.stream_id.as_str())
                        .bind(cursor.stream_version)
                        .bind(limit)
                        .fetch_all(&self.pool)
                })
                .await?
            }
        };
        let next = if (rows.len() as i64) < limit {
            None
        } else {
            rows.last().map(EventRow::cursor)
        };
        Ok((rows, next))
    }

    /// Envelopes of rows [`Self::fetch_log_rows`] fetched: payloads parsed, personal fields
    /// opened.
    pub(crate) async fn decode_log_rows(
        &self,
        rows: Vec<EventRow>,
    ) -> Result<Vec<EventEnvelope>, EventStoreError> {
        let mut events = rows
            .into_iter()
            .map(EventEnvelope::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        crate::pii::open_envelopes(&self.pool, &mut events).await?;
        Ok(events)
    }

    /// How many events the log holds (for a rebuild's progress and ETA).
    pub async fn count(&self) -> Result<i64, EventStoreError> {
        Ok(retry::serializable(|| {
            sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&self.pool)
        })
        .await?)
    }

    /// The streams with events recorded in `(after, until]`, each with the highest version
    /// recorded in that span and when, the least recently changed first, at most `limit`
    /// (what a view's anti-entropy audit compares itself with). An index range scan on
    /// `events_log_order`.
    pub async fn streams_changed(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ChangedStream>, EventStoreError> {
        let rows: Vec<(String, i64, DateTime<Utc>)> = retry::serializable(|| {
            sqlx::query_as(
                "SELECT stream_id, max(stream_version), max(recorded_at) AS changed_at FROM events \
                 WHERE recorded_at > $1 AND recorded_at <= $2 \
                 GROUP BY stream_id ORDER BY changed_at, stream_id LIMIT $3",
            )
            .bind(after)
            .bind(until)
            .bind(limit)
            .fetch_all(&self.pool)
        })
        .await?;
        Ok(rows
            .into_iter()
            .map(|(stream_id, version, changed_at)| ChangedStream {
                stream_id,
                version,
                changed_at,
            })
            .collect())
    }

    /// The stream's current version (0 when it has no events).
    pub async fn stream_version(&self, stream_id: &str) -> Result<i64, EventStoreError> {
        let version: Option<i64> = retry::serializable(|| {
            sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_one(&self.pool)
        })
        .await?;
        Ok(version.unwrap_or(0))
    }

    /// Appends `events` after `expected_version`, with their outbox rows, in one SERIALIZABLE
    /// transaction: a single statement when no event holds personal fields (the pool's sessions
    /// default to SERIALIZABLE, as `waybill`'s pools and the databases it creates do). Returns
    /// the stored envelopes. A stream not at `expected_version` → [`EventStoreError::Conflict`];
    /// nothing is written then.
    pub async fn append(
        &self,
        stream_id: &str,
        expected_version: i64,
        events: Vec<NewEvent>,
        meta: &EventMeta,
    ) -> Result<Vec<EventEnvelope>, EventStoreError> {
        let span = tracing::info_span!(
            "event_store.append",
            stream_id,
            expected_version,
            correlation_id = %meta.correlation_id
        );
        let envelopes = stamp(stream_id, expected_version, events, meta, Utc::now());
        let refs: Vec<&EventEnvelope> = envelopes.iter().collect();
        let written = retry::serializable_idempotent(|| async {
            if refs
                .iter()
                .any(|e| crate::pii::fields::is_personal(&e.event_type))
            {
                // Sealing reads (and may write) the key store: in the events' transaction.
                let mut tx = retry::begin(&self.pool).await?;
                rows::insert_events_and_outbox(&mut tx, &refs, Utc::now()).await?;
                retry::commit(tx).await
            } else {
                // One statement, its own transaction: one round trip instead of four.
                let mut conn = self.pool.acquire().await?;
                retry::single_statement(rows::insert_events_and_outbox(
                    &mut conn,
                    &refs,
                    Utc::now(),
                ))
                .await
            }
        })
        .instrument(span)
        .await;
        match written {
            Ok(()) => Ok(envelopes),
            // A repeat after an ambiguous commit finds its own events at the expected version.
            Err(e) if is_stream_conflict(&e) && already_stored(&self.pool, &refs).await? => {
                Ok(envelopes)
            }
            Err(e) if is_stream_conflict(&e) => Err(EventStoreError::Conflict {
                stream_id: stream_id.to_owned(),
                expected: expected_version,
                actual: self.stream_version(stream_id).await.ok(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// True when every one of `events` is stored (and `events` is not empty): an append whose
/// commit was ambiguous, repeated, hits its own rows as a stream conflict; its event ids
/// (UUIDv7, made for that append) say the first attempt committed.
pub async fn already_stored(pool: &PgPool, events: &[&EventEnvelope]) -> Result<bool, sqlx::Error> {
    if events.is_empty() {
        return Ok(false);
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let found: i64 = retry::serializable(|| {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = ANY($1)")
            .bind(&ids)
            .fetch_one(pool)
    })
    .await?;
    Ok(found == ids.len() as i64)
}

/// The statement of every page after the first: the events after the cursor `($1, $2, $3)` in
/// log order, at most `$4` (public so a test can check its plan).
pub fn read_all_after_sql() -> String {
    format!(
        "SELECT {COLUMNS_TEXT_PAYLOAD} FROM events \
         WHERE (recorded_at, stream_id, stream_version) > ($1, $2, $3) {LOG_ORDER} LIMIT $4"
    )
}

/// True when `error` is the `(stream_id, stream_version)` key refusing a second writer.
pub fn is_stream_conflict(error: &sqlx::Error) -> bool {
    retry::unique_violation(error).is_some_and(|c| c == "events_pkey" || c == "primary")
}
