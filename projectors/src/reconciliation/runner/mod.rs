//! Loads a date range's ledger entries and report lines, matches them and stores the findings.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::matcher::{reconcile, FeeSchedule, Finding, LedgerItem, Outcome, ReportItem};
use crate::warehouse::rows::{
    days, insert_rows, LedgerEntryRow, ReconciliationRow, SettlementLineRow,
};
use crate::warehouse::{WarehouseConfig, WarehouseError};

/// How many days around the range report lines are read: a transaction of the range may be
/// reported (by its transaction date) a few days off, and settles up to days later.
pub const SETTLEMENT_LAG_DAYS: u64 = 7;

/// What a run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub run_version: u64,
    /// Items per outcome.
    pub outcomes: BTreeMap<&'static str, u64>,
    /// The discrepancies, in item key order.
    pub discrepancies: Vec<Finding>,
}

/// Reconciles `from..=to` (days by the ledger entry's day, or the line's transaction date when
/// the ledger has no entry) and writes the results with `run_version` (newer runs win; use the
/// clock in milliseconds). Writes one marker row (`outcome = 'run'`) per day of the range, so a
/// day that no longer has any item still gets a newer run.
pub async fn run_reconciliation(
    warehouse: &WarehouseConfig,
    from: NaiveDate,
    to: NaiveDate,
    fees: &FeeSchedule,
    run_version: u64,
) -> Result<RunReport, WarehouseError> {
    let client = warehouse.client();
    let ledger: Vec<LedgerEntryRow> = client
        .query(&format!(
            "SELECT ?fields FROM ledger_entries FINAL \
             WHERE kind IN ('capture', 'refund', 'chargeback_opened', 'chargeback_lost', \
               'chargeback_won') \
             AND day BETWEEN toDate('{from}') AND toDate('{to}')"
        ))
        .fetch_all()
        .await
        .map_err(WarehouseError::clickhouse("reading ledger entries"))?;
    let lag = chrono::Days::new(SETTLEMENT_LAG_DAYS);
    let (wide_from, wide_to) = (from - lag, to + lag);
    let lines: Vec<SettlementLineRow> = client
        .query(&format!(
            "SELECT ?fields FROM settlement_lines FINAL \
             WHERE transaction_date BETWEEN toDate('{wide_from}') AND toDate('{wide_to}')"
        ))
        .fetch_all()
        .await
        .map_err(WarehouseError::clickhouse("reading settlement lines"))?;

    let ledger: Vec<LedgerItem> = ledger
        .into_iter()
        .map(|e| LedgerItem {
            kind: e.kind,
            gateway_txn_id: e.gateway_txn_id,
            order_id: e.order_id,
            channel: e.channel,
            currency: e.currency,
            amount: e.amount,
            day: e.day,
        })
        .collect();
    let report: Vec<ReportItem> = lines
        .into_iter()
        .map(|l| ReportItem {
            report_id: l.report_id,
            line_no: l.line_no,
            gateway_txn_id: l.gateway_txn_id,
            kind: l.kind,
            order_id: l.order_id,
            currency: l.currency,
            gross: l.gross,
            fee: l.fee,
            original_currency: l.original_currency,
            original_amount: l.original_amount,
            payout_id: l.payout_id,
            transaction_date: l.transaction_date,
        })
        .collect();
    let (first, last) = (days(from), days(to));
    let findings: Vec<Finding> = reconcile(&ledger, &report, fees)
        .into_iter()
        .filter(|f| (first..=last).contains(&f.day))
        .collect();

    let mut rows: Vec<ReconciliationRow> = findings
        .iter()
        .map(|f| ReconciliationRow {
            day: f.day,
            item_key: f.item_key.clone(),
            outcome: f.outcome.as_str().to_owned(),
            gateway_txn_id: f.gateway_txn_id.clone(),
            order_id: f.order_id.clone(),
            kind: f.kind.clone(),
            channel: f.channel.clone(),
            currency: f.currency.clone(),
            payout_id: f.payout_id.clone(),
            ledger_amount: f.ledger_amount,
            report_amount: f.report_amount,
            ledger_fee: f.expected_fee,
            report_fee: f.report_fee,
            detail: f.detail.clone(),
            run_version,
        })
        .collect();
    rows.extend((first..=last).map(|day| ReconciliationRow {
        day,
        item_key: String::new(),
        outcome: RUN_MARKER.to_owned(),
        gateway_txn_id: String::new(),
        order_id: String::new(),
        kind: String::new(),
        channel: String::new(),
        currency: String::new(),
        payout_id: String::new(),
        ledger_amount: 0,
        report_amount: 0,
        ledger_fee: 0,
        report_fee: 0,
        detail: String::new(),
        run_version,
    }));
    insert_rows(&client, "reconciliation_results", &rows).await?;

    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    for finding in &findings {
        *outcomes.entry(finding.outcome.as_str()).or_default() += 1;
    }
    let discrepancies = findings
        .into_iter()
        .filter(|f| f.outcome != Outcome::Matched)
        .collect();
    tracing::info!(%from, %to, run_version, ?outcomes, "reconciliation run written");
    Ok(RunReport {
        from,
        to,
        run_version,
        outcomes,
        discrepancies,
    })
}

/// `outcome` of the per-day marker rows.
pub const RUN_MARKER: &str = "run";

#[cfg(test)]
mod tests;
