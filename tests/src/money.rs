//! Helpers for money after checkout: driving the payment sandbox's operator controls (open and
//! decide disputes, switch settlement-report quirks) as the gateway's key holder, and waiting
//! for the events they cause on an order.

use serde_json::{json, Value};

use crate::checkout::{CheckoutWorld, SETTLE};
use crate::poll::eventually;

impl CheckoutWorld {
    /// `method <sandbox><path>` with the gateway API key and a JSON body; returns status and
    /// body.
    pub async fn sandbox_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let response = reqwest::Client::new()
            .request(method, format!("{}{path}", self.sandbox.sandbox_url()))
            .bearer_auth(&self.env.payment_api_key)
            .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
            .json(body)
            .send()
            .await
            .expect("call the sandbox");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Opens a dispute on the order's capture at the sandbox; returns the dispute id once
    /// Waybill recorded `ChargebackOpened` from the webhook.
    pub async fn open_dispute(&self, order_id: &str) -> String {
        let captured = self.env.payloads_of(order_id, "PaymentCaptured").await;
        let capture_id = captured
            .first()
            .and_then(|c| c["capture_id"].as_str())
            .expect("the order was captured")
            .to_owned();
        let (status, dispute) = self
            .sandbox_call(
                reqwest::Method::POST,
                "/v1/_sandbox/disputes",
                &json!({"capture_id": capture_id, "reason": "product_not_received"}),
            )
            .await;
        assert_eq!(status, 201, "open dispute: {dispute}");
        let id = dispute["id"].as_str().expect("dispute id").to_owned();
        self.wait_for_event(order_id, "ChargebackOpened", 1).await;
        id
    }

    /// Decides a dispute at the sandbox (`won` or `lost`).
    pub async fn decide_dispute(&self, dispute_id: &str, outcome: &str) {
        let (status, body) = self
            .sandbox_call(
                reqwest::Method::POST,
                &format!("/v1/_sandbox/disputes/{dispute_id}/decide"),
                &json!({ "outcome": outcome }),
            )
            .await;
        assert_eq!(status, 200, "decide dispute: {body}");
    }

    /// Waits until the order has at least `count` events of `event_type`; returns their payloads.
    pub async fn wait_for_event(
        &self,
        order_id: &str,
        event_type: &str,
        count: usize,
    ) -> Vec<Value> {
        let env = &self.env;
        eventually(
            &format!("{count} {event_type} on {order_id}"),
            SETTLE,
            || async {
                let payloads = env.payloads_of(order_id, event_type).await;
                if payloads.len() >= count {
                    Ok(payloads)
                } else {
                    Err(format!("{} so far", payloads.len()))
                }
            },
        )
        .await
    }
}
