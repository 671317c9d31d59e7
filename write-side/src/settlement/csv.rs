//! The settlement report CSV: a header naming the columns (in any order; extra columns are
//! ignored) and one line per transaction. Every refusal names the file line (the header is
//! line 1) and the column, and all of them are reported at once (up to [`MAX_ERRORS`]).

use chrono::NaiveDate;
use waybill_schemas::events::{SettlementLine, SettlementLineKind};
use waybill_schemas::{Currency, Money, OrderId};

/// The columns a report must have.
pub const COLUMNS: &[&str] = &[
    "transaction_id",
    "type",
    "order_id",
    "gross_minor",
    "fee_minor",
    "net_minor",
    "currency",
    "original_minor",
    "original_currency",
    "payout_id",
    "transaction_date",
    "settlement_date",
];

/// Most errors reported for one file.
pub const MAX_ERRORS: usize = 50;
/// Longest id (transaction, payout) accepted.
const MAX_ID: usize = 128;

/// One refused cell (or line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {detail}")]
pub struct CsvError {
    /// 1-based line of the file (the header is line 1).
    pub line: usize,
    pub column: String,
    pub detail: String,
}

/// Every refusal of a file; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} error(s) in the settlement report, first {}", .0.len(), .0.first().map(|e| e.to_string()).unwrap_or_default())]
pub struct CsvErrors(pub Vec<CsvError>);

/// Splits one CSV line into fields (RFC 4180 quoting: `"a,b"`, `""` for a quote).
fn fields(line: &str) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_start => {
                quoted = true;
                at_start = false;
            }
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, ',') => {
                out.push(std::mem::take(&mut field));
                at_start = true;
            }
            (_, c) => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("has an unterminated quoted field");
    }
    out.push(field);
    Ok(out)
}

struct Row<'a> {
    line: usize,
    cells: &'a [String],
    index: &'a [usize],
    errors: &'a mut Vec<CsvError>,
}

impl Row<'_> {
    fn cell(&self, column: usize) -> &str {
        self.cells
            .get(self.index[column])
            .map(|s| s.trim())
            .unwrap_or("")
    }
    fn fail(&mut self, column: usize, detail: impl Into<String>) {
        self.errors.push(CsvError {
            line: self.line,
            column: COLUMNS[column].to_owned(),
            detail: detail.into(),
        });
    }
    fn id(&mut self, column: usize, required: bool) -> Option<Option<String>> {
        let raw = self.cell(column).to_owned();
        if raw.is_empty() {
            if required {
                self.fail(column, "is required");
                return None;
            }
            return Some(None);
        }
        if raw.len() > MAX_ID || raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            self.fail(
                column,
                format!("must be at most {MAX_ID} characters without spaces"),
            );
            return None;
        }
        Some(Some(raw))
    }
    fn minor(&mut self, column: usize) -> Option<i64> {
        let raw = self.cell(column).to_owned();
        match raw.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.fail(
                    column,
                    format!("'{raw}' is not an integer amount in minor units"),
                );
                None
            }
        }
    }
    fn currency(&mut self, column: usize) -> Option<Currency> {
        let raw = self.cell(column).to_owned();
        match Currency::parse(&raw) {
            Ok(c) => Some(c),
            Err(e) => {
                self.fail(column, e.to_string());
                None
            }
        }
    }
    fn date(&mut self, column: usize) -> Option<NaiveDate> {
        let raw = self.cell(column).to_owned();
        match NaiveDate::parse_from_str(&raw, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                self.fail(column, format!("'{raw}' is not a date YYYY-MM-DD"));
                None
            }
        }
    }
}

/// Reads a whole report. `Ok` only when every line is valid.
pub fn parse_report(bytes: &[u8]) -> Result<Vec<SettlementLine>, CsvErrors> {
    let fail = |line, column: &str, detail: String| {
        CsvErrors(vec![CsvError {
            line,
            column: column.to_owned(),
            detail,
        }])
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|e| fail(1, "*", format!("the report is not UTF-8 text: {e}")))?;
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Err(fail(1, "*", "the report is empty (no header line)".into()));
    };
    let header =
        fields(header.trim_start_matches('\u{feff}')).map_err(|d| fail(1, "*", d.to_owned()))?;
    let names: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let mut index = Vec::with_capacity(COLUMNS.len());
    let mut missing = Vec::new();
    for column in COLUMNS {
        match names.iter().position(|n| n == column) {
            Some(i) => index.push(i),
            None => missing.push(CsvError {
                line: 1,
                column: (*column).to_owned(),
                detail: "is missing from the header".to_owned(),
            }),
        }
    }
    if !missing.is_empty() {
        return Err(CsvErrors(missing));
    }
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, raw) in lines {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let cells = match fields(raw) {
            Ok(cells) => cells,
            Err(detail) => {
                errors.push(CsvError {
                    line,
                    column: "*".into(),
                    detail: detail.into(),
                });
                continue;
            }
        };
        if cells.len() < header.len() {
            errors.push(CsvError {
                line,
                column: "*".into(),
                detail: format!(
                    "has {} fields, the header has {}",
                    cells.len(),
                    header.len()
                ),
            });
            continue;
        }
        let line_no = u32::try_from(out.len() + 1).unwrap_or(u32::MAX);
        let mut row = Row {
            line,
            cells: &cells,
            index: &index,
            errors: &mut errors,
        };
        if let Some(parsed) = parse_line(&mut row, line_no) {
            out.push(parsed);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(CsvErrors(errors))
    }
}

fn parse_line(row: &mut Row<'_>, line_no: u32) -> Option<SettlementLine> {
    let transaction_id = row.id(0, true);
    let kind_raw = row.cell(1).to_owned();
    let kind = SettlementLineKind::parse(&kind_raw);
    if kind.is_none() {
        let known: Vec<&str> = SettlementLineKind::ALL.iter().map(|k| k.as_str()).collect();
        row.fail(
            1,
            format!("'{kind_raw}' is not one of {}", known.join(", ")),
        );
    }
    let order_raw = row.cell(2).to_owned();
    let order_id = if order_raw.is_empty() {
        Some(None)
    } else {
        match OrderId::parse(&order_raw) {
            Ok(id) => Some(Some(id)),
            Err(e) => {
                row.fail(2, e.to_string());
                None
            }
        }
    };
    let gross = row.minor(3);
    let fee = row.minor(4);
    let net = row.minor(5);
    let currency = row.currency(6);
    let original = match (row.cell(7).is_empty(), row.cell(8).is_empty()) {
        (true, true) => Some(None),
        (false, false) => match (row.minor(7), row.currency(8)) {
            (Some(minor), Some(currency)) => Some(Some(Money::new(minor, currency))),
            _ => None,
        },
        (true, false) => {
            row.fail(7, "is required when original_currency is given");
            None
        }
        (false, true) => {
            row.fail(8, "is required when original_minor is given");
            None
        }
    };
    let payout_id = row.id(9, false);
    let transaction_date = row.date(10);
    let settled_on = row.date(11);
    if let (Some(gross), Some(fee), Some(net)) = (gross, fee, net) {
        if gross.checked_sub(fee) != Some(net) {
            row.fail(
                5,
                format!(
                    "must be gross_minor − fee_minor = {}, got {net}",
                    gross - fee
                ),
            );
            return None;
        }
    }
    let currency = currency?;
    Some(SettlementLine {
        line_no,
        transaction_id: transaction_id??,
        kind: kind?,
        order_id: order_id?,
        gross: Money::new(gross?, currency),
        fee: Money::new(fee?, currency),
        net: Money::new(net?, currency),
        original: original?,
        payout_id: payout_id?,
        transaction_date: transaction_date?,
        settled_on: settled_on?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "transaction_id,type,order_id,gross_minor,fee_minor,net_minor,currency,original_minor,original_currency,payout_id,transaction_date,settlement_date";

    fn report(lines: &[&str]) -> Vec<u8> {
        let mut text = format!("{HEADER}\n");
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        text.into_bytes()
    }

    #[test]
    fn a_good_report_reads_every_line() {
        let bytes = report(&[
            "cap_1,capture,0193a1b2-0000-7000-8000-000000000001,10000,320,9680,USD,,,po_1_USD,2026-11-25,2026-11-25",
            "cap_2,capture,,27600,830,26770,EUR,30000,USD,po_1_EUR,2026-11-25,2026-11-25",
            "\"fee_1\",fee,,0,250,-250,USD,,,po_1_USD,2026-11-25,2026-11-25",
        ]);
        let lines = parse_report(&bytes).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].kind, SettlementLineKind::Capture);
        assert_eq!(lines[0].net.minor, 9680);
        assert_eq!(lines[1].original.map(|m| m.minor), Some(30000));
        assert_eq!(lines[1].gross.currency.code(), "EUR");
        assert_eq!(lines[2].transaction_id, "fee_1");
        assert_eq!(lines[2].line_no, 3);
    }

    #[test]
    fn bad_cells_are_named_by_line_and_column_all_at_once() {
        let bytes = report(&[
            "cap_1,capture,,10000,320,9680,USD,,,po_1,2026-11-25,2026-11-25",
            "cap_2,bonus,,ten,0,0,USD,,,po_1,2026-11-25,2026-11-25",
            "cap_3,capture,not-a-uuid,100,0,99,USD,,,po_1,2026-13-01,2026-11-25",
        ]);
        let errors = parse_report(&bytes).unwrap_err().0;
        let named: Vec<(usize, &str)> =
            errors.iter().map(|e| (e.line, e.column.as_str())).collect();
        assert_eq!(
            named,
            vec![
                (3, "type"),
                (3, "gross_minor"),
                (4, "order_id"),
                (4, "transaction_date"),
                (4, "net_minor"),
            ]
        );
    }

    #[test]
    fn a_header_without_a_column_or_a_short_line_is_refused() {
        let errors = parse_report(b"transaction_id,type\ncap_1,capture\n")
            .unwrap_err()
            .0;
        assert_eq!(errors[0].line, 1);
        assert_eq!(errors[0].column, "order_id");
        let short = report(&["cap_1,capture,,1"]);
        let errors = parse_report(&short).unwrap_err().0;
        assert_eq!((errors[0].line, errors[0].column.as_str()), (2, "*"));
        assert!(parse_report(b"").is_err());
        assert!(parse_report(&[0xff, 0xfe]).is_err());
    }
}
