//! The bodies and headers of successful command responses, rendered once to the exact bytes
//! that are sent and stored for replays.

use bytes::Bytes;
use serde::Serialize;
use waybill_schemas::events::ReviewDecision;
use waybill_schemas::events::Totals;
use waybill_schemas::views::ConsistencyToken;
use waybill_schemas::OrderId;

use crate::domain::OrderStatus;
use crate::idempotency::StoredResponse;

/// Response header carrying the consistency token.
pub const CONSISTENCY_TOKEN_HEADER: &str = "x-consistency-token";

/// An order's totals in minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TotalsResponse {
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub tax_minor: i64,
    pub shipping_minor: i64,
    pub grand_total_minor: i64,
    pub currency: String,
}

impl From<&Totals> for TotalsResponse {
    fn from(t: &Totals) -> Self {
        Self {
            subtotal_minor: t.subtotal.minor,
            discount_minor: t.discount_total.minor,
            tax_minor: t.tax_total.minor,
            shipping_minor: t.shipping_total.minor,
            grand_total_minor: t.grand_total.minor,
            currency: t.grand_total.currency.code().to_owned(),
        }
    }
}

/// 201 for a new order; 200 with `existing: true` when the channel reference was captured before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PlaceOrderResponse {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    /// `placed`, or `cancelled` for an existing order cancelled since.
    pub status: String,
    pub version: i64,
    /// `<order id>.<version>`: pass to the query API to read your own write.
    pub consistency_token: String,
    /// Lets the customer read the order's tracking page.
    pub tracking_token: String,
    pub totals: TotalsResponse,
    /// True when this channel reference was already captured (by another idempotency key).
    pub existing: bool,
}

/// 200 for a cancelled order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CancelOrderResponse {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    pub status: String,
    pub version: i64,
    pub consistency_token: String,
}

/// 200 for a recorded review decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReviewOrderResponse {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    /// `approve` or `reject`.
    pub decision: String,
    /// The order's status after the decision (the checkout flow then moves it on).
    pub status: String,
    pub version: i64,
    pub consistency_token: String,
}

pub(super) fn reviewed(
    order_id: OrderId,
    decision: ReviewDecision,
    status: &str,
    version: i64,
) -> StoredResponse {
    let consistency_token = token(order_id, version);
    let body = ReviewOrderResponse {
        order_id,
        decision: decision.as_str().to_owned(),
        status: status.to_owned(),
        version,
        consistency_token: consistency_token.clone(),
    };
    json_response(200, &consistency_token, &body)
}

pub(crate) fn token(order_id: OrderId, version: i64) -> String {
    ConsistencyToken { order_id, version }.to_string()
}

pub(super) fn json_response<T: Serialize>(status: u16, token: &str, body: &T) -> StoredResponse {
    // Plain structs of strings and integers always serialize.
    let body = serde_json::to_vec(body).unwrap_or_default();
    StoredResponse {
        status,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (CONSISTENCY_TOKEN_HEADER.to_owned(), token.to_owned()),
        ],
        body: Bytes::from(body),
    }
}

pub(super) fn placed(
    order_id: OrderId,
    status: OrderStatus,
    version: i64,
    totals: &Totals,
    tracking_token: String,
    existing: bool,
) -> StoredResponse {
    let consistency_token = token(order_id, version);
    let body = PlaceOrderResponse {
        order_id,
        status: status.as_str().to_owned(),
        version,
        consistency_token: consistency_token.clone(),
        tracking_token,
        totals: totals.into(),
        existing,
    };
    json_response(if existing { 200 } else { 201 }, &consistency_token, &body)
}

pub(super) fn cancelled(order_id: OrderId, version: i64) -> StoredResponse {
    let consistency_token = token(order_id, version);
    let body = CancelOrderResponse {
        order_id,
        status: OrderStatus::Cancelled.as_str().to_owned(),
        version,
        consistency_token: consistency_token.clone(),
    };
    json_response(200, &consistency_token, &body)
}

/// 202 for an accepted refund request: the gateway is asked next, and the outcome shows on the
/// order (`PaymentRefunded` or `RefundFailed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RefundResponse {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    #[schema(value_type = String, format = Uuid)]
    pub refund_id: uuid::Uuid,
    /// `pending` until the gateway answers (card refunds); `issued` for store credit, which is
    /// on the customer's account at once.
    pub status: String,
    /// `original_payment` (the card) or `store_credit`.
    pub destination: String,
    pub amount_minor: i64,
    pub currency: String,
    /// What may still be refunded after this request.
    pub refundable_minor: i64,
    pub version: i64,
    pub consistency_token: String,
}

pub(super) fn refund_requested(
    order_id: OrderId,
    refund_id: uuid::Uuid,
    amount: waybill_schemas::Money,
    refundable: waybill_schemas::Money,
    destination: super::refund::RefundDestination,
    version: i64,
) -> StoredResponse {
    let consistency_token = token(order_id, version);
    let status = match destination {
        super::refund::RefundDestination::OriginalPayment => "pending",
        super::refund::RefundDestination::StoreCredit => "issued",
    };
    let body = RefundResponse {
        order_id,
        refund_id,
        status: status.to_owned(),
        destination: destination.as_str().to_owned(),
        amount_minor: amount.minor,
        currency: amount.currency.code().to_owned(),
        refundable_minor: refundable.minor,
        version,
        consistency_token: consistency_token.clone(),
    };
    json_response(202, &consistency_token, &body)
}

pub(super) fn evidence_submitted(body: super::dispute::EvidenceResponse) -> StoredResponse {
    let token = body.consistency_token.clone();
    json_response(200, &token, &body)
}
