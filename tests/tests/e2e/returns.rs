//! Returns end to end: the real binary with the checkout and fulfillment workers and our
//! payment and logistics sandboxes. Tests deliver an order through the logistics sandbox, start
//! returns over the command API, act as the receiving node through the sandbox, and look at
//! what the customer sees (API answers, tracking view), the stock and the events in the store.

use serde_json::{json, Value};
use waybill_e2e::fulfillment::{multi_line_order, FulfillmentWorld};
use waybill_e2e::{eventually, AGENT_KEY, FINANCE_KEY, SERVICE_KEY};

/// Places an order of `skus` (all stocked at wh-east), packs it, delivers its parcel and
/// waits until the customer sees it delivered. Returns the order id and its placed body.
async fn delivered(f: &FulfillmentWorld, reference: &str, skus: &[(&str, u32)]) -> (String, Value) {
    for (sku, units) in skus {
        f.world.restock(sku, "wh-east", units + 5).await;
    }
    let placed = f
        .world
        .place(&multi_line_order(reference, skus, "standard"))
        .await;
    let order_id = placed["order_id"].as_str().expect("order id").to_owned();
    f.pack_all(&order_id, 1).await;
    let parcels = f.parcels(&order_id, 1).await;
    let tracking = parcels[0]["tracking_number"].as_str().expect("tracking");
    f.scan(
        tracking,
        json!({"status_code": "DL", "received_by": "front door"}),
    )
    .await;
    f.view_when(&order_id, "delivered", |v| {
        v["delivery"] == json!("delivered") || v["delivery"] == json!("closed")
    })
    .await;
    (order_id, placed)
}

async fn request_return(
    f: &FulfillmentWorld,
    order_id: &str,
    key: &str,
    bearer: &str,
    body: Value,
) -> waybill_e2e::HttpResponse {
    f.world
        .api
        .post_json(
            &format!("/v1/orders/{order_id}/returns"),
            bearer,
            key,
            &body,
        )
        .await
}

/// The fields a problem names, once each (`field` repeats the first of `errors`).
fn fields_of(response: &waybill_e2e::HttpResponse) -> Vec<String> {
    let mut fields = response.problem_fields();
    fields.dedup();
    fields
}

fn line(line_no: u32, quantity: i64, reason: &str) -> Value {
    json!({"line_no": line_no, "quantity": quantity, "reason": reason})
}

/// Acts as the receiving node: `report` is `{"type": "received"}` or `{"type": "inspected",
/// "lines": [...]}`.
async fn node_reports(f: &FulfillmentWorld, return_id: &str, report: Value) {
    let url = format!(
        "{}/sandbox/returns/{return_id}/report",
        f.logistics.logistics_url()
    );
    let response = f.world.api.post_plain(&url, &report).await;
    assert_eq!(response.status, 200, "{}", response.describe());
    let body = response.json();
    assert_eq!(body["waybill_status"], json!(200), "{body}");
    assert_eq!(
        body["waybill_response"]["outcome"],
        json!("applied"),
        "{body}"
    );
}

fn inspected(line_no: u32, sku: &str, accepted: u32, rejected: u32, resellable: u32) -> Value {
    json!({"line_no": line_no, "sku": sku, "accepted": accepted, "rejected": rejected, "resellable": resellable})
}

/// The tracking view's return `return_id` once `check` accepts it.
async fn return_view(
    f: &FulfillmentWorld,
    order_id: &str,
    return_id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let view = f
        .view_when(order_id, what, |v| {
            v["returns"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["rma"] == json!(return_id)))
                .is_some_and(&check)
        })
        .await;
    view["returns"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["rma"] == json!(return_id)).cloned())
        .expect("the return")
}

/// On-hand units of `sku` at `location`.
async fn on_hand(f: &FulfillmentWorld, sku: &str, location: &str) -> i64 {
    let response = f
        .world
        .api
        .command_get(
            &format!("/v1/inventory/stock/{sku}"),
            waybill_e2e::ADMIN_KEY,
        )
        .await;
    response.json()["levels"]
        .as_array()
        .and_then(|ls| {
            ls.iter()
                .find(|l| l["location_id"] == json!(location))
                .cloned()
        })
        .and_then(|l| l["on_hand"].as_i64())
        .unwrap_or(0)
}

fn sum(values: &[Value], field: &str) -> i64 {
    values
        .iter()
        .map(|v| {
            v["amount"]["minor"]
                .as_i64()
                .or_else(|| v[field].as_i64())
                .unwrap_or(0)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_return_refunds_the_returned_units_minus_fees_and_restocks_them() {
    let f = FulfillmentWorld::start("returns_partial", &[]).await;
    let (order_id, _) = delivered(&f, "RET-1", &[("TEE-RED-M", 2), ("MUG-BLK", 1)]).await;
    let before = on_hand(&f, "TEE-RED-M", "wh-east").await;

    let response = request_return(
        &f,
        &order_id,
        "return-1",
        SERVICE_KEY,
        json!({"lines": [line(1, 1, "changed_mind")], "resolution": "refund"}),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.describe());
    let body = response.json();
    let return_id = body["return_id"].as_str().expect("return id").to_owned();
    assert_eq!(return_id, format!("{order_id}-R1"));
    let paid = body["lines"][0]["paid_minor"].as_i64().expect("paid");
    assert!(paid > 0);
    let fees: Vec<(String, i64)> = body["fees"]
        .as_array()
        .expect("fees")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["amount_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fees,
        [
            ("return_shipping".to_owned(), 495),
            ("restocking".to_owned(), paid / 10)
        ],
        "changed mind: return shipping and 10 % restocking"
    );
    let expected = paid - 495 - paid / 10;
    assert_eq!(body["expected_refund_minor"], json!(expected));
    // The same request again is the same return.
    let replay = request_return(
        &f,
        &order_id,
        "return-1",
        SERVICE_KEY,
        json!({"lines": [line(1, 1, "changed_mind")], "resolution": "refund"}),
    )
    .await;
    assert_eq!(replay.json()["return_id"], json!(return_id));
    // One TEE is left to return; two is more than delivered minus returned.
    let more = request_return(
        &f,
        &order_id,
        "return-1b",
        SERVICE_KEY,
        json!({"lines": [line(1, 2, "wrong_size")]}),
    )
    .await;
    assert_eq!(more.status, 422, "{}", more.describe());
    assert_eq!(fields_of(&more), ["lines[0].quantity"]);

    let ret = return_view(&f, &order_id, &return_id, "label issued", |r| {
        r["label_url"].is_string()
    })
    .await;
    assert_eq!(ret["status"], json!("label_issued"));
    assert!(
        ret["instructions"].as_str().unwrap().contains("wh-east"),
        "{ret}"
    );

    node_reports(&f, &return_id, json!({"type": "received"})).await;
    node_reports(
        &f,
        &return_id,
        json!({"type": "inspected", "lines": [inspected(1, "TEE-RED-M", 1, 0, 1)]}),
    )
    .await;
    let ret = return_view(&f, &order_id, &return_id, "refunded", |r| {
        r["status"] == json!("refunded")
    })
    .await;
    assert_eq!(ret["refunded_minor"], json!(expected));
    let refunds = f
        .world
        .wait_for_event(&order_id, "PaymentRefunded", 1)
        .await;
    assert_eq!(refunds[0]["amount"]["minor"], json!(expected));
    let restocked = f.world.env.payloads_of(&order_id, "ReturnRestocked").await;
    assert_eq!(restocked[0]["location_id"], json!("wh-east"));
    assert_eq!(
        on_hand(&f, "TEE-RED-M", "wh-east").await,
        before + 1,
        "restocked"
    );
    // Finance sees the return rate of the SKU by reason (ClickHouse, via the analytics view).
    let today = chrono::Utc::now().date_naive().to_string();
    let api = &f.world.api;
    let rate = eventually(
        "the return rate in the finance metrics",
        waybill_e2e::checkout::SETTLE,
        || async {
            let response = api
                .query_get(
                    "/v1/finance/metrics",
                    &[("from", &today), ("to", &today)],
                    Some(FINANCE_KEY),
                )
                .await;
            let body = response.json();
            body["return_rates"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["sku"] == json!("TEE-RED-M")).cloned())
                .ok_or_else(|| response.describe())
        },
    )
    .await;
    assert_eq!(rate["reason"], json!("changed_mind"));
    assert_eq!(
        (rate["returned"].as_u64(), rate["sold"].as_u64()),
        (Some(1), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_return_refunds_again_and_no_refund_exceeds_what_was_captured() {
    let f = FulfillmentWorld::start("returns_second", &[]).await;
    let (order_id, placed) = delivered(&f, "RET-2", &[("TEE-RED-M", 3)]).await;
    let captured = placed["totals"]["grand_total_minor"]
        .as_i64()
        .expect("total");

    // First return: one damaged unit, no fees, inspected by an agent (the node says nothing).
    let first = request_return(
        &f,
        &order_id,
        "r2-a",
        AGENT_KEY,
        json!({"lines": [line(1, 1, "damaged")]}),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.describe());
    let first = first.json();
    assert_eq!(
        first["fees"],
        json!([]),
        "damaged is the seller's fault: no fees"
    );
    let r1 = first["return_id"].as_str().unwrap().to_owned();
    let paid_one = first["lines"][0]["paid_minor"].as_i64().unwrap();
    // An inspection that does not add up, or of a return that does not exist, is refused.
    let inspect = |return_id: String, key: &'static str, lines: Value| {
        let api = &f.world.api;
        let path = format!("/v1/orders/{order_id}/returns/{return_id}/inspection");
        async move {
            api.post_json(&path, AGENT_KEY, key, &json!({ "lines": lines }))
                .await
        }
    };
    let wrong = inspect(
        r1.clone(),
        "r2-a-wrong",
        json!([inspected(1, "TEE-RED-M", 2, 0, 0)]),
    )
    .await;
    assert_eq!(wrong.status, 422, "{}", wrong.describe());
    assert_eq!(fields_of(&wrong), ["lines[0].accepted"]);
    // A line the return does not have, or another SKU than the returned line's: the field
    // that names it.
    let no_line = inspect(
        r1.clone(),
        "r2-a-no-line",
        json!([
            inspected(1, "TEE-RED-M", 1, 0, 0),
            inspected(7, "TEE-RED-M", 1, 0, 0)
        ]),
    )
    .await;
    assert_eq!(no_line.status, 422, "{}", no_line.describe());
    assert_eq!(fields_of(&no_line), ["lines[1].line_no"]);
    let other_sku = inspect(
        r1.clone(),
        "r2-a-other-sku",
        json!([inspected(1, "MUG-BLK", 1, 0, 0)]),
    )
    .await;
    assert_eq!(other_sku.status, 422, "{}", other_sku.describe());
    assert_eq!(fields_of(&other_sku), ["lines[0].sku"]);
    let unknown = inspect(
        format!("{order_id}-R9"),
        "r2-a-unknown",
        json!([inspected(1, "TEE-RED-M", 1, 0, 0)]),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.describe());
    assert_eq!(unknown.problem_slug().as_deref(), Some("return-not-found"));
    let inspection = f
        .world
        .api
        .post_json(
            &format!("/v1/orders/{order_id}/returns/{r1}/inspection"),
            AGENT_KEY,
            "r2-a-inspect",
            &json!({"lines": [inspected(1, "TEE-RED-M", 1, 0, 0)]}),
        )
        .await;
    assert_eq!(inspection.status, 200, "{}", inspection.describe());
    f.world
        .wait_for_event(&order_id, "PaymentRefunded", 1)
        .await;

    // A goodwill refund takes nearly all that is left, so the next return's refund is capped.
    let left = captured - paid_one;
    let goodwill = f
        .world
        .api
        .post_json(
            &format!("/v1/orders/{order_id}/refunds"),
            AGENT_KEY,
            "r2-goodwill",
            &json!({"amount_minor": left - 100, "currency": "USD", "reason": "late"}),
        )
        .await;
    assert_eq!(goodwill.status, 202, "{}", goodwill.describe());
    f.world
        .wait_for_event(&order_id, "PaymentRefunded", 2)
        .await;

    let second = request_return(
        &f,
        &order_id,
        "r2-b",
        SERVICE_KEY,
        json!({"lines": [line(1, 2, "wrong_item")]}),
    )
    .await;
    assert_eq!(second.status, 201, "{}", second.describe());
    let second = second.json();
    let r2 = second["return_id"].as_str().unwrap().to_owned();
    assert_eq!(r2, format!("{order_id}-R2"));
    assert!(second["expected_refund_minor"].as_i64().unwrap() > 100);
    node_reports(
        &f,
        &r2,
        json!({"type": "inspected", "lines": [inspected(1, "TEE-RED-M", 2, 0, 2)]}),
    )
    .await;
    let ret = return_view(&f, &order_id, &r2, "second refund", |r| {
        r["status"] == json!("refunded")
    })
    .await;
    assert_eq!(
        ret["refund_minor"],
        json!(100),
        "capped at what was still refundable"
    );
    let refunds = f
        .world
        .wait_for_event(&order_id, "PaymentRefunded", 3)
        .await;
    let refunded = sum(&refunds, "amount");
    assert_eq!(
        refunded, captured,
        "everything captured, and not a cent more"
    );
    let decided = f
        .world
        .env
        .payloads_of(&order_id, "ReturnRefundDecided")
        .await;
    assert_eq!(decided.len(), 2);
    assert_eq!(decided[0]["amount"]["minor"], json!(paid_one));
    // Nothing is left to refund: an agent's refund is refused naming the amount.
    let more = f
        .world
        .api
        .post_json(
            &format!("/v1/orders/{order_id}/refunds"),
            AGENT_KEY,
            "r2-more",
            &json!({"amount_minor": 1, "currency": "USD", "reason": "x"}),
        )
        .await;
    assert_eq!(more.status, 422, "{}", more.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_inspection_refunds_nothing_for_the_rejected_units() {
    let f = FulfillmentWorld::start("returns_rejected", &[]).await;
    let (order_id, _) = delivered(&f, "RET-3", &[("TEE-RED-M", 2), ("MUG-BLK", 1)]).await;
    let before = on_hand(&f, "TEE-RED-M", "wh-east").await;
    let response = request_return(
        &f,
        &order_id,
        "r3",
        SERVICE_KEY,
        json!({"lines": [line(1, 2, "not_as_described"), line(2, 1, "not_as_described")]}),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.describe());
    let body = response.json();
    let return_id = body["return_id"].as_str().unwrap().to_owned();
    let tee_paid = body["lines"][0]["paid_minor"].as_i64().unwrap();
    node_reports(&f, &return_id, json!({"type": "received"})).await;
    // One tee accepted (resellable), one tee worn, the mug broken by the customer.
    node_reports(
        &f,
        &return_id,
        json!({"type": "inspected", "lines": [
            inspected(1, "TEE-RED-M", 1, 1, 1),
            inspected(2, "MUG-BLK", 0, 1, 0),
        ]}),
    )
    .await;
    let ret = return_view(&f, &order_id, &return_id, "refunded", |r| {
        r["status"] == json!("refunded")
    })
    .await;
    assert_eq!(ret["accepted_units"], json!(1));
    assert_eq!(ret["rejected_units"], json!(2));
    assert_eq!(
        ret["refunded_minor"],
        json!(tee_paid / 2),
        "one tee, nothing for the rest"
    );
    let refunds = f
        .world
        .wait_for_event(&order_id, "PaymentRefunded", 1)
        .await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["amount"]["minor"], json!(tee_paid / 2));
    assert_eq!(
        on_hand(&f, "TEE-RED-M", "wh-east").await,
        before + 1,
        "only the resellable tee"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_outside_the_window_of_non_returnable_items_or_more_than_delivered_are_refused_naming_the_field(
) {
    // A window of about ten seconds, so the test can outlive it.
    let policy = std::env::temp_dir().join(format!("returns-policy-{}.json", std::process::id()));
    let text = include_str!("../../../write-side/returns-policy.json")
        .replace("\"window_days\": 30", "\"window_days\": 0.00012");
    std::fs::write(&policy, text).expect("write policy");
    let policy_path = policy.to_string_lossy().into_owned();
    let f = FulfillmentWorld::start(
        "returns_refused",
        &[("WAYBILL_RETURNS_POLICY", &policy_path)],
    )
    .await;
    for sku in ["TEE-RED-M", "GIFT-CARD-50"] {
        f.world.restock(sku, "wh-east", 5).await;
    }
    let placed = f
        .world
        .place(&multi_line_order(
            "RET-4",
            &[("TEE-RED-M", 1), ("GIFT-CARD-50", 1)],
            "standard",
        ))
        .await;
    let order_id = placed["order_id"].as_str().unwrap().to_owned();
    let refused = |response: waybill_e2e::HttpResponse| {
        assert_eq!(response.status, 422, "{}", response.describe());
        fields_of(&response)
    };
    // Nothing delivered yet.
    f.pack_all(&order_id, 1).await;
    let early = request_return(
        &f,
        &order_id,
        "r4-early",
        SERVICE_KEY,
        json!({"lines": [line(1, 1, "wrong_size")]}),
    )
    .await;
    assert_eq!(refused(early), ["lines[0].quantity"]);

    let parcels = f.parcels(&order_id, 1).await;
    f.scan(
        parcels[0]["tracking_number"].as_str().unwrap(),
        json!({"status_code": "DL"}),
    )
    .await;
    f.view_when(&order_id, "delivered", |v| {
        v["delivery"] == json!("delivered")
    })
    .await;
    let cases = [
        (
            json!({"lines": [line(1, 2, "wrong_size")]}),
            "lines[0].quantity",
        ),
        (
            json!({"lines": [line(1, 0, "wrong_size")]}),
            "lines[0].quantity",
        ),
        (
            json!({"lines": [line(1, -1, "wrong_size")]}),
            "lines[0].quantity",
        ),
        (
            json!({"lines": [line(2, 1, "wrong_size")]}),
            "lines[0].line_no",
        ),
        (
            json!({"lines": [line(7, 1, "wrong_size")]}),
            "lines[0].line_no",
        ),
        (json!({"lines": [line(1, 1, "bored")]}), "lines[0].reason"),
        (
            // An exchange must name its replacements (write-side/EXCHANGES.md).
            json!({"lines": [line(1, 1, "other")], "resolution": "exchange"}),
            "resolution.replacements",
        ),
        (
            json!({"lines": [line(1, 1, "other")], "waive_fees": true}),
            "waive_fees",
        ),
    ];
    for (i, (body, field)) in cases.into_iter().enumerate() {
        let response =
            request_return(&f, &order_id, &format!("r4-{i}"), SERVICE_KEY, body.clone()).await;
        assert_eq!(refused(response), [field], "{body}");
    }
    let unknown = request_return(
        &f,
        "0193a1b2-0000-7000-8000-000000000099",
        "r4-unknown",
        SERVICE_KEY,
        json!({"lines": [line(1, 1, "other")]}),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.describe());
    // Past the window, the line itself is no longer returnable.
    eventually(
        "the return window to pass",
        waybill_e2e::checkout::SETTLE,
        || async {
            let response = request_return(
                &f,
                &order_id,
                &format!("r4-late-{}", uuid::Uuid::now_v7()),
                SERVICE_KEY,
                // Too many while inside the window; refused for the window once past it.
                json!({"lines": [line(1, 5, "wrong_size")]}),
            )
            .await;
            let detail = response.json()["errors"][0]["detail"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if response.status == 422 && detail.contains("delivered more than") {
                Ok(fields_of(&response))
            } else {
                Err(response.describe())
            }
        },
    )
    .await
    .iter()
    .for_each(|field| assert_eq!(field, "lines[0].line_no"));
    assert!(f
        .world
        .env
        .payloads_of(&order_id, "ReturnRequested")
        .await
        .is_empty());
    let _ = std::fs::remove_file(policy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_may_return_only_their_own_order() {
    let f = FulfillmentWorld::start("returns_customer", &[]).await;
    let (order_id, _) = delivered(&f, "RET-5", &[("TEE-RED-M", 1)]).await;
    let body = json!({"lines": [line(1, 1, "wrong_size")]});
    // multi_line_order places it for customer id = its reference.
    let stranger = f.world.env.jwt("RET-OTHER", "customer");
    let theirs = request_return(&f, &order_id, "r5-a", &stranger, body.clone()).await;
    assert_eq!(theirs.status, 404, "{}", theirs.describe());
    let finance = request_return(&f, &order_id, "r5-b", FINANCE_KEY, body.clone()).await;
    assert_eq!(finance.status, 403, "{}", finance.describe());
    let owner = f.world.env.jwt("RET-5", "customer");
    let waive = request_return(
        &f,
        &order_id,
        "r5-c",
        &owner,
        json!({"lines": [line(1, 1, "wrong_size")], "waive_fees": true}),
    )
    .await;
    assert_eq!(fields_of(&waive), ["waive_fees"], "only agents waive fees");
    let mine = request_return(&f, &order_id, "r5-d", &owner, body).await;
    assert_eq!(mine.status, 201, "{}", mine.describe());
    let requested = f.world.env.payloads_of(&order_id, "ReturnRequested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["requested_by"], json!("RET-5"));
    // The customer cannot record the inspection.
    let return_id = mine.json()["return_id"].as_str().unwrap().to_owned();
    let inspect = f
        .world
        .api
        .post_json(
            &format!("/v1/orders/{order_id}/returns/{return_id}/inspection"),
            &owner,
            "r5-e",
            &json!({"lines": [inspected(1, "TEE-RED-M", 1, 0, 1)]}),
        )
        .await;
    assert_eq!(inspect.status, 403, "{}", inspect.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_return_holds_auto_close() {
    // Orders close about two seconds after their last delivery.
    let f =
        FulfillmentWorld::start("returns_hold", &[("WAYBILL_AUTO_CLOSE_DAYS", "0.00003")]).await;
    let (order_id, _) = delivered(&f, "RET-6", &[("TEE-RED-M", 1)]).await;
    let response = request_return(
        &f,
        &order_id,
        "r6",
        SERVICE_KEY,
        json!({"lines": [line(1, 1, "wrong_size")]}),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.describe());
    let return_id = response.json()["return_id"].as_str().unwrap().to_owned();
    return_view(&f, &order_id, &return_id, "label issued", |r| {
        r["label_url"].is_string()
    })
    .await;
    // The flow parks waiting for the node, not for the auto-close deadline.
    let db = f.world.env.db().clone();
    let order_uuid = uuid::Uuid::parse_str(&order_id).unwrap();
    let (stage, due_in) = eventually("the flow parked for the return", waybill_e2e::DEFAULT_DEADLINE, || {
        let db = db.clone();
        async move {
            let row: Option<(String, f64)> = sqlx::query_as(
                "SELECT stage, EXTRACT(EPOCH FROM due_at - now())::float8 FROM fulfillment_flows WHERE order_id = $1",
            )
            .bind(order_uuid)
            .fetch_optional(&db)
            .await
            .map_err(|e| e.to_string())?;
            match row {
                Some((stage, due)) if stage == "node" && due > 600.0 => Ok((stage, due)),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert_eq!(stage, "node");
    assert!(due_in > 600.0);
    let closes_before = f
        .world
        .env
        .payloads_of(&order_id, "OrderClosed")
        .await
        .len();
    let requested_at = f.world.env.event_types_of_order(&order_id).await;
    let open_from = requested_at
        .iter()
        .rposition(|t| t == "ReturnRequested")
        .unwrap();
    assert!(
        !requested_at[open_from..].iter().any(|t| t == "OrderClosed"),
        "no close while the return is open: {requested_at:?}"
    );
    node_reports(
        &f,
        &return_id,
        json!({"type": "inspected", "lines": [inspected(1, "TEE-RED-M", 1, 0, 1)]}),
    )
    .await;
    // Resolved: the order closes (again) after the auto-close period.
    let env = &f.world.env;
    eventually(
        "the order to close after the return",
        waybill_e2e::checkout::SETTLE,
        || async {
            let closes = env.payloads_of(&order_id, "OrderClosed").await.len();
            if closes > closes_before {
                Ok(())
            } else {
                Err(format!("{closes} closes"))
            }
        },
    )
    .await;
    let ret = return_view(&f, &order_id, &return_id, "refunded", |r| {
        r["status"] == json!("refunded")
    })
    .await;
    assert!(ret["refunded_minor"].as_i64().unwrap() > 0);
    let types = f.world.env.event_types_of_order(&order_id).await;
    let decided = types
        .iter()
        .position(|t| t == "ReturnRefundDecided")
        .unwrap();
    assert!(
        types[decided..].iter().any(|t| t == "OrderClosed"),
        "{types:?}"
    );
    assert_eq!(
        f.world
            .env
            .payloads_of(&order_id, "OrderClosed")
            .await
            .len(),
        closes_before + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_on_a_closed_order_reopens_it_and_it_closes_again_once_resolved() {
    // Orders close about two seconds after their last delivery (or resolved return).
    let f =
        FulfillmentWorld::start("returns_reopen", &[("WAYBILL_AUTO_CLOSE_DAYS", "0.00003")]).await;
    let (order_id, _) = delivered(&f, "RET-7", &[("TEE-RED-M", 2)]).await;
    f.view_when(&order_id, "closed", |v| v["delivery"] == json!("closed"))
        .await;
    let response = request_return(
        &f,
        &order_id,
        "r7",
        SERVICE_KEY,
        json!({"lines": [line(1, 1, "arrived_late")]}),
    )
    .await;
    assert_eq!(
        response.status,
        201,
        "returns stay allowed within the window: {}",
        response.describe()
    );
    let return_id = response.json()["return_id"].as_str().unwrap().to_owned();
    // The flow wakes for the return although the order had closed: the label is issued.
    let view = f
        .view_when(&order_id, "label for the reopened order", |v| {
            v["returns"][0]["label_url"].is_string()
        })
        .await;
    assert_eq!(view["delivery"], json!("delivered"), "reopened");
    node_reports(
        &f,
        &return_id,
        json!({"type": "inspected", "lines": [inspected(1, "TEE-RED-M", 1, 0, 1)]}),
    )
    .await;
    let view = f
        .view_when(&order_id, "closed again", |v| {
            v["delivery"] == json!("closed") && v["returns"][0]["status"] == json!("refunded")
        })
        .await;
    assert!(view["returns"][0]["refunded_minor"].as_i64().unwrap() > 0);
    let types = f.world.env.event_types_of_order(&order_id).await;
    let closes: Vec<usize> = types
        .iter()
        .enumerate()
        .filter(|(_, t)| *t == "OrderClosed")
        .map(|(i, _)| i)
        .collect();
    let requested = types.iter().position(|t| t == "ReturnRequested").unwrap();
    let decided = types
        .iter()
        .position(|t| t == "ReturnRefundDecided")
        .unwrap();
    assert_eq!(closes.len(), 2, "{types:?}");
    assert!(closes[0] < requested && closes[1] > decided, "{types:?}");
}
