//! The customer tracking page over HTTP and in headless Chromium: the link from the confirmation
//! opens the real page, the page follows the order without a reload, a wrong token gets the
//! friendly page, the lookup form finds an order by number + email or postcode, and a
//! consistency token makes the page show the customer's own change, and the open page shows a
//! parcel and its carrier scans as the logistics sandbox reports them.

use std::time::Duration;

use serde_json::{json, Value};
use waybill_e2e::browser::{artifact_path, Browser};
use waybill_e2e::checkout::{cards, order, CheckoutWorld, SETTLE};
use waybill_e2e::fulfillment::{multi_line_order, FulfillmentWorld};
use waybill_e2e::{eventually, sample_cancel, sample_order, Role, TestEnv, DEFAULT_DEADLINE};

use crate::place;

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

async fn view_status(world: &CheckoutWorld, id: &str) -> Value {
    crate::tracking_at_as_service(&world.api, id).await["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_tracking_page_follows_a_3ds_order_to_confirmed_without_reloading() {
    let world = CheckoutWorld::start("tracking_page_browser", &[], &[("TEE-P", 10)]).await;
    let placed = world
        .place(&order("PAGE-3DS", "TEE-P", 1, cards::THREE_DS))
        .await;
    let id = placed["order_id"].as_str().expect("order id").to_owned();
    let token = placed["tracking_token"].as_str().expect("token").to_owned();
    eventually(
        "the order waits for 3-D Secure",
        DEFAULT_DEADLINE,
        || async {
            let status = view_status(&world, &id).await;
            (status == "awaiting_payment")
                .then_some(())
                .ok_or(status.to_string())
        },
    )
    .await;

    let mut browser = Browser::launch(&world.env.log_dir).await;
    let link = format!("{}/track/{id}?token={token}", world.api.query_url);
    browser.navigate(&link).await;
    browser
        .wait_for(
            "the page shows the order waiting for payment",
            "document.getElementById('status') !== null && \
             document.getElementById('status').dataset.status === 'awaiting_payment'",
        )
        .await;
    assert_eq!(
        browser.eval("document.documentElement.lang").await,
        json!("en")
    );
    assert_eq!(
        browser
            .eval("document.querySelectorAll('main, header, footer').length")
            .await,
        json!(3)
    );
    let heading = browser.eval("document.querySelector('h1').innerText").await;
    assert_eq!(heading, json!("Order PAGE-3DS"));
    // A marker that survives only if the page is never reloaded.
    browser.eval("window.__stillTheSamePage = true").await;
    browser
        .wait_for(
            "the live-update stream is open",
            "document.getElementById('live-note').textContent.includes('updates itself')",
        )
        .await;

    // The customer passes the challenge at the (sandbox) bank.
    assert_eq!(world.complete_challenge(&id, true).await.status, 200);
    browser
        .wait_for(
            "the open page turns to confirmed by itself",
            "document.getElementById('status').dataset.status === 'confirmed'",
        )
        .await;
    assert_eq!(
        browser.eval("window.__stillTheSamePage === true").await,
        json!(true),
        "no reload"
    );
    let text = browser
        .eval("document.getElementById('main').innerText")
        .await;
    let text = text.as_str().unwrap_or_default();
    assert!(text.contains("Confirmed"), "{text}");
    assert!(text.contains("TEE-P"), "line items shown: {text}");
    browser
        .screenshot(&artifact_path("tracking-page.png"))
        .await;

    // The confirmation email links to this page (with a token signed at confirmation, which
    // expires later than the one from placement).
    let email = world.notification(&id, "order_confirmed", "email").await;
    let page_url = format!("{}/track/{id}?token=", world.api.query_url);
    let emailed: String = email[email.find(&page_url).expect("a link to the page")..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    assert_eq!(
        world.api.get(&emailed).await.status,
        200,
        "the confirmation's link {emailed} opens the page:\n{email}"
    );

    // The page runs no inline script or style: its CSP allows only its own served files.
    let page = world.api.get(&link).await;
    let csp = page
        .header("content-security-policy")
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = page.text();
    assert!(html.contains("<script src=\"/track/assets/page.js\" defer></script>"));
    assert_eq!(html.matches("<script").count(), 1, "one script, not inline");
    assert!(
        !html.contains("<style") && !html.contains(" style="),
        "no inline styles"
    );
    for (asset, kind) in [
        ("/track/assets/page.js", "text/javascript"),
        ("/track/assets/page.css", "text/css"),
    ] {
        let served = world
            .api
            .get(&format!("{}{asset}", world.api.query_url))
            .await;
        assert_eq!(served.status, 200, "{asset}");
        assert!(
            served
                .header("content-type")
                .unwrap_or_default()
                .starts_with(kind),
            "{asset}"
        );
        assert_eq!(served.header("x-content-type-options"), Some("nosniff"));
    }

    // A wrong token: the friendly page, 404, and nothing about the order.
    let wrong = format!(
        "{}/track/{id}?token={}",
        world.api.query_url,
        "0".repeat(32)
    );
    browser.navigate(&wrong).await;
    browser
        .wait_for(
            "the friendly error",
            "document.getElementById('not-found') !== null",
        )
        .await;
    let text = browser.eval("document.body.innerText").await;
    assert!(
        !text.as_str().unwrap_or_default().contains("PAGE-3DS"),
        "{text}"
    );
    browser
        .screenshot(&artifact_path("tracking-page-not-found.png"))
        .await;
    let status = world.api.get(&wrong).await;
    assert_eq!(status.status, 404);
    assert!(status
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/html"));

    // The lookup form, filled in as a customer would, lands on the same page.
    browser
        .navigate(&format!("{}/track", world.api.query_url))
        .await;
    browser
        .eval(
            "document.getElementById('order_number').value = 'page-3ds'; \
             document.getElementById('contact').value = 'PAGE-3DS@example.com'; \
             document.querySelector('form').submit(); true",
        )
        .await;
    browser
        .wait_for(
            "the lookup opens the order",
            "document.getElementById('status') !== null && \
             document.getElementById('status').dataset.status === 'confirmed'",
        )
        .await;
    let at = browser.eval("location.pathname").await;
    assert_eq!(at, json!(format!("/track/{id}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_tracking_page_shows_the_parcel_and_its_carrier_scans_without_reloading() {
    let f = FulfillmentWorld::start("tracking_page_shipment", &[]).await;
    f.world.restock("TEE-SHIP", "wh-east", 5).await;
    let placed = f
        .world
        .place(&multi_line_order(
            "PAGE-SHIP",
            &[("TEE-SHIP", 1)],
            "standard",
        ))
        .await;
    let id = placed["order_id"].as_str().expect("order id").to_owned();
    let token = placed["tracking_token"].as_str().expect("token").to_owned();
    f.view_when(&id, "confirmed", |v| v["status"] == json!("confirmed"))
        .await;
    eventually("the fulfillment is submitted", SETTLE, || async {
        let types = f.world.env.event_types_of_order(&id).await;
        types
            .iter()
            .any(|t| t == "FulfillmentSubmitted")
            .then_some(())
            .ok_or_else(|| format!("{types:?}"))
    })
    .await;

    let mut browser = Browser::launch(&f.world.env.log_dir).await;
    let link = format!("{}/track/{id}?token={token}", f.world.api.query_url);
    browser.navigate(&link).await;
    browser
        .wait_for(
            "the page shows the order confirmed",
            "document.getElementById('status') !== null && \
             document.getElementById('status').dataset.status === 'confirmed'",
        )
        .await;
    assert_eq!(
        browser.eval("document.querySelector('h1').innerText").await,
        json!("Order PAGE-SHIP")
    );
    assert_eq!(
        browser
            .eval("document.getElementById('shipments') === null")
            .await,
        json!(true),
        "no parcel before packing"
    );
    // A marker that survives only if the page is never reloaded.
    browser.eval("window.__stillTheSamePage = true").await;
    browser
        .wait_for(
            "the live-update stream is open",
            "document.getElementById('live-note').textContent.includes('updates itself')",
        )
        .await;

    // The warehouse packs it; the label is bought and the parcel is handed to the carrier.
    f.pack_all(&id, 1).await;
    let parcels = f.parcels(&id, 1).await;
    let tracking = parcels[0]["tracking_number"]
        .as_str()
        .expect("tracking number")
        .to_owned();
    let shipments_text = "(document.getElementById('shipments') || {innerText: ''}).innerText";
    browser
        .wait_for(
            "the open page shows the parcel with its tracking number",
            &format!(
                "{shipments_text}.includes({number}) && {shipments_text}.includes('Label created')",
                number = json!(tracking)
            ),
        )
        .await;

    // The carrier scans it on its way, then out for delivery.
    let scanned = f
        .scan(
            &tracking,
            json!({"status_code": "IT", "location": "Chicago hub"}),
        )
        .await;
    assert_eq!(scanned["waybill_response"]["outcome"], json!("applied"));
    browser
        .wait_for(
            "the open page shows the parcel on its way",
            &format!(
                "{shipments_text}.includes('On its way') && {shipments_text}.includes('Chicago hub')"
            ),
        )
        .await;
    let scanned = f
        .scan(
            &tracking,
            json!({"status_code": "OD", "location": "Springfield"}),
        )
        .await;
    assert_eq!(scanned["waybill_response"]["outcome"], json!("applied"));
    browser
        .wait_for(
            "the open page shows the parcel out for delivery",
            &format!("{shipments_text}.includes('Out for delivery')"),
        )
        .await;
    assert_eq!(
        browser.eval("window.__stillTheSamePage === true").await,
        json!(true),
        "no reload"
    );
    assert_eq!(
        browser
            .eval("document.getElementById('live-note').textContent.startsWith('Updated')")
            .await,
        json!(true),
        "the change came over the live-update stream"
    );
    let text = browser
        .eval("document.getElementById('main').innerText")
        .await;
    let text = text.as_str().unwrap_or_default();
    assert!(text.contains("Confirmed"), "{text}");
    assert!(
        text.contains(&format!("Parcel {tracking}: in transit (Chicago hub)"))
            && text.contains(&format!(
                "Parcel {tracking}: out for delivery (Springfield)"
            )),
        "both scans in the timeline: {text}"
    );
    let href = browser
        .eval("document.querySelector('#shipments a').getAttribute('href')")
        .await;
    assert!(
        href.as_str()
            .unwrap_or_default()
            .contains("/carrier/track/"),
        "carrier tracking link: {href}"
    );
    browser
        .screenshot(&artifact_path("tracking-page-shipment.png"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lookup_form_redirects_to_the_signed_link_only_for_matching_details() {
    let env = TestEnv::new("tracking_lookup").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let mut body = sample_order("LOOK-1001");
    body["customer"]["email"] = json!("Look.Up@Example.com");
    body["shipping_address"]["postal_code"] = json!("62704-1234");
    let placed = place(&api, "lookup-1", &body).await;
    crate::tracking_at_as_service(&api, &placed.order_id).await;

    let client = no_redirects();
    let lookup = |number: &'static str, contact: &'static str| {
        let client = client.clone();
        let url = format!("{}/track", api.query_url);
        async move {
            client
                .post(url)
                .form(&[("order_number", number), ("contact", contact)])
                .send()
                .await
                .expect("POST /track")
        }
    };
    // A freshly signed link (it expires like the emailed one) that opens the page.
    let expected = format!("/track/{}?token=", placed.order_id);
    for (number, contact) in [
        ("LOOK-1001", "look.up@example.com"),
        (" look-1001 ", "LOOK.UP@EXAMPLE.COM "),
        ("LOOK-1001", "627041234"),
        ("LOOK-1001", " 62704 1234"),
    ] {
        let response = lookup(number, contact).await;
        assert_eq!(response.status(), 303, "{number} / {contact}");
        let location = response.headers()["location"].to_str().expect("location");
        assert!(location.starts_with(&expected), "{location}");
        let page = client
            .get(format!("{}{location}", api.query_url))
            .send()
            .await
            .expect("GET the signed link");
        assert_eq!(page.status(), 200, "{location}");
    }
    for (number, contact) in [
        ("LOOK-1001", "someone.else@example.com"),
        ("LOOK-1002", "look.up@example.com"),
        ("LOOK-1001", "62701"),
        ("", "look.up@example.com"),
    ] {
        let response = lookup(number, contact).await;
        assert_eq!(response.status(), 404, "{number} / {contact}");
        let page = response.text().await.expect("body");
        assert!(page.contains("find an order with those details"), "{page}");
    }
    // Missing fields: the same friendly 404, never a 500.
    let response = client
        .post(format!("{}/track", api.query_url))
        .form(&[("order_number", "LOOK-1001")])
        .send()
        .await
        .expect("POST /track");
    assert_eq!(response.status(), 404);

    // Guessing is rate limited per client: ten tries in a burst (nine were used above), then 429.
    let mut refused_at = None;
    for attempt in 1..=5 {
        let response = lookup("LOOK-1001", "guess@example.com").await;
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            refused_at = Some(attempt);
            break;
        }
        assert_eq!(response.status(), 404);
    }
    let refused_at = refused_at.expect("the lookup form refuses a client that keeps guessing");
    assert!(
        refused_at <= 3,
        "refused only at extra attempt {refused_at}"
    );

    // The page, its stream, the form and the customer's list are in the OpenAPI document.
    let document = api
        .get(&format!("{}/openapi.json", api.query_url))
        .await
        .json();
    for path in [
        "/track",
        "/track/{id}",
        "/track/{id}/events",
        "/v1/me/orders",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "openapi lacks {path}"
        );
    }

    // Nothing in Redis names the customer's email or postcode in a key.
    let keys: Vec<String> = env
        .redis()
        .await
        .scan(format!("{}:*", env.redis_prefix))
        .collect_all()
        .await
        .expect("SCAN");
    assert!(
        keys.iter().any(|k| k.contains(":tracking-lookup:")),
        "{keys:?}"
    );
    for key in &keys {
        let lower = key.to_lowercase();
        assert!(
            !lower.contains("look.up") && !lower.contains("62704"),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_customers_own_cancel_when_given_its_consistency_token() {
    let env = TestEnv::new("tracking_page_ryw").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let placed = place(&api, "ryw-1", &sample_order("RYW-1")).await;
    crate::tracking_at_as_service(&api, &placed.order_id).await;
    let cancelled = api
        .cancel_order(
            &placed.order_id,
            "ryw-cancel",
            &sample_cancel("customer_request"),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.describe());
    let token = cancelled.json()["consistency_token"]
        .as_str()
        .expect("consistency token")
        .to_owned();
    let page = api
        .get(&format!(
            "{}/track/{}?token={}&consistency_token={token}",
            api.query_url, placed.order_id, placed.tracking_token
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let html = page.text();
    assert!(html.contains("data-status=\"cancelled\""), "{html}");
    assert!(!html.contains("id=\"stale\""), "{html}");

    // The event stream sends the current view at once to a page that shows an older version.
    let stream = reqwest::Client::new()
        .get(format!(
            "{}/track/{}/events?token={}&after=1",
            api.query_url, placed.order_id, placed.tracking_token
        ))
        .send()
        .await
        .expect("open the event stream");
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    let mut stream = stream;
    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !received.contains("data-status=\"cancelled\"") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("a view event within 20 s")
            .expect("read the stream")
            .expect("the stream stays open");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("event: view"), "{received}");
    assert!(received.contains("id: 2"), "{received}");
}
