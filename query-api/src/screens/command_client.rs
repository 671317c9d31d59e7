//! Console actions go to the command API, never around it: the staff member's own credential is
//! forwarded as the Bearer token (so the command API's role checks apply to them), with the
//! idempotency key minted when the form was rendered (a double click or a resent form does one
//! thing), and the consistency token of the answer lets the next page wait for the change.

use std::time::Duration;

use serde_json::Value;

use super::error::ScreenError;
use super::session::Session;
use crate::http::AppState;

/// What the command API answered to a command it accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub status: u16,
    /// `<order id>.<version>` to wait for on the next page.
    pub consistency_token: Option<String>,
    pub body: Value,
}

/// Why the command API did not accept a command (its problem detail, for the person to read).
#[derive(Debug, Clone)]
pub struct Refused {
    pub status: u16,
    pub detail: String,
    pub field: Option<String>,
}

fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

/// POSTs `body` to the command API at `path` as the signed-in person.
pub async fn post(
    state: &AppState,
    session: &Session,
    path: &str,
    idempotency_key: &str,
    body: &Value,
) -> Result<Result<Accepted, Refused>, ScreenError> {
    let Some(base) = state.config.screens.command_api_url.as_deref() else {
        tracing::error!("a console action needs the command API's URL (WAYBILL_COMMAND_API_URL)");
        return Err(ScreenError::Unavailable);
    };
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let response = client()
        .post(&url)
        .bearer_auth(session.credential())
        .header("Idempotency-Key", idempotency_key)
        .json(body)
        .send()
        .await
        .map_err(|error| {
            tracing::warn!(%error, %path, "the command API did not answer a console action");
            ScreenError::Unavailable
        })?;
    let status = response.status().as_u16();
    let header_token = response
        .headers()
        .get("x-consistency-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        let consistency_token = header_token.or_else(|| {
            body.get("consistency_token")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        tracing::info!(client_id = %session.principal.client_id, %path, status, "console action accepted");
        return Ok(Ok(Accepted {
            status,
            consistency_token,
            body,
        }));
    }
    if status >= 500 {
        tracing::warn!(%path, status, "the command API failed a console action");
    }
    let detail = body
        .get("detail")
        .and_then(Value::as_str)
        .or_else(|| body.get("title").and_then(Value::as_str))
        .unwrap_or("the command API refused the action")
        .to_owned();
    let field = body
        .get("field")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            body.get("errors")
                .and_then(|e| e.get(0))
                .and_then(|e| e.get("field").or_else(|| e.get("pointer")))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    Ok(Err(Refused {
        status,
        detail,
        field,
    }))
}
