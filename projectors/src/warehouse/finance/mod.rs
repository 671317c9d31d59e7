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
//!
//! No query reads one of the analytics view's tables twice. A rebuild switches those tables
//! with `RENAME TABLE` while readers run, and ClickHouse 18.16 queues lock requests first in,
//! first out: a query holding a table's read lock that asks for it again (a second `FROM`, a
//! `GLOBAL IN` subquery) waits behind the rename, which waits for that query — a deadlock no
//! timeout or `KILL QUERY` ends, that stalls every later reader and writer of the table until
//! the server restarts. Where a figure needs a table twice it takes two queries.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// The stage spans of [`Finance::time_in_stage`]: name, start column, end column (by name).
const STAGE_SPANS: [(&str, &str, &str); 5] = [
    ("authorized_to_confirmed", "authorized_at", "confirmed_at"),
    ("confirmed_to_captured", "confirmed_at", "captured_at"),
    ("placed_to_authorized", "placed_at", "authorized_at"),
    ("placed_to_cancelled", "placed_at", "cancelled_at"),
    ("placed_to_reserved", "placed_at", "reserved_at"),
];

/// Orders looked up per query when the daily summary finds the channels of ledger entries
/// that name none.
const CHANNEL_LOOKUP_CHUNK: usize = 1_000;

/// Orders placed per day, channel and currency (the daily summary's first query).
#[derive(Debug, Row, Deserialize)]
struct OrdersPlacedRow {
    day: u16,
    channel: String,
    currency: String,
    orders: u64,
    gross: i64,
}

/// Ledger sums per day, channel and currency; per order where the entries name no channel.
#[derive(Debug, Row, Deserialize)]
struct LedgerSumRow {
    day: u16,
    channel: String,
    order_id: String,
    currency: String,
    captures: i64,
    refunds: i64,
    fees: i64,
    chargebacks: i64,
}

#[derive(Debug, Row, Deserialize)]
struct OrderChannelRow {
    order_id: String,
    channel: String,
}

/// The daily summary rows from its three queries' answers, ordered by day, channel and
/// currency; a ledger entry naming no channel counts on its order's (`""` when the order is
/// unknown, as an account fee is).
fn sum_daily(
    orders: &[OrdersPlacedRow],
    entries: &[LedgerSumRow],
    channels: &HashMap<String, String>,
) -> Vec<DailySummaryRow> {
    let mut out: BTreeMap<(u16, String, String), DailySummaryRow> = BTreeMap::new();
    for placed in orders {
        let row = summary_row(&mut out, placed.day, &placed.channel, &placed.currency);
        row.orders += placed.orders;
        row.gross_sales += placed.gross;
    }
    for entry in entries {
        let channel = if entry.channel.is_empty() {
            channels.get(&entry.order_id).map_or("", String::as_str)
        } else {
            entry.channel.as_str()
        };
        let row = summary_row(&mut out, entry.day, channel, &entry.currency);
        row.captures += entry.captures;
        row.refunds += entry.refunds;
        row.fees += entry.fees;
        row.chargebacks += entry.chargebacks;
    }
    out.into_values()
        .map(|mut row| {
            row.net = row.captures - row.refunds - row.chargebacks - row.fees;
            row
        })
        .collect()
}

/// The row of `day`, `channel` and `currency` in `rows`, zero until something counts on it.
fn summary_row<'a>(
    rows: &'a mut BTreeMap<(u16, String, String), DailySummaryRow>,
    day: u16,
    channel: &str,
    currency: &str,
) -> &'a mut DailySummaryRow {
    rows.entry((day, channel.to_owned(), currency.to_owned()))
        .or_insert_with(|| DailySummaryRow {
            day,
            channel: channel.to_owned(),
            currency: currency.to_owned(),
            orders: 0,
            gross_sales: 0,
            captures: 0,
            refunds: 0,
            fees: 0,
            chargebacks: 0,
            net: 0,
        })
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
    ///
    /// Three queries, each reading one table once (see the module doc): the orders placed,
    /// the ledger entries summed per day, channel and currency (per order where the entry
    /// names no channel), and the channels of those orders; summed and paged here (a page of
    /// days × channels × currencies is small).
    pub async fn daily_summary(
        &self,
        range: DateRange,
        filter: &SummaryFilter,
        page: Page,
    ) -> Result<Vec<DailySummaryRow>, WarehouseError> {
        let orders: Vec<OrdersPlacedRow> = self
            .client
            .query(&format!(
                "SELECT toDate(placed_at) AS day, channel, currency, count() AS orders, \
                   toInt64(sum(grand_total)) AS gross \
                 FROM order_facts FINAL WHERE {} GROUP BY day, channel, currency",
                between("toDate(placed_at)", range)
            ))
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("daily summary: orders"))?;
        let entries: Vec<LedgerSumRow> = self
            .client
            .query(&format!(
                "SELECT day, channel, if(channel = '', order_id, '') AS order_id, currency, \
                   toInt64(sumIf(amount, kind = 'capture')) AS captures, \
                   toInt64(sumIf(amount, kind = 'refund')) AS refunds, \
                   toInt64(sumIf(amount, kind = 'fee')) AS fees, \
                   toInt64(sumIf(amount, kind = 'chargeback_lost')) AS chargebacks \
                 FROM ledger_entries FINAL \
                 WHERE kind IN ('capture', 'refund', 'fee', 'chargeback_lost') AND {} \
                 GROUP BY day, channel, order_id, currency",
                between("day", range)
            ))
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("daily summary: ledger"))?;
        let unnamed: BTreeSet<String> = entries
            .iter()
            .filter(|e| e.channel.is_empty() && !e.order_id.is_empty())
            .map(|e| e.order_id.clone())
            .collect();
        let channels = self.order_channels(&unnamed).await?;
        let mut rows = sum_daily(&orders, &entries, &channels);
        rows.retain(|row| {
            filter.channel.as_ref().is_none_or(|c| &row.channel == c)
                && filter.currency.as_ref().is_none_or(|c| &row.currency == c)
        });
        Ok(rows
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(page.limit as usize)
            .collect())
    }

    /// The channel of each of `orders` the warehouse knows.
    async fn order_channels(
        &self,
        orders: &BTreeSet<String>,
    ) -> Result<HashMap<String, String>, WarehouseError> {
        let ids: Vec<&String> = orders.iter().collect();
        let mut channels = HashMap::new();
        for chunk in ids.chunks(CHANNEL_LOOKUP_CHUNK) {
            let list: Vec<String> = chunk.iter().map(|id| quoted(id)).collect();
            let rows: Vec<OrderChannelRow> = self
                .client
                .query(&format!(
                    "SELECT order_id, channel FROM order_facts FINAL WHERE order_id IN ({})",
                    list.join(",")
                ))
                .fetch_all()
                .await
                .map_err(WarehouseError::clickhouse("daily summary: order channels"))?;
            channels.extend(rows.into_iter().map(|r| (r.order_id, r.channel)));
        }
        Ok(channels)
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

    /// p50 / p95 seconds spent from one stage to the next, for orders placed in the range:
    /// one pass over the orders (one read of the table, see the module doc).
    pub async fn time_in_stage(
        &self,
        range: DateRange,
    ) -> Result<Vec<StageTimeRow>, WarehouseError> {
        let columns: Vec<String> = STAGE_SPANS
            .iter()
            .map(|(_, start, end)| {
                let both = format!("isNotNull({start}) AND isNotNull({end})");
                let d = format!("toInt64(assumeNotNull({end})) - toInt64(assumeNotNull({start}))");
                format!(
                    "countIf({both}), toUInt32(quantileExactIf(0.5)({d}, {both})), \
                     toUInt32(quantileExactIf(0.95)({d}, {both}))"
                )
            })
            .collect();
        let sql = format!(
            "SELECT [{}] FROM order_facts FINAL WHERE {}",
            columns
                .iter()
                .map(|c| format!("tuple({c})"))
                .collect::<Vec<_>>()
                .join(", "),
            between("toDate(placed_at)", range)
        );
        let spans: Vec<(u64, u32, u32)> = self
            .client
            .query(&sql)
            .fetch_one()
            .await
            .map_err(WarehouseError::clickhouse("time in stage"))?;
        Ok(STAGE_SPANS
            .iter()
            .zip(spans)
            .map(|((stage, _, _), (orders, p50, p95))| StageTimeRow {
                stage: (*stage).to_owned(),
                orders,
                p50_seconds: p50,
                p95_seconds: p95,
            })
            .collect())
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
