//! Editing an order before fulfillment, end to end: the real binary with the checkout and
//! fulfillment workers and our payment and logistics sandboxes. An order waits in the
//! fulfillment hold; the tests preview and confirm edits through the command API and look at
//! what the customer and the systems see: the routed node task, the captured amount, the
//! tracking view.

use serde_json::{json, Value};
use waybill_e2e::checkout::SETTLE;
use waybill_e2e::fulfillment::{multi_line_order, FulfillmentWorld};
use waybill_e2e::{eventually, HttpResponse, SERVICE_KEY};

async fn post(
    f: &FulfillmentWorld,
    path: &str,
    bearer: &str,
    key: &str,
    body: &Value,
) -> HttpResponse {
    f.world.api.post_json(path, bearer, key, body).await
}

/// The one field a problem names.
fn only_field(response: &HttpResponse) -> String {
    let mut fields = response.problem_fields();
    fields.dedup();
    assert_eq!(fields.len(), 1, "{}", response.describe());
    fields.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_before_fulfillment_is_previewed_then_reprices_and_ships_the_edited_lines() {
    let f = FulfillmentWorld::start(
        "edit_in_hold",
        &[
            ("WAYBILL_FULFILLMENT_HOLD_SECS", "5"),
            ("WAYBILL_CAPTURE_MODE", "on-shipment"),
        ],
    )
    .await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    f.world.restock("MUG-BLK", "wh-east", 5).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "EDIT-HOLD-1",
            &[("TEE-RED-M", 3), ("MUG-BLK", 1)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    let placed_total = placed["totals"]["grand_total_minor"].as_i64().unwrap();
    f.world.wait_for_event(&order_id, "OrderConfirmed", 1).await;

    // Two tees instead of three: the preview re-prices and records nothing.
    let edit = json!({"changes": [{"line_no": 1, "quantity": 1}]});
    let preview = post(
        &f,
        &format!("/v1/orders/{order_id}/edits/preview"),
        SERVICE_KEY,
        "edit-preview",
        &edit,
    )
    .await;
    assert_eq!(preview.status, 200, "{}", preview.describe());
    let preview = preview.json();
    let new_total = preview["grand_total_minor"].as_i64().unwrap();
    assert!(new_total < placed_total, "{preview}");
    assert_eq!(preview["previous_total_minor"], json!(placed_total));
    assert_eq!(preview["difference_minor"], json!(new_total - placed_total));
    assert_eq!(preview["money_action"], json!("capture_less"));
    assert_eq!(preview["lines"][0]["quantity"], json!(1));
    assert!(f
        .world
        .env
        .payloads_of(&order_id, "OrderEdited")
        .await
        .is_empty());

    // The owner confirms it with their own JWT; another customer does not see the order.
    let stranger = f.world.env.jwt("someone-else", "customer");
    let refused = post(
        &f,
        &format!("/v1/orders/{order_id}/edits"),
        &stranger,
        "edit-x",
        &edit,
    )
    .await;
    assert_eq!(refused.status, 404, "{}", refused.describe());
    let owner = f.world.env.jwt("EDIT-HOLD-1", "customer");
    let edited = post(
        &f,
        &format!("/v1/orders/{order_id}/edits"),
        &owner,
        "edit-1",
        &edit,
    )
    .await;
    assert_eq!(edited.status, 201, "{}", edited.describe());
    let body = edited.json();
    assert!(body["edit_id"].is_string(), "{body}");
    assert_eq!(body["grand_total_minor"], json!(new_total));
    let again = post(
        &f,
        &format!("/v1/orders/{order_id}/edits"),
        &owner,
        "edit-1",
        &edit,
    )
    .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    // After the hold, the node gets the edited quantities; the capture is the edited total.
    let tasks = f.tasks(&order_id, 1).await;
    let mut lines = tasks[0]["lines"].as_array().unwrap().clone();
    lines.sort_by_key(|l| l["line_no"].as_u64());
    assert_eq!(
        lines,
        vec![
            json!({"line_no": 1, "sku": "TEE-RED-M", "quantity": 1}),
            json!({"line_no": 2, "sku": "MUG-BLK", "quantity": 1}),
        ],
        "{tasks:?}"
    );
    // The two tees taken out are no longer held for the order.
    eventually("TEE-RED-M: one unit allocated", SETTLE, || async {
        let (_, _, allocated) = f.world.stock("TEE-RED-M").await;
        if allocated == 1 {
            Ok(())
        } else {
            Err(format!("{allocated} allocated"))
        }
    })
    .await;
    f.pack_all(&order_id, 1).await;
    f.parcels(&order_id, 1).await;
    let captured = f
        .world
        .wait_for_event(&order_id, "PaymentCaptured", 1)
        .await;
    assert_eq!(captured[0]["amount"]["minor"], json!(new_total));
    assert_eq!(
        f.world
            .env
            .payloads_of(&order_id, "OrderEdited")
            .await
            .len(),
        1
    );

    // What the customer sees.
    let view = f
        .view_when(&order_id, "edited lines and total", |v| {
            v["totals"]["grand_total_minor"] == json!(new_total)
        })
        .await;
    assert_eq!(view["lines"][0]["quantity"], json!(1), "{view}");
    assert!(
        view["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["summary"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Order changed: 2 items")),
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_after_routing_is_refused() {
    let f = FulfillmentWorld::start("edit_routed", &[]).await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "EDIT-ROUTED-1",
            &[("TEE-RED-M", 2)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    f.tasks(&order_id, 1).await;
    let refused = post(
        &f,
        &format!("/v1/orders/{order_id}/edits"),
        SERVICE_KEY,
        "edit-late",
        &json!({"changes": [{"line_no": 1, "quantity": 1}]}),
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.describe());
    assert_eq!(refused.problem_slug().as_deref(), Some("not-editable"));
    assert!(f
        .world
        .env
        .payloads_of(&order_id, "OrderEdited")
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_with_bad_input_names_the_field() {
    let f = FulfillmentWorld::start(
        "edit_bad_input",
        &[("WAYBILL_FULFILLMENT_HOLD_SECS", "600")],
    )
    .await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "EDIT-BAD-1",
            &[("TEE-RED-M", 2)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    // Captured at confirmation: from then on the order is editable (until routed).
    f.world
        .wait_for_event(&order_id, "PaymentCaptured", 1)
        .await;
    let path = format!("/v1/orders/{order_id}/edits");
    let socks = |currency: &str, quantity: i64| {
        json!({"add": [{"sku": "SOCKS-3", "name": "Socks", "quantity": quantity,
                        "unit_price": {"amount_minor": 400, "currency": currency}}]})
    };
    for (key, body, field) in [
        (
            "bad-1",
            json!({"changes": [{"line_no": 7, "quantity": 1}]}),
            "changes[0].line_no",
        ),
        ("bad-2", socks("EUR", 1), "add[0].unit_price.currency"),
        ("bad-3", socks("USD", 0), "add[0].quantity"),
        ("bad-4", socks("XX", 1), "add[0].unit_price.currency"),
        (
            "bad-5",
            json!({"changes": [{"line_no": 1, "quantity": -1}]}),
            "changes[0].quantity",
        ),
        ("bad-6", json!({}), "changes"),
    ] {
        let response = post(&f, &path, SERVICE_KEY, key, &body).await;
        assert_eq!(response.status, 422, "{key}: {}", response.describe());
        assert_eq!(only_field(&response), field, "{key}");
    }
    let unknown = post(
        &f,
        "/v1/orders/01a214fd-0000-7000-8000-0000000000ed/edits",
        SERVICE_KEY,
        "bad-7",
        &json!({"changes": [{"line_no": 1, "quantity": 1}]}),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.describe());
    assert!(f
        .world
        .env
        .payloads_of(&order_id, "OrderEdited")
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_preview_reports_the_free_stock_of_added_skus() {
    let f = FulfillmentWorld::start(
        "edit_preview_stock",
        &[("WAYBILL_FULFILLMENT_HOLD_SECS", "600")],
    )
    .await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    f.world.restock("MUG-BLK", "wh-west", 3).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "EDIT-STOCK-1",
            &[("TEE-RED-M", 2)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    // Captured at confirmation: from then on the order is editable (until routed).
    f.world
        .wait_for_event(&order_id, "PaymentCaptured", 1)
        .await;
    // One tee fewer, one mug more (same price): the total stays within the authorization.
    let preview = post(
        &f,
        &format!("/v1/orders/{order_id}/edits/preview"),
        SERVICE_KEY,
        "preview-stock",
        &json!({"changes": [{"line_no": 1, "quantity": 1}],
                "add": [{"sku": "MUG-BLK", "name": "Mug", "quantity": 4,
                         "unit_price": {"amount_minor": 100, "currency": "USD"}}]}),
    )
    .await;
    assert_eq!(preview.status, 200, "{}", preview.describe());
    let body = preview.json();
    assert_eq!(
        body["stock"],
        json!([{"sku": "MUG-BLK", "quantity": 4, "available": 3, "enough": false}]),
        "{body}"
    );
    assert_eq!(body["lines"][1]["line_no"], json!(2));
    assert_eq!(body["lines"][1]["quantity"], json!(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_capture_a_dearer_edit_is_charged_and_a_cheaper_one_refunded() {
    let f = FulfillmentWorld::start(
        "edit_after_capture",
        &[("WAYBILL_FULFILLMENT_HOLD_SECS", "600")],
    )
    .await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "EDIT-CAPT-1",
            &[("TEE-RED-M", 1)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    f.world
        .wait_for_event(&order_id, "PaymentCaptured", 1)
        .await;
    let path = format!("/v1/orders/{order_id}/edits");

    let dearer = post(
        &f,
        &path,
        SERVICE_KEY,
        "edit-up",
        &json!({"changes": [{"line_no": 1, "quantity": 2}]}),
    )
    .await;
    assert_eq!(dearer.status, 201, "{}", dearer.describe());
    let up = dearer.json();
    assert_eq!(up["money_action"], json!("extra_charge"));
    let more = up["difference_minor"].as_i64().unwrap();
    assert!(more > 0, "{up}");
    let charged = f
        .world
        .wait_for_event(&order_id, "ExtraChargeCaptured", 1)
        .await;
    assert_eq!(charged[0]["amount"]["minor"], json!(more));

    let cheaper = post(
        &f,
        &path,
        SERVICE_KEY,
        "edit-down",
        &json!({"changes": [{"line_no": 1, "quantity": 1}]}),
    )
    .await;
    assert_eq!(cheaper.status, 201, "{}", cheaper.describe());
    let down = cheaper.json();
    assert_eq!(down["money_action"], json!("refund"));
    let less = -down["difference_minor"].as_i64().unwrap();
    assert_eq!(less, more, "{down}");
    let refunded = f
        .world
        .wait_for_event(&order_id, "PaymentRefunded", 1)
        .await;
    assert_eq!(refunded[0]["amount"]["minor"], json!(less));
    let requested = f.world.env.payloads_of(&order_id, "RefundRequested").await;
    assert_eq!(requested.len(), 1, "refunded once: {requested:?}");
    assert_eq!(requested[0]["kind"], json!("cancellation"));
}

/// Units an edit adds, in stock at the node that already holds the order's allocation, ride in
/// that node's task: nothing is cancelled for want of "another" node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_added_by_an_edit_ship_from_the_node_that_holds_the_rest() {
    let f = FulfillmentWorld::start(
        "edit_adds_units",
        &[
            ("WAYBILL_FULFILLMENT_HOLD_SECS", "5"),
            ("WAYBILL_CAPTURE_MODE", "immediate"),
        ],
    )
    .await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    f.world.restock("MUG-BLK", "wh-east", 5).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "EDIT-ADD-1",
            &[("TEE-RED-M", 1)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    // Captured at confirmation: a dearer edit charges the difference, then the order routes.
    f.world
        .wait_for_event(&order_id, "PaymentCaptured", 1)
        .await;
    // One more tee and a mug.
    let edit = json!({
        "changes": [{"line_no": 1, "quantity": 2}],
        "add": [{"sku": "MUG-BLK", "name": "Mug", "quantity": 1,
                 "unit_price": {"amount_minor": 100, "currency": "USD"}}],
    });
    let edited = post(
        &f,
        &format!("/v1/orders/{order_id}/edits"),
        SERVICE_KEY,
        "edit-add-1",
        &edit,
    )
    .await;
    assert_eq!(edited.status, 201, "{}", edited.describe());
    let tasks = f.tasks(&order_id, 1).await;
    let mut lines = tasks[0]["lines"].as_array().unwrap().clone();
    lines.sort_by_key(|l| l["line_no"].as_u64());
    assert_eq!(
        lines,
        vec![
            json!({"line_no": 1, "sku": "TEE-RED-M", "quantity": 2}),
            json!({"line_no": 2, "sku": "MUG-BLK", "quantity": 1}),
        ],
        "{tasks:?}"
    );
    assert!(
        f.world
            .env
            .payloads_of(&order_id, "FulfillmentLinesCancelled")
            .await
            .is_empty(),
        "nothing cancelled"
    );
}

/// A prepaid order (paid to the channel) has no capture to wait for: in the hold it is editable
/// like any other, and the difference is the channel's to settle (`money_action: none`). It used
/// to be refused forever with "its payment is being captured", since no capture ever comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepaid_order_in_the_hold_is_editable() {
    let f =
        FulfillmentWorld::start("edit_prepaid", &[("WAYBILL_FULFILLMENT_HOLD_SECS", "600")]).await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    let mut body = multi_line_order("EDIT-PREPAID-1", &[("TEE-RED-M", 2)], "standard");
    body["payment"] = json!({"method": "prepaid", "reference": "MKT-778"});
    let placed = f.world.place(&body).await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    let confirmed = f.world.wait_for_event(&order_id, "OrderConfirmed", 1).await;
    assert_eq!(confirmed[0]["capture_mode"], json!("immediate"));

    let edited = post(
        &f,
        &format!("/v1/orders/{order_id}/edits"),
        SERVICE_KEY,
        "edit-prepaid",
        &json!({"changes": [{"line_no": 1, "quantity": 1}]}),
    )
    .await;
    assert_eq!(edited.status, 201, "{}", edited.describe());
    let edited = edited.json();
    assert_eq!(edited["money_action"], json!("none"), "{edited}");
    assert_eq!(edited["lines"][0]["quantity"], json!(1), "{edited}");
    let recorded = f.world.env.payloads_of(&order_id, "OrderEdited").await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    // Nothing is asked of the card gateway for a prepaid order.
    assert!(f
        .world
        .env
        .payloads_of(&order_id, "PaymentCaptured")
        .await
        .is_empty());
    f.view_when(&order_id, "the edit shows", |v| {
        v["lines"][0]["quantity"] == json!(1)
    })
    .await;
}
