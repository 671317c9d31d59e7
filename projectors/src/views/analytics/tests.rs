//! The analytics view: its pure fold, its store against the real ClickHouse, and the whole
//! projector path against the real NATS, Postgres and ClickHouse, each test in its own stream,
//! database and warehouse database.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use clickhouse::Row;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use waybill_schemas::events::RiskDecision;
use waybill_schemas::subject::subject_for;
use waybill_schemas::{EventEnvelope, OrderId};
use waybill_write_side::outbox::relay::{ensure_stream, HEADER_STREAM_VERSION};

use super::*;
use crate::run_analytics_projector;
use crate::runtime::{dead_letter_stream_name, ProjectorConfig};
use crate::testing::{
    at, authorized_event, cancelled_event, captured_event, confirmed_event, drop_warehouse,
    fresh_database, fresh_warehouse, isolated_config, placed_event, reserved_event, risk_assessed,
    seed, voided_event,
};
use crate::warehouse::rows::seconds;
use crate::warehouse::WarehouseConfig;

const DEADLINE: Duration = Duration::from_secs(30);

/// The full happy path of one order: versions 1..=6.
fn lifecycle(order: OrderId) -> Vec<EventEnvelope> {
    vec![
        placed_event(order, 1),
        risk_assessed(order, 2, RiskDecision::Accept),
        reserved_event(order, 3),
        authorized_event(order, 4),
        confirmed_event(order, 5),
        captured_event(order, 6, 3240),
    ]
}

fn fold(events: &[EventEnvelope]) -> OrderAnalytics {
    let mut state: Option<OrderAnalytics> = None;
    for event in events {
        state = Some(apply(state.as_ref(), event).expect("applies"));
    }
    state.expect("at least one event")
}

#[test]
fn the_lifecycle_folds_into_stage_times_totals_and_ledger_entries() {
    let order = OrderId::new_v7();
    let events = lifecycle(order);
    let state = fold(&events);
    let fact = &state.fact;
    assert_eq!(fact.order_id, order.to_string());
    assert_eq!(fact.channel, "web");
    assert_eq!(fact.currency, "USD");
    assert_eq!(fact.status, status::CAPTURED);
    assert_eq!(fact.version, 6);
    assert_eq!((fact.line_count, fact.item_count), (1, 2));
    assert_eq!((fact.subtotal, fact.tax_total), (3000, 240));
    assert_eq!((fact.authorized, fact.captured), (3240, 3240));
    assert_eq!(fact.risk_assessed_at, Some(seconds(at(2))));
    assert_eq!(fact.reserved_at, Some(seconds(at(3))));
    assert_eq!(fact.confirmed_at, Some(seconds(at(5))));
    assert_eq!(fact.captured_at, Some(seconds(at(6))));
    assert_eq!(fact.cancelled_at, None);
    assert_eq!(state.lines.len(), 1);
    assert_eq!(state.lines[0].sku, events_sku(&events[0]));
    let kinds: Vec<(&str, i64, &str)> = state
        .ledger
        .iter()
        .map(|e| (e.kind.as_str(), e.amount, e.gateway_txn_id.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (entry_kind::AUTHORIZATION, 3240, "auth_1"),
            (entry_kind::CAPTURE, 3240, "cap_6")
        ]
    );
    assert_eq!(state.ledger[1].entry_id, events[5].event_id.to_string());
}

fn events_sku(placed: &EventEnvelope) -> String {
    match placed.decode().expect("decodes") {
        waybill_schemas::OrderEvent::OrderPlaced(p) => p.lines[0].sku.as_str().to_owned(),
        other => panic!("not placed: {other:?}"),
    }
}

#[test]
fn a_cancelled_order_keeps_its_reason_and_books_the_void() {
    let order = OrderId::new_v7();
    let events = vec![
        placed_event(order, 1),
        authorized_event(order, 2),
        cancelled_event(order, 3),
        voided_event(order, 4),
    ];
    let state = fold(&events);
    assert_eq!(state.fact.status, status::CANCELLED);
    assert_eq!(state.fact.cancel_reason, "customer_request");
    assert_eq!(state.fact.cancelled_at, Some(seconds(at(100))));
    let last = state.ledger.last().expect("void entry");
    assert_eq!((last.kind.as_str(), last.amount), (entry_kind::VOID, 3240));
}

#[test]
fn events_before_placement_and_a_second_placement_are_refused() {
    let order = OrderId::new_v7();
    assert!(matches!(
        apply(None, &captured_event(order, 1, 5)),
        Err(AnalyticsError::NotPlaced { .. })
    ));
    let placed = fold(&[placed_event(order, 1)]);
    assert!(matches!(
        apply(Some(&placed), &placed_event(order, 2)),
        Err(AnalyticsError::AlreadyPlaced { .. })
    ));
}

#[derive(Debug, Row, Deserialize, PartialEq)]
struct Totals {
    orders: u64,
    captured: i64,
    entries: u64,
    entry_sum: i64,
    lines: u64,
}

async fn totals(warehouse: &WarehouseConfig) -> Totals {
    warehouse
        .client()
        .query(
            "SELECT \
               (SELECT count() FROM order_facts FINAL) AS orders, \
               (SELECT sum(captured) FROM order_facts FINAL) AS captured, \
               (SELECT count() FROM ledger_entries FINAL) AS entries, \
               (SELECT sum(amount) FROM ledger_entries FINAL) AS entry_sum, \
               (SELECT count() FROM line_facts FINAL) AS lines",
        )
        .fetch_one()
        .await
        .expect("totals")
}

#[tokio::test]
async fn writing_the_same_batch_twice_leaves_one_row_each() {
    let warehouse = fresh_warehouse().await;
    let store = AnalyticsStore::new(warehouse.client());
    let order = OrderId::new_v7();
    let state = fold(&lifecycle(order));
    store
        .write(std::slice::from_ref(&state))
        .await
        .expect("write");
    store
        .write(std::slice::from_ref(&state))
        .await
        .expect("rewrite");
    let loaded = store
        .load_streams(&[order.stream_id(), OrderId::new_v7().stream_id()])
        .await
        .expect("load");
    assert_eq!(loaded[0].as_ref().map(|s| &s.fact), Some(&state.fact));
    assert_eq!(loaded[1], None);
    let seen = totals(&warehouse).await;
    drop_warehouse(&warehouse).await;
    assert_eq!(
        seen,
        Totals {
            orders: 1,
            captured: 3240,
            entries: 2,
            entry_sum: 6480,
            lines: 1
        }
    );
}

struct Env {
    config: ProjectorConfig,
    js: jetstream::Context,
    pool: sqlx::PgPool,
    warehouse: WarehouseConfig,
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Env {
    async fn new() -> Self {
        let config = isolated_config();
        let client = async_nats::connect("nats://127.0.0.1:4222")
            .await
            .expect("nats up");
        let js = jetstream::new(client);
        ensure_stream(&js, &config.stream_name, &config.subject_root)
            .await
            .expect("event stream");
        Self {
            config,
            js,
            pool: fresh_database().await,
            warehouse: fresh_warehouse().await,
        }
    }

    fn start(&self) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_analytics_projector(
            self.config.clone(),
            self.warehouse.clone(),
            self.pool.clone(),
            self.js.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Running { stop, task }
    }

    /// Publishes like the relay but without `Nats-Msg-Id`, so repeats reach the consumer.
    async fn publish(&self, event: &EventEnvelope) {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_STREAM_VERSION, event.stream_version.to_string());
        let subject = subject_for(
            &self.config.subject_root,
            &event.stream_id,
            &event.event_type,
            8,
        );
        self.js
            .publish_with_headers(
                subject,
                headers,
                serde_json::to_vec(event).expect("json").into(),
            )
            .await
            .expect("publish")
            .await
            .expect("stream ack");
    }

    async fn wait_until_all_acked(&self) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let stream = self
                .js
                .get_stream(&self.config.stream_name)
                .await
                .expect("stream");
            if let Ok(mut consumer) = stream
                .get_consumer::<jetstream::consumer::pull::Config>(VIEW_NAME)
                .await
            {
                let info = consumer.info().await.expect("consumer info");
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "messages left unacknowledged"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn cleanup(self) {
        let _ = self.js.delete_stream(&self.config.stream_name).await;
        let _ = self
            .js
            .delete_stream(dead_letter_stream_name(&self.config.stream_name))
            .await;
        drop_warehouse(&self.warehouse).await;
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("projector task")
            .expect("projector result");
    }
}

/// Redelivered, reordered and missing events (gaps the runtime fills from the event store)
/// still end in exactly one row per natural key, with the event log's totals.
#[tokio::test]
async fn duplicates_reordering_and_gaps_end_in_the_event_logs_totals() {
    let env = Env::new().await;
    let orders: Vec<OrderId> = (0..40).map(|_| OrderId::new_v7()).collect();
    let mut log = Vec::new();
    for order in &orders {
        log.extend(lifecycle(*order));
    }
    seed(&env.pool, &log).await;

    let running = env.start();
    // Every order's events newest first, versions 3 and 5 held back (the gap is read from the
    // event store), then the whole log again as redelivery.
    for order_events in log.chunks(6) {
        for event in order_events.iter().rev() {
            if event.stream_version != 3 && event.stream_version != 5 {
                env.publish(event).await;
            }
        }
    }
    for event in &log {
        env.publish(event).await;
    }
    env.wait_until_all_acked().await;
    running.stop().await;

    let seen = totals(&env.warehouse).await;
    let captured_in_log: i64 = 3240 * orders.len() as i64;
    let expected = Totals {
        orders: orders.len() as u64,
        captured: captured_in_log,
        entries: 2 * orders.len() as u64,
        entry_sum: 2 * captured_in_log,
        lines: orders.len() as u64,
    };
    env.cleanup().await;
    assert_eq!(seen, expected);
}
