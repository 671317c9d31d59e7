//! The checkout flow end to end over the public API: risk, stock, payment (with our sandbox
//! gateway), confirmation and capture, and every compensation path.

use serde_json::json;
use waybill_e2e::checkout::{cards, order, CheckoutWorld};
use waybill_e2e::{AGENT_KEY, SERVICE_KEY};

fn types(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn a_card_order_is_checked_reserved_authorized_confirmed_and_captured() {
    let world = CheckoutWorld::start("checkout_happy", &[], &[("TEE-1", 10)]).await;
    let placed = world
        .place(&order("HAPPY-1", "TEE-1", 3, cards::APPROVED))
        .await;
    let id = placed["order_id"].as_str().expect("order id");

    let events = world.settled(id, None).await;
    assert_eq!(
        events,
        types(&[
            "OrderPlaced",
            "RiskAssessed",
            "InventoryReserved",
            "PaymentAuthorized",
            "InventoryAllocated",
            "OrderConfirmed",
            "PaymentCaptured"
        ])
    );
    let captured = world.env.payloads_of(id, "PaymentCaptured").await;
    assert_eq!(
        captured[0]["amount"]["minor"],
        placed["totals"]["grand_total_minor"]
    );
    assert_eq!(
        world.stock("TEE-1").await,
        (10, 0, 3),
        "3 units allocated, none left reserved"
    );

    let view = world.view_at(id, events.len()).await;
    assert_eq!(view["status"], "confirmed");
    assert_eq!(view["payment"]["state"], "captured");
    assert_eq!(view["stock"]["state"], "allocated");

    // The customer is told, with a signed link that opens their tracking view and no other.
    let email = world.notification(id, "order_confirmed", "email").await;
    assert!(email.contains("To: happy-1@example.com"), "{email}");
    let token = email
        .split("token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a tracking link with a token");
    let opened = world.api.tracking(id, &[("token", token)], None).await;
    assert_eq!(opened.status, 200, "{}", opened.describe());
    let sms = world.notification(id, "order_confirmed", "sms").await;
    assert!(sms.contains("token="), "{sms}");
}

#[tokio::test]
async fn capture_on_shipment_keeps_the_hold_until_it_lapses_then_records_the_expiry() {
    let world = CheckoutWorld::start(
        "checkout_on_shipment",
        &[
            ("WAYBILL_CAPTURE_MODE", "on-shipment"),
            // The sandbox's holds last 3 s here, so the durable deadline comes due in the test.
            ("WAYBILL_PAYMENT_AUTH_VALIDITY_SECS", "3"),
        ],
        &[("TEE-S", 5)],
    )
    .await;
    let placed = world
        .place(&order("SHIP-1", "TEE-S", 1, cards::APPROVED))
        .await;
    let id = placed["order_id"].as_str().expect("id");
    let waiting = world.settled(id, Some("awaiting_capture")).await;
    assert_eq!(waiting.last().map(String::as_str), Some("OrderConfirmed"));
    assert_eq!(
        world.env.payloads_of(id, "OrderConfirmed").await[0]["capture_mode"],
        "on_shipment"
    );
    let events = world.settled(id, None).await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("PaymentAuthorizationExpired"),
        "{events:?}"
    );
    assert!(!events.contains(&"PaymentCaptured".to_owned()));
}

#[tokio::test]
async fn declined_payment_releases_the_stock_and_cancels_the_order() {
    let world = CheckoutWorld::start("checkout_declined", &[], &[("TEE-2", 10)]).await;
    let placed = world
        .place(&order("DECLINE-1", "TEE-2", 2, cards::INSUFFICIENT_FUNDS))
        .await;
    let id = placed["order_id"].as_str().expect("order id");

    let events = world.settled(id, None).await;
    assert_eq!(
        events,
        types(&[
            "OrderPlaced",
            "RiskAssessed",
            "InventoryReserved",
            "PaymentDeclined",
            "InventoryReleased",
            "OrderCancelled"
        ])
    );
    let cancelled = world.env.payloads_of(id, "OrderCancelled").await;
    assert_eq!(cancelled[0]["reason"], "payment_failed");
    assert_eq!(
        world.stock("TEE-2").await,
        (10, 0, 0),
        "the reservation went back"
    );
    let view = world.view_at(id, events.len()).await;
    assert_eq!(view["status"], "cancelled");
    assert_eq!(view["payment"]["state"], "declined");
}

#[tokio::test]
async fn three_d_secure_passed_confirms_and_failed_cancels() {
    let world = CheckoutWorld::start("checkout_3ds", &[], &[("TEE-3", 10)]).await;
    let pass = world
        .place(&order("3DS-PASS", "TEE-3", 1, cards::THREE_DS))
        .await;
    let fail = world
        .place(&order("3DS-FAIL", "TEE-3", 1, cards::THREE_DS))
        .await;
    let pass_id = pass["order_id"].as_str().expect("id");
    let fail_id = fail["order_id"].as_str().expect("id");

    for id in [pass_id, fail_id] {
        let waiting = world.settled(id, Some("payment_challenge")).await;
        assert_eq!(
            waiting.last().map(String::as_str),
            Some("PaymentChallengeRequired")
        );
        let view = world.view_at(id, waiting.len()).await;
        assert_eq!(view["status"], "awaiting_payment");
        assert!(view["payment"]["action_url"]
            .as_str()
            .is_some_and(|u| u.contains("/challenge/")));
    }
    assert_eq!(world.complete_challenge(pass_id, true).await.status, 200);
    assert_eq!(world.complete_challenge(fail_id, false).await.status, 200);

    let passed = world.settled(pass_id, None).await;
    assert!(
        passed.ends_with(&types(&[
            "PaymentAuthorized",
            "InventoryAllocated",
            "OrderConfirmed",
            "PaymentCaptured"
        ])),
        "{passed:?}"
    );
    let authorized = world.env.payloads_of(pass_id, "PaymentAuthorized").await;
    assert_eq!(authorized[0]["three_ds"], true);
    let failed = world.settled(fail_id, None).await;
    assert!(
        failed.ends_with(&types(&[
            "PaymentDeclined",
            "InventoryReleased",
            "OrderCancelled"
        ])),
        "{failed:?}"
    );
    assert_eq!(world.stock("TEE-3").await, (10, 0, 1));
}

#[tokio::test]
async fn fraud_review_waits_for_an_agent_who_approves_or_rejects() {
    let world = CheckoutWorld::start("checkout_review", &[], &[("WATCH-1", 10)]).await;
    // 1 × 2,500.00 USD: over the review threshold.
    let mut big = order("REVIEW-OK", "WATCH-1", 1, cards::APPROVED);
    big["lines"][0]["unit_price_minor"] = json!(250_000);
    let approve = world.place(&big).await;
    big["channel_order_ref"] = json!("REVIEW-NO");
    big["customer"]["email"] = json!("review-no@example.com");
    let reject = world.place(&big).await;
    let blocked = world
        .place(&{
            let mut o = order("BLOCKED-1", "WATCH-1", 1, cards::APPROVED);
            o["customer"]["email"] = json!("blocked@example.com");
            o
        })
        .await;
    let (approve_id, reject_id) = (
        approve["order_id"].as_str().expect("id"),
        reject["order_id"].as_str().expect("id"),
    );
    for id in [approve_id, reject_id] {
        world.settled(id, Some("review")).await;
    }

    let queue = world.api.command_get("/v1/reviews", AGENT_KEY).await;
    assert_eq!(queue.status, 200, "{}", queue.describe());
    let items = queue.json()["items"].as_array().cloned().expect("items");
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items[0]["reasons"][0]["rule"].as_str().is_some());
    let forbidden = world.api.command_get("/v1/reviews", SERVICE_KEY).await;
    assert_eq!(forbidden.status, 403);

    let decide = |id: &str, decision: &str| {
        let path = format!("/v1/orders/{id}/review");
        let key = format!("review-{id}");
        let body = json!({"decision": decision, "note": "checked with the customer"});
        let api = &world.api;
        async move { api.post_json(&path, AGENT_KEY, &key, &body).await }
    };
    let unknown_decision = world
        .api
        .post_json(
            &format!("/v1/orders/{approve_id}/review"),
            AGENT_KEY,
            "review-bad",
            &json!({"decision": "maybe"}),
        )
        .await;
    assert_eq!(
        unknown_decision.status,
        422,
        "{}",
        unknown_decision.describe()
    );
    assert!(unknown_decision
        .problem_fields()
        .iter()
        .all(|f| f == "decision"));
    let unknown_order = world
        .api
        .post_json(
            "/v1/orders/01a214fd-0000-7000-8000-000000000000/review",
            AGENT_KEY,
            "review-nobody",
            &json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(unknown_order.status, 404, "{}", unknown_order.describe());

    let approved = decide(approve_id, "approve").await;
    assert_eq!(approved.status, 200, "{}", approved.describe());
    let rejected = decide(reject_id, "reject").await;
    assert_eq!(rejected.status, 200, "{}", rejected.describe());
    let again = world
        .api
        .post_json(
            &format!("/v1/orders/{approve_id}/review"),
            AGENT_KEY,
            "review-again",
            &json!({"decision": "reject"}),
        )
        .await;
    assert_eq!(
        again.status, 409,
        "a decided review cannot be decided again"
    );

    let approved_events = world.settled(approve_id, None).await;
    assert!(
        approved_events.ends_with(&types(&["OrderConfirmed", "PaymentCaptured"])),
        "{approved_events:?}"
    );
    let rejected_events = world.settled(reject_id, None).await;
    assert_eq!(
        rejected_events.last().map(String::as_str),
        Some("OrderCancelled")
    );
    assert_eq!(
        world.env.payloads_of(reject_id, "OrderCancelled").await[0]["reason"],
        "fraud"
    );

    let blocked_id = blocked["order_id"].as_str().expect("id");
    let blocked_events = world.settled(blocked_id, None).await;
    assert_eq!(
        blocked_events,
        types(&["OrderPlaced", "RiskAssessed", "OrderCancelled"])
    );
    let assessed = world.env.payloads_of(blocked_id, "RiskAssessed").await;
    assert_eq!(assessed[0]["decision"], "reject");
    assert_eq!(world.stock("WATCH-1").await, (10, 0, 1));
}

#[tokio::test]
async fn an_order_nobody_has_stock_for_is_cancelled_out_of_stock() {
    let world = CheckoutWorld::start("checkout_oos", &[], &[("RARE-1", 1)]).await;
    let placed = world
        .place(&order("OOS-1", "RARE-1", 2, cards::APPROVED))
        .await;
    let id = placed["order_id"].as_str().expect("id");
    let events = world.settled(id, None).await;
    assert_eq!(
        events,
        types(&[
            "OrderPlaced",
            "RiskAssessed",
            "InventoryReservationFailed",
            "OrderCancelled"
        ])
    );
    assert_eq!(
        world.env.payloads_of(id, "OrderCancelled").await[0]["reason"],
        "out_of_stock"
    );
    assert_eq!(world.stock("RARE-1").await, (1, 0, 0));
}

#[tokio::test]
async fn an_unpaid_reservation_expires_and_the_stock_returns() {
    let world = CheckoutWorld::start(
        "checkout_expiry",
        &[("WAYBILL_RESERVATION_TTL_SECS", "2")],
        &[("TEE-4", 5)],
    )
    .await;
    // The customer never finishes 3-D Secure; the reservation (2 s here) lapses first.
    let placed = world
        .place(&order("EXPIRE-1", "TEE-4", 2, cards::THREE_DS))
        .await;
    let id = placed["order_id"].as_str().expect("id");
    let events = world.settled(id, None).await;
    assert_eq!(
        events,
        types(&[
            "OrderPlaced",
            "RiskAssessed",
            "InventoryReserved",
            "PaymentChallengeRequired",
            "InventoryReleased",
            "OrderCancelled",
            // The challenge's pending hold is voided too.
            "PaymentVoided"
        ])
    );
    assert_eq!(
        world.env.payloads_of(id, "InventoryReleased").await[0]["reason"],
        "expired"
    );
    assert_eq!(
        world.env.payloads_of(id, "OrderCancelled").await[0]["reason"],
        "reservation_expired"
    );
    assert_eq!(world.stock("TEE-4").await, (5, 0, 0));
}
