//! Following placed orders through checkout: polls each order's tracking view (with the staff
//! key, which the query API does not rate limit) until its flow is over, acting for the
//! customer or the agent when the order waits for them (3-D Secure challenge, fraud review).
//! Polls with a deadline; whatever has not settled by then is reported as such.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use waybill_schemas::views::{PaymentState, StockState, TrackingStatus, TrackingView};

use super::scenario::{Action, Scenario};
use crate::client::ApiClient;

/// How often the unsettled orders are looked at.
const POLL: Duration = Duration::from_millis(250);

/// Where an order's checkout stands, from its tracking view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// The process manager is still working on it (or compensating).
    InCheckout,
    InReview,
    /// The customer's bank wants a 3-D Secure challenge completed at `action_url`.
    AwaitingPayment {
        action_url: Option<String>,
    },
    /// Nothing more will happen without an outside action.
    Settled,
}

/// The stage `view` shows. A cancelled order is settled once nothing is left held (stock
/// reserved, a payment authorized or waiting for 3-D Secure); a confirmed one once captured
/// when capture is immediate.
pub fn stage(view: &TrackingView, immediate_capture: bool) -> Stage {
    match view.status {
        TrackingStatus::Placed => Stage::InCheckout,
        TrackingStatus::InReview => Stage::InReview,
        TrackingStatus::AwaitingPayment => Stage::AwaitingPayment {
            action_url: view.payment.action_url.clone(),
        },
        TrackingStatus::Confirmed
            if immediate_capture && view.payment.state == PaymentState::Authorized =>
        {
            Stage::InCheckout
        }
        TrackingStatus::Confirmed => Stage::Settled,
        TrackingStatus::Cancelled
            if view.stock.state == StockState::Reserved
                || matches!(
                    view.payment.state,
                    PaymentState::Authorized | PaymentState::ActionRequired
                ) =>
        {
            Stage::InCheckout
        }
        TrackingStatus::Cancelled => Stage::Settled,
    }
}

/// The sandbox's challenge-completion URL for a challenge page URL
/// (`<sandbox>/challenge/<id>` → `<sandbox>/v1/challenges/<id>/complete`).
pub fn completion_url(action_url: &str) -> Option<String> {
    let (base, id) = action_url.rsplit_once("/challenge/")?;
    (!id.is_empty() && !id.contains('/')).then(|| format!("{base}/v1/challenges/{id}/complete"))
}

/// One placed order the demo follows.
pub struct Followed {
    pub scenario: Scenario,
    pub id: String,
    pub token: String,
    pub view: Option<TrackingView>,
    pub settled: bool,
    /// What the demo did for it ("agent approved: amount_review, velocity_card").
    pub acted: Option<String>,
}

/// The clients the demo acts through: the staff/customer one and an agent's.
pub struct Actors<'a> {
    pub client: &'a ApiClient,
    pub agent: &'a ApiClient,
}

/// Polls until every order settled or `timeout` passed; returns how many did not settle.
pub async fn follow(
    actors: &Actors<'_>,
    orders: &mut [Followed],
    immediate_capture: bool,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut waiting_before = usize::MAX;
    loop {
        for order in orders.iter_mut().filter(|o| !o.settled) {
            let (status, body) = actors.client.staff_tracking(&order.id).await?;
            if status != StatusCode::OK {
                continue; // not projected yet
            }
            let Ok(view) = serde_json::from_value::<TrackingView>(body["view"].clone()) else {
                continue;
            };
            let stage = stage(&view, immediate_capture);
            order.view = Some(view);
            let acted = match (stage, order.scenario.action()) {
                (Stage::Settled, _) => {
                    order.settled = true;
                    None
                }
                (
                    Stage::AwaitingPayment {
                        action_url: Some(url),
                    },
                    Action::Challenge { pass },
                ) if order.acted.is_none() => {
                    Some(complete_challenge(actors.client, &url, pass).await?)
                }
                (Stage::InReview, Action::Review { approve }) if order.acted.is_none() => {
                    Some(decide_review(actors.agent, &order.id, approve).await?)
                }
                _ => None,
            };
            if let Some(done) = acted {
                println!("  {:<34} {done}", order.scenario.label());
                order.acted = Some(done);
            }
        }
        let waiting = orders.iter().filter(|o| !o.settled).count();
        if waiting == 0 {
            return Ok(0);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(waiting);
        }
        if waiting != waiting_before {
            println!("  … {waiting} order(s) still in checkout");
            waiting_before = waiting;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Completes a 3-D Secure challenge as the customer's browser would.
async fn complete_challenge(
    client: &ApiClient,
    action_url: &str,
    pass: bool,
) -> anyhow::Result<String> {
    let url = completion_url(action_url)
        .ok_or_else(|| anyhow::anyhow!("unexpected challenge URL {action_url}"))?;
    let result = if pass { "pass" } else { "fail" };
    let (status, body) = client
        .post_as_customer(&url, &json!({"result": result}))
        .await?;
    anyhow::ensure!(
        status.is_success(),
        "completing the challenge answered {status}: {body}"
    );
    Ok(format!(
        "customer completed 3-D Secure: {result} ({action_url})"
    ))
}

/// Decides a review as an agent, naming the rules that held the order.
async fn decide_review(agent: &ApiClient, order_id: &str, approve: bool) -> anyhow::Result<String> {
    let rules = queued_rules(agent, order_id).await?;
    let decision = if approve { "approve" } else { "reject" };
    let response = agent
        .review(
            order_id,
            decision,
            "demo agent checked the order",
            &format!("demo-review-{order_id}"),
        )
        .await?;
    anyhow::ensure!(
        response.status.is_success(),
        "the review decision answered {}: {}",
        response.status,
        String::from_utf8_lossy(&response.raw)
    );
    Ok(format!(
        "agent {} the review (rules: {})",
        if approve { "approved" } else { "rejected" },
        if rules.is_empty() {
            "?".to_owned()
        } else {
            rules.join(", ")
        }
    ))
}

/// The rules that held `order_id`, from the review queue as an agent sees it. The view can
/// show the review a moment before the queue lists the order, so this looks a few times.
async fn queued_rules(agent: &ApiClient, order_id: &str) -> anyhow::Result<Vec<String>> {
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (status, queue) = agent.command_get("/v1/reviews?limit=100").await?;
        anyhow::ensure!(
            status.is_success(),
            "GET /v1/reviews answered {status}: {queue}"
        );
        let item = queue["items"]
            .as_array()
            .and_then(|items| items.iter().find(|item| item["order_id"] == order_id));
        if let Some(item) = item {
            let reasons = item["reasons"].as_array().cloned().unwrap_or_default();
            return Ok(reasons
                .iter()
                .filter_map(|reason| reason["rule"].as_str().map(str::to_owned))
                .collect());
        }
        if tokio::time::Instant::now() >= until {
            return Ok(Vec::new());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn view(status: &str, payment: &str, stock: &str) -> TrackingView {
        serde_json::from_value(json!({
            "order_id": "0190f0c4-0000-7000-8000-000000000001",
            "version": 3, "status": status, "channel": "web", "channel_order_ref": "WEB-1",
            "currency": "USD", "lines": [],
            "totals": {"subtotal_minor": 0, "discount_minor": 0, "tax_minor": 0,
                       "shipping_minor": 0, "grand_total_minor": 0},
            "shipping_method": "standard",
            "placed_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:01:00Z",
            "cancellation_reason": null,
            "payment": {"state": payment, "action_url": "http://127.0.0.1:8090/challenge/auth_1"},
            "stock": {"state": stock},
            "timeline": []
        }))
        .unwrap()
    }

    #[test]
    fn a_confirmed_order_settles_when_captured_if_capture_is_immediate() {
        assert_eq!(
            stage(&view("confirmed", "authorized", "allocated"), true),
            Stage::InCheckout
        );
        assert_eq!(
            stage(&view("confirmed", "captured", "allocated"), true),
            Stage::Settled
        );
        assert_eq!(
            stage(&view("confirmed", "authorized", "allocated"), false),
            Stage::Settled
        );
        assert_eq!(
            stage(&view("confirmed", "none", "allocated"), true),
            Stage::Settled,
            "prepaid"
        );
    }

    #[test]
    fn a_cancelled_order_settles_once_nothing_is_held() {
        assert_eq!(
            stage(&view("cancelled", "declined", "reserved"), true),
            Stage::InCheckout
        );
        assert_eq!(
            stage(&view("cancelled", "action_required", "released"), true),
            Stage::InCheckout
        );
        assert_eq!(
            stage(&view("cancelled", "declined", "released"), true),
            Stage::Settled
        );
        assert_eq!(
            stage(&view("cancelled", "voided", "released"), true),
            Stage::Settled
        );
        assert_eq!(
            stage(&view("cancelled", "none", "unavailable"), true),
            Stage::Settled
        );
    }

    #[test]
    fn waiting_orders_say_for_whom() {
        assert_eq!(
            stage(&view("in_review", "none", "none"), true),
            Stage::InReview
        );
        assert_eq!(
            stage(
                &view("awaiting_payment", "action_required", "reserved"),
                true
            ),
            Stage::AwaitingPayment {
                action_url: Some("http://127.0.0.1:8090/challenge/auth_1".to_owned())
            }
        );
        assert_eq!(
            stage(&view("placed", "none", "none"), true),
            Stage::InCheckout
        );
    }

    #[test]
    fn the_completion_url_comes_from_the_challenge_page() {
        assert_eq!(
            completion_url("http://127.0.0.1:8090/challenge/auth_01ab").as_deref(),
            Some("http://127.0.0.1:8090/v1/challenges/auth_01ab/complete")
        );
        assert_eq!(completion_url("http://127.0.0.1:8090/other/auth_1"), None);
        assert_eq!(completion_url("http://127.0.0.1:8090/challenge/"), None);
    }
}
