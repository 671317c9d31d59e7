//! The `desk_entries` table: every SQL statement on it. The detector opens entries (a finding
//! twice is one entry, by its dedupe key), the desk projector marks them resolved when their
//! `DeskEntryResolved` event arrives, and the agents' API lists and reads them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::events::DeskEntryResolved;

use super::kinds::{Action, EntryKind};
use crate::event_store::retry;

/// A finding the detector wants on the desk.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub dedupe_key: String,
    pub kind: EntryKind,
    pub order_id: Option<Uuid>,
    pub channel: Option<String>,
    pub reason: String,
    pub suggested_action: Action,
    pub details: Value,
}

/// Open or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    Open,
    Resolved,
}

impl EntryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }
}

/// What was done about a resolved entry, and by whom.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Resolution {
    pub action: Action,
    /// The agent's client id, or `desk` for an automatic resolution.
    pub resolved_by: String,
    pub resolved_at: DateTime<Utc>,
    pub note: Option<String>,
    pub automatic: bool,
    /// The `DeskEntryResolved` event that recorded it.
    pub event_id: Uuid,
}

/// One desk entry.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub entry_id: Uuid,
    /// What makes two findings one entry (`stage_overdue:<order>:<stage>:<version>`).
    pub key: String,
    pub kind: EntryKind,
    pub order_id: Option<Uuid>,
    pub channel: Option<String>,
    /// Why it is on the desk, in words.
    pub reason: String,
    pub suggested_action: Action,
    /// What an agent may record as done.
    pub allowed_actions: Vec<Action>,
    /// The facts behind the reason (stage, durations, deadlines, dead letter's headers).
    #[schema(value_type = Object)]
    pub details: Value,
    pub status: EntryStatus,
    pub opened_at: DateTime<Utc>,
    pub resolution: Option<Resolution>,
}

/// Which entries to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntryFilter {
    pub status: Option<EntryStatus>,
    pub kind: Option<EntryKind>,
    pub channel: Option<String>,
    pub order_id: Option<Uuid>,
    pub limit: i64,
    pub offset: i64,
}

const COLUMNS: &str =
    "entry_id, dedupe_key, kind, order_id, channel, reason, suggested_action, details, \
    status, opened_at, resolved_at, resolved_by, resolution, resolution_note, resolution_event_id";

type Row = (
    Uuid,
    String,
    String,
    Option<Uuid>,
    Option<String>,
    String,
    String,
    Value,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Uuid>,
);

fn entry_of(row: Row) -> Option<Entry> {
    let (id, key, kind, order_id, channel, reason, suggested, details, status, opened_at) = (
        row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9,
    );
    let kind = EntryKind::parse(&kind)?;
    let resolution = match (row.10, row.11, row.12, row.14) {
        (Some(at), Some(by), Some(action), Some(event_id)) => Some(Resolution {
            action: Action::parse(&action)?,
            automatic: action == Action::Cleared.as_str(),
            resolved_by: by,
            resolved_at: at,
            note: row.13,
            event_id,
        }),
        _ => None,
    };
    Some(Entry {
        entry_id: id,
        key,
        kind,
        order_id,
        channel,
        reason,
        suggested_action: Action::parse(&suggested).unwrap_or(kind.suggested()),
        allowed_actions: kind.allowed().to_vec(),
        details,
        status: if status == EntryStatus::Resolved.as_str() {
            EntryStatus::Resolved
        } else {
            EntryStatus::Open
        },
        opened_at,
        resolution,
    })
}

/// Opens `entry` unless an entry with its dedupe key exists (open or resolved). Returns the new
/// entry's id, or `None` when it was known.
pub async fn open(
    pool: &PgPool,
    entry: &NewEntry,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let id = Uuid::now_v7();
    retry::serializable_idempotent(|| {
        sqlx::query_scalar(
            "INSERT INTO desk_entries (entry_id, dedupe_key, kind, order_id, channel, reason, \
             suggested_action, details, status, opened_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9) \
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING entry_id",
        )
        .bind(id)
        .bind(&entry.dedupe_key)
        .bind(entry.kind.as_str())
        .bind(entry.order_id)
        .bind(&entry.channel)
        .bind(&entry.reason)
        .bind(entry.suggested_action.as_str())
        .bind(&entry.details)
        .bind(now)
        .fetch_optional(pool)
    })
    .await
}

/// Entries matching `filter`, newest first.
pub async fn list(pool: &PgPool, filter: &EntryFilter) -> Result<(Vec<Entry>, i64), sqlx::Error> {
    let condition = "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2) \
         AND ($3::text IS NULL OR channel = $3) AND ($4::uuid IS NULL OR order_id = $4)";
    let status = filter.status.map(EntryStatus::as_str);
    let kind = filter.kind.map(EntryKind::as_str);
    let select = format!(
        "SELECT {COLUMNS} FROM desk_entries WHERE {condition} \
         ORDER BY opened_at DESC, entry_id DESC LIMIT $5 OFFSET $6"
    );
    let count = format!("SELECT count(*) FROM desk_entries WHERE {condition}");
    let rows: Vec<Row> = retry::serializable(|| {
        sqlx::query_as(&select)
            .bind(status)
            .bind(kind)
            .bind(&filter.channel)
            .bind(filter.order_id)
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(pool)
    })
    .await?;
    let total: i64 = retry::serializable(|| {
        sqlx::query_scalar(&count)
            .bind(status)
            .bind(kind)
            .bind(&filter.channel)
            .bind(filter.order_id)
            .fetch_one(pool)
    })
    .await?;
    Ok((rows.into_iter().filter_map(entry_of).collect(), total))
}

/// One entry.
pub async fn get(pool: &PgPool, entry_id: Uuid) -> Result<Option<Entry>, sqlx::Error> {
    let select = format!("SELECT {COLUMNS} FROM desk_entries WHERE entry_id = $1");
    let row: Option<Row> =
        retry::serializable(|| sqlx::query_as(&select).bind(entry_id).fetch_optional(pool)).await?;
    Ok(row.and_then(entry_of))
}

/// The ids of every entry about `order_id` (open or resolved), oldest first: their streams
/// `desk-<id>` hold what was done about the order from the desk.
pub async fn ids_of_order(pool: &PgPool, order_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    retry::serializable(|| {
        sqlx::query_scalar(
            "SELECT entry_id FROM desk_entries WHERE order_id = $1 ORDER BY opened_at, entry_id",
        )
        .bind(order_id)
        .fetch_all(pool)
    })
    .await
}

/// Open entries of these kinds (the detector checks whether their condition is still there).
pub async fn open_of_kinds(pool: &PgPool, kinds: &[EntryKind]) -> Result<Vec<Entry>, sqlx::Error> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let select =
        format!("SELECT {COLUMNS} FROM desk_entries WHERE status = 'open' AND kind = ANY($1)");
    let rows: Vec<Row> =
        retry::serializable(|| sqlx::query_as(&select).bind(&kinds).fetch_all(pool)).await?;
    Ok(rows.into_iter().filter_map(entry_of).collect())
}

/// Open entries per kind (for the desk's gauge).
pub async fn open_counts(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    retry::serializable(|| {
        sqlx::query_as(
            "SELECT kind, count(*) FROM desk_entries WHERE status = 'open' GROUP BY kind",
        )
        .fetch_all(pool)
    })
    .await
}

/// Forgets the resolution notes of the entries about `orders` (an erasure: a note is free text
/// that may name the customer; the events that carried them are sealed under the orders' data
/// keys), in the caller's transaction.
pub async fn forget_notes(
    conn: &mut sqlx::PgConnection,
    orders: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE desk_entries SET resolution_note = NULL \
         WHERE order_id = ANY($1) AND resolution_note IS NOT NULL",
    )
    .bind(orders)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the resolution `event` (by `actor`) on its entry, inside the caller's transaction
/// (the desk projector's, with its position). Applying it again changes nothing.
pub async fn mark_resolved(
    tx: &mut sqlx::PgConnection,
    event: &DeskEntryResolved,
    actor: &str,
    event_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE desk_entries SET status = 'resolved', resolved_at = $2, resolved_by = $3, \
         resolution = $4, resolution_note = $5, resolution_event_id = $6 \
         WHERE entry_id = $1 AND resolution_event_id IS NULL",
    )
    .bind(event.entry_id)
    .bind(event.resolved_at)
    .bind(actor)
    .bind(&event.action)
    .bind(&event.note)
    .bind(event_id)
    .execute(tx)
    .await?;
    Ok(())
}
