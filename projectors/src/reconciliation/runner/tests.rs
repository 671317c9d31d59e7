//! The runner against the real ClickHouse: the analytics view writes the ledger and a report
//! with every awkward case, the runner finds exactly the expected discrepancies, and importing
//! the report again or rerunning changes nothing.

use clickhouse::Row;
use serde::Deserialize;
use waybill_schemas::events::SettlementLineKind;
use waybill_schemas::{EventEnvelope, OrderId};

use super::*;
use crate::testing::{
    at, captured_event, drop_warehouse, fresh_warehouse, placed_event, refunded_event,
    report_event, settlement_line,
};
use crate::views::analytics::{apply, AnalyticsState, AnalyticsStore};

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

#[derive(Debug, Row, Deserialize, PartialEq)]
struct Stored {
    item_key: String,
    outcome: String,
}

async fn latest(warehouse: &WarehouseConfig) -> Vec<(String, String)> {
    let rows: Vec<Stored> = warehouse
        .client()
        .query(
            "SELECT item_key, outcome FROM reconciliation_results FINAL \
             WHERE (day, run_version) IN \
               (SELECT day, max(run_version) FROM reconciliation_results GROUP BY day) \
             AND outcome != 'run' ORDER BY item_key",
        )
        .fetch_all()
        .await
        .expect("results");
    rows.into_iter().map(|r| (r.item_key, r.outcome)).collect()
}

#[tokio::test]
async fn a_report_with_every_awkward_case_yields_exactly_the_expected_discrepancies() {
    let warehouse = fresh_warehouse().await;
    let store = AnalyticsStore::new(warehouse.client());
    let fees = FeeSchedule::default();
    let orders: Vec<OrderId> = (0..5).map(|_| OrderId::new_v7()).collect();
    // The fixture names a capture `cap_<version>`: order i captures at version 2 + i, so the
    // capture ids are cap_2 .. cap_6.
    let mut streams = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        let version = 2 + i as i64;
        let mut events = vec![placed_event(*order, 1)];
        for filler in 2..version {
            events.push(crate::testing::risk_assessed(
                *order,
                filler,
                waybill_schemas::events::RiskDecision::Accept,
            ));
        }
        events.push(captured_event(*order, version, 3240));
        streams.push(events);
    }
    // A refund on order 0 (re_3 after its capture at v2).
    streams[0].push(refunded_event(orders[0], 3, 500));
    project(&store, &streams).await;

    let fee = fees.capture_fee(3240, usd());
    let mut converted = settlement_line(
        4,
        "cap_5",
        SettlementLineKind::Capture,
        Some(orders[3]),
        2_980,
        0,
    );
    converted.gross.currency = waybill_schemas::Currency::parse("EUR").expect("EUR");
    converted.net.currency = converted.gross.currency;
    converted.fee =
        waybill_schemas::Money::new(fees.capture_fee(2_980, usd()), converted.gross.currency);
    converted.net.minor = 2_980 - converted.fee.minor;
    converted.original = Some(waybill_schemas::Money::new(
        3240,
        waybill_schemas::Currency::parse("USD").expect("USD"),
    ));
    let lines = vec![
        settlement_line(
            1,
            "cap_2",
            SettlementLineKind::Capture,
            Some(orders[0]),
            3240,
            fee,
        ),
        // off by a cent
        settlement_line(
            2,
            "cap_3",
            SettlementLineKind::Capture,
            Some(orders[1]),
            3239,
            fee,
        ),
        // a fee we did not expect
        settlement_line(
            3,
            "cap_4",
            SettlementLineKind::Capture,
            Some(orders[2]),
            3240,
            fee + 50,
        ),
        converted,
        // cap_6 (order 4) is missing from the report
        settlement_line(
            5,
            "re_3",
            SettlementLineKind::Refund,
            Some(orders[0]),
            -500,
            0,
        ),
        settlement_line(
            6,
            "re_3",
            SettlementLineKind::Refund,
            Some(orders[0]),
            -500,
            0,
        ),
        settlement_line(
            7,
            "cap_404",
            SettlementLineKind::Capture,
            None,
            1000,
            fees.capture_fee(1000, usd()),
        ),
        settlement_line(8, "fee_monthly", SettlementLineKind::Fee, None, 0, 1_500),
    ];
    let report = report_event("r-awkward", lines);
    project(&store, &[vec![report.clone()]]).await;

    let day = at(0).date_naive();
    let run = run_reconciliation(&warehouse, day, day, &fees, 1)
        .await
        .expect("run");
    let expected: Vec<(String, String)> = [
        ("capture:cap_2", "matched"),
        ("capture:cap_3", "amount_mismatch"),
        ("capture:cap_4", "fee_mismatch"),
        ("capture:cap_404", "missing_in_ledger"),
        ("capture:cap_5", "matched"),
        ("capture:cap_6", "missing_in_report"),
        ("fee:fee_monthly", "fee_mismatch"),
        ("refund:re_3", "matched"),
        ("refund:re_3:line6", "duplicate"),
    ]
    .iter()
    .map(|(k, o)| ((*k).to_owned(), (*o).to_owned()))
    .collect();
    assert_eq!(latest(&warehouse).await, expected);
    assert_eq!(run.discrepancies.len(), 6);
    assert_eq!(run.outcomes.get("matched"), Some(&3));

    // The same report imported again, and a rerun: nothing changes.
    project(&store, &[vec![report]]).await;
    run_reconciliation(&warehouse, day, day, &fees, 2)
        .await
        .expect("rerun");
    let after = latest(&warehouse).await;
    let lines: u64 = warehouse
        .client()
        .query("SELECT count() FROM settlement_lines FINAL")
        .fetch_one()
        .await
        .expect("lines");
    drop_warehouse(&warehouse).await;
    assert_eq!(after, expected);
    assert_eq!(lines, 8);
}

#[tokio::test]
async fn a_late_report_turns_missing_in_report_into_matched_on_the_next_run() {
    let warehouse = fresh_warehouse().await;
    let store = AnalyticsStore::new(warehouse.client());
    let fees = FeeSchedule::default();
    let order = OrderId::new_v7();
    project(
        &store,
        &[vec![placed_event(order, 1), captured_event(order, 2, 3240)]],
    )
    .await;
    let day = at(0).date_naive();
    run_reconciliation(&warehouse, day, day, &fees, 1)
        .await
        .expect("first run");
    assert_eq!(
        latest(&warehouse).await,
        vec![("capture:cap_2".to_owned(), "missing_in_report".to_owned())]
    );
    let line = settlement_line(
        1,
        "cap_2",
        SettlementLineKind::Capture,
        Some(order),
        3240,
        fees.capture_fee(3240, usd()),
    );
    project(&store, &[vec![report_event("r-late", vec![line])]]).await;
    run_reconciliation(&warehouse, day, day, &fees, 2)
        .await
        .expect("second run");
    let after = latest(&warehouse).await;
    drop_warehouse(&warehouse).await;
    assert_eq!(
        after,
        vec![("capture:cap_2".to_owned(), "matched".to_owned())]
    );
}

fn usd() -> waybill_schemas::Currency {
    waybill_schemas::Currency::parse("USD").expect("USD")
}
