//! What importing a report records, decided without I/O: the report event and the payouts it
//! names. The caller says which payouts are already recorded (their streams exist) and commits.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};
use waybill_schemas::events::settlement::{payout_stream_id, settlement_stream_id};
use waybill_schemas::events::{PayoutRecorded, SettlementLine, SettlementReportImported};
use waybill_schemas::{Money, OrderEvent};

use super::csv::{parse_report, CsvError, CsvErrors};

/// A report to import.
#[derive(Debug, Clone)]
pub struct ImportInput<'a> {
    pub gateway: &'a str,
    pub report_date: NaiveDate,
    pub bytes: &'a [u8],
    pub imported_by: &'a str,
}

/// The events of one import, with their streams (each appended at expected version 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub report_id: String,
    pub report: SettlementReportImported,
    pub payouts: Vec<PayoutRecorded>,
}

impl Import {
    /// `(stream id, event)` for the report and each payout, report first.
    pub fn streams(&self) -> Vec<(String, OrderEvent)> {
        std::iter::once((
            settlement_stream_id(&self.report_id),
            OrderEvent::SettlementReportImported(self.report.clone()),
        ))
        .chain(self.payouts.iter().map(|p| {
            (
                payout_stream_id(&p.gateway, &p.payout_id),
                OrderEvent::PayoutRecorded(p.clone()),
            )
        }))
        .collect()
    }
}

/// SHA-256 of the report's bytes, lowercase hex: its identity.
pub fn report_id(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads the report and groups its lines into payouts; payouts for which `already_recorded`
/// says yes are left out. A payout whose lines are in two currencies is refused (naming the
/// first line that differs).
pub fn decide_import(
    input: &ImportInput<'_>,
    already_recorded: impl Fn(&str) -> bool,
    now: DateTime<Utc>,
) -> Result<Import, CsvErrors> {
    let lines = parse_report(input.bytes, input.report_date)?;
    let report_id = report_id(input.bytes);
    let payouts = payouts(&lines, input, &report_id, now)?
        .into_iter()
        .filter(|p| !already_recorded(&payout_stream_id(&p.gateway, &p.payout_id)))
        .collect();
    Ok(Import {
        report: SettlementReportImported {
            report_id: report_id.clone(),
            gateway: input.gateway.to_owned(),
            report_date: input.report_date,
            lines,
            imported_by: input.imported_by.to_owned(),
            imported_at: now,
        },
        report_id,
        payouts,
    })
}

fn payouts(
    lines: &[SettlementLine],
    input: &ImportInput<'_>,
    report_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<PayoutRecorded>, CsvErrors> {
    let mut by_id: BTreeMap<&str, PayoutRecorded> = BTreeMap::new();
    for line in lines {
        let Some(payout_id) = line.payout_id.as_deref() else {
            continue;
        };
        let payout = by_id.entry(payout_id).or_insert_with(|| PayoutRecorded {
            payout_id: payout_id.to_owned(),
            gateway: input.gateway.to_owned(),
            amount: Money::zero(line.net.currency),
            paid_on: line.settled_on,
            report_id: report_id.to_owned(),
            transaction_ids: Vec::new(),
            recorded_at: now,
        });
        let csv_line = line.line_no as usize + 1;
        let sum = payout.amount.checked_add(line.net).map_err(|_| {
            CsvErrors(vec![CsvError {
                line: csv_line,
                column: "currency".into(),
                detail: format!(
                    "payout {payout_id} is in {}; a line in {} cannot be part of it",
                    payout.amount.currency, line.net.currency
                ),
            }])
        })?;
        payout.amount = sum;
        payout.paid_on = payout.paid_on.max(line.settled_on);
        payout.transaction_ids.push(line.transaction_id.clone());
    }
    Ok(by_id.into_values().collect())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const REPORT: &str = "transaction_id,type,order_id,gross_minor,fee_minor,net_minor,currency,original_minor,original_currency,payout_id,transaction_date,settlement_date
cap_1,capture,,10000,320,9680,USD,,,po_1_USD,2026-11-25,2026-11-25
re_1,refund,,-1000,0,-1000,USD,,,po_1_USD,2026-11-24,2026-11-25
cap_2,capture,,27600,830,26770,EUR,30000,USD,po_1_EUR,2026-11-25,2026-11-25
";

    fn input(bytes: &[u8]) -> ImportInput<'_> {
        ImportInput {
            gateway: "sandbox",
            report_date: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            bytes,
            imported_by: "finance-1",
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 6, 0, 0).unwrap()
    }

    #[test]
    fn an_import_is_the_report_and_one_payout_per_payout_id() {
        let import = decide_import(&input(REPORT.as_bytes()), |_| false, now()).unwrap();
        assert_eq!(import.report_id.len(), 64);
        assert_eq!(import.report.lines.len(), 3);
        let payouts: Vec<(&str, i64, usize)> = import
            .payouts
            .iter()
            .map(|p| {
                (
                    p.payout_id.as_str(),
                    p.amount.minor,
                    p.transaction_ids.len(),
                )
            })
            .collect();
        assert_eq!(payouts, vec![("po_1_EUR", 26770, 1), ("po_1_USD", 8680, 2)]);
        let streams = import.streams();
        assert_eq!(streams[0].0, format!("settlement-{}", import.report_id));
        assert_eq!(streams[1].0, "payout-sandbox-po_1_EUR");
    }

    #[test]
    fn the_same_bytes_are_the_same_report_and_recorded_payouts_are_left_out() {
        let first = decide_import(&input(REPORT.as_bytes()), |_| false, now()).unwrap();
        let again = decide_import(
            &input(REPORT.as_bytes()),
            |s| s.ends_with("po_1_USD"),
            now(),
        )
        .unwrap();
        assert_eq!(first.report_id, again.report_id);
        assert_eq!(again.payouts.len(), 1);
        let changed = REPORT.replace("9680", "9681").replace(",320,", ",319,");
        assert_ne!(
            decide_import(&input(changed.as_bytes()), |_| false, now())
                .unwrap()
                .report_id,
            first.report_id
        );
    }

    #[test]
    fn a_payout_in_two_currencies_is_refused() {
        let mixed = REPORT.replace("po_1_EUR", "po_1_USD");
        let errors = decide_import(&input(mixed.as_bytes()), |_| false, now())
            .unwrap_err()
            .0;
        assert_eq!((errors[0].line, errors[0].column.as_str()), (4, "currency"));
    }
}
