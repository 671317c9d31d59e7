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
async fn captured_order(
    world: &CheckoutWorld,
    reference: &str,
    sku: &str,
    token: &str,
) -> (String, i64) {
    let placed = world.place(&order(reference, sku, 2, token)).await;
    let id = placed["order_id"].as_str().expect("order id").to_owned();
    let events = world.settled(&id, None).await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("PaymentCaptured"),
        "{events:?}"
    );
    let total = placed["totals"]["grand_total_minor"]
        .as_i64()
        .expect("total");
    (id, total)
}

async fn post(world: &CheckoutWorld, path: &str, key: &str, body: &Value) -> HttpResponse {
    world.api.post_json(path, AGENT_KEY, key, body).await
}

async fn charge(
    world: &CheckoutWorld,
    id: &str,
    key: &str,
    minor: i64,
    currency: &str,
) -> HttpResponse {
    post(
        world,
        &format!("/v1/orders/{id}/charges"),
        key,
        &json!({"amount_minor": minor, "currency": currency, "reason": "exchange for a dearer size"}),
    )
    .await
}

async fn refund(
    world: &CheckoutWorld,
    id: &str,
    key: &str,
    minor: i64,
    destination: &str,
) -> HttpResponse {
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
    assert_eq!(
        replay.json()["charge_id"],
        asked.json()["charge_id"],
        "same key, same charge"
    );

    let captured = world.wait_for_event(&id, "ExtraChargeCaptured", 1).await;
    assert_eq!(captured[0]["amount"]["minor"], 1200);
    assert_eq!(
        world
            .env
            .payloads_of(&id, "ExtraChargeRequested")
            .await
            .len(),
        1
    );
    world.settled(&id, None).await;

    let view = current_view(&world, &id).await;
    assert_eq!(view["payment"]["captured_minor"], total + 1200);
    assert_eq!(view["payment"]["extra_charged_minor"], 1200);
    let timeline = view["timeline"].to_string();
    assert!(
        timeline.contains("Extra payment of 12.00 USD taken from your card"),
        "{timeline}"
    );
    assert!(
        !timeline.contains("dearer"),
        "reasons stay internal: {timeline}"
    );

    // The extra money is refundable like the first capture, and no more.
    let above = refund(
        &world,
        &id,
        "refund-above",
        total + 1201,
        "original_payment",
    )
    .await;
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
    assert!(world
        .env
        .payloads_of(&id, "ExtraChargeCaptured")
        .await
        .is_empty());
    world.settled(&id, None).await;

    let view = current_view(&world, &id).await;
    assert_eq!(
        view["payment"]["captured_minor"], total,
        "nothing more was taken"
    );
    assert_eq!(view["payment"]["extra_charged_minor"], 0);
    let timeline = view["timeline"].to_string();
    assert!(
        timeline.contains("We couldn't take the extra payment"),
        "{timeline}"
    );
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
        world
            .env
            .payloads_of(&id, "RefundRequested")
            .await
            .is_empty(),
        "no card refund"
    );

    // Credit and card refunds together never exceed the capture.
    let above = refund(
        &world,
        &id,
        "refund-c-above",
        total - 799,
        "original_payment",
    )
    .await;
    assert_eq!(above.status, 422, "{}", above.describe());
    assert_eq!(above.json()["field"], "amount_minor");

    let view = current_view(&world, &id).await;
    assert_eq!(view["payment"]["store_credit_minor"], 800);
    assert_eq!(view["payment"]["refunded_minor"], 0);
    let timeline = view["timeline"].to_string();
    assert!(
        timeline.contains("Store credit of 8.00 USD added to your account"),
        "{timeline}"
    );

    // The owner sees the balance and the entry; another customer sees none of it.
    let owner = world.env.jwt("CREDIT-1", "customer");
    let statement = eventually(
        "the owner's store credit balance",
        DEFAULT_DEADLINE,
        || async {
            let response = world
                .api
                .send(
                    Method::GET,
                    &format!("{}/v1/me/store-credit", world.api.query_url),
                    Some(&owner),
                    None,
                    None,
                )
                .await;
            let body = response.json();
            if response.status == 200
                && body["balances"] == json!([{"currency": "USD", "amount_minor": 800}])
            {
                Ok(body)
            } else {
                Err(response.describe())
            }
        },
    )
    .await;
    assert_eq!(statement["entries"][0]["order_id"], id.as_str());
    assert_eq!(statement["entries"][0]["order_number"], "CREDIT-1");
    let stranger = world.env.jwt("CREDIT-2", "customer");
    let theirs = world
        .api
        .send(
            Method::GET,
            &format!("{}/v1/me/store-credit", world.api.query_url),
            Some(&stranger),
            None,
            None,
        )
        .await;
    assert_eq!(theirs.status, 200, "{}", theirs.describe());
    assert_eq!(theirs.json(), json!({"balances": [], "entries": []}));
    let staff = world
        .api
        .send(
            Method::GET,
            &format!("{}/v1/me/store-credit", world.api.query_url),
            Some(SERVICE_KEY),
            None,
            None,
        )
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
        (
            charge(&world, &id, "bad-3", -5, "USD").await,
            "amount_minor",
        ),
        (charge(&world, &id, "bad-4", 500, "US").await, "currency"),
        (
            refund(&world, &id, "bad-5", 500, "gift_card").await,
            "destination",
        ),
        // A well-formed return id the order does not have: refused, the card is not charged.
        (
            post(
                &world,
                &format!("/v1/orders/{id}/charges"),
                "bad-7",
                &json!({"amount_minor": 500, "currency": "USD", "reason": "exchange",
                        "return_id": format!("{id}-R1")}),
            )
            .await,
            "return_id",
        ),
    ];
    for (response, field) in cases {
        assert_eq!(response.status, 422, "{}", response.describe());
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(response.json()["field"], field, "{}", response.describe());
    }
    let unknown = charge(
        &world,
        "01a214fd-0000-7000-8000-0000000000ab",
        "bad-6",
        500,
        "USD",
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.describe());
    assert!(world
        .env
        .payloads_of(&id, "ExtraChargeRequested")
        .await
        .is_empty());
}

mod resolutions {
    //! Exchanges and store credit as resolutions of a return, end to end: the order is
    //! delivered through the logistics sandbox (SIMULATED), returned, inspected by an agent,
    //! and resolved.

    use serde_json::{json, Value};
    use waybill_e2e::fulfillment::{multi_line_order, FulfillmentWorld};
    use waybill_e2e::{eventually, AGENT_KEY, DEFAULT_DEADLINE};

    /// A delivered order of one TEE-RED-M at 25.00 USD (customer id = `reference`).
    async fn delivered(f: &FulfillmentWorld, reference: &str) -> String {
        f.world.restock("TEE-RED-M", "wh-east", 5).await;
        f.world.restock("TEE-RED-L", "wh-east", 5).await;
        let placed = f
            .world
            .place(&multi_line_order(
                reference,
                &[("TEE-RED-M", 1)],
                "standard",
            ))
            .await;
        let order_id = placed["order_id"].as_str().expect("order id").to_owned();
        f.pack_all(&order_id, 1).await;
        let parcels = f.parcels(&order_id, 1).await;
        let tracking = parcels[0]["tracking_number"]
            .as_str()
            .expect("tracking")
            .to_owned();
        f.scan(
            &tracking,
            json!({"status_code": "DL", "received_by": "G. Hopper"}),
        )
        .await;
        f.view_when(&order_id, "delivered", |v| {
            v["delivery"] == json!("delivered")
        })
        .await;
        order_id
    }

    async fn request_return(
        f: &FulfillmentWorld,
        order_id: &str,
        key: &str,
        resolution: Value,
    ) -> waybill_e2e::HttpResponse {
        f.world
            .api
            .post_json(
                &format!("/v1/orders/{order_id}/returns"),
                AGENT_KEY,
                key,
                &json!({"lines": [{"line_no": 1, "quantity": 1, "reason": "wrong_size"}],
                        "resolution": resolution}),
            )
            .await
    }

    /// Returns, then inspects the unit as accepted (not resellable); returns the return id.
    async fn returned_and_inspected(
        f: &FulfillmentWorld,
        order_id: &str,
        resolution: Value,
    ) -> String {
        let asked = request_return(f, order_id, &format!("return-{order_id}"), resolution).await;
        assert_eq!(asked.status, 201, "{}", asked.describe());
        let return_id = asked.json()["return_id"]
            .as_str()
            .expect("return id")
            .to_owned();
        let inspected = f
            .world
            .api
            .post_json(
                &format!("/v1/orders/{order_id}/returns/{return_id}/inspection"),
                AGENT_KEY,
                &format!("inspect-{return_id}"),
                &json!({"lines": [{"line_no": 1, "sku": "TEE-RED-M", "accepted": 1, "rejected": 0, "resellable": 0}]}),
            )
            .await;
        assert!(inspected.status < 300, "{}", inspected.describe());
        return_id
    }

    fn exchange(minor: i64, currency: &str) -> Value {
        json!({"kind": "exchange", "replacements": [
            {"for_line_no": 1, "sku": "TEE-RED-L", "quantity": 1,
             "unit_price": {"minor": minor, "currency": currency}}]})
    }

    /// The replacement's fulfillment order, once routed.
    async fn routed_replacement(f: &FulfillmentWorld, order_id: &str, return_id: &str) -> Value {
        let env = &f.world.env;
        eventually("the replacement is routed", DEFAULT_DEADLINE, || async {
            env.payloads_of(order_id, "FulfillmentRouted")
                .await
                .into_iter()
                .find(|r| r["cause"] == json!({"kind": "exchange", "return_id": return_id}))
                .ok_or_else(|| "not routed yet".to_owned())
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exchange_ships_a_linked_replacement_and_charges_the_price_difference() {
        let f = FulfillmentWorld::start("exchange_dearer", &[]).await;
        let order_id = delivered(&f, "XCHG-DEAR-1").await;
        let return_id = returned_and_inspected(&f, &order_id, exchange(3000, "USD")).await;

        let agreed = f
            .world
            .wait_for_event(&order_id, "ExchangeReplacementRequested", 1)
            .await;
        let difference = agreed[0]["difference"]["minor"]
            .as_i64()
            .expect("difference");
        assert_eq!(
            difference,
            3000 - agreed[0]["accepted_value"]["minor"]
                .as_i64()
                .expect("value")
        );
        assert!(difference > 0, "{agreed:?}");
        let charged = f
            .world
            .wait_for_event(&order_id, "ExtraChargeCaptured", 1)
            .await;
        assert_eq!(charged[0]["amount"]["minor"], difference);

        let routed = routed_replacement(&f, &order_id, &return_id).await;
        assert_eq!(
            routed["lines"],
            json!([{"line_no": 1001, "sku": "TEE-RED-L", "quantity": 1}])
        );
        let fulfillment_id = routed["fulfillment_id"].as_str().expect("id").to_owned();

        // The replacement ships as a parcel of its own, linked to the return on the order.
        f.pack_all(&order_id, 2).await;
        f.parcels(&order_id, 2).await;
        let view = f
            .view_when(
                &order_id,
                "the replacement parcel linked to the return",
                |v| v["returns"][0]["exchange"]["shipment_id"].is_string(),
            )
            .await;
        let x = &view["returns"][0]["exchange"];
        assert_eq!(x["fulfillment_id"], fulfillment_id.as_str());
        assert_eq!(x["difference_minor"], difference);
        assert_eq!(x["lines"][0]["sku"], "TEE-RED-L");
        assert_eq!(view["payment"]["extra_charged_minor"], difference);
        let timeline = view["timeline"].to_string();
        assert!(
            timeline.contains(&format!("Exchange for return {return_id} agreed")),
            "{timeline}"
        );
        assert!(timeline.contains("Replacement for return"), "{timeline}");
        assert!(f
            .world
            .env
            .payloads_of(&order_id, "RefundRequested")
            .await
            .is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exchange_for_a_cheaper_item_refunds_the_difference() {
        let f = FulfillmentWorld::start("exchange_cheaper", &[]).await;
        let order_id = delivered(&f, "XCHG-CHEAP-1").await;
        let return_id = returned_and_inspected(&f, &order_id, exchange(1000, "USD")).await;

        let agreed = f
            .world
            .wait_for_event(&order_id, "ExchangeReplacementRequested", 1)
            .await;
        let value = agreed[0]["accepted_value"]["minor"]
            .as_i64()
            .expect("value");
        assert_eq!(agreed[0]["difference"]["minor"], 1000 - value);
        let refunded = f
            .world
            .wait_for_event(&order_id, "PaymentRefunded", 1)
            .await;
        assert_eq!(refunded[0]["amount"]["minor"], value - 1000);
        routed_replacement(&f, &order_id, &return_id).await;
        assert!(f
            .world
            .env
            .payloads_of(&order_id, "ExtraChargeRequested")
            .await
            .is_empty());
        let view = f
            .view_when(&order_id, "the refund of the difference", |v| {
                v["payment"]["refunded_minor"] == json!(value - 1000)
            })
            .await;
        assert!(
            view["timeline"].to_string().contains("will be refunded"),
            "{view}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_credit_resolution_credits_the_customer_and_caps_card_refunds() {
        let f = FulfillmentWorld::start("return_store_credit", &[]).await;
        let order_id = delivered(&f, "XCHG-CREDIT-1").await;
        let return_id = returned_and_inspected(&f, &order_id, json!("store_credit")).await;

        let credit = f
            .world
            .wait_for_event(&order_id, "StoreCreditIssued", 1)
            .await;
        let amount = credit[0]["amount"]["minor"].as_i64().expect("amount");
        assert!(amount > 0);
        assert_eq!(credit[0]["return_id"], return_id.as_str());
        assert_eq!(credit[0]["customer_id"], "XCHG-CREDIT-1");
        assert!(f
            .world
            .env
            .payloads_of(&order_id, "RefundRequested")
            .await
            .is_empty());

        // The customer's balance shows it.
        let owner = f.world.env.jwt("XCHG-CREDIT-1", "customer");
        let api = &f.world.api;
        eventually("the store credit balance", DEFAULT_DEADLINE, || async {
            let response = api
                .send(
                    reqwest::Method::GET,
                    &format!("{}/v1/me/store-credit", api.query_url),
                    Some(&owner),
                    None,
                    None,
                )
                .await;
            let body = response.json();
            (body["balances"] == json!([{"currency": "USD", "amount_minor": amount}]))
                .then_some(())
                .ok_or(response.describe())
        })
        .await;

        // Card refunds are capped at what was captured minus the credit.
        let placed_total = f.world.env.payloads_of(&order_id, "PaymentCaptured").await[0]["amount"]
            ["minor"]
            .as_i64()
            .expect("captured");
        let over = api
            .post_json(
                &format!("/v1/orders/{order_id}/refunds"),
                AGENT_KEY,
                "refund-over-credit",
                &json!({"amount_minor": placed_total - amount + 1, "currency": "USD", "reason": "goodwill"}),
            )
            .await;
        assert_eq!(over.status, 422, "{}", over.describe());
        assert_eq!(over.json()["field"], "amount_minor");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_exchanges_are_refused_naming_the_field() {
        let f = FulfillmentWorld::start("exchange_bad_input", &[]).await;
        let order_id = delivered(&f, "XCHG-BADX-1").await;
        let bad_sku = json!({"kind": "exchange", "replacements": [
            {"for_line_no": 1, "sku": "not a sku!", "quantity": 1, "unit_price": {"minor": 100, "currency": "USD"}}]});
        let zero = json!({"kind": "exchange", "replacements": [
            {"for_line_no": 1, "sku": "TEE-RED-L", "quantity": 0, "unit_price": {"minor": 100, "currency": "USD"}}]});
        let cases = [
            (
                exchange(3000, "EUR"),
                "resolution.replacements[0].unit_price.currency",
            ),
            (bad_sku, "resolution.replacements[0].sku"),
            (zero, "resolution.replacements[0].quantity"),
        ];
        for (n, (resolution, field)) in cases.into_iter().enumerate() {
            let response = request_return(&f, &order_id, &format!("bad-x-{n}"), resolution).await;
            assert_eq!(response.status, 422, "{}", response.describe());
            assert_eq!(
                response.header("content-type"),
                Some("application/problem+json")
            );
            let body = response.json();
            let named = body["field"] == json!(field)
                || body["errors"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|x| x["field"] == json!(field)));
            assert!(named, "{field} not named: {body}");
        }
        assert!(f
            .world
            .env
            .payloads_of(&order_id, "ReturnRequested")
            .await
            .is_empty());
    }
}
