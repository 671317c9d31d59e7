//! Appending fulfillment events: one SERIALIZABLE transaction with the outbox rows, and with
//! what must change together with them: the webhook receipt (de-duplication) and the flow's
//! wake-up, the checkout flow's wake-up when a parcel ships (capture on shipment) or a return
//! is refunded or its exchange charged, and the
//! learned transit time when a parcel is delivered.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::events::CarrierStatus;
use waybill_schemas::{Actor, EventEnvelope, OrderEvent, OrderId};

use crate::domain::fulfillment::Fulfillment;
use crate::event_store::{self, retry, EventMeta, EventStoreError};
use crate::outbox;

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
    // A parcel left (capture on shipment), units were cancelled (capture less, or refund) or
    // a return's refund was requested: the checkout flow has money to move.
    let wakes_checkout = events.iter().any(|e| {
        matches!(
            e,
            OrderEvent::ShipmentCreated(_)
                | OrderEvent::PickupCompleted(_)
                | OrderEvent::RefundRequested(_)
                | OrderEvent::FulfillmentLinesCancelled(_)
                | OrderEvent::OrderLinesCancelled(_)
                | OrderEvent::ExtraChargeRequested(_)
        )
    });
    let learned: Vec<(String, String, i32, i64, DateTime<Utc>)> = events
        .iter()
        .filter_map(|e| match e {
            OrderEvent::ShipmentTracked(t) if t.status == CarrierStatus::Delivered => {
                let shipment = state.shipment(&t.shipment_id)?;
                let routed = &state.order(&shipment.created.fulfillment_id)?.routed;
                let hours = (t.carrier_time - shipment.created.created_at)
                    .num_hours()
                    .max(0);
                Some((
                    t.shipment_id.clone(),
                    routed.carrier.clone(),
                    i32::try_from(routed.zone_distance).unwrap_or(i32::MAX),
                    hours,
                    t.carrier_time,
                ))
            }
            _ => None,
        })
        .collect();
    let envelopes = event_store::stamp(
        &order_id.stream_id(),
        state.version,
        event_store::new_events(events, now),
        meta,
        now,
    );
    let refs: Vec<&EventEnvelope> = envelopes.iter().collect();
    let written = retry::serializable(|| async {
        let mut tx = retry::begin(pool).await?;
        if let Some(r) = receipt {
            let inserted = sqlx::query(
                "INSERT INTO webhook_receipts (provider, event_id, order_id, outcome, received_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(r.provider)
            .bind(r.event_id)
            .bind(order_id.as_uuid())
            .bind(r.outcome)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok(Stored::Duplicate);
            }
            flows::wake(&mut tx, &[order_id], now).await?;
        }
        if !refs.is_empty() {
            event_store::rows::insert_events(&mut tx, &refs).await?;
            outbox::insert(&mut tx, &refs, now).await?;
        }
        if wakes_checkout {
            crate::checkout::flows::wake(&mut tx, &[order_id], now).await?;
        }
        for (shipment, carrier, distance, hours, at) in &learned {
            sqlx::query(
                "INSERT INTO carrier_transit_samples \
                 (shipment_id, carrier, distance, hours, delivered_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (shipment_id) DO NOTHING",
            )
            .bind(shipment)
            .bind(carrier)
            .bind(distance)
            .bind(hours)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Stored::Written)
    })
    .await;
    match written {
        Ok(stored) => Ok(stored),
        Err(e) if event_store::is_stream_conflict(&e) => Ok(Stored::Conflict),
        Err(e) => Err(e.into()),
    }
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
