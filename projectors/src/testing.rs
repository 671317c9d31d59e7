//! Test fixtures and isolated real services: each test gets its own database, JetStream stream
//! and subject root, and Redis prefix.

use chrono::{DateTime, TimeZone, Utc};

use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::envelope::ActorKind;
use waybill_schemas::events::{
    Address, BackorderedLine, CancelReason, CaptureMode, Customer, InventoryAllocated,
    InventoryReleased, InventoryReservationFailed, InventoryReserved, OrderCancelled,
    OrderConfirmed, OrderLine, OrderPlaced, PaymentAuthorizationExpired, PaymentAuthorized,
    PaymentCaptured, PaymentChallengeRequired, PaymentDeclined, PaymentVoided, ReleaseReason,
    ReservedLine, ReviewDecision, RiskAssessed, RiskDecision, RiskReason, RiskReviewResolved,
    Shipping, Shortage, Totals,
};
use waybill_schemas::{
    Actor, Channel, Currency, Email, EventEnvelope, Money, OrderEvent, OrderId, Quantity, Sku,
};

use crate::runtime::ProjectorConfig;

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::parse("USD").expect("USD"))
}

/// 2025-11-24 16:00:00 UTC plus `seconds`: fixture times are fixed so texts can be asserted.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_764_000_000 + seconds, 0)
        .single()
        .expect("valid time")
}

/// `event` as version `version` of `order`'s stream, occurring `version` seconds after the
/// fixture epoch.
pub fn envelope(order: OrderId, version: i64, event: OrderEvent) -> EventEnvelope {
    let at = at(version);
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

/// `OrderPlaced`: one line of 2 × 15.00 USD with 2.40 tax, total 32.40 USD; the customer has
/// an email address and no phone.
pub fn placed_event(order: OrderId, version: i64) -> EventEnvelope {
    envelope(order, version, OrderEvent::OrderPlaced(placed(order)))
}

/// Like [`placed_event`], with a phone number for text messages.
pub fn placed_event_with_phone(order: OrderId, version: i64) -> EventEnvelope {
    let mut placed = placed(order);
    placed.customer.phone = Some("+1 217 555 0142".into());
    envelope(order, version, OrderEvent::OrderPlaced(placed))
}

pub fn placed(order: OrderId) -> OrderPlaced {
    OrderPlaced {
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
        pickup_store: None,
        placed_at: at(0),
    }
}

/// `OrderCancelled` at the customer's request.
pub fn cancelled_event(order: OrderId, version: i64) -> EventEnvelope {
    cancelled_for(order, version, CancelReason::CustomerRequest)
}

/// `OrderCancelled` for `reason`.
pub fn cancelled_for(order: OrderId, version: i64, reason: CancelReason) -> EventEnvelope {
    let cancelled = OrderCancelled {
        order_id: order,
        reason,
        note: None,
        cancelled_at: at(100),
    };
    envelope(order, version, OrderEvent::OrderCancelled(cancelled))
}

/// `RiskAssessed` with `decision`; the reasons name a rule a customer must never see.
pub fn risk_assessed(order: OrderId, version: i64, decision: RiskDecision) -> EventEnvelope {
    let assessed = RiskAssessed {
        order_id: order,
        decision,
        score: 70,
        reasons: vec![RiskReason {
            rule: "velocity_email".into(),
            points: 70,
            detail: "4 orders from this email in the last hour (limit 3)".into(),
        }],
        assessed_at: at(version),
    };
    envelope(order, version, OrderEvent::RiskAssessed(assessed))
}

/// `RiskReviewResolved` by agent `ann`.
pub fn review_resolved(order: OrderId, version: i64, decision: ReviewDecision) -> EventEnvelope {
    let resolved = RiskReviewResolved {
        order_id: order,
        decision,
        reviewer: "ann".into(),
        note: Some("called the customer".into()),
        resolved_at: at(version),
    };
    envelope(order, version, OrderEvent::RiskReviewResolved(resolved))
}

fn tee_at(location: &str, quantity: i64) -> ReservedLine {
    ReservedLine {
        line_no: 1,
        sku: Sku::parse("TEE-RED-M").expect("sku"),
        location_id: location.into(),
        quantity: Quantity::parse(quantity).expect("quantity"),
    }
}

/// `InventoryReserved`: both tees at `wh-east`, held until 16:15 UTC (15 minutes).
pub fn reserved_event(order: OrderId, version: i64) -> EventEnvelope {
    let reserved = InventoryReserved {
        order_id: order,
        lines: vec![tee_at("wh-east", 2)],
        backordered: vec![],
        expires_at: at(900),
        reserved_at: at(version),
    };
    envelope(order, version, OrderEvent::InventoryReserved(reserved))
}

/// `InventoryReserved`: one tee held, one on back-order.
pub fn reserved_with_backorder(order: OrderId, version: i64) -> EventEnvelope {
    let reserved = InventoryReserved {
        order_id: order,
        lines: vec![tee_at("wh-east", 1)],
        backordered: vec![BackorderedLine {
            line_no: 1,
            sku: Sku::parse("TEE-RED-M").expect("sku"),
            quantity: Quantity::parse(1).expect("quantity"),
        }],
        expires_at: at(900),
        reserved_at: at(version),
    };
    envelope(order, version, OrderEvent::InventoryReserved(reserved))
}

/// `InventoryReservationFailed`: 2 tees wanted, 1 available.
pub fn reservation_failed(order: OrderId, version: i64) -> EventEnvelope {
    let failed = InventoryReservationFailed {
        order_id: order,
        shortages: vec![Shortage {
            line_no: 1,
            sku: Sku::parse("TEE-RED-M").expect("sku"),
            requested: 2,
            available: 1,
        }],
        failed_at: at(version),
    };
    envelope(
        order,
        version,
        OrderEvent::InventoryReservationFailed(failed),
    )
}

/// `InventoryAllocated`: the reserved tees, now allocated.
pub fn allocated_event(order: OrderId, version: i64) -> EventEnvelope {
    let allocated = InventoryAllocated {
        order_id: order,
        lines: vec![tee_at("wh-east", 2)],
        allocated_at: at(version),
    };
    envelope(order, version, OrderEvent::InventoryAllocated(allocated))
}

/// `InventoryReleased` for `reason`.
pub fn released_event(order: OrderId, version: i64, reason: ReleaseReason) -> EventEnvelope {
    let released = InventoryReleased {
        order_id: order,
        reason,
        released_at: at(version),
    };
    envelope(order, version, OrderEvent::InventoryReleased(released))
}

/// The 3-D Secure challenge link of the fixtures.
pub const CHALLENGE_URL: &str = "http://127.0.0.1:8090/challenge/auth_1";

/// `PaymentChallengeRequired` with [`CHALLENGE_URL`].
pub fn challenge_event(order: OrderId, version: i64) -> EventEnvelope {
    let challenge = PaymentChallengeRequired {
        order_id: order,
        authorization_id: "auth_1".into(),
        challenge_url: CHALLENGE_URL.into(),
        expires_at: at(600),
    };
    envelope(
        order,
        version,
        OrderEvent::PaymentChallengeRequired(challenge),
    )
}

/// `PaymentAuthorized` for the whole 32.40 USD.
pub fn authorized_event(order: OrderId, version: i64) -> EventEnvelope {
    let authorized = PaymentAuthorized {
        order_id: order,
        authorization_id: "auth_1".into(),
        amount: usd(3240),
        three_ds: false,
        expires_at: at(7 * 24 * 3600),
        authorized_at: at(version),
    };
    envelope(order, version, OrderEvent::PaymentAuthorized(authorized))
}

/// `PaymentDeclined` with the gateway's `code`.
pub fn declined_event(order: OrderId, version: i64, code: &str) -> EventEnvelope {
    let declined = PaymentDeclined {
        order_id: order,
        authorization_id: Some("auth_1".into()),
        code: code.into(),
        message: format!("gateway says {code} (ref 8841)"),
        declined_at: at(version),
    };
    envelope(order, version, OrderEvent::PaymentDeclined(declined))
}

/// `PaymentCaptured` of `minor` cents.
pub fn captured_event(order: OrderId, version: i64, minor: i64) -> EventEnvelope {
    let captured = PaymentCaptured {
        order_id: order,
        authorization_id: "auth_1".into(),
        capture_id: format!("cap_{version}"),
        amount: usd(minor),
        captured_at: at(version),
    };
    envelope(order, version, OrderEvent::PaymentCaptured(captured))
}

/// `PaymentVoided` after a cancellation.
pub fn voided_event(order: OrderId, version: i64) -> EventEnvelope {
    let voided = PaymentVoided {
        order_id: order,
        authorization_id: "auth_1".into(),
        reason: "order_cancelled".into(),
        voided_at: at(version),
    };
    envelope(order, version, OrderEvent::PaymentVoided(voided))
}

/// `PaymentAuthorizationExpired`.
pub fn authorization_expired(order: OrderId, version: i64) -> EventEnvelope {
    let expired = PaymentAuthorizationExpired {
        order_id: order,
        authorization_id: "auth_1".into(),
        expired_at: at(version),
    };
    envelope(
        order,
        version,
        OrderEvent::PaymentAuthorizationExpired(expired),
    )
}

/// `PaymentCaptureFailed`: the gateway refused the capture for good (voided at the gateway).
pub fn capture_failed_event(order: OrderId, version: i64) -> EventEnvelope {
    let failed = waybill_schemas::events::PaymentCaptureFailed {
        order_id: order,
        authorization_id: "auth_1".into(),
        amount: usd(100),
        code: "authorization_voided".into(),
        message: "the authorization was voided".into(),
        failed_at: at(version),
    };
    envelope(order, version, OrderEvent::PaymentCaptureFailed(failed))
}

/// `OrderConfirmed`, capturing immediately.
pub fn confirmed_event(order: OrderId, version: i64) -> EventEnvelope {
    let confirmed = OrderConfirmed {
        order_id: order,
        capture_mode: CaptureMode::Immediate,
        confirmed_at: at(version),
    };
    envelope(order, version, OrderEvent::OrderConfirmed(confirmed))
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb)",
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
        .bind(e.payload.as_str())
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
        // Tests hold views behind the log on purpose to watch the consumer fill gaps; the
        // audit, which would fill them too, runs only where a test turns it on.
        audit: crate::runtime::Audit {
            every: std::time::Duration::ZERO,
            ..crate::runtime::Audit::default()
        },
        ..ProjectorConfig::new(
            format!("PROJ_{tag}"),
            format!("proj{tag}"),
            format!("test-{tag}"),
        )
    }
}

/// The test Redis: `REDIS_URL` (one node, or a cluster's seeds), default the machine's 6379.
pub async fn redis() -> crate::RedisConnection {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    crate::RedisTarget::parse(&url, false)
        .expect("REDIS_URL")
        .connect()
        .await
        .expect("redis up")
}

/// A fresh, migrated ClickHouse database (`waybill_test_<hex>`) on the server at
/// `WAYBILL_CLICKHOUSE_URL` (default `http://127.0.0.1:8124`, what
/// `infra/scripts/ensure-clickhouse.sh` starts). Fails, never skips, when ClickHouse is down.
pub async fn fresh_warehouse() -> crate::warehouse::WarehouseConfig {
    let url = std::env::var("WAYBILL_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8124".to_owned());
    let database = format!("waybill_test_{}", Uuid::now_v7().simple());
    let config = crate::warehouse::WarehouseConfig::new(url, database);
    crate::warehouse::migrate(&config)
        .await
        .expect("ClickHouse must be running (infra/scripts/ensure-clickhouse.sh)");
    config
}

/// Drops a database made by [`fresh_warehouse`].
pub async fn drop_warehouse(config: &crate::warehouse::WarehouseConfig) {
    config
        .server_client()
        .query(&format!("DROP DATABASE IF EXISTS {}", config.database))
        .execute()
        .await
        .expect("drop test database");
}

/// `PaymentRefunded` of `minor` cents as gateway refund `re_<version>` of capture `cap_6`.
pub fn refunded_event(order: OrderId, version: i64, minor: i64) -> EventEnvelope {
    let refunded = waybill_schemas::events::PaymentRefunded {
        order_id: order,
        refund_id: Uuid::now_v7(),
        capture_id: "cap_6".into(),
        gateway_refund_id: format!("re_{version}"),
        amount: usd(minor),
        refunded_at: at(version),
    };
    envelope(order, version, OrderEvent::PaymentRefunded(refunded))
}

/// `ChargebackOpened` of `minor` cents as dispute `dp_<order>`.
pub fn chargeback_opened(order: OrderId, version: i64, minor: i64) -> EventEnvelope {
    let opened = waybill_schemas::events::ChargebackOpened {
        order_id: order,
        dispute_id: format!("dp_{}", order.as_uuid().simple()),
        capture_id: "cap_6".into(),
        amount: usd(minor),
        reason_code: "10.4".into(),
        evidence_due_by: at(14 * 24 * 3600),
        opened_at: at(version),
    };
    envelope(order, version, OrderEvent::ChargebackOpened(opened))
}

/// `ChargebackLost` of `minor` cents on dispute `dp_<order>`.
pub fn chargeback_lost(order: OrderId, version: i64, minor: i64) -> EventEnvelope {
    let lost = waybill_schemas::events::ChargebackLost {
        order_id: order,
        dispute_id: format!("dp_{}", order.as_uuid().simple()),
        amount: usd(minor),
        decided_at: at(version),
    };
    envelope(order, version, OrderEvent::ChargebackLost(lost))
}

/// `event` as version 1 of `stream_id` (a settlement or payout stream).
pub fn stream_event(stream_id: &str, event: OrderEvent) -> EventEnvelope {
    EventEnvelope {
        stream_id: stream_id.to_owned(),
        channel: None,
        ..envelope(OrderId::new_v7(), 1, event)
    }
}

/// A settlement line in USD: `gross` and `fee` in cents, net = gross − fee.
pub fn settlement_line(
    line_no: u32,
    transaction_id: &str,
    kind: waybill_schemas::events::SettlementLineKind,
    order: Option<OrderId>,
    gross: i64,
    fee: i64,
) -> waybill_schemas::events::SettlementLine {
    let day = at(0).date_naive();
    waybill_schemas::events::SettlementLine {
        line_no,
        transaction_id: transaction_id.to_owned(),
        kind,
        order_id: order,
        gross: usd(gross),
        fee: usd(fee),
        net: usd(gross - fee),
        original: None,
        payout_id: Some("po_1".into()),
        transaction_date: day,
        settled_on: day.succ_opt().expect("next day"),
    }
}

/// `SettlementReportImported` of `lines` in stream `settlement-<report_id>`.
pub fn report_event(
    report_id: &str,
    lines: Vec<waybill_schemas::events::SettlementLine>,
) -> EventEnvelope {
    let report = waybill_schemas::events::SettlementReportImported {
        report_id: report_id.to_owned(),
        gateway: "sandbox".into(),
        report_date: at(0).date_naive(),
        lines,
        imported_by: "finance-test".into(),
        imported_at: at(86_400),
    };
    stream_event(
        &waybill_schemas::events::settlement::settlement_stream_id(report_id),
        OrderEvent::SettlementReportImported(report),
    )
}

/// `PayoutRecorded` `po_1` of `minor` cents settling `transaction_ids`.
pub fn payout_event(minor: i64, transaction_ids: &[&str]) -> EventEnvelope {
    let payout = waybill_schemas::events::PayoutRecorded {
        payout_id: "po_1".into(),
        gateway: "sandbox".into(),
        amount: usd(minor),
        paid_on: at(2 * 86_400).date_naive(),
        report_id: "r1".into(),
        transaction_ids: transaction_ids.iter().map(|t| (*t).to_owned()).collect(),
        recorded_at: at(86_400),
    };
    stream_event(
        &waybill_schemas::events::settlement::payout_stream_id("sandbox", "po_1"),
        OrderEvent::PayoutRecorded(payout),
    )
}

/// One of each money event after capture (refund requested/refunded/failed, chargeback
/// opened/evidence/won/lost), all at `version`, for tests that need every kind.
pub fn money_events(order: OrderId, version: i64) -> Vec<EventEnvelope> {
    use waybill_schemas::events::{
        ChargebackEvidenceSubmitted, ChargebackLost, ChargebackOpened, ChargebackWon,
        PaymentRefunded, RefundFailed, RefundKind, RefundRequested,
    };
    let refund_id = uuid::Uuid::now_v7();
    let dispute = || "dp_1".to_owned();
    [
        OrderEvent::RefundRequested(RefundRequested {
            order_id: order,
            refund_id,
            amount: usd(100),
            kind: RefundKind::Goodwill,
            reason: "test".into(),
            requested_by: "agent".into(),
            requested_at: at(version),
        }),
        OrderEvent::PaymentRefunded(PaymentRefunded {
            order_id: order,
            refund_id,
            capture_id: "cap_1".into(),
            gateway_refund_id: "re_1".into(),
            amount: usd(100),
            refunded_at: at(version),
        }),
        OrderEvent::RefundFailed(RefundFailed {
            order_id: order,
            refund_id,
            code: "refund_failed".into(),
            message: "no".into(),
            failed_at: at(version),
        }),
        OrderEvent::ChargebackOpened(ChargebackOpened {
            order_id: order,
            dispute_id: dispute(),
            capture_id: "cap_1".into(),
            amount: usd(100),
            reason_code: "fraudulent".into(),
            evidence_due_by: at(version),
            opened_at: at(version),
        }),
        OrderEvent::ChargebackEvidenceSubmitted(ChargebackEvidenceSubmitted {
            order_id: order,
            dispute_id: dispute(),
            evidence_id: refund_id,
            text: "proof".into(),
            submitted_by: "agent".into(),
            submitted_at: at(version),
        }),
        OrderEvent::ChargebackWon(ChargebackWon {
            order_id: order,
            dispute_id: dispute(),
            decided_at: at(version),
        }),
        OrderEvent::ChargebackLost(ChargebackLost {
            order_id: order,
            dispute_id: dispute(),
            amount: usd(100),
            decided_at: at(version),
        }),
    ]
    .into_iter()
    .map(|event| envelope(order, version, event))
    .collect()
}
