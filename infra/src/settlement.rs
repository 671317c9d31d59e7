//! `waybill settlement import --date YYYY-MM-DD [--gateway sandbox] [--file report.csv]`: asks the
//! command API to import a day's settlement report (fetched by Waybill through the gateway
//! adapter, or the given file sent inline) with a finance or admin key, and prints the payouts
//! it recorded. Importing a report twice changes nothing (`already_imported`).

use anyhow::Context;
use serde_json::{json, Value};

use crate::client::ApiClient;
use crate::config::{Settings, SettlementImportArgs};
use crate::secrets::Secrets;

/// The first key in `key:client_id:role,...` with one of `roles`.
pub fn key_with_role(api_keys: &str, roles: &[&str]) -> Option<String> {
    api_keys.split(',').map(str::trim).find_map(|entry| {
        let mut parts = entry.splitn(3, ':');
        let (key, _client, role) = (parts.next()?, parts.next()?, parts.next()?);
        roles.contains(&role).then(|| key.to_owned())
    })
}

pub async fn import(settings: &Settings, args: &SettlementImportArgs) -> anyhow::Result<()> {
    let secrets = Secrets::resolve(settings)?;
    let key = key_with_role(&secrets.api_keys, &["finance", "admin"]).context(
        "WAYBILL_API_KEYS has no finance or admin key to import settlement reports with",
    )?;
    let client = ApiClient::new(settings.command_addr, settings.query_addr, key, 1)?;
    let csv = match &args.file {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let answer = import_report(&client, &args.gateway, &args.date, csv).await?;
    print!("{}", describe(&answer));
    Ok(())
}

/// `POST /v1/settlement/imports`; the 200/201 body, or an error with the problem.
pub async fn import_report(
    client: &ApiClient,
    gateway: &str,
    date: &str,
    csv: Option<String>,
) -> anyhow::Result<Value> {
    let mut body = json!({"gateway": gateway, "date": date});
    if let Some(csv) = csv {
        body["csv"] = Value::String(csv);
    }
    let key = format!("settlement-import-{}", uuid::Uuid::now_v7());
    let response = client
        .post_command("/v1/settlement/imports", &body, &key)
        .await?;
    anyhow::ensure!(
        response.status.is_success(),
        "the import answered {}: {}",
        response.status,
        String::from_utf8_lossy(&response.raw)
    );
    Ok(response.body)
}

/// The import's outcome and its payouts, one line each.
pub fn describe(answer: &Value) -> String {
    let mut out = format!(
        "Settlement report {} of {} for {}: {} ({} lines)\n",
        answer["report_id"]
            .as_str()
            .map(|id| &id[..12.min(id.len())])
            .unwrap_or("?"),
        answer["gateway"].as_str().unwrap_or("?"),
        answer["report_date"].as_str().unwrap_or("?"),
        answer["status"].as_str().unwrap_or("?"),
        answer["lines"],
    );
    for payout in answer["payouts"].as_array().into_iter().flatten() {
        let minor = payout["amount_minor"].as_i64().unwrap_or(0);
        out.push_str(&format!(
            "  payout {:<20} {:>12}.{:02} {}  paid on {}, settles {} transaction(s)\n",
            payout["payout_id"].as_str().unwrap_or("?"),
            minor / 100,
            (minor % 100).abs(),
            payout["currency"].as_str().unwrap_or("?"),
            payout["paid_on"].as_str().unwrap_or("?"),
            payout["transactions"].as_array().map_or(0, Vec::len),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finance_key_is_found_and_payouts_are_listed() {
        assert_eq!(
            key_with_role("a:ops:agent,f:fin:finance", &["finance", "admin"]).as_deref(),
            Some("f")
        );
        let text = describe(&json!({
            "report_id": "9f86d081884c7d659a2f", "gateway": "sandbox", "report_date": "2026-11-25",
            "status": "imported", "lines": 3,
            "payouts": [{"payout_id": "po_20261125_USD", "amount_minor": 123456, "currency": "USD",
                         "paid_on": "2026-11-25", "transactions": ["a", "b", "c"]}]
        }));
        assert!(text.contains("imported (3 lines)"), "{text}");
        assert!(text.contains("1234.56 USD"), "{text}");
        assert!(text.contains("3 transaction(s)"), "{text}");
    }
}
