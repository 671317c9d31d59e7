//! A fulfillment world for one test: the checkout world (serve all with the checkout and
//! fulfillment workers, the payment sandbox) plus our logistics sandbox (WMS + carrier), and
//! helpers that act as a node or a carrier through the sandbox's driver endpoints.

use serde_json::{json, Value};

use crate::api::SERVICE_KEY;
use crate::checkout::{CheckoutWorld, SETTLE};
use crate::poll::eventually;
use crate::process::WaybillProcess;

pub struct FulfillmentWorld {
    pub world: CheckoutWorld,
    pub logistics: WaybillProcess,
}

impl FulfillmentWorld {
    /// Starts everything with the fulfillment worker on (plus `extra` settings, which both
    /// sandboxes get too); no stock yet.
    pub async fn start(test_name: &str, extra: &[(&str, &str)]) -> Self {
        let mut vars: Vec<(&str, &str)> = vec![("WAYBILL_FULFILLMENT_WORKER", "true")];
        vars.extend_from_slice(extra);
        let world = CheckoutWorld::start(test_name, &vars, &[]).await;
        let logistics = world
            .env
            .start_logistics_with(&world.waybill.command_url(), extra)
            .await;
        Self { world, logistics }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.logistics.logistics_url())
    }

    /// The WMS tasks of `order_id` once there are at least `n`.
    pub async fn tasks(&self, order_id: &str, n: usize) -> Vec<Value> {
        self.listed("tasks", order_id, n).await
    }

    /// The parcels (labels) of `order_id` once there are at least `n` and Waybill recorded them
    /// (a carrier scans a parcel only after the label was bought and shipped).
    pub async fn parcels(&self, order_id: &str, n: usize) -> Vec<Value> {
        let parcels = self.listed("parcels", order_id, n).await;
        self.view_when(order_id, &format!("{n} shipments recorded"), |v| {
            v["shipments"].as_array().map_or(0, Vec::len) >= n
        })
        .await;
        parcels
    }

    async fn listed(&self, what: &str, order_id: &str, n: usize) -> Vec<Value> {
        let url = self.url(&format!("/sandbox/{what}?order_id={order_id}"));
        let api = &self.world.api;
        eventually(&format!("{n} {what} for {order_id}"), SETTLE, || {
            let url = url.clone();
            async move {
                let body = api.get(&url).await.json();
                let items = body[what].as_array().cloned().unwrap_or_default();
                if items.len() >= n {
                    Ok(items)
                } else {
                    Err(format!("{body}"))
                }
            }
        })
        .await
    }

    /// Acts as the node of `fulfillment_id`: `report` is `{"type": "picked" | ...}`. Returns the
    /// sandbox's answer (`event_id`, `pickup_code`, `waybill_status`, `waybill_response`).
    pub async fn node(&self, fulfillment_id: &str, report: Value) -> Value {
        let url = self.url(&format!("/sandbox/nodes/{fulfillment_id}/report"));
        let response = self.world.api.post_plain(&url, &report).await;
        assert_eq!(response.status, 200, "{}", response.describe());
        let body = response.json();
        assert_eq!(
            body["waybill_status"],
            json!(200),
            "waybill took the webhook: {body}"
        );
        body
    }

    /// Acts as the carrier scanning parcel `tracking`: `scan` is `{"status_code": "DL", ...}`.
    pub async fn scan(&self, tracking: &str, scan: Value) -> Value {
        let url = self.url(&format!("/sandbox/parcels/{tracking}/scan"));
        let response = self.world.api.post_plain(&url, &scan).await;
        assert_eq!(response.status, 200, "{}", response.describe());
        response.json()
    }

    /// The tracking view (read as the service) once `check` accepts it.
    pub async fn view_when(
        &self,
        order_id: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let api = &self.world.api;
        let check = &check;
        eventually(
            &format!("order {order_id}: {what}"),
            SETTLE,
            || async move {
                let response = api.tracking(order_id, &[], Some(SERVICE_KEY)).await;
                if response.status != 200 {
                    return Err(response.describe());
                }
                let view = response.json()["view"].clone();
                if check(&view) {
                    Ok(view)
                } else {
                    Err(view.to_string())
                }
            },
        )
        .await
    }

    /// Packs every task of `order_id` (picked, then packed) and returns the tasks.
    /// POSTs `body` to the command API's webhook `path` (`/v1/webhooks/wms` or `.../carrier`),
    /// signed with this test's logistics secret as nodes and carriers sign theirs.
    pub async fn signed_webhook(&self, path: &str, body: &Value) -> reqwest::Response {
        let secret = self.world.env.logistics_webhook_secret.as_bytes();
        let bytes = serde_json::to_vec(body).expect("JSON body");
        let signature = waybill_write_side::payment::webhook::sign(
            secret,
            chrono::Utc::now().timestamp(),
            &bytes,
        );
        reqwest::Client::new()
            .post(format!("{}{path}", self.world.waybill.command_url()))
            .header(
                waybill_write_side::fulfillment::logistics::SIGNATURE_HEADER,
                signature,
            )
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .expect("webhook POST")
    }

    pub async fn pack_all(&self, order_id: &str, n: usize) -> Vec<Value> {
        let tasks = self.tasks(order_id, n).await;
        for task in &tasks {
            let id = task["fulfillment_id"].as_str().expect("fulfillment id");
            self.node(id, json!({"type": "picked"})).await;
            self.node(id, json!({"type": "packed"})).await;
        }
        tasks
    }
}

/// An order of one unit each of `skus` at 25.00 USD, paid with the approved test card.
pub fn multi_line_order(reference: &str, skus: &[(&str, u32)], method: &str) -> Value {
    let mut body = crate::checkout::order(
        reference,
        skus[0].0,
        skus[0].1,
        crate::checkout::cards::APPROVED,
    );
    body["lines"] = skus
        .iter()
        .map(|(sku, units)| json!({"sku": sku, "name": sku, "quantity": units, "unit_price_minor": 2500}))
        .collect();
    body["shipping"] = json!({"method": method});
    body
}
