//! Text messages through an SMS provider's HTTP API: `POST <base>/v1/messages` with a Bearer
//! key, `Idempotency-Key: <event id>.sms` and `{"to", "body", "reference"}`; the provider answers
//! `201` (or `200` replaying an earlier request with the same key) with its message id. The
//! idempotency key is what closes the ledger's crash window for SMS: a message sent again after
//! a crash carries the same key, and the provider sends it once.
//!
//! The protocol is the one our SMS sandbox speaks ([`crate::sms_sandbox`], simulated: it sends
//! nothing); providers with the same shape (Bearer key, Idempotency-Key, JSON) plug in by URL.
//! 429, 5xx, timeouts and connection failures are worth retrying; 401/403 too (a key being
//! rotated: messages wait rather than being given up); other 4xx (a number the provider will
//! never take) are not.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::channel::{Accepted, Channel, SendError};
use super::render::Notification;

/// Where the SMS provider is.
#[derive(Clone)]
pub struct SmsConfig {
    /// Base URL, e.g. `http://127.0.0.1:8093`.
    pub base_url: String,
    pub api_key: String,
    /// The sender name or number shown to the customer.
    pub sender: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"***")
            .field("sender", &self.sender)
            .finish()
    }
}

/// The body of `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsRequest {
    pub to: String,
    pub body: String,
    /// The sender shown to the recipient.
    pub from: String,
    /// Ours, echoed back: the order the message is about.
    pub reference: String,
}

/// The provider's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsAccepted {
    pub id: String,
    pub status: String,
}

/// The SMS [`Channel`].
#[derive(Clone)]
pub struct SmsClient {
    http: reqwest::Client,
    config: SmsConfig,
}

impl SmsClient {
    pub fn new(config: SmsConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(Self { http, config })
    }

    fn url(&self) -> String {
        format!("{}/v1/messages", self.config.base_url.trim_end_matches('/'))
    }
}

impl Channel for SmsClient {
    fn send<'a>(&'a self, message: &'a Notification) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move {
            let request = SmsRequest {
                to: message.to.clone(),
                body: message.body.clone(),
                from: self.config.sender.clone(),
                reference: message.order_id.to_string(),
            };
            let response = self
                .http
                .post(self.url())
                .bearer_auth(&self.config.api_key)
                .header("Idempotency-Key", message.id())
                .json(&request)
                .send()
                .await
                .map_err(|e| SendError::Transient(format!("SMS provider unreachable: {e}")))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let detail: String = text.chars().take(300).collect();
            if status.is_success() {
                let accepted: SmsAccepted = serde_json::from_str(&text).map_err(|e| {
                    SendError::Transient(format!(
                        "SMS provider answered {status} with {detail:?}: {e}"
                    ))
                })?;
                return Ok(Accepted {
                    provider_id: accepted.id,
                });
            }
            let transient = status.is_server_error()
                || status.as_u16() == 429
                || status.as_u16() == 401
                || status.as_u16() == 403
                || status.as_u16() == 408;
            let error = format!("SMS provider answered {status}: {detail}");
            Err(if transient {
                SendError::Transient(error)
            } else {
                SendError::Permanent(error)
            })
        })
    }
}
