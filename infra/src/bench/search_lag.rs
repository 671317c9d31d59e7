//! Search view lag: for every order the command API accepted, the time from the 201 response to
//! its document being in the search index (the process's own index handle, which sees each
//! commit at once). Sits in front of the tracking-lag sampler and passes every order on to it.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use waybill_projectors::views::search::{SearchBackend, SearchIndex};

use super::lag::{Accepted, LagResult};

/// How often outstanding orders are looked up; the lag's resolution.
const POLL: Duration = Duration::from_millis(25);
/// How long after the load ends an order may take to appear before it counts as missing.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);
/// Orders looked up per `get`.
const CHUNK: usize = 1_000;

/// Returns the sender the load writes accepted orders to; each is forwarded to `next`.
pub fn spawn(
    index: SearchBackend,
    next: mpsc::UnboundedSender<Accepted>,
) -> (mpsc::UnboundedSender<Accepted>, JoinHandle<LagResult>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, tokio::spawn(sample(index, rx, next)))
}

async fn sample(
    index: SearchBackend,
    mut rx: mpsc::UnboundedReceiver<Accepted>,
    next: mpsc::UnboundedSender<Accepted>,
) -> LagResult {
    let mut result = LagResult {
        lag_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"),
        samples: Vec::new(),
        missing: 0,
        errors: 0,
    };
    let mut next = Some(next);
    let mut pending: Vec<(String, Instant)> = Vec::new();
    let mut closed_at: Option<Instant> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(accepted) => {
                    pending.push((accepted.order_id.to_string(), accepted.at));
                    if let Some(next) = &next {
                        let _ = next.send(accepted);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    // Closing ours closes the tracking sampler's too.
                    next = None;
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
        for chunk in pending.chunks(CHUNK) {
            let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
            let found = index.get(&ids).await;
            let now = Instant::now();
            match found {
                Ok(documents) => {
                    for ((id, at), document) in chunk.iter().zip(documents) {
                        if document.is_some() {
                            let lag = now.duration_since(*at);
                            result
                                .lag_us
                                .saturating_record(lag.as_micros().max(1) as u64);
                            result.samples.push((*at, lag));
                        } else {
                            still.push((id.clone(), *at));
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
