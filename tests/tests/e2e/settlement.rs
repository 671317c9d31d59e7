//! Settlement reports end to end: the sandbox's daily report imported over the public API,
//! idempotently, with its awkward cases recorded as the gateway wrote them, and bad reports
//! refused naming the line and column.

use serde_json::{json, Value};
use waybill_e2e::checkout::{cards, order, CheckoutWorld};
use waybill_e2e::{AGENT_KEY, FINANCE_KEY};

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

async fn import(world: &CheckoutWorld, key: &str, body: &Value) -> waybill_e2e::HttpResponse {
    world
        .api
        .post_json("/v1/settlement/imports", FINANCE_KEY, key, body)
        .await
}

/// `(stream_id, event_type, payload)` of every settlement and payout event.
async fn settlement_events(world: &CheckoutWorld) -> Vec<(String, String, Value)> {
    sqlx::query_as(
        "SELECT stream_id, event_type, payload FROM events \
         WHERE stream_id LIKE 'settlement-%' OR stream_id LIKE 'payout-%' \
         ORDER BY stream_id, stream_version",
    )
    .fetch_all(world.env.db())
    .await
    .expect("read settlement events")
}

/// Places and captures `n` orders of 1 × 25.00 USD (+ tax and shipping); returns their ids.
async fn captured_orders(world: &CheckoutWorld, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let placed = world
            .place(&order(
                &format!("{prefix}-{i}"),
                "TEE-S",
                1,
                cards::APPROVED,
            ))
            .await;
        let id = placed["order_id"].as_str().expect("id").to_owned();
        let events = world.settled(&id, None).await;
        assert_eq!(events.last().map(String::as_str), Some("PaymentCaptured"));
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn importing_the_days_report_twice_records_it_once_with_its_payout() {
    let world = CheckoutWorld::start("settlement_twice", &[], &[("TEE-S", 10)]).await;
    let ids = captured_orders(&world, "SETTLE", 2).await;
    let refund = world
        .api
        .post_json(
            &format!("/v1/orders/{}/refunds", ids[0]),
            AGENT_KEY,
            "settle-refund",
            &json!({"amount_minor": 700, "currency": "USD", "reason": "scuffed"}),
        )
        .await;
    assert_eq!(refund.status, 202, "{}", refund.describe());
    world.wait_for_event(&ids[0], "PaymentRefunded", 1).await;

    let body = json!({"gateway": "sandbox", "date": today()});
    let first = import(&world, "import-1", &body).await;
    assert_eq!(first.status, 201, "{}", first.describe());
    let answer = first.json();
    assert_eq!(answer["status"], "imported");
    assert_eq!(answer["lines"], 3, "two captures and a refund: {answer}");
    let payouts = answer["payouts"].as_array().cloned().unwrap_or_default();
    assert_eq!(payouts.len(), 1, "{answer}");
    assert_eq!(payouts[0]["transactions"].as_array().map(Vec::len), Some(3));

    // The payout is the sum of the lines' net amounts, which the test recomputes from the report.
    let events = settlement_events(&world).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let report = events
        .iter()
        .find(|(_, t, _)| t == "SettlementReportImported")
        .expect("report recorded");
    assert_eq!(
        report.0,
        format!("settlement-{}", answer["report_id"].as_str().unwrap_or(""))
    );
    let lines = report.2["lines"].as_array().cloned().unwrap_or_default();
    let net: i64 = lines
        .iter()
        .map(|l| l["net"]["minor"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(payouts[0]["amount_minor"], net);
    let refund_line = lines
        .iter()
        .find(|l| l["kind"] == "refund")
        .expect("refund line");
    assert_eq!(refund_line["gross"]["minor"], -700);
    assert_eq!(refund_line["order_id"], ids[0].as_str());
    let capture_line = lines
        .iter()
        .find(|l| l["kind"] == "capture")
        .expect("capture line");
    assert!(
        capture_line["fee"]["minor"].as_i64().unwrap_or(0) > 0,
        "fees are recorded: {capture_line}"
    );

    // Again under another key: nothing new. Under the same key: the first answer replayed.
    let again = import(&world, "import-2", &body).await;
    assert_eq!(again.status, 200, "{}", again.describe());
    assert_eq!(again.json()["status"], "already_imported");
    let replay = import(&world, "import-1", &body).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.body, first.body);
    assert_eq!(settlement_events(&world).await.len(), 2);

    // Agents may not import.
    let agent = world
        .api
        .post_json("/v1/settlement/imports", AGENT_KEY, "agent-import", &body)
        .await;
    assert_eq!(agent.status, 403, "{}", agent.describe());
}

#[tokio::test]
async fn awkward_reports_are_recorded_as_the_gateway_wrote_them() {
    let world = CheckoutWorld::start("settlement_awkward", &[], &[("TEE-S", 10)]).await;
    let ids = captured_orders(&world, "AWK", 4).await;
    let refund = world
        .api
        .post_json(
            &format!("/v1/orders/{}/refunds", ids[3]),
            AGENT_KEY,
            "awk-refund",
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

    let first = import(
        &world,
        "awk-1",
        &json!({"gateway": "sandbox", "date": today()}),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.describe());
    let events = settlement_events(&world).await;
    let report = events
        .iter()
        .find(|(_, t, _)| t == "SettlementReportImported")
        .expect("report");
    let lines = report.2["lines"].as_array().cloned().unwrap_or_default();
    let ids_in: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["transaction_id"].as_str())
        .collect();
    let captures: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "capture").collect();
    // 4 captures, the first missing; none of them refunded today (the refund settles tomorrow);
    // one unexpected fee; the last line twice.
    assert_eq!(
        captures.len(),
        4,
        "3 captures + the duplicate of the last: {ids_in:?}"
    );
    assert!(!lines.iter().any(|l| l["kind"] == "refund"), "{ids_in:?}");
    assert_eq!(lines.iter().filter(|l| l["kind"] == "fee").count(), 1);
    let ledger = world.env.payloads_of(&ids[1], "PaymentCaptured").await;
    let off = captures
        .iter()
        .find(|l| l["order_id"] == ids[1].as_str())
        .expect("2nd capture");
    assert_eq!(
        off["gross"]["minor"].as_i64(),
        ledger[0]["amount"]["minor"].as_i64().map(|m| m + 1),
        "one cent more than captured"
    );
    let converted = captures
        .iter()
        .find(|l| l["order_id"] == ids[2].as_str())
        .expect("3rd capture");
    assert_eq!(converted["gross"]["currency"], "EUR");
    assert_eq!(converted["original"]["currency"], "USD");
    let payout_ids: Vec<&str> = events
        .iter()
        .filter(|(_, t, _)| t == "PayoutRecorded")
        .filter_map(|(_, _, p)| p["payout_id"].as_str())
        .collect();
    assert_eq!(
        payout_ids.len(),
        2,
        "a USD and an EUR payout: {payout_ids:?}"
    );

    // Tomorrow's report (late refunds only) has the refund.
    let (status, set) = world
        .sandbox_call(
            reqwest::Method::PUT,
            "/v1/_sandbox/settlement-quirks",
            &json!({"quirks": ["late_refund"]}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string();
    let next = import(
        &world,
        "awk-2",
        &json!({"gateway": "sandbox", "date": tomorrow}),
    )
    .await;
    assert_eq!(next.status, 201, "{}", next.describe());
    assert_eq!(next.json()["lines"], 1, "{}", next.describe());
}

#[tokio::test]
async fn a_bad_report_is_refused_naming_line_and_column_and_nothing_is_recorded() {
    let world = CheckoutWorld::start("settlement_bad_csv", &[], &[]).await;
    let csv = "transaction_id,type,order_id,gross_minor,fee_minor,net_minor,currency,original_minor,original_currency,payout_id,transaction_date,settlement_date\n\
cap_1,capture,,10000,320,9680,USD,,,po_1,2026-11-25,2026-11-25\n\
cap_2,capture,,1O00,30,970,USD,,,po_1,2026-11-25,2026-11-25\n\
cap_3,bonus,,100,0,100,USD,,,po_1,2026-11-25,2026-11-25\n";
    let response = import(
        &world,
        "bad-csv",
        &json!({"gateway": "sandbox", "date": "2026-11-25", "csv": csv}),
    )
    .await;
    assert_eq!(response.status, 422, "{}", response.describe());
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    let problem = response.json();
    assert_eq!(problem["field"], "csv[3].gross_minor", "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|x| x["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(fields, vec!["csv[3].gross_minor", "csv[4].type"]);
    assert!(settlement_events(&world).await.is_empty());

    let no_header = import(
        &world,
        "no-header",
        &json!({"gateway": "sandbox", "date": "2026-11-25", "csv": "id,amount\n1,2\n"}),
    )
    .await;
    assert_eq!(no_header.status, 422, "{}", no_header.describe());
    assert_eq!(no_header.json()["field"], "csv[1].transaction_id");
    let bad_date = import(
        &world,
        "bad-date",
        &json!({"gateway": "sandbox", "date": "yesterday"}),
    )
    .await;
    assert_eq!(bad_date.status, 422);
    assert_eq!(bad_date.json()["field"], "date");
}

/// Runs `waybill settlement import` against the test's command API; returns (success, stdout).
async fn cli_import(world: &CheckoutWorld, date: &str) -> (bool, String) {
    let command_addr = world
        .waybill
        .command_url()
        .trim_start_matches("http://")
        .to_owned();
    let mut command = tokio::process::Command::new(waybill_e2e::waybill_binary());
    command.env_clear();
    for (key, value) in world
        .env
        .process_env(&[("WAYBILL_COMMAND_ADDR", command_addr.as_str())])
    {
        command.env(key, value);
    }
    let output = command
        .args(["settlement", "import", "--date", date])
        .output()
        .await
        .expect("run waybill settlement import");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn the_cli_imports_the_days_report_once_and_prints_its_payouts() {
    let world = CheckoutWorld::start("settlement_cli", &[], &[("TEE-S", 10)]).await;
    captured_orders(&world, "CLI", 1).await;
    let (ok, first) = cli_import(&world, &today()).await;
    assert!(ok, "{first}");
    assert!(first.contains(": imported (1 lines)"), "{first}");
    assert!(first.contains("payout po_"), "{first}");
    assert!(first.contains("settles 1 transaction(s)"), "{first}");
    let (ok, again) = cli_import(&world, &today()).await;
    assert!(ok, "{again}");
    assert!(again.contains("already_imported"), "{again}");
    assert_eq!(
        settlement_events(&world).await.len(),
        2,
        "one report, one payout"
    );
    let (ok, bad) = cli_import(&world, "26/11/2026").await;
    assert!(!ok, "{bad}");
    assert!(bad.contains("422"), "{bad}");
}

/// A report is read strictly: a gateway Waybill does not have, a report day in the future, a
/// column it does not know, a line settled before its transaction, and a quoted field holding
/// a line break (which must not shift the line numbers of what follows) are each refused,
/// naming the field, and nothing is recorded.
#[tokio::test]
async fn a_report_is_read_strictly_and_refusals_name_the_field() {
    let world = CheckoutWorld::start("settlement_strict", &[], &[]).await;
    let header = "transaction_id,type,order_id,gross_minor,fee_minor,net_minor,currency,original_minor,original_currency,payout_id,transaction_date,settlement_date";
    let good = "cap_1,capture,,10000,320,9680,USD,,,po_1,2026-11-25,2026-11-25";
    // Every field named: `errors[].field`, or `field` alone.
    let fields = |response: &waybill_e2e::HttpResponse| -> Vec<String> {
        assert_eq!(response.status, 422, "{}", response.describe());
        response.problem_fields()
    };

    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "unknown gateway",
            json!({"gateway": "acme_pay", "date": "2026-11-25", "csv": format!("{header}\n{good}\n")}),
            vec!["gateway"],
        ),
        (
            "report day far in the future",
            json!({"gateway": "sandbox", "date": "9999-12-31", "csv": format!("{header}\n{good}\n")}),
            vec!["date"],
        ),
        (
            "an extra column",
            json!({"gateway": "sandbox", "date": "2026-11-25",
                   "csv": format!("{header},memo\n{good},hello\n")}),
            vec!["csv[1].memo"],
        ),
        (
            "settled before its transaction",
            json!({"gateway": "sandbox", "date": "2026-11-25",
                   "csv": format!("{header}\ncap_1,capture,,10000,320,9680,USD,,,po_1,2026-11-25,2026-11-24\n")}),
            vec!["csv[2].settlement_date"],
        ),
        (
            "settled after the report's day",
            json!({"gateway": "sandbox", "date": "2026-11-25",
                   "csv": format!("{header}\ncap_1,capture,,10000,320,9680,USD,,,po_1,2026-11-25,2026-11-26\n")}),
            vec!["csv[2].settlement_date"],
        ),
        (
            "a quoted line break",
            json!({"gateway": "sandbox", "date": "2026-11-25",
                   "csv": format!("{header}\n\"cap\n1\",capture,,10000,320,9680,USD,,,po_1,2026-11-25,2026-11-25\ncap_2,capture,,ten,0,0,USD,,,po_1,2026-11-25,2026-11-25\n")}),
            vec!["csv[2].transaction_id", "csv[4].gross_minor"],
        ),
    ];
    let mut wrong = Vec::new();
    for (i, (name, body, want)) in cases.into_iter().enumerate() {
        let response = import(&world, &format!("strict-{i}"), &body).await;
        let got = fields(&response);
        if got != want {
            wrong.push(format!("{name}: fields {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(settlement_events(&world).await.is_empty());

    // The same report with its line fixed is imported.
    let fine = import(
        &world,
        "strict-fine",
        &json!({"gateway": "sandbox", "date": "2026-11-25", "csv": format!("{header}\n{good}\n")}),
    )
    .await;
    assert_eq!(fine.status, 201, "{}", fine.describe());
}
