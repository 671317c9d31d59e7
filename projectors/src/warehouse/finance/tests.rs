//! The finance queries against the real ClickHouse, over rows the analytics view wrote from a
//! known event log: every number is checked against sums the test computes from the log.

use waybill_schemas::events::{RiskDecision, SettlementLineKind};
use waybill_schemas::{EventEnvelope, OrderEvent, OrderId};

use super::*;
use crate::reconciliation::{run_reconciliation, FeeSchedule};
use crate::testing::{
    at, authorized_event, cancelled_event, captured_event, chargeback_lost, chargeback_opened,
    confirmed_event, drop_warehouse, fresh_warehouse, payout_event, placed_event, refunded_event,
    report_event, reserved_event, risk_assessed, settlement_line,
};
use crate::views::analytics::{apply, AnalyticsState, AnalyticsStore};
use crate::warehouse::rows::days;

const ALL: Page = Page {
    limit: 1_000,
    offset: 0,
};

async fn project(store: &AnalyticsStore, streams: &[Vec<EventEnvelope>]) {
    let mut states = Vec::new();
    for events in streams {
        let mut state: Option<AnalyticsState> = None;
        for event in events {
            state = Some(apply(state.as_ref(), event).expect("applies"));
        }
        states.extend(state);
    }
    store.write(&states).await.expect("write");
}

fn day() -> DateRange {
    let d = at(0).date_naive();
    DateRange { from: d, to: d }
}

/// Captured orders (4), partial refunds on two, a lost chargeback on one, a cancelled order,
/// and a report with fees.
fn event_log(orders: &[OrderId]) -> Vec<Vec<EventEnvelope>> {
    let mut streams = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        let mut events = vec![
            placed_event(*order, 1),
            risk_assessed(*order, 2, RiskDecision::Accept),
            reserved_event(*order, 3),
            authorized_event(*order, 4),
        ];
        if i == 4 {
            events.push(cancelled_event(*order, 5));
        } else {
            events.push(confirmed_event(*order, 5));
            events.push(captured_event(*order, 6, 3240));
            if i < 2 {
                events.push(refunded_event(*order, 7, 500 + i as i64));
            }
            if i == 3 {
                events.push(chargeback_opened(*order, 7, 3240));
                events.push(chargeback_lost(*order, 8, 3240));
            }
        }
        streams.push(events);
    }
    let lines = orders[..4]
        .iter()
        .enumerate()
        .map(|(i, order)| {
            settlement_line(
                u32::try_from(i + 1).expect("small"),
                &format!("cap_{i}"),
                SettlementLineKind::Capture,
                Some(*order),
                3240,
                124 + i as i64,
            )
        })
        .collect();
    streams.push(vec![report_event("r-fin", lines)]);
    streams.push(vec![payout_event(
        12_466,
        &["cap_0", "cap_1", "cap_2", "cap_3"],
    )]);
    streams
}

#[tokio::test]
async fn the_daily_summary_equals_the_sums_of_the_event_log() {
    let warehouse = fresh_warehouse().await;
    let store = AnalyticsStore::new(warehouse.client());
    let orders: Vec<OrderId> = (0..5).map(|_| OrderId::new_v7()).collect();
    let log = event_log(&orders);
    project(&store, &log).await;

    let (mut gross, mut captures, mut refunds, mut lost, mut fees) = (0, 0, 0, 0, 0);
    for event in log.iter().flatten() {
        match event.decode().expect("decodes") {
            OrderEvent::OrderPlaced(p) => gross += p.totals.grand_total.minor,
            OrderEvent::PaymentCaptured(c) => captures += c.amount.minor,
            OrderEvent::PaymentRefunded(r) => refunds += r.amount.minor,
            OrderEvent::ChargebackLost(c) => lost += c.amount.minor,
            OrderEvent::SettlementReportImported(r) => {
                fees += r.lines.iter().map(|l| l.fee.minor).sum::<i64>()
            }
            _ => {}
        }
    }
    let finance = Finance::new(warehouse.client());
    let summary = finance
        .daily_summary(day(), &SummaryFilter::default(), ALL)
        .await
        .expect("summary");
    let filtered = finance
        .daily_summary(
            day(),
            &SummaryFilter {
                channel: Some("app".into()),
                currency: None,
            },
            ALL,
        )
        .await
        .expect("filtered summary");
    drop_warehouse(&warehouse).await;
    assert_eq!(
        summary,
        vec![DailySummaryRow {
            day: days(at(0).date_naive()),
            channel: "web".into(),
            currency: "USD".into(),
            orders: 5,
            gross_sales: gross,
            captures,
            refunds,
            fees,
            chargebacks: lost,
            net: captures - refunds - lost - fees,
        }]
    );
    assert_eq!((captures, refunds, lost, fees), (4 * 3240, 1001, 3240, 502));
    assert_eq!(filtered, Vec::new());
}

#[tokio::test]
async fn payouts_list_what_they_settle() {
    let warehouse = fresh_warehouse().await;
    let store = AnalyticsStore::new(warehouse.client());
    let orders: Vec<OrderId> = (0..5).map(|_| OrderId::new_v7()).collect();
    project(&store, &event_log(&orders)).await;
    let finance = Finance::new(warehouse.client());
    let paid = at(2 * 86_400).date_naive();
    let payouts = finance
        .payouts(
            DateRange {
                from: paid,
                to: paid,
            },
            ALL,
        )
        .await
        .expect("payouts");
    let lines = finance.payout_lines("po_1", ALL).await.expect("lines");
    let second_page = finance
        .payout_lines(
            "po_1",
            Page {
                limit: 3,
                offset: 3,
            },
        )
        .await
        .expect("page 2");
    drop_warehouse(&warehouse).await;
    assert_eq!(
        payouts,
        vec![PayoutSummaryRow {
            payout_id: "po_1".into(),
            currency: "USD".into(),
            amount: 12_466,
            paid_on: days(paid),
            transaction_count: 4,
            lines: 4,
            gross: 4 * 3240,
            fees: 502,
            net: 4 * 3240 - 502,
        }]
    );
    let ids: Vec<&str> = lines.iter().map(|l| l.gateway_txn_id.as_str()).collect();
    assert_eq!(ids, vec!["cap_0", "cap_1", "cap_2", "cap_3"]);
    assert_eq!(second_page.len(), 1);
    assert_eq!(second_page[0].gateway_txn_id, "cap_3");
}

#[tokio::test]
async fn operational_metrics_count_stages_times_and_cancellations() {
    let warehouse = fresh_warehouse().await;
    let store = AnalyticsStore::new(warehouse.client());
    let orders: Vec<OrderId> = (0..5).map(|_| OrderId::new_v7()).collect();
    project(&store, &event_log(&orders)).await;
    crate::warehouse::rows::insert_rows(
        &warehouse.client(),
        "returns",
        &[crate::warehouse::rows::ReturnRow {
            return_id: "ret-1".into(),
            order_id: orders[0].to_string(),
            line_no: 1,
            sku: "SKU-1".into(),
            channel: "web".into(),
            reason: "damaged".into(),
            quantity: 1,
            requested_at: crate::warehouse::rows::seconds(at(50)),
            version: 1,
        }],
    )
    .await
    .expect("a return");
    let finance = Finance::new(warehouse.client());
    let stages = finance.orders_per_stage(day()).await.expect("stages");
    let times = finance.time_in_stage(day()).await.expect("times");
    let cancellations = finance.cancellations(day()).await.expect("cancellations");
    let returns = finance.return_rates(day()).await.expect("returns");
    drop_warehouse(&warehouse).await;
    assert_eq!(
        stages,
        vec![
            StageCountRow {
                status: "cancelled".into(),
                orders: 1
            },
            StageCountRow {
                status: "captured".into(),
                orders: 4
            },
        ]
    );
    let confirmed_to_captured = times
        .iter()
        .find(|t| t.stage == "confirmed_to_captured")
        .expect("stage");
    // Fixture events happen `version` seconds after the epoch: confirmed at 5, captured at 6.
    assert_eq!(
        (
            confirmed_to_captured.orders,
            confirmed_to_captured.p50_seconds,
            confirmed_to_captured.p95_seconds
        ),
        (4, 1, 1)
    );
    let placed_to_cancelled = times
        .iter()
        .find(|t| t.stage == "placed_to_cancelled")
        .expect("stage");
    assert_eq!(placed_to_cancelled.orders, 1);
    assert_eq!(times.len(), 5);
    assert_eq!(
        cancellations,
        CancellationRow {
            orders: 5,
            cancelled: 1
        }
    );
    assert_eq!(returns.len(), 1);
    assert_eq!(
        (returns[0].returned, returns[0].reason.as_str()),
        (1, "damaged")
    );
}

#[tokio::test]
async fn reconciliation_reads_the_latest_run_and_its_totals() {
    let warehouse = fresh_warehouse().await;
    let store = AnalyticsStore::new(warehouse.client());
    let orders: Vec<OrderId> = (0..5).map(|_| OrderId::new_v7()).collect();
    project(&store, &event_log(&orders)).await;
    let d = at(0).date_naive();
    run_reconciliation(&warehouse, d, d, &FeeSchedule::default(), 1)
        .await
        .expect("run 1");
    run_reconciliation(&warehouse, d, d, &FeeSchedule::default(), 2)
        .await
        .expect("run 2");
    let finance = Finance::new(warehouse.client());
    let all = finance.reconciliation(day(), &[], ALL).await.expect("all");
    let discrepancies = finance
        .reconciliation(day(), &["missing_in_report", "missing_in_ledger"], ALL)
        .await
        .expect("discrepancies");
    let totals = finance.reconciliation_totals(day()).await.expect("totals");
    drop_warehouse(&warehouse).await;
    // Every fixture capture is `cap_6` and every refund `re_7` (ids by version), so the ledger
    // has one capture key and one refund key; the report names cap_0..cap_3 instead.
    assert!(all.iter().all(|r| r.run_version == 2));
    assert_eq!(all.len(), 7);
    let dispute = format!("chargeback:dp_{}", orders[3].as_uuid().simple());
    let keys: Vec<(&str, &str)> = discrepancies
        .iter()
        .map(|r| (r.item_key.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("capture:cap_0", "missing_in_ledger"),
            ("capture:cap_1", "missing_in_ledger"),
            ("capture:cap_2", "missing_in_ledger"),
            ("capture:cap_3", "missing_in_ledger"),
            ("capture:cap_6", "missing_in_report"),
            (dispute.as_str(), "missing_in_report"),
            ("refund:re_7", "missing_in_report"),
        ]
    );
    let items: u64 = totals.iter().map(|t| t.items).sum();
    assert_eq!(items, all.len() as u64);
}

/// Finance readers and generation switches at once, as a live `rebuild analytics` makes them:
/// every reader answer and every switch completes (a query reading a switched table twice
/// could wait behind a rename that waits for it, for good; see the module doc).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_queries_and_generation_switches_never_wait_on_each_other() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    use crate::views::analytics::TABLES;
    use crate::warehouse::{drop_database, generation};

    let warehouse = fresh_warehouse().await;
    let store = AnalyticsStore::new(warehouse.client());
    let orders: Vec<OrderId> = (0..5).map(|_| OrderId::new_v7()).collect();
    project(&store, &event_log(&orders)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (finance, stop, answers) = (
                Finance::new(warehouse.client()),
                stop.clone(),
                answers.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    finance
                        .daily_summary(day(), &SummaryFilter::default(), ALL)
                        .await
                        .expect("summary");
                    finance.time_in_stage(day()).await.expect("times");
                    answers.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let switches = async {
        for n in 0..12 {
            let green = generation::create(&warehouse, &format!("green{n}"))
                .await
                .expect("green generation");
            project(&AnalyticsStore::new(green.client()), &event_log(&orders)).await;
            let retired = format!("{}_retired{n}", warehouse.database);
            generation::switch(&warehouse, &green, &retired, TABLES)
                .await
                .expect("switch");
            drop_database(&warehouse.with_database(retired))
                .await
                .expect("drop the retired generation");
            drop_database(&green)
                .await
                .expect("drop the emptied green one");
        }
    };
    let finished = tokio::time::timeout(std::time::Duration::from_secs(120), switches).await;
    stop.store(true, Ordering::Relaxed);
    let readers_done = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        for reader in readers {
            reader.await.expect("reader");
        }
    })
    .await;
    // Checked before anything else touches the tables: after a deadlock nothing would return.
    assert!(finished.is_ok(), "a generation switch waited for good");
    assert!(readers_done.is_ok(), "a finance reader waited for good");
    let summary = Finance::new(warehouse.client())
        .daily_summary(day(), &SummaryFilter::default(), ALL)
        .await;
    drop_warehouse(&warehouse).await;
    assert!(answers.load(Ordering::Relaxed) > 0, "the readers read");
    assert_eq!(
        summary.expect("summary").len(),
        1,
        "one day, channel, currency"
    );
}
