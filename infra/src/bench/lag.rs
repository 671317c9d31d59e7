//! Projection lag: for every order the command API accepted, the time from the 201 response to
//! its tracking view existing in Redis. One task polls all outstanding orders with a pipelined
//! `EXISTS` per order every couple of milliseconds, so the measurement costs one round trip per
//! poll however many orders are in flight.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use waybill_projectors::RedisConnection;

/// How often outstanding orders are checked; the lag's resolution.
const POLL: Duration = Duration::from_millis(2);
/// How long after the load ends an order may take to appear before it counts as missing.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);
const PIPELINE_CHUNK: usize = 2_000;

pub struct Accepted {
    pub order_id: uuid::Uuid,
    pub at: Instant,
}

pub struct LagResult {
    /// Lag in microseconds of every order seen.
    pub lag_us: Histogram<u64>,
    /// (when the order was accepted, its lag), for the timeline.
    pub samples: Vec<(Instant, Duration)>,
    /// Orders never seen in Redis within the deadline.
    pub missing: u64,
    pub errors: u64,
}

pub fn spawn(
    redis: RedisConnection,
    prefix: String,
) -> (mpsc::UnboundedSender<Accepted>, JoinHandle<LagResult>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, tokio::spawn(sample(redis, prefix, rx)))
}

async fn sample(
    mut redis: RedisConnection,
    prefix: String,
    mut rx: mpsc::UnboundedReceiver<Accepted>,
) -> LagResult {
    let mut result = LagResult {
        lag_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"),
        samples: Vec::new(),
        missing: 0,
        errors: 0,
    };
    let mut pending: Vec<(String, Instant)> = Vec::new();
    let mut closed_at: Option<Instant> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(accepted) => pending.push((
                    waybill_projectors::views::tracking::keys::view_key(&prefix, accepted.order_id),
                    accepted.at,
                )),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed_at.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
        if let Some(closed) = closed_at {
            if pending.is_empty() {
                break;
            }
            if closed.elapsed() > DRAIN_DEADLINE {
                result.missing = pending.len() as u64;
                break;
            }
        }
        let mut still = Vec::with_capacity(pending.len());
        for chunk in pending.chunks(PIPELINE_CHUNK) {
            let mut pipe = redis::pipe();
            for (key, _) in chunk {
                pipe.cmd("EXISTS").arg(key);
            }
            let seen: Result<Vec<i64>, _> = pipe.query_async(&mut redis).await;
            let now = Instant::now();
            match seen {
                Ok(seen) => {
                    for ((key, at), exists) in chunk.iter().zip(seen) {
                        if exists == 1 {
                            let lag = now.duration_since(*at);
                            result
                                .lag_us
                                .saturating_record(lag.as_micros().max(1) as u64);
                            result.samples.push((*at, lag));
                        } else {
                            still.push((key.clone(), *at));
                        }
                    }
                }
                Err(_) => {
                    result.errors += 1;
                    still.extend(chunk.iter().cloned());
                }
            }
        }
        pending = still;
        tokio::time::sleep(POLL).await;
    }
    result
}
