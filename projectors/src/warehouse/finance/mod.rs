//! The finance and operations queries over the warehouse, for the finance API: the daily money
//! summary, payouts and what each settles, the latest reconciliation results, and operational
//! metrics. Every query reads with FINAL (one row per natural key) and takes a UTC date range.
//!
//! Definitions (per day, channel, currency):
//! - gross sales: Σ grand total of the orders placed that day (cancelled ones included: it is
//!   what was ordered; captures say what was collected);
//! - captures, refunds, chargebacks (lost): Σ of those ledger entries by the day they happened;
//! - fees: Σ fees of settlement report lines by transaction date, on the order's channel
//!   (an account fee that names no order has channel `""`);
//! - net = captures − refunds − chargebacks − fees.
//!
//! On a cluster these tables are `Distributed`. A subquery after `IN` is written `GLOBAL IN`:
//! a plain one would be sent to the remote replicas as text and run there in the connection's
//! default database, not Waybill's (ClickHouse 18.16 answers "Table default.… doesn't exist").
//! Joins are always between subqueries, which run where the query started.

use chrono::NaiveDate;
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use super::rows::{ReconciliationRow, SettlementLineRow};
use super::WarehouseError;

/// A UTC date range, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// One page: at most `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub offset: u64,
}

/// Optional equality filters on the money summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryFilter {
    pub channel: Option<String>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct DailySummaryRow {
    pub day: u16,
    pub channel: String,
    pub currency: String,
    pub orders: u64,
    pub gross_sales: i64,
    pub captures: i64,
    pub refunds: i64,
    pub fees: i64,
    pub chargebacks: i64,
    pub net: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PayoutSummaryRow {
    pub payout_id: String,
    pub currency: String,
    pub amount: i64,
    pub paid_on: u16,
    pub transaction_count: u32,
    /// Σ over the report lines naming this payout.
    pub lines: u64,
    pub gross: i64,
    pub fees: i64,
    pub net: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ReconciliationTotalRow {
    pub day: u16,
    pub channel: String,
    pub currency: String,
    pub payout_id: String,
    pub outcome: String,
    pub items: u64,
    pub ledger_amount: i64,
    pub report_amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct StageCountRow {
    pub status: String,
    pub orders: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct StageTimeRow {
    pub stage: String,
    pub orders: u64,
    pub p50_seconds: u32,
    pub p95_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ReturnRateRow {
    pub sku: String,
    pub reason: String,
    pub returned: u64,
    pub sold: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct CancellationRow {
    pub orders: u64,
    pub cancelled: u64,
}

/// The warehouse's finance queries.
#[derive(Clone)]
pub struct Finance {
    client: Client,
}

fn between(column: &str, range: DateRange) -> String {
    format!(
        "{column} BETWEEN toDate('{}') AND toDate('{}')",
        range.from, range.to
    )
}

/// `'value'` with backslash and quote escaped (18.16 has no server-side parameters).
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn page_sql(page: Page) -> String {
    format!("LIMIT {} OFFSET {}", page.limit, page.offset)
}

impl Finance {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Gross sales, captures, refunds, fees, chargebacks and net per day, channel and currency.
    pub async fn daily_summary(
        &self,
        range: DateRange,
        filter: &SummaryFilter,
        page: Page,
    ) -> Result<Vec<DailySummaryRow>, WarehouseError> {
        let mut having = Vec::new();
        if let Some(channel) = &filter.channel {
            having.push(format!("channel = {}", quoted(channel)));
        }
        if let Some(currency) = &filter.currency {
            having.push(format!("currency = {}", quoted(currency)));
        }
        let having = if having.is_empty() {
            String::new()
        } else {
            format!("HAVING {}", having.join(" AND "))
        };
        let sql = format!(
            "SELECT day, channel, currency, sum(ord) AS orders, sum(gross) AS gross_sales, \
               sum(cap) AS captures, sum(ref) AS refunds, sum(fee) AS fees, sum(cb) AS chargebacks, \
               sum(cap) - sum(ref) - sum(cb) - sum(fee) AS net \
             FROM ( \
               SELECT toDate(placed_at) AS day, channel, currency, toUInt64(1) AS ord, \
                 toInt64(grand_total) AS gross, toInt64(0) AS cap, toInt64(0) AS ref, \
                 toInt64(0) AS fee, toInt64(0) AS cb \
               FROM order_facts FINAL WHERE {orders_in_range} \
               UNION ALL \
               SELECT day, channel, currency, {ledger_columns} \
               FROM ledger_entries FINAL \
               WHERE kind IN ('capture', 'refund', 'fee', 'chargeback_lost') AND channel != '' \
                 AND {entries_in_range} \
               UNION ALL \
               SELECT day, order_channel AS channel, currency, {ledger_columns} \
               FROM (SELECT day, currency, kind, amount, order_id FROM ledger_entries FINAL \
                     WHERE kind IN ('capture', 'refund', 'fee', 'chargeback_lost') \
                       AND channel = '' AND {entries_in_range}) \
               ANY LEFT JOIN ( \
                 SELECT order_id, channel AS order_channel FROM order_facts FINAL \
                 WHERE order_id GLOBAL IN (SELECT order_id FROM ledger_entries \
                                    WHERE channel = '' AND {entries_in_range}) \
               ) USING order_id \
             ) \
             GROUP BY day, channel, currency {having} \
             ORDER BY day, channel, currency {page}",
            orders_in_range = between("toDate(placed_at)", range),
            entries_in_range = between("day", range),
            ledger_columns = "toUInt64(0) AS ord, toInt64(0) AS gross, \
                 toInt64(if(kind = 'capture', amount, 0)) AS cap, \
                 toInt64(if(kind = 'refund', amount, 0)) AS ref, \
                 toInt64(if(kind = 'fee', amount, 0)) AS fee, \
                 toInt64(if(kind = 'chargeback_lost', amount, 0)) AS cb",
            page = page_sql(page),
        );
        self.client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("daily summary"))
    }

    /// Payouts paid in the range with the sums of the report lines each settles.
    pub async fn payouts(
        &self,
        range: DateRange,
        page: Page,
    ) -> Result<Vec<PayoutSummaryRow>, WarehouseError> {
        let sql = format!(
            "SELECT payout_id, currency, amount, paid_on, transaction_count, \
               lines, gross, fees, net \
             FROM (SELECT payout_id, currency, amount, paid_on, transaction_count \
                   FROM payouts FINAL WHERE {in_range}) \
             ANY LEFT JOIN ( \
               SELECT payout_id, count() AS lines, sum(gross) AS gross, sum(fee) AS fees, \
                 sum(net) AS net \
               FROM settlement_lines FINAL WHERE payout_id != '' GROUP BY payout_id \
             ) USING payout_id \
             ORDER BY paid_on, payout_id {page}",
            in_range = between("paid_on", range),
            page = page_sql(page),
        );
        self.client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("payouts"))
    }

    /// The report lines a payout settles, in report order.
    pub async fn payout_lines(
        &self,
        payout_id: &str,
        page: Page,
    ) -> Result<Vec<SettlementLineRow>, WarehouseError> {
        let sql = format!(
            "SELECT ?fields FROM settlement_lines FINAL WHERE payout_id = {} \
             ORDER BY report_id, line_no {}",
            quoted(payout_id),
            page_sql(page)
        );
        self.client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("payout lines"))
    }

    /// The latest run's results of each day in the range; only `outcomes` (all but the run
    /// markers when empty).
    pub async fn reconciliation(
        &self,
        range: DateRange,
        outcomes: &[&str],
        page: Page,
    ) -> Result<Vec<ReconciliationRow>, WarehouseError> {
        let outcome_filter = if outcomes.is_empty() {
            "outcome != 'run'".to_owned()
        } else {
            format!(
                "outcome IN ({})",
                outcomes
                    .iter()
                    .map(|o| quoted(o))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let sql = format!(
            "SELECT ?fields FROM reconciliation_results FINAL \
             WHERE {in_range} AND (day, run_version) IN \
               (SELECT day, max(run_version) FROM reconciliation_results \
                WHERE {in_range} GROUP BY day) \
             AND {outcome_filter} ORDER BY day, item_key {page}",
            in_range = between("day", range),
            page = page_sql(page),
        );
        self.client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("reconciliation results"))
    }

    /// Items and amounts of the latest results per day, channel, currency, payout and outcome.
    pub async fn reconciliation_totals(
        &self,
        range: DateRange,
    ) -> Result<Vec<ReconciliationTotalRow>, WarehouseError> {
        let sql = format!(
            "SELECT day, channel, currency, payout_id, outcome, count() AS items, \
               sum(ledger_amount) AS ledger_amount, sum(report_amount) AS report_amount \
             FROM reconciliation_results FINAL \
             WHERE {in_range} AND (day, run_version) IN \
               (SELECT day, max(run_version) FROM reconciliation_results \
                WHERE {in_range} GROUP BY day) \
             AND outcome != 'run' \
             GROUP BY day, channel, currency, payout_id, outcome \
             ORDER BY day, channel, currency, payout_id, outcome",
            in_range = between("day", range),
        );
        self.client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("reconciliation totals"))
    }

    /// Orders placed in the range per current status.
    pub async fn orders_per_stage(
        &self,
        range: DateRange,
    ) -> Result<Vec<StageCountRow>, WarehouseError> {
        let sql = format!(
            "SELECT status, count() AS orders FROM order_facts FINAL WHERE {} \
             GROUP BY status ORDER BY status",
            between("toDate(placed_at)", range)
        );
        self.client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("orders per stage"))
    }

    /// p50 / p95 seconds spent from one stage to the next, for orders placed in the range.
    pub async fn time_in_stage(
        &self,
        range: DateRange,
    ) -> Result<Vec<StageTimeRow>, WarehouseError> {
        let stages = [
            ("placed_to_reserved", "placed_at", "reserved_at"),
            ("placed_to_authorized", "placed_at", "authorized_at"),
            ("authorized_to_confirmed", "authorized_at", "confirmed_at"),
            ("confirmed_to_captured", "confirmed_at", "captured_at"),
            ("placed_to_cancelled", "placed_at", "cancelled_at"),
        ];
        let parts: Vec<String> = stages
            .iter()
            .map(|(stage, start, end)| {
                format!(
                    "SELECT '{stage}' AS stage, count() AS orders, \
                       toUInt32(quantileExact(0.5)(d)) AS p50_seconds, \
                       toUInt32(quantileExact(0.95)(d)) AS p95_seconds \
                     FROM (SELECT toInt64(assumeNotNull({end})) - toInt64(assumeNotNull({start})) AS d \
                           FROM order_facts FINAL \
                           WHERE {in_range} AND isNotNull({start}) AND isNotNull({end}))",
                    in_range = between("toDate(placed_at)", range),
                )
            })
            .collect();
        let sql = format!(
            "SELECT stage, orders, p50_seconds, p95_seconds FROM ({}) ORDER BY stage",
            parts.join(" UNION ALL ")
        );
        self.client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("time in stage"))
    }

    /// Units returned per SKU and reason against units sold of that SKU (orders placed in the
    /// range).
    pub async fn return_rates(
        &self,
        range: DateRange,
    ) -> Result<Vec<ReturnRateRow>, WarehouseError> {
        let sql = format!(
            "SELECT sku, reason, returned, sold FROM \
               (SELECT sku, reason, toUInt64(sum(quantity)) AS returned FROM returns FINAL \
                WHERE toDate(requested_at) BETWEEN toDate('{from}') AND toDate('{to}') \
                GROUP BY sku, reason) \
             ANY LEFT JOIN \
               (SELECT sku, toUInt64(sum(quantity)) AS sold FROM line_facts FINAL \
                WHERE toDate(placed_at) BETWEEN toDate('{from}') AND toDate('{to}') GROUP BY sku) \
             USING sku ORDER BY sku, reason",
            from = range.from,
            to = range.to,
        );
        self.client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("return rates"))
    }

    /// Orders placed in the range and how many of them are cancelled.
    pub async fn cancellations(&self, range: DateRange) -> Result<CancellationRow, WarehouseError> {
        let sql = format!(
            "SELECT count() AS orders, countIf(status = 'cancelled') AS cancelled \
             FROM order_facts FINAL WHERE {}",
            between("toDate(placed_at)", range)
        );
        self.client
            .query(&sql)
            .fetch_one()
            .await
            .map_err(WarehouseError::clickhouse("cancellations"))
    }
}

#[cfg(test)]
mod tests;
