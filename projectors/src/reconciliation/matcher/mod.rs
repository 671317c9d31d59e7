//! The pure matcher: ledger entries against gateway settlement report lines, by gateway
//! transaction id. No I/O; the runner loads both sides and stores what this returns.
//!
//! Which ledger entry a report line settles:
//! | report line | ledger entry | amount compared |
//! |---|---|---|
//! | `capture` | `capture` | `|gross|` = captured amount |
//! | `refund` | `refund` | `|gross|` = refunded amount |
//! | `chargeback` | `chargeback_lost` | `|gross|` = the amount reversed |
//! | `chargeback_reversal` | `chargeback_won` | `|gross|` = the dispute's opened amount |
//! | `fee` | none: a fee the schedule does not know is a fee mismatch |
//! | `adjustment` | none: missing in ledger |
//!
//! A line converted by the gateway (`original_currency` set) is compared in the ledger's
//! currency through its `original_amount`; its fee is checked in the settlement currency.
//! Expected fees come from the gateway's contract ([`FeeSchedule`], per currency): a card fee
//! on captures, a dispute fee on lost chargebacks, nothing on anything else. One outcome per item, the first that applies: duplicate (a second line for the
//! same transaction), missing in ledger, missing in report, amount mismatch, fee mismatch,
//! matched.

use std::collections::{BTreeMap, HashMap};

pub use waybill_schemas::fees::FeeSchedule;
use waybill_schemas::Currency;

/// What reconciliation concluded about one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Matched,
    MissingInReport,
    MissingInLedger,
    AmountMismatch,
    FeeMismatch,
    Duplicate,
}

impl Outcome {
    pub const DISCREPANCIES: &'static [Outcome] = &[
        Outcome::MissingInReport,
        Outcome::MissingInLedger,
        Outcome::AmountMismatch,
        Outcome::FeeMismatch,
        Outcome::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Matched => "matched",
            Self::MissingInReport => "missing_in_report",
            Self::MissingInLedger => "missing_in_ledger",
            Self::AmountMismatch => "amount_mismatch",
            Self::FeeMismatch => "fee_mismatch",
            Self::Duplicate => "duplicate",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Matched]
            .iter()
            .chain(Self::DISCREPANCIES)
            .copied()
            .find(|o| o.as_str() == raw)
    }
}

/// A ledger entry to reconcile (kinds `capture`, `refund`, `chargeback_lost`,
/// `chargeback_won`; `chargeback_opened` entries only lend a won dispute its amount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerItem {
    pub kind: String,
    pub gateway_txn_id: String,
    pub order_id: String,
    pub channel: String,
    pub currency: String,
    pub amount: i64,
    /// Days since the epoch.
    pub day: u16,
}

/// A settlement report line to reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportItem {
    pub report_id: String,
    pub line_no: u32,
    pub gateway_txn_id: String,
    pub kind: String,
    pub order_id: String,
    pub currency: String,
    pub gross: i64,
    pub fee: i64,
    /// Empty unless the gateway converted the amount.
    pub original_currency: String,
    pub original_amount: i64,
    pub payout_id: String,
    /// Days since the epoch.
    pub transaction_date: u16,
}

/// One reconciled item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `<report kind>:<transaction id>`, plus `:line<no>` for a duplicate line.
    pub item_key: String,
    pub outcome: Outcome,
    pub day: u16,
    pub gateway_txn_id: String,
    pub order_id: String,
    /// The report's kind (`capture`, `refund`, ...).
    pub kind: String,
    pub channel: String,
    pub currency: String,
    pub payout_id: String,
    pub ledger_amount: i64,
    pub report_amount: i64,
    pub expected_fee: i64,
    pub report_fee: i64,
    pub detail: String,
}

/// The report kind a ledger entry kind settles as.
fn report_kind(ledger_kind: &str) -> Option<&'static str> {
    match ledger_kind {
        "capture" => Some("capture"),
        "refund" => Some("refund"),
        "chargeback_lost" => Some("chargeback"),
        "chargeback_won" => Some("chargeback_reversal"),
        _ => None,
    }
}

/// Matches `ledger` against `report`. Findings come sorted by item key.
pub fn reconcile(ledger: &[LedgerItem], report: &[ReportItem], fees: &FeeSchedule) -> Vec<Finding> {
    // Amounts of opened disputes, for the reversal of a won one.
    let opened: HashMap<&str, i64> = ledger
        .iter()
        .filter(|e| e.kind == "chargeback_opened")
        .map(|e| (e.gateway_txn_id.as_str(), e.amount))
        .collect();
    let mut entries: BTreeMap<String, &LedgerItem> = BTreeMap::new();
    for entry in ledger {
        if let Some(kind) = report_kind(&entry.kind) {
            entries.insert(format!("{kind}:{}", entry.gateway_txn_id), entry);
        }
    }
    let mut lines: BTreeMap<String, Vec<&ReportItem>> = BTreeMap::new();
    for line in report {
        lines
            .entry(format!("{}:{}", line.kind, line.gateway_txn_id))
            .or_default()
            .push(line);
    }

    let mut findings = Vec::new();
    for (key, lines) in &lines {
        let mut lines = lines.clone();
        lines.sort_by_key(|l| (l.report_id.as_str(), l.line_no));
        let first = lines[0];
        for extra in &lines[1..] {
            findings.push(Finding {
                item_key: format!("{key}:line{}", extra.line_no),
                outcome: Outcome::Duplicate,
                detail: format!(
                    "{} line {} repeats {} line {}",
                    extra.report_id, extra.line_no, first.report_id, first.line_no
                ),
                ..from_line(key, extra, entries.get(key).copied())
            });
        }
        let entry = entries.get(key).copied();
        findings.push(judge(key, first, entry, &opened, fees));
    }
    for (key, entry) in &entries {
        if !lines.contains_key(key) {
            findings.push(Finding {
                item_key: key.clone(),
                outcome: Outcome::MissingInReport,
                day: entry.day,
                gateway_txn_id: entry.gateway_txn_id.clone(),
                order_id: entry.order_id.clone(),
                kind: report_kind(&entry.kind).unwrap_or_default().to_owned(),
                channel: entry.channel.clone(),
                currency: entry.currency.clone(),
                payout_id: String::new(),
                ledger_amount: ledger_amount(entry, &opened),
                report_amount: 0,
                expected_fee: 0,
                report_fee: 0,
                detail: format!(
                    "{} {} is in no settlement report",
                    entry.kind, entry.gateway_txn_id
                ),
            });
        }
    }
    findings.sort_by(|a, b| a.item_key.cmp(&b.item_key));
    findings
}

fn ledger_amount(entry: &LedgerItem, opened: &HashMap<&str, i64>) -> i64 {
    if entry.kind == "chargeback_won" {
        opened
            .get(entry.gateway_txn_id.as_str())
            .copied()
            .unwrap_or(entry.amount)
    } else {
        entry.amount
    }
}

/// A finding about `line` with the ledger side filled in from `entry` when there is one.
fn from_line(key: &str, line: &ReportItem, entry: Option<&LedgerItem>) -> Finding {
    Finding {
        item_key: key.to_owned(),
        outcome: Outcome::Matched,
        day: entry.map_or(line.transaction_date, |e| e.day),
        gateway_txn_id: line.gateway_txn_id.clone(),
        order_id: entry.map_or_else(|| line.order_id.clone(), |e| e.order_id.clone()),
        kind: line.kind.clone(),
        channel: entry.map(|e| e.channel.clone()).unwrap_or_default(),
        currency: entry.map_or_else(|| line.currency.clone(), |e| e.currency.clone()),
        payout_id: line.payout_id.clone(),
        ledger_amount: 0,
        report_amount: line.gross.abs(),
        expected_fee: 0,
        report_fee: line.fee,
        detail: String::new(),
    }
}

fn judge(
    key: &str,
    line: &ReportItem,
    entry: Option<&LedgerItem>,
    opened: &HashMap<&str, i64>,
    fees: &FeeSchedule,
) -> Finding {
    let mut finding = from_line(key, line, entry);
    // Imported lines carry a currency Waybill knows (the import checks it).
    let expected_fee = Currency::parse(&line.currency)
        .map(|currency| fees.expected(&line.kind, line.gross, currency))
        .unwrap_or(0);
    finding.expected_fee = expected_fee;
    let Some(entry) = entry else {
        if line.kind == "fee" {
            finding.outcome = Outcome::FeeMismatch;
            finding.detail = format!(
                "unexpected fee line of {}",
                amount(line.fee, &line.currency)
            );
        } else {
            finding.outcome = Outcome::MissingInLedger;
            finding.detail = format!("{} {} is not in the ledger", line.kind, line.gateway_txn_id);
        }
        return finding;
    };
    let expected = ledger_amount(entry, opened);
    finding.ledger_amount = expected;
    // A converted line states what it was in the ledger's currency.
    let (reported, reported_currency) = if line.original_currency.is_empty() {
        (line.gross.abs(), line.currency.as_str())
    } else {
        (line.original_amount.abs(), line.original_currency.as_str())
    };
    finding.report_amount = reported;
    if reported_currency != entry.currency || reported != expected {
        finding.outcome = Outcome::AmountMismatch;
        // The difference is only a number of one currency when both sides are in it.
        let difference = if reported_currency == entry.currency {
            format!(
                " (difference {})",
                amount(reported - expected, &entry.currency)
            )
        } else {
            String::new()
        };
        finding.detail = format!(
            "ledger {}, report {}{difference}",
            amount(expected, &entry.currency),
            amount(reported, reported_currency),
        );
        return finding;
    }
    if line.fee != expected_fee {
        finding.outcome = Outcome::FeeMismatch;
        finding.detail = format!(
            "fee {} where the schedule gives {}",
            amount(line.fee, &line.currency),
            amount(expected_fee, &line.currency)
        );
        return finding;
    }
    if !line.original_currency.is_empty() {
        finding.detail = format!(
            "converted: {} settled as {}",
            amount(line.original_amount, &line.original_currency),
            amount(line.gross, &line.currency)
        );
    }
    finding
}

/// `minor` units of the currency `code` as people read them (`31.56 USD`, `3156 JPY`); a code
/// Waybill does not know is shown as it came, with the bare number of minor units.
fn amount(minor: i64, code: &str) -> String {
    match Currency::parse(code) {
        Ok(currency) => format!("{} {}", currency.format_minor(minor), currency.code()),
        Err(_) => format!("{minor} (minor units) {code}"),
    }
}

#[cfg(test)]
mod tests;
