//! Exchanges' money over the public API, against the real binary and our payment sandbox
//! (SIMULATED): extra charges on the order's card after its capture (an exchange for a dearer
//! item), declines of those, and store credit given back instead of a card refund, with the
//! customer's balance on `GET /v1/me/store-credit`.

use reqwest::Method;
use serde_json::{json, Value};
use waybill_e2e::checkout::{order, CheckoutWorld};
use waybill_e2e::{eventually, HttpResponse, AGENT_KEY, DEFAULT_DEADLINE, SERVICE_KEY};

/// The sandbox card whose first authorization of an order succeeds and any later one is
/// declined (`write-side/PAYMENT-SANDBOX.md`).
const FIRST_ONLY: &str = "tok_4000000000000341";
const APPROVED: &str = "tok_4242424242424242";

/// A captured order of `units` × 25.00 USD placed by customer `reference`; returns its id and
/// grand total in minor units.
async fn captured_order(world: &CheckoutWorld, reference: &str, sku: &str, token: &str) -> (String, i64) {
    let placed = world.place(&order(reference, sku, 2, token)).await;
    let id = placed["order_id"].as_str().expect("order id").to_owned();
    let events = world.settled(&id, None).await;
    assert_eq!(events.last().map(String::as_str), Some("PaymentCaptured"), "{events:?}");
    let total = placed["totals"]["grand_total_minor"].as_i64().expect("total");
    (id, total)
}

async fn post(world: &CheckoutWorld, path: &str, key: &str, body: &Value) -> HttpResponse {
    world.api.post_json(path, AGENT_KEY, key, body).await
}

async fn charge(world: &CheckoutWorld, id: &str, key: &str, minor: i64, currency: &str) -> HttpResponse {
    post(
        world,
        &format!("/v1/orders/{id}/charges"),
        key,
        &json!({"amount_minor": minor, "currency": currency, "reason": "exchange for a dearer size"}),
    )
    .await
}

async fn refund(world: &CheckoutWorld, id: &str, key: &str, minor: i64, destination: &str) -> HttpResponse {
    post(
        world,
        &format!("/v1/orders/{id}/refunds"),
        key,
        &json!({"amount_minor": minor, "currency": "USD", "reason": "parcel arrived late",
                "destination": destination}),
    )
    .await
}

/// The order's view once it has all of its events (read as the service).
async fn current_view(world: &CheckoutWorld, id: &str) -> Value {
    let events = world.env.event_types_of_order(id).await;
    world.view_at(id, events.len()).await
}

#[tokio::test]
async fn an_extra_charge_is_captured_on_the_order_card_and_is_refundable() {
    let world = CheckoutWorld::start("exchange_charge", &[], &[("TEE-X", 10)]).await;
    let (id, total) = captured_order(&world, "XCHG-CHARGE-1", "TEE-X", APPROVED).await;

    let asked = charge(&world, &id, "charge-1", 1200, "USD").await;
    assert_eq!(asked.status, 202, "{}", asked.describe());
    assert_eq!(asked.json()["status"], "pending");
    let replay = charge(&world, &id, "charge-1", 1200, "USD").await;
    assert_eq!(replay.json()["charge_id"], asked.json()["charge_id"], "same key, same charge");

    let captured = world.wait_for_event(&id, "ExtraChargeCaptured", 1).await;
    assert_eq!(captured[0]["amount"]["minor"], 1200);
    assert_eq!(world.env.payloads_of(&id, "ExtraChargeRequested").await.len(), 1);
    world.settled(&id, None).await;

    let view = current_view(&world, &id).await;
    assert_eq!(view["payment"]["captured_minor"], total + 1200);
    assert_eq!(view["payment"]["extra_charged_minor"], 1200);
    let timeline = view["timeline"].to_string();
    assert!(timeline.contains("Extra payment of 12.00 USD taken from your card"), "{timeline}");
    assert!(!timeline.contains("dearer"), "reasons stay internal: {timeline}");

    // The extra money is refundable like the first capture, and no more.
    let above = refund(&world, &id, "refund-above", total + 1201, "original_payment").await;
    assert_eq!(above.status, 422, "{}", above.describe());
    assert_eq!(above.json()["field"], "amount_minor");
    let all = refund(&world, &id, "refund-all", 1200, "original_payment").await;
    assert_eq!(all.status, 202, "{}", all.describe());
    assert_eq!(all.json()["refundable_minor"], total);
    let refunded = world.wait_for_event(&id, "PaymentRefunded", 1).await;
    assert_eq!(refunded[0]["amount"]["minor"], 1200);
}

#[tokio::test]
async fn a_declined_extra_charge_is_recorded_and_the_customer_is_told() {
    let world = CheckoutWorld::start("exchange_charge_declined", &[], &[("TEE-D", 10)]).await;
    let (id, total) = captured_order(&world, "XCHG-DECLINE-1", "TEE-D", FIRST_ONLY).await;

    let asked = charge(&world, &id, "charge-d", 900, "USD").await;
    assert_eq!(asked.status, 202, "{}", asked.describe());
    let declined = world.wait_for_event(&id, "ExtraChargeDeclined", 1).await;
    assert_eq!(declined[0]["code"], "card_declined");
    assert!(world.env.payloads_of(&id, "ExtraChargeCaptured").await.is_empty());
    world.settled(&id, None).await;

    let view = current_view(&world, &id).await;
    assert_eq!(view["payment"]["captured_minor"], total, "nothing more was taken");
    assert_eq!(view["payment"]["extra_charged_minor"], 0);
    let timeline = view["timeline"].to_string();
    assert!(timeline.contains("We couldn't take the extra payment"), "{timeline}");
}

#[tokio::test]
async fn goodwill_refund_as_store_credit_shows_in_the_customer_balance() {
    let world = CheckoutWorld::start("store_credit_goodwill", &[], &[("TEE-C", 10)]).await;
    let (id, total) = captured_order(&world, "CREDIT-1", "TEE-C", APPROVED).await;

    let credited = refund(&world, &id, "credit-1", 800, "store_credit").await;
    assert_eq!(credited.status, 202, "{}", credited.describe());
    let body = credited.json();
    assert_eq!(body["status"], "issued");
    assert_eq!(body["destination"], "store_credit");
    assert_eq!(body["refundable_minor"], total - 800);
    let issued = world.wait_for_event(&id, "StoreCreditIssued", 1).await;
    assert_eq!(issued[0]["customer_id"], "CREDIT-1");
    assert!(
        world.env.payloads_of(&id, "RefundRequested").await.is_empty(),
        "no card refund"
    );

    // Credit and card refunds together never exceed the capture.
    let above = refund(&world, &id, "refund-c-above", total - 799, "original_payment").await;
    assert_eq!(above.status, 422, "{}", above.describe());
    assert_eq!(above.json()["field"], "amount_minor");

    let view = current_view(&world, &id).await;
    assert_eq!(view["payment"]["store_credit_minor"], 800);
    assert_eq!(view["payment"]["refunded_minor"], 0);
    let timeline = view["timeline"].to_string();
    assert!(timeline.contains("Store credit of 8.00 USD added to your account"), "{timeline}");

    // The owner sees the balance and the entry; another customer sees none of it.
    let owner = world.env.jwt("CREDIT-1", "customer");
    let statement = eventually("the owner's store credit balance", DEFAULT_DEADLINE, || async {
        let response = world
            .api
            .send(Method::GET, &format!("{}/v1/me/store-credit", world.api.query_url), Some(&owner), None, None)
            .await;
        let body = response.json();
        if response.status == 200 && body["balances"] == json!([{"currency": "USD", "amount_minor": 800}]) {
            Ok(body)
        } else {
            Err(response.describe())
        }
    })
    .await;
    assert_eq!(statement["entries"][0]["order_id"], id.as_str());
    assert_eq!(statement["entries"][0]["order_number"], "CREDIT-1");
    let stranger = world.env.jwt("CREDIT-2", "customer");
    let theirs = world
        .api
        .send(Method::GET, &format!("{}/v1/me/store-credit", world.api.query_url), Some(&stranger), None, None)
        .await;
    assert_eq!(theirs.status, 200, "{}", theirs.describe());
    assert_eq!(theirs.json(), json!({"balances": [], "entries": []}));
    let staff = world
        .api
        .send(Method::GET, &format!("{}/v1/me/store-credit", world.api.query_url), Some(SERVICE_KEY), None, None)
        .await;
    assert_eq!(staff.status, 403);
}

#[tokio::test]
async fn bad_charges_and_refund_destinations_are_refused_naming_the_field() {
    let world = CheckoutWorld::start("exchange_bad_input", &[], &[("TEE-B", 10)]).await;
    let (id, _) = captured_order(&world, "XCHG-BAD-1", "TEE-B", APPROVED).await;

    let cases = [
        (charge(&world, &id, "bad-1", 500, "EUR").await, "currency"),
        (charge(&world, &id, "bad-2", 0, "USD").await, "amount_minor"),
        (charge(&world, &id, "bad-3", -5, "USD").await, "amount_minor"),
        (charge(&world, &id, "bad-4", 500, "US").await, "currency"),
        (refund(&world, &id, "bad-5", 500, "gift_card").await, "destination"),
    ];
    for (response, field) in cases {
        assert_eq!(response.status, 422, "{}", response.describe());
        assert_eq!(response.header("content-type"), Some("application/problem+json"));
        assert_eq!(response.json()["field"], field, "{}", response.describe());
    }
    let unknown = charge(&world, "01a214fd-0000-7000-8000-0000000000ab", "bad-6", 500, "USD").await;
    assert_eq!(unknown.status, 404, "{}", unknown.describe());
    assert!(world.env.payloads_of(&id, "ExtraChargeRequested").await.is_empty());
}
