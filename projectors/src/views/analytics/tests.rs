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
    at, authorized_event, cancelled_event, captured_event, chargeback_lost, chargeback_opened,
    confirmed_event, drop_warehouse, fresh_database, fresh_warehouse, isolated_config,
    payout_event, placed_event, refunded_event, report_event, reserved_event, risk_assessed, seed,
    settlement_line, voided_event,
};
use crate::warehouse::rows::seconds;
use crate::warehouse::WarehouseConfig;
use waybill_schemas::events::SettlementLineKind;

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

fn fold_state(events: &[EventEnvelope]) -> AnalyticsState {
    let mut state: Option<AnalyticsState> = None;
    for event in events {
        state = Some(apply(state.as_ref(), event).expect("applies"));
    }
    state.expect("at least one event")
}

fn fold(events: &[EventEnvelope]) -> OrderAnalytics {
    match fold_state(events) {
        AnalyticsState::Order(order) => order,
        other => panic!("not an order: {other:?}"),
    }
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
    let placed = fold_state(&[placed_event(order, 1)]);
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
    let state = fold_state(&lifecycle(order));
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
    let AnalyticsState::Order(written) = &state else {
        panic!("order state")
    };
    assert_eq!(
        loaded[0],
        Some(AnalyticsState::Order(OrderAnalytics {
            fact: written.fact.clone(),
            lines: Vec::new(),
            ledger: Vec::new(),
            shipments: Vec::new(),
            returns: Vec::new()
        }))
    );
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

#[test]
fn refunds_and_lost_chargebacks_move_the_order_and_its_ledger() {
    let order = OrderId::new_v7();
    let mut events = lifecycle(order);
    events.push(refunded_event(order, 7, 500));
    events.push(refunded_event(order, 8, 240));
    events.push(chargeback_opened(order, 9, 2500));
    events.push(chargeback_lost(order, 10, 2500));
    let state = fold(&events);
    assert_eq!(
        (
            state.fact.captured,
            state.fact.refunded,
            state.fact.chargebacks_lost
        ),
        (3240, 740, 2500)
    );
    let kinds: Vec<(&str, i64, &str)> = state.ledger[2..]
        .iter()
        .map(|e| (e.kind.as_str(), e.amount, e.gateway_txn_id.as_str()))
        .collect();
    let dispute = format!("dp_{}", order.as_uuid().simple());
    assert_eq!(
        kinds,
        vec![
            (entry_kind::REFUND, 500, "re_7"),
            (entry_kind::REFUND, 240, "re_8"),
            (entry_kind::CHARGEBACK_OPENED, 2500, dispute.as_str()),
            (entry_kind::CHARGEBACK_LOST, 2500, dispute.as_str()),
        ]
    );
}

#[test]
fn a_settlement_report_gives_its_lines_and_a_fee_entry_per_line_with_a_fee() {
    let order = OrderId::new_v7();
    let report = report_event(
        "r1",
        vec![
            settlement_line(
                1,
                "cap_6",
                SettlementLineKind::Capture,
                Some(order),
                3240,
                124,
            ),
            settlement_line(2, "re_7", SettlementLineKind::Refund, Some(order), -500, 0),
            settlement_line(3, "fee_x", SettlementLineKind::Fee, None, 0, 99),
        ],
    );
    let AnalyticsState::Settlement(state) = fold_state(&[report]) else {
        panic!("settlement state")
    };
    assert_eq!(state.version, 1);
    assert_eq!(state.stream_id, "settlement-r1");
    assert_eq!(state.lines.len(), 3);
    assert_eq!((state.lines[1].gross, state.lines[1].net), (-500, -500));
    let fees: Vec<(&str, &str, i64)> = state
        .fees
        .iter()
        .map(|f| (f.entry_id.as_str(), f.gateway_txn_id.as_str(), f.amount))
        .collect();
    assert_eq!(fees, vec![("r1:1", "cap_6", 124), ("r1:3", "fee_x", 99)]);
    assert_eq!(state.fees[0].order_id, order.to_string());
    let AnalyticsState::Settlement(payout) = fold_state(&[payout_event(2615, &["cap_6", "re_7"])])
    else {
        panic!("payout state")
    };
    assert_eq!(
        (
            payout.payouts[0].amount,
            payout.payouts[0].transaction_count
        ),
        (2615, 2)
    );
}

#[derive(Debug, Row, Deserialize, PartialEq)]
struct KindSum {
    kind: String,
    total: i64,
    entries: u64,
}

/// Money events and a settlement report through the projector, each published twice: the
/// warehouse's ledger sums per kind equal the sums computed from the event log.
#[tokio::test]
async fn money_events_and_reports_reach_the_ledger_once_with_the_logs_sums() {
    let env = Env::new().await;
    let orders: Vec<OrderId> = (0..12).map(|_| OrderId::new_v7()).collect();
    let mut log = Vec::new();
    let mut lines = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        log.extend(lifecycle(*order));
        let refund = 100 + i as i64;
        log.push(refunded_event(*order, 7, refund));
        if i % 4 == 0 {
            log.push(chargeback_opened(*order, 8, 1000));
            log.push(chargeback_lost(*order, 9, 1000));
        }
        lines.push(settlement_line(
            u32::try_from(i + 1).expect("small"),
            &format!("cap_{i}"),
            SettlementLineKind::Capture,
            Some(*order),
            3240,
            30 + i as i64,
        ));
    }
    log.push(report_event("r-money", lines));
    log.push(payout_event(12_345, &["cap_0"]));
    seed(&env.pool, &log).await;

    let running = env.start();
    for event in log.iter().chain(log.iter()) {
        env.publish(event).await;
    }
    env.wait_until_all_acked().await;
    running.stop().await;

    let mut expected: std::collections::BTreeMap<String, (i64, u64)> = Default::default();
    for event in &log {
        let booked: Vec<(&str, i64)> = match event.decode().expect("decodes") {
            waybill_schemas::OrderEvent::PaymentAuthorized(e) => {
                vec![(entry_kind::AUTHORIZATION, e.amount.minor)]
            }
            waybill_schemas::OrderEvent::PaymentCaptured(e) => {
                vec![(entry_kind::CAPTURE, e.amount.minor)]
            }
            waybill_schemas::OrderEvent::PaymentRefunded(e) => {
                vec![(entry_kind::REFUND, e.amount.minor)]
            }
            waybill_schemas::OrderEvent::ChargebackOpened(e) => {
                vec![(entry_kind::CHARGEBACK_OPENED, e.amount.minor)]
            }
            waybill_schemas::OrderEvent::ChargebackLost(e) => {
                vec![(entry_kind::CHARGEBACK_LOST, e.amount.minor)]
            }
            waybill_schemas::OrderEvent::SettlementReportImported(r) => r
                .lines
                .iter()
                .filter(|l| l.fee.minor != 0)
                .map(|l| (entry_kind::FEE, l.fee.minor))
                .collect(),
            _ => Vec::new(),
        };
        for (kind, amount) in booked {
            let slot = expected.entry(kind.to_owned()).or_default();
            slot.0 += amount;
            slot.1 += 1;
        }
    }
    let seen: Vec<KindSum> = env
        .warehouse
        .client()
        .query(
            "SELECT kind, sum(amount) AS total, count() AS entries FROM ledger_entries FINAL \
             GROUP BY kind ORDER BY kind",
        )
        .fetch_all()
        .await
        .expect("sums");
    let payouts: u64 = env
        .warehouse
        .client()
        .query("SELECT count() FROM payouts FINAL")
        .fetch_one()
        .await
        .expect("payouts");
    let report_lines: u64 = env
        .warehouse
        .client()
        .query("SELECT count() FROM settlement_lines FINAL")
        .fetch_one()
        .await
        .expect("report lines");
    env.cleanup().await;
    let expected: Vec<KindSum> = expected
        .into_iter()
        .map(|(kind, (total, entries))| KindSum {
            kind,
            total,
            entries,
        })
        .collect();
    assert_eq!(seen, expected);
    assert_eq!((payouts, report_lines), (1, 12));
}

#[derive(Debug, Row, Deserialize, PartialEq)]
struct FeeChannel {
    gateway_txn_id: String,
    channel: String,
}

#[tokio::test]
async fn fees_written_after_their_order_get_its_channel_and_account_fees_none() {
    let warehouse = fresh_warehouse().await;
    let store = AnalyticsStore::new(warehouse.client());
    let order = OrderId::new_v7();
    store
        .write(&[fold_state(&lifecycle(order))])
        .await
        .expect("order");
    let report = report_event(
        "r-channels",
        vec![
            settlement_line(
                1,
                "cap_6",
                SettlementLineKind::Capture,
                Some(order),
                3240,
                124,
            ),
            settlement_line(2, "fee_acct", SettlementLineKind::Fee, None, 0, 250),
        ],
    );
    store.write(&[fold_state(&[report])]).await.expect("report");
    let fees: Vec<FeeChannel> = warehouse
        .client()
        .query(
            "SELECT gateway_txn_id, channel FROM ledger_entries FINAL WHERE kind = 'fee' \
             ORDER BY gateway_txn_id",
        )
        .fetch_all()
        .await
        .expect("fees");
    drop_warehouse(&warehouse).await;
    assert_eq!(
        fees,
        vec![
            FeeChannel {
                gateway_txn_id: "cap_6".into(),
                channel: "web".into()
            },
            FeeChannel {
                gateway_txn_id: "fee_acct".into(),
                channel: String::new()
            },
        ]
    );
}

fn shipment_created(order: OrderId, version: i64) -> EventEnvelope {
    use waybill_schemas::events::{FulfillmentLine, ShipmentCreated};
    use waybill_schemas::{Quantity, Sku};
    let created = ShipmentCreated {
        order_id: order,
        shipment_id: format!("{order}-F1-S1"),
        fulfillment_id: format!("{order}-F1"),
        carrier: "parcelco".into(),
        tracking_number: "PC1".into(),
        tracking_url: "http://carrier.test/track/PC1".into(),
        label_url: "http://carrier.test/labels/PC1".into(),
        lines: vec![FulfillmentLine {
            line_no: 1,
            sku: Sku::parse("TEE-1").expect("sku"),
            quantity: Quantity::parse(1).expect("quantity"),
        }],
        eta: at(9_000),
        created_at: at(7_000),
    };
    crate::testing::envelope(
        order,
        version,
        waybill_schemas::OrderEvent::ShipmentCreated(created),
    )
}

fn shipment_tracked(
    order: OrderId,
    version: i64,
    status: waybill_schemas::events::CarrierStatus,
    carrier_seconds: i64,
) -> EventEnvelope {
    let tracked = waybill_schemas::events::ShipmentTracked {
        order_id: order,
        shipment_id: format!("{order}-F1-S1"),
        carrier_event_id: format!("scan-{version}"),
        status,
        carrier_time: at(carrier_seconds),
        description: "scan".into(),
        location: None,
        proof: None,
        recorded_at: at(carrier_seconds + 1),
    };
    crate::testing::envelope(
        order,
        version,
        waybill_schemas::OrderEvent::ShipmentTracked(tracked),
    )
}

#[tokio::test]
async fn a_parcel_row_keeps_its_carrier_across_batches_and_ends_delivered() {
    use waybill_schemas::events::CarrierStatus;
    let warehouse = fresh_warehouse().await;
    let store = AnalyticsStore::new(warehouse.client());
    let order = OrderId::new_v7();
    // Batch 1: checkout and the label.
    let mut first = lifecycle(order);
    first.push(shipment_created(order, 7));
    store
        .write(&[fold_state(&first)])
        .await
        .expect("write batch 1");
    // Batch 2 starts from what the store holds, as the runtime does: the scans alone name no
    // carrier, so the row must come back with the state.
    let loaded = store
        .load_streams(&[order.stream_id()])
        .await
        .expect("load")
        .remove(0)
        .expect("stored state");
    let mut state = Some(loaded);
    for event in [
        shipment_tracked(order, 8, CarrierStatus::InTransit, 8_000),
        shipment_tracked(order, 9, CarrierStatus::Delivered, 8_500),
    ] {
        state = Some(apply(state.as_ref(), &event).expect("applies"));
    }
    store
        .write(&[state.expect("state")])
        .await
        .expect("write batch 2");
    let rows: Vec<ShipmentRow> = warehouse
        .client()
        .query("SELECT ?fields FROM shipments FINAL")
        .fetch_all()
        .await
        .expect("read shipments");
    drop_warehouse(&warehouse).await;
    assert_eq!(
        rows,
        vec![ShipmentRow {
            shipment_id: format!("{order}-F1-S1"),
            order_id: order.to_string(),
            channel: "web".into(),
            carrier: "parcelco".into(),
            status: "delivered".into(),
            shipped_at: Some(seconds(at(8_000))),
            delivered_at: Some(seconds(at(8_500))),
            version: 9,
        }]
    );
}

/// Every table the view writes, as sorted rows of text (`FINAL`), to compare two warehouses.
async fn contents(warehouse: &WarehouseConfig) -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for table in TABLES {
        let rows: Vec<String> = warehouse
            .client()
            .query(&format!(
                "SELECT toString(tuple(*)) AS row FROM {table} FINAL ORDER BY row"
            ))
            .fetch_all()
            .await
            .expect("table rows");
        all.push(((*table).to_owned(), rows));
    }
    all
}

/// `rebuild analytics` builds a new generation from the log and switches it in: a live row
/// that was wrong at its version is corrected, events the live projector never applied are
/// in, every table equals a clean replay of the log into an empty warehouse, the
/// reconciliation results (not the view's) stay, and no generation database is left behind.
#[tokio::test]
async fn a_rebuild_switches_in_a_generation_equal_to_a_clean_replay() {
    let pool = fresh_database().await;
    let live = fresh_warehouse().await;
    let clean = fresh_warehouse().await;
    let events = waybill_write_side::event_store::EventStore::new(pool.clone());
    let (a, b, late) = (OrderId::new_v7(), OrderId::new_v7(), OrderId::new_v7());
    seed(&pool, &lifecycle(a)).await;
    seed(&pool, &[placed_event(b, 1), cancelled_event(b, 2)]).await;
    let projection = AnalyticsProjection::new(AnalyticsStore::new(live.client()));
    crate::runtime::replay_log(&events, &projection, None, 3, |_| {})
        .await
        .expect("live projection");
    // A wrong row at the current version (what a rebuild exists to fix), a reconciliation
    // result, and an order the live projector has not applied yet.
    let mut wrong: crate::warehouse::rows::OrderFactRow = live
        .client()
        .query("SELECT ?fields FROM order_facts FINAL WHERE order_id = ?")
        .bind(a.to_string())
        .fetch_one()
        .await
        .expect("a's fact");
    wrong.captured = 999_999;
    crate::warehouse::rows::insert_rows(&live.client(), "order_facts", &[wrong])
        .await
        .expect("corrupt a row");
    live.client()
        .query("INSERT INTO reconciliation_results (day, item_key, outcome, detail, run_version) VALUES (today(), 'k', 'matched', '', 1)")
        .execute()
        .await
        .expect("a reconciliation result");
    seed(&pool, &lifecycle(late)).await;

    let mut seen = Vec::new();
    let report = rebuild_analytics(&events, &live, 3, |done| seen.push(done))
        .await
        .expect("rebuild");
    assert_eq!(report.streams, 3);
    assert_eq!(report.unappliable, 0);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]) && !seen.is_empty(),
        "progress grows: {seen:?}"
    );

    crate::runtime::replay_log(
        &events,
        &AnalyticsProjection::new(AnalyticsStore::new(clean.client())),
        None,
        1_000,
        |_| {},
    )
    .await
    .expect("clean replay");
    assert_eq!(contents(&live).await, contents(&clean).await);
    assert_eq!(totals(&live).await.orders, 3);
    let results: u64 = live
        .client()
        .query("SELECT count() FROM reconciliation_results")
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(results, 1, "the reconciliation results stay");
    let left: Vec<String> = live
        .server_client()
        .query("SELECT name FROM system.databases WHERE startsWith(name, ?)")
        .bind(format!("{}_", live.database))
        .fetch_all()
        .await
        .expect("databases");
    assert_eq!(left, Vec::<String>::new(), "generation databases dropped");
    drop_warehouse(&live).await;
    drop_warehouse(&clean).await;
}
