//! A steady flow of orders for the crash and failover tests, and what it must leave behind:
//! [`produce`] places orders (every `cancel_every`-th one cancelled at once) until told to stop
//! ([`produce_listed`] also lists them as they are placed),
//! and [`assert_views_equal_the_log`] checks that each order's tracking view holds each of its
//! versions exactly once and ends in the right status.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::api::Api;
use crate::env::TestEnv;
use crate::orders::{sample_cancel, sample_order};
use crate::poll::eventually;

/// An order the producer placed, and how many events it should end with.
#[derive(Debug, Clone)]
pub struct Produced {
    pub order_id: String,
    pub versions: i64,
}

/// How a producer places orders.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Channel references are `<label>-<worker>-<n>`.
    pub label: &'static str,
    /// Every this many orders one is cancelled right after placement.
    pub cancel_every: usize,
    /// Pause after each order (zero: as fast as the API answers).
    pub pause: Duration,
}

/// Places orders until `stop` is set (at most 2,000).
pub async fn produce(api: Api, flow: Flow, worker: usize, stop: Arc<AtomicBool>) -> Vec<Produced> {
    produce_listed(api, flow, worker, stop, Arc::default()).await
}

/// [`produce`], adding each order's id to `listed` as soon as it is placed (and cancelled, if
/// it is one of those), for readers that watch the orders while they flow.
pub async fn produce_listed(
    api: Api,
    flow: Flow,
    worker: usize,
    stop: Arc<AtomicBool>,
    listed: Arc<Mutex<Vec<String>>>,
) -> Vec<Produced> {
    let mut produced = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && n < 2000 {
        n += 1;
        let reference = format!("{}-{worker}-{n}", flow.label);
        let response = api
            .place_order(&format!("{reference}-place"), &sample_order(&reference))
            .await;
        assert_eq!(response.status, 201, "{}", response.describe());
        let order_id = response.json()["order_id"]
            .as_str()
            .expect("order_id")
            .to_owned();
        let mut versions = 1;
        if n % flow.cancel_every == 0 {
            let cancelled = api
                .cancel_order(
                    &order_id,
                    &format!("{reference}-cancel"),
                    &sample_cancel("out_of_stock"),
                )
                .await;
            assert_eq!(cancelled.status, 200, "{}", cancelled.describe());
            versions = 2;
        }
        listed.lock().expect("lock").push(order_id.clone());
        produced.push(Produced { order_id, versions });
        if !flow.pause.is_zero() {
            tokio::time::sleep(flow.pause).await;
        }
    }
    produced
}

/// Every order's tracking view, waited for up to `deadline` each, is at its last version,
/// lists each version once in its timeline, and is cancelled or placed as its events say.
pub async fn assert_views_equal_the_log(env: &TestEnv, produced: &[Produced], deadline: Duration) {
    for order in produced {
        let view = eventually(
            &format!("view of {} at version {}", order.order_id, order.versions),
            deadline,
            || async {
                match env.tracking_hash(&order.order_id).await {
                    Some((version, view)) if version >= order.versions => Ok(view),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        assert_eq!(view["version"], order.versions, "{view}");
        let versions: Vec<i64> = view["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .filter_map(|entry| entry["version"].as_i64())
            .collect();
        let expected: Vec<i64> = (1..=order.versions).collect();
        assert_eq!(versions, expected, "timeline of {}: {view}", order.order_id);
        let status = if order.versions == 2 {
            "cancelled"
        } else {
            "placed"
        };
        assert_eq!(view["status"], status, "{view}");
    }
}
