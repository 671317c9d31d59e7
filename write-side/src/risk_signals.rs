//! The velocity side of risk scoring: the `risk_signals` table (migration
//! `0003_risk_signals.sql`) records which identifiers (email, card token, IP) each order used,
//! and counts how many orders used each within a window, so [`crate::domain::risk::assess`]
//! can score "4 orders from this email in the last hour".
//!
//! A whole batch of orders is recorded and counted in ONE serializable transaction (retried on
//! 40001). Recording is idempotent: the primary key `(signal, order_id)` keeps the first row, so
//! a process manager that reruns a step after a crash does not count the order twice. Counts
//! include the order itself, even when its row was recorded before the window started.
//!
//! The window count is a range scan of `(signal, recorded_at)`; [`purge_before`] keeps the
//! table to the longest window the rules use.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::events::{OrderPlaced, PaymentMethod};
use waybill_schemas::OrderId;

use crate::domain::risk::{RiskSignals, MAX_COUNTED};
use crate::event_store::retry;

/// Rows deleted per statement by [`purge_before`].
const PURGE_BATCH: i64 = 10_000;

/// The identifiers of `order` that velocity rules count: `email:<email>`, then `card:<token>`
/// and `ip:<address>` when the order has them.
pub fn signals_of(order: &OrderPlaced) -> Vec<String> {
    let mut signals = vec![format!("email:{}", order.customer.email.as_str())];
    if let Some(PaymentMethod::Card { token }) = &order.payment {
        signals.push(format!("card:{token}"));
    }
    if let Some(ip) = order.risk_context.as_ref().and_then(|c| c.ip.as_deref()) {
        signals.push(format!("ip:{ip}"));
    }
    signals
}

/// Records each order's signals (at `now`) and returns, per order, how many orders used each of
/// its signals within `window` before `now`, in the order the signals were given.
///
/// An order counts itself, the orders recorded by earlier calls within the window, and the
/// orders before it in `orders` (so the first of five orders from one email in a batch sees 1,
/// the fifth 5). An order given twice counts once. Counts stop at [`MAX_COUNTED`], so a hot
/// identifier (one sandbox card for a whole benchmark) costs a bounded index scan.
pub async fn record_and_count(
    pool: &PgPool,
    orders: &[(OrderId, Vec<String>)],
    window: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<HashMap<OrderId, Vec<u32>>, sqlx::Error> {
    let mut signals = Vec::new();
    let mut signal_orders = Vec::new();
    let mut batch_ids: Vec<Uuid> = orders.iter().map(|(id, _)| id.as_uuid()).collect();
    batch_ids.sort_unstable();
    batch_ids.dedup();
    for (order_id, order_signals) in orders {
        for signal in order_signals {
            signals.push(signal.clone());
            signal_orders.push(order_id.as_uuid());
        }
    }
    let cutoff = now - window;
    let earlier: Vec<(String, i64)> = if signals.is_empty() {
        Vec::new()
    } else {
        retry::serializable(|| {
            let (signals, signal_orders, batch_ids) = (&signals, &signal_orders, &batch_ids);
            async move {
                let mut tx = retry::begin(pool).await?;
                sqlx::query(
                    "INSERT INTO risk_signals (signal, order_id, recorded_at)
                     SELECT s, o, $3 FROM UNNEST($1::text[], $2::uuid[]) AS t(s, o)
                     ON CONFLICT (signal, order_id) DO NOTHING",
                )
                .bind(signals)
                .bind(signal_orders)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let rows = sqlx::query_as(
                    "SELECT t.s, (SELECT count(*) FROM (
                                      SELECT 1 FROM risk_signals r
                                       WHERE r.signal = t.s AND r.recorded_at >= $2
                                         AND r.order_id <> ALL($3::uuid[])
                                       LIMIT $4) AS capped)
                     FROM (SELECT DISTINCT s FROM UNNEST($1::text[]) AS u(s)) AS t",
                )
                .bind(signals)
                .bind(cutoff)
                .bind(batch_ids)
                .bind(i64::from(MAX_COUNTED))
                .fetch_all(&mut *tx)
                .await?;
                retry::commit(tx).await?;
                Ok(rows)
            }
        })
        .await?
    };
    let mut seen: HashMap<&str, u32> = earlier
        .iter()
        .map(|(s, n)| (s.as_str(), u32::try_from(*n).unwrap_or(u32::MAX)))
        .collect();
    let mut counts = HashMap::with_capacity(orders.len());
    for (order_id, order_signals) in orders {
        if counts.contains_key(order_id) {
            continue;
        }
        let per_signal = order_signals
            .iter()
            .map(|signal| {
                let n = seen.entry(signal.as_str()).or_insert(0);
                *n = n.saturating_add(1);
                (*n).min(MAX_COUNTED)
            })
            .collect();
        counts.insert(*order_id, per_signal);
    }
    Ok(counts)
}

/// [`record_and_count`] for placed orders, shaped for [`crate::domain::risk::assess`].
pub async fn record_orders(
    pool: &PgPool,
    orders: &[&OrderPlaced],
    window: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<HashMap<OrderId, RiskSignals>, sqlx::Error> {
    let batch: Vec<(OrderId, Vec<String>)> =
        orders.iter().map(|o| (o.order_id, signals_of(o))).collect();
    let counts = record_and_count(pool, &batch, window, now).await?;
    Ok(batch
        .iter()
        .map(|(order_id, signals)| {
            let mut out = RiskSignals::default();
            let found = counts.get(order_id).map(Vec::as_slice).unwrap_or_default();
            for (signal, count) in signals.iter().zip(found) {
                let slot = match signal.split_once(':').map(|(kind, _)| kind) {
                    Some("email") => &mut out.orders_by_email,
                    Some("card") => &mut out.orders_by_card,
                    Some("ip") => &mut out.orders_by_ip,
                    _ => continue,
                };
                *slot = *count;
            }
            (*order_id, out)
        })
        .collect())
}

/// Deletes every signal of `orders` (an erasure: the identifiers are the customer's email and
/// IP), in the caller's transaction. Their velocity no longer counts towards later orders.
pub async fn forget_orders(
    conn: &mut sqlx::PgConnection,
    orders: &[Uuid],
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM risk_signals WHERE order_id = ANY($1)")
            .bind(orders)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Deletes signals recorded before `cutoff` (older than the longest window), in batches;
/// returns how many rows went.
pub async fn purge_before(pool: &PgPool, cutoff: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    loop {
        let n = retry::serializable(|| async move {
            let mut tx = retry::begin(pool).await?;
            let done = sqlx::query(
                "DELETE FROM risk_signals WHERE (signal, order_id) IN (
                     SELECT signal, order_id FROM risk_signals WHERE recorded_at < $1 LIMIT $2)",
            )
            .bind(cutoff)
            .bind(PURGE_BATCH)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            retry::commit(tx).await?;
            Ok(done)
        })
        .await?;
        deleted += n;
        if n < PURGE_BATCH.unsigned_abs() {
            return Ok(deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid time")
            + chrono::Duration::minutes(minutes)
    }

    fn placed(edit: impl FnOnce(&mut serde_json::Value)) -> OrderPlaced {
        let mut body = crate::testing::order_body("SIGNALS-1");
        edit(&mut body);
        crate::testing::order_placed(&body)
    }

    fn hour() -> chrono::Duration {
        chrono::Duration::hours(1)
    }

    fn order(signals: &[&str]) -> (OrderId, Vec<String>) {
        (
            OrderId::new_v7(),
            signals.iter().map(|s| (*s).to_owned()).collect(),
        )
    }

    #[tokio::test]
    async fn counts_cover_the_window_and_include_the_order_itself() {
        let db = TestDatabase::create("risk_signals").await;
        let a = order(&["email:ada@example.com", "ip:203.0.113.7"]);
        let b = order(&["email:ada@example.com", "card:tok_1"]);
        let c = order(&["email:ada@example.com"]);
        let first = record_and_count(&db.pool, std::slice::from_ref(&a), hour(), at(0))
            .await
            .expect("record");
        assert_eq!(first[&a.0], vec![1, 1]);
        let second = record_and_count(&db.pool, std::slice::from_ref(&b), hour(), at(10))
            .await
            .expect("record");
        assert_eq!(second[&b.0], vec![2, 1]);
        // Seventy minutes after the first: it has left the window, the second has not.
        let third = record_and_count(&db.pool, std::slice::from_ref(&c), hour(), at(70))
            .await
            .expect("record");
        assert_eq!(third[&c.0], vec![2]);
        db.drop().await;
    }

    #[tokio::test]
    async fn recording_an_order_again_does_not_count_it_twice() {
        let db = TestDatabase::create("risk_signals").await;
        let a = order(&["email:ada@example.com"]);
        let b = order(&["email:ada@example.com"]);
        record_and_count(&db.pool, std::slice::from_ref(&a), hour(), at(0))
            .await
            .expect("record");
        let again = record_and_count(&db.pool, &[a.clone(), a.clone()], hour(), at(5))
            .await
            .expect("rerun");
        assert_eq!(again[&a.0], vec![1]);
        // Rerun after its window: it still counts itself, once.
        let late = record_and_count(&db.pool, std::slice::from_ref(&a), hour(), at(120))
            .await
            .expect("late rerun");
        assert_eq!(late[&a.0], vec![1]);
        let other = record_and_count(&db.pool, std::slice::from_ref(&b), hour(), at(6))
            .await
            .expect("record");
        assert_eq!(other[&b.0], vec![2]);
        assert_eq!(db.count("risk_signals").await, 2);
        db.drop().await;
    }

    #[tokio::test]
    async fn a_batch_counts_in_order_in_one_call() {
        let db = TestDatabase::create("risk_signals").await;
        let earlier = order(&["email:bob@example.com"]);
        record_and_count(&db.pool, &[earlier], hour(), at(0))
            .await
            .expect("record");
        let batch: Vec<(OrderId, Vec<String>)> = (0..100)
            .map(|i| {
                let email = if i % 2 == 0 {
                    "email:bob@example.com".to_owned()
                } else {
                    format!("email:c{i}@example.com")
                };
                (OrderId::new_v7(), vec![email, "ip:203.0.113.9".to_owned()])
            })
            .collect();
        let counts = record_and_count(&db.pool, &batch, hour(), at(1))
            .await
            .expect("batch");
        assert_eq!(counts.len(), 100);
        // The 1st bob order of the batch follows the earlier one; the 50th bob order sees 51.
        assert_eq!(counts[&batch[0].0], vec![2, 1]);
        assert_eq!(counts[&batch[98].0], vec![51, 99]);
        assert_eq!(counts[&batch[99].0], vec![1, 100]);
        assert_eq!(db.count("risk_signals").await, 1 + 200);
        db.drop().await;
    }

    #[tokio::test]
    async fn counts_stop_at_the_cap() {
        let db = TestDatabase::create("risk_signals").await;
        let n = usize::try_from(MAX_COUNTED).expect("small") + 5;
        let batch: Vec<(OrderId, Vec<String>)> = (0..n).map(|_| order(&["card:tok_hot"])).collect();
        record_and_count(&db.pool, &batch, hour(), at(0))
            .await
            .expect("record");
        let next = order(&["card:tok_hot"]);
        let counts = record_and_count(&db.pool, std::slice::from_ref(&next), hour(), at(1))
            .await
            .expect("record");
        assert_eq!(counts[&next.0], vec![MAX_COUNTED]);
        db.drop().await;
    }

    #[tokio::test]
    async fn placed_orders_get_typed_signals_and_old_rows_are_purged() {
        let db = TestDatabase::create("risk_signals").await;
        let first = placed(|_| {});
        let second = placed(|b| b["risk_context"] = serde_json::Value::Null);
        assert_eq!(
            signals_of(&first),
            vec![
                "email:ada@example.com",
                "card:tok_4242424242424242",
                "ip:203.0.113.7"
            ]
        );
        let signals = record_orders(&db.pool, &[&first, &second], hour(), at(0))
            .await
            .expect("record");
        assert_eq!(
            signals[&second.order_id],
            RiskSignals {
                orders_by_email: 2,
                orders_by_card: 2,
                orders_by_ip: 0
            }
        );
        let later = placed(|_| {});
        record_orders(&db.pool, &[&later], hour(), at(30))
            .await
            .expect("record");
        assert_eq!(purge_before(&db.pool, at(10)).await.expect("purge"), 5);
        assert_eq!(db.count("risk_signals").await, 3);
        db.drop().await;
    }
}
