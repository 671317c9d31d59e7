//! The shape both process managers' tables share (`checkout_flows`, `fulfillment_flows`): one
//! row per order that needs a worker's attention at `due_at`, which is both "run now" and the
//! flow's next durable deadline.
//!
//! - A claim pushes `due_at` forward by a lease (`FOR UPDATE SKIP LOCKED`), so a dead worker's
//!   rows come due again by themselves and several workers never take the same row.
//! - A wake-up bumps `wakeups` in the transaction of the events that need attention; a worker
//!   parks or deletes only a row whose count it saw, so a wake-up during a pass is never lost.
//!
//! Every statement runs in a SERIALIZABLE transaction retried on 40001; no advisory locks, no
//! LISTEN/NOTIFY, so it runs unchanged on CockroachDB. The table name is a constant of the code,
//! never input.

use std::fmt::Display;
use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use waybill_schemas::OrderId;

use crate::event_store::retry;

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

/// How long a row waits after a failed pass: 1 s doubling with each consecutive failed claim,
/// at most 30 s (the lease it would otherwise have waited out).
pub fn retry_after_error(claimed: Claimed) -> chrono::Duration {
    let exponent = claimed.attempts.clamp(1, 6) - 1;
    chrono::Duration::seconds((1_i64 << exponent).min(30))
}

/// One work-list table.
#[derive(Debug, Clone, Copy)]
pub struct WorkList {
    table: &'static str,
}

impl WorkList {
    pub const fn new(table: &'static str) -> Self {
        Self { table }
    }

    /// How many rows are due at `now`: the work list's backlog (for operations).
    pub async fn due_count(&self, pool: &PgPool, now: DateTime<Utc>) -> Result<i64, sqlx::Error> {
        let statement = format!("SELECT count(*) FROM {} WHERE due_at <= $1", self.table);
        retry::serializable(|| sqlx::query_scalar(&statement).bind(now).fetch_one(pool)).await
    }

    /// Makes the flows of `orders` due now, creating rows that do not exist. Called in the same
    /// transaction as the events that need the flow's attention.
    pub async fn wake(
        &self,
        conn: &mut PgConnection,
        orders: &[OrderId],
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        if orders.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = orders.iter().map(OrderId::as_uuid).collect();
        let table = self.table;
        sqlx::query(&format!(
            "INSERT INTO {table} (order_id, due_at, created_at, updated_at) \
             SELECT id, $2, $2, $2 FROM UNNEST($1::uuid[]) AS x(id) \
             ON CONFLICT (order_id) DO UPDATE \
             SET due_at = LEAST({table}.due_at, EXCLUDED.due_at), \
                 wakeups = {table}.wakeups + 1, stage = 'run', updated_at = EXCLUDED.updated_at"
        ))
        .bind(ids)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Runs `pass` over rows this worker claimed. If the pass fails before it released them (a
    /// database error mid-pass), every claimed row is handed back as a retry due after a short
    /// backoff ([`retry_after_error`]), instead of staying invisible until its lease runs out.
    /// A row woken meanwhile comes due at once, as with any release. Should the hand-back fail
    /// too (the database is down), the lease still brings the rows back.
    pub async fn run_claimed<T, E, Fut>(
        &self,
        pool: &PgPool,
        claimed: Vec<Claimed>,
        pass: impl FnOnce(Vec<Claimed>) -> Fut,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
        E: Display,
    {
        let rows = claimed.clone();
        match pass(claimed).await {
            Ok(done) => Ok(done),
            Err(error) => {
                let now = Utc::now();
                let detail = error.to_string();
                let releases: Vec<(Claimed, Release)> = rows
                    .iter()
                    .map(|row| {
                        (
                            *row,
                            Release::Retry {
                                due_at: now + retry_after_error(*row),
                                error: detail.clone(),
                            },
                        )
                    })
                    .collect();
                match self.release(pool, &releases, now).await {
                    Ok(()) => tracing::warn!(
                        table = self.table,
                        rows = rows.len(),
                        error = %detail,
                        "pass failed; its claimed rows were handed back for a retry"
                    ),
                    Err(release_error) => tracing::warn!(
                        table = self.table,
                        rows = rows.len(),
                        error = %detail,
                        %release_error,
                        "pass failed and its claims could not be handed back; they wait out the lease"
                    ),
                }
                Err(error)
            }
        }
    }

    /// Claims up to `limit` due flows, leasing them until `now + lease`.
    pub async fn claim(
        &self,
        pool: &PgPool,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        let table = self.table;
        let sql = format!(
            "UPDATE {table} f SET due_at = $2, attempts = f.attempts + 1 \
             FROM (SELECT order_id FROM {table} WHERE due_at <= $1 \
                   ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) due \
             WHERE f.order_id = due.order_id RETURNING f.order_id, f.wakeups, f.attempts"
        );
        let rows: Vec<(Uuid, i64, i32)> = retry::serializable(|| async {
            let mut tx = retry::begin(pool).await?;
            let rows = sqlx::query_as(&sql)
                .bind(now)
                .bind(now + lease)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            retry::commit(tx).await?;
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

    /// Hands claimed rows back, all in one transaction. A row woken since it was claimed is
    /// made due now instead, whatever the worker decided, so the wake-up is acted on.
    pub async fn release(
        &self,
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
        let table = self.table;
        let delete = format!(
            "DELETE FROM {table} f USING UNNEST($1::uuid[], $2::bigint[]) AS x(id, seen) \
             WHERE f.order_id = x.id AND f.wakeups = x.seen"
        );
        let park = format!(
            "UPDATE {table} f SET \
               due_at = CASE WHEN f.wakeups = x.seen THEN x.due ELSE $6 END, \
               stage = CASE WHEN f.wakeups = x.seen THEN x.stage ELSE 'run' END, \
               attempts = CASE WHEN x.err IS NULL THEN 0 ELSE f.attempts END, \
               last_error = x.err, updated_at = $6 \
             FROM UNNEST($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) \
               AS x(id, seen, due, stage, err) \
             WHERE f.order_id = x.id"
        );
        let woken = format!(
            "UPDATE {table} SET due_at = $2, stage = 'run', updated_at = $2 \
             WHERE order_id = ANY($1)"
        );
        retry::serializable(|| async {
            let mut tx = retry::begin(pool).await?;
            if !finish_ids.is_empty() {
                sqlx::query(&delete)
                    .bind(&finish_ids)
                    .bind(&finish_seen)
                    .execute(&mut *tx)
                    .await?;
            }
            if !park_ids.is_empty() {
                sqlx::query(&park)
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
                sqlx::query(&woken)
                    .bind(&finish_ids)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            retry::commit(tx).await
        })
        .await
    }
}
