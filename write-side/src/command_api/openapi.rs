//! The command API's OpenAPI document, served at `/openapi.json`. Request schemas here document
//! the JSON the parser in [`crate::domain`] accepts; response schemas are the types rendered.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::problem::Problem;
use crate::commands::{
    CancelOrderResponse, PlaceOrderResponse, ReviewOrderResponse, TotalsResponse,
};
use crate::domain::FieldError;

/// `POST /v1/orders` body. Money is integer minor units of `currency`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct PlaceOrderRequest {
    /// web, app, pos or marketplace.
    #[schema(example = "web")]
    channel: String,
    /// The order's id in the channel, at most 128 characters.
    #[schema(example = "WEB-1001")]
    channel_order_ref: String,
    /// ISO-4217 code.
    #[schema(example = "USD")]
    currency: String,
    customer: CustomerRequest,
    /// 1 to 200 lines.
    lines: Vec<LineRequest>,
    #[schema(nullable = false)]
    discounts: Option<Vec<DiscountRequest>>,
    shipping_address: AddressRequest,
    billing_address: Option<AddressRequest>,
    shipping: ShippingRequest,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct CustomerRequest {
    customer_id: Option<String>,
    name: String,
    email: String,
    phone: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct LineRequest {
    sku: String,
    name: String,
    /// 1 to 10,000.
    quantity: i64,
    unit_price_minor: i64,
    /// Discount on the whole line; at most quantity × unit price. Default 0.
    discount_minor: Option<i64>,
    /// Tax on the whole line. Default 0.
    tax_minor: Option<i64>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct DiscountRequest {
    code: String,
    amount_minor: i64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct AddressRequest {
    name: String,
    line1: String,
    line2: Option<String>,
    city: String,
    region: Option<String>,
    postal_code: String,
    /// ISO-3166 alpha-2.
    country: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ShippingRequest {
    method: String,
    price_minor: i64,
    tax_minor: Option<i64>,
}

/// `POST /v1/orders/{id}/cancel` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct CancelOrderRequest {
    /// customer_request, fraud, out_of_stock, payment_failed or other.
    reason: String,
    note: Option<String>,
}

/// `POST /v1/orders/{id}/review` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ReviewOrderRequest {
    /// approve or reject.
    decision: String,
    /// Why, for the order's history (at most 1,000 characters).
    note: Option<String>,
}

struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Waybill command API", description = "Commands that change orders. Errors are application/problem+json."),
    paths(
        super::handlers::place_order,
        super::handlers::cancel_order,
        super::checkout::review_order,
        super::checkout::review_queue,
        super::checkout::payment_webhook,
        super::inventory::put_location, super::inventory::restock, super::inventory::adjust,
        super::inventory::get_stock
    ),
    components(schemas(
        PlaceOrderRequest, CustomerRequest, LineRequest, DiscountRequest, AddressRequest,
        ShippingRequest, CancelOrderRequest, PlaceOrderResponse, CancelOrderResponse,
        TotalsResponse, Problem, FieldError, ReviewOrderRequest, ReviewOrderResponse,
        super::checkout::ReviewQueue, super::checkout::ReviewItem,
        super::checkout::WebhookResponse,
        super::inventory::LocationRequest,
        super::inventory::RestockRequest, super::inventory::AdjustRequest,
        super::inventory::StockResponse, crate::inventory::StockLevel
    )),
    modifiers(&ApiKeyAuth)
)]
pub struct CommandApiDoc;

/// The document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    CommandApiDoc::openapi()
}
