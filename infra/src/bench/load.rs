//! The load generator: `clients` tasks share one counter and place orders until `orders` have
//! been sent. Request bodies are serialised before the clock starts so the generator spends its
//! CPU on HTTP, not JSON. Every accepted order is handed to the lag sampler.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use super::lag::Accepted;
use crate::client::ApiClient;
use crate::orders::OrderFactory;

/// What the clients saw.
pub struct LoadResult {
    pub started: Instant,
    pub attempted: u64,
    pub accepted: u64,
    pub elapsed: Duration,
    /// Command latency in microseconds (every response, any status).
    pub latency_us: Histogram<u64>,
    /// Responses completed in each second since the start.
    pub per_second: Vec<u64>,
    pub statuses: BTreeMap<String, u64>,
    pub first_error: Option<String>,
}

struct ClientResult {
    latency_us: Histogram<u64>,
    per_second: Vec<u64>,
    statuses: BTreeMap<String, u64>,
    accepted: u64,
    first_error: Option<String>,
}

pub async fn run(
    client: &ApiClient,
    orders: usize,
    clients: usize,
    run: &str,
    lag: mpsc::UnboundedSender<Accepted>,
) -> anyhow::Result<LoadResult> {
    let mut factory = OrderFactory::new(0x5eed, run.to_owned());
    let bodies = (0..orders)
        .map(|n| serde_json::to_vec(&factory.order(n)).map(bytes::Bytes::from))
        .collect::<Result<_, _>>()?;
    let done = Arc::new(AtomicU64::new(0));
    run_bodies(client, bodies, clients, run, lag, done, true).await
}

/// Places the given request `bodies` with `clients` concurrent clients, counting answered
/// requests in `done`; prints a progress line every second when `progress` is set.
pub async fn run_bodies(
    client: &ApiClient,
    bodies: Vec<bytes::Bytes>,
    clients: usize,
    run: &str,
    lag: mpsc::UnboundedSender<Accepted>,
    done: Arc<AtomicU64>,
    progress: bool,
) -> anyhow::Result<LoadResult> {
    let orders = bodies.len();
    let bodies = Arc::new(bodies);
    let url = format!("{}/v1/orders", client.command_base);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();

    let progress = progress.then(|| {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let now = done.load(Ordering::Relaxed);
                eprintln!(
                    "  {:>5.1}s  {now:>8}/{orders} placed  {:>6}/s",
                    started.elapsed().as_secs_f64(),
                    now - last
                );
                last = now;
                if now as usize >= orders {
                    break;
                }
            }
        })
    });

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, bodies, next, done, lag, url, run) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            done.clone(),
            lag.clone(),
            url.clone(),
            run.to_owned(),
        );
        tasks.spawn(async move {
            let mut result = ClientResult {
                latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
                per_second: Vec::new(),
                statuses: BTreeMap::new(),
                accepted: 0,
                first_error: None,
            };
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(n) else { break };
                let sent = Instant::now();
                let outcome = client
                    .post_raw(&url, body.clone(), &format!("bench-{run}-{n}"))
                    .await;
                let received = Instant::now();
                result
                    .latency_us
                    .saturating_record(received.duration_since(sent).as_micros() as u64);
                let second = received.duration_since(started).as_secs() as usize;
                if result.per_second.len() <= second {
                    result.per_second.resize(second + 1, 0);
                }
                result.per_second[second] += 1;
                done.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok((status, body)) => {
                        *result
                            .statuses
                            .entry(status.as_u16().to_string())
                            .or_default() += 1;
                        if status.as_u16() == 201 {
                            result.accepted += 1;
                            if let Some(order_id) = order_id_of(&body) {
                                let _ = lag.send(Accepted {
                                    order_id,
                                    at: received,
                                });
                            }
                        } else if result.first_error.is_none() {
                            result.first_error = Some(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&body)
                                    .chars()
                                    .take(300)
                                    .collect::<String>()
                            ));
                        }
                    }
                    Err(error) => {
                        *result
                            .statuses
                            .entry("transport-error".to_owned())
                            .or_default() += 1;
                        result
                            .first_error
                            .get_or_insert_with(|| format!("{error:#}"));
                    }
                }
            }
            Ok::<_, anyhow::Error>(result)
        });
    }
    drop(lag);

    let mut total = LoadResult {
        started,
        attempted: 0,
        accepted: 0,
        elapsed: Duration::ZERO,
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        per_second: Vec::new(),
        statuses: BTreeMap::new(),
        first_error: None,
    };
    while let Some(joined) = tasks.join_next().await {
        let result = joined.context("a load client panicked")??;
        total.latency_us.add(&result.latency_us)?;
        if total.per_second.len() < result.per_second.len() {
            total.per_second.resize(result.per_second.len(), 0);
        }
        for (i, n) in result.per_second.iter().enumerate() {
            total.per_second[i] += n;
        }
        for (status, n) in result.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        total.accepted += result.accepted;
        if total.first_error.is_none() {
            total.first_error = result.first_error;
        }
    }
    total.elapsed = started.elapsed();
    total.attempted = total.latency_us.len();
    if let Some(progress) = progress {
        progress.abort();
    }
    if let Some(error) = &total.first_error {
        eprintln!("first failed request: {error}");
    }
    Ok(total)
}

fn order_id_of(body: &[u8]) -> Option<uuid::Uuid> {
    #[derive(serde::Deserialize)]
    struct Created {
        order_id: uuid::Uuid,
    }
    serde_json::from_slice::<Created>(body)
        .ok()
        .map(|c| c.order_id)
}
