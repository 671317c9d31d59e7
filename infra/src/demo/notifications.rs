//! Customer notifications in the demo: a customer sets their preferences (German, email only)
//! over the API, an agent asks for a message to be sent again (twice with the same
//! Idempotency-Key: sent once), and then what was delivered: the sent-once ledger by kind,
//! medium and outcome, and the text messages the SMS sandbox (simulated) accepted. The demo
//! script reads the SMTP server's mailbox.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use super::follow::Followed;
use crate::client::ApiClient;
use crate::config::Settings;
use crate::secrets::Secrets;

/// How long the demo waits for the resend to go out.
const WAIT: Duration = Duration::from_secs(20);

pub async fn show(
    settings: &Settings,
    agent: &ApiClient,
    jwt_secret: &[u8],
    orders: &[Followed],
) -> anyhow::Result<()> {
    println!("\nCustomer notifications (sent once per event and medium, recorded in Postgres):");
    let http = reqwest::Client::new();
    let pool = crate::migrate::connect(&settings.database_url, 1).await?;

    // A customer of the run chooses German, by email only.
    let first = orders
        .first()
        .context("no order to show notifications for")?;
    let customer: Option<String> = sqlx::query_scalar(
        "SELECT payload->'customer'->>'customer_id' FROM events \
         WHERE stream_id = $1 AND event_type = 'OrderPlaced'",
    )
    .bind(format!("order-{}", first.id))
    .fetch_optional(&pool)
    .await?
    .flatten();
    if let Some(customer) = customer {
        let token =
            waybill_schemas::jwt::JwtKey::new(jwt_secret).issue(&waybill_schemas::jwt::Claims {
                sub: customer.clone(),
                role: "customer".into(),
                exp: chrono::Utc::now().timestamp() + 600,
            });
        let answer = http
            .put(format!(
                "{}/v1/me/notification-preferences",
                agent.command_base
            ))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("demo-prefs-{customer}"))
            .json(&json!({"media": ["email"], "locale": "de"}))
            .send()
            .await?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        println!(
            "  customer {customer} sets PUT /v1/me/notification-preferences {{media: [email], locale: de}} -> HTTP {status} {body}"
        );
    }

    // An agent resends the order-received message of the first order, twice with one key.
    let path = format!("/v1/orders/{}/notifications/resend", first.id);
    let body = json!({"kind": "order_received", "reason": "the customer cannot find the email"});
    let resend = agent
        .post_command(&path, &body, &format!("demo-resend-{}", first.id))
        .await?;
    let again = agent
        .post_command(&path, &body, &format!("demo-resend-{}", first.id))
        .await?;
    let event_id = resend.body["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!(
        "  agent POST {path} -> HTTP {} (event {event_id}); the same request again -> HTTP {} (event {}), nothing more sent",
        resend.status,
        again.status,
        again.body["event_id"].as_str().unwrap_or_default()
    );
    if let Ok(resent) = uuid::Uuid::parse_str(&event_id) {
        let started = Instant::now();
        loop {
            let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT medium, recipient, locale, status FROM notification_deliveries \
                 WHERE event_id = $1 ORDER BY medium",
            )
            .bind(resent)
            .fetch_all(&pool)
            .await?;
            if !rows.is_empty() || started.elapsed() > WAIT {
                for (medium, to, locale, status) in &rows {
                    println!("    resent by {medium} to {to} in {locale}: {status}");
                }
                if rows.is_empty() {
                    println!("    (not sent within {}s)", WAIT.as_secs());
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    // What was delivered.
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT kind, medium, status, count(*) FROM notification_deliveries \
         GROUP BY kind, medium, status ORDER BY kind, medium, status",
    )
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (kind, medium, status, count) in rows {
        table
            .entry(kind)
            .or_default()
            .push(format!("{medium} {count} {status}"));
    }
    println!("  the ledger (notification_deliveries) by kind:");
    for (kind, cells) in &table {
        println!("    {kind:<18} {}", cells.join(", "));
    }
    if let Some(sms_url) = &settings.checkout.sms_url {
        let key = Secrets::resolve(settings)?.sms_api_key;
        let listed: Value = http
            .get(format!("{}/v1/messages", sms_url.trim_end_matches('/')))
            .bearer_auth(key)
            .send()
            .await?
            .json()
            .await
            .unwrap_or(Value::Null);
        let texts = listed["messages"].as_array().cloned().unwrap_or_default();
        println!(
            "  the SMS sandbox ({sms_url}, simulated: nothing reaches a phone) accepted {} text messages, e.g.:",
            texts.len()
        );
        for text in texts.iter().rev().take(3) {
            println!(
                "    to {}: {}",
                text["to"].as_str().unwrap_or_default(),
                text["body"].as_str().unwrap_or_default()
            );
        }
    } else {
        println!("  (WAYBILL_SMS_URL unset: text messages went to the notifications directory)");
    }
    Ok(())
}
