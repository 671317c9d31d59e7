//! The `checkout_flows` table: which orders the process manager must look at, and when.
//!
//! Every function takes the caller's connection or pool and runs inside SERIALIZABLE
//! transactions; none uses locks beyond `FOR UPDATE SKIP LOCKED` row claims, so several workers
//! (and CockroachDB) work unchanged.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use waybill_schemas::OrderId;

use crate::event_store::retry;

/// The stage of orders held for a fraud review: the agents' queue lists it.
pub const REVIEW_STAGE: &str = "review";

/// A row a worker claimed: the order and the wake-up count it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub order_id: OrderId,
    pub wakeups: i64,
    /// Passes that claimed this row since its last success (1 on the first).
    pub attempts: i32,
}

/// What a worker does with a claimed row when it is done with it for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Look again at `due_at` (a deadline), waiting in `stage`.
    Park {
        due_at: DateTime<Utc>,
        stage: &'static str,
    },
    /// Try again at `due_at` after a failure.
    Retry {
        due_at: DateTime<Utc>,
        error: String,
    },
    /// The flow is over: delete the row.
    Finish,
}

/// Makes the flows of `orders` due now (creating rows that do not exist). Called in the same
/// transaction as the events that need the flow's attention (placement, cancel, webhook, review).
pub async fn wake(
    conn: &mut PgConnection,
    orders: &[OrderId],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = orders.iter().map(OrderId::as_uuid).collect();
    sqlx::query(
        "INSERT INTO checkout_flows (order_id, due_at, created_at, updated_at) \
         SELECT id, $2, $2, $2 FROM UNNEST($1::uuid[]) AS x(id) \
         ON CONFLICT (order_id) DO UPDATE \
         SET due_at = LEAST(checkout_flows.due_at, EXCLUDED.due_at), \
             wakeups = checkout_flows.wakeups + 1, stage = 'run', updated_at = EXCLUDED.updated_at",
    )
    .bind(ids)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` due flows, leasing them until `now + lease`.
pub async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let rows: Vec<(Uuid, i64, i32)> = retry::serializable(|| async {
        let mut tx = retry::begin(pool).await?;
        let rows = sqlx::query_as(
            "UPDATE checkout_flows f SET due_at = $2, attempts = f.attempts + 1 \
             FROM (SELECT order_id FROM checkout_flows WHERE due_at <= $1 \
                   ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) due \
             WHERE f.order_id = due.order_id RETURNING f.order_id, f.wakeups, f.attempts",
        )
        .bind(now)
        .bind(now + lease)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows)
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, wakeups, attempts)| Claimed {
            order_id: OrderId::from_uuid(id),
            wakeups,
            attempts,
        })
        .collect())
}

/// Hands claimed rows back. A row woken since it was claimed is made due now instead, whatever
/// the worker decided, so the wake-up is acted on.
pub async fn release(
    pool: &PgPool,
    rows: &[(Claimed, Release)],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut finish_ids = Vec::new();
    let mut finish_seen = Vec::new();
    let mut park_ids = Vec::new();
    let mut park_seen = Vec::new();
    let mut park_due = Vec::new();
    let mut park_stage = Vec::new();
    let mut park_error: Vec<Option<String>> = Vec::new();
    for (claimed, release) in rows {
        let id = claimed.order_id.as_uuid();
        match release {
            Release::Finish => {
                finish_ids.push(id);
                finish_seen.push(claimed.wakeups);
            }
            Release::Park { due_at, stage } => {
                park_ids.push(id);
                park_seen.push(claimed.wakeups);
                park_due.push(*due_at);
                park_stage.push(*stage);
                park_error.push(None);
            }
            Release::Retry { due_at, error } => {
                park_ids.push(id);
                park_seen.push(claimed.wakeups);
                park_due.push(*due_at);
                park_stage.push("retry");
                park_error.push(Some(error.clone()));
            }
        }
    }
    retry::serializable(|| async {
        let mut tx = retry::begin(pool).await?;
        if !finish_ids.is_empty() {
            sqlx::query(
                "DELETE FROM checkout_flows f USING UNNEST($1::uuid[], $2::bigint[]) AS x(id, seen) \
                 WHERE f.order_id = x.id AND f.wakeups = x.seen",
            )
            .bind(&finish_ids)
            .bind(&finish_seen)
            .execute(&mut *tx)
            .await?;
        }
        if !park_ids.is_empty() {
            sqlx::query(
                "UPDATE checkout_flows f SET \
                   due_at = CASE WHEN f.wakeups = x.seen THEN x.due ELSE $6 END, \
                   stage = CASE WHEN f.wakeups = x.seen THEN x.stage ELSE 'run' END, \
                   attempts = CASE WHEN x.err IS NULL THEN 0 ELSE f.attempts END, \
                   last_error = x.err, updated_at = $6 \
                 FROM UNNEST($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) \
                   AS x(id, seen, due, stage, err) \
                 WHERE f.order_id = x.id",
            )
            .bind(&park_ids)
            .bind(&park_seen)
            .bind(&park_due)
            .bind(&park_stage)
            .bind(&park_error)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // Finished rows woken meanwhile are still there: make them due now.
        if !finish_ids.is_empty() {
            sqlx::query(
                "UPDATE checkout_flows SET due_at = $2, stage = 'run', updated_at = $2 \
                 WHERE order_id = ANY($1)",
            )
            .bind(&finish_ids)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })
    .await
}

/// Orders waiting in `stage` (e.g. `review`), oldest first, after `after` (keyset on order id).
pub async fn waiting_in(
    pool: &PgPool,
    stage: &str,
    after: Option<OrderId>,
    limit: i64,
) -> Result<Vec<(OrderId, DateTime<Utc>)>, sqlx::Error> {
    let after = after.map(|id| id.as_uuid());
    let rows: Vec<(Uuid, DateTime<Utc>)> = retry::serializable(|| {
        sqlx::query_as(
            "SELECT order_id, created_at FROM checkout_flows WHERE stage = $1 \
             AND ($2::uuid IS NULL OR order_id > $2) ORDER BY order_id LIMIT $3",
        )
        .bind(stage)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, at)| (OrderId::from_uuid(id), at))
        .collect())
}

/// How many flows are due at `now` (for the metrics endpoint).
pub async fn due_count(pool: &PgPool, now: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    retry::serializable(|| {
        sqlx::query_scalar("SELECT count(*) FROM checkout_flows WHERE due_at <= $1")
            .bind(now)
            .fetch_one(pool)
    })
    .await
}
