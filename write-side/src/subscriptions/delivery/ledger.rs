//! The delivery workers' side of the subscription tables: lease due subscriptions
//! (`FOR UPDATE SKIP LOCKED`, so several workers share them and a dead worker's leases run
//! out), read their held events, and write a round's outcome in one transaction that only
//! lands while this worker still holds the lease.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::plan::{Held, Outcome};
use crate::event_store::retry;

/// A leased subscription, as a round needs it.
#[derive(Debug, Clone)]
pub struct Leased {
    pub subscription_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub sealed_secret: Vec<u8>,
    pub position: i64,
    pub failures: i32,
}

type LeasedRow = (Uuid, String, Vec<String>, Vec<u8>, i64, i32);

/// Leases up to `limit` active subscriptions that have work (feed events after their
/// position, or a held event due) and are not leased by a live worker.
pub async fn claim(
    pool: &PgPool,
    owner: Uuid,
    limit: i64,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Leased>, sqlx::Error> {
    let lease_ms = lease.as_millis() as i64;
    let rows: Vec<LeasedRow> = retry::serializable(|| {
        sqlx::query_as(
            "UPDATE webhook_subscriptions s \
             SET leased_until = now() + make_interval(secs => $3::float8 / 1000), lease_owner = $1 \
             WHERE s.subscription_id IN ( \
                 SELECT c.subscription_id FROM webhook_subscriptions c \
                 WHERE c.status = 'active' AND c.retry_at <= $4 \
                   AND (c.leased_until IS NULL OR c.leased_until < now()) \
                   AND (c.position < (SELECT position FROM event_feed_head WHERE id = 1) \
                        OR EXISTS (SELECT 1 FROM webhook_retries r \
                                   WHERE r.subscription_id = c.subscription_id \
                                     AND r.next_attempt_at <= $4)) \
                 ORDER BY c.retry_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING s.subscription_id, s.url, s.event_types, s.sealed_secret, s.position, \
                       s.failures",
        )
        .bind(owner)
        .bind(limit)
        .bind(lease_ms)
        .bind(now)
        .fetch_all(pool)
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Leased {
            subscription_id: r.0,
            url: r.1,
            event_types: r.2,
            sealed_secret: r.3,
            position: r.4,
            failures: r.5,
        })
        .collect())
}

/// Hands a lease back so another round (of any worker) may start at once.
pub async fn release(pool: &PgPool, id: Uuid, owner: Uuid) -> Result<(), sqlx::Error> {
    retry::serializable(|| {
        sqlx::query(
            "UPDATE webhook_subscriptions SET leased_until = NULL, lease_owner = NULL \
             WHERE subscription_id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .execute(pool)
    })
    .await?;
    Ok(())
}

type HeldRow = (i64, String, i32, DateTime<Utc>, Option<Uuid>);

/// The subscription's held events, in feed order.
pub async fn held(pool: &PgPool, id: Uuid, limit: i64) -> Result<Vec<Held>, sqlx::Error> {
    let rows: Vec<HeldRow> = retry::serializable(|| {
        sqlx::query_as(
            "SELECT position, stream_id, attempts, next_attempt_at, dead_letter_id \
             FROM webhook_retries WHERE subscription_id = $1 ORDER BY position LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(pool)
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Held {
            position: r.0,
            stream_id: r.1,
            attempts: r.2,
            next_attempt_at: r.3,
            dead_letter_id: r.4,
        })
        .collect())
}

/// What a round writes besides the [`Outcome`].
#[derive(Debug, Clone)]
pub struct RoundWrite {
    /// The subscription's new position.
    pub position: i64,
    /// Event id and type of each dead row's position.
    pub dead_events: Vec<(i64, Uuid, String)>,
    /// Keep the lease for another round (true) or hand it back.
    pub keep_lease: bool,
    pub lease: Duration,
    /// The next round not before (the receiver looked down), with the failure count.
    pub retry_at: DateTime<Utc>,
    pub failures: i32,
    pub last_error: Option<String>,
    pub now: DateTime<Utc>,
}

/// Writes a round's outcome if `owner` still holds the lease; `false` when it does not (the
/// lease ran out and another worker took it, or the subscription was removed): nothing is
/// written then and the events delivered in this round will be delivered again.
pub async fn commit(
    pool: &PgPool,
    id: Uuid,
    owner: Uuid,
    outcome: &Outcome,
    write: &RoundWrite,
) -> Result<bool, sqlx::Error> {
    retry::serializable_idempotent(|| async {
        let mut tx = retry::begin(pool).await?;
        let lease_ms = if write.keep_lease {
            Some(write.lease.as_millis() as i64)
        } else {
            None
        };
        let updated = sqlx::query(
            "UPDATE webhook_subscriptions SET position = GREATEST(position, $3), \
                 delivered = delivered + $4, \
                 last_delivered_at = CASE WHEN $4 > 0 THEN $5 ELSE last_delivered_at END, \
                 failures = $6, retry_at = $7, \
                 last_error = COALESCE($8, last_error), \
                 leased_until = CASE WHEN $9::bigint IS NULL THEN NULL \
                     ELSE now() + make_interval(secs => $9::float8 / 1000) END, \
                 lease_owner = CASE WHEN $9::bigint IS NULL THEN NULL ELSE lease_owner END \
             WHERE subscription_id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(write.position)
        .bind(outcome.delivered)
        .bind(write.now)
        .bind(write.failures)
        .bind(write.retry_at)
        .bind(&write.last_error)
        .bind(lease_ms)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let done: Vec<i64> = outcome
            .delivered_held
            .iter()
            .map(|h| h.position)
            .chain(outcome.dead.iter().map(|d| d.position))
            .collect();
        if !done.is_empty() {
            sqlx::query(
                "DELETE FROM webhook_retries WHERE subscription_id = $1 AND position = ANY($2)",
            )
            .bind(id)
            .bind(&done)
            .execute(&mut *tx)
            .await?;
        }
        let redelivered: Vec<Uuid> = outcome
            .delivered_held
            .iter()
            .filter_map(|h| h.dead_letter_id)
            .collect();
        if !redelivered.is_empty() {
            sqlx::query(
                "UPDATE webhook_dead_letters SET status = 'redelivered', redelivered_at = $2 \
                 WHERE dead_letter_id = ANY($1)",
            )
            .bind(&redelivered)
            .bind(write.now)
            .execute(&mut *tx)
            .await?;
        }
        if !outcome.hold.is_empty() {
            let h = &outcome.hold;
            sqlx::query(
                "INSERT INTO webhook_retries (subscription_id, position, stream_id, attempts, \
                     next_attempt_at, last_error, dead_letter_id) \
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::int[], \
                     $5::timestamptz[], $6::text[], $7::uuid[]) \
                 ON CONFLICT (subscription_id, position) DO UPDATE SET \
                     attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, \
                     last_error = excluded.last_error \
                 WHERE excluded.attempts > 0",
            )
            .bind(id)
            .bind(h.iter().map(|r| r.position).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.stream_id.as_str()).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.attempts).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
            .bind(h.iter().map(|r| r.last_error.clone()).collect::<Vec<_>>())
            .bind(
                h.iter()
                    .map(|r| r.dead_letter_id)
                    .collect::<Vec<Option<Uuid>>>(),
            )
            .execute(&mut *tx)
            .await?;
            // An order's later held events wait as long as its first one.
            let heads: Vec<&super::plan::HoldRow> = h.iter().filter(|r| r.attempts > 0).collect();
            if !heads.is_empty() {
                sqlx::query(
                    "UPDATE webhook_retries r SET next_attempt_at = x.t \
                     FROM UNNEST($2::text[], $3::bigint[], $4::timestamptz[]) AS x(s, p, t) \
                     WHERE r.subscription_id = $1 AND r.stream_id = x.s AND r.position > x.p",
                )
                .bind(id)
                .bind(
                    heads
                        .iter()
                        .map(|r| r.stream_id.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(heads.iter().map(|r| r.position).collect::<Vec<_>>())
                .bind(heads.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
            }
        }
        for dead in &outcome.dead {
            match dead.dead_letter_id {
                Some(dead_letter_id) => {
                    sqlx::query(
                        "UPDATE webhook_dead_letters SET status = 'dead', attempts = $2, \
                             last_error = $3, dead_at = $4 WHERE dead_letter_id = $1",
                    )
                    .bind(dead_letter_id)
                    .bind(dead.attempts)
                    .bind(&dead.last_error)
                    .bind(write.now)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    let (event_id, event_type) = write
                        .dead_events
                        .iter()
                        .find(|(p, _, _)| *p == dead.position)
                        .map(|(_, id, t)| (*id, t.clone()))
                        .unwrap_or((Uuid::nil(), String::new()));
                    sqlx::query(
                        "INSERT INTO webhook_dead_letters (dead_letter_id, subscription_id, \
                             position, event_id, stream_id, event_type, attempts, last_error, \
                             status, dead_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'dead', $9) \
                         ON CONFLICT (subscription_id, position) DO UPDATE SET status = 'dead', \
                             attempts = excluded.attempts, last_error = excluded.last_error, \
                             dead_at = excluded.dead_at",
                    )
                    .bind(Uuid::now_v7())
                    .bind(id)
                    .bind(dead.position)
                    .bind(event_id)
                    .bind(&dead.stream_id)
                    .bind(event_type)
                    .bind(dead.attempts)
                    .bind(&dead.last_error)
                    .bind(write.now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        retry::commit(tx).await?;
        Ok(true)
    })
    .await
}
