//! Live tracking pages by push: open pages' event streams and read-your-writes waits are woken
//! by the tracking view's change announcements, through one Redis subscription per query
//! instance however many pages are open, and every open page gets the order's change.

use std::time::Duration;

use waybill_e2e::{sample_cancel, sample_order, Role, TestEnv};
use waybill_projectors::views::tracking::keys::changes_channel;

use crate::{place, tracking_at};

const PAGES: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_open_page_is_pushed_the_change_through_one_subscription_per_instance() {
    let env = TestEnv::new("live_pages").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let placed = place(&api, "live-1", &sample_order("LIVE-1")).await;
    tracking_at(&api, &placed.order_id, &placed.tracking_token, 1).await;

    // Pages showing version 1 keep their streams open, waiting.
    let client = reqwest::Client::new();
    let mut pages = Vec::new();
    for _ in 0..PAGES {
        let stream = client
            .get(format!(
                "{}/track/{}/events?token={}&after=1",
                api.query_url, placed.order_id, placed.tracking_token
            ))
            .send()
            .await
            .expect("open the event stream");
        assert_eq!(stream.status(), 200);
        pages.push(stream);
    }

    // One subscription to the announcements for the whole instance, not one per page.
    let mut redis = redis::Client::open(env.redis_url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let (_, subscribers): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(changes_channel(&env.redis_prefix))
        .query_async(&mut redis)
        .await
        .expect("PUBSUB NUMSUB");
    assert_eq!(subscribers, 1, "one subscription per query instance");

    // The customer cancels; their own read waits for the write and is answered current.
    let cancelled = api
        .cancel_order(
            &placed.order_id,
            "live-cancel",
            &sample_cancel("customer_request"),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.describe());
    let token = cancelled.json()["consistency_token"]
        .as_str()
        .expect("consistency token")
        .to_owned();
    let tracked = api
        .get(&format!(
            "{}/v1/orders/{}/tracking?token={}&consistency_token={token}",
            api.query_url, placed.order_id, placed.tracking_token
        ))
        .await;
    assert_eq!(tracked.status, 200, "{}", tracked.describe());
    let body = tracked.json();
    assert_eq!(body["consistency"]["stale"], false, "{body}");
    assert_eq!(body["view"]["status"], "cancelled", "{body}");

    // Every open page receives the cancelled view as its next event.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for (i, page) in pages.iter_mut().enumerate() {
        let mut received = String::new();
        while !received.contains("data-status=\"cancelled\"") {
            let chunk = tokio::time::timeout_at(deadline, page.chunk())
                .await
                .unwrap_or_else(|_| panic!("page {i}: no view event within 20 s: {received}"))
                .expect("read the stream")
                .expect("the stream stays open");
            received.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(received.contains("event: view"), "page {i}: {received}");
        assert!(received.contains("id: 2"), "page {i}: {received}");
    }
}
