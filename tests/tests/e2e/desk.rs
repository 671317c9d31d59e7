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

    // An agent records what was done: one event, the agent its actor, once.
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
    let replay = api
        .post_json(&path, AGENT_KEY, "desk-resolve-1", &body)
        .await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json()["event_id"], answer["event_id"]);
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
