//! The finance endpoints' query parameters, parsed into values that are valid once they exist;
//! each error names the parameter.

use chrono::{Days, NaiveDate};
use serde::Deserialize;
use utoipa::IntoParams;
use waybill_projectors::reconciliation::Outcome;
use waybill_projectors::warehouse::finance::{DateRange, Page};

use crate::problem::Problem;

/// Longest range one request may cover.
pub const MAX_RANGE_DAYS: u64 = 366;
/// Rows per page unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1_000;
/// The most rows a request may skip.
pub const MAX_OFFSET: u64 = 1_000_000_000;

/// Query string of every finance endpoint (each uses the parameters that apply to it).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FinanceParams {
    /// First UTC day, `YYYY-MM-DD` (default: 30 days before `to`).
    #[param(format = Date)]
    pub from: Option<String>,
    /// Last UTC day, `YYYY-MM-DD`, included (default: today).
    #[param(format = Date)]
    pub to: Option<String>,
    /// Rows per page, 1–1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Rows to skip, 0–1000000000 (default 0); responses give `next_offset` while there may be
    /// more.
    #[param(value_type = Option<u64>, minimum = 0, maximum = 1000000000)]
    pub offset: Option<String>,
    /// `json` (default) or `csv`. JSON amounts are integer minor units of the row's `currency`,
    /// each also in `formatted` as a decimal by the currency's exponent; CSV amounts are those
    /// decimals (`376.63` USD, `37663` JPY) beside a `currency` column, and a text cell a
    /// spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or CR, and not
    /// a plain number) is written as text with a leading `'`.
    #[param(pattern = "^(json|csv)$")]
    pub format: Option<String>,
    /// Summary only: one channel (`web`, `app`, `pos`, `marketplace`).
    #[param(pattern = "^(web|app|pos|marketplace)$")]
    pub channel: Option<String>,
    /// Summary only: one ISO currency code the server knows.
    pub currency: Option<String>,
    /// Reconciliation only: comma-separated outcomes (default: every discrepancy kind);
    /// `matched`, `missing_in_report`, `missing_in_ledger`, `amount_mismatch`, `fee_mismatch`,
    /// `duplicate`.
    #[param(
        pattern = "^[\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*(matched|missing_in_report|missing_in_ledger|amount_mismatch|fee_mismatch|duplicate)[\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*(,[\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*(matched|missing_in_report|missing_in_ledger|amount_mismatch|fee_mismatch|duplicate)[\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*)*$"
    )]
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

fn bad(field: &'static str, detail: impl Into<String>) -> Problem {
    Problem::BadParameter {
        field,
        detail: detail.into(),
    }
}

fn date(field: &'static str, raw: &str) -> Result<NaiveDate, Problem> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| bad(field, "must be a date YYYY-MM-DD"))
}

impl FinanceParams {
    /// The date range, `today` filling in a missing `to`.
    pub fn range(&self, today: NaiveDate) -> Result<DateRange, Problem> {
        let to = self.to.as_deref().map(|t| date("to", t)).transpose()?;
        let to = to.unwrap_or(today);
        let from = match self.from.as_deref() {
            Some(raw) => date("from", raw)?,
            None => to - Days::new(30),
        };
        if from > to {
            return Err(bad("to", "must not be before from"));
        }
        if (to - from).num_days() >= MAX_RANGE_DAYS as i64 {
            return Err(bad(
                "from",
                format!("must be less than {MAX_RANGE_DAYS} days before to"),
            ));
        }
        Ok(DateRange { from, to })
    }

    pub fn page(&self) -> Result<Page, Problem> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| bad("limit", format!("must be an integer from 1 to {MAX_LIMIT}")))?,
        };
        let offset = match self.offset.as_deref() {
            None => 0,
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|o| *o <= MAX_OFFSET)
                .ok_or_else(|| {
                    bad(
                        "offset",
                        format!("must be an integer from 0 to {MAX_OFFSET}"),
                    )
                })?,
        };
        Ok(Page { limit, offset })
    }

    pub fn format(&self) -> Result<Format, Problem> {
        match self.format.as_deref() {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some(_) => Err(bad("format", "must be json or csv")),
        }
    }

    pub fn channel(&self) -> Result<Option<String>, Problem> {
        self.channel
            .as_deref()
            .map(|raw| {
                waybill_schemas::Channel::parse(raw)
                    .map(|c| c.as_str().to_owned())
                    .map_err(|_| bad("channel", "must be web, app, pos or marketplace"))
            })
            .transpose()
    }

    pub fn currency(&self) -> Result<Option<String>, Problem> {
        self.currency
            .as_deref()
            .map(|raw| {
                waybill_schemas::Currency::parse(raw)
                    .map(|c| c.code().to_owned())
                    .map_err(|_| bad("currency", "must be an ISO 4217 code like USD"))
            })
            .transpose()
    }

    /// The outcomes asked for; default every discrepancy kind.
    pub fn outcomes(&self) -> Result<Vec<Outcome>, Problem> {
        match self.outcome.as_deref() {
            None => Ok(Outcome::DISCREPANCIES.to_vec()),
            Some(raw) => raw
                .split(',')
                .map(|o| {
                    Outcome::parse(o.trim()).ok_or_else(|| {
                        bad(
                            "outcome",
                            "must list matched, missing_in_report, missing_in_ledger, \
                             amount_mismatch, fee_mismatch or duplicate",
                        )
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> FinanceParams {
        let query: String = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        serde_urlencoded_like(&query)
    }

    /// What axum's `Query` does, without pulling serde_urlencoded in here.
    fn serde_urlencoded_like(query: &str) -> FinanceParams {
        let mut p = FinanceParams::default();
        for pair in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            let v = Some(v.to_owned());
            match k {
                "from" => p.from = v,
                "to" => p.to = v,
                "limit" => p.limit = v,
                "offset" => p.offset = v,
                "format" => p.format = v,
                "channel" => p.channel = v,
                "currency" => p.currency = v,
                "outcome" => p.outcome = v,
                _ => panic!("unknown {k}"),
            }
        }
        p
    }

    fn field(problem: Problem) -> &'static str {
        match problem {
            Problem::BadParameter { field, .. } => field,
            other => panic!("not a bad parameter: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_last_thirty_days_first_page_json() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let p = params(&[]);
        let range = p.range(today).unwrap();
        assert_eq!(range.to, today);
        assert_eq!(range.from, NaiveDate::from_ymd_opt(2026, 10, 27).unwrap());
        assert_eq!(
            p.page().unwrap(),
            Page {
                limit: 100,
                offset: 0
            }
        );
        assert_eq!(p.format().unwrap(), Format::Json);
        assert_eq!(p.outcomes().unwrap(), Outcome::DISCREPANCIES.to_vec());
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(
            field(params(&[("from", "26.11.2026")]).range(today).unwrap_err()),
            "from"
        );
        assert_eq!(
            field(params(&[("to", "2026-13-01")]).range(today).unwrap_err()),
            "to"
        );
        assert_eq!(
            field(
                params(&[("from", "2026-11-27"), ("to", "2026-11-26")])
                    .range(today)
                    .unwrap_err()
            ),
            "to"
        );
        assert_eq!(
            field(
                params(&[("from", "2024-01-01"), ("to", "2026-11-26")])
                    .range(today)
                    .unwrap_err()
            ),
            "from"
        );
        // An offset past the documented maximum is refused, not read as a huge skip.
        for offset in ["1000000001", "9223372036854775808", "-1"] {
            assert_eq!(
                field(params(&[("offset", offset)]).page().unwrap_err()),
                "offset"
            );
        }
        assert_eq!(
            params(&[("offset", "1000000000")]).page().unwrap().offset,
            MAX_OFFSET
        );
        for limit in ["0", "1001", "-1", "ten"] {
            assert_eq!(
                field(params(&[("limit", limit)]).page().unwrap_err()),
                "limit"
            );
        }
        assert_eq!(
            field(params(&[("offset", "-5")]).page().unwrap_err()),
            "offset"
        );
        assert_eq!(
            field(params(&[("format", "xml")]).format().unwrap_err()),
            "format"
        );
        assert_eq!(
            field(params(&[("channel", "fax")]).channel().unwrap_err()),
            "channel"
        );
        assert_eq!(
            field(params(&[("currency", "usd1")]).currency().unwrap_err()),
            "currency"
        );
        assert_eq!(
            field(
                params(&[("outcome", "matched,lost")])
                    .outcomes()
                    .unwrap_err()
            ),
            "outcome"
        );
    }

    #[test]
    fn good_parameters_parse() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let p = params(&[
            ("from", "2026-11-01"),
            ("to", "2026-11-02"),
            ("limit", "5"),
            ("offset", "10"),
            ("format", "csv"),
            ("channel", "web"),
            ("currency", "EUR"),
            ("outcome", "matched,duplicate"),
        ]);
        assert_eq!(
            p.range(today).unwrap().to,
            NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()
        );
        assert_eq!(
            p.page().unwrap(),
            Page {
                limit: 5,
                offset: 10
            }
        );
        assert_eq!(p.format().unwrap(), Format::Csv);
        assert_eq!(p.channel().unwrap().as_deref(), Some("web"));
        assert_eq!(p.currency().unwrap().as_deref(), Some("EUR"));
        assert_eq!(
            p.outcomes().unwrap(),
            vec![Outcome::Matched, Outcome::Duplicate]
        );
    }
}
