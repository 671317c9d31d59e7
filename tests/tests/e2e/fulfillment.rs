//! Fulfillment end to end: the real binary with the checkout and fulfillment workers, our
//! payment and logistics sandboxes; the tests act as nodes and carriers through the logistics
//! sandbox and look at what the customer sees in the tracking view.

use serde_json::{json, Value};
use waybill_e2e::fulfillment::{multi_line_order, FulfillmentWorld};
use waybill_e2e::{eventually, DEFAULT_DEADLINE};

fn ids(tasks: &[Value]) -> Vec<(String, String)> {
    tasks
        .iter()
        .map(|t| {
            (
                t["fulfillment_id"].as_str().unwrap_or_default().to_owned(),
                t["node_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn tracking_of(parcels: &[Value], shipment_suffix: &str) -> String {
    parcels
        .iter()
        .find(|p| {
            p["shipment_id"]
                .as_str()
                .unwrap_or_default()
                .starts_with(shipment_suffix)
        })
        .and_then(|p| p["tracking_number"].as_str())
        .expect("a parcel for the fulfillment order")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_order_ships_from_two_nodes_is_partial_until_both_arrive_then_auto_closes() {
    // About two seconds after the last delivery.
    let f = FulfillmentWorld::start("split_order", &[("WAYBILL_AUTO_CLOSE_DAYS", "0.00003")]).await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    f.world.restock("MUG-BLK", "wh-west", 5).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "SPLIT-1",
            &[("TEE-RED-M", 1), ("MUG-BLK", 1)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().expect("order id").to_owned();

    let tasks = f.pack_all(&order_id, 2).await;
    let mut nodes: Vec<String> = ids(&tasks).into_iter().map(|(_, n)| n).collect();
    nodes.sort();
    assert_eq!(
        nodes,
        ["wh-east", "wh-west"],
        "one fulfillment order per node"
    );
    let routed = f
        .world
        .env
        .payloads_of(&order_id, "FulfillmentRouted")
        .await;
    assert_eq!(routed.len(), 2);
    for r in &routed {
        assert_eq!(r["rule"], json!("ship_to_customer"));
        let factors: Vec<&str> = r["score"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["factor"].as_str().unwrap())
            .collect();
        assert_eq!(
            factors,
            ["carbon", "cost", "cutoff", "distance", "eta", "stock"],
            "score parts recorded"
        );
    }

    let parcels = f.parcels(&order_id, 2).await;
    let (first, second) = (ids(&tasks)[0].0.clone(), ids(&tasks)[1].0.clone());
    let first_parcel = tracking_of(&parcels, &first);
    let second_parcel = tracking_of(&parcels, &second);
    let view = f
        .view_when(&order_id, "both parcels shipped", |v| {
            v["shipments"].as_array().is_some_and(|s| s.len() == 2)
        })
        .await;
    assert_eq!(view["delivery"], json!("shipped"));
    assert!(view["shipments"][0]["tracking_url"]
        .as_str()
        .unwrap()
        .contains("/carrier/track/"));

    let answer = f
        .scan(
            &first_parcel,
            json!({"status_code": "DL", "received_by": "front porch"}),
        )
        .await;
    assert_eq!(answer["waybill_response"]["outcome"], json!("applied"));
    let view = f
        .view_when(&order_id, "one parcel delivered", |v| {
            v["delivery"] == json!("partially_delivered")
        })
        .await;
    let delivered = view["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["status"] == json!("delivered"))
        .expect("delivered parcel");
    assert_eq!(
        delivered["delivered_to"],
        json!("front porch"),
        "proof of delivery"
    );

    f.scan(
        &second_parcel,
        json!({"status_code": "DL", "received_by": "J. Smith"}),
    )
    .await;
    f.view_when(&order_id, "delivered", |v| {
        v["delivery"] == json!("delivered") || v["delivery"] == json!("closed")
    })
    .await;
    let view = f
        .view_when(&order_id, "auto-closed", |v| {
            v["delivery"] == json!("closed")
        })
        .await;
    assert_eq!(
        view["timeline"].as_array().unwrap().last().unwrap()["summary"],
        json!("Order complete")
    );
    let closed = f.world.env.payloads_of(&order_id, "OrderClosed").await;
    assert_eq!(closed.len(), 1, "closed once");
    // Both deliveries taught the routing's ETA (one row per carrier and zone distance).
    let learned: i64 = sqlx::query_scalar("SELECT count(*) FROM carrier_transit_samples")
        .fetch_one(f.world.env.db())
        .await
        .expect("transit stats");
    assert_eq!(learned, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_webhooks_out_of_order_and_duplicated_keep_the_latest_scan() {
    let f = FulfillmentWorld::start("carrier_order", &[]).await;
    f.world.restock("TEE-RED-M", "wh-east", 5).await;
    let placed = f
        .world
        .place(&multi_line_order("SCAN-1", &[("TEE-RED-M", 2)], "standard"))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    f.pack_all(&order_id, 1).await;
    let parcels = f.parcels(&order_id, 1).await;
    let parcel = parcels[0]["tracking_number"].as_str().unwrap().to_owned();

    // Scan times in the past: a time ahead of receipt beyond the skew window is refused.
    let t = |minutes: i64| (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339();
    let out = f.scan(&parcel, json!({"status_code": "OD", "event_id": "scan-od", "carrier_time": t(-10), "location": "Springfield"})).await;
    assert_eq!(out["waybill_response"]["outcome"], json!("applied"));
    // Older scan arrives late: acknowledged, not applied.
    let late = f.scan(&parcel, json!({"status_code": "IT", "event_id": "scan-it", "carrier_time": t(-30), "location": "Chicago hub"})).await;
    assert_eq!(late["waybill_status"], json!(200));
    assert_eq!(
        late["waybill_response"]["outcome"],
        json!("ignored"),
        "{late}"
    );
    // The same scan delivered again: a duplicate.
    let again = f
        .scan(
            &parcel,
            json!({"status_code": "OD", "event_id": "scan-od", "carrier_time": t(-10)}),
        )
        .await;
    assert_eq!(
        again["waybill_response"]["outcome"],
        json!("duplicate"),
        "{again}"
    );

    let view = f
        .view_when(&order_id, "out for delivery", |v| {
            v["shipments"][0]["status"] == json!("out_for_delivery")
        })
        .await;
    let progress = view["shipments"][0]["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 1, "one scan applied: {progress:?}");
    assert_eq!(
        f.world
            .env
            .payloads_of(&order_id, "ShipmentTracked")
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bopis_order_is_ready_then_picked_up_with_its_code() {
    let f = FulfillmentWorld::start("bopis", &[]).await;
    f.world.location("store-soho", "store", 1).await;
    f.world.restock("TEE-RED-M", "store-soho", 3).await;
    let mut body = multi_line_order("BOPIS-1", &[("TEE-RED-M", 1)], "pickup");
    body["shipping"]["pickup_location"] = json!("store-soho");
    let placed = f.world.place(&body).await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    let tasks = f.tasks(&order_id, 1).await;
    assert_eq!(tasks[0]["node_id"], json!("store-soho"));
    assert_eq!(tasks[0]["pickup"], json!(true));
    let fid = tasks[0]["fulfillment_id"].as_str().unwrap().to_owned();
    f.node(&fid, json!({"type": "picked"})).await;
    let ready = f.node(&fid, json!({"type": "ready_for_pickup"})).await;
    let code = ready["pickup_code"]
        .as_str()
        .expect("the store's code")
        .to_owned();

    let view = f
        .view_when(&order_id, "ready for pickup", |v| {
            v["pickup"]["ready"] == json!(true)
        })
        .await;
    let hint = view["pickup"]["code_hint"].as_str().unwrap();
    assert!(
        hint.ends_with(&code[code.len() - 2..]) && !hint.contains(&code),
        "only a hint: {hint}"
    );
    assert!(view["pickup"]["instructions"]
        .as_str()
        .unwrap()
        .contains("collection desk"));

    let wrong = f
        .node(&fid, json!({"type": "picked_up", "pickup_code": "000000x"}))
        .await;
    assert_eq!(
        wrong["waybill_response"]["outcome"],
        json!("ignored"),
        "{wrong}"
    );
    let right = f
        .node(&fid, json!({"type": "picked_up", "pickup_code": code}))
        .await;
    assert_eq!(
        right["waybill_response"]["outcome"],
        json!("applied"),
        "{right}"
    );
    let view = f
        .view_when(&order_id, "collected", |v| {
            v["delivery"] == json!("delivered")
        })
        .await;
    assert!(view["pickup"]["picked_up_at"].is_string());
    assert!(
        f.parcels(&order_id, 0).await.is_empty(),
        "no carrier label for a pickup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_pick_is_rerouted_to_another_node() {
    let f = FulfillmentWorld::start("short_pick", &[]).await;
    // Either warehouse can ship the whole order; the nearer one gets it.
    f.world.restock("TEE-RED-M", "wh-east", 2).await;
    f.world.restock("TEE-RED-M", "wh-west", 2).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "SHORT-1",
            &[("TEE-RED-M", 2)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    let tasks = f.tasks(&order_id, 1).await;
    let first_node = tasks[0]["node_id"].as_str().unwrap().to_owned();
    let other_node = if first_node == "wh-east" {
        "wh-west"
    } else {
        "wh-east"
    };
    let fid = tasks[0]["fulfillment_id"].as_str().unwrap().to_owned();
    let short = f
        .node(
            &fid,
            json!({"type": "short_picked",
        "missing": [{"line_no": 1, "sku": "TEE-RED-M", "quantity": 1}]}),
        )
        .await;
    assert_eq!(
        short["waybill_response"]["outcome"],
        json!("applied"),
        "{short}"
    );

    let tasks = f.tasks(&order_id, 2).await;
    let rerouted = tasks
        .iter()
        .find(|t| t["fulfillment_id"] != json!(fid))
        .expect("a second task");
    assert_eq!(rerouted["node_id"], json!(other_node));
    assert_eq!(rerouted["lines"][0]["quantity"], json!(1));
    let routed = f
        .world
        .env
        .payloads_of(&order_id, "FulfillmentRouted")
        .await;
    assert_eq!(
        routed[1]["cause"],
        json!({"kind": "short_pick", "from_fulfillment_id": fid})
    );
    // The re-routed unit's allocation moved with it: one unit held at each node.
    let stock = f
        .world
        .api
        .command_get("/v1/inventory/stock/TEE-RED-M", waybill_e2e::ADMIN_KEY)
        .await
        .json();
    let allocated_at = |node: &str| {
        stock["levels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["location_id"] == json!(node))
            .map_or(0, |l| l["allocated"].as_i64().unwrap())
    };
    assert_eq!(
        (allocated_at(&first_node), allocated_at(other_node)),
        (1, 1),
        "{stock}"
    );

    // Both nodes pack what they have: two parcels of one unit each.
    for task in &tasks {
        let id = task["fulfillment_id"].as_str().unwrap();
        f.node(id, json!({"type": "packed"})).await;
    }
    let parcels = f.parcels(&order_id, 2).await;
    assert_eq!(parcels.len(), 2);
    let view = f
        .view_when(&order_id, "shipped", |v| v["delivery"] == json!("shipped"))
        .await;
    assert_eq!(view["lines"][0]["cancelled_quantity"], json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_exception_retries_the_handoff_then_alerts() {
    let f = FulfillmentWorld::start("exception", &[("WAYBILL_MAX_HANDOFF_RETRIES", "1")]).await;
    f.world.restock("TEE-RED-M", "wh-east", 2).await;
    let placed = f
        .world
        .place(&multi_line_order("EXC-1", &[("TEE-RED-M", 1)], "standard"))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    f.pack_all(&order_id, 1).await;
    let parcel = f.parcels(&order_id, 1).await[0]["tracking_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = f
        .scan(
            &parcel,
            json!({"status_code": "FH", "description": "Nobody home"}),
        )
        .await;
    assert_eq!(
        first["waybill_response"]["outcome"],
        json!("applied"),
        "{first}"
    );
    let pool = f.world.env.db().clone();
    let id = order_id.clone();
    eventually("a handoff retry", DEFAULT_DEADLINE, || {
        let (pool, id) = (pool.clone(), id.clone());
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'ShipmentExceptionHandled'")
                .bind(format!("order-{id}")).fetch_one(&pool).await.map_err(|e| e.to_string())?;
            if n >= 1 { Ok(()) } else { Err(format!("{n}")) }
        }
    })
    .await;
    let url = format!("{}/carrier/track/{parcel}", f.logistics.logistics_url());
    let track = f.world.api.get(&url).await.json();
    assert_eq!(
        track["parcel"]["handoff_retries"],
        json!(1),
        "the carrier was asked again: {track}"
    );
    f.scan(
        &parcel,
        json!({"status_code": "FH", "description": "Nobody home again"}),
    )
    .await;
    let view = f
        .view_when(&order_id, "alert", |v| {
            v["timeline"].to_string().contains("looking into a problem")
        })
        .await;
    assert_eq!(view["shipments"][0]["status"], json!("exception"));
    let handled = f
        .world
        .env
        .payloads_of(&order_id, "ShipmentExceptionHandled")
        .await;
    let actions: Vec<&str> = handled
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["retry_handoff", "alert"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_or_malformed_logistics_webhooks_are_refused_with_problem_json() {
    let f = FulfillmentWorld::start("logistics_bad_input", &[]).await;
    let api = &f.world.api;
    let url = format!("{}/v1/webhooks/carrier", f.world.waybill.command_url());
    let unsigned = api.post_plain(&url, &json!({"id": "x"})).await;
    assert_eq!(unsigned.status, 401, "{}", unsigned.describe());
    assert_eq!(
        unsigned.problem_slug().as_deref(),
        Some("invalid-signature")
    );

    let secret = f.world.env.logistics_webhook_secret.as_bytes().to_vec();
    let body = serde_json::to_vec(&json!({
        "id": "scan-1", "order_id": "0190f0c4-0000-7000-8000-000000000001",
        "shipment_id": "s", "tracking_number": "t", "status_code": "ZZ",
        "carrier_time": "2026-11-26T10:00:00Z", "description": "?"
    }))
    .unwrap();
    let signature =
        waybill_write_side::payment::webhook::sign(&secret, chrono::Utc::now().timestamp(), &body);
    let response = reqwest::Client::new()
        .post(&url)
        .header("waybill-logistics-signature", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem.to_string().contains("status_code"),
        "names the field: {problem}"
    );
}

/// A world capturing on shipment, and a card order for one unit at each of two nodes
/// (`wh-east`, `wh-west`): its id and its two node tasks.
async fn on_shipment_order_at_two_nodes(
    world: &str,
    channel_ref: &str,
) -> (FulfillmentWorld, String, Vec<Value>) {
    let f = FulfillmentWorld::start(world, &[("WAYBILL_CAPTURE_MODE", "on-shipment")]).await;
    f.world.restock("TEE-RED-M", "wh-east", 2).await;
    f.world.restock("MUG-BLK", "wh-west", 2).await;
    let placed = f
        .world
        .place(&multi_line_order(
            channel_ref,
            &[("TEE-RED-M", 1), ("MUG-BLK", 1)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"]
        .as_str()
        .expect("placement answers an order id")
        .to_owned();
    let tasks = f.tasks(&order_id, 2).await;
    (f, order_id, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_on_shipment_captures_when_the_first_parcel_ships() {
    let (f, order_id, tasks) =
        on_shipment_order_at_two_nodes("capture_on_shipment", "CAPSHIP-1").await;
    let view = f
        .view_when(&order_id, "confirmed", |v| {
            v["status"] == json!("confirmed")
        })
        .await;
    assert_eq!(
        view["payment"]["state"],
        json!("authorized"),
        "nothing captured before shipping"
    );
    assert!(f
        .world
        .env
        .payloads_of(&order_id, "PaymentCaptured")
        .await
        .is_empty());

    // Only the first node packs: one parcel ships, the order is partially shipped and paid.
    let first = tasks[0]["fulfillment_id"].as_str().unwrap();
    f.node(first, json!({"type": "packed"})).await;
    f.parcels(&order_id, 1).await;
    let view = f
        .view_when(&order_id, "captured on shipment", |v| {
            v["payment"]["state"] == json!("captured")
        })
        .await;
    assert_eq!(view["delivery"], json!("partially_shipped"));
    assert_eq!(
        f.world
            .env
            .payloads_of(&order_id, "PaymentCaptured")
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_the_gateway_refuses_for_good_is_recorded_holds_fulfillment_and_flags_the_order()
{
    let (f, order_id, tasks) = on_shipment_order_at_two_nodes("capture_refused", "CAPFAIL-1").await;
    f.view_when(&order_id, "authorized, awaiting shipment", |v| {
        v["payment"]["state"] == json!("authorized")
    })
    .await;

    // The authorization is voided at the gateway behind Waybill's back.
    let authorized = f
        .world
        .env
        .payloads_of(&order_id, "PaymentAuthorized")
        .await;
    let authorization = authorized[0]["authorization_id"].as_str().unwrap();
    let voided = reqwest::Client::new()
        .post(format!(
            "{}/v1/authorizations/{authorization}/void",
            f.world.sandbox.sandbox_url()
        ))
        .bearer_auth(&f.world.env.payment_api_key)
        .header("Idempotency-Key", format!("{order_id}:outside-void"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(voided.status(), 200);

    // The first parcel ships: the capture is refused for good, once, and recorded as a fact.
    let first = tasks[0]["fulfillment_id"].as_str().unwrap();
    f.node(first, json!({"type": "packed"})).await;
    f.parcels(&order_id, 1).await;
    let view = f
        .view_when(&order_id, "capture failed", |v| {
            v["payment"]["state"] == json!("capture_failed")
        })
        .await;
    assert_eq!(view["payment"]["captured_minor"], json!(0));
    let failed = f
        .world
        .env
        .payloads_of(&order_id, "PaymentCaptureFailed")
        .await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["code"], json!("authorization_voided"));
    assert_eq!(failed[0]["authorization_id"], json!(authorization));

    // Agents find it among the orders that need a look.
    let api = &f.world.api;
    let order = order_id.clone();
    waybill_e2e::eventually("flagged for agents", DEFAULT_DEADLINE, || {
        let order = order.clone();
        async move {
            let response = api
                .query_get(
                    "/v1/search/orders",
                    &[("has_exception", "true"), ("q", &order)],
                    Some(waybill_e2e::AGENT_KEY),
                )
                .await;
            let body = response.json();
            let tags = body["hits"][0]["document"]["tags"].to_string();
            if tags.contains("capture_failed") {
                Ok(())
            } else {
                Err(body.to_string())
            }
        }
    })
    .await;

    // The second node's packed parcel is held, not shipped; nothing is retried at the gateway.
    let second = tasks[1]["fulfillment_id"].as_str().unwrap();
    f.node(second, json!({"type": "packed"})).await;
    let pool = f.world.env.db().clone();
    let id: uuid::Uuid = order_id.parse().unwrap();
    waybill_e2e::eventually(
        "the flow parks on the payment hold",
        DEFAULT_DEADLINE,
        || {
            let pool = pool.clone();
            async move {
                // A wake-up sets the stage to `run`; `payment_hold` is the worker's answer after it.
                let stage: Option<String> =
                    sqlx::query_scalar("SELECT stage FROM fulfillment_flows WHERE order_id = $1")
                        .bind(id)
                        .fetch_optional(&pool)
                        .await
                        .map_err(|e| e.to_string())?;
                let packed: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM events WHERE stream_id = $1 \
                 AND event_type = 'FulfillmentProgressed' AND payload->>'progress' = 'packed'",
                )
                .bind(format!("order-{id}"))
                .fetch_one(&pool)
                .await
                .map_err(|e| e.to_string())?;
                match (stage.as_deref(), packed) {
                    (Some("payment_hold"), 2) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    assert_eq!(
        f.world
            .env
            .payloads_of(&order_id, "ShipmentCreated")
            .await
            .len(),
        1,
        "the held order's second parcel did not ship"
    );
    assert_eq!(
        f.world
            .env
            .payloads_of(&order_id, "PaymentCaptureFailed")
            .await
            .len(),
        1
    );
    let metrics = api
        .get(&format!("{}/metrics", f.world.waybill.metrics_url()))
        .await
        .text();
    assert!(
        metrics.contains("waybill_payment_capture_failures_total{code=\"authorization_voided\"}"),
        "alert metric"
    );
}

/// A pickup order goes to the store the customer chose (`shipping.pickup_location`), not to
/// whichever store routing scores best, and the tracking view and page name that store from
/// placement on. A pickup order without a store, with a store that offers no pickup, or a
/// shipped order naming a store is refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pickup_order_is_collected_at_the_store_the_customer_chose() {
    let f = FulfillmentWorld::start("bopis_chosen_store", &[]).await;
    // Chicago is nearer the customer (and has the stock), so it would win on score.
    f.world.location("store-chicago", "store", 1).await;
    f.world.location("store-soho", "store", 8).await;
    f.world.restock("TEE-RED-M", "store-chicago", 3).await;
    f.world.restock("TEE-RED-M", "store-soho", 3).await;

    let refused = |reference: &'static str, shipping: Value| {
        let api = &f.world.api;
        async move {
            let mut body = multi_line_order(reference, &[("TEE-RED-M", 1)], "pickup");
            body["shipping"] = shipping;
            api.place_order(&format!("place-{reference}"), &body).await
        }
    };
    for (reference, shipping) in [
        ("PICK-NONE", json!({"method": "pickup"})),
        (
            "PICK-NOWHERE",
            json!({"method": "pickup", "pickup_location": "store-tokyo"}),
        ),
        (
            "PICK-WAREHOUSE",
            json!({"method": "pickup", "pickup_location": "wh-east"}),
        ),
        (
            "PICK-SHIPPED",
            json!({"method": "standard", "pickup_location": "store-soho"}),
        ),
    ] {
        let response = refused(reference, shipping).await;
        assert_eq!(response.status, 422, "{reference}: {}", response.describe());
        let mut fields = response.problem_fields();
        fields.dedup();
        assert_eq!(
            fields,
            ["shipping.pickup_location"],
            "{reference}: {}",
            response.describe()
        );
    }

    let mut body = multi_line_order("PICK-SOHO-1", &[("TEE-RED-M", 1)], "pickup");
    body["shipping"]["pickup_location"] = json!("store-soho");
    let placed = f.world.place(&body).await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    let token = placed["tracking_token"].as_str().unwrap().to_owned();
    let recorded = f.world.env.payloads_of(&order_id, "OrderPlaced").await;
    assert_eq!(
        recorded[0]["pickup_store"]["location_id"],
        json!("store-soho"),
        "{recorded:?}"
    );
    let view = f
        .view_when(&order_id, "the chosen store shows", |v| {
            v["pickup"]["store_name"] == json!("Waybill Soho")
        })
        .await;
    assert_eq!(view["pickup"]["ready"], json!(false));

    let tasks = f.tasks(&order_id, 1).await;
    assert_eq!(tasks[0]["node_id"], json!("store-soho"), "{tasks:?}");
    let routed = f
        .world
        .env
        .payloads_of(&order_id, "FulfillmentRouted")
        .await;
    assert_eq!(routed.len(), 1, "{routed:?}");
    assert_eq!(routed[0]["node_id"], json!("store-soho"));

    let page = f
        .world
        .api
        .get(&format!(
            "{}/track/{order_id}?token={token}",
            f.world.api.query_url
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let html = page.text();
    assert!(
        html.contains("Waybill Soho") && html.contains("120 Spring St"),
        "{html}"
    );
    assert!(!html.contains("Waybill Chicago"), "{html}");
}
