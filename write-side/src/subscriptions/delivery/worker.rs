//! The worker loop and one round of one subscription.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use super::ledger::{self, Leased, RoundWrite};
use super::plan::{self, Item, LaneResult, RetryPolicy};
use super::sender::{Delivery, Sender};
use crate::subscriptions::feed::{self, FeedEvent};
use crate::subscriptions::seal::SealingKey;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Feed events read per round.
    pub batch: i64,
    /// Orders delivered at once within one subscription's round.
    pub concurrency: usize,
    /// Subscriptions this worker delivers at once.
    pub subscriptions: usize,
    /// A lease not renewed for this long passes to another worker.
    pub lease: Duration,
    /// Pause when nothing is due.
    pub idle_poll: Duration,
    /// One request's bound.
    pub timeout: Duration,
    /// A round stops starting deliveries after this long (well within the lease).
    pub round_budget: Duration,
    /// Failures without a single success after which a round stops (the receiver is down).
    pub breaker: usize,
    pub policy: RetryPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            concurrency: 64,
            subscriptions: 16,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
            round_budget: Duration::from_secs(20),
            breaker: 8,
            policy: RetryPolicy::default(),
        }
    }
}

#[derive(Clone)]
struct Worker {
    pool: PgPool,
    key: SealingKey,
    sender: Sender,
    config: WorkerConfig,
    owner: Uuid,
}

/// Runs the worker until `shutdown` completes; rounds in progress finish first.
pub async fn run(
    pool: PgPool,
    key: SealingKey,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let worker = Worker {
        sender: Sender::new(config.timeout)?,
        pool,
        key,
        config,
        owner: Uuid::now_v7(),
    };
    tracing::info!(worker = %worker.owner, "webhook delivery worker starting");
    tokio::pin!(shutdown);
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let free = worker.config.subscriptions.saturating_sub(running.len());
        let mut claimed = 0;
        if free > 0 {
            match ledger::claim(
                &worker.pool,
                worker.owner,
                free as i64,
                worker.config.lease,
                Utc::now(),
            )
            .await
            {
                Ok(leased) => {
                    claimed = leased.len();
                    for sub in leased {
                        let worker = worker.clone();
                        let span = tracing::info_span!("webhooks.subscription", subscription_id = %sub.subscription_id);
                        running.spawn(async move { worker.deliver(sub).await }.instrument(span));
                    }
                }
                Err(error) => tracing::warn!(error = %error, "claiming subscriptions failed"),
            }
        }
        let pause = if claimed > 0 {
            Duration::from_millis(5)
        } else {
            worker.config.idle_poll
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(pause) => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    while running.join_next().await.is_some() {}
    tracing::info!("webhook delivery worker stopped");
    Ok(())
}

/// How a round ended.
enum RoundEnd {
    /// There is more to do right away.
    More,
    /// Nothing more now (lease handed back).
    Done,
    /// The lease is gone (taken over or the subscription removed).
    Lost,
}

impl Worker {
    /// Rounds on one leased subscription until it has nothing due.
    async fn deliver(&self, mut sub: Leased) {
        let secret = match self.key.open(sub.subscription_id, &sub.sealed_secret) {
            Ok(secret) => secret,
            Err(error) => {
                tracing::error!(error = %error, "cannot open the subscription's secret; not delivering it");
                let _ = ledger::release(&self.pool, sub.subscription_id, self.owner).await;
                return;
            }
        };
        loop {
            match self.round(&mut sub, &secret).await {
                Ok(RoundEnd::More) => continue,
                Ok(RoundEnd::Done) | Ok(RoundEnd::Lost) => return,
                Err(error) => {
                    tracing::warn!(error = %error, "delivery round failed; the lease runs out and the round is done again");
                    return;
                }
            }
        }
    }

    async fn round(&self, sub: &mut Leased, secret: &str) -> anyhow::Result<RoundEnd> {
        let started = Instant::now();
        let now = Utc::now();
        let held = ledger::held(&self.pool, sub.subscription_id, 10_000).await?;
        let page = feed::read_after(
            &self.pool,
            sub.position,
            self.config.batch,
            &sub.event_types,
        )
        .await?;
        let new: Vec<(i64, String)> = page
            .events
            .iter()
            .map(|e| (e.position, e.stream_id.clone()))
            .collect();
        let plan = plan::plan(held, new, now);
        let mut events: HashMap<i64, FeedEvent> =
            page.events.into_iter().map(|e| (e.position, e)).collect();
        let held_positions: Vec<i64> = plan
            .lanes
            .iter()
            .flatten()
            .filter(|i| matches!(i, Item::Held(_)))
            .map(Item::position)
            .collect();
        events.extend(feed::read_positions(&self.pool, &held_positions).await?);
        let bodies: HashMap<i64, (Bytes, Uuid, String)> = events
            .iter()
            .map(|(p, e)| {
                let body = serde_json::to_vec(e).unwrap_or_default();
                (*p, (Bytes::from(body), e.event_id, e.event_type.clone()))
            })
            .collect();
        let attempted = !plan.lanes.is_empty();
        let tally = Tally::default();
        let deadline = started + self.config.round_budget;
        let results: Vec<LaneResult> = futures::stream::iter(plan.lanes)
            .map(|lane| self.run_lane(sub, secret, lane, &bodies, &tally, deadline))
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let outcome = plan::settle(plan.parked, results, &self.config.policy, now, || {
            rand::random::<f64>()
        });
        let position = match outcome.unread_from {
            Some(first_unread) => page.next.min(first_unread - 1).max(sub.position),
            None => page.next,
        };
        let down = outcome.failed > 0 && outcome.delivered == 0;
        let failures = if down { sub.failures + 1 } else { 0 };
        let retry_at = if down {
            now + chrono::Duration::from_std(
                self.config.policy.backoff(failures, rand::random::<f64>()),
            )
            .unwrap_or_default()
        } else {
            now
        };
        let more = !down && (page.more || outcome.unread_from.is_some());
        let write = RoundWrite {
            position,
            dead_events: outcome
                .dead
                .iter()
                .filter_map(|d| {
                    bodies
                        .get(&d.position)
                        .map(|b| (d.position, b.1, b.2.clone()))
                })
                .collect(),
            keep_lease: more,
            lease: self.config.lease,
            retry_at,
            failures,
            last_error: tally.last_error(),
            now,
        };
        if !ledger::commit(
            &self.pool,
            sub.subscription_id,
            self.owner,
            &outcome,
            &write,
        )
        .await?
        {
            tracing::info!("lease lost during a round; its deliveries will be made again");
            return Ok(RoundEnd::Lost);
        }
        metrics::counter!("waybill_webhook_deliveries_total", "outcome" => "delivered")
            .increment(outcome.delivered as u64);
        metrics::counter!("waybill_webhook_deliveries_total", "outcome" => "failed")
            .increment(outcome.failed as u64);
        metrics::counter!("waybill_webhook_dead_letters_total")
            .increment(outcome.dead.len() as u64);
        if !outcome.dead.is_empty() {
            tracing::warn!(
                dead = outcome.dead.len(),
                "events given up on (dead letters)"
            );
        }
        if down {
            tracing::info!(failures, error = ?write.last_error, "receiver answers nothing; backing off");
        }
        sub.position = position;
        sub.failures = failures;
        let _ = attempted;
        Ok(if more { RoundEnd::More } else { RoundEnd::Done })
    }

    async fn run_lane(
        &self,
        sub: &Leased,
        secret: &str,
        lane: Vec<Item>,
        bodies: &HashMap<i64, (Bytes, Uuid, String)>,
        tally: &Tally,
        deadline: Instant,
    ) -> LaneResult {
        let mut delivered = Vec::new();
        let mut items = lane.into_iter();
        while let Some(item) = items.next() {
            if Instant::now() >= deadline || tally.tripped(self.config.breaker) {
                let mut rest = vec![item];
                rest.extend(items);
                return if delivered.is_empty() {
                    LaneResult::Skipped(rest)
                } else {
                    LaneResult::Ran {
                        delivered,
                        failed: None,
                        rest,
                    }
                };
            }
            let Some((body, event_id, event_type)) = bodies.get(&item.position()) else {
                // Not in the feed any more (cannot happen: the feed keeps every event); give
                // it up rather than block the order.
                let rest: Vec<Item> = items.collect();
                return LaneResult::Ran {
                    delivered,
                    failed: Some((item, "event not found in the feed".to_owned())),
                    rest,
                };
            };
            let attempt = match &item {
                Item::Held(h) => h.attempts + 1,
                Item::New(..) => 1,
            };
            let sent = self
                .sender
                .send(Delivery {
                    url: &sub.url,
                    secret,
                    subscription_id: sub.subscription_id,
                    event_id: *event_id,
                    event_type,
                    attempt,
                    body: body.clone(),
                })
                .await;
            match sent {
                Ok(()) => {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    delivered.push(item);
                }
                Err(error) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    tally.remember(&error);
                    return LaneResult::Ran {
                        delivered,
                        failed: Some((item, error)),
                        rest: items.collect(),
                    };
                }
            }
        }
        LaneResult::Ran {
            delivered,
            failed: None,
            rest: Vec::new(),
        }
    }
}

/// Successes and failures of a round so far.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    last_error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    /// Only failures so far, `breaker` of them: the receiver is down, stop trying.
    fn tripped(&self, breaker: usize) -> bool {
        self.ok.load(Ordering::Relaxed) == 0
            && self.failed.load(Ordering::Relaxed) >= breaker.max(1)
    }
    fn remember(&self, error: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_owned());
        }
    }
    fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|l| l.clone())
    }
}
