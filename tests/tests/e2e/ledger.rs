//! Money after checkout over the public API: refunds (partial, repeated, capped at what was
//! captured) and card disputes, against the real binary and our payment sandbox.

use serde_json::json;
use waybill_e2e::checkout::{cards, order, CheckoutWorld};
use waybill_e2e::{ADMIN_KEY, AGENT_KEY, FINANCE_KEY, SERVICE_KEY};

/// A captured order of `units` × 25.00 USD; returns its id and grand total in minor units.
async fn captured_order(
    world: &CheckoutWorld,
    reference: &str,
    sku: &str,
    units: u32,
) -> (String, i64) {
    let placed = world
        .place(&order(reference, sku, units, cards::APPROVED))
        .await;
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

async fn refund(
    world: &CheckoutWorld,
    id: &str,
    key: &str,
    bearer: &str,
    minor: i64,
) -> waybill_e2e::HttpResponse {
    world
        .api
        .post_json(
            &format!("/v1/orders/{id}/refunds"),
            bearer,
            key,
            &json!({"amount_minor": minor, "currency": "USD", "reason": "parcel arrived late"}),
        )
        .await
}

/// Waits until `count` refunds of the order were answered by the gateway.
async fn refunded(world: &CheckoutWorld, id: &str, count: usize) -> Vec<serde_json::Value> {
    world.wait_for_event(id, "PaymentRefunded", count).await
}

#[tokio::test]
async fn partial_refunds_add_up_and_a_refund_above_what_is_left_is_refused() {
    let world = CheckoutWorld::start("ledger_refunds", &[], &[("TEE-R", 10)]).await;
    let (id, total) = captured_order(&world, "REFUND-1", "TEE-R", 2).await;

    let first = refund(&world, &id, "refund-1-a", AGENT_KEY, 1000).await;
    assert_eq!(first.status, 202, "{}", first.describe());
    assert_eq!(first.json()["refundable_minor"], total - 1000);
    // The same key again: the same answer, nothing new.
    let replay = refund(&world, &id, "refund-1-a", AGENT_KEY, 1000).await;
    assert_eq!(replay.status, 202);
    assert_eq!(replay.json()["refund_id"], first.json()["refund_id"]);

    let second = refund(&world, &id, "refund-1-b", SERVICE_KEY, 1500).await;
    assert_eq!(second.status, 202, "{}", second.describe());
    let refunds = refunded(&world, &id, 2).await;
    let amounts: Vec<i64> = refunds
        .iter()
        .map(|r| r["amount"]["minor"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(amounts, vec![1000, 1500]);
    assert_eq!(
        world.env.payloads_of(&id, "RefundRequested").await.len(),
        2,
        "the replay requested nothing"
    );

    // More than is left: 422 naming the amount, and nothing recorded.
    let left = total - 2500;
    let above = refund(&world, &id, "refund-1-c", AGENT_KEY, left + 1).await;
    assert_eq!(above.status, 422, "{}", above.describe());
    assert_eq!(
        above.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(above.json()["field"], "amount_minor");
    assert!(
        above.json()["detail"]
            .as_str()
            .unwrap_or("")
            .contains("still refundable"),
        "{}",
        above.describe()
    );

    // The rest is refundable exactly.
    let rest = refund(&world, &id, "refund-1-d", ADMIN_KEY, left).await;
    assert_eq!(rest.status, 202, "{}", rest.describe());
    assert_eq!(rest.json()["refundable_minor"], 0);
    refunded(&world, &id, 3).await;
    let events = world.settled(&id, None).await;
    assert_eq!(events.iter().filter(|e| *e == "PaymentRefunded").count(), 3);

    // The customer sees each refund; the reason stays internal.
    let view = world.view_at(&id, events.len()).await;
    assert_eq!(view["payment"]["refunded_minor"], total);
    let timeline = view["timeline"].to_string();
    assert!(
        timeline.contains("Refund of 10.00 USD sent to your card"),
        "{timeline}"
    );
    assert!(
        !timeline.contains("late"),
        "reasons stay internal: {timeline}"
    );
}

#[tokio::test]
async fn bad_refund_requests_are_problems_naming_the_field() {
    let world = CheckoutWorld::start("ledger_refund_input", &[], &[("TEE-B", 10)]).await;
    let (id, _) = captured_order(&world, "REFUND-BAD", "TEE-B", 1).await;
    let cases = [
        (
            json!({"amount_minor": 0, "currency": "USD", "reason": "x"}),
            "amount_minor",
        ),
        (
            json!({"amount_minor": -100, "currency": "USD", "reason": "x"}),
            "amount_minor",
        ),
        (
            json!({"amount_minor": 100, "currency": "EUR", "reason": "x"}),
            "currency",
        ),
        (json!({"amount_minor": 100, "currency": "USD"}), "reason"),
        (
            json!({"amount_minor": "ten", "currency": "USD", "reason": "x"}),
            "amount_minor",
        ),
    ];
    for (i, (body, field)) in cases.iter().enumerate() {
        let response = world
            .api
            .post_json(
                &format!("/v1/orders/{id}/refunds"),
                AGENT_KEY,
                &format!("bad-{i}"),
                body,
            )
            .await;
        assert_eq!(response.status, 422, "{body}: {}", response.describe());
        assert_eq!(
            response.json()["field"],
            *field,
            "{body}: {}",
            response.describe()
        );
    }
    // Finance may not refund; an unknown order is 404.
    let finance = world
        .api
        .post_json(
            &format!("/v1/orders/{id}/refunds"),
            FINANCE_KEY,
            "fin-1",
            &cases[0].0,
        )
        .await;
    assert_eq!(finance.status, 403, "{}", finance.describe());
    let unknown = world
        .api
        .post_json(
            "/v1/orders/0193a1b2-0000-7000-8000-000000000099/refunds",
            AGENT_KEY,
            "unknown-1",
            &json!({"amount_minor": 100, "currency": "USD", "reason": "x"}),
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.describe());
    assert!(world
        .env
        .payloads_of(&id, "RefundRequested")
        .await
        .is_empty());
}

async fn evidence(
    world: &CheckoutWorld,
    id: &str,
    dispute: &str,
    key: &str,
    bearer: &str,
) -> waybill_e2e::HttpResponse {
    world
        .api
        .post_json(
            &format!("/v1/orders/{id}/disputes/{dispute}/evidence"),
            bearer,
            key,
            &json!({"text": "Signed proof of delivery to the billing address."}),
        )
        .await
}

#[tokio::test]
async fn a_lost_dispute_reverses_the_money_and_shows_on_the_order() {
    let world = CheckoutWorld::start("ledger_dispute_lost", &[], &[("TEE-D", 10)]).await;
    let (id, total) = captured_order(&world, "DISPUTE-LOST", "TEE-D", 2).await;
    let refund_response = refund(&world, &id, "dispute-refund", AGENT_KEY, 500).await;
    assert_eq!(
        refund_response.status,
        202,
        "{}",
        refund_response.describe()
    );
    world.wait_for_event(&id, "PaymentRefunded", 1).await;

    let dispute = world.open_dispute(&id).await;
    let opened = world.env.payloads_of(&id, "ChargebackOpened").await;
    assert_eq!(opened[0]["dispute_id"], dispute.as_str());
    assert_eq!(
        opened[0]["amount"]["minor"],
        total - 500,
        "what was not refunded"
    );
    assert_eq!(opened[0]["reason_code"], "product_not_received");
    // Disputed money cannot be refunded as well.
    let blocked = refund(&world, &id, "dispute-refund-2", AGENT_KEY, 100).await;
    assert_eq!(blocked.status, 422, "{}", blocked.describe());

    let sent = evidence(&world, &id, &dispute, "evidence-1", FINANCE_KEY).await;
    assert_eq!(sent.status, 200, "{}", sent.describe());
    let replay = evidence(&world, &id, &dispute, "evidence-1", FINANCE_KEY).await;
    assert_eq!(replay.body, sent.body, "a retry is answered from the first");
    assert_eq!(
        world
            .env
            .payloads_of(&id, "ChargebackEvidenceSubmitted")
            .await
            .len(),
        1
    );
    let service = evidence(&world, &id, &dispute, "evidence-2", SERVICE_KEY).await;
    assert_eq!(service.status, 403, "{}", service.describe());
    let unknown = evidence(&world, &id, "dp_unknown", "evidence-3", AGENT_KEY).await;
    assert_eq!(unknown.status, 404, "{}", unknown.describe());
    assert_eq!(
        unknown.json()["type"],
        "https://waybill.dev/problems/dispute-not-found"
    );

    world.decide_dispute(&dispute, "lost").await;
    let lost = world.wait_for_event(&id, "ChargebackLost", 1).await;
    assert_eq!(lost[0]["amount"]["minor"], total - 500);
    // Evidence after the decision is refused.
    let late = evidence(&world, &id, &dispute, "evidence-4", AGENT_KEY).await;
    assert_eq!(late.status, 409, "{}", late.describe());

    let events = world.env.event_types_of_order(&id).await;
    let view = world.view_at(&id, events.len()).await;
    assert_eq!(view["payment"]["reversed_minor"], total - 500);
    assert_eq!(view["payment"]["refunded_minor"], 500);
    let timeline = view["timeline"].to_string();
    assert!(
        timeline.contains("reversed after a dispute with your bank"),
        "{timeline}"
    );
    assert!(
        !timeline.contains("product_not_received"),
        "reason codes stay internal: {timeline}"
    );
    assert!(
        !timeline.contains("proof of delivery"),
        "evidence stays internal: {timeline}"
    );
}

#[tokio::test]
async fn a_won_dispute_moves_no_money() {
    let world = CheckoutWorld::start("ledger_dispute_won", &[], &[("TEE-W", 10)]).await;
    let (id, total) = captured_order(&world, "DISPUTE-WON", "TEE-W", 1).await;
    let dispute = world.open_dispute(&id).await;
    let sent = evidence(&world, &id, &dispute, "won-evidence", AGENT_KEY).await;
    assert_eq!(sent.status, 200, "{}", sent.describe());
    world.decide_dispute(&dispute, "won").await;
    world.wait_for_event(&id, "ChargebackWon", 1).await;
    assert!(world
        .env
        .payloads_of(&id, "ChargebackLost")
        .await
        .is_empty());
    let events = world.env.event_types_of_order(&id).await;
    let view = world.view_at(&id, events.len()).await;
    assert_eq!(view["payment"]["reversed_minor"], 0);
    assert_eq!(view["payment"]["captured_minor"], total);
    // Once won, the money is refundable again.
    let refund_response = refund(&world, &id, "after-won", AGENT_KEY, total).await;
    assert_eq!(
        refund_response.status,
        202,
        "{}",
        refund_response.describe()
    );
}

/// Refund lines per order in the sandbox's settlement report for today: what the gateway did.
async fn gateway_refunds(
    sandbox: &waybill_e2e::WaybillProcess,
    key: &str,
) -> std::collections::HashMap<String, Vec<i64>> {
    let today = chrono::Utc::now().date_naive().to_string();
    let csv = reqwest::Client::new()
        .get(format!(
            "{}/v1/settlement-reports?date={today}",
            sandbox.sandbox_url()
        ))
        .bearer_auth(key)
        .send()
        .await
        .expect("report")
        .text()
        .await
        .expect("report text");
    let mut out: std::collections::HashMap<String, Vec<i64>> = Default::default();
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.get(1) == Some(&"refund") {
            out.entry(cells[2].to_owned())
                .or_default()
                .push(-cells[3].parse::<i64>().unwrap_or(0));
        }
    }
    out
}

#[tokio::test]
async fn a_checkout_worker_killed_mid_refunds_refunds_each_exactly_once() {
    use waybill_e2e::{eventually, Role, TestEnv};
    let env = TestEnv::new("ledger_refund_crash").await;
    let commands = env.start(Role::Commands).await;
    let sandbox = env.start_sandbox(&commands.command_url(), &[]).await;
    let mut worker = env
        .start_with(Role::Checkout, &[("WAYBILL_CHECKOUT_BATCH", "2")])
        .await;
    let api = commands.api();
    let put = api
        .put_json(
            "/v1/inventory/locations/wh-east",
            ADMIN_KEY,
            "loc",
            &json!({"kind": "warehouse", "name": "East", "country": "US", "zone": 1}),
        )
        .await;
    assert!(put.status < 300, "{}", put.describe());
    let restock = api
        .post_json(
            "/v1/inventory/stock/RF-1/wh-east/restock",
            ADMIN_KEY,
            "restock",
            &json!({"quantity": 100}),
        )
        .await;
    assert!(restock.status < 300, "{}", restock.describe());
    let mut ids = Vec::new();
    for n in 0..20 {
        let body = order(&format!("RF-{n}"), "RF-1", 1, cards::APPROVED);
        let response = api.place_order(&format!("rf-{n}"), &body).await;
        assert_eq!(response.status, 201, "{}", response.describe());
        ids.push(
            response.json()["order_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let pool = env.db().clone();
    let count = |event_type: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE event_type = $1")
                .bind(event_type)
                .fetch_one(&pool)
                .await
                .map_err(|e| e.to_string())
        }
    };
    eventually(
        "every order captured",
        waybill_e2e::checkout::SETTLE,
        || async {
            let n = count("PaymentCaptured").await?;
            if n == 20 {
                Ok(())
            } else {
                Err(format!("{n} captured"))
            }
        },
    )
    .await;
    // Two partial refunds per order: 40 gateway calls for the worker.
    for id in &ids {
        for (i, minor) in [300, 200].into_iter().enumerate() {
            let response = api
                .post_json(
                    &format!("/v1/orders/{id}/refunds"),
                    AGENT_KEY,
                    &format!("rf-{id}-{i}"),
                    &json!({"amount_minor": minor, "currency": "USD", "reason": "crash test"}),
                )
                .await;
            assert_eq!(response.status, 202, "{}", response.describe());
        }
    }
    eventually("a few refunds", waybill_e2e::checkout::SETTLE, || async {
        let n = count("PaymentRefunded").await?;
        if n >= 2 {
            Ok(())
        } else {
            Err(format!("{n} refunded"))
        }
    })
    .await;
    worker.kill_hard();
    let at_kill = count("PaymentRefunded").await.unwrap_or(0);
    assert!(
        at_kill < 40,
        "the kill landed mid-refunds ({at_kill} of 40 done)"
    );
    worker.restart().await;
    eventually(
        "every refund answered",
        std::time::Duration::from_secs(90),
        || async {
            let n = count("PaymentRefunded").await?;
            if n == 40 {
                Ok(())
            } else {
                Err(format!("{n} refunded"))
            }
        },
    )
    .await;
    let at_gateway = gateway_refunds(&sandbox, &env.payment_api_key).await;
    for id in &ids {
        let mut amounts = at_gateway.get(id).cloned().unwrap_or_default();
        amounts.sort_unstable();
        assert_eq!(
            amounts,
            vec![200, 300],
            "the gateway refunded {id} once per refund"
        );
        let recorded = env.payloads_of(id, "PaymentRefunded").await;
        assert_eq!(recorded.len(), 2, "{id}");
    }
}

/// Posts `body` to the payment webhook endpoint signed with the test's webhook secret.
async fn gateway_webhook(
    world: &CheckoutWorld,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let raw = serde_json::to_vec(body).expect("json");
    let secret = world.env.payment_webhook_secret.as_bytes();
    let signature =
        waybill_write_side::payment::webhook::sign(secret, chrono::Utc::now().timestamp(), &raw);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/payments", world.api.command_url))
        .header("Waybill-Gateway-Signature", signature)
        .header("Content-Type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("webhook POST");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn a_dispute_decided_before_its_opening_arrived_is_refused_until_the_opening_is_recorded() {
    let world = CheckoutWorld::start("ledger_dispute_early", &[], &[("TEE-E", 10)]).await;
    let (id, total) = captured_order(&world, "EARLY-1", "TEE-E", 2).await;
    let capture_id = world.env.payloads_of(&id, "PaymentCaptured").await[0]["capture_id"].clone();
    let money = json!({"minor": total, "currency": "USD"});
    let lost = json!({
        "id": "evt_early_lost",
        "type": "dispute.lost",
        "created_at": chrono::Utc::now(),
        "data": {"dispute_id": "dp_early", "capture_id": capture_id, "order_id": id, "amount": money}
    });

    // The decision outruns the opening: refused (no receipt), so the gateway redelivers it.
    let (status, body) = gateway_webhook(&world, &lost).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["type"], "https://waybill.dev/problems/webhook-too-early",
        "{body}"
    );
    assert!(world
        .env
        .payloads_of(&id, "ChargebackLost")
        .await
        .is_empty());

    let opened = json!({
        "id": "evt_early_opened",
        "type": "dispute.opened",
        "created_at": chrono::Utc::now(),
        "data": {"dispute_id": "dp_early", "capture_id": capture_id, "order_id": id,
                 "amount": money, "reason": "fraudulent",
                 "evidence_due_by": chrono::Utc::now() + chrono::Duration::days(7)}
    });
    let (status, body) = gateway_webhook(&world, &opened).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (200, json!("applied")),
        "{body}"
    );

    // The redelivered decision now applies, once.
    let (status, body) = gateway_webhook(&world, &lost).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (200, json!("applied")),
        "{body}"
    );
    let (status, body) = gateway_webhook(&world, &lost).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (200, json!("duplicate")),
        "{body}"
    );
    let recorded = world.env.payloads_of(&id, "ChargebackLost").await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["amount"]["minor"], total);
}
