//! The `events` table's SQL: the multi-row insert and the row ↔ envelope mapping.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;
use waybill_schemas::envelope::ActorKind;
use waybill_schemas::{Actor, Channel, EventEnvelope, Payload};

use super::EventStoreError;

/// Every column of `events` but the payload, in [`EventRow`]'s order.
macro_rules! head_columns {
    () => {
        "stream_id, stream_version, event_id, event_type, schema_version, \
        occurred_at, recorded_at, correlation_id, causation_id, traceparent, actor_kind, actor_id, \
        channel"
    };
}

pub(crate) const COLUMNS: &str = concat!(head_columns!(), ", payload");
/// [`COLUMNS`] with the payload as its stored text, for [`EventRow`]: what readers
/// select (the payload stays text until it is decoded into its typed event).
pub(crate) const COLUMNS_TEXT_PAYLOAD: &str =
    concat!(head_columns!(), ", payload::text AS payload");

/// [`COLUMNS_TEXT_PAYLOAD`] of the `events` table joined as `alias`.
pub(crate) fn qualified_columns(alias: &str) -> String {
    COLUMNS_TEXT_PAYLOAD
        .split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SELECT` of the `events` columns from the 14 arrays [`bind_events`] binds as `$1..$14`.
const UNNEST_EVENTS: &str =
    "SELECT s, v, id, t, sv, oa, ra, co, ca, tp, ak, ai, ch, p::jsonb FROM UNNEST(\
       $1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::int[], $6::timestamptz[], \
       $7::timestamptz[], $8::uuid[], $9::uuid[], $10::text[], $11::text[], $12::text[], \
       $13::text[], $14::text[]) AS x(s, v, id, t, sv, oa, ra, co, ca, tp, ak, ai, ch, p)";

/// Inserts `events` and their outbox rows (created at `now`) with one statement, their personal
/// fields sealed ([`crate::pii`]) first on the same connection. A duplicate
/// `(stream_id, stream_version)` fails the statement with a unique violation on `events_pkey`:
/// that is the concurrency check. Neither table is written unless both are.
pub async fn insert_events_and_outbox(
    conn: &mut PgConnection,
    events: &[&EventEnvelope],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let sealed = crate::pii::seal_for_insert(&mut *conn, events)
        .await
        .map_err(crate::pii::PiiError::into_sqlx)?;
    let sql = format!(
        "WITH stored AS (INSERT INTO events ({COLUMNS}) {UNNEST_EVENTS} \
         RETURNING event_id, stream_id, stream_version) {}",
        crate::outbox::insert_stored("$15")
    );
    bind_events(sqlx::query(&sql), events, &sealed)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Binds the columns of `events` as the 14 arrays of [`UNNEST_EVENTS`], each payload replaced
/// by its sealed form where `sealed` holds one.
fn bind_events<'q>(
    query: sqlx::query::Query<'q, Postgres, PgArguments>,
    events: &[&EventEnvelope],
    sealed: &[Option<Payload>],
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    let n = events.len();
    let mut stream_ids = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut schema_versions = Vec::with_capacity(n);
    let mut occurred = Vec::with_capacity(n);
    let mut recorded = Vec::with_capacity(n);
    let mut correlations = Vec::with_capacity(n);
    let mut causations: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut traceparents: Vec<Option<String>> = Vec::with_capacity(n);
    let mut actor_kinds = Vec::with_capacity(n);
    let mut actor_ids = Vec::with_capacity(n);
    let mut channels: Vec<Option<String>> = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    for (e, sealed) in events.iter().zip(sealed) {
        stream_ids.push(e.stream_id.clone());
        versions.push(e.stream_version);
        event_ids.push(e.event_id);
        types.push(e.event_type.clone());
        schema_versions.push(e.schema_version);
        occurred.push(e.occurred_at);
        recorded.push(e.recorded_at);
        correlations.push(e.correlation_id);
        causations.push(e.causation_id);
        traceparents.push(e.traceparent.clone());
        actor_kinds.push(actor_kind_str(e.actor.kind).to_owned());
        actor_ids.push(e.actor.id.clone());
        channels.push(e.channel.map(|c| c.as_str().to_owned()));
        let payload = sealed.as_ref().unwrap_or(&e.payload);
        payloads.push(payload.as_str().to_owned());
    }
    query
        .bind(stream_ids)
        .bind(versions)
        .bind(event_ids)
        .bind(types)
        .bind(schema_versions)
        .bind(occurred)
        .bind(recorded)
        .bind(correlations)
        .bind(causations)
        .bind(traceparents)
        .bind(actor_kinds)
        .bind(actor_ids)
        .bind(channels)
        .bind(payloads)
}

pub(crate) fn actor_kind_str(kind: ActorKind) -> &'static str {
    match kind {
        ActorKind::Customer => "customer",
        ActorKind::Agent => "agent",
        ActorKind::Service => "service",
        ActorKind::System => "system",
    }
}

pub(crate) fn actor_kind(raw: &str) -> Option<ActorKind> {
    Some(match raw {
        "customer" => ActorKind::Customer,
        "agent" => ActorKind::Agent,
        "service" => ActorKind::Service,
        "system" => ActorKind::System,
        _ => return None,
    })
}

/// One row of `events`, as selected with [`COLUMNS_TEXT_PAYLOAD`]: the payload as its stored
/// text.
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    stream_id: String,
    stream_version: i64,
    event_id: Uuid,
    event_type: String,
    schema_version: i32,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    traceparent: Option<String>,
    actor_kind: String,
    actor_id: String,
    channel: Option<String>,
    payload: String,
}

/// Every [`EventEnvelope`] field but the payload, decoded from its columns. Serializes with the
/// envelope's own names and encodings, so a message body can be this object plus the payload.
#[derive(Debug, Serialize)]
pub(crate) struct EnvelopeHead {
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub traceparent: Option<String>,
    pub actor: Actor,
    pub channel: Option<Channel>,
}

impl EventRow {
    /// The keyset position of this row in the log.
    pub(crate) fn cursor(&self) -> super::ReadAllCursor {
        super::ReadAllCursor {
            recorded_at: self.recorded_at,
            stream_id: self.stream_id.clone(),
            stream_version: self.stream_version,
        }
    }

    /// The decoded envelope fields and the payload as selected.
    pub(crate) fn split(self) -> Result<(EnvelopeHead, String), EventStoreError> {
        let corrupt = |what: &str| EventStoreError::Corrupt {
            stream_id: self.stream_id.clone(),
            stream_version: self.stream_version,
            detail: what.to_owned(),
        };
        let kind = actor_kind(&self.actor_kind).ok_or_else(|| corrupt("unknown actor_kind"))?;
        let channel = match &self.channel {
            Some(raw) => Some(Channel::parse(raw).map_err(|_| corrupt("unknown channel"))?),
            None => None,
        };
        let head = EnvelopeHead {
            event_id: self.event_id,
            stream_version: self.stream_version,
            event_type: self.event_type,
            schema_version: self.schema_version,
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            traceparent: self.traceparent,
            actor: Actor {
                kind,
                id: self.actor_id,
            },
            channel,
            stream_id: self.stream_id,
        };
        Ok((head, self.payload))
    }
}

impl TryFrom<EventRow> for EventEnvelope {
    type Error = EventStoreError;
    /// Takes the payload selected as text (`payload::text`), checked to be JSON.
    fn try_from(row: EventRow) -> Result<Self, EventStoreError> {
        let (head, text) = row.split()?;
        let payload = Payload::from_text(text).map_err(|error| EventStoreError::Corrupt {
            stream_id: head.stream_id.clone(),
            stream_version: head.stream_version,
            detail: format!("payload is not JSON: {error}"),
        })?;
        Ok(head.with_payload(payload))
    }
}

impl EnvelopeHead {
    /// The envelope of these fields and `payload`.
    fn with_payload(self, payload: Payload) -> EventEnvelope {
        EventEnvelope {
            event_id: self.event_id,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            event_type: self.event_type,
            schema_version: self.schema_version,
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            traceparent: self.traceparent,
            actor: self.actor,
            channel: self.channel,
            payload,
        }
    }
}
