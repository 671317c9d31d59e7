//! The exceptions desk in the demo: waits (up to 20 s) for the desk to list what the run left
//! on it — the parcel the carrier could not hand over, the reviews waiting for an agent (the
//! demo script raises every review at once) — prints them by kind with their reasons, resolves
//! one with an action that acts (a failed handoff retried at the carrier, or an at-risk order
//! voided) as the agent, and prints where the desk, the order's timeline with the resolution
//! and the operations page are. The other entries stay on the desk to look at.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::ApiClient;

/// How long the demo waits for the desk to show something.
const WAIT: Duration = Duration::from_secs(20);

pub async fn show(agent: &ApiClient) -> anyhow::Result<()> {
    println!("\nExceptions desk (found on the event stream, not by agents noticing):");
    let started = Instant::now();
    let items = loop {
        let (status, body) = agent
            .command_get("/v1/desk/entries?status=all&limit=100")
            .await?;
        anyhow::ensure!(status.is_success(), "desk entries: HTTP {status}: {body}");
        let items = body["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() || started.elapsed() > WAIT {
            break items;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for entry in &items {
        let counts = by_kind.entry(text(&entry["kind"])).or_default();
        if entry["status"] == "open" {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    for (kind, (open, resolved)) in &by_kind {
        println!(
            "  {kind:<24} {open} open, {resolved} resolved (by an agent or cleared by the desk)"
        );
    }
    for entry in items.iter().filter(|e| e["status"] == "open").take(5) {
        println!(
            "  - {}: {} (suggested: {})",
            text(&entry["kind"]),
            text(&entry["reason"]),
            text(&entry["suggested_action"])
        );
    }
    if items.is_empty() {
        println!("  (nothing yet: the desk looks every WAYBILL_DESK_TICK_MS)");
    }
    if let Some(order_id) = act_on_one(agent, &items).await? {
        println!(
            "  Its order's timeline, with the resolution: {}/console/orders/{order_id}#timeline",
            agent.query_base
        );
    }
    println!(
        "  Desk:       {}/console/desk   (sign in as an agent or admin; resolve an entry there)",
        agent.query_base
    );
    println!(
        "  Operations: {}/ops   (admin: per-view lag and stalls, throughput, dead letters, backlogs)",
        agent.query_base
    );
    println!(
        "  API:        {}/v1/desk/entries   (role agent or admin)",
        agent.command_base
    );
    Ok(())
}

/// Resolves the first open entry an action acts on (`retry_handoff` for a failed handoff,
/// `void` for an order whose reservation or authorization runs out), through the command API
/// as the agent; returns its order.
async fn act_on_one(agent: &ApiClient, items: &[Value]) -> anyhow::Result<Option<String>> {
    let pick = items
        .iter()
        .filter(|e| e["status"] == "open")
        .find_map(|e| {
            let action = match e["kind"].as_str()? {
                "failed_handoff" => "retry_handoff",
                "reservation_expiring" | "authorization_expiring" => "void",
                _ => return None,
            };
            Some((e, action))
        });
    let Some((entry, action)) = pick else {
        println!("  (no open entry with an action that acts: resolve one on the desk)");
        return Ok(None);
    };
    let id = text(&entry["entry_id"]);
    let answer = agent
        .post_command(
            &format!("/v1/desk/entries/{id}/resolve"),
            &serde_json::json!({"action": action, "note": "resolved by the demo"}),
            &format!("demo-desk-{id}"),
        )
        .await?;
    if !answer.status.is_success() {
        println!(
            "  resolving {} with {action}: HTTP {} {}",
            text(&entry["kind"]),
            answer.status,
            answer.body
        );
        return Ok(None);
    }
    let events: Vec<String> = answer.body["order_events"]
        .as_array()
        .map(|events| events.iter().map(|e| text(&e["event_type"])).collect())
        .unwrap_or_default();
    println!(
        "  Resolved a {} entry with {action} as the agent: {} (order events: {}; desk event {})",
        text(&entry["kind"]),
        text(&answer.body["effect"]),
        events.join(", "),
        text(&answer.body["event_id"])
    );
    Ok(entry["order_id"].as_str().map(str::to_owned))
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("?").to_owned()
}
