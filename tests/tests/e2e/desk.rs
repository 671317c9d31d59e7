//! The exceptions desk over the public API and real services: each kind of entry provoked the
//! way it happens in production (reviews left waiting, a 3-D Secure challenge holding stock, a
//! carrier that cannot hand a parcel over, a message no view can read, a burst of declines),
//! entries cleared by the desk itself when their condition goes away, and an agent resolving
//! entries, recorded as `DeskEntryResolved` events with the agent as actor.

use std::time::Duration;

use serde_json::{json, Value};
use waybill_e2e::checkout::{cards, order, CheckoutWorld};
use waybill_e2e::fulfillment::{multi_line_order, FulfillmentWorld};
use waybill_e2e::{eventually, Api, AGENT_KEY, SERVICE_KEY};

/// How long a test waits for the desk (its detector looks every 200 ms here).
const DESK_DEADLINE: Duration = Duration::from_secs(60);

/// Settings that make the desk quick and its windows small enough to see in a test.
const QUICK_DESK: &[(&str, &str)] = &[
    ("WAYBILL_DESK_TICK_MS", "200"),
    ("WAYBILL_OPS_SAMPLE_MS", "500"),
    // A stage's limit is learned from 3 orders, and never under 1.5 s.
    ("WAYBILL_DESK_MIN_SAMPLES", "3"),
    ("WAYBILL_DESK_FLOOR_MS", "1500"),
];

/// Entries matching `query` (`status=all&kind=...`), read as an agent.
async fn entries(api: &Api, query: &str) -> Vec<Value> {
    let response = api
        .command_get(&format!("/v1/desk/entries?{query}&limit=100"), AGENT_KEY)
        .await;
    assert_eq!(response.status, 200, "{}", response.describe());
    response.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The entry of `kind` about `order_id` (any status) once `check` accepts it.
async fn entry_when(
    api: &Api,
    kind: &str,
    order_id: Option<&str>,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let query = match order_id {
        Some(id) => format!("status=all&kind={kind}&order_id={id}"),
        None => format!("status=all&kind={kind}"),
    };
    let check = &check;
    let query = &query;
    eventually(
        &format!("{kind} entry: {what}"),
        DESK_DEADLINE,
        || async move {
            let found = entries(api, query).await;
            found
                .iter()
                .find(|e| check(e))
                .cloned()
                .ok_or_else(|| format!("{found:?}"))
        },
    )
    .await
}

fn is_open(entry: &Value) -> bool {
    entry["status"] == json!("open")
}

fn cleared_by_the_desk(entry: &Value) -> bool {
    entry["status"] == json!("resolved")
        && entry["resolution"]["action"] == json!("cleared")
        && entry["resolution"]["resolved_by"] == json!("desk")
        && entry["resolution"]["automatic"] == json!(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_and_at_risk_orders_reach_the_desk_and_leave_it_when_they_move_on() {
    let mut settings = QUICK_DESK.to_vec();
    settings.extend_from_slice(&[
        // Captured at shipment, so confirmed orders keep an authorization to watch.
        ("WAYBILL_CAPTURE_MODE", "on-shipment"),
        ("WAYBILL_MAX_HANDOFF_RETRIES", "1"),
        // Warning windows as long as the deadlines: every review, held reservation and open
        // authorization is on the desk at once.
        ("WAYBILL_DESK_REVIEW_WARN_SECS", "172800"),
        ("WAYBILL_DESK_RESERVATION_WARN_SECS", "900"),
        ("WAYBILL_DESK_AUTHORIZATION_WARN_SECS", "604800"),
    ]);
    let f = FulfillmentWorld::start("desk_orders", &settings).await;
    let world = &f.world;
    let api = &world.api;
    world.restock("WATCH-1", "wh-east", 10).await;
    world.restock("TEE-RED-M", "wh-east", 10).await;

    // Three reviews an agent decides at once teach the desk how long a review takes on web.
    let review_order = |reference: &str| {
        let mut big = order(reference, "WATCH-1", 1, cards::APPROVED);
        big["lines"][0]["unit_price_minor"] = json!(250_000);
        big
    };
    let mut learned_from = Vec::new();
    for n in 1..=3 {
        let placed = world.place(&review_order(&format!("DESK-REV-{n}"))).await;
        let id = placed["order_id"].as_str().expect("id").to_owned();
        world.settled(&id, Some("review")).await;
        // Near its deadline at once (the warning window is the whole review time).
        entry_when(api, "review_deadline", Some(&id), "open", is_open).await;
        let decided = api
            .post_json(
                &format!("/v1/orders/{id}/review"),
                AGENT_KEY,
                &format!("desk-review-{n}"),
                &json!({"decision": "approve"}),
            )
            .await;
        assert_eq!(decided.status, 200, "{}", decided.describe());
        learned_from.push(id);
    }
    // The fourth waits: near its review deadline at once, overdue once past what reviews took.
    let waiting = world.place(&review_order("DESK-REV-4")).await;
    let waiting_id = waiting["order_id"].as_str().expect("id").to_owned();
    world.settled(&waiting_id, Some("review")).await;
    let deadline = entry_when(api, "review_deadline", Some(&waiting_id), "open", is_open).await;
    assert!(
        deadline["reason"]
            .as_str()
            .unwrap()
            .contains("review times out"),
        "{deadline}"
    );
    assert_eq!(deadline["suggested_action"], json!("extend"));
    let overdue = entry_when(api, "stage_overdue", Some(&waiting_id), "open", is_open).await;
    assert_eq!(overdue["details"]["stage"], json!("review"));
    assert_eq!(overdue["details"]["channel"], json!("web"));
    assert_eq!(overdue["details"]["learned"], json!(true), "{overdue}");
    assert_eq!(overdue["details"]["samples"], json!(3), "{overdue}");
    assert!(
        overdue["details"]["elapsed_ms"].as_u64() > overdue["details"]["limit_ms"].as_u64(),
        "{overdue}"
    );
    assert!(
        overdue["reason"]
            .as_str()
            .unwrap()
            .contains("p99 of the last 3 orders on web"),
        "{overdue}"
    );
    // The decided reviews' deadline entries were cleared by the desk when the agent decided.
    for id in &learned_from {
        entry_when(
            api,
            "review_deadline",
            Some(id),
            "cleared",
            cleared_by_the_desk,
        )
        .await;
    }

    // A 3-D Secure challenge holds the reservation: on the desk until the customer passes it.
    let challenged = world
        .place(&order("DESK-3DS", "TEE-RED-M", 1, cards::THREE_DS))
        .await;
    let challenged_id = challenged["order_id"].as_str().expect("id").to_owned();
    world
        .settled(&challenged_id, Some("payment_challenge"))
        .await;
    let held = entry_when(
        api,
        "reservation_expiring",
        Some(&challenged_id),
        "open",
        is_open,
    )
    .await;
    assert!(
        held["reason"].as_str().unwrap().contains("not confirmed"),
        "{held}"
    );
    let passed = world.complete_challenge(&challenged_id, true).await;
    assert_eq!(passed.status, 200, "{}", passed.describe());
    entry_when(
        api,
        "reservation_expiring",
        Some(&challenged_id),
        "cleared once confirmed",
        cleared_by_the_desk,
    )
    .await;

    // Another challenge nobody passes: the agent voids it from the desk, which cancels the
    // order in the same commit as the resolution; the checkout flow then releases the stock.
    let abandoned = world
        .place(&order("DESK-3DS-VOID", "TEE-RED-M", 1, cards::THREE_DS))
        .await;
    let abandoned_id = abandoned["order_id"].as_str().expect("id").to_owned();
    world
        .settled(&abandoned_id, Some("payment_challenge"))
        .await;
    let at_risk = entry_when(
        api,
        "reservation_expiring",
        Some(&abandoned_id),
        "open",
        is_open,
    )
    .await;
    let voided = api
        .post_json(
            &format!(
                "/v1/desk/entries/{}/resolve",
                at_risk["entry_id"].as_str().unwrap()
            ),
            AGENT_KEY,
            "desk-void-1",
            &json!({"action": "void", "note": "customer gave up on 3-D Secure"}),
        )
        .await;
    assert_eq!(voided.status, 200, "{}", voided.describe());
    let voided = voided.json();
    assert_eq!(
        voided["effect"],
        json!("cancels the order: its authorization is voided and its stock released")
    );
    assert_eq!(
        voided["order_events"][0]["event_type"],
        json!("OrderCancelled")
    );
    assert!(voided["consistency_token"].is_string(), "{voided}");
    let after_void = world.settled(&abandoned_id, None).await;
    assert!(
        after_void.iter().any(|t| t == "OrderCancelled")
            && after_void.iter().any(|t| t == "InventoryReleased"),
        "the void cancelled the order and the flow released its stock: {after_void:?}"
    );
    let cancel_actor: String = sqlx::query_scalar(
        "SELECT actor_id FROM events WHERE stream_id = $1 AND event_type = 'OrderCancelled'",
    )
    .bind(format!("order-{abandoned_id}"))
    .fetch_one(world.env.db())
    .await
    .expect("the cancellation");
    assert_eq!(cancel_actor, "e2e-agent");
    // The note is sealed in the log (it may name the customer) and opens on read.
    let cancel_note = world
        .env
        .payloads_of(&abandoned_id, "OrderCancelled")
        .await
        .remove(0)["note"]
        .clone();
    assert!(
        cancel_note
            .as_str()
            .unwrap_or_default()
            .contains("customer gave up on 3-D Secure"),
        "{cancel_note}"
    );
    // An order already cancelled refuses a second void: the entry's action is not done twice.
    let overdue_void = api
        .post_json(
            &format!(
                "/v1/desk/entries/{}/resolve",
                at_risk["entry_id"].as_str().unwrap()
            ),
            AGENT_KEY,
            "desk-void-2",
            &json!({"action": "void"}),
        )
        .await;
    assert_eq!(overdue_void.status, 409, "{}", overdue_void.describe());

    // A parcel the carrier cannot hand over: an exception, then a failed handoff once the
    // automatic retry gave up. Its authorization was on the desk until capture at shipment.
    let shipped = world
        .place(&multi_line_order(
            "DESK-SHIP",
            &[("TEE-RED-M", 1)],
            "standard",
        ))
        .await;
    let shipped_id = shipped["order_id"].as_str().expect("id").to_owned();
    entry_when(
        api,
        "authorization_expiring",
        Some(&shipped_id),
        "open before shipment",
        |e| e["order_id"] == json!(shipped_id),
    )
    .await;
    f.pack_all(&shipped_id, 1).await;
    let parcel = f.parcels(&shipped_id, 1).await[0]["tracking_number"]
        .as_str()
        .expect("tracking number")
        .to_owned();
    entry_when(
        api,
        "authorization_expiring",
        Some(&shipped_id),
        "cleared by the capture",
        cleared_by_the_desk,
    )
    .await;
    f.scan(
        &parcel,
        json!({"status_code": "FH", "description": "Nobody home"}),
    )
    .await;
    let exception = entry_when(api, "carrier_exception", Some(&shipped_id), "open", is_open).await;
    assert!(
        exception["reason"]
            .as_str()
            .unwrap()
            .contains("Nobody home"),
        "{exception}"
    );
    f.scan(
        &parcel,
        json!({"status_code": "FH", "description": "Nobody home again"}),
    )
    .await;
    let failed = entry_when(api, "failed_handoff", Some(&shipped_id), "open", is_open).await;
    assert_eq!(failed["suggested_action"], json!("retry_handoff"));
    assert!(
        failed["allowed_actions"]
            .as_array()
            .unwrap()
            .contains(&json!("reroute")),
        "{failed}"
    );
    // The first exception was answered by the next scan of that parcel.
    let first = exception["entry_id"].as_str().unwrap().to_owned();
    entry_when(
        api,
        "carrier_exception",
        Some(&shipped_id),
        "first cleared",
        |e| e["entry_id"] == json!(first) && cleared_by_the_desk(e),
    )
    .await;

    // The carrier's automatic retry was its one.
    let retries_at_carrier = |parcels: Vec<Value>| parcels[0]["handoff_retries"].as_u64();
    assert_eq!(retries_at_carrier(f.parcels(&shipped_id, 1).await), Some(1));

    // An agent retries the handoff from the desk: the carrier is asked again, the order records
    // the retry, the resolution is one event with the agent its actor, once.
    let entry_id = failed["entry_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/desk/entries/{entry_id}/resolve");
    let body = json!({"action": "retry_handoff", "note": "asked the carrier to collect tomorrow"});
    let resolved = api
        .post_json(&path, AGENT_KEY, "desk-resolve-1", &body)
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.describe());
    let answer = resolved.json();
    assert_eq!(answer["status"], json!("resolved"));
    assert_eq!(answer["resolved_by"], json!("e2e-agent"));
    assert_eq!(
        answer["effect"],
        json!("asks the carrier to attempt the parcel's handoff again")
    );
    assert_eq!(
        answer["order_events"][0]["event_type"],
        json!("ShipmentExceptionHandled")
    );
    let replay = api
        .post_json(&path, AGENT_KEY, "desk-resolve-1", &body)
        .await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json()["event_id"], answer["event_id"]);
    assert_eq!(
        retries_at_carrier(f.parcels(&shipped_id, 1).await),
        Some(2),
        "the desk asked the carrier once more, and the replay did not ask again"
    );
    let retried: Vec<(String, Value)> = sqlx::query_as(
        "SELECT actor_id, payload FROM events WHERE stream_id = $1 \
         AND event_type = 'ShipmentExceptionHandled' ORDER BY stream_version",
    )
    .bind(format!("order-{shipped_id}"))
    .fetch_all(world.env.db())
    .await
    .expect("exception handling");
    let (retry_actor, retry) = retried.last().expect("the desk's retry");
    assert_eq!(retry_actor, "e2e-agent");
    assert_eq!(retry["action"], json!("retry_handoff"));
    assert!(
        retry["detail"]
            .as_str()
            .unwrap()
            .contains("e2e-agent asked the carrier"),
        "{retry}"
    );
    let again = api
        .post_json(
            &path,
            AGENT_KEY,
            "desk-resolve-2",
            &json!({"action": "reroute"}),
        )
        .await;
    again.assert_problem(
        409,
        "invalid-transition",
        "a resolved entry is resolved once",
    );
    let events: Vec<(String, String, String, Value)> = sqlx::query_as(
        "SELECT event_type, actor_kind, actor_id, payload FROM events WHERE stream_id = $1",
    )
    .bind(format!("desk-{entry_id}"))
    .fetch_all(world.env.db())
    .await
    .expect("desk stream");
    assert_eq!(events.len(), 1, "{events:?}");
    let (event_type, actor_kind, actor_id, payload) = &events[0];
    assert_eq!(event_type, "DeskEntryResolved");
    assert_eq!(
        (actor_kind.as_str(), actor_id.as_str()),
        ("agent", "e2e-agent")
    );
    assert_eq!(payload["action"], json!("retry_handoff"));
    assert_eq!(payload["order_id"], json!(shipped_id));
    assert_eq!(payload["automatic"], json!(false));
    let shown = entry_when(api, "failed_handoff", Some(&shipped_id), "resolved", |e| {
        e["status"] == json!("resolved")
    })
    .await;
    assert_eq!(shown["resolution"]["resolved_by"], json!("e2e-agent"));
    assert_eq!(
        shown["resolution"]["note"],
        json!("asked the carrier to collect tomorrow")
    );
    assert_eq!(shown["resolution"]["event_id"], answer["event_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_a_decline_spike_reach_the_desk_and_an_agent_resolves_one() {
    let mut settings = QUICK_DESK.to_vec();
    settings.extend_from_slice(&[
        // An hour's window: the test's declines all fall in one or two windows.
        ("WAYBILL_DESK_ANOMALY_WINDOW_SECS", "3600"),
        ("WAYBILL_DESK_SPIKE_MIN", "3"),
    ]);
    let world = CheckoutWorld::start("desk_signals", &settings, &[("TEE-1", 50)]).await;
    let api = &world.api;

    // A message no view can read: each view dead-letters it after its retries.
    let js = world.env.jetstream().await;
    js.publish(
        format!("{}.v1.0.Garbage", world.env.subject_root),
        "this is not an event".into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    let dead = entry_when(api, "dead_letter", None, "tracking's", |e| {
        e["details"]["view"] == json!("tracking") && is_open(e)
    })
    .await;
    assert!(
        dead["reason"]
            .as_str()
            .unwrap()
            .contains("the tracking view gave up on a message that is not an event"),
        "{dead}"
    );
    assert_eq!(dead["suggested_action"], json!("replay"));
    let refused = api
        .post_json(
            &format!(
                "/v1/desk/entries/{}/resolve",
                dead["entry_id"].as_str().unwrap()
            ),
            AGENT_KEY,
            "desk-dlq-bad",
            &json!({"action": "retry_handoff"}),
        )
        .await;
    refused.assert_problem(422, "validation-failed", "not an action for a dead letter");
    assert_eq!(refused.problem_fields(), vec!["action"]);
    let discarded = api
        .post_json(
            &format!(
                "/v1/desk/entries/{}/resolve",
                dead["entry_id"].as_str().unwrap()
            ),
            AGENT_KEY,
            "desk-dlq-1",
            &json!({"action": "discard", "note": "junk published by hand"}),
        )
        .await;
    assert_eq!(discarded.status, 200, "{}", discarded.describe());
    let dead_id = dead["entry_id"].clone();
    entry_when(api, "dead_letter", None, "discarded", |e| {
        e["entry_id"] == dead_id && e["resolution"]["action"] == json!("discard")
    })
    .await;
    let service = api.command_get("/v1/desk/entries", SERVICE_KEY).await;
    service.assert_problem(403, "forbidden", "the desk is for agents and admins");

    // A burst of declines on web: an anomaly entry and the alert metric.
    let shop = &world;
    let mut placed = 0;
    let spike = eventually("a decline spike", DESK_DEADLINE, || {
        placed += 1;
        let reference = format!("DESK-DECLINE-{placed}");
        async move {
            if placed <= 12 {
                shop.place(&order(&reference, "TEE-1", 1, cards::DECLINED))
                    .await;
            }
            let found = entries(api, "kind=anomaly&channel=web").await;
            found
                .into_iter()
                .find(|e| e["details"]["anomaly"] == json!("decline_spike"))
                .ok_or_else(|| format!("{placed} declined orders placed"))
        }
    })
    .await;
    assert!(
        spike["reason"]
            .as_str()
            .unwrap()
            .contains("payment declines on web"),
        "{spike}"
    );
    assert!(spike["details"]["count"].as_u64().unwrap() >= 3, "{spike}");
    let metrics = api
        .get(&format!("{}/metrics", world.waybill.metrics_url()))
        .await
        .text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("waybill_desk_alerts_total")
                && l.contains("anomaly=\"decline_spike\"")
                && l.contains("channel=\"web\"")),
        "alert counter exported"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("waybill_desk_open_entries")),
        "open entries exported"
    );
}

/// Headless Chromium on the desk and the operations page, as an agent and an admin would use
/// them, with screenshots at laptop and phone width (`target/screens/desk-*.png`, `ops-*.png`).
mod browser {
    use serde_json::{json, Value};
    use waybill_e2e::browser::{screen_path, Browser};
    use waybill_e2e::checkout::{cards, order, CheckoutWorld};
    use waybill_e2e::{ADMIN_KEY, AGENT_KEY};

    use super::{entry_when, is_open, DESK_DEADLINE, QUICK_DESK};

    /// Opens `url` again and again until `check` accepts what the page evaluates `expression`
    /// to (the desk and the ops page show what the projector applied by the time they are
    /// rendered). A browser is borrowed mutably, so this polls by hand rather than through
    /// `eventually`.
    async fn reload_until(
        browser: &mut Browser,
        url: &str,
        expression: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let until = tokio::time::Instant::now() + DESK_DEADLINE;
        loop {
            browser.navigate(url).await;
            browser
                .wait_for("the page", "document.readyState === 'complete'")
                .await;
            let value = browser.eval(expression).await;
            if check(&value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "{url}: {expression} still gives {value}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    fn text_has(text: &'static str) -> impl Fn(&Value) -> bool {
        move |v| v.as_str().is_some_and(|t| t.contains(text))
    }

    /// What the operations charts must look like at the current width: axis text drawn at
    /// 10 px or more, no two axis labels of a chart overlapping, each line spanning most of
    /// the plot (the time axis fits the samples), and each legend swatch in its line's colour
    /// and dash.
    async fn readable_charts(browser: &mut Browser, width: &str) {
        let found = browser
            .eval(
                "Array.from(document.querySelectorAll('figure.chart')).map(f => { \
                 const boxes = Array.from(f.querySelectorAll('svg.chart > text')) \
                   .map(t => t.getBoundingClientRect()); \
                 const overlaps = boxes.some((a, i) => boxes.some((b, j) => j > i && \
                   a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)); \
                 const plot = f.querySelector('svg.chart').getBoundingClientRect().width; \
                 const spans = Array.from(f.querySelectorAll('polyline')) \
                   .map(p => p.getBoundingClientRect().width / plot); \
                 const look = e => [e.getAttribute('stroke'), e.getAttribute('stroke-dasharray')]; \
                 const strokes = Array.from(f.querySelectorAll('polyline')).map(look); \
                 const swatches = Array.from(f.querySelectorAll('.legend li svg line')).map(look); \
                 return { id: f.id, smallest: Math.min(...boxes.map(b => b.height)), overlaps, \
                   widest: Math.max(...spans), strokes, swatches }; })",
            )
            .await;
        let charts = found.as_array().cloned().unwrap_or_default();
        assert!(charts.len() >= 5, "{width}: charts {found}");
        for chart in &charts {
            assert!(
                chart["smallest"].as_f64() >= Some(10.0),
                "{width}: axis text of {} drawn under 10 px: {chart}",
                chart["id"]
            );
            assert_eq!(
                chart["overlaps"],
                json!(false),
                "{width}: axis labels overlap: {chart}"
            );
            assert!(
                chart["widest"].as_f64() >= Some(0.6),
                "{width}: the samples are squeezed into part of the time axis: {chart}"
            );
            assert_eq!(
                chart["strokes"], chart["swatches"],
                "{width}: legend swatches in the lines' colours and dashes: {chart}"
            );
        }
    }

    const BODY_TEXT: &str = "document.body ? document.body.innerText : ''";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_agent_voids_an_order_from_the_desk_and_an_admin_reads_the_operations_charts() {
        let mut settings = QUICK_DESK.to_vec();
        // A reservation is on the desk as soon as it is held (the warning window is its TTL).
        settings.push(("WAYBILL_DESK_RESERVATION_WARN_SECS", "900"));
        let world = CheckoutWorld::start("desk_browser", &settings, &[("DESK-TEE", 10)]).await;
        let api = &world.api;
        let placed = world
            .place(&order("DESK-WEB-3DS", "DESK-TEE", 1, cards::THREE_DS))
            .await;
        let order_id = placed["order_id"].as_str().expect("id").to_owned();
        world.settled(&order_id, Some("payment_challenge")).await;
        let entry = entry_when(
            api,
            "reservation_expiring",
            Some(&order_id),
            "open",
            is_open,
        )
        .await;
        let entry_id = entry["entry_id"].as_str().expect("entry id").to_owned();
        let card = format!("#entry-{entry_id}");
        let base = api.query_url.clone();

        // The agent opens the desk: the entry says why it is there and what is suggested.
        let mut browser = Browser::launch(&world.env.log_dir).await;
        browser.viewport(1280, 900, false).await;
        browser.sign_in(&base, AGENT_KEY, "/console/desk").await;
        browser.wait_for_text("Reservation expiring").await;
        let text = browser.text().await;
        assert!(text.contains("not confirmed"), "the reason: {text}");
        assert!(
            text.contains("Extend the deadline"),
            "the suggestion: {text}"
        );
        browser.screenshot(&screen_path("desk-laptop")).await;

        // Void it: the confirmation says the order will be cancelled, nothing is sent before.
        browser.fill(&format!("#action-{entry_id}"), "void").await;
        browser
            .fill(
                &format!("#note-{entry_id}"),
                "customer abandoned 3-D Secure",
            )
            .await;
        browser
            .click_and_wait(&format!("{card} form.resolve button[type=submit]"))
            .await;
        browser.wait_for_text("Confirm").await;
        let summary = browser
            .eval("document.querySelector('#confirm-summary').innerText")
            .await;
        let summary = summary.as_str().unwrap_or_default().to_owned();
        assert!(
            summary.contains(
                "This cancels the order: its authorization is voided and its stock released"
            ),
            "{summary}"
        );
        assert!(
            summary.contains("customer abandoned 3-D Secure"),
            "{summary}"
        );
        let before: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_id = $1")
            .bind(format!("desk-{entry_id}"))
            .fetch_one(world.env.db())
            .await
            .expect("count");
        assert_eq!(before, 0, "nothing is recorded before the confirmation");
        browser.screenshot(&screen_path("desk-confirm")).await;
        browser.click_and_wait("#confirm").await;
        browser
            .wait_for_text("Reservation expiring resolved: Void and cancel")
            .await;

        // The entry shows as resolved, with what it did and who did it.
        reload_until(
            &mut browser,
            &format!("{base}/console/desk?status=resolved&kind=reservation_expiring"),
            BODY_TEXT,
            text_has(
                "cancels the order: its authorization is voided and its stock released) by e2e-agent",
            ),
        )
        .await;
        let badge = browser
            .eval(&format!(
                "document.querySelector('{card} .badge').innerText"
            ))
            .await;
        assert_eq!(badge, json!("resolved"));
        assert_eq!(
            browser
                .eval("document.querySelector('#desk-count').innerText")
                .await,
            json!("1 entry"),
            "a count of one is singular"
        );
        browser
            .screenshot(&screen_path("desk-resolved-laptop"))
            .await;

        // The order's own timeline has the resolution beside the cancellation it made.
        browser.click_and_wait(&format!("{card} .facts a")).await;
        browser.wait_for_text("Timeline").await;
        let timeline: Value = browser
            .eval(
                "Array.from(document.querySelectorAll('#timeline li')).map(li => \
                 [li.dataset.event, li.className, li.innerText])",
            )
            .await;
        let rows = timeline.as_array().cloned().unwrap_or_default();
        let desk_row = rows
            .iter()
            .find(|r| r[0] == json!("DeskEntryResolved"))
            .unwrap_or_else(|| panic!("no desk resolution on the timeline: {timeline}"));
        assert_eq!(desk_row[1], json!("desk"));
        let said = desk_row[2].as_str().unwrap_or_default();
        assert!(said.contains("exceptions desk"), "{said}");
        assert!(said.contains("agent:e2e-agent"), "{said}");
        assert!(
            said.contains("Void and cancel (reservation_expiring) — customer abandoned 3-D Secure"),
            "{said}"
        );
        assert!(
            rows.iter().any(|r| r[0] == json!("OrderCancelled")),
            "the void cancelled the order: {timeline}"
        );
        // Cancelled with nothing captured: nothing to refund, nothing left to cancel.
        assert_eq!(
            browser
                .eval("['#action-refund', '#action-store-credit', '#action-cancel-lines', '#action-review'] \
                       .filter(s => document.querySelector(s) !== null)")
                .await,
            json!([]),
            "a cancelled order with nothing captured offers no refund or cancellation"
        );
        browser
            .screenshot(&screen_path("desk-order-timeline"))
            .await;

        // The same desk at phone width.
        browser.viewport(390, 844, true).await;
        browser
            .navigate(&format!("{base}/console/desk?status=all"))
            .await;
        browser.wait_for_text("Exceptions desk").await;
        let overflow = browser
            .eval("document.documentElement.scrollWidth <= window.innerWidth")
            .await;
        assert_eq!(overflow, json!(true), "nothing wider than the phone");
        browser.screenshot(&screen_path("desk-phone")).await;

        // An admin opens the operations page: a chart per metric, with lines.
        browser.call("Network.clearBrowserCookies", json!({})).await;
        browser.viewport(1280, 900, false).await;
        browser.sign_in(&base, ADMIN_KEY, "/ops").await;
        let ops = format!("{base}/ops?minutes=15");
        // Lag, stalls, throughput, events/s and backlogs have samples from the start: at least
        // five charts with a line of two points or more.
        reload_until(
            &mut browser,
            &ops,
            "[document.querySelectorAll('svg.chart').length, \
             Array.from(document.querySelectorAll('svg.chart polyline')) \
               .filter(p => p.getAttribute('points').split(' ').length > 1).length]",
            |counts| counts[0].as_u64() >= Some(5) && counts[1].as_u64() >= Some(5),
        )
        .await;
        let text = browser.text().await;
        for title in [
            "Lag per view",
            "Stalls per view",
            "Delivered per view",
            "Events appended",
            "Work-list backlogs",
            "Latest values",
        ] {
            assert!(text.contains(title), "{title} on /ops: {text}");
        }
        readable_charts(&mut browser, "laptop").await;
        browser.screenshot(&screen_path("ops-laptop")).await;
        browser.viewport(390, 844, true).await;
        browser.navigate(&ops).await;
        browser.wait_for_text("Operations").await;
        let overflow = browser
            .eval("document.documentElement.scrollWidth <= window.innerWidth")
            .await;
        assert_eq!(overflow, json!(true), "nothing wider than the phone");
        let latest = browser
            .eval(
                "(() => { const t = document.querySelector('#ops-latest');                  return [t.scrollWidth, t.parentElement.clientWidth, t.rows.length]; })()",
            )
            .await;
        assert!(
            latest[2].as_u64() > Some(1),
            "the latest values have rows: {latest}"
        );
        assert!(
            latest[0].as_f64() <= latest[1].as_f64(),
            "the latest values fit the phone without scrolling sideways: {latest}"
        );
        readable_charts(&mut browser, "phone").await;
        browser.screenshot(&screen_path("ops-phone")).await;
    }
}
