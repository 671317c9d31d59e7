//! Idempotency over the public API: a retried request gets the first answer and changes nothing;
//! one key can never place two orders, even when its requests race; a key cannot be reused for a
//! different request; and one channel order is one Waybill order whatever key it comes with.

use std::collections::BTreeSet;

use waybill_e2e::{sample_order, Role, TestEnv};

use crate::place;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_returns_the_stored_response_byte_for_byte_and_appends_nothing() {
    let env = TestEnv::new("idempotent_replay").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let order = sample_order("WEB-REPLAY");

    let first = place(&api, "replay-key", &order).await.response;
    assert_eq!(env.count_rows("events").await, 1);

    let replay = api.place_order("replay-key", &order).await;
    assert_eq!(replay.status, first.status, "{}", replay.describe());
    assert_eq!(replay.body, first.body, "replayed body differs");
    for header in ["content-type", "x-consistency-token"] {
        assert_eq!(
            replay.header(header),
            first.header(header),
            "header {header} differs on replay"
        );
    }
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(
        env.count_rows("events").await,
        1,
        "the replay appended events"
    );
    assert_eq!(env.count_rows("idempotency_records").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests_with_one_key_place_one_order() {
    let env = TestEnv::new("idempotent_concurrent").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let order = sample_order("WEB-RACE");

    let requests = (0..20).map(|_| {
        let api = api.clone();
        let order = order.clone();
        tokio::spawn(async move { api.place_order("race-key", &order).await })
    });
    let responses: Vec<_> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.expect("request task"))
        .collect();

    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| *s == 201),
        "every racing request should get the one stored 201, got {statuses:?}; first non-201: {}",
        responses
            .iter()
            .find(|r| r.status != 201)
            .map(|r| r.describe())
            .unwrap_or_default()
    );
    let bodies: BTreeSet<_> = responses.iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), 1, "racing requests got different bodies");
    assert_eq!(
        env.count_rows("events").await,
        1,
        "one key appended more than once"
    );
    assert_eq!(env.count_rows("channel_orders").await, 1);
    assert_eq!(env.count_rows("idempotency_records").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_reused_with_another_body_is_rejected_with_422_and_appends_nothing() {
    let env = TestEnv::new("idempotent_key_reuse").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    place(&api, "reused-key", &sample_order("WEB-FIRST")).await;

    let reused = api
        .place_order("reused-key", &sample_order("WEB-SECOND"))
        .await;
    assert_eq!(reused.status, 422, "{}", reused.describe());
    assert_eq!(
        reused.problem_slug().as_deref(),
        Some("idempotency-key-reused"),
        "{}",
        reused.describe()
    );
    assert_eq!(env.count_rows("events").await, 1);
    assert_eq!(env.count_rows("channel_orders").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_channel_order_submitted_with_a_new_key_returns_the_existing_order() {
    let env = TestEnv::new("channel_order_dedup").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let order = sample_order("MKT-77");
    let first = place(&api, "channel-key-1", &order).await;

    let again = api.place_order("channel-key-2", &order).await;
    assert_eq!(again.status, 200, "{}", again.describe());
    let body = again.json();
    assert_eq!(body["order_id"], first.order_id.as_str(), "{body}");
    assert_eq!(body["existing"], true, "{body}");
    assert_eq!(body["status"], "placed", "{body}");
    assert_eq!(body["version"], 1, "{body}");
    assert_eq!(env.count_rows("events").await, 1);
}
