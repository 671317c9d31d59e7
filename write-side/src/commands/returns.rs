//! `POST /v1/orders/{id}/returns` (a customer for their own order, or an agent, admin or
//! service) and `POST /v1/orders/{id}/returns/{return_id}/inspection` (an agent recording the
//! inspection when the node does not). The returns side of the order decides
//! (`domain::returns`); the events are committed with the idempotency record, and the commit
//! wakes the order's fulfillment flow, which issues the label, restocks and refunds.

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use waybill_schemas::api_keys::Role;
use waybill_schemas::events::{InspectedLine, ReturnFee, ReturnReason, ReturnResolution};
use waybill_schemas::{OrderEvent, OrderId, Quantity, Sku};

use super::responses::token;
use super::{CommandContext, CommandError, CommandServices, Reply, CONFLICT_RETRIES};
use crate::commit_batcher::{CommitOutcome, CommitRequest};
use crate::domain::fields::{object, Errors, BODY};
use crate::domain::fulfillment::Fulfillment;
use crate::domain::returns::{RequestedLine, ReturnCommand, ReturnError};
use crate::domain::{FieldError, Order, ValidationErrors};
use crate::event_store::{new_events, stamp};
use crate::idempotency::{self, StoredResponse};

/// Most lines in one return request.
const MAX_LINES: usize = 200;
/// Longest note kept per line.
const MAX_NOTE: usize = 500;

/// A parsed return request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnBody {
    pub lines: Vec<RequestedLine>,
    pub resolution: ReturnResolution,
    pub waive_fees: bool,
}

fn reasons() -> String {
    ReturnReason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `{"lines": [{"line_no", "quantity", "reason", "note"?}], "resolution": "refund",
/// "waive_fees"?: bool}`; `resolution` may also be `{"kind": "refund"}`, `"store_credit"` or
/// `{"kind": "exchange", "replacements": [...]}` (see [`super::resolution`]).
pub fn parse_return(body: &Value) -> Result<ReturnBody, CommandError> {
    let mut errors = Errors::default();
    let parsed = object(body, BODY.to_owned(), &mut errors).and_then(|o| {
        let items = o.array("lines", true, MAX_LINES, &mut errors);
        if items.is_some_and(<[Value]>::is_empty) {
            errors.push(o.path_of("lines"), "must have at least one line");
        }
        let mut lines = Vec::new();
        for (i, item) in items.unwrap_or_default().iter().enumerate() {
            let path = crate::domain::fields::index(&o.path_of("lines"), i);
            let Some(line) = object(item, path, &mut errors) else {
                continue;
            };
            let line_no = line.required_int("line_no", 1, i64::from(u32::MAX), &mut errors);
            let quantity = line.required_int("quantity", 1, 1_000_000, &mut errors);
            let reason = line
                .required_str("reason", 40, &mut errors)
                .and_then(|raw| match ReturnReason::parse(&raw) {
                    Some(r) => Some(r),
                    None => {
                        errors.push(
                            line.path_of("reason"),
                            format!("must be one of: {}", reasons()),
                        );
                        None
                    }
                });
            let note = line
                .optional_str("note", MAX_NOTE, &mut errors)
                .ok()
                .flatten();
            if let (Some(line_no), Some(quantity), Some(reason)) = (line_no, quantity, reason) {
                if let (Ok(line_no), Ok(quantity)) =
                    (u32::try_from(line_no), Quantity::parse(quantity))
                {
                    lines.push(RequestedLine {
                        line_no,
                        quantity,
                        reason,
                        note,
                    });
                }
            }
        }
        let resolution = super::resolution::parse_resolution(body.get("resolution"), &mut errors);
        let waive_fees = match body.get("waive_fees") {
            None | Some(Value::Null) => Some(false),
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                errors.push("waive_fees", "must be true or false");
                None
            }
        };
        Some(ReturnBody {
            lines,
            resolution: resolution?,
            waive_fees: waive_fees?,
        })
    });
    errors.finish(parsed).map_err(CommandError::Validation)
}

/// Parses `{"lines": [{"line_no", "sku", "accepted", "rejected", "resellable", "note"?}]}`.
pub fn parse_inspection(body: &Value) -> Result<Vec<InspectedLine>, CommandError> {
    let mut errors = Errors::default();
    let parsed = object(body, BODY.to_owned(), &mut errors).and_then(|o| {
        let items = o.array("lines", true, MAX_LINES, &mut errors)?;
        let mut lines = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = crate::domain::fields::index(&o.path_of("lines"), i);
            let Some(line) = object(item, path, &mut errors) else {
                continue;
            };
            let line_no = line.required_int("line_no", 1, i64::from(u32::MAX), &mut errors);
            let sku =
                line.required_str("sku", 64, &mut errors)
                    .and_then(|raw| match Sku::parse(&raw) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            errors.push(line.path_of("sku"), e.to_string());
                            None
                        }
                    });
            let count = |key: &str, errors: &mut Errors| {
                line.int_or(key, 0, 0, 1_000_000, errors)
                    .and_then(|n| u32::try_from(n).ok())
            };
            let accepted = count("accepted", &mut errors);
            let rejected = count("rejected", &mut errors);
            let resellable = count("resellable", &mut errors);
            let note = line
                .optional_str("note", MAX_NOTE, &mut errors)
                .ok()
                .flatten();
            if let (Some(line_no), Some(sku), Some(accepted), Some(rejected), Some(resellable)) =
                (line_no, sku, accepted, rejected, resellable)
            {
                lines.push(InspectedLine {
                    line_no: u32::try_from(line_no).unwrap_or(0),
                    sku,
                    accepted,
                    rejected,
                    resellable,
                    note,
                });
            }
        }
        Some(lines)
    });
    errors.finish(parsed).map_err(CommandError::Validation)
}

/// A fee in a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FeeResponse {
    /// `return_shipping` or `restocking`.
    pub kind: String,
    pub line_no: Option<u32>,
    pub amount_minor: i64,
}

/// A return line in a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReturnLineResponse {
    pub line_no: u32,
    pub sku: String,
    pub quantity: u32,
    pub reason: String,
    /// What the customer paid for these units.
    pub paid_minor: i64,
}

/// The return label, once the carrier issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReturnLabelResponse {
    pub carrier: String,
    pub tracking_number: String,
    pub label_url: String,
    pub instructions: String,
}

/// The answer to a return request or an inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReturnResponse {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    /// `<order id>-R<n>`.
    pub return_id: String,
    /// `requested`, `label_issued`, `received`, `inspected`, `refunded`/`resolved`.
    pub status: String,
    pub lines: Vec<ReturnLineResponse>,
    pub currency: String,
    pub fees: Vec<FeeResponse>,
    pub fees_waived: bool,
    /// The refund if every unit is accepted (before the cap of what is still refundable).
    pub expected_refund_minor: i64,
    /// The decided refund, once inspected and resolved.
    pub refund_minor: Option<i64>,
    /// Issued by the carrier shortly after the request; also shown in the tracking view.
    pub label: Option<ReturnLabelResponse>,
    pub version: i64,
    pub consistency_token: String,
}

fn fee(f: &ReturnFee) -> FeeResponse {
    FeeResponse {
        kind: match f.kind {
            waybill_schemas::events::ReturnFeeKind::ReturnShipping => "return_shipping",
            waybill_schemas::events::ReturnFeeKind::Restocking => "restocking",
        }
        .to_owned(),
        line_no: f.line_no,
        amount_minor: f.amount.minor,
    }
}

fn render(state: &Fulfillment, order_id: OrderId, return_id: &str, status: u16) -> StoredResponse {
    let version = state.version;
    let consistency_token = token(order_id, version);
    let r = state.returns.get(return_id);
    let body = r.map(|r| {
        let status = if let Some(d) = &r.decided {
            if d.amount.minor > 0 {
                "refunded"
            } else {
                "resolved"
            }
        } else if r.inspected.is_some() {
            "inspected"
        } else if r.received.is_some() {
            "received"
        } else if r.label.is_some() {
            "label_issued"
        } else {
            "requested"
        };
        ReturnResponse {
            order_id,
            return_id: return_id.to_owned(),
            status: status.to_owned(),
            lines: r
                .requested
                .lines
                .iter()
                .map(|l| ReturnLineResponse {
                    line_no: l.line_no,
                    sku: l.sku.as_str().to_owned(),
                    quantity: l.quantity.get(),
                    reason: l.reason.as_str().to_owned(),
                    paid_minor: l.paid.minor,
                })
                .collect(),
            currency: r.requested.expected_refund.currency.code().to_owned(),
            fees: r
                .decided
                .as_ref()
                .map_or(&r.requested.fees, |d| &d.fees)
                .iter()
                .map(fee)
                .collect(),
            fees_waived: r.requested.fees_waived,
            expected_refund_minor: r.requested.expected_refund.minor,
            refund_minor: r.decided.as_ref().map(|d| d.amount.minor),
            label: r.label.as_ref().map(|l| ReturnLabelResponse {
                carrier: l.carrier.clone(),
                tracking_number: l.tracking_number.clone(),
                label_url: l.label_url.clone(),
                instructions: l.instructions.clone(),
            }),
            version,
            consistency_token: consistency_token.clone(),
        }
    });
    let bytes = body
        .map(|b| serde_json::to_vec(&b).unwrap_or_default())
        .unwrap_or_default();
    StoredResponse {
        status,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (
                super::responses::CONSISTENCY_TOKEN_HEADER.to_owned(),
                consistency_token,
            ),
        ],
        body: bytes.into(),
    }
}

/// The domain's refusal as a command error naming the request field.
fn refusal(order_id: OrderId, error: ReturnError) -> CommandError {
    match (&error, error.field()) {
        (ReturnError::NotPlaced, _) => CommandError::NotFound(order_id.to_string()),
        (ReturnError::UnknownReturn(id), _) => CommandError::ReturnNotFound(id.clone()),
        (_, Some(field)) => CommandError::Validation(ValidationErrors(vec![FieldError {
            field,
            detail: error.to_string(),
        }])),
        (_, None) => CommandError::Refused(error.to_string()),
    }
}

/// Starts a return.
pub async fn request_return(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_order_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order_id =
        OrderId::parse(raw_order_id).map_err(|_| CommandError::NotFound(raw_order_id.into()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let parsed = parse_return(body)?;
    if parsed.waive_fees && !matches!(ctx.role, Role::Agent | Role::Admin) {
        return Err(CommandError::Validation(ValidationErrors(vec![
            FieldError {
                field: "waive_fees".into(),
                detail: "only agents may waive fees".into(),
            },
        ])));
    }
    let command = ReturnCommand::Request {
        lines: parsed.lines,
        resolution: parsed.resolution,
        waive_fees: parsed.waive_fees,
        requested_by: ctx.client_id.clone(),
    };
    decide_return(services, ctx, order_id, &command, 201, |state| {
        state.returns.returns.last().map(|r| r.id().to_owned())
    })
    .await
}

/// Records an inspection an agent made.
pub async fn record_inspection(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_order_id: &str,
    return_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order_id =
        OrderId::parse(raw_order_id).map_err(|_| CommandError::NotFound(raw_order_id.into()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let lines = parse_inspection(body)?;
    let command = ReturnCommand::Inspect {
        return_id: return_id.to_owned(),
        lines,
        inspected_by: ctx.client_id.clone(),
    };
    let id = return_id.to_owned();
    decide_return(services, ctx, order_id, &command, 200, move |_| {
        Some(id.clone())
    })
    .await
}

/// Answer a stored key, read the order, check the caller may act on it, decide, commit with the
/// key; on a lost race re-read and decide again.
async fn decide_return(
    services: &CommandServices,
    ctx: &CommandContext,
    order_id: OrderId,
    command: &ReturnCommand,
    status: u16,
    which: impl Fn(&Fulfillment) -> Option<String>,
) -> Result<Reply, CommandError> {
    if let Some(record) =
        idempotency::find(&services.pool, &ctx.client_id, &ctx.idempotency_key).await?
    {
        return ctx.answer_from(record);
    }
    for _ in 0..CONFLICT_RETRIES {
        let envelopes = services
            .store
            .read_stream(&order_id.stream_id(), 1, None)
            .await?;
        let events: Vec<OrderEvent> = envelopes
            .iter()
            .map(|e| e.decode())
            .collect::<Result<_, _>>()
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        let order = Order::from_events(&events);
        let Some(placed) = order.state().map(|s| s.placed()) else {
            return Err(CommandError::NotFound(order_id.to_string()));
        };
        // A customer acts on their own orders only; others' look like no order at all.
        if ctx.role == Role::Customer
            && placed.customer.customer_id.as_deref() != Some(ctx.client_id.as_str())
        {
            return Err(CommandError::NotFound(order_id.to_string()));
        }
        let channel = Some(placed.channel);
        let mut state = Fulfillment::from_events(&events);
        let now = Utc::now();
        let decided = state
            .handle_return(command, &services.returns_policy, now)
            .map_err(|e| refusal(order_id, e))?;
        let envelopes = stamp(
            &order_id.stream_id(),
            state.version,
            new_events(decided, now),
            &ctx.meta(channel),
            now,
        );
        for envelope in &envelopes {
            if let Ok(event) = envelope.decode() {
                state.apply(&event);
            }
        }
        let Some(return_id) = which(&state) else {
            return Err(CommandError::Internal("the return vanished".into()));
        };
        let response = render(&state, order_id, &return_id, status);
        let request = CommitRequest {
            idempotency: ctx.record(&response),
            channel_order: None,
            events: envelopes,
            wake_flow: None,
        };
        match services.commit(ctx, order_id, request).await {
            CommitOutcome::Committed => return Ok(Reply::Fresh(response)),
            CommitOutcome::IdempotencyKeyTaken => return services.answer_from_stored(ctx).await,
            CommitOutcome::StreamConflict { .. } => continue,
            CommitOutcome::ChannelRefTaken { .. } => {
                return Err(CommandError::Internal(
                    "a return hit a channel reference".into(),
                ))
            }
            failed @ (CommitOutcome::Failed(_) | CommitOutcome::Unavailable(_)) => {
                return Err(failed.into())
            }
        }
    }
    Err(CommandError::Conflict(order_id))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    use crate::commands::invalid_fields as fields;

    #[test]
    fn a_return_body_names_each_wrong_field() {
        let ok = parse_return(&json!({"lines": [{"line_no": 1, "quantity": 1, "reason": "damaged"}], "resolution": "refund"}))
            .unwrap();
        assert_eq!(ok.lines[0].reason, ReturnReason::Damaged);
        assert_eq!(
            fields(
                parse_return(&json!({"lines": [{"line_no": 1, "quantity": 0, "reason": "bored"}]}))
                    .unwrap_err()
            ),
            vec!["lines[0].quantity", "lines[0].reason"]
        );
        assert_eq!(
            fields(
                parse_return(&json!({"lines": [{"line_no": 1, "quantity": -2, "reason": "other"}], "resolution": "exchange"}))
                    .unwrap_err()
            ),
            // An exchange must name its replacements.
            vec!["lines[0].quantity", "resolution.replacements"]
        );
        assert_eq!(
            fields(parse_return(&json!({"lines": []})).unwrap_err()),
            vec!["lines"]
        );
        assert_eq!(
            parse_return(&json!({"lines": [{"line_no": 1, "quantity": 1, "reason": "other"}], "resolution": {"kind": "store_credit"}}))
                .unwrap()
                .resolution,
            ReturnResolution::StoreCredit
        );
        assert_eq!(
            fields(
                parse_return(&json!({"lines": [{"line_no": 1, "quantity": 1, "reason": "other"}], "resolution": {"kind": "gift"}}))
                    .unwrap_err()
            ),
            vec!["resolution.kind"]
        );
    }
}
