//! The `fulfillment_flows` table: which orders the fulfillment process manager must look at,
//! and when. SERIALIZABLE transactions, `FOR UPDATE SKIP LOCKED` claims with a lease, a
//! wake-up counter; nothing else (no advisory locks), like `checkout::flows`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use waybill_schemas::{EventEnvelope, OrderId};

use crate::work_list::WorkList;

pub use crate::work_list::{Claimed, Release};

/// The fulfillment flows' work list.
const FLOWS: WorkList = WorkList::new("fulfillment_flows");

/// How many flows are due at `now` (the fulfillment worker's backlog).
pub async fn due_count(pool: &PgPool, now: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    FLOWS.due_count(pool, now).await
}

/// Starts (or wakes) the fulfillment flow of every order confirmed in `events`. Called in the
/// transaction that appends them.
pub async fn start_confirmed(
    conn: &mut PgConnection,
    events: &[&EventEnvelope],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    // A captured extra charge may be the price difference an exchange's replacement waits for.
    let confirmed: Vec<OrderId> = events
        .iter()
        .filter(|e| e.event_type == "OrderConfirmed" || e.event_type == "ExtraChargeCaptured")
        .filter_map(|e| OrderId::from_stream_id(&e.stream_id))
        .collect();
    wake(conn, &confirmed, now).await
}

/// Makes the flows of `orders` due now, creating missing rows.
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

/// Hands claimed rows back in one statement. A row woken since it was claimed is made due now
/// instead.
pub async fn release(
    pool: &PgPool,
    releases: &[(Claimed, Release)],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    FLOWS.release(pool, releases, now).await
}
