//! Test fixtures and isolated real services: each test gets its own database, JetStream stream
//! and subject root, and Redis prefix.

use chrono::{TimeZone, Utc};

use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::envelope::ActorKind;
use waybill_schemas::events::{
    Address, CancelReason, Customer, OrderCancelled, OrderLine, OrderPlaced, Shipping, Totals,
};
use waybill_schemas::{
    Actor, Channel, Currency, Email, EventEnvelope, Money, OrderEvent, OrderId, Quantity, Sku,
};

use crate::runtime::ProjectorConfig;

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::parse("USD").expect("USD"))
}

fn envelope(order: OrderId, version: i64, event: OrderEvent) -> EventEnvelope {
    let at = Utc
        .timestamp_opt(1_764_000_000 + version, 0)
        .single()
        .expect("valid time");
    EventEnvelope {
        event_id: Uuid::now_v7(),
        stream_id: order.stream_id(),
        stream_version: version,
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        occurred_at: at,
        recorded_at: Utc::now(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
        actor: Actor::service("test"),
        channel: Some(Channel::Web),
        payload: event.to_payload(),
    }
}

/// `OrderPlaced`: one line of 2 × 15.00 USD with 2.40 tax, total 32.40 USD.
pub fn placed_event(order: OrderId, version: i64) -> EventEnvelope {
    let placed = OrderPlaced {
        order_id: order,
        channel: Channel::Web,
        channel_order_ref: format!("WEB-{}", &order.to_string()[..8]),
        customer: Customer {
            customer_id: Some("c-42".into()),
            name: "Ada Lovelace".into(),
            email: Email::parse("ada@example.com").expect("email"),
            phone: None,
        },
        currency: Currency::parse("USD").expect("USD"),
        lines: vec![OrderLine {
            line_no: 1,
            sku: Sku::parse("TEE-RED-M").expect("sku"),
            name: "Red tee".into(),
            quantity: Quantity::parse(2).expect("quantity"),
            unit_price: usd(1500),
            discount: usd(0),
            tax: usd(240),
            total: usd(3240),
        }],
        discounts: vec![],
        shipping_address: Address {
            name: "Ada Lovelace".into(),
            line1: "1 Main St".into(),
            line2: None,
            city: "Springfield".into(),
            region: Some("IL".into()),
            postal_code: "62701".into(),
            country: "US".into(),
        },
        billing_address: None,
        shipping: Shipping {
            method: "standard".into(),
            price: usd(0),
            tax: usd(0),
        },
        totals: Totals {
            subtotal: usd(3000),
            discount_total: usd(0),
            tax_total: usd(240),
            shipping_total: usd(0),
            grand_total: usd(3240),
        },
        payment: None,
        risk_context: None,
        placed_at: Utc
            .timestamp_opt(1_764_000_000, 0)
            .single()
            .expect("valid time"),
    };
    envelope(order, version, OrderEvent::OrderPlaced(placed))
}

/// `OrderCancelled` at the customer's request.
pub fn cancelled_event(order: OrderId, version: i64) -> EventEnvelope {
    let cancelled = OrderCancelled {
        order_id: order,
        reason: CancelReason::CustomerRequest,
        note: None,
        cancelled_at: Utc
            .timestamp_opt(1_764_000_100, 0)
            .single()
            .expect("valid time"),
    };
    envelope(order, version, OrderEvent::OrderCancelled(cancelled))
}

/// A fresh database with the write side's migrations and SERIALIZABLE as its default.
pub async fn fresh_database() -> PgPool {
    waybill_write_side::testing::TestDatabase::create("projectors")
        .await
        .pool
}

/// Stores events as the event store would (plain SQL: the projectors only read the table).
pub async fn seed(pool: &PgPool, events: &[EventEnvelope]) {
    for e in events {
        sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, \
             occurred_at, recorded_at, correlation_id, causation_id, traceparent, actor_kind, \
             actor_id, channel, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&e.stream_id)
        .bind(e.stream_version)
        .bind(e.event_id)
        .bind(&e.event_type)
        .bind(e.schema_version)
        .bind(e.occurred_at)
        .bind(e.recorded_at)
        .bind(e.correlation_id)
        .bind(e.causation_id)
        .bind(&e.traceparent)
        .bind(match e.actor.kind {
            ActorKind::Customer => "customer",
            ActorKind::Agent => "agent",
            ActorKind::Service => "service",
            ActorKind::System => "system",
        })
        .bind(&e.actor.id)
        .bind(e.channel.map(|c| c.as_str()))
        .bind(&e.payload)
        .execute(pool)
        .await
        .expect("insert event");
    }
}

/// Stores events with their outbox rows, as a committed command leaves them for the relay.
pub async fn seed_with_outbox(pool: &PgPool, events: &[EventEnvelope]) {
    seed(pool, events).await;
    for e in events {
        sqlx::query(
            "INSERT INTO outbox (event_id, stream_id, stream_version, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(e.event_id)
        .bind(&e.stream_id)
        .bind(e.stream_version)
        .bind(e.recorded_at)
        .execute(pool)
        .await
        .expect("insert outbox row");
    }
}

/// A unique stream, subject root and Redis prefix, with a fast retry schedule.
pub fn isolated_config() -> ProjectorConfig {
    let tag = Uuid::now_v7().simple().to_string();
    ProjectorConfig {
        max_deliver: 3,
        retry_delay: std::time::Duration::from_millis(20),
        fetch_expiry: std::time::Duration::from_millis(300),
        rebuild_page: 7,
        ..ProjectorConfig::new(
            format!("PROJ_{tag}"),
            format!("proj{tag}"),
            format!("test-{tag}"),
        )
    }
}

pub async fn redis() -> redis::aio::ConnectionManager {
    let client = redis::Client::open("redis://127.0.0.1:6379").expect("redis url");
    redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis up")
}
