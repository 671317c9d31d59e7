//! The demo's money epilogue: once the analytics projector has the demo's orders in ClickHouse,
//! reconcile today against the imported settlement reports and print the finance summary and
//! the discrepancies, as a finance user reads them from the query API.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use clickhouse::Row;
use serde::Deserialize;
use serde_json::Value;
use waybill_schemas::Currency;

use crate::client::ApiClient;
use crate::config::Settings;
use crate::secrets::Secrets;

#[derive(Debug, Row, Deserialize, PartialEq)]
struct Progress {
    orders: u64,
    versions: u64,
}

/// Waits (up to 30 s) until every demo order has a fact row and the rows stop changing.
async fn wait_for_warehouse(settings: &Settings, order_ids: &[String]) -> anyhow::Result<()> {
    let client = settings.warehouse.config().client();
    // Order ids are UUIDs the command API returned.
    let list = order_ids
        .iter()
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last: Option<Progress> = None;
    loop {
        let progress: Progress = client
            .query(&format!(
                "SELECT count() AS orders, sum(version) AS versions FROM order_facts FINAL \
                 WHERE order_id IN ({list})"
            ))
            .fetch_one()
            .await
            .context("reading the analytics warehouse")?;
        let complete = progress.orders as usize == order_ids.len();
        if complete && last.as_ref() == Some(&progress) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= until {
            println!(
                "  (the analytics view has {} of {} demo orders so far)",
                progress.orders,
                order_ids.len()
            );
            return Ok(());
        }
        last = Some(progress);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The amount `field` of `row` (integer minor units of the row's `currency`) written by the
/// currency's exponent: 376.63 for USD 37663, 37663 for JPY 37663.
fn minor(row: &Value, field: &str) -> String {
    let value = row[field].as_i64().unwrap_or(0);
    match row["currency"].as_str().map(Currency::parse) {
        Some(Ok(currency)) => currency.format_minor(value),
        _ => format!("{value} (minor units)"),
    }
}

pub async fn show(
    settings: &Settings,
    client: &ApiClient,
    order_ids: &[String],
) -> anyhow::Result<()> {
    let secrets = Secrets::resolve(settings)?;
    let Some(key) = super::key_with_role(&secrets.api_keys, &["finance", "admin"]) else {
        println!("\n(no finance or admin key in WAYBILL_API_KEYS: finance summary skipped)");
        return Ok(());
    };
    let finance = client.with_key(key);
    println!("\nFinance (ClickHouse, via the query API's /v1/finance endpoints):");
    wait_for_warehouse(settings, order_ids).await?;
    let today = Utc::now().date_naive();
    let run_version = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    let run = waybill_projectors::reconciliation::run_reconciliation(
        &settings.warehouse.config(),
        today,
        today,
        &settings.warehouse.fees(),
        run_version,
    )
    .await
    .context("reconciling today")?;

    let (status, summary) = finance
        .query_get(&format!("/v1/finance/summary?from={today}&to={today}"))
        .await?;
    anyhow::ensure!(
        status.is_success(),
        "finance summary answered {status}: {summary}"
    );
    println!(
        "  {:<10} {:<12} {:<4} {:>6} {:>12} {:>12} {:>10} {:>8} {:>11} {:>12}",
        "day",
        "channel",
        "cur",
        "orders",
        "gross sales",
        "captured",
        "refunded",
        "fees",
        "chargebacks",
        "net"
    );
    for row in summary["items"].as_array().into_iter().flatten() {
        println!(
            "  {:<10} {:<12} {:<4} {:>6} {:>12} {:>12} {:>10} {:>8} {:>11} {:>12}",
            row["day"].as_str().unwrap_or(""),
            row["channel"].as_str().unwrap_or(""),
            row["currency"].as_str().unwrap_or(""),
            row["orders"],
            minor(row, "gross_sales"),
            minor(row, "captures"),
            minor(row, "refunds"),
            minor(row, "fees"),
            minor(row, "chargebacks"),
            minor(row, "net"),
        );
    }

    let outcomes: Vec<String> = run
        .outcomes
        .iter()
        .map(|(outcome, count)| format!("{outcome} {count}"))
        .collect();
    println!(
        "\nReconciliation of {today} against the imported settlement reports: {}",
        if outcomes.is_empty() {
            "nothing to reconcile".to_owned()
        } else {
            outcomes.join(", ")
        }
    );
    let (status, report) = finance
        .query_get(&format!(
            "/v1/finance/reconciliation?from={today}&to={today}"
        ))
        .await?;
    anyhow::ensure!(
        status.is_success(),
        "reconciliation answered {status}: {report}"
    );
    let items = report["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("  no discrepancies");
    }
    for item in &items {
        println!(
            "  {:<18} {:<44} ledger {:>10} report {:>10} fee {:>6}/{:<6} {}",
            item["outcome"].as_str().unwrap_or(""),
            item["item_key"].as_str().unwrap_or(""),
            minor(item, "ledger_amount"),
            minor(item, "report_amount"),
            minor(item, "expected_fee"),
            minor(item, "report_fee"),
            item["detail"].as_str().unwrap_or(""),
        );
    }
    println!(
        "  (CSV: {}/v1/finance/reconciliation?from={today}&to={today}&format=csv; rerun: waybill reconcile --from {today})",
        client.query_base
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::minor;

    #[test]
    fn amounts_are_written_by_their_currencys_exponent() {
        let row = |currency: &str| json!({"currency": currency, "net": 37663});
        assert_eq!(minor(&row("JPY"), "net"), "37663");
        assert_eq!(minor(&row("USD"), "net"), "376.63");
        assert_eq!(minor(&row("KWD"), "net"), "37.663");
    }
}
