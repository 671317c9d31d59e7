//! `POST /v1/orders/{id}/edits/preview` and `POST /v1/orders/{id}/edits`: change a confirmed
//! order while it waits in the fulfillment hold. The preview answers what the edit would do
//! and records nothing; the edit records `OrderEdited` (and the charge or refund of the
//! difference when the order was captured already). The commit wakes the checkout flow, which
//! captures the new total.

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use waybill_schemas::api_keys::Role;
use waybill_schemas::events::OrderEdited;
use waybill_schemas::OrderId;

use super::decide::{decide_and_commit, refusal};
use super::responses::{json_response, token};
use super::{CommandContext, CommandError, CommandServices, Reply};
use crate::domain::{parse_edit_order, Order, OrderCommand};
use crate::idempotency::StoredResponse;

/// What an edit does (201 for a recorded edit, 200 for a preview).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EditResponse {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    /// The recorded edit's id (absent in a preview).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub edit_id: Option<Uuid>,
    /// The order's lines after the edit, priced as placement prices them.
    pub lines: Vec<EditedLineResponse>,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub tax_minor: i64,
    pub shipping_minor: i64,
    pub grand_total_minor: i64,
    pub previous_total_minor: i64,
    /// New total minus the previous one.
    pub difference_minor: i64,
    /// none, capture_less, within_authorization, extra_charge or refund.
    pub money_action: String,
    pub currency: String,
    /// Preview only: free stock of each added SKU over all locations (added units are taken
    /// from free stock when the order is routed).
    pub stock: Vec<AddedStockResponse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AddedStockResponse {
    pub sku: String,
    /// Units asked for by the edit.
    pub quantity: u32,
    /// Units free now (on hand − reserved − allocated), all locations.
    pub available: i64,
    pub enough: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EditedLineResponse {
    pub line_no: u32,
    pub sku: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
}

impl EditResponse {
    fn of(edited: &OrderEdited, recorded: bool) -> Self {
        let t = &edited.totals;
        Self {
            order_id: edited.order_id,
            edit_id: recorded.then_some(edited.edit_id),
            lines: edited
                .lines
                .iter()
                .map(|l| EditedLineResponse {
                    line_no: l.line_no,
                    sku: l.sku.as_str().to_owned(),
                    quantity: l.quantity.get(),
                    unit_price_minor: l.unit_price.minor,
                    tax_minor: l.tax.minor,
                    total_minor: l.total.minor,
                })
                .collect(),
            subtotal_minor: t.subtotal.minor,
            discount_minor: t.discount_total.minor,
            tax_minor: t.tax_total.minor,
            shipping_minor: t.shipping_total.minor,
            grand_total_minor: t.grand_total.minor,
            previous_total_minor: edited.previous_total.minor,
            difference_minor: edited.difference.minor,
            money_action: edited.money_action.as_str().to_owned(),
            currency: t.grand_total.currency.code().to_owned(),
            stock: Vec::new(),
        }
    }
}

/// A customer edits their own orders only; others' look like no order at all (404).
fn ensure_owner(
    ctx: &CommandContext,
    order: &Order,
    order_id: OrderId,
) -> Result<(), CommandError> {
    let Some(state) = order.state() else {
        return Err(CommandError::NotFound(order_id.to_string()));
    };
    if ctx.role == Role::Customer
        && state.placed().customer.customer_id.as_deref() != Some(ctx.client_id.as_str())
    {
        return Err(CommandError::NotFound(order_id.to_string()));
    }
    Ok(())
}

fn parse_id(raw_order_id: &str) -> Result<OrderId, CommandError> {
    let order_id =
        OrderId::parse(raw_order_id).map_err(|_| CommandError::NotFound(raw_order_id.into()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    Ok(order_id)
}

/// What the edit would do; records nothing.
pub async fn preview_edit(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_order_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order_id = parse_id(raw_order_id)?;
    let edit = parse_edit_order(body)?;
    let order = services.load(order_id).await?;
    ensure_owner(ctx, &order, order_id)?;
    let Some(state) = order.state() else {
        return Err(CommandError::NotFound(order_id.to_string()));
    };
    let edited = state
        .preview_edit(Uuid::nil(), &edit, &ctx.client_id, Utc::now())
        .map_err(|e| refusal(order_id, e))?;
    let mut response = EditResponse::of(&edited, false);
    for line in &edit.add {
        let available: i64 = crate::inventory::read_stock(&services.pool, &line.sku)
            .await
            .map_err(|e| match e {
                crate::inventory::InventoryError::Database(db)
                    if crate::event_store::retry::is_unavailable(&db) =>
                {
                    CommandError::Unavailable(db.to_string())
                }
                other => CommandError::Internal(other.to_string()),
            })?
            .iter()
            .map(|level| level.available.max(0))
            .sum();
        response.stock.push(AddedStockResponse {
            sku: line.sku.as_str().to_owned(),
            quantity: line.quantity.get(),
            available,
            enough: available >= i64::from(line.quantity.get()),
        });
    }
    let consistency_token = token(order_id, order.version());
    Ok(Reply::Fresh(json_response(
        200,
        &consistency_token,
        &response,
    )))
}

/// Records the edit.
pub async fn edit_order(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_order_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order_id = parse_id(raw_order_id)?;
    ensure_owner(ctx, &services.load(order_id).await?, order_id)?;
    let edit = parse_edit_order(body)?;
    let edit_id = Uuid::now_v7();
    let command = OrderCommand::Edit {
        edit_id,
        edit,
        requested_by: ctx.client_id.clone(),
    };
    decide_and_commit(services, ctx, order_id, command, |order, version| {
        respond(
            order.state().and_then(|s| s.edit_recorded(edit_id)),
            order_id,
            version,
        )
    })
    .await
}

fn respond(edited: Option<&OrderEdited>, order_id: OrderId, version: i64) -> StoredResponse {
    let consistency_token = token(order_id, version);
    match edited {
        Some(edited) => json_response(201, &consistency_token, &EditResponse::of(edited, true)),
        None => json_response(500, &consistency_token, &Value::Null),
    }
}
