//! The row types of the warehouse tables, one struct per table, field names = column names.
//! ClickHouse `DateTime('UTC')` travels as seconds since the epoch (`u32`) and `Date` as days
//! since the epoch (`u16`); [`seconds`], [`days`] and their inverses convert.

use chrono::{DateTime, NaiveDate, Utc};
use clickhouse::{Client, Row, RowOwned, RowWrite};
use serde::{Deserialize, Serialize};

use super::WarehouseError;

/// `order_facts`: the latest folded state of one order.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct OrderFactRow {
    pub order_id: String,
    pub channel: String,
    pub currency: String,
    pub status: String,
    pub line_count: u32,
    pub item_count: u32,
    pub subtotal: i64,
    pub discount_total: i64,
    pub tax_total: i64,
    pub shipping_total: i64,
    pub grand_total: i64,
    pub authorized: i64,
    pub captured: i64,
    pub refunded: i64,
    pub chargebacks_lost: i64,
    pub placed_at: u32,
    pub risk_assessed_at: Option<u32>,
    pub reserved_at: Option<u32>,
    pub authorized_at: Option<u32>,
    pub confirmed_at: Option<u32>,
    pub captured_at: Option<u32>,
    pub cancelled_at: Option<u32>,
    pub cancel_reason: String,
    pub version: u64,
}

/// `line_facts`: one order line as placed.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct LineFactRow {
    pub order_id: String,
    pub line_no: u32,
    pub sku: String,
    pub channel: String,
    pub currency: String,
    pub quantity: u32,
    pub unit_price: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    pub placed_at: u32,
    pub version: u64,
}

/// `ledger_entries`: one money movement of an order.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct LedgerEntryRow {
    pub entry_id: String,
    pub order_id: String,
    pub kind: String,
    pub gateway_txn_id: String,
    pub channel: String,
    pub currency: String,
    pub amount: i64,
    pub occurred_at: u32,
    pub day: u16,
    pub version: u64,
}

/// `shipments`: one row per parcel, its latest carrier status and when it shipped and arrived.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ShipmentRow {
    pub shipment_id: String,
    pub order_id: String,
    pub channel: String,
    pub carrier: String,
    pub status: String,
    pub shipped_at: Option<u32>,
    pub delivered_at: Option<u32>,
    pub version: u64,
}

/// `returns` (filled once returns exist).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ReturnRow {
    pub return_id: String,
    pub order_id: String,
    pub line_no: u32,
    pub sku: String,
    pub channel: String,
    pub reason: String,
    pub quantity: u32,
    pub requested_at: u32,
    pub version: u64,
}

/// `settlement_lines`: one line of an imported gateway settlement report.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct SettlementLineRow {
    pub report_id: String,
    pub line_no: u32,
    pub gateway_txn_id: String,
    pub kind: String,
    pub order_id: String,
    pub currency: String,
    pub gross: i64,
    pub fee: i64,
    pub net: i64,
    /// Empty when the line was not converted.
    pub original_currency: String,
    pub original_amount: i64,
    pub payout_id: String,
    pub transaction_date: u16,
    pub settled_date: u16,
    pub version: u64,
}

/// `payouts`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PayoutRow {
    pub payout_id: String,
    pub currency: String,
    pub amount: i64,
    pub paid_on: u16,
    pub transaction_count: u32,
    pub version: u64,
}

/// `reconciliation_results`: one reconciled item of a day.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ReconciliationRow {
    pub day: u16,
    pub item_key: String,
    pub outcome: String,
    pub gateway_txn_id: String,
    pub order_id: String,
    pub kind: String,
    pub channel: String,
    pub currency: String,
    pub payout_id: String,
    pub ledger_amount: i64,
    pub report_amount: i64,
    pub ledger_fee: i64,
    pub report_fee: i64,
    pub detail: String,
    pub run_version: u64,
}

/// `stream_positions`: the last applied version of a stream without a fact row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct StreamPositionRow {
    pub stream_id: String,
    pub version: u64,
}

/// Inserts `rows` into `table` as one INSERT (nothing is sent for no rows).
pub async fn insert_rows<T>(client: &Client, table: &str, rows: &[T]) -> Result<(), WarehouseError>
where
    T: RowOwned + RowWrite,
{
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client
        .insert::<T>(table)
        .await
        .map_err(WarehouseError::clickhouse("starting an insert"))?;
    for row in rows {
        insert
            .write(row)
            .await
            .map_err(WarehouseError::clickhouse("writing a row"))?;
    }
    insert
        .end()
        .await
        .map_err(WarehouseError::clickhouse("finishing an insert"))
}

/// Seconds since the epoch, as ClickHouse `DateTime` stores them (clamped to its range).
pub fn seconds(at: DateTime<Utc>) -> u32 {
    u32::try_from(at.timestamp().max(0)).unwrap_or(u32::MAX)
}

/// The instant of `seconds` since the epoch.
pub fn from_seconds(seconds: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::from(seconds), 0).unwrap_or_default()
}

/// Days since the epoch, as ClickHouse `Date` stores them (clamped to its range).
pub fn days(date: NaiveDate) -> u16 {
    let epoch = NaiveDate::default();
    u16::try_from((date - epoch).num_days().max(0)).unwrap_or(u16::MAX)
}

/// The date `days` after the epoch.
pub fn from_days(days: u16) -> NaiveDate {
    NaiveDate::default() + chrono::Days::new(u64::from(days))
}

#[cfg(test)]
mod tests;
