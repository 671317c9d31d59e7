//! The customer's side of the demo: prints the tracking-page links of a few demo orders and
//! checks each opens a real page, finds one order through the `/track` form by its number and
//! the customer's email (and shows a wrong email is refused), and lists a customer's orders with
//! a customer JWT (`GET /v1/me/orders`).

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::Value;
use waybill_schemas::jwt::{Claims, JwtKey};

use crate::client::ApiClient;

/// What the demo remembers of an order it placed, to act as its customer.
pub struct PageOrder {
    pub id: String,
    pub token: String,
    pub number: String,
    pub email: String,
    pub customer_id: Option<String>,
}

impl PageOrder {
    pub fn new(id: &str, token: &str, body: &Value) -> Self {
        Self {
            id: id.to_owned(),
            token: token.to_owned(),
            number: body["channel_order_ref"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            email: body["customer"]["email"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            customer_id: body["customer"]["customer_id"].as_str().map(str::to_owned),
        }
    }
}

pub async fn show(
    client: &ApiClient,
    jwt_secret: &[u8],
    orders: &[PageOrder],
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    println!("\nTracking pages (open in a browser; they update themselves while open):");
    for order in orders {
        let link = format!(
            "{}/track/{}?token={}",
            client.query_base, order.id, order.token
        );
        let response = http
            .get(&link)
            .send()
            .await
            .with_context(|| format!("GET {link}"))?;
        let status = response.status();
        let page = response.text().await?;
        let shown = page
            .split("data-status=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?");
        anyhow::ensure!(status == StatusCode::OK, "{link} answered {status}");
        println!("  {:<12} {:<17} {link}", order.number, shown);
    }

    let Some(first) = orders.first() else {
        return Ok(());
    };
    let lookup = format!("{}/track", client.query_base);
    let found = http
        .post(&lookup)
        .form(&[
            ("order_number", first.number.as_str()),
            ("contact", first.email.as_str()),
        ])
        .send()
        .await?;
    let location = found
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(
        found.status() == StatusCode::SEE_OTHER && location.contains(&first.id),
        "lookup of {} answered {} {location}",
        first.number,
        found.status()
    );
    println!(
        "Lookup form {lookup}: order {} + {} -> {} to {}{location}",
        first.number,
        first.email,
        found.status().as_u16(),
        client.query_base
    );
    let refused = http
        .post(&lookup)
        .form(&[
            ("order_number", first.number.as_str()),
            ("contact", "someone.else@example.com"),
        ])
        .send()
        .await?;
    anyhow::ensure!(
        refused.status() == StatusCode::NOT_FOUND,
        "a wrong email was not refused"
    );
    println!(
        "Lookup form with another email: {} (the friendly page)",
        refused.status().as_u16()
    );

    if let Some(customer) = orders.iter().find_map(|o| o.customer_id.as_deref()) {
        let jwt = JwtKey::new(jwt_secret).issue(&Claims {
            sub: customer.to_owned(),
            role: "customer".into(),
            exp: chrono::Utc::now().timestamp() + 600,
        });
        let mine: Value = http
            .get(format!("{}/v1/me/orders", client.query_base))
            .bearer_auth(&jwt)
            .send()
            .await?
            .json()
            .await?;
        let numbers: Vec<&str> = mine["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["order_number"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "Customer {customer} signed in (JWT, role customer): GET /v1/me/orders -> {numbers:?}"
        );
    }
    Ok(())
}
