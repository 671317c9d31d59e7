//! One pass of the fulfillment worker over a batch of claimed orders, in lock-step rounds.
//!
//! Each round asks the pure `next_step` what every order still in the pass needs, takes all
//! those steps at once (external calls concurrently, reads the steps share made once), decides
//! each outcome on the order's folded state, and stores every order's events in one
//! SERIALIZABLE transaction. When another writer (a webhook, a cancel) moved some order's stream
//! meanwhile, only the orders whose streams moved are re-read and their commands decided again
//! on the fresh state; the round is then written again, so the others still commit together.
//! An order leaves the rounds when it waits or is done; all releases go back in one statement.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::{Actor, EventEnvelope, OrderEvent, OrderId};

use crate::domain::fulfillment::flow::next_step;
use crate::domain::fulfillment::Fulfillment;
use crate::domain::returns::ReturnsPolicy;
use crate::domain::Order;
use crate::event_store::{self, EventMeta, EventStore};

use super::append::{self, OrderRows, TransitSample};
use super::flows::{self, Claimed, Release};
use super::worker::{
    backoff, changed_nothing, take_step, Decided as Outcome, FulfillmentServices, SharedReads,
    Taken,
};
use super::FulfillmentError;

/// Most rounds one pass runs before handing the rest back (a lifecycle needs ~3 per wake-up).
const MAX_ROUNDS: usize = 16;

/// How many times a round is written again after streams moved under it.
const CONFLICT_RETRIES: usize = 5;

/// One order in a pass: its folded state and what was decided but not stored yet.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub order_id: OrderId,
    pub order: Order,
    pub state: Fulfillment,
    /// The stream version `state` was at when loaded or last stored.
    pub stored_version: i64,
    /// Commands decided and applied since, with their events and the transit times they teach.
    pub unsaved: Vec<Decided>,
    /// The metadata the events inherit (correlation, trace, channel, cause).
    pub meta: EventMeta,
    /// The policy return commands are decided under.
    pub returns: std::sync::Arc<ReturnsPolicy>,
}

/// One decided command.
#[derive(Debug, Clone)]
pub struct Decided {
    pub command: Outcome,
    pub events: Vec<OrderEvent>,
    pub samples: Vec<TransitSample>,
}

impl InFlight {
    /// Folds one order's stored stream.
    pub fn from_stream(
        order_id: OrderId,
        envelopes: &[EventEnvelope],
        returns: std::sync::Arc<ReturnsPolicy>,
    ) -> Result<Self, event_store::EventStoreError> {
        let events = append::decode(envelopes)?;
        let state = Fulfillment::from_events(&events);
        Ok(Self {
            order_id,
            order: Order::from_events(&events),
            stored_version: state.version,
            state,
            unsaved: Vec::new(),
            meta: append::meta_of(envelopes, Actor::system("fulfillment")),
            returns,
        })
    }

    /// Decides `command` on the current state and applies its events. `Ok(false)`: it changed
    /// nothing.
    pub fn decide(
        &mut self,
        command: impl Into<Outcome>,
        now: DateTime<Utc>,
    ) -> Result<bool, FulfillmentError> {
        let command = command.into();
        let events = command.decide(&self.state, &self.returns, now)?;
        if events.is_empty() {
            return Ok(false);
        }
        let samples = append::transit_samples(&self.state, &events);
        for event in &events {
            self.state.apply(event);
            self.order.apply(event);
        }
        self.unsaved.push(Decided {
            command,
            events,
            samples,
        });
        Ok(true)
    }

    /// The rows of the unsaved events, stamped after the stored version.
    pub fn rows(&self, now: DateTime<Utc>) -> OrderRows<'static> {
        let events: Vec<OrderEvent> = self
            .unsaved
            .iter()
            .flat_map(|d| d.events.iter().cloned())
            .collect();
        OrderRows {
            order_id: self.order_id,
            envelopes: event_store::stamp(
                &self.order_id.stream_id(),
                self.stored_version,
                event_store::new_events(events, now),
                &self.meta,
                now,
            ),
            receipts: Vec::new(),
            samples: self
                .unsaved
                .iter()
                .flat_map(|d| d.samples.iter().cloned())
                .collect(),
        }
    }

    fn mark_stored(&mut self, last_event: Option<Uuid>) {
        self.stored_version = self.state.version;
        self.unsaved.clear();
        if last_event.is_some() {
            self.meta.causation_id = last_event;
        }
    }

    /// Re-reads the order and decides its unsaved commands again on the fresh state; a command
    /// that no longer applies (or records nothing now) is dropped and the flow asks again.
    pub async fn reload(
        &mut self,
        store: &EventStore,
        now: DateTime<Utc>,
    ) -> Result<(), event_store::EventStoreError> {
        let envelopes = store
            .read_stream(&self.order_id.stream_id(), 1, None)
            .await?;
        let mut fresh = Self::from_stream(self.order_id, &envelopes, self.returns.clone())?;
        for decided in std::mem::take(&mut self.unsaved) {
            if let Err(refused) = fresh.decide(decided.command, now) {
                tracing::info!(order_id = %self.order_id, %refused, "fulfillment decision dropped after a concurrent change");
            }
        }
        *self = fresh;
        Ok(())
    }
}

/// An order in the pass with where it stands.
struct Slot {
    claimed: Claimed,
    flow: InFlight,
    /// `Some` once the order leaves the rounds.
    release: Option<Release>,
}

/// Advances `claimed` orders round by round until each waits or is done, then releases them.
pub async fn run(
    services: &FulfillmentServices,
    claimed: Vec<Claimed>,
) -> Result<(), FulfillmentError> {
    let now = Utc::now();
    let stream_ids: Vec<String> = claimed.iter().map(|c| c.order_id.stream_id()).collect();
    let mut streams = services.store.read_streams(&stream_ids).await?;
    let mut slots: Vec<Slot> = Vec::with_capacity(claimed.len());
    let mut releases: Vec<(Claimed, Release)> = Vec::new();
    for claimed in claimed {
        let envelopes = streams
            .remove(&claimed.order_id.stream_id())
            .unwrap_or_default();
        match InFlight::from_stream(claimed.order_id, &envelopes, services.returns.clone()) {
            Ok(flow) => slots.push(Slot {
                claimed,
                flow,
                release: None,
            }),
            Err(error) => {
                tracing::error!(order_id = %claimed.order_id, %error, "order stream unreadable; fulfillment flow parked");
                releases.push((
                    claimed,
                    Release::Retry {
                        due_at: now + chrono::Duration::minutes(5),
                        error: error.to_string(),
                    },
                ));
            }
        }
    }

    for _ in 0..MAX_ROUNDS {
        run_round(services, &mut slots).await;
        let mut flows: Vec<&mut InFlight> = slots.iter_mut().map(|s| &mut s.flow).collect();
        store_round(&services.pool, &services.store, &mut flows, Utc::now()).await?;
        if slots.iter().all(|s| s.release.is_some()) {
            break;
        }
    }

    let now = Utc::now();
    for slot in slots {
        let release = if !slot.flow.unsaved.is_empty() {
            Release::Retry {
                due_at: now + chrono::Duration::seconds(1),
                error: "events not stored".into(),
            }
        } else {
            slot.release.unwrap_or(Release::Park {
                due_at: now,
                stage: "run",
            })
        };
        releases.push((slot.claimed, release));
    }
    flows::release(&services.pool, &releases, now).await?;
    Ok(())
}

/// Takes every active order's next step at once and decides the outcomes.
async fn run_round(services: &FulfillmentServices, slots: &mut [Slot]) {
    let now = Utc::now();
    let shared = SharedReads::default();
    let active: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].release.is_none())
        .collect();
    let taken: Vec<Result<Taken, FulfillmentError>> = {
        let slots = &*slots;
        let shared = &shared;
        futures::stream::iter(active.iter().copied())
            .map(|i| {
                let flow = &slots[i].flow;
                let step = next_step(&flow.state, &services.policy, &services.returns, now);
                let span = tracing::info_span!("fulfillment.step", order_id = %flow.order_id);
                tracing::Instrument::instrument(
                    take_step(
                        services,
                        shared,
                        flow.order_id,
                        &flow.order,
                        &flow.state,
                        step,
                        now,
                    ),
                    span,
                )
            })
            .buffered(services.concurrency.max(1))
            .collect()
            .await
    };
    for (i, taken) in active.into_iter().zip(taken) {
        let slot = &mut slots[i];
        let error = match taken {
            Ok(Taken::Release(release)) => {
                slot.release = Some(release);
                continue;
            }
            Ok(Taken::Record(command)) => match slot.flow.decide(command.clone(), now) {
                Ok(true) => continue,
                Ok(false) => {
                    slot.release = Some(changed_nothing(&command, now));
                    continue;
                }
                Err(refused) => refused,
            },
            Err(error) => error,
        };
        tracing::warn!(order_id = %slot.flow.order_id, %error, "fulfillment step failed; retrying");
        slot.release = Some(Release::Retry {
            due_at: now + backoff(slot.claimed),
            error: error.to_string(),
        });
    }
}

/// Stores the unsaved events of every order in `flows` in one transaction. When streams moved
/// under the round, the moved orders alone are re-read and decided again, and the round is
/// written again. Orders still unsaved after [`CONFLICT_RETRIES`] keep their commands (the
/// caller retries them in a later pass).
pub async fn store_round(
    pool: &PgPool,
    store: &EventStore,
    flows: &mut [&mut InFlight],
    now: DateTime<Utc>,
) -> Result<(), FulfillmentError> {
    for _ in 0..CONFLICT_RETRIES {
        let dirty: Vec<usize> = (0..flows.len())
            .filter(|&i| !flows[i].unsaved.is_empty())
            .collect();
        if dirty.is_empty() {
            return Ok(());
        }
        let rows: Vec<OrderRows> = dirty.iter().map(|&i| flows[i].rows(now)).collect();
        match append::write_all(pool, &rows, now).await {
            Ok(_) => {
                for (&i, rows) in dirty.iter().zip(&rows) {
                    flows[i].mark_stored(rows.envelopes.last().map(|e| e.event_id));
                }
                return Ok(());
            }
            Err(e) if event_store::is_stream_conflict(&e) => {
                metrics::counter!("waybill_fulfillment_round_conflicts_total").increment(1);
                let ids: Vec<OrderId> = dirty.iter().map(|&i| flows[i].order_id).collect();
                let versions = append::stream_versions(pool, &ids).await?;
                for &i in &dirty {
                    let flow = &mut *flows[i];
                    if versions.get(&flow.order_id).copied().unwrap_or(0) != flow.stored_version {
                        flow.reload(store, now).await?;
                    }
                }
            }
            Err(e) => return Err(FulfillmentError::Database(e)),
        }
    }
    Ok(())
}
