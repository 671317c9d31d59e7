//! The finance read side over the public API: money events reach ClickHouse through the
//! analytics projector, the finance summary equals sums computed from the event log, only the
//! finance (and admin) role may read it, and a projector killed with -9 mid-stream catches up
//! to exactly the event log's totals.

use std::time::Duration;

use serde_json::{json, Value};
use waybill_e2e::checkout::{cards, order, CheckoutWorld, SETTLE};
use waybill_e2e::Role;
use waybill_e2e::{eventually, HttpResponse, TestEnv, AGENT_KEY, FINANCE_KEY, SERVICE_KEY};

/// `GET <query API><path>` with an optional bearer key.
/// A finance read as a client makes it: a `503 view-catching-up` (the analytics view is filling
/// its store from the log, as it does when a process starts on a new database) is asked again
/// after a moment, up to a minute.
async fn finance_get(query_url: &str, path: &str, bearer: Option<&str>) -> HttpResponse {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut request = client.get(format!("{query_url}{path}"));
        if let Some(key) = bearer {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("finance request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("body");
        let catching_up =
            status == 503 && String::from_utf8_lossy(&body).contains("/view-catching-up");
        if !catching_up || tokio::time::Instant::now() >= deadline {
            return HttpResponse {
                status,
                headers,
                body,
            };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Σ over the event log of the test database: `(captured, refunded, chargebacks lost, orders,
/// gross sales)`.
async fn log_sums(env: &TestEnv) -> (i64, i64, i64, i64, i64) {
    let sum = |event_type: &'static str, path: &'static str| {
        let pool = env.db().clone();
        async move {
            let total: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT sum((payload #>> '{{{path}}}')::bigint)::bigint FROM events \
                 WHERE event_type = $1"
            ))
            .bind(event_type)
            .fetch_one(&pool)
            .await
            .expect("sum from the event log");
            total.unwrap_or(0)
        }
    };
    let orders: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .fetch_one(env.db())
            .await
            .expect("orders");
    (
        sum("PaymentCaptured", "amount,minor").await,
        sum("PaymentRefunded", "amount,minor").await,
        sum("ChargebackLost", "amount,minor").await,
        orders,
        sum("OrderPlaced", "totals,grand_total,minor").await,
    )
}

/// The summary rows of today summed over channels and currencies:
/// `(captures, refunds, chargebacks, orders, gross sales, net, fees)`.
fn summary_totals(body: &Value) -> (i64, i64, i64, i64, i64, i64, i64) {
    let mut t = (0, 0, 0, 0, 0, 0, 0);
    for row in body["items"].as_array().into_iter().flatten() {
        let n = |f: &str| row[f].as_i64().unwrap_or(0);
        t.0 += n("captures");
        t.1 += n("refunds");
        t.2 += n("chargebacks");
        t.3 += n("orders");
        t.4 += n("gross_sales");
        t.5 += n("net");
        t.6 += n("fees");
    }
    t
}

fn today_query() -> String {
    let today = chrono::Utc::now().date_naive();
    format!("/v1/finance/summary?from={today}&to={today}")
}

#[tokio::test]
async fn captures_partial_refunds_and_a_lost_chargeback_reach_the_finance_summary() {
    let world = CheckoutWorld::start("finance_summary", &[], &[("FIN-1", 20)]).await;
    let mut orders = Vec::new();
    for i in 0..3 {
        let placed = world
            .place(&order(&format!("FIN-{i}"), "FIN-1", 1 + i, cards::APPROVED))
            .await;
        orders.push(placed["order_id"].as_str().expect("id").to_owned());
    }
    for id in &orders {
        let events = world.settled(id, None).await;
        assert_eq!(events.last().map(String::as_str), Some("PaymentCaptured"));
    }
    // A partial refund of the first order.
    let refund = world
        .api
        .post_json(
            &format!("/v1/orders/{}/refunds", orders[0]),
            AGENT_KEY,
            "fin-refund-1",
            &json!({"amount_minor": 700, "currency": "USD", "reason": "late"}),
        )
        .await;
    assert_eq!(refund.status, 202, "{}", refund.describe());
    // A dispute on the second order's capture, lost at the (simulated) gateway.
    let captured = world.env.payloads_of(&orders[1], "PaymentCaptured").await;
    let capture_id = captured[0]["capture_id"].as_str().expect("capture id");
    let sandbox = world.sandbox.sandbox_url();
    let client = reqwest::Client::new();
    let opened: Value = client
        .post(format!("{sandbox}/v1/_sandbox/disputes"))
        .bearer_auth(&world.env.payment_api_key)
        .json(&json!({"capture_id": capture_id, "reason": "fraudulent"}))
        .send()
        .await
        .expect("open dispute")
        .json()
        .await
        .expect("dispute json");
    let dispute = opened["id"].as_str().expect("dispute id").to_owned();
    // Decided only once the opening is recorded (the gateway's webhooks may overtake each other).
    let env = &world.env;
    eventually("ChargebackOpened recorded", SETTLE, || async {
        if env
            .payloads_of(&orders[1], "ChargebackOpened")
            .await
            .is_empty()
        {
            Err("not yet".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    let decided = client
        .post(format!("{sandbox}/v1/_sandbox/disputes/{dispute}/decide"))
        .bearer_auth(&world.env.payment_api_key)
        .json(&json!({"outcome": "lost"}))
        .send()
        .await
        .expect("decide dispute");
    assert!(decided.status().is_success(), "{}", decided.status());
    for (id, event) in [
        (&orders[0], "PaymentRefunded"),
        (&orders[1], "ChargebackLost"),
    ] {
        let env = &world.env;
        eventually(&format!("{event} of {id}"), SETTLE, || async {
            if env.payloads_of(id, event).await.is_empty() {
                Err("not yet".to_owned())
            } else {
                Ok(())
            }
        })
        .await;
    }

    let (captured, refunded, lost, placed, gross) = log_sums(&world.env).await;
    assert!(
        captured > 0 && refunded == 700 && lost > 0,
        "{captured} {refunded} {lost}"
    );
    let query_url = world.waybill.query_url();
    let summary = eventually("finance summary equals the event log", SETTLE, || async {
        let response = finance_get(&query_url, &today_query(), Some(FINANCE_KEY)).await;
        if response.status != 200 {
            return Err(response.describe());
        }
        let body = response.json();
        let (c, r, l, o, g, _, _) = summary_totals(&body);
        if (c, r, l, o, g) == (captured, refunded, lost, placed, gross) {
            Ok(body)
        } else {
            Err(format!("summary {body}"))
        }
    })
    .await;
    let (_, _, _, _, _, net, fees) = summary_totals(&summary);
    assert_eq!(net, captured - refunded - lost - fees);

    // CSV export of the same rows.
    let csv = finance_get(
        &query_url,
        &format!("{}&format=csv", today_query()),
        Some(FINANCE_KEY),
    )
    .await;
    assert_eq!(csv.status, 200);
    assert!(csv
        .text()
        .starts_with("day,channel,currency,orders,gross_sales"));

    // Everyone but finance and admin is refused.
    for key in [AGENT_KEY, SERVICE_KEY] {
        let refused = finance_get(&query_url, &today_query(), Some(key)).await;
        assert_eq!(refused.status, 403, "{}", refused.describe());
        assert_eq!(
            refused.header("content-type"),
            Some("application/problem+json")
        );
    }
    assert_eq!(
        finance_get(&query_url, &today_query(), None).await.status,
        401
    );
    let bad = finance_get(
        &query_url,
        "/v1/finance/summary?from=soon",
        Some(FINANCE_KEY),
    )
    .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["field"], "from");
}

#[tokio::test]
async fn a_projector_killed_mid_stream_catches_up_to_the_event_logs_totals() {
    let env = TestEnv::new("finance_projector_crash").await;
    let no_checkout = [("WAYBILL_CHECKOUT_WORKER", "false")];
    let commands = env.start_with(Role::Commands, &no_checkout).await;
    let _relay = env.start_with(Role::Relay, &no_checkout).await;
    let query = env.start_with(Role::Query, &no_checkout).await;
    let mut projector = env.start_with(Role::Projector, &no_checkout).await;
    let api = commands.api();
    let query_url = query.query_url();
    let orders_seen = || async {
        let response = finance_get(&query_url, &today_query(), Some(FINANCE_KEY)).await;
        if response.status != 200 {
            return 0;
        }
        summary_totals(&response.json()).3
    };

    let mut placed = 0;
    let mut killed_at = None;
    for i in 0..400 {
        let body = waybill_e2e::sample_order(&format!("CRASH-{i}"));
        let response = api.place_order(&format!("crash-{i}"), &body).await;
        assert_eq!(response.status, 201, "{}", response.describe());
        placed += 1;
        if killed_at.is_none() && i >= 100 && i % 20 == 0 {
            let seen = orders_seen().await;
            if seen > 0 {
                projector.kill_hard();
                killed_at = Some(seen);
            }
        }
    }
    let seen_at_kill = killed_at.expect("the projector wrote something before it was killed");
    assert!(
        seen_at_kill < placed,
        "killed after {seen_at_kill} of {placed}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    projector.restart().await;

    let (_, _, _, orders, gross) = log_sums(&env).await;
    assert_eq!(orders, placed);
    eventually("ClickHouse totals equal the event log", SETTLE, || async {
        let response = finance_get(&query_url, &today_query(), Some(FINANCE_KEY)).await;
        let (_, _, _, o, g, _, _) = summary_totals(&response.json());
        if (o, g) == (orders, gross) {
            Ok(())
        } else {
            Err(format!(
                "{o} orders / {g} gross, log has {orders} / {gross}"
            ))
        }
    })
    .await;
}

/// Runs `waybill reconcile --from <day>` in the test's environment; returns its output.
async fn reconcile(env: &TestEnv, day: &str) -> String {
    let mut command = tokio::process::Command::new(waybill_e2e::waybill_binary());
    command.env_clear();
    for (key, value) in env.process_env(&[]) {
        command.env(key, value);
    }
    let output = command
        .args(["reconcile", "--from", day])
        .current_dir(&env.log_dir)
        .output()
        .await
        .expect("run waybill reconcile");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "waybill reconcile failed: {text}");
    text
}

/// `(item_key, outcome)` of the reconciliation report's discrepancies, once the analytics view
/// has the report lines.
async fn discrepancies(query_url: &str, day: &str) -> Vec<(String, String)> {
    let response = finance_get(
        query_url,
        &format!("/v1/finance/reconciliation?from={day}&to={day}"),
        Some(FINANCE_KEY),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.describe());
    let mut items: Vec<(String, String)> = response.json()["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["item_key"].as_str().unwrap_or("").to_owned(),
                i["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn an_awkward_settlement_report_yields_exactly_its_discrepancies_and_a_late_refund_matches_later(
) {
    let world = CheckoutWorld::start("finance_reconcile", &[], &[("REC-1", 10)]).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let placed = world
            .place(&order(&format!("REC-{i}"), "REC-1", 1, cards::APPROVED))
            .await;
        let id = placed["order_id"].as_str().expect("id").to_owned();
        let events = world.settled(&id, None).await;
        assert_eq!(events.last().map(String::as_str), Some("PaymentCaptured"));
        ids.push(id);
    }
    let refund = world
        .api
        .post_json(
            &format!("/v1/orders/{}/refunds", ids[3]),
            AGENT_KEY,
            "rec-refund",
            &json!({"amount_minor": 300, "currency": "USD", "reason": "late"}),
        )
        .await;
    assert_eq!(refund.status, 202, "{}", refund.describe());
    world.wait_for_event(&ids[3], "PaymentRefunded", 1).await;
    let (status, set) = world
        .sandbox_call(
            reqwest::Method::PUT,
            "/v1/_sandbox/settlement-quirks",
            &json!({"quirks": ["missing", "off_by_one_cent", "unexpected_fee", "late_refund", "conversion", "duplicate"]}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    let today = chrono::Utc::now().date_naive().to_string();
    let body = json!({"gateway": "sandbox", "date": today});
    for key in ["rec-import-1", "rec-import-2"] {
        // The second is a new request for the same report: recorded once all the same.
        let imported = world
            .api
            .post_json("/v1/settlement/imports", FINANCE_KEY, key, &body)
            .await;
        assert!(
            imported.status == 201 || imported.status == 200,
            "{}",
            imported.describe()
        );
    }

    let capture_of = |i: usize| {
        let env = &world.env;
        let id = ids[i].clone();
        async move {
            env.payloads_of(&id, "PaymentCaptured").await[0]["capture_id"]
                .as_str()
                .expect("capture id")
                .to_owned()
        }
    };
    let (c1, c2, c4) = (
        capture_of(0).await,
        capture_of(1).await,
        capture_of(3).await,
    );
    let refund_id = world.env.payloads_of(&ids[3], "PaymentRefunded").await[0]["gateway_refund_id"]
        .as_str()
        .expect("refund id")
        .to_owned();
    let fee_id = format!("fee_{}_account", today.replace('-', ""));
    let query_url = world.waybill.query_url();
    let mut expected = vec![
        (format!("capture:{c1}"), "missing_in_report".to_owned()),
        (format!("capture:{c2}"), "amount_mismatch".to_owned()),
        (format!("fee:{fee_id}"), "fee_mismatch".to_owned()),
        (
            format!("refund:{refund_id}"),
            "missing_in_report".to_owned(),
        ),
    ];
    // The report's last transaction line (the 4th capture) appears twice: the fifth item.
    let duplicate_prefix = format!("capture:{c4}:line");
    let exactly_expected = |found: &[(String, String)], expected: &[(String, String)]| {
        let duplicates: Vec<&(String, String)> = found
            .iter()
            .filter(|(key, outcome)| outcome == "duplicate" && key.starts_with(&duplicate_prefix))
            .collect();
        found.len() == expected.len() + 1
            && duplicates.len() == 1
            && expected.iter().all(|item| found.contains(item))
    };
    // Reconciled until the analytics view holds every order event and the report (a run
    // before that sees a partial ledger); the deadline fails the test if it never matches.
    eventually("the awkward report reconciled", SETTLE, || async {
        reconcile(&world.env, &today).await;
        let found = discrepancies(&query_url, &today).await;
        if exactly_expected(&found, &expected) {
            Ok(())
        } else {
            Err(format!("{found:?}"))
        }
    })
    .await;

    // Tomorrow's report carries the refund: reconciling today again, it matches.
    let (status, set) = world
        .sandbox_call(
            reqwest::Method::PUT,
            "/v1/_sandbox/settlement-quirks",
            &json!({"quirks": ["late_refund"]}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string();
    let next = world
        .api
        .post_json(
            "/v1/settlement/imports",
            FINANCE_KEY,
            "rec-import-tomorrow",
            &json!({"gateway": "sandbox", "date": tomorrow}),
        )
        .await;
    assert_eq!(next.status, 201, "{}", next.describe());
    expected.retain(|(key, _)| !key.starts_with("refund:"));
    eventually("the late refund matched", SETTLE, || async {
        reconcile(&world.env, &today).await;
        let found = discrepancies(&query_url, &today).await;
        if exactly_expected(&found, &expected) {
            Ok(())
        } else {
            Err(format!("{found:?}"))
        }
    })
    .await;
}

/// Text from outside (a gateway's payout ids) that a spreadsheet would run as a formula is
/// exported as text (`'=…`, quoted), while negative amounts stay numbers.
#[tokio::test]
async fn csv_exports_neutralise_formulas_and_keep_negative_numbers() {
    let world = CheckoutWorld::start("finance_csv_formulas", &[], &[]).await;
    let day = "2026-11-25";
    let csv = format!(
        "transaction_id,type,order_id,gross_minor,fee_minor,net_minor,currency,original_minor,original_currency,payout_id,transaction_date,settlement_date\n\
re_1,refund,,-1000,0,-1000,USD,,,=HYPERLINK(\"http://x\"),{day},{day}\n\
fee_1,fee,,0,250,-250,USD,,,@SUM(A1),{day},{day}\n"
    );
    let imported = world
        .api
        .post_json(
            "/v1/settlement/imports",
            FINANCE_KEY,
            "formula-import",
            &json!({"gateway": "sandbox", "date": day, "csv": csv}),
        )
        .await;
    assert_eq!(imported.status, 201, "{}", imported.describe());
    let query_url = world.waybill.query_url();
    let text = eventually("both payouts exported", SETTLE, || async {
        let response = finance_get(
            &query_url,
            &format!("/v1/finance/payouts?from={day}&to={day}&format=csv"),
            Some(FINANCE_KEY),
        )
        .await;
        let text = response.text();
        if response.status == 200 && text.lines().count() == 3 {
            Ok(text)
        } else {
            Err(response.describe())
        }
    })
    .await;
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let hyperlink = rows
        .iter()
        .find(|r| r.contains("HYPERLINK"))
        .expect("the HYPERLINK payout");
    assert!(
        hyperlink.starts_with("\"'=HYPERLINK(\"\"http://x\"\")\","),
        "{hyperlink}"
    );
    // Amounts are decimals by the currency's exponent, and negative ones stay numbers.
    assert!(hyperlink.contains(",-10.00,"), "{hyperlink}");
    let sum = rows
        .iter()
        .find(|r| r.contains("SUM"))
        .expect("the SUM payout");
    assert!(sum.starts_with("\"'@SUM(A1)\","), "{sum}");
    assert!(sum.contains(",-2.50,"), "{sum}");
    assert!(
        rows.iter()
            .all(|r| !r.starts_with('=') && !r.starts_with('@')),
        "{text}"
    );
}

/// A yen capture whose gateway fee is 2.9 % and no fixed part (a fixed 0.30 is ¥0, not ¥30)
/// reconciles as matched, and the finance API writes yen amounts without decimals.
#[tokio::test]
async fn a_yen_capture_with_its_fee_in_yen_reconciles_and_is_shown_in_whole_yen() {
    let world = CheckoutWorld::start("finance_yen", &[], &[("YEN-1", 5)]).await;
    let mut body = order("YEN-1", "YEN-1", 1, cards::APPROVED);
    body["currency"] = json!("JPY");
    body["lines"][0]["unit_price_minor"] = json!(3766);
    body["lines"][0]["tax_minor"] = json!(0);
    body["shipping"] = json!({"method": "standard", "price_minor": 0, "tax_minor": 0});
    let placed = world.place(&body).await;
    let id = placed["order_id"].as_str().expect("id").to_owned();
    let events = world.settled(&id, None).await;
    assert_eq!(events.last().map(String::as_str), Some("PaymentCaptured"));
    let captured = &world.env.payloads_of(&id, "PaymentCaptured").await[0];
    let capture_id = captured["capture_id"].as_str().expect("capture id");
    let gross = captured["amount"]["minor"].as_i64().expect("amount");
    assert_eq!(captured["amount"]["currency"], "JPY");
    // 2.9 % of ¥3,766 = ¥109.2 → ¥109, and ¥0 fixed.
    let fee = (gross * 290 + 5_000) / 10_000;
    let today = chrono::Utc::now().date_naive().to_string();
    let csv = format!(
        "transaction_id,type,order_id,gross_minor,fee_minor,net_minor,currency,original_minor,original_currency,payout_id,transaction_date,settlement_date\n\
{capture_id},capture,{id},{gross},{fee},{net},JPY,,,po_yen,{today},{today}\n",
        net = gross - fee
    );
    let imported = world
        .api
        .post_json(
            "/v1/settlement/imports",
            FINANCE_KEY,
            "yen-import",
            &json!({"gateway": "sandbox", "date": today, "csv": csv}),
        )
        .await;
    assert_eq!(imported.status, 201, "{}", imported.describe());

    let query_url = world.waybill.query_url();
    eventually(
        "the yen capture reconciled without discrepancy",
        SETTLE,
        || async {
            reconcile(&world.env, &today).await;
            let found = discrepancies(&query_url, &today).await;
            let matched = finance_get(
                &query_url,
                &format!("/v1/finance/reconciliation?from={today}&to={today}&outcome=matched"),
                Some(FINANCE_KEY),
            )
            .await
            .json();
            let items = matched["items"].as_array().cloned().unwrap_or_default();
            if found.is_empty() && items.len() == 1 {
                Ok(items[0].clone())
            } else {
                Err(format!("discrepancies {found:?}, matched {items:?}"))
            }
        },
    )
    .await;

    let summary = eventually("the yen summary", SETTLE, || async {
        let response = finance_get(
            &query_url,
            &format!("/v1/finance/summary?from={today}&to={today}&currency=JPY"),
            Some(FINANCE_KEY),
        )
        .await;
        let body = response.json();
        match body["items"].as_array().and_then(|i| i.first()) {
            Some(row) if row["captures"] == json!(gross) && row["fees"] == json!(fee) => {
                Ok(row.clone())
            }
            _ => Err(response.describe()),
        }
    })
    .await;
    assert_eq!(summary["formatted"]["captures"], json!(gross.to_string()));
    assert_eq!(summary["formatted"]["fees"], json!(fee.to_string()));
    let csv = finance_get(
        &query_url,
        &format!("/v1/finance/summary?from={today}&to={today}&currency=JPY&format=csv"),
        Some(FINANCE_KEY),
    )
    .await
    .text();
    let row = csv.lines().nth(1).expect("a CSV row");
    assert!(
        row.contains(&format!(",JPY,1,{gross},{gross},0,{fee},0,")),
        "{csv}"
    );
}
