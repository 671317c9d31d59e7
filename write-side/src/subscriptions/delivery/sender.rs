//! Sending one event to one endpoint: the signed POST and what its answer means.

use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use crate::subscriptions::signature::{
    self, ATTEMPT_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, SUBSCRIPTION_HEADER,
};

/// An HTTP client for webhook deliveries: keeps connections per host, follows no redirects
/// (a 3xx is a failure: the registered URL is the one that gets the data), bounds each request.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
}

/// One delivery.
pub struct Delivery<'a> {
    pub url: &'a str,
    pub secret: &'a str,
    pub subscription_id: Uuid,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub attempt: i32,
    pub body: Bytes,
}

impl Sender {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .user_agent(concat!("Waybill-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }

    /// Posts the event; `Ok` on any 2xx, else why not (status, timeout, connection).
    pub async fn send(&self, delivery: Delivery<'_>) -> Result<(), String> {
        let now = chrono::Utc::now().timestamp();
        let signed = signature::sign(delivery.secret, now, &delivery.body);
        let answer = self
            .client
            .post(delivery.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signed)
            .header(EVENT_ID_HEADER, delivery.event_id.to_string())
            .header(EVENT_TYPE_HEADER, delivery.event_type)
            .header(SUBSCRIPTION_HEADER, delivery.subscription_id.to_string())
            .header(ATTEMPT_HEADER, delivery.attempt.to_string())
            .body(delivery.body)
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("answered HTTP {}", response.status().as_u16())),
            Err(e) if e.is_timeout() => Err("no answer in time".to_owned()),
            Err(e) if e.is_connect() => Err("connection refused or unreachable".to_owned()),
            Err(e) => Err(format!("request failed: {}", without_url(&e))),
        }
    }
}

/// The error without the URL (which may carry a token in its path or query).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}
