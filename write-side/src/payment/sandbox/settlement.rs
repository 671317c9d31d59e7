//! Daily settlement reports from the sandbox (SIMULATED): what the sandbox did, as the CSV a
//! real gateway sends its merchants, with a switchable set of the awkward cases real reports
//! have ([`Quirk`]).
//!
//! A report for day D lists every transaction that settled on D: captures (fee 2.9 % + 0.30,
//! rounded half up), refunds (no fee), lost disputes (`chargeback`, with a 15.00 dispute fee),
//! all paid out in `po_<YYYYMMDD>_<currency>`. Amounts are integer minor units, and the fixed
//! fees are each currency's own (the default [`FeeSchedule`]: ¥0 and ¥15 in JPY).

use chrono::{DateTime, NaiveDate, Utc};
use waybill_schemas::fees::FeeSchedule;
use waybill_schemas::{Currency, Money, OrderId};

use super::disputes::DisputeStatus;
use super::state::Ledger;

/// The report's header line; Waybill's importer expects exactly these columns.
pub const HEADER: &str = "transaction_id,type,order_id,gross_minor,fee_minor,net_minor,currency,\
original_minor,original_currency,payout_id,transaction_date,settlement_date";

/// The unexpected fee [`Quirk::UnexpectedFee`] adds, in minor units.
pub const UNEXPECTED_FEE_MINOR: i64 = 250;
/// [`Quirk::Conversion`] settles in this currency at this rate (per mille of the order amount).
pub const CONVERSION_CURRENCY: &str = "EUR";
pub const CONVERSION_RATE_PER_MILLE: i64 = 920;

/// An awkward case the report can be switched to contain. Each touches a different line so
/// they can be combined: the 1st capture of the day goes missing, the 2nd is off by a cent,
/// the 3rd settles converted; quirks without enough captures do nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Quirk {
    /// The day's first capture is left out.
    Missing,
    /// The day's second capture is reported one minor unit higher.
    OffByOneCent,
    /// A fee Waybill did not cause (`fee_<date>_account`, 2.50).
    UnexpectedFee,
    /// Refunds settle the day after they were made.
    LateRefund,
    /// The day's third capture settles in EUR at 0.92, with the original amount given.
    Conversion,
    /// The day's last transaction line appears twice.
    Duplicate,
}

impl Quirk {
    pub const ALL: &'static [Quirk] = &[
        Quirk::Missing,
        Quirk::OffByOneCent,
        Quirk::UnexpectedFee,
        Quirk::LateRefund,
        Quirk::Conversion,
        Quirk::Duplicate,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Quirk::Missing => "missing",
            Quirk::OffByOneCent => "off_by_one_cent",
            Quirk::UnexpectedFee => "unexpected_fee",
            Quirk::LateRefund => "late_refund",
            Quirk::Conversion => "conversion",
            Quirk::Duplicate => "duplicate",
        }
    }
    pub fn parse(raw: &str) -> Option<Quirk> {
        Self::ALL.iter().copied().find(|q| q.name() == raw)
    }
}

/// One line of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    pub transaction_id: String,
    pub kind: &'static str,
    pub order_id: Option<OrderId>,
    pub gross: i64,
    pub fee: i64,
    pub currency: Currency,
    pub original: Option<Money>,
    pub transaction_date: NaiveDate,
    pub settlement_date: NaiveDate,
    /// When it happened, for ordering the report.
    at: DateTime<Utc>,
}

impl ReportLine {
    fn csv(&self) -> String {
        let (original_minor, original_currency) = match self.original {
            Some(m) => (m.minor.to_string(), m.currency.code().to_owned()),
            None => (String::new(), String::new()),
        };
        format!(
            "{},{},{},{},{},{},{},{},{},po_{}_{},{},{}",
            self.transaction_id,
            self.kind,
            self.order_id.map(|o| o.to_string()).unwrap_or_default(),
            self.gross,
            self.fee,
            self.gross - self.fee,
            self.currency.code(),
            original_minor,
            original_currency,
            self.settlement_date.format("%Y%m%d"),
            self.currency.code(),
            self.transaction_date,
            self.settlement_date,
        )
    }
}

/// The sandbox's fee contract: the default one, which Waybill's reconciliation expects unless
/// configured otherwise.
fn contract() -> FeeSchedule {
    FeeSchedule::default()
}

impl Ledger {
    /// The report of what settled on `date`, as CSV text (header first).
    pub fn settlement_report(&self, date: NaiveDate, quirks: &[Quirk]) -> String {
        let has = |q| quirks.contains(&q);
        let fees = contract();
        let mut captures: Vec<ReportLine> = self
            .captures
            .values()
            .filter(|c| c.created_at.date_naive() == date)
            .map(|c| ReportLine {
                transaction_id: c.id.clone(),
                kind: "capture",
                order_id: Some(c.order_id),
                gross: c.amount.minor,
                fee: fees.capture_fee(c.amount.minor, c.amount.currency),
                currency: c.amount.currency,
                original: None,
                transaction_date: date,
                settlement_date: date,
                at: c.created_at,
            })
            .collect();
        captures.sort_by(|a, b| (a.at, &a.transaction_id).cmp(&(b.at, &b.transaction_id)));
        if has(Quirk::Missing) && !captures.is_empty() {
            captures.remove(0);
        }
        // After a removal, the 2nd and 3rd of the day are now at 0 and 1.
        let offset = usize::from(has(Quirk::Missing));
        if has(Quirk::OffByOneCent) {
            if let Some(line) = captures.get_mut(1 - offset) {
                line.gross += 1;
                line.fee = fees.capture_fee(line.gross, line.currency);
            }
        }
        if has(Quirk::Conversion) {
            if let (Some(line), Ok(eur)) = (
                captures.get_mut(2 - offset),
                Currency::parse(CONVERSION_CURRENCY),
            ) {
                line.original = Some(Money::new(line.gross, line.currency));
                line.gross = (line.gross * CONVERSION_RATE_PER_MILLE + 500) / 1000;
                line.fee = fees.capture_fee(line.gross, eur);
                line.currency = eur;
            }
        }
        let refund_delay = chrono::Days::new(u64::from(has(Quirk::LateRefund)));
        let refunds = self.refunds.iter().filter_map(|r| {
            let made = r.created_at.date_naive();
            let settles = made.checked_add_days(refund_delay)?;
            (settles == date).then(|| ReportLine {
                transaction_id: r.id.clone(),
                kind: "refund",
                order_id: Some(r.order_id),
                gross: -r.amount.minor,
                fee: 0,
                currency: r.amount.currency,
                original: None,
                transaction_date: made,
                settlement_date: date,
                at: r.created_at,
            })
        });
        let chargebacks = self.disputes.values().filter_map(|d| {
            let decided = d.decided_at?;
            (d.status == DisputeStatus::Lost && decided.date_naive() == date).then(|| ReportLine {
                transaction_id: d.id.clone(),
                kind: "chargeback",
                order_id: Some(d.order_id),
                gross: -d.amount.minor,
                fee: fees.fees_in(d.amount.currency).dispute,
                currency: d.amount.currency,
                original: None,
                transaction_date: d.opened_at.date_naive(),
                settlement_date: date,
                at: decided,
            })
        });
        let mut lines: Vec<ReportLine> = captures
            .into_iter()
            .chain(refunds)
            .chain(chargebacks)
            .collect();
        lines.sort_by(|a, b| (a.at, &a.transaction_id).cmp(&(b.at, &b.transaction_id)));
        if has(Quirk::Duplicate) {
            if let Some(last) = lines.last().cloned() {
                lines.push(last);
            }
        }
        if has(Quirk::UnexpectedFee) {
            if let Some(currency) = lines.first().map(|l| l.currency) {
                lines.push(ReportLine {
                    transaction_id: format!("fee_{}_account", date.format("%Y%m%d")),
                    kind: "fee",
                    order_id: None,
                    gross: 0,
                    fee: UNEXPECTED_FEE_MINOR,
                    currency,
                    original: None,
                    transaction_date: date,
                    settlement_date: date,
                    at: date
                        .and_hms_opt(23, 59, 59)
                        .map(|t| t.and_utc())
                        .unwrap_or_default(),
                });
            }
        }
        let mut csv = String::from(HEADER);
        csv.push('\n');
        for line in &lines {
            csv.push_str(&line.csv());
            csv.push('\n');
        }
        csv
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::payment::sandbox::state::Policy;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, 0, 0).unwrap()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
    }

    /// Four captures of 100.00, 200.00, 300.00, 400.00 USD at 1:00–4:00, a refund of 10.00 from
    /// the first at 5:00.
    fn ledger() -> (Ledger, Vec<String>) {
        let mut ledger = Ledger::new(Policy {
            public_url: "http://gw.test".into(),
            auth_validity: Duration::days(7),
            challenge_validity: Duration::minutes(10),
        });
        let usd = Currency::parse("USD").unwrap();
        let mut ids = Vec::new();
        for i in 1..=4 {
            let amount = Money::new(10_000 * i, usd);
            let auth = ledger
                .authorize(
                    OrderId::new_v7(),
                    amount,
                    "tok_4242424242424242",
                    t(i as u32),
                )
                .unwrap();
            ids.push(ledger.capture(&auth.id, amount, t(i as u32)).unwrap().0.id);
        }
        ledger.refund(&ids[0], Money::new(1000, usd), t(5)).unwrap();
        (ledger, ids)
    }

    fn rows(csv: &str) -> Vec<Vec<String>> {
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn a_plain_report_lists_the_days_captures_and_refunds_with_fees() {
        let (ledger, ids) = ledger();
        let csv = ledger.settlement_report(day(), &[]);
        assert!(csv.starts_with(HEADER));
        let rows = rows(&csv);
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0][0], ids[0]);
        assert_eq!(rows[0][1], "capture");
        assert_eq!(rows[0][3], "10000");
        assert_eq!(rows[0][4], "320", "2.9 % of 100.00 + 0.30");
        assert_eq!(rows[0][5], "9680");
        assert_eq!(rows[0][9], "po_20261125_USD");
        assert_eq!(rows[4][1], "refund");
        assert_eq!(rows[4][3], "-1000");
        assert!(
            ledger
                .settlement_report(day().succ_opt().unwrap(), &[])
                .lines()
                .count()
                == 1
        );
    }

    #[test]
    fn each_quirk_changes_the_report_as_documented() {
        let (ledger, ids) = ledger();
        let csv = ledger.settlement_report(day(), Quirk::ALL);
        let rows = rows(&csv);
        let ids_in: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert!(!ids_in.contains(&ids[0].as_str()), "missing");
        assert_eq!(rows[0][3], "20001", "off by one cent");
        assert_eq!(rows[1][6], "EUR", "converted");
        assert_eq!(rows[1][3], "27600");
        assert_eq!((rows[1][7].as_str(), rows[1][8].as_str()), ("30000", "USD"));
        assert!(
            !ids_in.iter().any(|id| id.starts_with("re_")),
            "the refund settles tomorrow"
        );
        let fee = rows.iter().find(|r| r[1] == "fee").expect("unexpected fee");
        assert_eq!(fee[5], "-250");
        let last_capture = &ids[3];
        assert_eq!(
            rows.iter().filter(|r| &r[0] == last_capture).count(),
            2,
            "duplicate"
        );
        let tomorrow = ledger.settlement_report(day().succ_opt().unwrap(), &[Quirk::LateRefund]);
        assert_eq!(rows_of_kind(&tomorrow, "refund"), 1);
    }

    fn rows_of_kind(csv: &str, kind: &str) -> usize {
        rows(csv).iter().filter(|r| r[1] == kind).count()
    }
}
