//! Write-and-read-back of every row type with exact values against the real ClickHouse: with
//! validation off, a struct that does not match its table would read back different values.

use clickhouse::{Row, RowOwned, RowRead, RowWrite};

use super::*;
use crate::testing::{drop_warehouse, fresh_warehouse};

async fn round_trip<T>(table: &str, key: &str, rows: Vec<T>)
where
    T: RowOwned + RowWrite + RowRead + Row + Clone + std::fmt::Debug + PartialEq,
{
    let config = fresh_warehouse().await;
    let client = config.client();
    insert_rows(&client, table, &rows).await.expect("insert");
    let read: Vec<T> = client
        .query(&format!("SELECT ?fields FROM {table} ORDER BY {key}"))
        .fetch_all()
        .await
        .expect("read back");
    drop_warehouse(&config).await;
    assert_eq!(read, rows, "{table} read back differently");
}

fn t(s: &str) -> u32 {
    seconds(
        DateTime::parse_from_rfc3339(s)
            .expect("fixture time")
            .with_timezone(&Utc),
    )
}

fn d(s: &str) -> u16 {
    days(NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("fixture date"))
}

#[tokio::test]
async fn order_fact_rows_read_back_exactly() {
    let full = OrderFactRow {
        order_id: "0195a3c0-0000-7000-8000-000000000001".into(),
        channel: "web".into(),
        currency: "USD".into(),
        status: "cancelled".into(),
        line_count: 3,
        item_count: 7,
        subtotal: 12_345,
        discount_total: -1_000,
        tax_total: 987,
        shipping_total: 499,
        grand_total: 12_831,
        authorized: 12_831,
        captured: 12_000,
        refunded: 1_500,
        chargebacks_lost: 700,
        placed_at: t("2026-11-25T23:59:59Z"),
        risk_assessed_at: Some(t("2026-11-26T00:00:01Z")),
        reserved_at: Some(t("2026-11-26T00:00:02Z")),
        authorized_at: Some(t("2026-11-26T00:00:03Z")),
        confirmed_at: Some(t("2026-11-26T00:00:04Z")),
        captured_at: Some(t("2026-11-26T00:00:05Z")),
        cancelled_at: Some(t("2026-11-26T00:00:06Z")),
        cancel_reason: "customer_request".into(),
        version: 9_000_000_001,
    };
    let sparse = OrderFactRow {
        order_id: "0195a3c0-0000-7000-8000-000000000002".into(),
        status: "placed".into(),
        risk_assessed_at: None,
        reserved_at: None,
        authorized_at: None,
        confirmed_at: None,
        captured_at: None,
        cancelled_at: None,
        cancel_reason: String::new(),
        captured: i64::MAX,
        refunded: i64::MIN,
        version: 1,
        ..full.clone()
    };
    round_trip("order_facts", "order_id", vec![full, sparse]).await;
}

#[tokio::test]
async fn line_fact_rows_read_back_exactly() {
    let line = LineFactRow {
        order_id: "o-1".into(),
        line_no: 1,
        sku: "SKU-ÄÖ-1".into(),
        channel: "marketplace".into(),
        currency: "EUR".into(),
        quantity: 4_000_000_000,
        unit_price: 1_999,
        discount: -250,
        tax: 38,
        total: 7_784,
        placed_at: t("2026-01-31T12:34:56Z"),
        version: 2,
    };
    let second = LineFactRow {
        line_no: 2,
        sku: "B".into(),
        quantity: 1,
        ..line.clone()
    };
    round_trip("line_facts", "(order_id, line_no)", vec![line, second]).await;
}

#[tokio::test]
async fn ledger_entry_rows_read_back_exactly() {
    let entry = LedgerEntryRow {
        entry_id: "0195a3c0-0000-7000-8000-00000000000a".into(),
        order_id: "o-1".into(),
        kind: "capture".into(),
        gateway_txn_id: "cap_123".into(),
        channel: "web".into(),
        currency: "JPY".into(),
        amount: 123_456_789_012,
        occurred_at: t("2026-11-26T01:02:03Z"),
        day: d("2026-11-26"),
        version: 4,
    };
    let refund = LedgerEntryRow {
        entry_id: "0195a3c0-0000-7000-8000-00000000000b".into(),
        kind: "refund".into(),
        gateway_txn_id: "re_9".into(),
        amount: 1,
        day: d("2026-12-31"),
        ..entry.clone()
    };
    round_trip("ledger_entries", "entry_id", vec![entry, refund]).await;
}

#[tokio::test]
async fn shipment_and_return_rows_read_back_exactly() {
    let shipment = ShipmentRow {
        shipment_id: "s-1".into(),
        order_id: "o-1".into(),
        channel: "web".into(),
        carrier: "dhl".into(),
        status: "delivered".into(),
        shipped_at: Some(t("2026-11-26T08:00:00Z")),
        delivered_at: None,
        version: 3,
    };
    round_trip("shipments", "shipment_id", vec![shipment]).await;
    let ret = ReturnRow {
        return_id: "r-1".into(),
        order_id: "o-1".into(),
        line_no: 2,
        sku: "SKU-2".into(),
        channel: "pos".into(),
        reason: "damaged".into(),
        quantity: 2,
        requested_at: t("2026-11-27T09:10:11Z"),
        version: 5,
    };
    round_trip("returns", "(return_id, line_no)", vec![ret]).await;
}

#[tokio::test]
async fn settlement_line_and_payout_rows_read_back_exactly() {
    let converted = SettlementLineRow {
        report_id: "sandbox-2026-11-26".into(),
        line_no: 1,
        gateway_txn_id: "cap_1".into(),
        kind: "capture".into(),
        order_id: "o-1".into(),
        currency: "USD".into(),
        gross: 10_870,
        fee: -345,
        net: 10_525,
        original_currency: "EUR".into(),
        original_amount: 10_000,
        payout_id: "po_1".into(),
        transaction_date: d("2026-11-26"),
        settled_date: d("2026-11-27"),
        version: 1,
    };
    let plain = SettlementLineRow {
        line_no: 2,
        gateway_txn_id: "re_1".into(),
        kind: "refund".into(),
        gross: -500,
        fee: 0,
        net: -500,
        original_currency: String::new(),
        original_amount: 0,
        ..converted.clone()
    };
    round_trip(
        "settlement_lines",
        "(report_id, line_no)",
        vec![converted, plain],
    )
    .await;
    let payout = PayoutRow {
        payout_id: "po_1".into(),
        currency: "USD".into(),
        amount: 10_025,
        paid_on: d("2026-11-28"),
        transaction_count: 2,
        version: 1,
    };
    round_trip("payouts", "payout_id", vec![payout]).await;
}

#[tokio::test]
async fn reconciliation_and_position_rows_read_back_exactly() {
    let result = ReconciliationRow {
        day: d("2026-11-26"),
        item_key: "capture:cap_1".into(),
        outcome: "amount_mismatch".into(),
        gateway_txn_id: "cap_1".into(),
        order_id: "o-1".into(),
        kind: "capture".into(),
        channel: "web".into(),
        currency: "USD".into(),
        payout_id: "po_1".into(),
        ledger_amount: 10_000,
        report_amount: 9_999,
        ledger_fee: 320,
        report_fee: 320,
        detail: "report is 1 short".into(),
        run_version: 1_764_000_000_123,
    };
    round_trip("reconciliation_results", "item_key", vec![result]).await;
    let position = StreamPositionRow {
        stream_id: "settlement-abc".into(),
        version: 17,
    };
    round_trip("stream_positions", "stream_id", vec![position]).await;
}

#[test]
fn dates_and_times_convert_both_ways() {
    let date = NaiveDate::from_ymd_opt(2026, 11, 26).expect("date");
    assert_eq!(from_days(days(date)), date);
    assert_eq!(days(NaiveDate::default()), 0);
    let time = DateTime::parse_from_rfc3339("2026-11-26T01:02:03Z")
        .expect("time")
        .with_timezone(&Utc);
    assert_eq!(from_seconds(seconds(time)), time);
}
