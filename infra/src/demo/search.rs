//! The demo's agent searches: every demo order is looked up by each field an agent may type
//! (one query each), then a few searches are printed with their hits, facets and highlights.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::client::ApiClient;

/// One placed demo order: its id and the request body it was placed with.
pub struct Placed {
    pub id: String,
    pub body: Value,
}

fn hit_ids(body: &Value) -> Vec<&str> {
    body["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h["document"]["order_id"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// What an agent would type to find an order by one field (`None`: the order has no such field).
type FieldOf = fn(&Placed) -> Option<String>;

/// `word` with its two middle letters swapped: a typo an agent makes.
fn with_typo(word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() >= 4 {
        let i = chars.len() / 2;
        chars.swap(i - 1, i);
    }
    chars.into_iter().collect()
}

async fn search(agent: &ApiClient, query: &[(&str, &str)]) -> anyhow::Result<Value> {
    let (status, body) = agent.search_orders(query).await?;
    anyhow::ensure!(
        status.is_success(),
        "search {query:?} answered {status}: {body}"
    );
    Ok(body)
}

/// Waits until the search view has caught up with the last demo order.
async fn caught_up(agent: &ApiClient, last: &Placed) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body = search(agent, &[("q", &last.id)]).await?;
        if hit_ids(&body).contains(&last.id.as_str()) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < until,
            "the search view did not show order {} within 20 s",
            last.id
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_hits(title: &str, body: &Value) {
    println!("  {title}: {} match(es)", body["total"]);
    for hit in body["hits"].as_array().into_iter().flatten().take(3) {
        let doc = &hit["document"];
        let marks: Vec<String> = hit["highlights"]
            .as_array()
            .into_iter()
            .flatten()
            .take(2)
            .map(|h| {
                format!(
                    "{}: {}",
                    h["field"].as_str().unwrap_or("?"),
                    h["fragment"].as_str().unwrap_or("?")
                )
            })
            .collect();
        println!(
            "    {}  {:<18} {:<10} {:<16} {}",
            doc["order_id"].as_str().unwrap_or("?"),
            doc["customer"]["name"].as_str().unwrap_or("?"),
            doc["status"].as_str().unwrap_or("?"),
            doc["channel_order_ref"].as_str().unwrap_or("?"),
            marks.join("  ")
        );
    }
}

fn facet_line(body: &Value, facet: &str) -> String {
    body["facets"][facet]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!("{} {}", f["value"].as_str().unwrap_or("?"), f["count"]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds every order by each field and prints a few agent searches. Fails if an order cannot
/// be found by any field.
pub async fn show(agent: &ApiClient, placed: &[Placed]) -> anyhow::Result<()> {
    let Some(last) = placed.last() else {
        return Ok(());
    };
    caught_up(agent, last).await?;
    println!("\nAgent search (GET /v1/search/orders, agent key):");

    let fields: [(&str, FieldOf); 6] = [
        ("order id", |p| Some(p.id.clone())),
        ("channel ref", |p| {
            p.body["channel_order_ref"].as_str().map(str::to_owned)
        }),
        ("email", |p| {
            p.body["customer"]["email"].as_str().map(str::to_owned)
        }),
        ("email prefix", |p| {
            let email = p.body["customer"]["email"].as_str()?;
            Some(email[..email.find('@')?].to_owned())
        }),
        ("phone", |p| {
            p.body["customer"]["phone"].as_str().map(str::to_owned)
        }),
        ("name + SKU", |p| {
            let name = p.body["customer"]["name"].as_str()?;
            let sku = p.body["lines"][0]["sku"].as_str()?;
            Some(format!("{} {sku}", with_typo(name.split(' ').next_back()?)))
        }),
    ];
    let mut unfound = Vec::new();
    for (label, value_of) in fields {
        let mut found = 0;
        for order in placed {
            let Some(q) = value_of(order) else { continue };
            let body = search(agent, &[("q", &q), ("limit", "100")]).await?;
            if hit_ids(&body).contains(&order.id.as_str()) {
                found += 1;
            } else if label != "name + SKU" {
                unfound.push(format!("{} by {label} ({q})", order.id));
            }
        }
        println!("  found {found:>2}/{} demo orders by {label}", placed.len());
    }
    anyhow::ensure!(
        unfound.is_empty(),
        "orders the agent could not find: {}",
        unfound.join("; ")
    );

    let first = &placed[0];
    let name = first.body["customer"]["name"]
        .as_str()
        .context("demo order without a name")?;
    let typo = name.split(' ').map(with_typo).collect::<Vec<_>>().join(" ");
    let body = search(agent, &[("q", &typo)]).await?;
    print_hits(&format!("name with typos {typo:?}"), &body);
    let body = search(agent, &[("q", "watch")]).await?;
    print_hits("product \"watch\"", &body);
    let body = search(agent, &[("has_exception", "true"), ("sort", "-total")]).await?;
    print_hits("orders with an exception, largest first", &body);
    let body = search(agent, &[]).await?;
    println!(
        "  facets of all orders: status {{{}}}, channel {{{}}}",
        facet_line(&body, "status"),
        facet_line(&body, "channel")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_swaps_two_letters() {
        assert_eq!(with_typo("Lovelace"), "Lovleace");
        assert_eq!(with_typo("Ada"), "Ada");
    }
}
