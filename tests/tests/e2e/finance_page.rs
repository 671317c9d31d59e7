//! The finance page in headless Chromium, as a finance user works: orders captured, the day's
//! settlement report imported with a cent missing on one capture, reconciliation run; the page
//! shows the day's money with a chart, the discrepancy leads to the order's timeline, and the
//! CSV download carries the same rows, amounts by the currency's exponent.

use serde_json::json;
use waybill_e2e::browser::{screen_path, Browser};
use waybill_e2e::checkout::{cards, order, CheckoutWorld, SETTLE};
use waybill_e2e::{eventually, FINANCE_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finance_user_finds_the_days_discrepancy_opens_its_timeline_and_downloads_the_csv() {
    let world = CheckoutWorld::start("finance_page", &[], &[("FIN-1", 10)]).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        let placed = world
            .place(&order(&format!("FIN-{i}"), "FIN-1", 1, cards::APPROVED))
            .await;
        let id = placed["order_id"].as_str().expect("id").to_owned();
        let events = world.settled(&id, None).await;
        assert_eq!(events.last().map(String::as_str), Some("PaymentCaptured"));
        ids.push(id);
    }
    let (status, set) = world
        .sandbox_call(
            reqwest::Method::PUT,
            "/v1/_sandbox/settlement-quirks",
            &json!({"quirks": ["off_by_one_cent"]}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    let today = chrono::Utc::now().date_naive().to_string();
    let imported = world
        .api
        .post_json(
            "/v1/settlement/imports",
            FINANCE_KEY,
            "finance-page-import",
            &json!({"gateway": "sandbox", "date": today}),
        )
        .await;
    assert_eq!(imported.status, 201, "{}", imported.describe());
    let query_url = world.waybill.query_url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let mismatched = eventually("the report reconciled", SETTLE, || async {
        let output = world
            .env
            .run_command(&["reconcile", "--from", &today])
            .await;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let body: serde_json::Value = client
            .get(format!(
                "{query_url}/v1/finance/reconciliation?from={today}&to={today}"
            ))
            .bearer_auth(FINANCE_KEY)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        body["items"]
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .find(|i| i["outcome"] == "amount_mismatch")
                    .and_then(|i| i["order_id"].as_str())
                    .map(str::to_owned)
            })
            .ok_or(body.to_string())
    })
    .await;
    assert!(ids.contains(&mismatched), "{mismatched} is one of ours");

    let mut browser = Browser::launch(&world.env.log_dir).await;
    browser.viewport(1280, 900, false).await;
    browser.sign_in(&query_url, FINANCE_KEY, "/finance").await;
    browser
        .wait_for_text("Reconciliation discrepancies (1)")
        .await;
    let text = browser.text().await;
    assert!(text.contains("amount mismatch"), "{text}");
    // Amounts by the currency's exponent: the sandbox order is 25.00 USD + tax + shipping.
    assert!(text.contains(" USD"), "{text}");
    assert!(
        !text.contains("minor units"),
        "every amount is formatted: {text}"
    );
    assert_eq!(
        browser
            .eval("document.querySelectorAll('svg.chart rect').length > 0")
            .await,
        json!(true),
        "the chart draws bars"
    );
    assert_eq!(
        browser
            .eval("document.querySelector('svg.chart title').textContent")
            .await,
        json!("Money per day in USD")
    );
    browser.screenshot(&screen_path("finance-laptop")).await;

    // The CSV is what the link downloads: fetched with this browser's session cookie (the
    // page's CSP allows no script to fetch it, and headless downloads do not finish reliably).
    let href = browser
        .eval("document.getElementById('download-reconciliation').href")
        .await;
    let href = href.as_str().expect("the download link").to_owned();
    assert!(
        href.starts_with(&format!("{query_url}/finance/reconciliation.csv?")),
        "{href}"
    );
    let session = browser
        .cookies()
        .await
        .into_iter()
        .find(|c| c["name"] == "waybill_console")
        .and_then(|c| c["value"].as_str().map(str::to_owned))
        .expect("session cookie");
    let response = client
        .get(&href)
        .header("cookie", format!("waybill_console={session}"))
        .send()
        .await
        .expect("download the CSV");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok()),
        Some("attachment; filename=\"reconciliation.csv\"")
    );
    let csv = response.text().await.expect("the CSV");
    let header = csv.lines().next().unwrap_or_default();
    assert!(
        header.contains("outcome") && header.contains("order_id"),
        "{csv}"
    );
    assert!(
        csv.contains("amount_mismatch") && csv.contains(&mismatched),
        "{csv}"
    );
    assert_eq!(
        csv.lines().count(),
        2,
        "header and the one discrepancy: {csv}"
    );
    let anonymous = client
        .get(&href)
        .send()
        .await
        .expect("GET without a session");
    assert_eq!(
        anonymous.status(),
        303,
        "no session, no CSV: off to sign in"
    );

    // The drill-down: the order's timeline, with its capture.
    browser
        .click_and_wait("#discrepancies a[href^='/finance/orders/']")
        .await;
    browser.wait_for_text("PaymentCaptured").await;
    assert!(browser.text().await.contains("Timeline ("));
    browser
        .screenshot(&screen_path("finance-order-timeline"))
        .await;

    browser.viewport(390, 844, true).await;
    browser.navigate(&format!("{query_url}/finance")).await;
    browser
        .wait_for_text("Reconciliation discrepancies (1)")
        .await;
    // Nothing scrolls sideways on a phone: not the page, not a table (they stack).
    let fits = browser
        .eval(
            "[document.documentElement.scrollWidth <= window.innerWidth, \
              Array.from(document.querySelectorAll('table')) \
                .filter(t => t.scrollWidth > t.parentElement.clientWidth).map(t => t.id)]",
        )
        .await;
    assert_eq!(fits, json!([true, []]), "wider than the phone: {fits}");
    browser.screenshot(&screen_path("finance-phone")).await;
}
