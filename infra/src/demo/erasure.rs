//! The demo's erasure: a customer places an order, an agent finds it by the customer's name,
//! an admin erases the customer (`POST /v1/customers/{id}/erasure`), and the agent then finds
//! nothing by the name while the order itself (status, total, history) is still there, its
//! personal fields reading `[erased]`. Then the same for a guest checkout (no customer id),
//! erased by the email it was placed with (`POST /v1/guests/erasure`).

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use crate::client::ApiClient;

use super::search::Placed;

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);

/// Hits of an agent search for `name`.
async fn hits(agent: &ApiClient, name: &str) -> anyhow::Result<usize> {
    let (status, body) = agent.search_orders(&[("q", name)]).await?;
    anyhow::ensure!(status.is_success(), "search answered {status}: {body}");
    Ok(body["hits"].as_array().map_or(0, Vec::len))
}

/// Polls until an agent search for `name` finds `want` orders.
async fn until_hits(agent: &ApiClient, name: &str, want: usize) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let found = hits(agent, name).await?;
        if found == want {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "search for {name:?} found {found} orders, not {want}, within {WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The agent's view of an order: `(name, email, city, status, grand total)`.
async fn agent_view(agent: &ApiClient, order_id: &str) -> anyhow::Result<[String; 5]> {
    let (status, body) = agent
        .query_get(&format!("/v1/agent/orders/{order_id}"))
        .await?;
    anyhow::ensure!(status.is_success(), "agent order answered {status}: {body}");
    let doc = &body["document"];
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok([
        text(&doc["customer"]["name"]),
        text(&doc["customer"]["email"]),
        text(&doc["shipping_address"]["city"]),
        text(&doc["status"]),
        text(&doc["grand_total_minor"]),
    ])
}

/// Whom the demo erases.
enum Who {
    Customer(String),
    Guest(String),
}

/// Places an order for a customer of its own, erases the customer and shows what is left;
/// then the same for a guest checkout, erased by its email.
pub async fn show(
    client: &ApiClient,
    admin: &ApiClient,
    agent: &ApiClient,
    template: &Placed,
    run: &str,
) -> anyhow::Result<()> {
    println!("\nErasure (crypto-shredding):");
    let customer = Who::Customer(format!("erase-me-{run}"));
    let people = [
        (customer, ("Erin", "Vanderquist")),
        (
            Who::Guest(format!("gwen.{run}@guest.example")),
            ("Gwen", "Ashcombe"),
        ),
    ];
    for (who, names) in &people {
        erase_one(client, admin, agent, template, run, who, *names).await?;
    }
    Ok(())
}

async fn erase_one(
    client: &ApiClient,
    admin: &ApiClient,
    agent: &ApiClient,
    template: &Placed,
    run: &str,
    who: &Who,
    (first, last): (&str, &str),
) -> anyhow::Result<()> {
    // A name of this run's own: the run's id as letters (a word with digits is an identifier
    // to the search, never matched in names).
    let word: String = run
        .chars()
        .filter_map(|c| c.to_digit(16))
        .map(|d| char::from(b'g' + d as u8))
        .collect();
    let name = format!("{first} {word} {last}");
    let (customer_id, email, label) = match who {
        Who::Customer(id) => (
            json!(id),
            format!("{}.{run}@erasure.example", first.to_lowercase()),
            format!("customer {id}"),
        ),
        Who::Guest(email) => (Value::Null, email.clone(), format!("guest <{email}>")),
    };
    let mut body = template.body.clone();
    body["channel_order_ref"] = json!(format!("ERASE-{first}-{run}"));
    body["customer"] = json!({"customer_id": customer_id, "name": name,
        "email": email, "phone": "+44 7700 900123"});
    body["shipping_address"]["name"] = json!(name);
    let placed = client
        .place(&body, &format!("demo-erasure-{first}-{run}"))
        .await?;
    let order_id = placed.body["order_id"]
        .as_str()
        .context("a placement without order_id")?
        .to_owned();
    until_hits(agent, &name, 1).await?;
    let before = agent_view(agent, &order_id).await?;
    println!(
        "  order {order_id} of {label}: agent sees {} <{}> in {}, {}, total {}",
        before[0], before[1], before[2], before[3], before[4]
    );
    let (path, request) = match who {
        Who::Customer(id) => (format!("/v1/customers/{id}/erasure"), json!({})),
        Who::Guest(email) => ("/v1/guests/erasure".to_owned(), json!({"email": email})),
    };
    let erased = admin
        .post_command(&path, &request, &format!("demo-erase-{first}-{run}"))
        .await?;
    anyhow::ensure!(
        erased.status.is_success(),
        "POST {path} answered {}: {}",
        erased.status,
        erased.body
    );
    let shown = if matches!(who, Who::Guest(_)) {
        format!(" {request}")
    } else {
        String::new()
    };
    println!(
        "  POST {path}{shown} -> {}: {} data key(s) destroyed, orders {}, audit event {}",
        erased.status,
        erased.body["keys_destroyed"],
        erased.body["orders"],
        erased.body["event_id"]
    );
    until_hits(agent, &name, 0).await?;
    let after = agent_view(agent, &order_id).await?;
    println!(
        "  afterwards the agent finds nothing by the name; the order reads {} <{}> in {}, still {}, total {}",
        after[0], after[1], after[2], after[3], after[4]
    );
    anyhow::ensure!(
        after[3] == before[3] && after[4] == before[4],
        "the erasure changed the order's status or total"
    );
    Ok(())
}
