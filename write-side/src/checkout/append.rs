//! Appending the flow's decisions: many orders' events in one transaction, and when another
//! writer moved an order's stream meanwhile (a cancel, a webhook), that order alone is re-read
//! and its commands decided again on the fresh state. Outcomes from the outside world are facts
//! the aggregate always accepts, so they are never lost; a decision that no longer holds (confirm
//! after a cancel) is dropped and the flow decides again.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::{Actor, EventEnvelope, NewEvent, OrderId};

use crate::domain::{Order, OrderCommand};
use crate::event_store::{self, retry, EventMeta, EventStore, EventStoreError};

use super::flows;

/// How many times one order is re-read after losing a race before the batch gives up on it.
const CONFLICT_RETRIES: usize = 5;

/// An order in the flow with the commands decided since it was last stored.
#[derive(Debug, Clone)]
pub struct FlowOrder {
    pub order_id: OrderId,
    pub order: Order,
    /// The version the stream was at when `order` was loaded or last stored.
    pub stored_version: i64,
    /// Commands decided and applied to `order` but not stored yet, with their events.
    pub unsaved: Vec<(OrderCommand, Vec<NewEvent>)>,
    /// The envelope metadata the flow's events inherit (correlation, trace, channel).
    pub meta: EventMeta,
    /// The id of the last stored event: the cause of what the flow does next.
    pub last_event_id: Option<Uuid>,
}

impl FlowOrder {
    /// Folds the stored stream of one order.
    /// An event that cannot be decoded is [`EventStoreError::Corrupt`], naming it.
    pub fn from_stream(
        order_id: OrderId,
        envelopes: &[EventEnvelope],
    ) -> Result<Self, EventStoreError> {
        let mut order = Order::default();
        for envelope in envelopes {
            let event = envelope.decode().map_err(|e| EventStoreError::Corrupt {
                stream_id: envelope.stream_id.clone(),
                stream_version: envelope.stream_version,
                detail: e.to_string(),
            })?;
            order.apply(&event);
        }
        let first = envelopes.first();
        let last = envelopes.last();
        Ok(Self {
            order_id,
            stored_version: order.version(),
            order,
            unsaved: Vec::new(),
            meta: EventMeta {
                correlation_id: first.map_or_else(Uuid::now_v7, |e| e.correlation_id),
                causation_id: None,
                traceparent: last.and_then(|e| e.traceparent.clone()),
                actor: Actor::system("checkout"),
                channel: first.and_then(|e| e.channel),
            },
            last_event_id: last.map(|e| e.event_id),
        })
    }

    /// Decides `command` on the current state and applies its events; `Err` is the aggregate's
    /// refusal, as text for the flow's log.
    pub fn decide(&mut self, command: OrderCommand, now: DateTime<Utc>) -> Result<(), String> {
        let events = self
            .order
            .handle(&command, now)
            .map_err(|e| e.to_string())?;
        if events.is_empty() {
            return Ok(());
        }
        for event in &events {
            self.order.apply(event);
        }
        self.unsaved
            .push((command, event_store::new_events(events, now)));
        Ok(())
    }

    fn envelopes(&self, recorded_at: DateTime<Utc>) -> Vec<EventEnvelope> {
        let meta = EventMeta {
            causation_id: self.last_event_id,
            ..self.meta.clone()
        };
        let events: Vec<NewEvent> = self
            .unsaved
            .iter()
            .flat_map(|(_, events)| events.iter().cloned())
            .collect();
        event_store::stamp(
            &self.order_id.stream_id(),
            self.stored_version,
            events,
            &meta,
            recorded_at,
        )
    }

    fn mark_stored(&mut self, envelopes: &[EventEnvelope]) {
        self.stored_version = self.order.version();
        self.unsaved.clear();
        if let Some(last) = envelopes.last() {
            self.last_event_id = Some(last.event_id);
        }
    }
}

/// Stores the unsaved events of every order in `orders`: one transaction for all, or, when a
/// stream moved, order by order with re-reads. Orders whose commands could not be stored keep
/// them; the caller retries those later.
pub async fn store_all(
    pool: &PgPool,
    store: &EventStore,
    orders: &mut [&mut FlowOrder],
    now: DateTime<Utc>,
) -> Result<(), EventStoreError> {
    let dirty: Vec<usize> = (0..orders.len())
        .filter(|&i| !orders[i].unsaved.is_empty())
        .collect();
    if dirty.is_empty() {
        return Ok(());
    }
    let batches: Vec<Vec<EventEnvelope>> =
        dirty.iter().map(|&i| orders[i].envelopes(now)).collect();
    let refs: Vec<&EventEnvelope> = batches.iter().flatten().collect();
    let written = retry::serializable_idempotent(|| async {
        let mut tx = retry::begin(pool).await?;
        event_store::rows::insert_events_and_outbox(&mut tx, &refs, now).await?;
        crate::fulfillment::flows::start_confirmed(&mut tx, &refs, now).await?;
        retry::commit(tx).await
    })
    .await;
    let written = match written {
        // A repeat after an ambiguous commit that did commit meets its own events.
        Err(e)
            if event_store::is_stream_conflict(&e)
                && event_store::already_stored(pool, &refs).await? =>
        {
            Ok(())
        }
        other => other,
    };
    match written {
        Ok(()) => {
            for (&i, envelopes) in dirty.iter().zip(&batches) {
                orders[i].mark_stored(envelopes);
            }
            Ok(())
        }
        Err(e) if event_store::is_stream_conflict(&e) => {
            for &i in &dirty {
                store_one(pool, store, orders[i], now).await?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Stores one order's unsaved events, re-reading and re-deciding after each lost race.
pub async fn store_one(
    pool: &PgPool,
    store: &EventStore,
    flow: &mut FlowOrder,
    now: DateTime<Utc>,
) -> Result<(), EventStoreError> {
    store_retrying(pool, store, flow, None, now).await.map(drop)
}

/// A webhook receipt stored with the events it caused: (provider, event id, outcome).
type Receipt<'a> = (&'a str, &'a str, &'a str);

/// Writes `flow`'s unsaved events (and `receipt` with a wake-up of the flow, if given) in one
/// transaction, re-reading and re-deciding after each lost race. `Ok(false)`: the receipt was
/// already stored, so nothing was written.
async fn store_retrying(
    pool: &PgPool,
    store: &EventStore,
    flow: &mut FlowOrder,
    receipt: Option<Receipt<'_>>,
    now: DateTime<Utc>,
) -> Result<bool, EventStoreError> {
    for _ in 0..CONFLICT_RETRIES {
        if flow.unsaved.is_empty() && receipt.is_none() {
            return Ok(true);
        }
        let envelopes = flow.envelopes(now);
        let refs: Vec<&EventEnvelope> = envelopes.iter().collect();
        let order_id = flow.order_id;
        let written = retry::serializable_idempotent(|| async {
            let mut tx = retry::begin(pool).await?;
            if let Some((provider, event_id, outcome)) = receipt {
                let inserted = sqlx::query(
                    "INSERT INTO webhook_receipts \
                     (provider, event_id, order_id, outcome, received_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(provider)
                .bind(event_id)
                .bind(order_id.as_uuid())
                .bind(outcome)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok(false);
                }
                flows::wake(&mut tx, &[order_id], now).await?;
            }
            event_store::rows::insert_events_and_outbox(&mut tx, &refs, now).await?;
            crate::fulfillment::flows::start_confirmed(&mut tx, &refs, now).await?;
            retry::commit(tx).await?;
            Ok(true)
        })
        .await;
        let written = match written {
            // A repeat after an ambiguous commit that did commit meets its own receipt or
            // events: the events are there, so this write is done.
            Ok(false) | Err(_) if event_store::already_stored(pool, &refs).await? => Ok(true),
            other => other,
        };
        match written {
            Ok(applied) => {
                if applied {
                    flow.mark_stored(&envelopes);
                }
                return Ok(applied);
            }
            Err(e) if event_store::is_stream_conflict(&e) => {
                reload_and_redecide(store, flow, now).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(EventStoreError::Conflict {
        stream_id: flow.order_id.stream_id(),
        expected: flow.stored_version,
        actual: None,
    })
}

/// Re-reads the order and decides its unsaved commands again on the fresh state.
async fn reload_and_redecide(
    store: &EventStore,
    flow: &mut FlowOrder,
    now: DateTime<Utc>,
) -> Result<(), EventStoreError> {
    let envelopes = store
        .read_stream(&flow.order_id.stream_id(), 1, None)
        .await?;
    let mut fresh = FlowOrder::from_stream(flow.order_id, &envelopes)?;
    fresh.meta.traceparent = flow.meta.traceparent.clone().or(fresh.meta.traceparent);
    for (command, _) in std::mem::take(&mut flow.unsaved) {
        if let Err(refused) = fresh.decide(command, now) {
            tracing::info!(order_id = %flow.order_id, %refused, "decision dropped after a concurrent change");
        }
    }
    *flow = fresh;
    Ok(())
}

/// Stores `flow`'s unsaved events together with a webhook receipt and a wake-up of the flow, in
/// one transaction (the receipt makes a redelivered webhook a no-op). Returns false when the
/// receipt was already there: nothing was written.
pub async fn store_with_receipt(
    pool: &PgPool,
    store: &EventStore,
    flow: &mut FlowOrder,
    receipt: Receipt<'_>,
    now: DateTime<Utc>,
) -> Result<bool, EventStoreError> {
    store_retrying(pool, store, flow, Some(receipt), now).await
}
