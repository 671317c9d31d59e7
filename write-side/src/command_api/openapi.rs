//! The command API's OpenAPI document, served at `/openapi.json`. Request schemas here document
//! the JSON the parser in [`crate::domain`] accepts; response schemas are the types rendered.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::problem::Problem;
use crate::commands::{
    CancelOrderResponse, PlaceOrderResponse, ReviewOrderResponse, TotalsResponse,
};
use crate::domain::FieldError;

/// `POST /v1/orders` body. Money is integer minor units of `currency`. Amounts left out (line
/// tax, shipping price and tax) are filled in by the built-in rules (tax per destination, rounded
/// half up per line; shipping rate per method and zone); amounts sent are kept.
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
    /// The channel's own order-level discounts (already granted by the channel).
    #[schema(nullable = false)]
    discounts: Option<Vec<DiscountRequest>>,
    /// Up to 5 promotion codes (SAVE10, WELCOME5, FREESHIP; any case), each applied as an
    /// order-level discount. An unknown code, a repeated one, or one whose conditions the order
    /// does not meet (minimum subtotal, currency) is refused at `promo_codes[i]`.
    #[schema(nullable = false, example = json!(["WELCOME5"]))]
    promo_codes: Option<Vec<String>>,
    shipping_address: AddressRequest,
    billing_address: Option<AddressRequest>,
    shipping: ShippingRequest,
    payment: PaymentRequest,
    risk_context: Option<RiskContextRequest>,
}

/// How the customer pays. `method` is `card` (with `token`) or `prepaid` (with `reference`).
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct PaymentRequest {
    /// card or prepaid.
    #[schema(example = "card")]
    method: String,
    /// For `card`: the gateway token, 1 to 128 characters of A-Z a-z 0-9 _ -.
    #[schema(example = "tok_4242424242424242")]
    token: Option<String>,
    /// For `prepaid`: the channel's payment reference, at most 128 characters.
    reference: Option<String>,
}

/// The buyer's session as the channel saw it, used by risk scoring.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RiskContextRequest {
    /// IPv4 or IPv6 address.
    #[schema(example = "203.0.113.7")]
    ip: Option<String>,
    /// Device fingerprint, at most 128 characters.
    device_id: Option<String>,
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
    /// Tax on the whole line. Absent: computed from the shipping address's rate on the line
    /// after its discount, rounded half up to the minor unit.
    tax_minor: Option<i64>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct DiscountRequest {
    code: String,
    amount_minor: i64,
}

/// Country must be an assigned ISO-3166 alpha-2 code; postal codes are checked for US, CA, GB,
/// DE, FR, NL, AU, JP, IT, ES, AT, BE, CH, DK, SE, PL and PT. Stored trimmed with spaces
/// collapsed, country and postal code upper-cased and in the country's canonical form.
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
    /// standard, express or pickup have rates; any other method needs `price_minor`.
    #[schema(example = "standard")]
    method: String,
    /// Absent: the rate table's price for the method and zone (domestic = US), free standard
    /// domestic shipping from a merchandise subtotal of 50 (USD/EUR).
    price_minor: Option<i64>,
    /// Absent: the destination's rate where it taxes shipping, else 0.
    tax_minor: Option<i64>,
    /// The store the customer collects a `pickup` order at: the id of a location that offers
    /// pickup (the routing config's nodes with a `pickup` point, e.g. `store-soho`); at most
    /// 64 characters. Required for `pickup` orders (routing sends the order to that store and
    /// no other); refused for any other method. 422 naming `shipping.pickup_location`
    /// otherwise.
    #[schema(example = "store-soho")]
    pickup_location: Option<String>,
}

/// `POST /v1/orders/{id}/cancel` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct CancelOrderRequest {
    /// customer_request, fraud, out_of_stock, payment_failed or other.
    #[schema(value_type = String, pattern = "^(customer_request|fraud|out_of_stock|payment_failed|other)$")]
    reason: String,
    #[schema(max_length = 1000)]
    note: Option<String>,
}

/// `POST /v1/orders/{id}/review` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ReviewOrderRequest {
    /// approve or reject.
    #[schema(pattern = "^(approve|reject)$")]
    decision: String,
    /// Why, for the order's history (at most 1,000 characters).
    #[schema(max_length = 1000)]
    note: Option<String>,
}

/// `POST /v1/desk/entries/{entry_id}/resolve` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ResolveEntryRequest {
    /// What to do; one of the entry's `allowed_actions`. `void` cancels the entry's order (its
    /// authorization is voided and its stock released), `retry_handoff` asks the carrier to
    /// attempt the parcel's handoff again; the others record the decision only.
    #[schema(
        pattern = "^(retry_handoff|reroute|extend|void|contact_customer|replay|discard|acknowledge)$"
    )]
    action: String,
    /// Why, or what the customer was told (at most 1,000 characters).
    #[schema(max_length = 1000)]
    note: Option<String>,
}

/// `POST /v1/orders/{id}/refunds` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RefundRequestBody {
    /// More than 0, in minor units of `currency`.
    #[schema(minimum = 1, maximum = 1000000000000.0)]
    amount_minor: i64,
    /// The order's currency.
    currency: String,
    /// Why (internal: agents and finance see it, the customer does not); at most 500 characters.
    #[schema(max_length = 500)]
    reason: String,
    /// goodwill (default), return or cancellation.
    #[schema(pattern = "^(goodwill|return|cancellation)$")]
    kind: Option<String>,
    /// original_payment (default: back to the card) or store_credit (credit on the customer's
    /// account; orders placed without a customer id cannot be credited: 422 naming
    /// `destination`).
    #[schema(pattern = "^(original_payment|store_credit)$")]
    destination: Option<String>,
}

/// `POST /v1/orders/{id}/charges` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ChargeRequestBody {
    /// More than 0, in minor units of `currency`.
    #[schema(minimum = 1, maximum = 1000000000000.0)]
    amount_minor: i64,
    /// The order's currency.
    currency: String,
    /// Why (internal); at most 500 characters.
    #[schema(max_length = 500)]
    reason: String,
    /// The exchange (`<order id>-R<n>`) whose price difference this pays, when an agent
    /// charges again after a declined charge: once captured, the replacement ships. A return
    /// the order does not have, or one not resolved as an exchange, is 422 naming `return_id`
    /// (nothing is charged).
    #[schema(max_length = 80)]
    return_id: Option<String>,
}

/// `POST /v1/orders/{id}/disputes/{dispute_id}/evidence` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct EvidenceRequestBody {
    /// What answers the dispute (proof of delivery, correspondence); at most 5,000 characters.
    #[schema(max_length = 5000)]
    text: String,
}

/// `POST /v1/settlement/imports` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ImportRequestBody {
    /// Which gateway's report: the configured payment gateway's name
    /// (`WAYBILL_PAYMENT_GATEWAY_NAME`, `sandbox` by default); any other is 422 `gateway`.
    #[schema(example = "sandbox", pattern = "^[a-z0-9_]{1,32}$")]
    gateway: String,
    /// The report's day, YYYY-MM-DD, no later than tomorrow (UTC); later is 422 `date`.
    #[schema(example = "2026-11-25", format = Date, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    date: String,
    /// The report itself; absent: fetched from the gateway.
    csv: Option<String>,
}

pub(super) struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// What the layer in front of every endpoint refuses in a JSON body
/// (`super::body_check`), added to every operation that takes one, so the document cannot
/// forget an endpoint either.
pub(super) struct JsonBodyRules;

const DUPLICATE_KEY: &str = "duplicate-key: an object names the same key twice (`field` is its \
    path, e.g. `lines[0].sku`)";
const CONTROL_CHARACTER: &str = "validation-failed: a string holds a control character other \
    than tab, LF and CR, such as NUL (`field` is its path)";

impl Modify for JsonBodyRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let operations = openapi.paths.paths.values_mut().flat_map(|item| {
            [&mut item.post, &mut item.put, &mut item.patch]
                .into_iter()
                .flatten()
        });
        for operation in operations.filter(|o| o.request_body.is_some()) {
            for (status, rule) in [("400", DUPLICATE_KEY), ("422", CONTROL_CHARACTER)] {
                match operation.responses.responses.get_mut(status) {
                    Some(RefOr::T(response)) => {
                        response.description = format!("{}; or {rule}", response.description);
                    }
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        let problem = ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build();
                        let response = ResponseBuilder::new()
                            .description(rule)
                            .content("application/problem+json", problem)
                            .build();
                        operation
                            .responses
                            .responses
                            .insert(status.to_owned(), RefOr::T(response));
                    }
                }
            }
        }
    }
}

/// `POST /v1/orders/{id}/returns` body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ReturnRequestBody {
    /// 1 to 200 lines, each order line at most once.
    #[schema(min_items = 1, max_items = 200)]
    lines: Vec<ReturnLineRequest>,
    /// `"refund"` (default) or `"store_credit"`, or an object: `{"kind": "refund"}`,
    /// `{"kind": "store_credit"}` or `{"kind": "exchange", "replacements": [...]}` (see
    /// write-side/EXCHANGES.md). An exchange names its replacements.
    #[schema(value_type = Option<Object>, example = json!({"kind": "exchange", "replacements": [{"for_line_no": 1, "sku": "TSHIRT-L", "quantity": 1, "unit_price": {"minor": 2500, "currency": "USD"}}]}))]
    resolution: Option<String>,
    /// Agents and admins only: keep no fees.
    waive_fees: Option<bool>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ReturnLineRequest {
    #[schema(minimum = 1)]
    line_no: u32,
    /// At most delivered minus already returned, within the window.
    #[schema(minimum = 1, maximum = 1000000)]
    quantity: i64,
    /// wrong_size, damaged, not_as_described, wrong_item, changed_mind, arrived_late, other
    /// (the policy may allow fewer).
    #[schema(example = "wrong_size")]
    #[schema(
        pattern = "^(wrong_size|damaged|not_as_described|wrong_item|changed_mind|arrived_late|other)$"
    )]
    reason: String,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    note: Option<String>,
}

/// `POST /v1/orders/{id}/returns/{return_id}/inspection` body: every returned line once.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct InspectionRequestBody {
    #[schema(min_items = 1, max_items = 200)]
    lines: Vec<InspectionLineRequest>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct InspectionLineRequest {
    #[schema(minimum = 1)]
    line_no: u32,
    #[schema(pattern = "^\\s*[A-Za-z0-9._-]{1,64}\\s*$")]
    sku: String,
    /// accepted + rejected = the returned quantity.
    #[schema(maximum = 1000000)]
    accepted: u32,
    #[schema(maximum = 1000000)]
    rejected: u32,
    /// Accepted units that go back into stock (≤ accepted).
    #[schema(maximum = 1000000)]
    resellable: u32,
    #[schema(max_length = 500)]
    note: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Waybill command API", description = "Commands that change orders. Errors are application/problem+json."),
    paths(
        super::handlers::place_order,
        super::handlers::cancel_order,
        super::cancellation::cancel_lines,
        super::edits::preview_edit,
        super::edits::edit_order,
        super::checkout::review_order,
        super::checkout::review_queue,
        super::checkout::payment_webhook,
        super::money::refund_order,
        super::money::charge_order,
        super::money::submit_evidence,
        super::money::import_settlement,
        super::fulfillment::wms_webhook,
        super::fulfillment::carrier_webhook,
        super::returns::request_return,
        super::returns::record_inspection,
        super::inventory::put_location, super::inventory::restock, super::inventory::adjust,
        super::inventory::get_stock,
        super::desk::list_entries, super::desk::get_entry, super::desk::resolve_entry,
        super::notifications::get_preferences, super::notifications::put_preferences,
        super::notifications::resend,
        super::erasure::erase_customer, super::erasure::erase_guest,
        super::routing::simulate,
        crate::readiness::live, super::handlers::ready
    ),
    components(schemas(
        PlaceOrderRequest, CustomerRequest, LineRequest, DiscountRequest, AddressRequest,
        ShippingRequest, PaymentRequest, RiskContextRequest, CancelOrderRequest, PlaceOrderResponse, CancelOrderResponse,
        TotalsResponse, Problem, FieldError, ReviewOrderRequest, ReviewOrderResponse,
        super::checkout::ReviewQueue, super::checkout::ReviewItem,
        super::checkout::WebhookResponse,
        RefundRequestBody, crate::commands::RefundResponse,
        ReturnRequestBody, ReturnLineRequest, InspectionRequestBody, InspectionLineRequest,
        crate::commands::ReturnResponse, crate::commands::ReturnLineResponse,
        crate::commands::FeeResponse, crate::commands::ReturnLabelResponse,
        super::cancellation::CancelLinesRequest, super::cancellation::CancelLineRequest,
        crate::commands::CancelLinesResponse, crate::commands::CancelledLineResponse,
        super::edits::EditRequest, super::edits::EditLineChange, super::edits::EditNewLine,
        super::edits::EditPrice, crate::commands::EditResponse, crate::commands::EditedLineResponse, crate::commands::AddedStockResponse,
        ChargeRequestBody, crate::commands::ChargeResponse,
        EvidenceRequestBody, crate::commands::EvidenceResponse,
        ImportRequestBody, crate::commands::ImportResponse, crate::commands::PayoutResponse,
        ResolveEntryRequest, crate::commands::ResolveResponse, crate::commands::OrderEventRef,
        super::desk::EntryPage,
        crate::desk::Entry, crate::desk::Resolution, crate::desk::EntryKind, crate::desk::Action,
        crate::desk::EntryStatus,
        super::notifications::PreferencesRequest, super::notifications::MediumName,
        super::notifications::ResendRequest, crate::commands::PreferencesResponse,
        crate::commands::ResendResponse, crate::commands::ErasureResponse,
        super::erasure::GuestErasureRequest, crate::commands::GuestErasureResponse,
        super::routing::SimulationRequest, super::routing::SimulationResponse,
        super::routing::OrderRow, crate::domain::fulfillment::simulation::Aggregate,
        crate::domain::fulfillment::simulation::SideTotals,
        crate::domain::fulfillment::simulation::OrderDelta,
        crate::domain::fulfillment::simulation::OrderMeasure,
        super::inventory::LocationRequest,
        super::inventory::RestockRequest, super::inventory::AdjustRequest,
        super::inventory::StockResponse, crate::inventory::StockLevel,
        crate::readiness::LiveBody, crate::readiness::ReadyBody, crate::readiness::NotReadyBody,
        crate::readiness::CheckState
    )),
    modifiers(&ApiKeyAuth, &JsonBodyRules)
)]
pub struct CommandApiDoc;

/// The document as served: the handlers' annotations completed with what every operation can
/// answer ([`super::contract::complete`]).
pub fn document() -> serde_json::Value {
    let mut doc = CommandApiDoc::openapi();
    doc.merge(super::subscriptions::SubscriptionsDoc::openapi());
    let mut document = serde_json::to_value(doc).unwrap_or_default();
    super::contract::complete(&mut document);
    document
}

/// The document `/openapi.json` serves, serialised once per process.
pub static DOCUMENT: super::shared_document::SharedDocument =
    super::shared_document::SharedDocument::new(document);
