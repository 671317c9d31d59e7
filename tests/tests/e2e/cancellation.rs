//! Cancelling units after confirmation, end to end: the real binary with the checkout and
//! fulfillment workers, our payment and logistics sandboxes. The tests cancel through the
//! command API and look at what the customer and the systems see: the refund on the card, the
//! stock given back, the node's task amended, the tracking view.

use serde_json::{json, Value};
use waybill_e2e::checkout::SETTLE;
use waybill_e2e::fulfillment::{multi_line_order, FulfillmentWorld};
use waybill_e2e::{eventually, HttpResponse, SERVICE_KEY};

async fn cancel_lines(
    f: &FulfillmentWorld,
    order_id: &str,
    key: &str,
    body: Value,
) -> HttpResponse {
    f.world
        .api
        .post_json(
            &format!("/v1/orders/{order_id}/lines/cancel"),
            SERVICE_KEY,
            key,
            &body,
        )
        .await
}

/// The one field a problem names (as `field` and as its only entry of `errors`).
fn only_field(response: &HttpResponse) -> String {
    let mut fields = response.problem_fields();
    fields.dedup();
    assert_eq!(fields.len(), 1, "{}", response.describe());
    fields.remove(0)
}

fn task_at<'a>(tasks: &'a [Value], node: &str) -> &'a Value {
    tasks
        .iter()
        .find(|t| t["node_id"] == json!(node))
        .unwrap_or_else(|| panic!("a task at {node}: {tasks:?}"))
}

/// Allocated units of `sku`, once `check` accepts them.
async fn allocated_when(f: &FulfillmentWorld, sku: &str, what: &str, check: impl Fn(i64) -> bool) {
    let check = &check;
    eventually(&format!("{sku}: {what}"), SETTLE, || async move {
        let (_, _, allocated) = f.world.stock(sku).await;
        if check(allocated) {
            Ok(())
        } else {
            Err(format!("{allocated} allocated"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_after_partial_shipment_refunds_the_unshipped_lines_and_releases_their_stock() {
    let f = FulfillmentWorld::start("cancel_partial", &[]).await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    f.world.restock("MUG-BLK", "wh-west", 5).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "CANCEL-PART-1",
            &[("TEE-RED-M", 1), ("MUG-BLK", 2)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().expect("order id").to_owned();
    let grand_total = placed["totals"]["grand_total_minor"].as_i64().unwrap();

    // The tee ships from wh-east; the mugs wait at wh-west.
    let tasks = f.tasks(&order_id, 2).await;
    let tee = task_at(&tasks, "wh-east")["fulfillment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mug_task = task_at(&tasks, "wh-west").clone();
    f.node(&tee, json!({"type": "picked"})).await;
    f.node(&tee, json!({"type": "packed"})).await;
    f.parcels(&order_id, 1).await;
    f.world
        .wait_for_event(&order_id, "PaymentCaptured", 1)
        .await;
    allocated_when(&f, "MUG-BLK", "2 allocated", |a| a == 2).await;

    let response = cancel_lines(
        &f,
        &order_id,
        "cancel-mugs",
        json!({"lines": [{"line_no": 2, "quantity": 2}], "reason": "customer_request", "note": "changed my mind"}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.describe());
    let body = response.json();
    assert_eq!(body["lines"], json!([{"line_no": 2, "quantity": 2}]));
    let value = body["value_minor"].as_i64().unwrap();
    assert!(value > 0, "{body}");
    assert_eq!(
        body["current_total_minor"].as_i64().unwrap(),
        grand_total - value
    );

    // Money: the mugs' value goes back to the card, as a cancellation refund.
    let requested = f
        .world
        .wait_for_event(&order_id, "RefundRequested", 1)
        .await;
    assert_eq!(requested[0]["kind"], json!("cancellation"));
    assert_eq!(requested[0]["amount"]["minor"], json!(value));
    let refunded = f
        .world
        .wait_for_event(&order_id, "PaymentRefunded", 1)
        .await;
    assert_eq!(refunded[0]["amount"]["minor"], json!(value));

    // Stock: the mugs are no longer held; the node's task lost them.
    allocated_when(&f, "MUG-BLK", "released", |a| a == 0).await;
    let released = f
        .world
        .wait_for_event(&order_id, "CancelledUnitsReleased", 1)
        .await;
    assert_eq!(released[0]["released_units"], json!(2));
    assert_eq!(
        released[0]["nodes_amended"],
        json!([mug_task["fulfillment_id"]])
    );
    let tasks = f.tasks(&order_id, 2).await;
    assert_eq!(
        task_at(&tasks, "wh-west")["cancelled"][0]["quantity"],
        json!(2),
        "{tasks:?}"
    );

    // What the customer sees.
    let view = f
        .view_when(&order_id, "mugs cancelled and refunded", |v| {
            v["lines"][1]["cancelled_quantity"] == json!(2)
                && v["payment"]["refunded_minor"] == json!(value)
        })
        .await;
    assert!(
        view["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["summary"]
                .as_str()
                .unwrap_or_default()
                .starts_with("2 items cancelled")),
        "{view}"
    );

    // Repeating the request replays the first answer; nothing is refunded twice.
    let again = cancel_lines(
        &f,
        &order_id,
        "cancel-mugs",
        json!({"lines": [{"line_no": 2, "quantity": 2}], "reason": "customer_request", "note": "changed my mind"}),
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        f.world
            .env
            .payloads_of(&order_id, "RefundRequested")
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_shipped_units_is_refused_naming_the_line() {
    let f = FulfillmentWorld::start("cancel_shipped", &[]).await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "CANCEL-SHIP-1",
            &[("TEE-RED-M", 2)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    f.pack_all(&order_id, 1).await;
    f.parcels(&order_id, 1).await;

    let shipped = cancel_lines(
        &f,
        &order_id,
        "cancel-shipped",
        json!({"lines": [{"line_no": 1, "quantity": 1}], "reason": "customer_request"}),
    )
    .await;
    assert_eq!(shipped.status, 422, "{}", shipped.describe());
    assert_eq!(only_field(&shipped), "lines[0].quantity");
    assert!(shipped.text().contains("only 0 of the 2 units of line 1"));

    // Bad input is named by field, before the order is looked at.
    for (body, field) in [
        (
            json!({"lines": [{"line_no": 1, "quantity": 0}], "reason": "other"}),
            "lines[0].quantity",
        ),
        (
            json!({"lines": [{"line_no": 1, "quantity": -2}], "reason": "other"}),
            "lines[0].quantity",
        ),
        (
            json!({"lines": [{"line_no": 7, "quantity": 1}], "reason": "other"}),
            "lines[0].line_no",
        ),
        (
            json!({"lines": [{"line_no": 1, "quantity": 1}], "reason": "whim"}),
            "reason",
        ),
        (json!({"lines": [], "reason": "other"}), "lines"),
    ] {
        let response =
            cancel_lines(&f, &order_id, &format!("bad-{field}-{body}"), body.clone()).await;
        assert_eq!(response.status, 422, "{body}: {}", response.describe());
        assert_eq!(only_field(&response), field, "{body}");
    }

    // The whole order cannot be cancelled either: a parcel left.
    let whole = f
        .world
        .api
        .cancel_order(
            &order_id,
            "cancel-whole",
            &json!({"reason": "customer_request"}),
        )
        .await;
    assert_eq!(whole.status, 409, "{}", whole.describe());
    // Nothing was refunded.
    assert!(f
        .world
        .env
        .payloads_of(&order_id, "RefundRequested")
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_pick_nobody_can_fill_is_refunded() {
    let f = FulfillmentWorld::start("short_refund", &[]).await;
    f.world.restock("TEE-RED-M", "wh-east", 2).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "SHORT-REFUND-1",
            &[("TEE-RED-M", 2)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    let tasks = f.tasks(&order_id, 1).await;
    let fid = tasks[0]["fulfillment_id"].as_str().unwrap().to_owned();
    f.world
        .wait_for_event(&order_id, "PaymentCaptured", 1)
        .await;
    // The node finds one tee; no other node has any.
    f.node(
        &fid,
        json!({"type": "short_picked", "missing": [{"line_no": 1, "sku": "TEE-RED-M", "quantity": 1}]}),
    )
    .await;
    let cancelled = f
        .world
        .wait_for_event(&order_id, "FulfillmentLinesCancelled", 1)
        .await;
    assert_eq!(cancelled[0]["lines"][0]["quantity"], json!(1));

    let placed_event = &f.world.env.payloads_of(&order_id, "OrderPlaced").await[0];
    let line_total = placed_event["lines"][0]["total"]["minor"].as_i64().unwrap();
    let requested = f
        .world
        .wait_for_event(&order_id, "RefundRequested", 1)
        .await;
    assert_eq!(requested[0]["kind"], json!("cancellation"));
    // One of two units: the drop in what the order is worth (EDITS.md, "Money"): the line's
    // total for the unit left, less its share of any order discount; shipping stays.
    let discounts: i64 = placed_event["discounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["amount"]["minor"].as_i64().unwrap())
        .sum();
    let share = |kept: i64| kept - discounts * kept / line_total;
    let one_unit = share(line_total) - share(line_total / 2);
    assert_eq!(
        requested[0]["amount"]["minor"],
        json!(one_unit),
        "{placed_event}"
    );
    let refunded = f
        .world
        .wait_for_event(&order_id, "PaymentRefunded", 1)
        .await;
    assert_eq!(refunded[0]["amount"]["minor"], json!(one_unit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncollected_pickup_is_cancelled_refunded_and_restocked() {
    let f = FulfillmentWorld::start("pickup_expiry", &[]).await;
    f.world.location("store-soho", "store", 1).await;
    f.world.restock("TEE-RED-M", "store-soho", 3).await;
    let mut body = multi_line_order("PICKUP-LATE-1", &[("TEE-RED-M", 1)], "pickup");
    body["shipping"]["pickup_location"] = json!("store-soho");
    let placed = f.world.place(&body).await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    let token = placed["tracking_token"].as_str().unwrap().to_owned();
    let grand_total = placed["totals"]["grand_total_minor"].as_i64().unwrap();
    let tasks = f.tasks(&order_id, 1).await;
    let fid = tasks[0]["fulfillment_id"].as_str().unwrap().to_owned();
    f.world
        .wait_for_event(&order_id, "PaymentCaptured", 1)
        .await;
    allocated_when(&f, "TEE-RED-M", "1 allocated", |a| a == 1).await;
    let collect_by = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    f.node(&fid, json!({"type": "picked"})).await;
    f.node(
        &fid,
        json!({"type": "ready_for_pickup", "collect_by": collect_by}),
    )
    .await;

    // Nobody comes: at the deadline the units are cancelled, the money goes back (shipping
    // too: nothing of the order is left) and the store's unit is free again.
    let cancelled = f
        .world
        .wait_for_event(&order_id, "OrderLinesCancelled", 1)
        .await;
    assert_eq!(cancelled[0]["reason"], json!("timeout"));
    assert_eq!(cancelled[0]["requested_by"], json!("fulfillment"));
    assert_eq!(cancelled[0]["value"]["minor"], json!(grand_total));
    let refunded = f
        .world
        .wait_for_event(&order_id, "PaymentRefunded", 1)
        .await;
    assert_eq!(refunded[0]["amount"]["minor"], json!(grand_total));
    allocated_when(&f, "TEE-RED-M", "released", |a| a == 0).await;
    let view = f
        .view_when(&order_id, "pickup cancelled and refunded", |v| {
            v["lines"][0]["cancelled_quantity"] == json!(1)
                && v["payment"]["refunded_minor"] == json!(grand_total)
        })
        .await;
    assert!(view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("cancelled (timeout)")));
    // Nothing of the order is left: it is cancelled (not "Ready for collection") everywhere.
    let cancelled = f.world.env.payloads_of(&order_id, "OrderCancelled").await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["reason"], json!("timeout"));
    crate::fully_cancelled::cancelled_everywhere(&f, &order_id, "PICKUP-LATE-1", &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_cancelled_before_capture_on_shipment_are_never_captured_and_a_fully_cancelled_hold_is_voided(
) {
    let f = FulfillmentWorld::start(
        "cancel_before_capture",
        &[("WAYBILL_CAPTURE_MODE", "on-shipment")],
    )
    .await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    f.world.restock("MUG-BLK", "wh-west", 5).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "CANCEL-AUTH-1",
            &[("TEE-RED-M", 1), ("MUG-BLK", 1)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    let tasks = f.tasks(&order_id, 2).await;
    let tee = task_at(&tasks, "wh-east")["fulfillment_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The mug is cancelled while only authorized; then the tee ships.
    let response = cancel_lines(
        &f,
        &order_id,
        "cancel-mug",
        json!({"lines": [{"line_no": 2, "quantity": 1}], "reason": "customer_request"}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.describe());
    let left = response.json()["current_total_minor"].as_i64().unwrap();
    f.node(&tee, json!({"type": "picked"})).await;
    f.node(&tee, json!({"type": "packed"})).await;
    let captured = f
        .world
        .wait_for_event(&order_id, "PaymentCaptured", 1)
        .await;
    assert_eq!(
        captured[0]["amount"]["minor"],
        json!(left),
        "only what is left is captured"
    );
    assert!(f
        .world
        .env
        .payloads_of(&order_id, "RefundRequested")
        .await
        .is_empty());

    // A second order cancelled entirely after confirmation: the hold is voided, stock released.
    let placed = f
        .world
        .place(&multi_line_order(
            "CANCEL-AUTH-2",
            &[("TEE-RED-M", 1)],
            "standard",
        ))
        .await;
    let second = placed["order_id"].as_str().unwrap().to_owned();
    f.tasks(&second, 1).await;
    let whole = f
        .world
        .api
        .cancel_order(
            &second,
            "cancel-all",
            &json!({"reason": "customer_request"}),
        )
        .await;
    assert_eq!(whole.status, 200, "{}", whole.describe());
    f.world.wait_for_event(&second, "PaymentVoided", 1).await;
    f.world
        .wait_for_event(&second, "CancelledUnitsReleased", 1)
        .await;
    assert!(f
        .world
        .env
        .payloads_of(&second, "PaymentCaptured")
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_cancelled_during_the_fulfillment_hold_never_reach_a_node() {
    let f =
        FulfillmentWorld::start("cancel_in_hold", &[("WAYBILL_FULFILLMENT_HOLD_SECS", "4")]).await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    f.world.restock("MUG-BLK", "wh-east", 5).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "CANCEL-HOLD-1",
            &[("TEE-RED-M", 2), ("MUG-BLK", 1)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    f.world.wait_for_event(&order_id, "OrderConfirmed", 1).await;
    let response = cancel_lines(
        &f,
        &order_id,
        "cancel-in-hold",
        json!({"lines": [{"line_no": 1, "quantity": 1}, {"line_no": 2, "quantity": 1}], "reason": "customer_request"}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.describe());
    let cancelled = f
        .world
        .wait_for_event(&order_id, "OrderLinesCancelled", 1)
        .await;
    assert!(
        cancelled[0]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["fulfillment_id"].is_null()),
        "nothing was routed yet: {cancelled:?}"
    );
    assert!(
        f.world
            .env
            .payloads_of(&order_id, "FulfillmentRouted")
            .await
            .is_empty(),
        "still in the hold"
    );

    // After the hold, only what is left is routed and sent to the node.
    let tasks = f.tasks(&order_id, 1).await;
    assert_eq!(
        tasks[0]["lines"],
        json!([{"line_no": 1, "sku": "TEE-RED-M", "quantity": 1}]),
        "{tasks:?}"
    );
    allocated_when(&f, "MUG-BLK", "released", |a| a == 0).await;
    allocated_when(&f, "TEE-RED-M", "one tee held", |a| a == 1).await;
}
