//! The settlement report CSV, read with the `csv` crate (RFC 4180: quoted fields may hold
//! commas, quotes and line breaks): a header naming exactly the [`COLUMNS`] (in any order; a
//! column Waybill does not know, or one named twice, is refused rather than dropped) and one
//! record per transaction with as many fields as the header. Lines are checked against the
//! report they belong to: nothing settles after the report's day, nor before its own
//! transaction. Every refusal names the file line where the record starts (the header is
//! line 1) and the column, and all of them are reported at once (up to [`MAX_ERRORS`]).

use chrono::NaiveDate;
use waybill_schemas::events::{SettlementLine, SettlementLineKind};
use waybill_schemas::{Currency, Money, OrderId};

/// The columns a report must have, and the only ones it may have.
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
/// The column named for a refusal about a whole line.
pub const WHOLE_LINE: &str = "*";

/// One refused cell (or line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {detail}")]
pub struct CsvError {
    /// 1-based line of the file (the header is line 1).
    pub line: usize,
    pub column: String,
    pub detail: String,
}

impl CsvError {
    fn new(line: usize, column: &str, detail: impl Into<String>) -> Self {
        Self {
            line,
            column: column.to_owned(),
            detail: detail.into(),
        }
    }
}

/// Every refusal of a file; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} error(s) in the settlement report, first {}", .0.len(), .0.first().map(|e| e.to_string()).unwrap_or_default())]
pub struct CsvErrors(pub Vec<CsvError>);

/// The file line a record starts on (the `csv` crate counts from 1).
fn line_of(position: Option<&csv::Position>) -> usize {
    position
        .and_then(|p| usize::try_from(p.line()).ok())
        .unwrap_or(1)
}

/// Where each of [`COLUMNS`] sits in the header, or every problem with the header.
fn header_index(header: &csv::StringRecord) -> Result<Vec<usize>, CsvErrors> {
    let names: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let mut errors = Vec::new();
    let mut index = Vec::with_capacity(COLUMNS.len());
    for column in COLUMNS {
        match names.iter().position(|n| n == column) {
            Some(i) => index.push(i),
            None => errors.push(CsvError::new(1, column, "is missing from the header")),
        }
    }
    for (i, name) in names.iter().enumerate() {
        if !COLUMNS.contains(&name.as_str()) {
            errors.push(CsvError::new(
                1,
                name,
                format!(
                    "is not a column of the settlement report (columns: {})",
                    COLUMNS.join(", ")
                ),
            ));
        } else if names[..i].contains(name) {
            errors.push(CsvError::new(1, name, "appears twice in the header"));
        }
    }
    if errors.is_empty() {
        Ok(index)
    } else {
        Err(CsvErrors(errors))
    }
}

struct Row<'a> {
    line: usize,
    cells: &'a csv::StringRecord,
    index: &'a [usize],
    errors: &'a mut Vec<CsvError>,
}

impl Row<'_> {
    fn cell(&self, column: usize) -> &str {
        self.cells
            .get(self.index[column])
            .map(str::trim)
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

/// Reads a whole report for the day `report_date`. `Ok` only when every line is valid.
pub fn parse_report(
    bytes: &[u8],
    report_date: NaiveDate,
) -> Result<Vec<SettlementLine>, CsvErrors> {
    let fail = |line, detail: String| CsvErrors(vec![CsvError::new(line, WHOLE_LINE, detail)]);
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.records();
    let header = match records.next() {
        None => return Err(fail(1, "the report is empty (no header line)".into())),
        Some(Err(e)) => return Err(fail(line_of(e.position()), unreadable(&e))),
        Some(Ok(header)) => header,
    };
    let index = header_index(&header)?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for record in records {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let cells = match record {
            Ok(cells) => cells,
            Err(e) => {
                errors.push(CsvError::new(
                    line_of(e.position()),
                    WHOLE_LINE,
                    unreadable(&e),
                ));
                // A record the reader cannot make sense of leaves it lost for the rest.
                break;
            }
        };
        let line = line_of(cells.position());
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if cells.len() != header.len() {
            errors.push(CsvError::new(
                line,
                WHOLE_LINE,
                format!(
                    "has {} fields, the header has {}",
                    cells.len(),
                    header.len()
                ),
            ));
            continue;
        }
        let line_no = u32::try_from(out.len() + 1).unwrap_or(u32::MAX);
        let mut row = Row {
            line,
            cells: &cells,
            index: &index,
            errors: &mut errors,
        };
        if let Some(parsed) = parse_line(&mut row, line_no, report_date) {
            out.push(parsed);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(CsvErrors(errors))
    }
}

/// Why the reader gave up on a record, in words for the person who sent the file.
fn unreadable(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "the report is not UTF-8 text".to_owned(),
        _ => format!("cannot be read as CSV: {error}"),
    }
}

fn parse_line(row: &mut Row<'_>, line_no: u32, report_date: NaiveDate) -> Option<SettlementLine> {
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
    if let (Some(made), Some(settled)) = (transaction_date, settled_on) {
        if settled < made {
            row.fail(
                11,
                format!("{settled} is before the transaction_date {made}"),
            );
            return None;
        }
    }
    if let Some(settled) = settled_on.filter(|d| *d > report_date) {
        row.fail(
            11,
            format!("{settled} is after the report's date {report_date}"),
        );
        return None;
    }
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

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
    }

    fn named(errors: &CsvErrors) -> Vec<(usize, &str)> {
        errors
            .0
            .iter()
            .map(|e| (e.line, e.column.as_str()))
            .collect()
    }

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
        let lines = parse_report(&bytes, day()).unwrap();
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
        let errors = parse_report(&bytes, day()).unwrap_err().0;
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
        let errors = parse_report(b"transaction_id,type\ncap_1,capture\n", day())
            .unwrap_err()
            .0;
        assert_eq!(errors[0].line, 1);
        assert_eq!(errors[0].column, "order_id");
        let short = report(&["cap_1,capture,,1"]);
        let errors = parse_report(&short, day()).unwrap_err().0;
        assert_eq!((errors[0].line, errors[0].column.as_str()), (2, "*"));
        assert!(parse_report(b"", day()).is_err());
        assert!(parse_report(&[0xff, 0xfe], day()).is_err());
    }

    #[test]
    fn a_quoted_field_may_span_lines_and_later_lines_keep_their_numbers() {
        let bytes = report(&[
            "\"cap\n1\",capture,,10000,320,9680,USD,,,po_1,2026-11-25,2026-11-25",
            "cap_2,capture,,ten,0,0,USD,,,po_1,2026-11-25,2026-11-25",
        ]);
        let errors = parse_report(&bytes, day()).unwrap_err();
        // The first record holds a line break in a quoted id (refused as an id with a
        // control character), and the next record is named by the line it starts on: 4.
        assert_eq!(
            named(&errors),
            vec![(2, "transaction_id"), (4, "gross_minor")]
        );
        let note =
            report(&["\"cap,1\",capture,,10000,320,9680,USD,,,\"po_1\",2026-11-25,2026-11-25"]);
        assert_eq!(
            parse_report(&note, day()).unwrap()[0].transaction_id,
            "cap,1"
        );
    }

    #[test]
    fn an_unknown_or_repeated_column_is_refused_not_dropped() {
        let extra =
            format!("{HEADER},memo\ncap_1,capture,,1,0,1,USD,,,po_1,2026-11-25,2026-11-25,x\n");
        let errors = parse_report(extra.as_bytes(), day()).unwrap_err();
        assert_eq!(named(&errors), vec![(1, "memo")]);
        let twice = format!("{HEADER},currency\n");
        let errors = parse_report(twice.as_bytes(), day()).unwrap_err();
        assert_eq!(named(&errors), vec![(1, "currency")]);
    }

    #[test]
    fn a_line_with_more_fields_than_the_header_is_refused() {
        let bytes = report(&["cap_1,capture,,1,0,1,USD,,,po_1,2026-11-25,2026-11-25,surplus"]);
        let errors = parse_report(&bytes, day()).unwrap_err();
        assert_eq!(named(&errors), vec![(2, WHOLE_LINE)]);
    }

    #[test]
    fn a_line_settled_before_its_transaction_or_after_the_report_day_is_refused() {
        let bytes = report(&[
            "cap_1,capture,,1,0,1,USD,,,po_1,2026-11-25,2026-11-24",
            "cap_2,capture,,1,0,1,USD,,,po_1,2026-11-25,2026-11-26",
            "cap_3,capture,,1,0,1,USD,,,po_1,2026-11-20,2026-11-25",
        ]);
        let errors = parse_report(&bytes, day()).unwrap_err();
        assert_eq!(
            named(&errors),
            vec![(2, "settlement_date"), (3, "settlement_date")]
        );
    }
}
