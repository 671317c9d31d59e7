//! Appending fulfillment events: one SERIALIZABLE transaction with the outbox rows, and with
//! what must change together with them: the webhook receipts (de-duplication) and the flow's
//! wake-up, the checkout flow's wake-up when there is money to move (a parcel ships: capture on
//! shipment; units are cancelled; a return is refunded or an exchange charged), and the learned
//! transit time when a parcel is delivered. One transaction may carry many orders' rows
//! ([`write_all`]: the worker's rounds, batched webhooks) or one order's ([`store`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use waybill_schemas::events::CarrierStatus;
use waybill_schemas::{Actor, EventEnvelope, OrderEvent, OrderId};

use crate::domain::fulfillment::Fulfillment;
use crate::event_store::{self, retry, EventMeta, EventStoreError};

use super::flows;

/// A webhook receipt stored with the events it caused.
#[derive(Debug, Clone, Copy)]
pub struct Receipt<'a> {
    pub provider: &'a str,
    pub event_id: &'a str,
    pub outcome: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Written,
    /// The receipt was there already: nothing written.
    Duplicate,
    /// Another writer moved the stream: re-read and decide again.
    Conflict,
}

/// One delivered parcel's transit time, learned for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitSample {
    pub shipment_id: String,
    pub carrier: String,
    pub distance: i32,
    pub hours: i64,
    pub delivered_at: DateTime<Utc>,
}

/// Everything one order adds to an append.
#[derive(Debug, Clone)]
pub struct OrderRows<'a> {
    pub order_id: OrderId,
    /// Stamped after the version the decision was made on.
    pub envelopes: Vec<EventEnvelope>,
    /// Webhook receipts; each also wakes the order's fulfillment flow.
    pub receipts: Vec<Receipt<'a>>,
    pub samples: Vec<TransitSample>,
}

impl OrderRows<'_> {
    /// The checkout flow has money to move: a parcel shipped or a BOPIS order was collected
    /// (capture), units were cancelled (capture less, or refund), a refund was asked for (a
    /// return's), or an exchange's extra charge.
    fn wakes_checkout(&self) -> bool {
        self.envelopes.iter().any(|e| {
            matches!(
                e.event_type.as_str(),
                "ShipmentCreated"
                    | "PickupCompleted"
                    | "RefundRequested"
                    | "FulfillmentLinesCancelled"
                    | "OrderLinesCancelled"
                    | "ExtraChargeRequested"
            )
        })
    }
}

/// The transit samples `events` (decided on `state`) teach: one per delivered parcel.
pub fn transit_samples(state: &Fulfillment, events: &[OrderEvent]) -> Vec<TransitSample> {
    events
        .iter()
        .filter_map(|e| match e {
            OrderEvent::ShipmentTracked(t) if t.status == CarrierStatus::Delivered => {
                let shipment = state.shipment(&t.shipment_id)?;
                let routed = &state.order(&shipment.created.fulfillment_id)?.routed;
                let hours = (t.effective_time() - shipment.created.created_at)
                    .num_hours()
                    .max(0);
                Some(TransitSample {
                    shipment_id: t.shipment_id.clone(),
                    carrier: routed.carrier.clone(),
                    distance: i32::try_from(routed.zone_distance).unwrap_or(i32::MAX),
                    hours,
                    delivered_at: t.effective_time(),
                })
            }
            _ => None,
        })
        .collect()
}

/// The metadata fulfillment events inherit from the order's stream.
pub fn meta_of(envelopes: &[EventEnvelope], actor: Actor) -> EventMeta {
    EventMeta {
        correlation_id: envelopes
            .first()
            .map_or_else(Uuid::now_v7, |e| e.correlation_id),
        causation_id: envelopes.last().map(|e| e.event_id),
        traceparent: envelopes.last().and_then(|e| e.traceparent.clone()),
        actor,
        channel: envelopes.first().and_then(|e| e.channel),
    }
}

/// Decodes a stream, naming an undecodable event.
pub fn decode(envelopes: &[EventEnvelope]) -> Result<Vec<OrderEvent>, EventStoreError> {
    envelopes
        .iter()
        .map(|e| {
            e.decode().map_err(|d| EventStoreError::Corrupt {
                stream_id: e.stream_id.clone(),
                stream_version: e.stream_version,
                detail: d.to_string(),
            })
        })
        .collect()
}

/// Appends `events` after version `expected` of the order's stream.
pub async fn store(
    pool: &PgPool,
    state: &Fulfillment,
    order_id: OrderId,
    events: Vec<OrderEvent>,
    meta: &EventMeta,
    receipt: Option<Receipt<'_>>,
    now: DateTime<Utc>,
) -> Result<Stored, EventStoreError> {
    let samples = transit_samples(state, &events);
    let rows = OrderRows {
        order_id,
        envelopes: event_store::stamp(
            &order_id.stream_id(),
            state.version,
            event_store::new_events(events, now),
            meta,
            now,
        ),
        receipts: receipt.into_iter().collect(),
        samples,
    };
    match write_all(pool, &[rows], now).await {
        Ok(true) => Ok(Stored::Written),
        Ok(false) => Ok(Stored::Duplicate),
        Err(e) if event_store::is_stream_conflict(&e) => Ok(Stored::Conflict),
        Err(e) => Err(e.into()),
    }
}

/// Writes every order's rows in one SERIALIZABLE transaction (retried on 40001). `Ok(false)`:
/// a receipt was already stored (a webhook delivered twice at once), so nothing was written.
/// A stream conflict fails the whole call (see [`event_store::is_stream_conflict`]).
pub async fn write_all(
    pool: &PgPool,
    orders: &[OrderRows<'_>],
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let written = retry::serializable_idempotent(|| async {
        let mut tx = retry::begin(pool).await?;
        if !write_rows(&mut tx, orders, now).await? {
            // Dropping the transaction rolls back the receipts inserted so far.
            return Ok(false);
        }
        retry::commit(tx).await?;
        Ok(true)
    })
    .await;
    let written = match written {
        Ok(true) => true,
        // A repeat after an ambiguous commit that did commit meets its own receipts or events.
        Ok(false) | Err(_) if own_rows_stored(pool, orders).await? => true,
        Ok(false) => false,
        Err(e) => return Err(e),
    };
    metrics::histogram!("waybill_fulfillment_append_orders").record(orders.len() as f64);
    Ok(written)
}

/// The statements of one append, in the caller's transaction. False when a receipt was taken.
async fn write_rows(
    conn: &mut PgConnection,
    orders: &[OrderRows<'_>],
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let receipts: Vec<(OrderId, &Receipt)> = orders
        .iter()
        .flat_map(|o| o.receipts.iter().map(move |r| (o.order_id, r)))
        .collect();
    if !receipts.is_empty() {
        let providers: Vec<&str> = receipts.iter().map(|(_, r)| r.provider).collect();
        let ids: Vec<&str> = receipts.iter().map(|(_, r)| r.event_id).collect();
        let order_ids: Vec<Uuid> = receipts.iter().map(|(o, _)| o.as_uuid()).collect();
        let outcomes: Vec<&str> = receipts.iter().map(|(_, r)| r.outcome).collect();
        let inserted = sqlx::query(
            "INSERT INTO webhook_receipts (provider, event_id, order_id, outcome, received_at) \
             SELECT p, e, o, r, $5 FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::text[]) \
                 AS t(p, e, o, r) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&providers)
        .bind(&ids)
        .bind(&order_ids)
        .bind(&outcomes)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted < receipts.len() as u64 {
            return Ok(false);
        }
        let mut woken: Vec<OrderId> = receipts.iter().map(|(o, _)| *o).collect();
        woken.sort_unstable();
        woken.dedup();
        flows::wake(conn, &woken, now).await?;
    }
    let events: Vec<&EventEnvelope> = orders.iter().flat_map(|o| o.envelopes.iter()).collect();
    if !events.is_empty() {
        event_store::rows::insert_events_and_outbox(conn, &events, now).await?;
    }
    let checkout: Vec<OrderId> = orders
        .iter()
        .filter(|o| o.wakes_checkout())
        .map(|o| o.order_id)
        .collect();
    if !checkout.is_empty() {
        crate::checkout::flows::wake(conn, &checkout, now).await?;
    }
    let samples: Vec<&TransitSample> = orders.iter().flat_map(|o| o.samples.iter()).collect();
    if !samples.is_empty() {
        let shipments: Vec<&str> = samples.iter().map(|s| s.shipment_id.as_str()).collect();
        let carriers: Vec<&str> = samples.iter().map(|s| s.carrier.as_str()).collect();
        let distances: Vec<i32> = samples.iter().map(|s| s.distance).collect();
        let hours: Vec<i64> = samples.iter().map(|s| s.hours).collect();
        let at: Vec<DateTime<Utc>> = samples.iter().map(|s| s.delivered_at).collect();
        sqlx::query(
            "INSERT INTO carrier_transit_samples \
             (shipment_id, carrier, distance, hours, delivered_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::bigint[], \
                 $5::timestamptz[]) \
             ON CONFLICT (shipment_id) DO NOTHING",
        )
        .bind(&shipments)
        .bind(&carriers)
        .bind(&distances)
        .bind(&hours)
        .bind(&at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}

/// The current version of each of `orders`' streams (absent: no events).
pub async fn stream_versions(
    pool: &PgPool,
    orders: &[OrderId],
) -> Result<HashMap<OrderId, i64>, sqlx::Error> {
    let streams: Vec<String> = orders.iter().map(OrderId::stream_id).collect();
    let rows: Vec<(String, i64)> = retry::serializable(|| {
        sqlx::query_as(
            "SELECT stream_id, max(stream_version) FROM events \
             WHERE stream_id = ANY($1) GROUP BY stream_id",
        )
        .bind(&streams)
        .fetch_all(pool)
    })
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, v)| Some((OrderId::from_stream_id(&s)?, v)))
        .collect())
}

/// The learned transit times (last 90 days), for routing.
pub async fn transit_history(
    pool: &PgPool,
) -> Result<crate::domain::fulfillment::routing::TransitHistory, sqlx::Error> {
    let rows: Vec<(String, i32, i64, i64)> = retry::serializable(|| {
        sqlx::query_as(
            "SELECT carrier, distance, count(*), sum(hours)::bigint FROM carrier_transit_samples \
             WHERE delivered_at > now() - interval '90 days' GROUP BY carrier, distance",
        )
        .fetch_all(pool)
    })
    .await?;
    Ok(crate::domain::fulfillment::routing::TransitHistory(
        rows.into_iter()
            .map(|(c, d, n, h)| ((c, u32::try_from(d).unwrap_or(0)), (n, h)))
            .collect(),
    ))
}

/// True when the events of `orders` are all stored already: this write committed before (see
/// [`event_store::already_stored`]).
async fn own_rows_stored(pool: &PgPool, orders: &[OrderRows<'_>]) -> Result<bool, sqlx::Error> {
    let events: Vec<&EventEnvelope> = orders.iter().flat_map(|o| o.envelopes.iter()).collect();
    event_store::already_stored(pool, &events).await
}
