//! Read-your-writes over the public API: an order placed on the command API shows up on the
//! customer tracking endpoint, and the customer sees only their own order.

use serde_json::Value;
use waybill_e2e::{sample_order, Role, TestEnv, ADMIN_KEY, SAMPLE_TOTALS};

use crate::{place, tracking_at};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_placed_over_http_becomes_visible_on_tracking() {
    let env = TestEnv::new("order_visible_on_tracking").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();

    let placed = place(&api, "visible-1", &sample_order("WEB-1001")).await;
    let body = placed.response.json();
    let id = &placed.order_id;
    assert_eq!(body["status"], "placed", "{body}");
    assert_eq!(body["version"], 1, "{body}");
    assert_eq!(placed.consistency_token, format!("{id}.1"));
    assert_eq!(
        placed.response.header("x-consistency-token"),
        Some(placed.consistency_token.as_str())
    );
    // No `Location`: the command API serves no order resource to point at (the order is read
    // through the query API's tracking and agent endpoints, named in the body).
    assert_eq!(placed.response.header("location"), None);
    let totals = &body["totals"];
    assert_eq!(totals["currency"], "USD", "{body}");
    assert_eq!(
        totals["subtotal_minor"], SAMPLE_TOTALS.subtotal_minor,
        "{body}"
    );
    assert_eq!(
        totals["discount_minor"], SAMPLE_TOTALS.discount_minor,
        "{body}"
    );
    assert_eq!(totals["tax_minor"], SAMPLE_TOTALS.tax_minor, "{body}");
    assert_eq!(
        totals["shipping_minor"], SAMPLE_TOTALS.shipping_minor,
        "{body}"
    );
    assert_eq!(
        totals["grand_total_minor"], SAMPLE_TOTALS.grand_total_minor,
        "{body}"
    );

    // The customer, with the token from the response and the version it produced.
    let tracked = tracking_at(&api, id, &placed.tracking_token, 1).await;
    let view = &tracked["view"];
    assert_eq!(tracked["consistency"]["stale"], false, "{tracked}");
    assert_eq!(view["order_id"], id.as_str(), "{view}");
    assert_eq!(view["version"], 1, "{view}");
    assert_eq!(view["status"], "placed", "{view}");
    assert_eq!(view["channel"], "web", "{view}");
    assert_eq!(view["channel_order_ref"], "WEB-1001", "{view}");
    assert_eq!(view["currency"], "USD", "{view}");
    assert_eq!(view["shipping_method"], "standard", "{view}");
    let lines = view["lines"].as_array().expect("view lines");
    assert_eq!(lines.len(), 2, "{view}");
    assert_eq!(lines[0]["line_no"], 1);
    assert_eq!(lines[0]["sku"], "TEE-RED-M");
    assert_eq!(lines[0]["quantity"], 2);
    assert_eq!(lines[0]["unit_price_minor"], 1500);
    assert_eq!(lines[0]["total_minor"], SAMPLE_TOTALS.line_totals_minor[0]);
    assert_eq!(lines[1]["line_no"], 2);
    assert_eq!(lines[1]["sku"], "MUG-BLK");
    assert_eq!(lines[1]["quantity"], 1);
    assert_eq!(lines[1]["total_minor"], SAMPLE_TOTALS.line_totals_minor[1]);
    let view_totals = &view["totals"];
    for (field, expected) in [
        ("subtotal_minor", SAMPLE_TOTALS.subtotal_minor),
        ("discount_minor", SAMPLE_TOTALS.discount_minor),
        ("tax_minor", SAMPLE_TOTALS.tax_minor),
        ("shipping_minor", SAMPLE_TOTALS.shipping_minor),
        ("grand_total_minor", SAMPLE_TOTALS.grand_total_minor),
    ] {
        assert_eq!(view_totals[field], expected, "view totals.{field}: {view}");
    }
    let timeline = view["timeline"].as_array().expect("view timeline");
    assert_eq!(timeline.len(), 1, "{view}");
    assert_eq!(timeline[0]["version"], 1);
    assert_eq!(timeline[0]["event_type"], "OrderPlaced");

    // The consistency token from the command response works the same as min_version.
    let by_token = api
        .tracking(
            id,
            &[
                ("token", &placed.tracking_token),
                ("consistency_token", &placed.consistency_token),
            ],
            None,
        )
        .await;
    assert_eq!(by_token.status, 200, "{}", by_token.describe());
    assert_eq!(by_token.json()["consistency"]["stale"], false);
    assert_eq!(by_token.json()["view"], *view);

    // An agent/admin reads it with an API key instead of the customer token.
    let as_admin = api
        .tracking(id, &[("min_version", "1")], Some(ADMIN_KEY))
        .await;
    assert_eq!(as_admin.status, 200, "{}", as_admin.describe());
    assert_eq!(as_admin.json()["view"], *view);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_behind_min_version_answers_stale_after_a_bounded_wait() {
    let env = TestEnv::new("tracking_stale").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let placed = place(&api, "stale-1", &sample_order("WEB-STALE")).await;
    tracking_at(&api, &placed.order_id, &placed.tracking_token, 1).await;

    // Version 5 will never come: the answer is the current view, marked stale.
    let response = api
        .tracking(
            &placed.order_id,
            &[("token", &placed.tracking_token), ("min_version", "5")],
            None,
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.describe());
    assert_eq!(response.header("x-waybill-stale"), Some("true"));
    let body = response.json();
    assert_eq!(body["consistency"]["stale"], true, "{body}");
    assert_eq!(body["consistency"]["requested_version"], 5, "{body}");
    assert_eq!(body["consistency"]["view_version"], 1, "{body}");
    assert_eq!(body["view"]["version"], 1, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_cannot_see_another_order_and_gets_the_same_404_as_for_an_unknown_one() {
    let env = TestEnv::new("tracking_isolation").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let mine = place(&api, "iso-a", &sample_order("WEB-A")).await;
    let theirs = place(&api, "iso-b", &sample_order("WEB-B")).await;
    // Both views exist, so a 404 below can only come from the token check.
    tracking_at(&api, &mine.order_id, &mine.tracking_token, 1).await;
    tracking_at(&api, &theirs.order_id, &theirs.tracking_token, 1).await;

    let with_other_token = api
        .tracking(&theirs.order_id, &[("token", &mine.tracking_token)], None)
        .await;
    assert_eq!(
        with_other_token.status,
        404,
        "{}",
        with_other_token.describe()
    );

    let garbage = api
        .tracking(&theirs.order_id, &[("token", "not-a-token")], None)
        .await;
    assert_eq!(garbage.status, 404, "{}", garbage.describe());

    let unknown_id = uuid::Uuid::now_v7().to_string();
    let unknown = api
        .tracking(&unknown_id, &[("token", &mine.tracking_token)], None)
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.describe());

    // Nothing in the answer tells "exists but not yours" from "does not exist".
    let normalised = |text: String, id: &str| text.replace(id, "<id>");
    assert_eq!(
        normalised(with_other_token.text(), &theirs.order_id),
        normalised(unknown.text(), &unknown_id),
        "wrong token and unknown order must answer alike"
    );
    assert_eq!(
        with_other_token.header("content-type"),
        unknown.header("content-type")
    );
    let body: Value = with_other_token.json();
    assert!(
        body.to_string().find("WEB-B").is_none(),
        "404 leaks the order: {body}"
    );
}
