//! What the finance endpoints answer: JSON bodies (amounts in integer minor units with their
//! currency, plus each amount written as a decimal by the currency's exponent in `formatted`;
//! days as `YYYY-MM-DD`) and the same rows as CSV, where amounts are those decimals (a
//! spreadsheet reads 376.63 next to `USD` and 37663 next to `JPY`, not minor units).

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use waybill_projectors::warehouse::finance::{
    CancellationRow, DailySummaryRow, PayoutSummaryRow, ReconciliationTotalRow, ReturnRateRow,
    StageCountRow, StageTimeRow,
};
use waybill_projectors::warehouse::rows::{from_days, ReconciliationRow, SettlementLineRow};
use waybill_schemas::Currency;

fn day(days: u16) -> String {
    from_days(days).to_string()
}

/// `minor` units of `currency` as a decimal by its exponent (`376.63` USD, `37663` JPY); a
/// code Waybill does not know (never written by it) keeps the integer.
pub fn decimal(currency: &str, minor: i64) -> String {
    Currency::parse(currency)
        .map(|c| c.format_minor(minor))
        .unwrap_or_else(|_| minor.to_string())
}

/// Each named amount of a row (integer minor units of `currency`) as a decimal string.
pub type Formatted = BTreeMap<&'static str, String>;

fn formatted(currency: &str, amounts: &[(&'static str, i64)]) -> Formatted {
    amounts
        .iter()
        .map(|(name, minor)| (*name, decimal(currency, *minor)))
        .collect()
}

/// A row that can be written as CSV.
pub trait CsvRow {
    const HEADER: &'static [&'static str];
    fn cells(&self) -> Vec<String>;
}

/// Characters a spreadsheet may take as the start of a formula (OWASP's CSV injection list).
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A plain decimal number (`-1500`, `12.34`): a spreadsheet reads it as the number it is, so
/// it is written as is even when it starts with `-`.
fn is_plain_number(cell: &str) -> bool {
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// One cell as written to a CSV export. A cell a spreadsheet could run as a formula (starting
/// with `=`, `+`, `-`, `@`, tab or CR, and not a plain number) gets a leading `'`, which makes
/// it text, and is quoted, as OWASP advises; cells with commas, quotes or line breaks are
/// quoted (RFC 4180).
fn escape(cell: &str) -> String {
    let formula = cell.starts_with(FORMULA_START) && !is_plain_number(cell);
    if formula {
        format!("\"'{}\"", cell.replace('"', "\"\""))
    } else if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

/// `rows` as a `text/csv` attachment named `name.csv`.
pub fn csv<R: CsvRow>(name: &str, rows: &[R]) -> Response {
    let mut body = R::HEADER.join(",");
    body.push('\n');
    for row in rows {
        let cells: Vec<String> = row.cells().iter().map(|c| escape(c)).collect();
        body.push_str(&cells.join(","));
        body.push('\n');
    }
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Money of one day, channel and currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SummaryRow {
    pub day: String,
    pub channel: String,
    pub currency: String,
    /// Orders placed that day.
    pub orders: u64,
    /// Σ grand total of the orders placed that day.
    pub gross_sales: i64,
    pub captures: i64,
    pub refunds: i64,
    /// Gateway fees from the settlement reports (by transaction date).
    pub fees: i64,
    /// Chargebacks lost.
    pub chargebacks: i64,
    /// captures − refunds − chargebacks − fees.
    pub net: i64,
    /// The amounts above as decimals by the currency's exponent (`"gross_sales": "376.63"`).
    #[schema(value_type = BTreeMap<String, String>)]
    pub formatted: Formatted,
}

impl From<DailySummaryRow> for SummaryRow {
    fn from(r: DailySummaryRow) -> Self {
        let formatted = formatted(
            &r.currency,
            &[
                ("gross_sales", r.gross_sales),
                ("captures", r.captures),
                ("refunds", r.refunds),
                ("fees", r.fees),
                ("chargebacks", r.chargebacks),
                ("net", r.net),
            ],
        );
        Self {
            formatted,
            day: day(r.day),
            channel: r.channel,
            currency: r.currency,
            orders: r.orders,
            gross_sales: r.gross_sales,
            captures: r.captures,
            refunds: r.refunds,
            fees: r.fees,
            chargebacks: r.chargebacks,
            net: r.net,
        }
    }
}

impl CsvRow for SummaryRow {
    const HEADER: &'static [&'static str] = &[
        "day",
        "channel",
        "currency",
        "orders",
        "gross_sales",
        "captures",
        "refunds",
        "fees",
        "chargebacks",
        "net",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.day.clone(),
            self.channel.clone(),
            self.currency.clone(),
            self.orders.to_string(),
            decimal(&self.currency, self.gross_sales),
            decimal(&self.currency, self.captures),
            decimal(&self.currency, self.refunds),
            decimal(&self.currency, self.fees),
            decimal(&self.currency, self.chargebacks),
            decimal(&self.currency, self.net),
        ]
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SummaryResponse {
    pub from: String,
    pub to: String,
    pub items: Vec<SummaryRow>,
    /// Offset of the next page; absent on the last page.
    pub next_offset: Option<u64>,
}

/// A payout and the sums of the report lines it settles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Payout {
    pub payout_id: String,
    pub currency: String,
    pub amount: i64,
    pub paid_on: String,
    /// Transactions the payout says it settles.
    pub transaction_count: u32,
    /// Report lines naming this payout, and their sums.
    pub lines: u64,
    pub gross: i64,
    pub fees: i64,
    pub net: i64,
    /// The amounts above as decimals by the currency's exponent (`"net": "376.63"`).
    #[schema(value_type = BTreeMap<String, String>)]
    pub formatted: Formatted,
}

impl From<PayoutSummaryRow> for Payout {
    fn from(r: PayoutSummaryRow) -> Self {
        let formatted = formatted(
            &r.currency,
            &[
                ("amount", r.amount),
                ("gross", r.gross),
                ("fees", r.fees),
                ("net", r.net),
            ],
        );
        Self {
            formatted,
            payout_id: r.payout_id,
            currency: r.currency,
            amount: r.amount,
            paid_on: day(r.paid_on),
            transaction_count: r.transaction_count,
            lines: r.lines,
            gross: r.gross,
            fees: r.fees,
            net: r.net,
        }
    }
}

impl CsvRow for Payout {
    const HEADER: &'static [&'static str] = &[
        "payout_id",
        "currency",
        "amount",
        "paid_on",
        "transaction_count",
        "lines",
        "gross",
        "fees",
        "net",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.payout_id.clone(),
            self.currency.clone(),
            decimal(&self.currency, self.amount),
            self.paid_on.clone(),
            self.transaction_count.to_string(),
            self.lines.to_string(),
            decimal(&self.currency, self.gross),
            decimal(&self.currency, self.fees),
            decimal(&self.currency, self.net),
        ]
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PayoutsResponse {
    pub from: String,
    pub to: String,
    pub items: Vec<Payout>,
    pub next_offset: Option<u64>,
}

/// One settlement report line a payout settles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PayoutLine {
    pub report_id: String,
    pub line_no: u32,
    pub transaction_id: String,
    pub kind: String,
    /// Empty when the gateway did not name the order.
    pub order_id: String,
    pub currency: String,
    pub gross: i64,
    pub fee: i64,
    pub net: i64,
    /// The amount before the gateway converted it, when it did.
    pub original_currency: Option<String>,
    pub original_amount: Option<i64>,
    pub transaction_date: String,
    pub settled_on: String,
    /// The amounts above as decimals by their currency's exponent (`"net": "376.63"`;
    /// `original_amount` by `original_currency`'s).
    #[schema(value_type = BTreeMap<String, String>)]
    pub formatted: Formatted,
}

impl From<SettlementLineRow> for PayoutLine {
    fn from(r: SettlementLineRow) -> Self {
        let converted = !r.original_currency.is_empty();
        let mut formatted = formatted(
            &r.currency,
            &[("gross", r.gross), ("fee", r.fee), ("net", r.net)],
        );
        if converted {
            formatted.insert(
                "original_amount",
                decimal(&r.original_currency, r.original_amount),
            );
        }
        Self {
            formatted,
            report_id: r.report_id,
            line_no: r.line_no,
            transaction_id: r.gateway_txn_id,
            kind: r.kind,
            order_id: r.order_id,
            currency: r.currency,
            gross: r.gross,
            fee: r.fee,
            net: r.net,
            original_amount: converted.then_some(r.original_amount),
            original_currency: converted.then_some(r.original_currency),
            transaction_date: day(r.transaction_date),
            settled_on: day(r.settled_date),
        }
    }
}

impl CsvRow for PayoutLine {
    const HEADER: &'static [&'static str] = &[
        "report_id",
        "line_no",
        "transaction_id",
        "kind",
        "order_id",
        "currency",
        "gross",
        "fee",
        "net",
        "original_currency",
        "original_amount",
        "transaction_date",
        "settled_on",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.report_id.clone(),
            self.line_no.to_string(),
            self.transaction_id.clone(),
            self.kind.clone(),
            self.order_id.clone(),
            self.currency.clone(),
            decimal(&self.currency, self.gross),
            decimal(&self.currency, self.fee),
            decimal(&self.currency, self.net),
            self.original_currency.clone().unwrap_or_default(),
            self.formatted
                .get("original_amount")
                .cloned()
                .unwrap_or_default(),
            self.transaction_date.clone(),
            self.settled_on.clone(),
        ]
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PayoutLinesResponse {
    pub payout_id: String,
    pub items: Vec<PayoutLine>,
    pub next_offset: Option<u64>,
}

/// One reconciled item of the latest run of its day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReconciledItem {
    pub day: String,
    /// `<report kind>:<transaction id>` (`:line<no>` for a duplicate line).
    pub item_key: String,
    /// matched, missing_in_report, missing_in_ledger, amount_mismatch, fee_mismatch, duplicate
    pub outcome: String,
    pub transaction_id: String,
    pub order_id: String,
    pub kind: String,
    pub channel: String,
    pub currency: String,
    pub payout_id: String,
    pub ledger_amount: i64,
    pub report_amount: i64,
    /// The fee the gateway's schedule gives for this item.
    pub expected_fee: i64,
    pub report_fee: i64,
    pub detail: String,
    /// The amounts above as decimals by the currency's exponent (`"net": "376.63"`).
    #[schema(value_type = BTreeMap<String, String>)]
    pub formatted: Formatted,
}

impl From<ReconciliationRow> for ReconciledItem {
    fn from(r: ReconciliationRow) -> Self {
        let formatted = formatted(
            &r.currency,
            &[
                ("ledger_amount", r.ledger_amount),
                ("report_amount", r.report_amount),
                ("expected_fee", r.ledger_fee),
                ("report_fee", r.report_fee),
            ],
        );
        Self {
            formatted,
            day: day(r.day),
            item_key: r.item_key,
            outcome: r.outcome,
            transaction_id: r.gateway_txn_id,
            order_id: r.order_id,
            kind: r.kind,
            channel: r.channel,
            currency: r.currency,
            payout_id: r.payout_id,
            ledger_amount: r.ledger_amount,
            report_amount: r.report_amount,
            expected_fee: r.ledger_fee,
            report_fee: r.report_fee,
            detail: r.detail,
        }
    }
}

impl CsvRow for ReconciledItem {
    const HEADER: &'static [&'static str] = &[
        "day",
        "item_key",
        "outcome",
        "transaction_id",
        "order_id",
        "kind",
        "channel",
        "currency",
        "payout_id",
        "ledger_amount",
        "report_amount",
        "expected_fee",
        "report_fee",
        "detail",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.day.clone(),
            self.item_key.clone(),
            self.outcome.clone(),
            self.transaction_id.clone(),
            self.order_id.clone(),
            self.kind.clone(),
            self.channel.clone(),
            self.currency.clone(),
            self.payout_id.clone(),
            decimal(&self.currency, self.ledger_amount),
            decimal(&self.currency, self.report_amount),
            decimal(&self.currency, self.expected_fee),
            decimal(&self.currency, self.report_fee),
            self.detail.clone(),
        ]
    }
}

/// Items and amounts per day, channel, currency, payout and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReconciliationTotal {
    pub day: String,
    pub channel: String,
    pub currency: String,
    pub payout_id: String,
    pub outcome: String,
    pub items: u64,
    pub ledger_amount: i64,
    pub report_amount: i64,
    /// The amounts above as decimals by the currency's exponent (`"net": "376.63"`).
    #[schema(value_type = BTreeMap<String, String>)]
    pub formatted: Formatted,
}

impl From<ReconciliationTotalRow> for ReconciliationTotal {
    fn from(r: ReconciliationTotalRow) -> Self {
        let formatted = formatted(
            &r.currency,
            &[
                ("ledger_amount", r.ledger_amount),
                ("report_amount", r.report_amount),
            ],
        );
        Self {
            formatted,
            day: day(r.day),
            channel: r.channel,
            currency: r.currency,
            payout_id: r.payout_id,
            outcome: r.outcome,
            items: r.items,
            ledger_amount: r.ledger_amount,
            report_amount: r.report_amount,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReconciliationResponse {
    pub from: String,
    pub to: String,
    /// The items of the requested outcomes (default: the discrepancies), paginated.
    pub items: Vec<ReconciledItem>,
    pub next_offset: Option<u64>,
    /// Totals over every outcome of the range (not paginated).
    pub totals: Vec<ReconciliationTotal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StageCount {
    pub status: String,
    pub orders: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StageTime {
    /// `placed_to_reserved`, `placed_to_authorized`, `authorized_to_confirmed`,
    /// `confirmed_to_captured`, `placed_to_cancelled`
    pub stage: String,
    pub orders: u64,
    pub p50_seconds: u32,
    pub p95_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReturnRate {
    pub sku: String,
    pub reason: String,
    pub returned: u64,
    pub sold: u64,
    /// returned / sold (0 when nothing was sold in the range).
    pub rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Cancellations {
    pub orders: u64,
    pub cancelled: u64,
    /// cancelled / orders (0 without orders).
    pub rate: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricsResponse {
    pub from: String,
    pub to: String,
    pub orders_per_stage: Vec<StageCount>,
    pub time_in_stage: Vec<StageTime>,
    pub cancellations: Cancellations,
    pub return_rates: Vec<ReturnRate>,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl MetricsResponse {
    pub fn new(
        from: String,
        to: String,
        stages: Vec<StageCountRow>,
        times: Vec<StageTimeRow>,
        cancellations: CancellationRow,
        returns: Vec<ReturnRateRow>,
    ) -> Self {
        Self {
            from,
            to,
            orders_per_stage: stages
                .into_iter()
                .map(|s| StageCount {
                    status: s.status,
                    orders: s.orders,
                })
                .collect(),
            time_in_stage: times
                .into_iter()
                .map(|t| StageTime {
                    stage: t.stage,
                    orders: t.orders,
                    p50_seconds: t.p50_seconds,
                    p95_seconds: t.p95_seconds,
                })
                .collect(),
            cancellations: Cancellations {
                orders: cancellations.orders,
                cancelled: cancellations.cancelled,
                rate: ratio(cancellations.cancelled, cancellations.orders),
            },
            return_rates: returns
                .into_iter()
                .map(|r| ReturnRate {
                    rate: ratio(r.returned, r.sold),
                    sku: r.sku,
                    reason: r.reason,
                    returned: r.returned,
                    sold: r.sold,
                })
                .collect(),
        }
    }

    /// The metrics as long-format CSV rows.
    pub fn csv_rows(&self) -> Vec<MetricLine> {
        let mut rows = Vec::new();
        for s in &self.orders_per_stage {
            rows.push(MetricLine::new(
                "orders_per_stage",
                &s.status,
                "orders",
                s.orders as f64,
            ));
        }
        for t in &self.time_in_stage {
            rows.push(MetricLine::new(
                "time_in_stage",
                &t.stage,
                "orders",
                t.orders as f64,
            ));
            rows.push(MetricLine::new(
                "time_in_stage",
                &t.stage,
                "p50_seconds",
                f64::from(t.p50_seconds),
            ));
            rows.push(MetricLine::new(
                "time_in_stage",
                &t.stage,
                "p95_seconds",
                f64::from(t.p95_seconds),
            ));
        }
        let c = &self.cancellations;
        rows.push(MetricLine::new(
            "cancellations",
            "all",
            "orders",
            c.orders as f64,
        ));
        rows.push(MetricLine::new(
            "cancellations",
            "all",
            "cancelled",
            c.cancelled as f64,
        ));
        rows.push(MetricLine::new("cancellations", "all", "rate", c.rate));
        for r in &self.return_rates {
            let key = format!("{}/{}", r.sku, r.reason);
            rows.push(MetricLine::new(
                "return_rate",
                &key,
                "returned",
                r.returned as f64,
            ));
            rows.push(MetricLine::new("return_rate", &key, "sold", r.sold as f64));
            rows.push(MetricLine::new("return_rate", &key, "rate", r.rate));
        }
        rows
    }
}

/// One metric value in the CSV export.
pub struct MetricLine {
    metric: &'static str,
    key: String,
    measure: &'static str,
    value: f64,
}

impl MetricLine {
    fn new(metric: &'static str, key: &str, measure: &'static str, value: f64) -> Self {
        Self {
            metric,
            key: key.to_owned(),
            measure,
            value,
        }
    }
}

impl CsvRow for MetricLine {
    const HEADER: &'static [&'static str] = &["metric", "key", "measure", "value"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.metric.to_owned(),
            self.key.clone(),
            self.measure.to_owned(),
            self.value.to_string(),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_with_commas_quotes_or_newlines_are_quoted() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a,b"), "\"a,b\"");
        assert_eq!(escape("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(escape("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_are_made_text() {
        assert_eq!(
            escape("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        assert_eq!(escape("+1+1"), "\"'+1+1\"");
        assert_eq!(escape("-2+3"), "\"'-2+3\"");
        assert_eq!(escape("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(escape("\tcmd"), "\"'\tcmd\"");
        assert_eq!(escape("\r=1"), "\"'\r=1\"");
        assert_eq!(escape("a=b"), "a=b");
    }

    fn row_of(currency: &str) -> DailySummaryRow {
        DailySummaryRow {
            day: 0,
            channel: "web".into(),
            currency: currency.into(),
            orders: 1,
            gross_sales: 37663,
            captures: 37663,
            refunds: 0,
            fees: 1092,
            chargebacks: 0,
            net: 36571,
        }
    }

    #[test]
    fn amounts_are_decimals_by_the_currency_exponent() {
        assert_eq!(decimal("USD", 37663), "376.63");
        assert_eq!(decimal("JPY", 37663), "37663");
        assert_eq!(decimal("KWD", -1500), "-1.500");
        let row = SummaryRow::from(row_of("JPY"));
        assert_eq!(row.formatted["gross_sales"], "37663");
        assert_eq!(row.cells()[4], "37663");
        let usd = SummaryRow::from(DailySummaryRow {
            currency: "USD".into(),
            net: -250,
            ..row_of("USD")
        });
        assert_eq!(usd.cells()[9], "-2.50");
        assert_eq!(usd.formatted["net"], "-2.50");
    }

    #[test]
    fn negative_numbers_stay_numbers() {
        assert_eq!(escape("-1500"), "-1500");
        assert_eq!(escape("-15.00"), "-15.00");
        assert_eq!(escape("0.25"), "0.25");
        assert_eq!(escape("-"), "\"'-\"");
        assert_eq!(escape("-1e3"), "\"'-1e3\"");
        assert_eq!(escape("-.5"), "\"'-.5\"");
    }

    #[test]
    fn ratios_never_divide_by_zero() {
        assert_eq!(ratio(1, 0), 0.0);
        assert_eq!(ratio(1, 4), 0.25);
    }
}
