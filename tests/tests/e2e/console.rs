//! The staff screens' foundation and the agent console, against the real binary: who may sign
//! in and open which page (the access-control matrix over every screen and action), cookie
//! flags, CSRF refusals, sign-out; then headless Chromium doing an agent's work.

use serde_json::json;
use waybill_e2e::screens::StaffClient;
use waybill_e2e::{
    eventually, sample_order, Api, Role, TestEnv, ADMIN_KEY, AGENT_KEY, DEFAULT_DEADLINE,
    FINANCE_KEY, SERVICE_KEY,
};

use crate::{place, Placed};

/// The public origin the matrix test configures: POSTs must name it, and it makes cookies
/// `Secure` (TLS terminated in front of the query API).
const PUBLIC_ORIGIN: &str = "https://console.waybill.test";

const AGENTS: &[&str] = &["agent", "admin"];
const FINANCE: &[&str] = &["finance", "admin"];
const ADMINS: &[&str] = &["admin"];

/// Every screen page (for the order `order`) and the roles that may open it.
fn pages(order: &str) -> Vec<(String, &'static [&'static str])> {
    vec![
        ("/console".to_owned(), AGENTS),
        ("/console?q=ada&status=placed".to_owned(), AGENTS),
        (format!("/console/orders/{order}"), AGENTS),
        ("/finance".to_owned(), FINANCE),
        ("/finance/summary.csv".to_owned(), FINANCE),
        ("/finance/payouts.csv".to_owned(), FINANCE),
        ("/finance/reconciliation.csv".to_owned(), FINANCE),
        (format!("/finance/orders/{order}"), FINANCE),
        ("/console/desk".to_owned(), AGENTS),
        ("/console/desk?status=all&kind=anomaly".to_owned(), AGENTS),
        ("/ops".to_owned(), ADMINS),
        ("/ops?minutes=1440".to_owned(), ADMINS),
    ]
}

/// A desk entry for the matrix to act on, opened the way the detector opens one (an anomaly:
/// the desk never clears those by itself).
async fn matrix_entry(env: &TestEnv) -> uuid::Uuid {
    use waybill_write_side::desk::{entries, Action, EntryKind, NewEntry};
    let entry = NewEntry {
        dedupe_key: format!("anomaly:web:matrix:{}", uuid::Uuid::now_v7()),
        kind: EntryKind::Anomaly,
        order_id: None,
        channel: Some("web".to_owned()),
        reason: "a matrix test's anomaly".to_owned(),
        suggested_action: Action::Acknowledge,
        details: json!({"anomaly": "decline_spike"}),
    };
    entries::open(env.db(), &entry, chrono::Utc::now())
        .await
        .expect("open the entry")
        .expect("a new entry")
}

/// Every console action (a POST to the order, or to the desk entry `entry`) and the fields of
/// its first step.
fn actions(order: &str, entry: uuid::Uuid) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    let at = |slug: &str| format!("/console/orders/{order}/actions/{slug}");
    vec![
        (at("refund"), vec![("amount", "1.00"), ("reason", "matrix")]),
        (
            at("store-credit"),
            vec![("amount", "1.00"), ("reason", "matrix")],
        ),
        (at("review"), vec![("decision", "approve")]),
        (
            at("cancel-lines"),
            vec![("line_no", "1"), ("quantity", "1"), ("reason", "other")],
        ),
        (
            at("inspection"),
            vec![
                ("return_id", "x-R1"),
                ("line_no", "1"),
                ("accepted", "1"),
                ("rejected", "0"),
                ("resellable", "1"),
            ],
        ),
        (
            at("evidence"),
            vec![("dispute_id", "d-1"), ("text", "proof")],
        ),
        (
            format!("/console/desk/entries/{entry}/resolve"),
            vec![("action", "acknowledge"), ("note", "matrix")],
        ),
    ]
}

/// Waits until the order's search document has the version of its consistency token.
pub async fn indexed(api: &Api, placed: &Placed) {
    eventually("the order is searchable", DEFAULT_DEADLINE, || async {
        let response = api
            .query_get(
                &format!("/v1/agent/orders/{}", placed.order_id),
                &[("consistency_token", placed.consistency_token.as_str())],
                Some(AGENT_KEY),
            )
            .await;
        (response.status == 200 && response.json()["consistency"]["stale"] == json!(false))
            .then_some(())
            .ok_or(response.describe())
    })
    .await;
}

fn signed_in_client(base: &str) -> StaffClient {
    let mut client = StaffClient::new(base);
    client.origin = PUBLIC_ORIGIN.to_owned();
    client
}

async fn signed_in(base: &str, credential: &str) -> StaffClient {
    let mut client = signed_in_client(base);
    let answer = client.sign_in(credential).await;
    assert_eq!(answer.status, 303, "sign-in: {}", answer.body);
    assert!(client.session_cookie().is_some(), "a session cookie is set");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_screens_admit_only_staff_roles_with_safe_cookies_and_refuse_forged_posts() {
    let env = TestEnv::new("console_access").await;
    let waybill = env
        .start_with(Role::All, &[("WAYBILL_CONSOLE_ORIGIN", PUBLIC_ORIGIN)])
        .await;
    let api = waybill.api();
    let base = api.query_url.clone();
    let placed = place(&api, "console-matrix-1", &sample_order("WEB-MATRIX-1")).await;
    let order = placed.order_id.clone();
    indexed(&api, &placed).await;
    let entry = matrix_entry(&env).await;

    // Anonymous: every page sends the visitor to sign in, and back afterwards; every action too.
    for (path, _) in pages(&order) {
        let page = StaffClient::new(&base).get(&path).await;
        assert_eq!(page.status, 303, "anonymous {path}");
        let to = page.location.expect("a Location");
        assert!(
            to.starts_with("/console/sign-in?next=%2F"),
            "anonymous {path} goes to sign-in: {to}"
        );
    }
    for (path, mut fields) in actions(&order, entry) {
        fields.push(("csrf", "x"));
        fields.push(("idempotency_key", "matrix-anonymous"));
        let answer = StaffClient::new(&base).post(&path, &fields).await;
        assert_eq!(answer.status, 303, "anonymous POST {path}");
    }

    // Customers and services may not sign in; unknown credentials are refused.
    let customer_jwt = env.jwt("cust-1", "customer");
    for (who, credential, status) in [
        ("customer JWT", customer_jwt.as_str(), 403),
        ("service key", SERVICE_KEY, 403),
        ("unknown key", "not-a-key", 401),
        (
            "expired agent JWT",
            &env.jwt_expiring("ann", "agent", 1_000),
            401,
        ),
    ] {
        let mut client = signed_in_client(&base);
        let answer = client.sign_in(credential).await;
        assert_eq!(answer.status, status, "{who} signs in: {}", answer.body);
        assert!(client.session_cookie().is_none(), "{who} gets no session");
        let page = client.get("/console").await;
        assert_eq!(page.status, 303, "{who} still has to sign in");
    }

    // The sign-in form itself is CSRF-protected: its token cookie, and the Origin.
    let mut client = signed_in_client(&base);
    let form = client.get("/console/sign-in").await;
    let token = form.input("csrf").expect("form token");
    for (what, fields, origin) in [
        (
            "a wrong form token",
            vec![("credential", AGENT_KEY), ("csrf", "0000")],
            Some(PUBLIC_ORIGIN),
        ),
        (
            "another site's Origin",
            vec![("credential", AGENT_KEY), ("csrf", token.as_str())],
            Some("https://evil.example"),
        ),
        (
            "no Origin",
            vec![("credential", AGENT_KEY), ("csrf", token.as_str())],
            None,
        ),
    ] {
        let answer = client.post_from("/console/sign-in", &fields, origin).await;
        assert_eq!(answer.status, 403, "sign-in with {what}");
        assert!(client.session_cookie().is_none(), "{what}: no session");
    }

    // A staff sign-in: the cookie is HttpOnly, Secure, SameSite=Strict, bounded.
    let mut agent = signed_in_client(&base);
    let answer = agent.sign_in(AGENT_KEY).await;
    assert_eq!(answer.status, 303);
    assert_eq!(answer.location.as_deref(), Some("/console"));
    let cookie = answer
        .cookies
        .iter()
        .find(|c| c.name == "waybill_console")
        .expect("session cookie");
    assert!(cookie.has("HttpOnly"), "{cookie:?}");
    assert!(cookie.has("Secure"), "https public origin: {cookie:?}");
    assert_eq!(cookie.attribute("SameSite"), Some("Strict"));
    assert_eq!(cookie.attribute("Path"), Some("/"));
    let max_age: i64 = cookie
        .attribute("Max-Age")
        .and_then(|v| v.parse().ok())
        .expect("Max-Age");
    assert!(
        (1..=8 * 3600).contains(&max_age),
        "bounded lifetime: {max_age}"
    );
    assert_eq!(cookie.value.len(), 64, "a 256-bit random session id");

    // A session from a JWT ends when the token does.
    let mut short = signed_in_client(&base);
    let jwt = env.jwt_expiring("bea", "agent", chrono::Utc::now().timestamp() + 120);
    let answer = short.sign_in(&jwt).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let max_age: i64 = answer
        .cookies
        .iter()
        .find(|c| c.name == "waybill_console")
        .and_then(|c| c.attribute("Max-Age"))
        .and_then(|v| v.parse().ok())
        .expect("Max-Age");
    assert!(max_age <= 120, "capped by the JWT's exp: {max_age}");
    assert_eq!(short.get("/console").await.status, 200);

    // Every page by role.
    let mut sessions = [
        ("agent", agent),
        ("admin", signed_in(&base, ADMIN_KEY).await),
        ("finance", signed_in(&base, FINANCE_KEY).await),
    ];
    for (path, allowed) in pages(&order) {
        for (role, client) in sessions.iter_mut() {
            let page = client.get(&path).await;
            let expected = if allowed.contains(role) { 200 } else { 403 };
            assert_eq!(page.status, expected, "{role} opens {path}: {}", page.body);
            if expected == 200 && !path.contains(".csv") {
                assert_eq!(
                    page.headers
                        .get("content-security-policy")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v.contains("default-src 'none'")),
                    Some(true)
                );
                assert_eq!(
                    page.headers
                        .get("cache-control")
                        .and_then(|v| v.to_str().ok()),
                    Some("no-store")
                );
            }
        }
    }

    // Every action: a role outside agent/admin is refused before anything is sent; a POST
    // without the session's token or from another origin is refused; agents get the
    // confirmation step (nothing is sent before it is confirmed).
    let events_before = env.events_of_order(&order).await;
    for (path, fields) in actions(&order, entry) {
        for (role, client) in sessions.iter_mut() {
            let csrf = client.get("/console/sign-in").await;
            assert_eq!(csrf.status, 303, "{role} is signed in");
            let home = client
                .get(if *role == "finance" {
                    "/finance"
                } else {
                    "/console"
                })
                .await;
            let token = home.input("csrf").expect("the page's CSRF token");
            let mut with_token = fields.clone();
            with_token.push(("csrf", &token));
            with_token.push(("idempotency_key", "matrix-key-1"));
            let answer = client.post(&path, &with_token).await;
            let allowed = AGENTS.contains(role);
            if allowed {
                assert_eq!(answer.status, 200, "{role} {path}: {}", answer.body);
                assert!(
                    answer.body.contains("Confirm"),
                    "{role} {path} asks to confirm"
                );
            } else {
                assert_eq!(answer.status, 403, "{role} {path}: {}", answer.body);
            }
            let mut without = fields.clone();
            without.push(("idempotency_key", "matrix-key-2"));
            let answer = client.post(&path, &without).await;
            assert_eq!(answer.status, 403, "{role} {path} without CSRF token");
            let answer = client
                .post_from(&path, &with_token, Some("https://evil.example"))
                .await;
            assert_eq!(answer.status, 403, "{role} {path} from another origin");
            let mut confirmed = with_token.clone();
            confirmed.push(("step", "confirm"));
            let answer = client.post_from(&path, &confirmed, None).await;
            assert_eq!(answer.status, 403, "{role} {path} confirmed without Origin");
        }
    }
    assert_eq!(
        env.events_of_order(&order).await,
        events_before,
        "no refused or unconfirmed action changed the order"
    );
    let resolutions: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_id = $1")
        .bind(format!("desk-{entry}"))
        .fetch_one(env.db())
        .await
        .expect("the entry's stream");
    assert_eq!(
        resolutions, 0,
        "no refused or unconfirmed action resolved the entry"
    );

    // Forged POSTs are refused and change nothing; the real one signs out everywhere.
    let (_, agent) = &mut sessions[0];
    let page = agent.get("/console").await;
    let csrf = page.input("csrf").expect("the page's CSRF token");
    let other_csrf = {
        let (_, admin) = &mut sessions[1];
        admin.get("/console").await.input("csrf").expect("token")
    };
    let (_, agent) = &mut sessions[0];
    for (what, token, origin) in [
        ("no token", "", Some(PUBLIC_ORIGIN)),
        ("a wrong token", "ffff", Some(PUBLIC_ORIGIN)),
        (
            "another session's token",
            other_csrf.as_str(),
            Some(PUBLIC_ORIGIN),
        ),
        (
            "another site's Origin",
            csrf.as_str(),
            Some("https://evil.example"),
        ),
        (
            "the plain-http origin",
            csrf.as_str(),
            Some("http://console.waybill.test"),
        ),
        ("no Origin", csrf.as_str(), None),
    ] {
        let answer = agent
            .post_from("/console/sign-out", &[("csrf", token)], origin)
            .await;
        assert_eq!(answer.status, 403, "sign-out with {what}");
        assert_eq!(
            agent.get("/console").await.status,
            200,
            "{what}: still signed in"
        );
    }
    let stolen = agent.session_cookie().expect("cookie");
    let answer = agent.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(answer.status, 303);
    assert!(agent.session_cookie().is_none(), "the cookie is cleared");
    agent.set_cookie("waybill_console", &stolen);
    assert_eq!(
        agent.get("/console").await.status,
        303,
        "a signed-out session is dead on every instance"
    );
}

mod browser {
    use serde_json::json;
    use waybill_e2e::browser::{screen_path, Browser};
    use waybill_e2e::{sample_order, Role, TestEnv, AGENT_KEY};

    use super::indexed;
    use crate::place;

    fn customer_order(
        reference: &str,
        channel: &str,
        name: &str,
        email: &str,
    ) -> serde_json::Value {
        let mut order = sample_order(reference);
        order["channel"] = json!(channel);
        order["customer"]["name"] = json!(name);
        order["customer"]["email"] = json!(email);
        order["shipping_address"]["name"] = json!(name);
        order
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_agent_signs_in_with_chromium_and_searches_with_filters_and_facets() {
        let env = TestEnv::new("console_browser_search").await;
        let waybill = env.start(Role::All).await;
        let api = waybill.api();
        let grace = place(
            &api,
            "console-s-1",
            &customer_order("WEB-GRACE-1", "web", "Grace Hopper", "grace@navy.example"),
        )
        .await;
        let alan = place(
            &api,
            "console-s-2",
            &customer_order("APP-ALAN-2", "app", "Alan Turing", "alan@bletchley.example"),
        )
        .await;
        for order in [&grace, &alan] {
            indexed(&api, order).await;
        }

        let mut browser = Browser::launch(&env.log_dir).await;
        browser.viewport(1280, 800, false).await;
        browser.sign_in(&api.query_url, AGENT_KEY, "/console").await;
        browser.wait_for_text("2 orders").await;
        let cookies = browser.cookies().await;
        let session = cookies
            .iter()
            .find(|c| c["name"] == "waybill_console")
            .expect("the session cookie");
        assert_eq!(session["httpOnly"], json!(true), "{session}");
        assert_eq!(session["sameSite"], json!("Strict"), "{session}");
        assert_eq!(
            browser
                .eval("document.cookie.includes('waybill_console')")
                .await,
            json!(false),
            "page scripts cannot read the session"
        );
        assert_eq!(
            browser.eval("document.documentElement.lang").await,
            json!("en")
        );
        assert_eq!(
            browser
                .eval("document.querySelector('nav[aria-label=Screens] a[aria-current=page]').innerText")
                .await,
            json!("Orders")
        );
        browser
            .screenshot(&screen_path("console-search-laptop"))
            .await;

        // Free text with a typo, then a facet narrows the list.
        browser.fill("#q", "Grace Hoper").await;
        browser
            .click_and_wait("form[role=search] button[type=submit]")
            .await;
        browser.wait_for_text("1 order").await;
        assert_eq!(
            browser
                .eval("document.querySelector('#results-heading').innerText")
                .await,
            json!("1 order"),
            "a count of one is singular"
        );
        browser.wait_for_text("WEB-GRACE-1").await;
        assert!(!browser.text().await.contains("APP-ALAN-2"));
        browser
            .navigate(&format!("{}/console", api.query_url))
            .await;
        browser
            .click_and_wait(".facets a[href*='channel=app']")
            .await;
        browser.wait_for_text("APP-ALAN-2").await;
        assert!(!browser.text().await.contains("WEB-GRACE-1"));

        browser.viewport(390, 844, true).await;
        browser
            .navigate(&format!("{}/console", api.query_url))
            .await;
        browser.wait_for_text("2 orders").await;
        browser
            .screenshot(&screen_path("console-search-phone"))
            .await;
    }

    /// Refunds part of a captured order and approves a held one, through the console in
    /// Chromium; a second submission of the same confirmed form does nothing more.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_agent_refunds_part_of_an_order_sees_it_on_the_timeline_and_approves_a_review() {
        use waybill_e2e::checkout::{cards, order, CheckoutWorld};
        use waybill_e2e::screens::StaffClient;

        let world =
            CheckoutWorld::start("console_agent", &[], &[("CON-1", 10), ("WATCH-1", 10)]).await;
        let placed = world
            .place(&order("CON-REFUND-1", "CON-1", 2, cards::APPROVED))
            .await;
        let paid = placed["order_id"].as_str().expect("id").to_owned();
        let events = world.settled(&paid, None).await;
        assert_eq!(events.last().map(String::as_str), Some("PaymentCaptured"));
        // 1 × 2,500.00 USD: over the review threshold.
        let mut big = order("CON-REVIEW-1", "WATCH-1", 1, cards::APPROVED);
        big["lines"][0]["unit_price_minor"] = json!(250_000);
        let held = world.place(&big).await;
        let held = held["order_id"].as_str().expect("id").to_owned();
        world.settled(&held, Some("review")).await;
        let base = world.api.query_url.clone();

        let mut browser = Browser::launch(&world.env.log_dir).await;
        browser.viewport(1280, 900, false).await;
        browser.sign_in(&base, AGENT_KEY, "/console").await;

        // Search, open the order.
        browser.fill("#q", "CON-REFUND-1").await;
        browser
            .click_and_wait("form[role=search] button[type=submit]")
            .await;
        browser.wait_for_text("1 order").await;
        assert_eq!(
            browser
                .eval("document.querySelector('#results-heading').innerText")
                .await,
            json!("1 order"),
            "a count of one is singular"
        );
        browser
            .click_and_wait("table a[href^='/console/orders/']")
            .await;
        browser.wait_for_text("Order CON-REFUND-1").await;
        let text = browser.text().await;
        for section in [
            "Payment",
            "Lines",
            "Shipments",
            "Returns",
            "Refunds",
            "Risk",
            "Timeline (",
        ] {
            assert!(
                text.contains(section),
                "the order page has {section}: {text}"
            );
        }
        assert!(text.contains("No refund."), "{text}");
        browser
            .screenshot(&screen_path("console-order-laptop"))
            .await;

        // Refund 5.00 of it: the confirmation step says exactly what will happen.
        browser.fill("#refund-amount", "5.00").await;
        browser.fill("#refund-reason", "damaged box").await;
        browser
            .click_and_wait("#action-refund button[type=submit]")
            .await;
        browser
            .wait_for_text("Refund 5.00 USD to the original payment, reason: damaged box.")
            .await;
        assert_eq!(
            world
                .env
                .event_types_of_order(&paid)
                .await
                .iter()
                .filter(|t| *t == "RefundRequested")
                .count(),
            0,
            "nothing is sent before it is confirmed"
        );
        browser
            .screenshot(&screen_path("console-refund-confirm"))
            .await;
        // What a second click would send: the same form, same idempotency key, same session.
        let fields = browser
            .eval(
                "Array.from(new FormData(document.querySelector('form[action$=\"/actions/refund\"]')).entries())",
            )
            .await;
        let session = browser
            .cookies()
            .await
            .into_iter()
            .find(|c| c["name"] == "waybill_console")
            .and_then(|c| c["value"].as_str().map(str::to_owned))
            .expect("session cookie");
        browser.click_and_wait("#confirm").await;
        browser.wait_for_result("Refund requested.").await;
        let refunds = browser
            .eval("document.getElementById('refunds').innerText")
            .await;
        let refunds = refunds.as_str().unwrap_or_default();
        assert!(
            refunds.contains("5.00 USD") && refunds.contains("damaged box"),
            "{refunds}"
        );
        assert_eq!(
            browser
                .eval("document.querySelector('#timeline li[data-event=RefundRequested]') !== null")
                .await,
            json!(true),
            "the refund is on the timeline"
        );
        browser
            .screenshot(&screen_path("console-order-after-refund"))
            .await;

        let mut again = StaffClient::new(&base);
        again.set_cookie("waybill_console", &session);
        let pairs: Vec<(String, String)> = fields
            .as_array()
            .expect("form entries")
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap_or_default().to_owned(),
                    p[1].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let resent = again
            .post(&format!("/console/orders/{paid}/actions/refund"), &borrowed)
            .await;
        assert_eq!(resent.status, 303, "{}", resent.body);
        assert_eq!(
            world
                .env
                .event_types_of_order(&paid)
                .await
                .iter()
                .filter(|t| *t == "RefundRequested")
                .count(),
            1,
            "the same confirmed form sent twice refunds once"
        );
        world.wait_for_event(&paid, "PaymentRefunded", 1).await;
        browser
            .navigate(&format!("{base}/console/orders/{paid}"))
            .await;
        browser.wait_for_text("refunded").await;
        assert_eq!(
            browser
                .eval("document.querySelector('#timeline li[data-event=PaymentRefunded]') !== null")
                .await,
            json!(true)
        );
        assert!(browser.text().await.contains("5.00 USD"));

        // The held order: find it by its status facet, approve it.
        browser
            .navigate(&format!("{base}/console?status=in_review"))
            .await;
        browser.wait_for_text("CON-REVIEW-1").await;
        browser
            .click_and_wait("table a[href^='/console/orders/']")
            .await;
        browser.wait_for_text("Decide the review").await;
        // Held for review, nothing captured, not confirmed: only the review is offered.
        assert_eq!(
            browser
                .eval(
                    "['#action-refund', '#action-store-credit', '#action-cancel-lines'] \
                       .filter(s => document.querySelector(s) !== null)"
                )
                .await,
            json!([]),
            "no refund, credit or cancellation offered before anything was captured or confirmed"
        );
        let reasons = browser
            .eval("document.getElementById('risk-reasons').innerText")
            .await;
        assert!(
            !reasons.as_str().unwrap_or_default().is_empty(),
            "risk reasons are shown"
        );
        browser.fill("#review-note", "called the customer").await;
        browser
            .click_and_wait("#action-review button[type=submit]")
            .await;
        browser
            .wait_for_text("Approve order CON-REVIEW-1 after review.")
            .await;
        browser.click_and_wait("#confirm").await;
        browser.wait_for_result("Review decision recorded.").await;
        assert_eq!(
            browser
                .eval("document.querySelector('#timeline li[data-event=RiskReviewResolved]') !== null")
                .await,
            json!(true)
        );
        assert!(
            !browser.text().await.contains("Decide the review"),
            "no longer held"
        );
        browser.viewport(390, 844, true).await;
        browser
            .navigate(&format!("{base}/console/orders/{held}"))
            .await;
        browser.wait_for_text("Review resolved").await;
        let fits = browser
            .eval(
                "[document.documentElement.scrollWidth <= window.innerWidth, \
                  Array.from(document.querySelectorAll('table')) \
                    .filter(t => t.scrollWidth > t.parentElement.clientWidth).length]",
            )
            .await;
        assert_eq!(
            fits,
            json!([true, 0]),
            "nothing wider than the phone: {fits}"
        );
        browser
            .screenshot(&screen_path("console-order-phone"))
            .await;
    }
}
