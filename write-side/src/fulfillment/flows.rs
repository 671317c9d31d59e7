//! The `fulfillment_flows` table: which orders the fulfillment process manager must look at,
//! and when. SERIALIZABLE transactions, `FOR UPDATE SKIP LOCKED` claims with a lease, a
//! wake-up counter; nothing else (no advisory locks), like `checkout::flows`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use waybill_schemas::{EventEnvelope, OrderId};

use crate::event_store::retry;

/// A row a worker claimed: the order and the wake-up count it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub order_id: OrderId,
    pub wakeups: i64,
    pub attempts: i32,
}

/// What a worker does with a claimed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    Park {
        due_at: DateTime<Utc>,
        stage: &'static str,
    },
    Retry {
        due_at: DateTime<Utc>,
        error: String,
    },
    Finish,
}

/// Starts (or wakes) the fulfillment flow of every order confirmed in `events`. Called in the
/// transaction that appends them.
pub async fn start_confirmed(
    conn: &mut PgConnection,
    events: &[&EventEnvelope],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let confirmed: Vec<OrderId> = events
        .iter()
        .filter(|e| e.event_type == "OrderConfirmed")
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
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = orders.iter().map(OrderId::as_uuid).collect();
    sqlx::query(
        "INSERT INTO fulfillment_flows (order_id, due_at, created_at, updated_at) \
         SELECT id, $2, $2, $2 FROM UNNEST($1::uuid[]) AS x(id) \
         ON CONFLICT (order_id) DO UPDATE \
         SET due_at = LEAST(fulfillment_flows.due_at, EXCLUDED.due_at), \
             wakeups = fulfillment_flows.wakeups + 1, stage = 'run', \
             updated_at = EXCLUDED.updated_at",
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
            "UPDATE fulfillment_flows f SET due_at = $2, attempts = f.attempts + 1 \
             FROM (SELECT order_id FROM fulfillment_flows WHERE due_at <= $1 \
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

/// Hands a claimed row back. A row woken since it was claimed is made due now instead.
pub async fn release(
    pool: &PgPool,
    claimed: Claimed,
    release: &Release,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let id = claimed.order_id.as_uuid();
    retry::serializable(|| async {
        let mut tx = retry::begin(pool).await?;
        match release {
            Release::Finish => {
                sqlx::query("DELETE FROM fulfillment_flows WHERE order_id = $1 AND wakeups = $2")
                    .bind(id)
                    .bind(claimed.wakeups)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE fulfillment_flows SET due_at = $2, stage = 'run', updated_at = $2 \
                     WHERE order_id = $1",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Release::Park { .. } | Release::Retry { .. } => {
                let (due, stage, error) = match release {
                    Release::Park { due_at, stage } => (*due_at, *stage, None),
                    Release::Retry { due_at, error } => (*due_at, "retry", Some(error.clone())),
                    Release::Finish => (now, "run", None),
                };
                sqlx::query(
                    "UPDATE fulfillment_flows SET \
                       due_at = CASE WHEN wakeups = $2 THEN $3 ELSE $6 END, \
                       stage = CASE WHEN wakeups = $2 THEN $4 ELSE 'run' END, \
                       attempts = CASE WHEN $5::text IS NULL THEN 0 ELSE attempts END, \
                       last_error = $5, updated_at = $6 \
                     WHERE order_id = $1",
                )
                .bind(id)
                .bind(claimed.wakeups)
                .bind(due)
                .bind(stage)
                .bind(error)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await
    })
    .await
}
