//! `POST /v1/settlement/imports`: finance imports a gateway's settlement report, fetched
//! through the gateway adapter (`{"gateway": "sandbox", "date": "YYYY-MM-DD"}`) or sent inline
//! (`"csv": "<the report>"`). The report and its new payouts are committed in one transaction
//! with the idempotency record; the same report again (by content hash) changes nothing and
//! answers `already_imported`.

use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

use super::{CommandContext, CommandError, CommandServices, Reply, CONFLICT_RETRIES};
use crate::commit_batcher::{CommitOutcome, CommitRequest};
use crate::domain::fields::{object, Errors, BODY};
use crate::domain::{FieldError, ValidationErrors};
use crate::event_store::{new_events, stamp};
use crate::idempotency::{self, StoredResponse};
use crate::payment::HttpGateway;
use crate::settlement::{decide_import, report_id, CsvErrors, Import, ImportInput};
use waybill_schemas::events::settlement::settlement_stream_id;

/// Largest inline report accepted (bigger ones are fetched through the adapter).
const MAX_INLINE: usize = 48 * 1024;

/// A parsed import request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportBody {
    pub gateway: String,
    pub date: NaiveDate,
    pub csv: Option<String>,
}

/// One payout an import recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PayoutResponse {
    pub payout_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub paid_on: NaiveDate,
    /// Transaction ids of the lines it settles.
    pub transactions: Vec<String>,
}

/// 201 for a new import, 200 `already_imported` for a report imported before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportResponse {
    /// SHA-256 of the report's bytes.
    pub report_id: String,
    pub gateway: String,
    pub report_date: NaiveDate,
    /// `imported` or `already_imported`.
    pub status: String,
    pub lines: usize,
    /// Payouts recorded by this import (none when it was imported before).
    pub payouts: Vec<PayoutResponse>,
}

/// Reads an import request. `gateway` must be the configured gateway's name, and `date` no
/// later than the day after `today` (UTC; a gateway a time zone ahead may already report it).
pub fn parse_import(
    body: &Value,
    known_gateway: &str,
    today: NaiveDate,
) -> Result<ImportBody, CommandError> {
    let mut errors = Errors::default();
    let latest = today.succ_opt().unwrap_or(today);
    let parsed = object(body, BODY.to_owned(), &mut errors).and_then(|o| {
        let gateway = o.required_str("gateway", 32, &mut errors).and_then(|g| {
            if g == known_gateway {
                Some(g)
            } else {
                errors.push(
                    o.path_of("gateway"),
                    format!("'{g}' is not a configured payment gateway (known: {known_gateway})"),
                );
                None
            }
        });
        let date =
            o.required_str("date", 10, &mut errors).and_then(
                |raw| match NaiveDate::parse_from_str(&raw, "%Y-%m-%d") {
                    Ok(d) if d > latest => {
                        errors.push(
                            o.path_of("date"),
                            format!("{d} is in the future (today is {today} UTC)"),
                        );
                        None
                    }
                    Ok(d) => Some(d),
                    Err(_) => {
                        errors.push(o.path_of("date"), "must be a date YYYY-MM-DD");
                        None
                    }
                },
            );
        // The report keeps its line breaks, so it is read as is, not as a one-line text field.
        let csv = match body.get("csv") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.len() <= MAX_INLINE => Some(text.clone()),
            Some(Value::String(_)) => {
                errors.push(
                    o.path_of("csv"),
                    format!("must be at most {MAX_INLINE} bytes"),
                );
                return None;
            }
            Some(_) => {
                errors.push(o.path_of("csv"), "must be a string (the CSV report)");
                return None;
            }
        };
        Some(ImportBody {
            gateway: gateway?,
            date: date?,
            csv,
        })
    });
    errors.finish(parsed).map_err(CommandError::Validation)
}

/// A report's refusals as field errors `csv[<line>].<column>`.
fn csv_problem(errors: CsvErrors) -> CommandError {
    CommandError::Validation(ValidationErrors(
        errors
            .0
            .into_iter()
            .map(|e| FieldError {
                field: format!("csv[{}].{}", e.line, e.column),
                detail: format!("line {}, column {}: {}", e.line, e.column, e.detail),
            })
            .collect(),
    ))
}

fn respond(status: u16, body: &ImportResponse) -> StoredResponse {
    StoredResponse {
        status,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        // Plain structs of strings and integers always serialize.
        body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
    }
}

fn imported(import: &Import, gateway: &str, date: NaiveDate) -> ImportResponse {
    ImportResponse {
        report_id: import.report_id.clone(),
        gateway: gateway.to_owned(),
        report_date: date,
        status: "imported".to_owned(),
        lines: import.report.lines.len(),
        payouts: import
            .payouts
            .iter()
            .map(|p| PayoutResponse {
                payout_id: p.payout_id.clone(),
                amount_minor: p.amount.minor,
                currency: p.amount.currency.code().to_owned(),
                paid_on: p.paid_on,
                transactions: p.transaction_ids.clone(),
            })
            .collect(),
    }
}

/// Imports one report.
pub async fn import_settlement(
    services: &CommandServices,
    gateway: Option<&HttpGateway>,
    gateway_name: &str,
    ctx: &CommandContext,
    body: &Value,
) -> Result<Reply, CommandError> {
    let request = parse_import(body, gateway_name, Utc::now().date_naive())?;
    if let Some(record) =
        idempotency::find(&services.pool, &ctx.client_id, &ctx.idempotency_key).await?
    {
        return ctx.answer_from(record);
    }
    let bytes: Bytes = match &request.csv {
        Some(csv) => Bytes::from(csv.clone().into_bytes()),
        None => {
            let gateway = gateway.ok_or_else(|| {
                CommandError::Internal("the command API has no payment gateway configured".into())
            })?;
            gateway.settlement_report(request.date).await.map_err(|e| {
                CommandError::Upstream(format!("fetching the settlement report: {e}"))
            })?
        }
    };
    let input = ImportInput {
        gateway: &request.gateway,
        report_date: request.date,
        bytes: &bytes,
        imported_by: &ctx.client_id,
    };
    let report_stream = settlement_stream_id(&report_id(&bytes));
    let span = tracing::info_span!("settlement.import", report_stream = %report_stream, date = %request.date);
    for _ in 0..CONFLICT_RETRIES {
        let now = Utc::now();
        let full = decide_import(&input, |_| false, now).map_err(csv_problem)?;
        let mut known = std::collections::HashSet::new();
        for (stream_id, _) in full.streams() {
            if services.store.stream_version(&stream_id).await? > 0 {
                known.insert(stream_id);
            }
        }
        let (status, response, events) = if known.contains(&report_stream) {
            let mut answer = imported(&full, &request.gateway, request.date);
            answer.status = "already_imported".to_owned();
            answer.payouts.clear();
            (200, answer, Vec::new())
        } else {
            let import = decide_import(&input, |s| known.contains(s), now).map_err(csv_problem)?;
            let meta = ctx.meta(None);
            let events = import
                .streams()
                .into_iter()
                .flat_map(|(stream_id, event)| {
                    stamp(&stream_id, 0, new_events(vec![event], now), &meta, now)
                })
                .collect();
            (
                201,
                imported(&import, &request.gateway, request.date),
                events,
            )
        };
        let stored = respond(status, &response);
        let commit = CommitRequest {
            idempotency: ctx.record(&stored),
            channel_order: None,
            events,
            wake_flow: None,
        };
        match services
            .batcher
            .commit(commit)
            .instrument(span.clone())
            .await
        {
            CommitOutcome::Committed => return Ok(Reply::Fresh(stored)),
            CommitOutcome::IdempotencyKeyTaken => return services.answer_from_stored(ctx).await,
            // Imported (or a payout recorded) meanwhile by someone else: look again.
            CommitOutcome::StreamConflict { .. } => continue,
            other => return Err(other.into()),
        }
    }
    Err(CommandError::Internal(format!(
        "{report_stream} kept changing during the import"
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
    }

    /// The fields a refused import body names.
    fn fields(body: Value) -> Vec<String> {
        match parse_import(&body, "sandbox", today()) {
            Err(CommandError::Validation(e)) => e.0.into_iter().map(|f| f.field).collect(),
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    #[test]
    fn an_import_body_names_each_wrong_field() {
        let ok = parse_import(
            &json!({"gateway": "sandbox", "date": "2026-11-25"}),
            "sandbox",
            today(),
        )
        .unwrap();
        assert_eq!(ok.csv, None);
        assert_eq!(
            fields(json!({"gateway": "Sand Box", "date": "25/11/2026"})),
            vec!["gateway", "date"]
        );
        assert_eq!(
            fields(json!({"date": "2026-11-25", "csv": 5})),
            vec!["gateway", "csv"]
        );
    }

    #[test]
    fn an_unknown_gateway_and_a_report_date_in_the_future_are_refused() {
        assert_eq!(
            fields(json!({"gateway": "acme_pay", "date": "9999-12-31"})),
            vec!["gateway", "date"]
        );
        assert_eq!(
            fields(json!({"gateway": "sandbox", "date": "2026-11-28"})),
            vec!["date"]
        );
        // Tomorrow is allowed: the gateway's day may already have begun.
        let tomorrow = json!({"gateway": "sandbox", "date": "2026-11-27"});
        assert!(parse_import(&tomorrow, "sandbox", today()).is_ok());
    }
}
