//! The query API's OpenAPI 3.1 document, generated from the handlers and DTOs with utoipa and
//! served at `GET /openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use waybill_write_side::command_api::shared_document::SharedDocument;

use crate::tracking::{Consistency, TrackingResponse};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Waybill query API",
        description = "Read models of Waybill orders. Customer tracking with read-your-writes: pass `min_version` or the `consistency_token` of a command response and the query waits (bounded) for the view to catch up, or says it is stale."
    ),
    paths(
        crate::tracking::get_tracking,
        crate::me::my_orders,
        crate::store_credit::my_store_credit,
        crate::page::tracking_page,
        crate::page::tracking_events,
        crate::page::lookup_form,
        crate::page::lookup,
        crate::page::stylesheet,
        crate::page::script,
        crate::search::search_orders,
        crate::search::agent_order,
        crate::history::order_history,
        crate::history::order_diff,
        crate::finance::handlers::get_summary,
        crate::finance::handlers::get_payouts,
        crate::finance::handlers::get_payout_lines,
        crate::finance::handlers::get_reconciliation,
        crate::finance::handlers::get_metrics,
        crate::http::health,
        waybill_write_side::readiness::live,
        crate::http::ready
    ),
    components(schemas(
        TrackingResponse,
        Consistency,
        crate::me::MyOrders,
        crate::me::MyOrder,
        crate::store_credit::MyStoreCredit,
        crate::store_credit::StoreCreditBalance,
        waybill_schemas::views::StoreCreditEntry,
        waybill_schemas::views::TrackingStoreCredit,
        waybill_schemas::views::TrackingShipment,
        waybill_schemas::views::TrackingShipmentLine,
        waybill_schemas::views::ShipmentStatus,
        waybill_schemas::views::ShipmentProgress,
        waybill_schemas::views::TrackingPickup,
        waybill_schemas::views::TrackingReturn,
        waybill_schemas::views::ReturnStatus,
        waybill_write_side::command_api::Problem,
        waybill_write_side::domain::FieldError,
        waybill_write_side::readiness::LiveBody,
        waybill_write_side::readiness::ReadyBody,
        waybill_write_side::readiness::NotReadyBody,
        waybill_write_side::readiness::CheckState,
        waybill_schemas::views::TrackingView,
        waybill_schemas::views::TrackingStatus,
        waybill_schemas::views::TrackingPayment,
        waybill_schemas::views::PaymentState,
        waybill_schemas::views::TrackingStock,
        waybill_schemas::views::StockState,
        waybill_schemas::views::TrackingBackorder,
        waybill_schemas::views::TrackingLine,
        waybill_schemas::views::TrackingTotals,
        waybill_schemas::views::TimelineEntry,
        waybill_schemas::Channel,
        crate::search::SearchResponse,
        crate::search::AgentOrderResponse,
        crate::search::InternalTimelineEntry,
        crate::history::OrderAsOf,
        crate::history::OrderDiff,
        crate::history::Change,
        waybill_schemas::views::OrderDocument,
        waybill_schemas::views::SearchCustomer,
        waybill_schemas::views::SearchAddress,
        waybill_schemas::views::SearchLine,
        waybill_schemas::views::SearchHit,
        waybill_schemas::views::Highlight,
        waybill_schemas::views::SearchFacets,
        waybill_schemas::views::FacetCount,
        crate::finance::SummaryResponse,
        crate::finance::SummaryRow,
        crate::finance::PayoutsResponse,
        crate::finance::Payout,
        crate::finance::PayoutLinesResponse,
        crate::finance::PayoutLine,
        crate::finance::ReconciliationResponse,
        crate::finance::ReconciledItem,
        crate::finance::ReconciliationTotal,
        crate::finance::MetricsResponse,
        crate::finance::StageCount,
        crate::finance::StageTime,
        crate::finance::Cancellations,
        crate::finance::ReturnRate,
    )),
    modifiers(&ApiKeyScheme),
    tags((name = "tracking", description = "Customer order tracking"),
         (name = "tracking page", description = "The customer tracking web page, its live updates and the order lookup form"),
         (name = "customers", description = "A signed-in customer's own orders (Bearer JWT, role customer)"),
         (name = "agents", description = "Support agents: order search and order detail (roles agent, admin)"),
         (name = "finance", description = "Money summary, payouts, reconciliation and operational metrics (role finance or admin)"),
         (name = "operations", description = "Health and metrics"))
)]
pub struct QueryApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A staff API key (`WAYBILL_API_KEYS`: roles service, agent, finance, \
                         admin) or a customer's JWT (role customer, `/v1/me/...`)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "tracking_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The order's tracking token (from the place-order response and customer \
                 messages): reads that one order's tracking",
            ))),
        );
    }
}

/// The document as served: the handlers' annotations completed with what every operation can
/// answer (the same completion as the command API's).
pub fn document() -> serde_json::Value {
    let mut document = serde_json::to_value(QueryApiDoc::openapi()).unwrap_or_default();
    waybill_write_side::command_api::contract::complete(&mut document);
    document
}

/// The document `/openapi.json` serves, serialised once per process.
static DOCUMENT: SharedDocument = SharedDocument::new(document);

pub(crate) async fn serve_document() -> axum::response::Response {
    DOCUMENT.response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn document_describes_the_tracking_endpoint_and_its_schemas() {
        let doc = document();
        let op = &doc["paths"]["/v1/orders/{id}/tracking"]["get"];
        assert!(op.is_object(), "tracking path missing");
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in ["id", "token", "min_version", "consistency_token"] {
            assert!(params.contains(&name), "parameter {name} missing");
        }
        assert!(doc["components"]["schemas"]["TrackingView"].is_object());
        let statuses = &doc["components"]["schemas"]["TrackingStatus"]["enum"];
        assert!(statuses
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "awaiting_payment"));
        for schema in [
            "TrackingPayment",
            "PaymentState",
            "TrackingStock",
            "StockState",
        ] {
            assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
        }
        assert!(doc["components"]["schemas"]["Consistency"].is_object());
    }

    #[test]
    fn document_describes_the_agent_endpoints() {
        let doc = document();
        let search = &doc["paths"]["/v1/search/orders"]["get"];
        let params: Vec<&str> = search["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in [
            "q",
            "status",
            "channel",
            "created_from",
            "total_max",
            "has_exception",
            "sort",
            "cursor",
            "consistency_token",
        ] {
            assert!(params.contains(&name), "search parameter {name} missing");
        }
        assert!(doc["paths"]["/v1/agent/orders/{id}"]["get"].is_object());
        assert!(doc["components"]["schemas"]["OrderDocument"].is_object());
        assert!(doc["components"]["schemas"]["SearchResponse"].is_object());
    }

    #[test]
    fn document_describes_every_finance_endpoint() {
        let doc = document();
        for path in [
            "/v1/finance/summary",
            "/v1/finance/payouts",
            "/v1/finance/payouts/{payout_id}/lines",
            "/v1/finance/reconciliation",
            "/v1/finance/metrics",
        ] {
            let op = &doc["paths"][path]["get"];
            assert!(op.is_object(), "{path} missing");
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            for name in ["limit", "offset", "format"] {
                assert!(params.contains(&name), "{path}: parameter {name} missing");
            }
            assert!(op["responses"]["403"].is_object(), "{path}: 403 missing");
        }
        for schema in ["SummaryRow", "ReconciledItem", "Payout", "MetricsResponse"] {
            assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
        }
    }
}
