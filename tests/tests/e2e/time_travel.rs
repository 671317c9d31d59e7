//! Time travel for support over the agent API: an order as it was at a version or a moment, and
//! what changed between two versions, folded from the event log. The latest state equals the
//! live tracking view the projector wrote; bad versions and moments are 422 naming the field.

use serde_json::{json, Value};
use waybill_e2e::{sample_cancel, sample_order, Role, TestEnv, AGENT_KEY};

use crate::{place, tracking_at};

fn history_path(id: &str) -> String {
    format!("/v1/agent/orders/{id}/history")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_as_it_was_and_what_changed_since() {
    let env = TestEnv::new("time_travel").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let placed = place(&api, "tt-place", &sample_order("WEB-TIME-TRAVEL")).await;
    let id = placed.order_id.as_str();
    let cancelled = api
        .cancel_order(id, "tt-cancel", &sample_cancel("customer_request"))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.describe());

    // Now: the fold of the whole log, equal to what the live tracking projector wrote.
    let now = api.query_get(&history_path(id), &[], Some(AGENT_KEY)).await;
    assert_eq!(now.status, 200, "{}", now.describe());
    let now = now.json();
    let latest = now["latest_version"].as_i64().expect("latest_version");
    assert!(latest >= 2, "placed and cancelled: {now}");
    assert_eq!(now["version"], latest, "{now}");
    assert_eq!(now["view"]["status"], "cancelled", "{now}");
    assert!(
        now["view"].get("access").is_none(),
        "no index digests: {now}"
    );
    let live = tracking_at(&api, id, &placed.tracking_token, latest).await;
    assert_eq!(
        now["view"], live["view"],
        "history at the head = the live view"
    );

    // Version 1: the order as placed.
    let first = api
        .query_get(&history_path(id), &[("version", "1")], Some(AGENT_KEY))
        .await;
    assert_eq!(first.status, 200, "{}", first.describe());
    let first = first.json();
    assert_eq!(first["version"], 1, "{first}");
    assert_ne!(first["view"]["status"], "cancelled", "{first}");
    assert_eq!(first["view"]["timeline"].as_array().map(Vec::len), Some(1));

    // A moment: the order as the system knew it when version 1 was recorded.
    let recorded = first["recorded_at"]
        .as_str()
        .expect("recorded_at")
        .to_owned();
    let then = api
        .query_get(&history_path(id), &[("at", &recorded)], Some(AGENT_KEY))
        .await;
    assert_eq!(then.status, 200, "{}", then.describe());
    assert_eq!(then.json()["view"], first["view"], "at == version 1");

    // What changed from version 1 to now, and the events in between.
    let to = latest.to_string();
    let diff = api
        .query_get(
            &format!("/v1/agent/orders/{id}/diff"),
            &[("from", "1"), ("to", &to)],
            Some(AGENT_KEY),
        )
        .await;
    assert_eq!(diff.status, 200, "{}", diff.describe());
    let diff = diff.json();
    let changes = diff["changes"].as_array().expect("changes");
    let status = changes
        .iter()
        .find(|c| c["path"] == "/status")
        .unwrap_or_else(|| panic!("the status change is listed: {diff}"));
    assert_eq!(status["before"], first["view"]["status"], "{diff}");
    assert_eq!(status["after"], "cancelled", "{diff}");
    let events: Vec<&Value> = diff["events"].as_array().expect("events").iter().collect();
    assert_eq!(events.len() as i64, latest - 1, "{diff}");
    assert!(
        events.iter().any(|e| e["event_type"] == "OrderCancelled"),
        "{diff}"
    );
    assert!(
        events.iter().all(|e| e["version"].as_i64() > Some(1)),
        "{diff}"
    );
    let same = api
        .query_get(
            &format!("/v1/agent/orders/{id}/diff"),
            &[("from", &to), ("to", &to)],
            Some(AGENT_KEY),
        )
        .await;
    assert_eq!(same.json()["changes"], json!([]), "{}", same.describe());

    // Backwards: the changes that lead from now back to version 1, over the same events.
    let back = api
        .query_get(
            &format!("/v1/agent/orders/{id}/diff"),
            &[("from", &to), ("to", "1")],
            Some(AGENT_KEY),
        )
        .await;
    assert_eq!(back.status, 200, "{}", back.describe());
    let back = back.json();
    let undo = back["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["path"] == "/status")
        .unwrap_or_else(|| panic!("the status change is listed: {back}"));
    assert_eq!(undo["before"], "cancelled", "{back}");
    assert_eq!(undo["after"], first["view"]["status"], "{back}");
    assert_eq!(back["events"], diff["events"], "the same events between");

    // Both bounds: whichever cuts earlier (version 1, though `at` is now).
    let both = api
        .query_get(
            &history_path(id),
            &[("version", "1"), ("at", "2999-01-01T00:00:00Z")],
            Some(AGENT_KEY),
        )
        .await;
    assert_eq!(both.status, 200, "{}", both.describe());
    assert_eq!(both.json()["view"], first["view"], "version 1 cuts earlier");
    let before_placed = api
        .query_get(
            &history_path(id),
            &[("version", &to), ("at", "2000-01-01T00:00:00Z")],
            Some(AGENT_KEY),
        )
        .await;
    assert_eq!(before_placed.status, 422, "{}", before_placed.describe());
    assert_eq!(before_placed.problem_fields(), vec!["at".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_versions_and_moments_are_422_naming_the_field() {
    let env = TestEnv::new("time_travel_bad").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let placed = place(&api, "ttb-place", &sample_order("WEB-TIME-TRAVEL-BAD")).await;
    let id = placed.order_id.as_str();
    let history = history_path(id);
    let diff = format!("/v1/agent/orders/{id}/diff");
    // (path, query, the field the 422 names)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Vec<(&str, &str)>, &str)> = vec![
        (&history, vec![("version", "0")], "version"),
        (&history, vec![("version", "two")], "version"),
        (&history, vec![("version", "999999")], "version"),
        (&history, vec![("at", "yesterday")], "at"),
        (&history, vec![("at", "2000-01-01T00:00:00Z")], "at"),
        (&diff, vec![("to", "1")], "from"),
        (&diff, vec![("from", "1")], "to"),
        (&diff, vec![("from", "1"), ("to", "999999")], "to"),
    ];
    for (path, query, field) in cases {
        let response = api.query_get(path, &query, Some(AGENT_KEY)).await;
        assert_eq!(
            response.status,
            422,
            "{path} {query:?}: {}",
            response.describe()
        );
        assert_eq!(
            response.problem_fields(),
            vec![field.to_owned()],
            "{path} {query:?}: {}",
            response.describe()
        );
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    let missing = api
        .query_get(&history_path(&unknown), &[], Some(AGENT_KEY))
        .await;
    assert_eq!(missing.status, 404, "{}", missing.describe());
    assert_eq!(missing.problem_slug().as_deref(), Some("order-not-found"));
}
