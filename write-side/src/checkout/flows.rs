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
use crate::work_list::WorkList;

/// The stage of orders held for a fraud review: the agents' queue lists it.
pub const REVIEW_STAGE: &str = "review";

pub use crate::work_list::{Claimed, Release};

/// The checkout flows' work list.
const FLOWS: WorkList = WorkList::new("checkout_flows");

/// Makes the flows of `orders` due now (creating rows that do not exist). Called in the same
/// transaction as the events that need the flow's attention (placement, cancel, webhook, review).
pub async fn wake(
    conn: &mut PgConnection,
    orders: &[OrderId],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    FLOWS.wake(conn, orders, now).await
}

/// Claims up to `limit` due flows, leasing them until `now + lease`.
pub async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    FLOWS.claim(pool, now, lease, limit).await
}

/// Runs a pass over claimed rows, handing them all back for a retry if it fails
/// ([`WorkList::run_claimed`]).
pub async fn run_claimed<
    T,
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
>(
    pool: &PgPool,
    claimed: Vec<Claimed>,
    pass: impl FnOnce(Vec<Claimed>) -> Fut,
) -> Result<T, E> {
    FLOWS.run_claimed(pool, claimed, pass).await
}

/// Hands claimed rows back. A row woken since it was claimed is made due now instead, whatever
/// the worker decided, so the wake-up is acted on.
pub async fn release(
    pool: &PgPool,
    rows: &[(Claimed, Release)],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    FLOWS.release(pool, rows, now).await
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
