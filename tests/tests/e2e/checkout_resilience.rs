//! The checkout flow under the things that go wrong in production: redelivered and out-of-order
//! webhooks, a worker killed mid-flow, a flash sale on one SKU, and customers cancelling while the
//! flow runs.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use waybill_e2e::checkout::{cards, order, CheckoutWorld, SETTLE};
use waybill_e2e::{eventually, sample_cancel, Role, TestEnv, ADMIN_KEY};

async fn sandbox_get(world: &CheckoutWorld, path: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", world.sandbox.sandbox_url()))
        .bearer_auth(&world.env.payment_api_key)
        .send()
        .await
        .expect("sandbox GET");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("sandbox JSON")
}

async fn post_webhook(world: &CheckoutWorld, body: &Value, secret: &[u8]) -> (u16, Value) {
    let raw = serde_json::to_vec(body).expect("json");
    let t = chrono::Utc::now().timestamp();
    let signature = waybill_write_side::payment::webhook::sign(secret, t, &raw);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/payments", world.api.command_url))
        .header("Waybill-Gateway-Signature", signature)
        .header("Content-Type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("webhook POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn duplicate_and_out_of_order_webhooks_change_nothing() {
    let world = CheckoutWorld::start("checkout_webhooks", &[], &[("TEE-W", 5)]).await;
    let placed = world
        .place(&order("HOOK-1", "TEE-W", 1, cards::THREE_DS))
        .await;
    let id = placed["order_id"].as_str().expect("id");
    world.settled(id, Some("payment_challenge")).await;
    assert_eq!(world.complete_challenge(id, true).await.status, 200);
    let settled = world.settled(id, None).await;
    assert!(
        settled.contains(&"OrderConfirmed".to_owned()),
        "{settled:?}"
    );

    // The gateway delivers the same event again.
    let sent = sandbox_get(&world, "/v1/_sandbox/webhooks").await;
    let succeeded = sent
        .as_array()
        .expect("webhook list")
        .iter()
        .find(|w| w["type"] == "authorization.succeeded")
        .cloned()
        .expect("the challenge result was sent");
    let event_id = succeeded["id"].as_str().expect("event id").to_owned();
    let resend = reqwest::Client::new()
        .post(format!(
            "{}/v1/_sandbox/webhooks/{event_id}/resend",
            world.sandbox.sandbox_url()
        ))
        .bearer_auth(&world.env.payment_api_key)
        .send()
        .await
        .expect("resend");
    assert!(resend.status().is_success());
    eventually("the resend is delivered", SETTLE, || async {
        let sent = sandbox_get(&world, "/v1/_sandbox/webhooks").await;
        let deliveries = sent
            .as_array()
            .and_then(|all| all.iter().find(|w| w["id"] == event_id.as_str()))
            .and_then(|w| w["deliveries"].as_u64())
            .unwrap_or(0);
        if deliveries >= 2 {
            Ok(())
        } else {
            Err(format!("{deliveries} deliveries"))
        }
    })
    .await;
    let receipts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_receipts WHERE event_id = $1")
            .bind(&event_id)
            .fetch_one(world.env.db())
            .await
            .expect("receipts");
    assert_eq!(
        receipts, 1,
        "one receipt for the event, however often it came"
    );

    // A failure for the same authorization arrives late, out of order.
    let authorization_id =
        world.env.payloads_of(id, "PaymentAuthorized").await[0]["authorization_id"].clone();
    let late = json!({
        "id": "evt_late_failure",
        "type": "authorization.failed",
        "created_at": chrono::Utc::now(),
        "data": {"authorization_id": authorization_id, "order_id": id,
                 "code": "authentication_failed", "message": "late"}
    });
    let secret = world.env.payment_webhook_secret.as_bytes().to_vec();
    let (status, body) = post_webhook(&world, &late, &secret).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "ignored", "{body}");
    let (again, body) = post_webhook(&world, &late, &secret).await;
    assert_eq!((again, body["outcome"].clone()), (200, json!("duplicate")));
    let (forged, _) = post_webhook(&world, &late, b"not the secret").await;
    assert_eq!(
        forged, 401,
        "a webhook signed with another secret is refused"
    );

    assert_eq!(
        world.env.event_types_of_order(id).await,
        settled,
        "nothing changed"
    );
}

#[tokio::test]
async fn a_checkout_worker_killed_mid_flow_completes_every_order_exactly_once() {
    let env = TestEnv::new("checkout_crash").await;
    let worker_vars = [("WAYBILL_CHECKOUT_BATCH", "2")];
    let commands = env.start(Role::Commands).await;
    let sandbox = env.start_sandbox(&commands.command_url(), &[]).await;
    let mut worker = env.start_with(Role::Checkout, &worker_vars).await;
    let api = commands.api();
    let world_api = |path: &str, body: Value, key: String| {
        let api = &api;
        let path = path.to_owned();
        async move { api.post_json(&path, ADMIN_KEY, &key, &body).await }
    };
    let put = api
        .put_json(
            "/v1/inventory/locations/wh-east",
            ADMIN_KEY,
            "loc",
            &json!({"kind": "warehouse", "name": "East", "country": "US", "zone": 1}),
        )
        .await;
    assert!(put.status < 300, "{}", put.describe());
    let restock = world_api(
        "/v1/inventory/stock/CRASH-1/wh-east/restock",
        json!({"quantity": 100}),
        "restock".into(),
    )
    .await;
    assert!(restock.status < 300, "{}", restock.describe());

    let mut orders = Vec::new();
    for n in 0..30 {
        let body = order(&format!("CRASH-{n}"), "CRASH-1", 1, cards::APPROVED);
        let response = api.place_order(&format!("crash-{n}"), &body).await;
        assert_eq!(response.status, 201, "{}", response.describe());
        orders.push(response.json());
    }
    // Kill -9 while the worker is part way through.
    let pool = env.db().clone();
    eventually("a few captures", SETTLE, || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE event_type = 'PaymentCaptured'",
            )
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())?;
            if n >= 3 {
                Ok(n)
            } else {
                Err(format!("{n} captured"))
            }
        }
    })
    .await;
    worker.kill_hard();
    let captured_at_kill: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'PaymentCaptured'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert!(
        captured_at_kill < 30,
        "the kill landed mid-flow ({captured_at_kill} of 30 done)"
    );
    worker.restart().await;

    eventually("every flow finished", Duration::from_secs(90), || {
        let pool = pool.clone();
        async move {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM checkout_flows")
                .fetch_one(&pool)
                .await
                .map_err(|e| e.to_string())?;
            if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} flows open"))
            }
        }
    })
    .await;
    let per_order: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT stream_id, count(*) FILTER (WHERE event_type = 'PaymentCaptured'), \
                count(*) FILTER (WHERE event_type = 'OrderConfirmed') \
         FROM events GROUP BY stream_id",
    )
    .fetch_all(&pool)
    .await
    .expect("per-order counts");
    assert_eq!(per_order.len(), 30);
    for (stream, captures, confirmations) in &per_order {
        assert_eq!((*captures, *confirmations), (1, 1), "{stream}");
    }
    // The gateway moved each order's money once: captured == authorized == grand total.
    let client = reqwest::Client::new();
    let by_order: HashMap<String, i64> = orders
        .iter()
        .map(|o| {
            (
                o["order_id"].as_str().unwrap_or_default().to_owned(),
                o["totals"]["grand_total_minor"]
                    .as_i64()
                    .unwrap_or_default(),
            )
        })
        .collect();
    for (order_id, total) in &by_order {
        let authorized = env.payloads_of(order_id, "PaymentAuthorized").await;
        let authorization = authorized[0]["authorization_id"].as_str().expect("auth id");
        let at_gateway: Value = client
            .get(format!(
                "{}/v1/authorizations/{authorization}",
                sandbox.sandbox_url()
            ))
            .bearer_auth(&env.payment_api_key)
            .send()
            .await
            .expect("gateway GET")
            .json()
            .await
            .expect("gateway JSON");
        assert_eq!(
            at_gateway["captured"]["minor"].as_i64(),
            Some(*total),
            "{order_id}"
        );
    }
    let stock = api
        .command_get("/v1/inventory/stock/CRASH-1", ADMIN_KEY)
        .await
        .json();
    let level = &stock["levels"][0];
    assert_eq!(
        (level["reserved"].as_i64(), level["allocated"].as_i64()),
        (Some(0), Some(30))
    );
}

#[tokio::test]
async fn a_flash_sale_over_http_sells_exactly_the_stock() {
    let world = CheckoutWorld::start("checkout_flash", &[], &[("HOT-1", 20)]).await;
    let placements = (0..120).map(|n| {
        let api = &world.api;
        async move {
            let body = order(&format!("FLASH-{n}"), "HOT-1", 1, cards::APPROVED);
            let response = api.place_order(&format!("flash-{n}"), &body).await;
            assert_eq!(response.status, 201, "{}", response.describe());
            response.json()["order_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    });
    let ids = futures::future::join_all(placements).await;
    let mut confirmed = 0;
    let mut out_of_stock = 0;
    for id in &ids {
        let events = world.settled(id, None).await;
        if events.contains(&"OrderConfirmed".to_owned()) {
            confirmed += 1;
        } else if events.contains(&"InventoryReservationFailed".to_owned()) {
            out_of_stock += 1;
        }
    }
    assert_eq!((confirmed, out_of_stock), (20, 100));
    assert_eq!(
        world.stock("HOT-1").await,
        (20, 0, 20),
        "no unit sold twice"
    );
}

#[tokio::test]
async fn customers_cancelling_while_the_flow_runs_leave_no_stock_or_hold_behind() {
    let world = CheckoutWorld::start("checkout_cancels", &[], &[("TEE-C", 50)]).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let placed = world
            .place(&order(&format!("RACE-{n}"), "TEE-C", 2, cards::APPROVED))
            .await;
        ids.push(placed["order_id"].as_str().unwrap_or_default().to_owned());
    }
    // Three concurrent cancels per order, racing each other and the flow. A 503 with
    // Retry-After (the database pool busy on a loaded machine) is asked again with the same
    // key, as a client does.
    let api = &world.api;
    let cancels = ids.iter().flat_map(|id| {
        (0..3).map(move |k| async move {
            let key = format!("cancel-{id}-{k}");
            let mut attempts = 0;
            loop {
                let answer = api
                    .cancel_order(id, &key, &sample_cancel("customer_request"))
                    .await;
                attempts += 1;
                if answer.status != 503 || answer.header("retry-after").is_none() || attempts == 20
                {
                    return answer.status;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        })
    });
    let statuses = futures::future::join_all(cancels).await;
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 409)),
        "{statuses:?}"
    );
    for id in &ids {
        let events = world.settled(id, None).await;
        let cancelled = events.iter().filter(|e| *e == "OrderCancelled").count();
        let confirmed = events.iter().any(|e| e == "OrderConfirmed");
        let captured = events.iter().any(|e| e == "PaymentCaptured");
        if confirmed {
            // The flow confirmed first: capture is under way and cancels in that window are
            // refused. A cancel after the capture is recorded withdraws every unit, and the
            // money comes back as a cancellation refund.
            assert!(captured, "{events:?}");
            assert!(cancelled <= 1, "{events:?}");
            if cancelled == 1 {
                for expected in [
                    "OrderLinesCancelled",
                    "PaymentRefunded",
                    "InventoryReleased",
                ] {
                    assert!(
                        events.iter().any(|e| e == expected),
                        "{expected}: {events:?}"
                    );
                }
            }
        } else {
            assert_eq!(cancelled, 1, "exactly one cancel won: {events:?}");
            assert!(
                !confirmed || events.iter().any(|e| e == "InventoryReleased"),
                "{events:?}"
            );
            let authorized = events.iter().any(|e| e == "PaymentAuthorized");
            let voided = events.iter().any(|e| e == "PaymentVoided");
            assert_eq!(
                authorized, voided,
                "a hold taken is a hold voided: {events:?}"
            );
        }
    }
    let (on_hand, reserved, allocated) = world.stock("TEE-C").await;
    // Units stay allocated for the orders that were captured and stand.
    let standing_orders = {
        let mut n = 0;
        for id in &ids {
            let events = world.env.event_types_of_order(id).await;
            if events.iter().any(|e| e == "PaymentCaptured")
                && !events.iter().any(|e| e == "OrderCancelled")
            {
                n += 1;
            }
        }
        n
    };
    assert_eq!((on_hand, reserved, allocated), (50, 0, 2 * standing_orders));
}
