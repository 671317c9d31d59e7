//! Event subscriptions over the public API and the real services: webhooks registered by an
//! admin reach our receiver signed, filtered, in order per order and at least once; a receiver
//! that is down loses nothing; an event a receiver keeps refusing becomes a dead letter and is
//! delivered again on request; the pull feed pages through exactly the log; two delivery
//! workers share the work and one killed with -9 loses nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};
use waybill_e2e::{
    eventually, sample_cancel, sample_order, Api, HttpResponse, Role, TestEnv, WebhookReceiver,
    ADMIN_KEY, AGENT_KEY,
};
use waybill_write_side::subscriptions::signature;

const DEADLINE: Duration = Duration::from_secs(90);

/// Quick retries, and enough of them that a receiver down for the test's outage loses nothing.
const QUICK_RETRIES: &[(&str, &str)] = &[
    ("WAYBILL_WEBHOOK_RETRY_BASE_MS", "100"),
    ("WAYBILL_WEBHOOK_MAX_BACKOFF_MS", "500"),
    ("WAYBILL_WEBHOOK_MAX_ATTEMPTS", "100"),
];

async fn send(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> HttpResponse {
    api.send(
        method,
        &format!("{}{path}", api.command_url),
        Some(ADMIN_KEY),
        key,
        body,
    )
    .await
}

/// Registers a subscription as an admin; returns (subscription id, secret).
async fn subscribe(api: &Api, body: Value) -> (String, String) {
    let key = format!("sub-{}", uuid::Uuid::now_v7());
    let created = send(
        api,
        reqwest::Method::POST,
        "/v1/subscriptions",
        Some(&key),
        Some(&body),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.describe());
    let json = created.json();
    (
        json["subscription"]["subscription_id"]
            .as_str()
            .expect("id")
            .to_owned(),
        json["secret"].as_str().expect("secret").to_owned(),
    )
}

/// Places `n` orders; returns their ids.
async fn place(api: &Api, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let placed = api
            .place_order(
                &format!("{prefix}-{i}"),
                &sample_order(&format!("{prefix}-{i}")),
            )
            .await;
        assert_eq!(placed.status, 201, "{}", placed.describe());
        ids.push(
            placed.json()["order_id"]
                .as_str()
                .expect("order id")
                .to_owned(),
        );
    }
    ids
}

async fn cancel(api: &Api, order_id: &str) {
    let cancelled = api
        .cancel_order(
            order_id,
            &format!("cancel-{order_id}"),
            &sample_cancel("customer_request"),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.describe());
}

/// The log's events: event id → (stream, version, type).
async fn log(env: &TestEnv) -> HashMap<String, (String, i64, String)> {
    let rows: Vec<(uuid::Uuid, String, i64, String)> =
        sqlx::query_as("SELECT event_id, stream_id, stream_version, event_type FROM events")
            .fetch_all(env.db())
            .await
            .expect("read the log");
    rows.into_iter()
        .map(|(id, s, v, t)| (id.to_string(), (s, v, t)))
        .collect()
}

/// Waits until `receiver` accepted, for `subscription`, every event id in `expected`.
async fn received_all(receiver: &WebhookReceiver, subscription: &str, expected: &HashSet<String>) {
    eventually("every event delivered", DEADLINE, || async {
        let got: HashSet<String> = receiver
            .received()
            .into_iter()
            .filter(|r| r.subscription_id == subscription)
            .map(|r| r.event_id)
            .collect();
        let missing = expected.difference(&got).count();
        if missing == 0 {
            Ok(())
        } else {
            Err(format!("{missing} of {} not delivered yet", expected.len()))
        }
    })
    .await;
}

/// Each order's events, as first received by `subscription`, are its versions 1, 2, ... in order.
fn assert_in_order_per_order(receiver: &WebhookReceiver, subscription: &str) {
    let mut seen = HashSet::new();
    let mut per_order: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in receiver
        .received()
        .into_iter()
        .filter(|r| r.subscription_id == subscription)
    {
        if seen.insert(r.event_id.clone()) {
            per_order
                .entry(r.event["stream_id"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push(r.event["stream_version"].as_i64().unwrap_or_default());
        }
    }
    for (stream, versions) in per_order {
        let mut sorted = versions.clone();
        sorted.sort();
        assert_eq!(versions, sorted, "{stream} arrived out of order");
    }
}

/// The pull feed, paged `limit` at a time from the start, with `types` if given.
async fn pull_all(api: &Api, limit: usize, types: Option<&str>) -> Vec<Value> {
    let mut after = "0".to_owned();
    let mut events = Vec::new();
    loop {
        let mut path = format!("/v1/events?after={after}&limit={limit}");
        if let Some(types) = types {
            path.push_str(&format!("&types={types}"));
        }
        let page = api.command_get(&path, ADMIN_KEY).await;
        assert_eq!(page.status, 200, "{}", page.describe());
        let page = page.json();
        let batch = page["events"].as_array().cloned().unwrap_or_default();
        assert!(batch.len() <= limit);
        let done = batch.is_empty();
        events.extend(batch);
        after = page["next_cursor"]
            .as_str()
            .expect("next_cursor")
            .to_owned();
        if done {
            return events;
        }
    }
}

#[tokio::test]
async fn webhooks_arrive_signed_filtered_in_order_and_survive_a_receiver_outage() {
    let env = TestEnv::new("subscriptions_flow").await;
    let waybill = env.start_with(Role::All, QUICK_RETRIES).await;
    let api = waybill.api();
    let mut receiver = WebhookReceiver::start().await;
    let shared_secret = "whsec_e2e_shared_secret_0123456789";
    receiver.set_secret(shared_secret);
    let (all, _) = subscribe(
        &api,
        json!({"url": receiver.url(), "secret": shared_secret, "description": "everything"}),
    )
    .await;
    let (cancels, _) = subscribe(
        &api,
        json!({"url": receiver.url(), "secret": shared_secret, "event_types": ["OrderCancelled"]}),
    )
    .await;

    let orders = place(&api, "SUB-A", 8).await;
    for id in &orders[..4] {
        cancel(&api, id).await;
    }
    let wanted =
        |log: &HashMap<String, (String, i64, String)>, only: Option<&str>| -> HashSet<String> {
            log.iter()
                .filter(|(_, (_, _, t))| only.is_none_or(|o| o == t))
                .map(|(id, _)| id.clone())
                .collect()
        };
    let first = log(&env).await;
    assert_eq!(first.len(), 12);
    received_all(&receiver, &all, &wanted(&first, None)).await;
    received_all(&receiver, &cancels, &wanted(&first, Some("OrderCancelled"))).await;
    // The filtered subscription got cancellations only.
    assert!(receiver
        .received()
        .iter()
        .filter(|r| r.subscription_id == cancels)
        .all(|r| r.event["event_type"] == "OrderCancelled"));
    assert_eq!(receiver.bad_signatures(), 0);
    assert_in_order_per_order(&receiver, &all);
    // A body is the event as the feed shows it, with its payload in `data`.
    let placed = receiver
        .received()
        .into_iter()
        .find(|r| r.event["event_type"] == "OrderPlaced")
        .expect("an OrderPlaced");
    assert!(orders.contains(
        &placed.event["order_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    ));
    assert_eq!(
        placed.event["data"]["channel_order_ref"]
            .as_str()
            .map(|r| r.starts_with("SUB-A")),
        Some(true)
    );
    // Signed with the subscription's secret, not with any other.
    let body = serde_json::to_vec(&placed.event).expect("body");
    let header = signature::sign(shared_secret, 1_000, &body);
    assert!(signature::verify("another-secret-0123456789", &header, &body, 1_000, 300).is_err());

    // The receiver goes down; orders keep coming; nothing is lost and nothing dead-letters.
    receiver.go_down().await;
    let more = place(&api, "SUB-B", 6).await;
    for id in &more[..3] {
        cancel(&api, id).await;
    }
    eventually("the subscription notices the outage", DEADLINE, || async {
        let sub = api
            .command_get(&format!("/v1/subscriptions/{all}"), ADMIN_KEY)
            .await
            .json();
        if sub["consecutive_failures"].as_i64().unwrap_or(0) > 0 {
            Ok(())
        } else {
            Err(sub.to_string())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    receiver.come_up().await;
    let second = log(&env).await;
    assert_eq!(second.len(), 21);
    received_all(&receiver, &all, &wanted(&second, None)).await;
    received_all(
        &receiver,
        &cancels,
        &wanted(&second, Some("OrderCancelled")),
    )
    .await;
    assert_in_order_per_order(&receiver, &all);
    assert_eq!(receiver.bad_signatures(), 0);
    // The receiver has every event; a delivery whose answer was lost in the outage is still
    // recorded as a retry until it is sent again (at least once), so wait for the counters.
    let sub: Value = eventually(
        "the subscription's counters",
        Duration::from_secs(60),
        || async {
            let sub = api
                .command_get(&format!("/v1/subscriptions/{all}"), ADMIN_KEY)
                .await
                .json();
            match (sub["delivered"].as_i64(), sub["pending_retries"].as_i64()) {
                (Some(delivered), Some(0)) if delivered >= 21 => Ok(sub),
                _ => Err(sub.to_string()),
            }
        },
    )
    .await;
    assert_eq!(sub["dead_letters"], 0, "{sub}");
    assert!(sub.get("secret").is_none() && !sub.to_string().contains(shared_secret));

    // The pull feed pages through exactly the log, each order in order, and filters by type.
    let pulled = pull_all(&api, 5, None).await;
    let ids: Vec<String> = pulled
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "the feed repeats an event");
    assert_eq!(unique, wanted(&second, None), "the feed is not the log");
    let positions: Vec<i64> = pulled
        .iter()
        .map(|e| e["position"].as_i64().unwrap_or(0))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions not increasing"
    );
    let mut last_version: HashMap<String, i64> = HashMap::new();
    for e in &pulled {
        let stream = e["stream_id"].as_str().unwrap_or_default().to_owned();
        let version = e["stream_version"].as_i64().unwrap_or(0);
        assert_eq!(
            last_version.insert(stream.clone(), version).unwrap_or(0) + 1,
            version,
            "{stream} out of order in the feed"
        );
    }
    let cancelled = pull_all(&api, 2, Some("OrderCancelled")).await;
    assert_eq!(cancelled.len(), 7);
    assert!(cancelled
        .iter()
        .all(|e| e["event_type"] == "OrderCancelled"));
    // Hostile paging is refused naming the parameter.
    for (query, field) in [
        ("after=-1", "after"),
        ("after=abc", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("types=Nope", "types"),
    ] {
        let refused = api
            .command_get(&format!("/v1/events?{query}"), ADMIN_KEY)
            .await;
        refused.assert_problem(422, "validation-failed", query);
        assert_eq!(refused.problem_fields(), vec![field.to_owned()], "{query}");
    }
    assert_eq!(api.command_get("/v1/events", AGENT_KEY).await.status, 403);
}

#[tokio::test]
async fn a_refused_event_becomes_a_dead_letter_without_blocking_other_orders_and_is_redelivered() {
    let env = TestEnv::new("subscriptions_dead").await;
    let waybill = env
        .start_with(
            Role::All,
            &[
                ("WAYBILL_WEBHOOK_RETRY_BASE_MS", "100"),
                ("WAYBILL_WEBHOOK_MAX_BACKOFF_MS", "300"),
                ("WAYBILL_WEBHOOK_MAX_ATTEMPTS", "3"),
            ],
        )
        .await;
    let api = waybill.api();
    let receiver = WebhookReceiver::start().await;
    let (sub, secret) = subscribe(&api, json!({"url": receiver.url()})).await;
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "a generated secret: {secret}"
    );
    receiver.set_secret(&secret);
    let refused = place(&api, "SUB-DL-X", 1).await.remove(0);
    let stream = format!("order-{refused}");
    eventually("the first event arrives", DEADLINE, || async {
        if receiver
            .received()
            .iter()
            .any(|r| r.event["stream_id"] == stream.as_str())
        {
            Ok(())
        } else {
            Err("not yet".to_owned())
        }
    })
    .await;
    receiver.refuse_stream(&stream, true);
    cancel(&api, &refused).await;
    // Another order goes through meanwhile.
    let other = place(&api, "SUB-DL-Y", 1).await.remove(0);
    cancel(&api, &other).await;
    let dead = eventually("a dead letter", DEADLINE, || async {
        let page = api
            .command_get(&format!("/v1/subscriptions/{sub}/dead-letters"), ADMIN_KEY)
            .await;
        assert_eq!(page.status, 200, "{}", page.describe());
        let page = page.json();
        match page["items"].as_array().and_then(|i| i.first()).cloned() {
            Some(item) => Ok(item),
            None => Err(page.to_string()),
        }
    })
    .await;
    assert_eq!(dead["event_type"], "OrderCancelled");
    assert_eq!(dead["stream_id"], stream.as_str());
    assert_eq!(dead["attempts"], 3);
    assert_eq!(dead["status"], "dead");
    let other_events: HashSet<String> = log(&env)
        .await
        .into_iter()
        .filter(|(_, (s, _, _))| *s == format!("order-{other}"))
        .map(|(id, _)| id)
        .collect();
    received_all(&receiver, &sub, &other_events).await;

    // Redelivery on request, once the receiver accepts the order again.
    receiver.refuse_stream(&stream, false);
    let dead_id = dead["dead_letter_id"].as_str().expect("id");
    let path = format!("/v1/subscriptions/{sub}/dead-letters/{dead_id}/redeliver");
    let first = send(
        &api,
        reqwest::Method::POST,
        &path,
        Some("redeliver-1"),
        None,
    )
    .await;
    assert_eq!(first.status, 202, "{}", first.describe());
    let again = send(
        &api,
        reqwest::Method::POST,
        &path,
        Some("redeliver-1"),
        None,
    )
    .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    let cancelled_id = dead["event_id"].as_str().expect("event id").to_owned();
    received_all(&receiver, &sub, &HashSet::from([cancelled_id])).await;
    eventually("the dead letter shows redelivered", DEADLINE, || async {
        let page = api
            .command_get(
                &format!("/v1/subscriptions/{sub}/dead-letters?status=all"),
                ADMIN_KEY,
            )
            .await
            .json();
        if page["items"][0]["status"] == "redelivered" {
            Ok(())
        } else {
            Err(page.to_string())
        }
    })
    .await;
    let missing = send(
        &api,
        reqwest::Method::POST,
        &format!(
            "/v1/subscriptions/{sub}/dead-letters/{}/redeliver",
            uuid::Uuid::now_v7()
        ),
        Some("redeliver-2"),
        None,
    )
    .await;
    missing.assert_problem(404, "not-found", "an unknown dead letter");
    assert_eq!(receiver.bad_signatures(), 0);
}

#[tokio::test]
async fn the_admin_api_validates_replays_and_seals_the_secret() {
    let env = TestEnv::new("subscriptions_admin").await;
    let waybill = env.start(Role::Commands).await;
    let api = waybill.api();
    // Every wrong field is named.
    let bad = send(
        &api,
        reqwest::Method::POST,
        "/v1/subscriptions",
        Some("bad-1"),
        Some(&json!({"url": "ftp://x", "event_types": ["OrderPlaced", "Nope"], "secret": "short"})),
    )
    .await;
    bad.assert_problem(422, "validation-failed", "a bad registration");
    assert_eq!(
        bad.problem_fields(),
        vec!["url", "event_types[1]", "secret"]
    );
    // A replay answers the first response byte for byte, secret included; another body under
    // the key is refused.
    let body = json!({"url": "https://erp.example.com/hooks", "status": "paused"});
    let created = send(
        &api,
        reqwest::Method::POST,
        "/v1/subscriptions",
        Some("create-1"),
        Some(&body),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.describe());
    let replay = send(
        &api,
        reqwest::Method::POST,
        "/v1/subscriptions",
        Some("create-1"),
        Some(&body),
    )
    .await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.body, created.body);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let other = send(
        &api,
        reqwest::Method::POST,
        "/v1/subscriptions",
        Some("create-1"),
        Some(&json!({"url": "https://x.example"})),
    )
    .await;
    other.assert_problem(422, "idempotency-key-reused", "another body under the key");
    let created = created.json();
    let id = created["subscription"]["subscription_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    // Sealed at rest: neither the table nor the idempotency record holds the secret.
    let sealed: Vec<u8> = sqlx::query_scalar(
        "SELECT sealed_secret FROM webhook_subscriptions WHERE subscription_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(env.db())
    .await
    .expect("row");
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT response_body FROM idempotency_records")
        .fetch_all(env.db())
        .await
        .expect("records");
    assert!(stored
        .iter()
        .all(|b| !b.windows(secret.len()).any(|w| w == secret.as_bytes())));
    // Read, list, change, remove.
    let path = format!("/v1/subscriptions/{id}");
    let read = api.command_get(&path, ADMIN_KEY).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["status"], "paused");
    assert!(!read.text().contains(&secret));
    let listed = api.command_get("/v1/subscriptions", ADMIN_KEY).await.json();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let patched = send(
        &api,
        reqwest::Method::PATCH,
        &path,
        Some("patch-1"),
        Some(&json!({"status": "active", "event_types": ["OrderPlaced"]})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.describe());
    assert_eq!(patched.json()["event_types"], json!(["OrderPlaced"]));
    let empty = send(
        &api,
        reqwest::Method::PATCH,
        &path,
        Some("patch-2"),
        Some(&json!({})),
    )
    .await;
    empty.assert_problem(422, "validation-failed", "an empty change");
    let deleted = send(&api, reqwest::Method::DELETE, &path, Some("delete-1"), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.describe());
    let again = send(&api, reqwest::Method::DELETE, &path, Some("delete-1"), None).await;
    assert_eq!(again.status, 204);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    api.command_get(&path, ADMIN_KEY).await.assert_problem(
        404,
        "not-found",
        "a removed subscription",
    );
    let gone = send(&api, reqwest::Method::DELETE, &path, Some("delete-2"), None).await;
    gone.assert_problem(404, "not-found", "removing twice");
    assert_eq!(gone.problem_fields(), vec!["subscription_id"]);
    api.command_get("/v1/subscriptions/not-a-uuid", ADMIN_KEY)
        .await
        .assert_problem(404, "not-found", "a malformed id");
    // Only admins.
    let agent = api
        .send(
            reqwest::Method::POST,
            &format!("{}/v1/subscriptions", api.command_url),
            Some(AGENT_KEY),
            Some("agent-1"),
            Some(&body),
        )
        .await;
    agent.assert_problem(403, "forbidden", "an agent registering");
    // Without a key a delete is refused before anything else.
    let unkeyed = api
        .send(
            reqwest::Method::DELETE,
            &format!("{}{path}", api.command_url),
            Some(ADMIN_KEY),
            None,
            None,
        )
        .await;
    unkeyed.assert_problem(400, "missing-idempotency-key", "a delete without a key");
}

#[tokio::test]
async fn two_delivery_workers_share_the_work_and_a_killed_one_loses_nothing() {
    let env = TestEnv::new("subscriptions_workers").await;
    let extra: Vec<(&str, &str)> =
        [QUICK_RETRIES, &[("WAYBILL_WEBHOOK_LEASE_MS", "2000")]].concat();
    // Everything but the worker in one process; the workers on their own.
    let mut main_vars = extra.clone();
    main_vars.push(("WAYBILL_WEBHOOK_SUBSCRIPTIONS_PER_WORKER", "1"));
    let waybill = env.start_with(Role::All, &main_vars).await;
    let api = waybill.api();
    let mut first = env.start_with(Role::Webhooks, &extra).await;
    let second = env.start_with(Role::Webhooks, &extra).await;
    let receiver = WebhookReceiver::start().await;
    let secret = "whsec_workers_secret_0123456789abcdef";
    receiver.set_secret(secret);
    let mut subs = Vec::new();
    for _ in 0..4 {
        subs.push(
            subscribe(&api, json!({"url": receiver.url(), "secret": secret}))
                .await
                .0,
        );
    }
    let orders = place(&api, "SUB-W1", 10).await;
    eventually("deliveries under way", DEADLINE, || async {
        if receiver.received().len() >= 8 {
            Ok(())
        } else {
            Err(format!("{} so far", receiver.received().len()))
        }
    })
    .await;
    first.kill_hard();
    for id in &orders[..5] {
        cancel(&api, id).await;
    }
    place(&api, "SUB-W2", 5).await;
    let all = log(&env).await;
    let ids: HashSet<String> = all.keys().cloned().collect();
    assert_eq!(ids.len(), 20);
    for sub in &subs {
        received_all(&receiver, sub, &ids).await;
        assert_in_order_per_order(&receiver, sub);
    }
    assert_eq!(receiver.bad_signatures(), 0);
    drop(second);
}

/// `waybill bench webhooks` at a test's size, as an operator runs it: a backlog of 400 orders'
/// events (2,000 deliveries) drains to the bench's receiver, which refuses connections for 5 s
/// a third of the way through. With the default retry policy (no quick retries here) the
/// worker backs off and, once the receiver is back, every event arrives, none out of order,
/// none given up on, and the report says so.
#[tokio::test]
async fn a_receiver_down_for_seconds_then_back_loses_nothing_with_the_default_retries() {
    let env = TestEnv::new("subscriptions_outage").await;
    let out = env.log_dir.join("webhooks-bench.json");
    let stdout = env
        .run_ok(&[
            "bench",
            "webhooks",
            "--orders",
            "400",
            "--outage-secs",
            "5",
            "--no-baseline",
            "--out",
            out.to_str().expect("path"),
        ])
        .await;
    let report: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("the bench's report")).expect("JSON");
    assert_eq!(report["events"], 2_000, "{report}");
    assert_eq!(report["receiver"]["accepted"], 2_000, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["receiver"]["out_of_order"], 0, "{report}");
    assert_eq!(report["receiver"]["bad_signatures"], 0, "{report}");
    assert_eq!(report["dead_letters"], 0, "{report}");
    assert_eq!(report["pending_retries"], 0, "{report}");
    // The outage happened in the middle of the backlog, and deliveries resumed after it.
    let outage = &report["outage"];
    assert!(
        outage["seconds_down"].as_f64().unwrap_or(0.0) >= 5.0,
        "{report}"
    );
    let before = outage["received_before"].as_u64().unwrap_or(0);
    assert!((600..2_000).contains(&before), "{report}");
    assert!(
        outage["delivered_after"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    assert!(outage["first_after_seconds"].as_f64().is_some(), "{report}");
    assert!(
        stdout.contains("lost 0, dead letters 0, retries pending 0"),
        "{stdout}"
    );
}
