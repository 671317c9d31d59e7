//! Event subscriptions in the demo: before the first order, an admin registers a webhook
//! subscription to an integrator's receiver that the demo process serves
//! ([`crate::webhook_receiver`]: it checks every signature and the order per order). At the
//! end the demo shows what the receiver got, makes one event a dead letter (the receiver
//! answers 500 to one order's events while an agent asks for a notification to be resent),
//! redelivers it on request, prints the pull feed's URL, and pauses the subscription (the
//! receiver stops with the demo process).
//!
//! The dead letter needs a short retry policy: `demo.sh` starts the stack with
//! `WAYBILL_WEBHOOK_MAX_ATTEMPTS=3`. Under the default (12 attempts over about 25 minutes) the
//! demo says the event is still being retried and moves on.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use super::follow::Followed;
use crate::client::ApiClient;
use crate::webhook_receiver::WebhookReceiver;

/// How long the demo waits for deliveries to settle, and for the dead letter.
const WAIT: Duration = Duration::from_secs(45);
const POLL: Duration = Duration::from_millis(300);

/// The demo's integrator: its receiver and subscription.
pub struct Integrator {
    receiver: WebhookReceiver,
    subscription_id: String,
}

/// Starts the receiver and registers it for every event type from now on.
pub async fn register(admin: &ApiClient, run: &str) -> anyhow::Result<Integrator> {
    let receiver = WebhookReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let created = admin
        .post_command(
            "/v1/subscriptions",
            &json!({
                "url": receiver.url(),
                "description": format!("demo integrator (run {run}, served by waybill demo)"),
                "start": "now",
            }),
            &format!("demo-subscription-{run}"),
        )
        .await?;
    anyhow::ensure!(
        created.status.as_u16() == 201,
        "POST /v1/subscriptions answered {}: {}",
        created.status,
        created.body
    );
    let subscription_id = created.body["subscription"]["subscription_id"]
        .as_str()
        .context("a registration without subscription_id")?
        .to_owned();
    let secret = created.body["secret"]
        .as_str()
        .context("a registration without its secret")?;
    receiver.trust(
        uuid::Uuid::parse_str(&subscription_id).context("subscription_id is not a UUID")?,
        secret,
    );
    println!(
        "Integrator: POST /v1/subscriptions -> HTTP 201, subscription {subscription_id} sends every event, signed (secret whsec_… shown once), to {}",
        receiver.url()
    );
    Ok(Integrator {
        receiver,
        subscription_id,
    })
}

impl Integrator {
    /// What the receiver got; one dead letter made and redelivered; the pull feed.
    pub async fn show(
        &self,
        admin: &ApiClient,
        agent: &ApiClient,
        orders: &[Followed],
    ) -> anyhow::Result<()> {
        let sub = &self.subscription_id;
        println!("\nEvent subscriptions (webhooks to the demo's receiver, and the pull feed):");
        self.settle(admin).await?;
        let tally = self.receiver.tally();
        println!(
            "  the receiver accepted {} events ({} repeats dropped by Waybill-Event-Id, {} out of order, {} bad signatures)",
            tally.accepted, tally.duplicates, tally.out_of_order, tally.bad_signatures
        );
        let mut by_type: Vec<(&String, &u64)> = tally.by_type.iter().collect();
        by_type.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = by_type
            .iter()
            .take(8)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        println!("  by type: {}", top.join(", "));
        for arrival in self.receiver.recent().iter().rev().take(3) {
            println!(
                "    last: {} {} v{} (attempt {})",
                arrival.event_type, arrival.stream_id, arrival.stream_version, arrival.attempt
            );
        }
        let (_, state) = admin
            .command_get(&format!("/v1/subscriptions/{sub}"))
            .await?;
        println!(
            "  GET /v1/subscriptions/{sub}: position {}, delivered {}, consecutive failures {}, dead letters {}",
            state["position"], state["delivered"], state["consecutive_failures"], state["dead_letters"]
        );

        if let Some(order) = orders.get(1).or(orders.first()) {
            self.dead_letter(admin, agent, &order.id).await?;
        }

        let (status, page) = admin.command_get("/v1/events?after=0&limit=3").await?;
        println!(
            "  pull feed: GET {}/v1/events?after=<cursor> (admin key) -> HTTP {status}, first page {} events, next_cursor {}",
            admin.command_base,
            page["events"].as_array().map_or(0, Vec::len),
            page["next_cursor"]
        );
        // The receiver ends with this process: pause the subscription (it keeps its place)
        // rather than leave the worker retrying an endpoint that is gone.
        let paused = admin
            .patch_command(
                &format!("/v1/subscriptions/{sub}"),
                &json!({"status": "paused"}),
                &format!("demo-pause-{sub}"),
            )
            .await?;
        println!(
            "  the demo's receiver stops with the demo: PATCH /v1/subscriptions/{sub} {{status: paused}} -> HTTP {}",
            paused.status
        );
        Ok(())
    }

    /// Waits until the subscription's position reaches the feed's head and stays there.
    async fn settle(&self, admin: &ApiClient) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last = u64::MAX;
        let mut stable = 0;
        while started.elapsed() < WAIT {
            let accepted = self.receiver.tally().accepted;
            if accepted == last && accepted > 0 {
                stable += 1;
                if stable >= 6 {
                    return Ok(());
                }
            } else {
                stable = 0;
            }
            last = accepted;
            tokio::time::sleep(POLL).await;
        }
        let (_, state) = admin
            .command_get(&format!("/v1/subscriptions/{}", self.subscription_id))
            .await?;
        println!(
            "  (deliveries still going after {}s: {state})",
            WAIT.as_secs()
        );
        Ok(())
    }

    /// The receiver answers 500 to `order_id`'s events; an agent resends a notification of
    /// that order (a new event in its stream), which becomes a dead letter; then it is
    /// accepted again and redelivered on request.
    async fn dead_letter(
        &self,
        admin: &ApiClient,
        agent: &ApiClient,
        order_id: &str,
    ) -> anyhow::Result<()> {
        let sub = &self.subscription_id;
        let stream = format!("order-{order_id}");
        self.receiver.refuse_stream(&stream, true);
        let path = format!("/v1/orders/{order_id}/notifications/resend");
        let resend = agent
            .post_command(
                &path,
                &json!({"kind": "order_received", "reason": "the integrator lost it"}),
                &format!("demo-webhook-resend-{order_id}"),
            )
            .await?;
        let event_id = resend.body["event_id"].as_str().unwrap_or_default();
        println!(
            "  the receiver answers 500 to {stream}; agent POST {path} -> HTTP {} (event {event_id})",
            resend.status
        );
        let dead_letters = format!("/v1/subscriptions/{sub}/dead-letters?status=all");
        let find = |page: &Value| -> Option<Value> {
            page["items"]
                .as_array()?
                .iter()
                .find(|d| d["event_id"].as_str() == Some(event_id))
                .cloned()
        };
        let started = Instant::now();
        let dead = loop {
            let (_, page) = admin.command_get(&dead_letters).await?;
            if let Some(dead) = find(&page) {
                break Some(dead);
            }
            if started.elapsed() > WAIT {
                break None;
            }
            tokio::time::sleep(POLL).await;
        };
        self.receiver.refuse_stream(&stream, false);
        let Some(dead) = dead else {
            let (_, state) = admin
                .command_get(&format!("/v1/subscriptions/{sub}"))
                .await?;
            println!(
                "  not a dead letter within {}s: {} event(s) still being retried (WAYBILL_WEBHOOK_MAX_ATTEMPTS; demo.sh sets 3); the receiver accepts them again",
                WAIT.as_secs(),
                state["pending_retries"]
            );
            return Ok(());
        };
        let dead_id = dead["dead_letter_id"].as_str().unwrap_or_default();
        println!(
            "  dead letter {dead_id}: {} of {} after {} attempts ({})",
            dead["event_type"].as_str().unwrap_or("?"),
            dead["stream_id"].as_str().unwrap_or("?"),
            dead["attempts"],
            dead["last_error"].as_str().unwrap_or("?")
        );
        let redeliver = format!("/v1/subscriptions/{sub}/dead-letters/{dead_id}/redeliver");
        let queued = admin
            .post_command(&redeliver, &json!({}), &format!("demo-redeliver-{dead_id}"))
            .await?;
        println!(
            "  the receiver accepts it again; POST {redeliver} -> HTTP {} {}",
            queued.status, queued.body["status"]
        );
        let started = Instant::now();
        loop {
            let (_, page) = admin.command_get(&dead_letters).await?;
            let status = find(&page).map(|d| d["status"].clone());
            if status.as_ref().and_then(Value::as_str) == Some("redelivered") {
                let arrived = self.receiver.recent().into_iter().find(|a| {
                    a.stream_id == stream
                        && Some(a.event_type.as_str()) == dead["event_type"].as_str()
                });
                match arrived {
                    Some(a) => println!(
                        "  dead letter {dead_id}: redelivered; the receiver has {} v{} (attempt {})",
                        a.event_type, a.stream_version, a.attempt
                    ),
                    None => println!("  dead letter {dead_id}: redelivered"),
                }
                break;
            }
            if started.elapsed() > WAIT {
                println!(
                    "  dead letter {dead_id}: {} after {}s",
                    status.unwrap_or(Value::Null),
                    WAIT.as_secs()
                );
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }
}
