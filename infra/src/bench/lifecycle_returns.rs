//! The returning customers of `waybill bench lifecycle`: a share of the orders (`--return-share`,
//! picked by order number so each run returns the same ones) sends one unit of its first line
//! back once the order has closed. The driver opens the return over the command API, then acts
//! as the receiving node through the logistics sandbox (received, then inspected: accepted and
//! resellable), so the fulfillment flow restocks the unit and the checkout flow refunds it. A
//! return is complete at its `PaymentRefunded`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::watch;

use super::lifecycle::RunOrders;
use super::report::Percentiles;
use crate::client::ApiClient;

/// Requests the returning customers have in flight at once.
const CONCURRENCY: usize = 32;

/// What the returns of a run came to.
#[derive(Debug, Serialize)]
pub struct ReturnsRun {
    /// Orders picked to return a unit.
    pub expected: u64,
    /// Returns the command API accepted.
    pub opened: u64,
    /// Returns whose refund reached the card (`PaymentRefunded`).
    pub refunded: u64,
    /// From the return's request to its refund.
    pub requested_to_refunded_ms: Percentiles,
}

impl ReturnsRun {
    /// Before the returns are measured.
    pub fn none() -> Self {
        Self {
            expected: 0,
            opened: 0,
            refunded: 0,
            requested_to_refunded_ms: Percentiles {
                p50: 0.0,
                p95: 0.0,
                p99: 0.0,
                max: 0.0,
                mean: 0.0,
            },
        }
    }
}

/// Whether order number `n` is among the returned share: exactly `share` of any run of orders.
pub fn returns_order(n: u64, share: f64) -> bool {
    let share = share.clamp(0.0, 1.0);
    ((n + 1) as f64 * share).floor() > (n as f64 * share).floor()
}

/// How many of the first `orders` order numbers return a unit.
pub fn expected_returns(orders: u64, share: f64) -> u64 {
    (0..orders).filter(|&n| returns_order(n, share)).count() as u64
}

/// A closed order's stream, and its placement's reference, order id and first line's SKU.
type ClosedPlacement = (String, Option<String>, Option<String>, Option<String>);

/// One closed order to send a unit back for.
struct Candidate {
    order_id: String,
    sku: String,
}

/// Opens returns for the picked orders as they close and drives them through the node, until
/// told to stop. Answers how many returns were opened.
pub async fn act_as_returning_customers(
    pool: PgPool,
    client: ApiClient,
    sandbox: String,
    share: f64,
    orders: Arc<RunOrders>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut opened = 0u64;
    while !*stop.borrow() {
        // Only the orders not looked at yet, and only the three fields needed: the bench's own
        // reads stay small beside the pipeline's.
        let unseen: Vec<String> = orders
            .streams()
            .into_iter()
            .filter(|s| !seen.contains(s))
            .collect();
        let rows: Vec<ClosedPlacement> = sqlx::query_as(
            "SELECT c.stream_id, p.payload->>'channel_order_ref', p.payload->>'order_id', \
             p.payload#>>'{lines,0,sku}' FROM events c \
             JOIN events p ON p.stream_id = c.stream_id AND p.event_type = 'OrderPlaced' \
             WHERE c.event_type = 'OrderClosed' AND c.stream_id = ANY($1)",
        )
        .bind(&unseen)
        .fetch_all(&pool)
        .await?;
        let mut fresh: Vec<Candidate> = Vec::new();
        for (stream_id, reference, order_id, sku) in rows {
            if !seen.insert(stream_id) {
                continue;
            }
            let number = reference
                .as_deref()
                .and_then(|r| r.rsplit('-').next())
                .and_then(|n| n.parse::<u64>().ok());
            let (Some(n), Some(order_id), Some(sku)) = (number, order_id, sku) else {
                continue;
            };
            if returns_order(n, share) {
                fresh.push(Candidate { order_id, sku });
            }
        }
        opened += futures::stream::iter(fresh)
            .map(|c| send_back(&client, &sandbox, c))
            .buffer_unordered(CONCURRENCY)
            .filter(|sent| futures::future::ready(*sent))
            .count()
            .await as u64;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(opened)
}

/// Opens the return of one unit of line 1 and reports it received and inspected. False when
/// the command API did not take the return.
async fn send_back(client: &ApiClient, sandbox: &str, c: Candidate) -> bool {
    let body = json!({
        "lines": [{"line_no": 1, "quantity": 1, "reason": "wrong_size"}],
        "resolution": "refund",
    });
    let path = format!("/v1/orders/{}/returns", c.order_id);
    let key = format!("bench-return-{}", c.order_id);
    let Ok(answer) = client.post_command(&path, &body, &key).await else {
        return false;
    };
    let Some(return_id) = answer.body["return_id"].as_str().map(str::to_owned) else {
        tracing::warn!(order_id = %c.order_id, status = %answer.status, body = %answer.body, "bench return refused");
        return false;
    };
    let url = format!("{sandbox}/sandbox/returns/{return_id}/report");
    let inspected = json!({"type": "inspected", "lines": [
        {"line_no": 1, "sku": c.sku, "accepted": 1, "rejected": 0, "resellable": 1}
    ]});
    for report in [json!({"type": "received"}), inspected] {
        // A report the order could not take yet (its stream moved) is sent again.
        for _ in 0..20 {
            let taken = client
                .post_json_plain(&url, &report)
                .await
                .is_ok_and(|a: Value| a["waybill_status"] == json!(200));
            if taken {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    true
}

/// Returns of the run's orders refunded so far (for the driver's completion check).
pub async fn refunded(pool: &PgPool, orders: &RunOrders) -> anyhow::Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'PaymentRefunded' AND stream_id = ANY($1)",
    )
    .bind(orders.streams())
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// When one order's return was requested and when it was refunded, if it was.
type ReturnTimes = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Reads the returns of a finished run from the event store.
pub async fn measure(
    pool: &PgPool,
    orders: &RunOrders,
    expected: u64,
    opened: u64,
) -> anyhow::Result<ReturnsRun> {
    let rows: Vec<ReturnTimes> = sqlx::query_as(
        "SELECT min(recorded_at) FILTER (WHERE event_type = 'ReturnRequested'), \
                min(recorded_at) FILTER (WHERE event_type = 'PaymentRefunded') \
         FROM events WHERE event_type IN ('ReturnRequested', 'PaymentRefunded') \
           AND stream_id = ANY($1) \
         GROUP BY stream_id",
    )
    .bind(orders.streams())
    .fetch_all(pool)
    .await?;
    let mut latency = Histogram::<u64>::new(3)?;
    let mut refunded = 0u64;
    for (requested, paid) in rows {
        if let (Some(a), Some(b)) = (requested, paid) {
            refunded += 1;
            let micros = (b - a).num_microseconds().unwrap_or(0).max(0);
            let _ = latency.record(u64::try_from(micros).unwrap_or(0));
        }
    }
    Ok(ReturnsRun {
        expected,
        opened,
        refunded,
        requested_to_refunded_ms: Percentiles::ms_of(&latency),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_returned_share_is_exact_and_the_same_orders_each_time() {
        assert_eq!(expected_returns(2_000, 0.2), 400);
        assert_eq!(expected_returns(10, 0.0), 0);
        assert_eq!(expected_returns(10, 1.0), 10);
        assert_eq!(expected_returns(7, 0.5), 3);
        let picked: Vec<u64> = (0..10).filter(|&n| returns_order(n, 0.2)).collect();
        assert_eq!(picked, vec![4, 9]);
    }
}
