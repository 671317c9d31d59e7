//! Cancelling an order over the public API: the cancellation reaches the tracking view, a second
//! cancellation is a conflict, a retried one is a replay, and an unknown order is 404.

use waybill_e2e::{sample_cancel, sample_order, Role, TestEnv};

use crate::{place, tracking_at};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_order_shows_cancelled_and_a_second_cancel_is_409() {
    let env = TestEnv::new("cancel_flow").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let placed = place(&api, "cancel-place", &sample_order("WEB-CANCEL")).await;
    let id = placed.order_id.as_str();

    let cancelled = api
        .cancel_order(id, "cancel-1", &sample_cancel("customer_request"))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.describe());
    let body = cancelled.json();
    assert_eq!(body["order_id"], id, "{body}");
    assert_eq!(body["status"], "cancelled", "{body}");
    assert_eq!(body["version"], 2, "{body}");
    assert_eq!(body["consistency_token"], format!("{id}.2"), "{body}");

    let tracked = tracking_at(&api, id, &placed.tracking_token, 2).await;
    let view = &tracked["view"];
    assert_eq!(view["status"], "cancelled", "{view}");
    assert_eq!(view["version"], 2, "{view}");
    let reason = view["cancellation_reason"].as_str().unwrap_or_default();
    assert!(
        reason.to_lowercase().contains("customer"),
        "cancellation reason missing from the view: {view}"
    );
    let timeline = view["timeline"].as_array().expect("timeline");
    assert_eq!(timeline.len(), 2, "{view}");
    assert_eq!(timeline[1]["event_type"], "OrderCancelled", "{view}");

    // A retry of the same cancel (same key, same body) is the stored answer, not a conflict.
    let retried = api
        .cancel_order(id, "cancel-1", &sample_cancel("customer_request"))
        .await;
    assert_eq!(retried.status, 200, "{}", retried.describe());
    assert_eq!(retried.body, cancelled.body);

    // A new cancel of a cancelled order is a conflict.
    let again = api
        .cancel_order(id, "cancel-2", &sample_cancel("fraud"))
        .await;
    assert_eq!(again.status, 409, "{}", again.describe());
    assert_eq!(
        again.problem_slug().as_deref(),
        Some("order-already-cancelled"),
        "{}",
        again.describe()
    );
    assert_eq!(env.events_of_order(id).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_unknown_order_is_404() {
    let env = TestEnv::new("cancel_unknown").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let unknown = uuid::Uuid::now_v7().to_string();

    let response = api
        .cancel_order(&unknown, "cancel-unknown", &sample_cancel("other"))
        .await;
    assert_eq!(response.status, 404, "{}", response.describe());
    assert_eq!(
        response.problem_slug().as_deref(),
        Some("order-not-found"),
        "{}",
        response.describe()
    );
    assert_eq!(env.count_rows("events").await, 0);
}
