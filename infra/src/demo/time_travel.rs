//! The demo's time travel: for the demo order with the longest history, what the agent API says
//! it looked like as placed, and what changed between then and now.

use anyhow::Context;
use serde_json::Value;

use super::follow::Followed;
use crate::client::ApiClient;

/// Shows version 1 and the diff from version 1 to the latest of the order with most versions.
pub async fn show(agent: &ApiClient, orders: &[Followed]) -> anyhow::Result<()> {
    let Some(order) = orders
        .iter()
        .filter(|o| o.view.is_some())
        .max_by_key(|o| o.view.as_ref().map_or(0, |v| v.version))
    else {
        return Ok(());
    };
    let id = &order.id;
    let history = format!("/v1/agent/orders/{id}/history");
    let (status, first) = agent.query_get(&format!("{history}?version=1")).await?;
    anyhow::ensure!(
        status.is_success(),
        "{history}?version=1 answered {status}: {first}"
    );
    let latest = first["latest_version"]
        .as_i64()
        .context("history without latest_version")?;
    let diff = format!("/v1/agent/orders/{id}/diff?from=1&to={latest}");
    let (status, changed) = agent.query_get(&diff).await?;
    anyhow::ensure!(status.is_success(), "{diff} answered {status}: {changed}");

    println!("\nTime travel (agent API, folded from the event log) for {id}:");
    println!(
        "  GET {history}?version=1 -> status {}, payment {}, recorded {}",
        first["view"]["status"],
        first["view"]["payment"]["state"],
        first["recorded_at"].as_str().unwrap_or("?")
    );
    println!("  GET {diff}:");
    for change in changed["changes"].as_array().into_iter().flatten() {
        let path = change["path"].as_str().unwrap_or("?");
        if path.starts_with("/timeline/") || path == "/updated_at" {
            continue;
        }
        println!(
            "    {path:<28} {} -> {}",
            short(&change["before"]),
            short(&change["after"])
        );
    }
    let types: Vec<&str> = changed["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    println!("    by {} event(s): {}", types.len(), types.join(", "));
    Ok(())
}

/// A value on one line, cut to 40 characters (absent shows as `-`).
fn short(value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
