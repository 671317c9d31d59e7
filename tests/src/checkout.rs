//! A whole checkout world for one test: `serve all` with the checkout worker on, our payment
//! sandbox wired to its webhooks, locations with stock, and helpers to place orders with a given
//! test card and wait for the flow to settle.

use std::time::Duration;

use serde_json::{json, Value};

use crate::api::{Api, HttpResponse, ADMIN_KEY, SERVICE_KEY};
use crate::env::TestEnv;
use crate::poll::eventually;
use crate::process::{Role, WaybillProcess};

/// Sandbox test cards (see write-side/PAYMENT-SANDBOX.md).
pub mod cards {
    pub const APPROVED: &str = "tok_4242424242424242";
    pub const THREE_DS: &str = "tok_4000000000003220";
    pub const INSUFFICIENT_FUNDS: &str = "tok_4000000000009995";
    pub const DECLINED: &str = "tok_4000000000000002";
}

/// How long a flow may take to settle in a debug build on a busy machine.
pub const SETTLE: Duration = Duration::from_secs(60);

pub struct CheckoutWorld {
    pub env: TestEnv,
    pub waybill: WaybillProcess,
    pub sandbox: WaybillProcess,
    pub api: Api,
}

impl CheckoutWorld {
    /// `serve all` with the checkout worker (plus `extra` settings) and the sandbox, and two US
    /// warehouses stocked with `stock` units of each of `skus`.
    pub async fn start(test_name: &str, extra: &[(&str, &str)], skus: &[(&str, u32)]) -> Self {
        let env = TestEnv::new(test_name).await;
        let mut vars: Vec<(&str, &str)> = vec![("WAYBILL_CHECKOUT_WORKER", "true")];
        vars.extend_from_slice(extra);
        let waybill = env.start_with(Role::All, &vars).await;
        let sandbox = env.start_sandbox(&waybill.command_url(), extra).await;
        let api = waybill.api();
        let world = Self {
            env,
            waybill,
            sandbox,
            api,
        };
        world.location("wh-east", "warehouse", 1).await;
        world.location("wh-west", "warehouse", 9).await;
        for (sku, units) in skus {
            world.restock(sku, "wh-east", *units).await;
        }
        world
    }

    pub async fn location(&self, id: &str, kind: &str, zone: i32) {
        let response = self
            .api
            .put_json(
                &format!("/v1/inventory/locations/{id}"),
                ADMIN_KEY,
                &format!("location-{id}"),
                &json!({"kind": kind, "name": id, "country": "US", "zone": zone}),
            )
            .await;
        assert!(
            response.status < 300,
            "location {id}: {}",
            response.describe()
        );
    }

    pub async fn restock(&self, sku: &str, location: &str, units: u32) {
        let response = self
            .api
            .post_json(
                &format!("/v1/inventory/stock/{sku}/{location}/restock"),
                ADMIN_KEY,
                &format!("restock-{sku}-{location}-{units}"),
                &json!({"quantity": units}),
            )
            .await;
        assert!(
            response.status < 300,
            "restock {sku}: {}",
            response.describe()
        );
    }

    /// `(on_hand, reserved, allocated)` of `sku` summed over the locations.
    pub async fn stock(&self, sku: &str) -> (i64, i64, i64) {
        let response = self
            .api
            .command_get(&format!("/v1/inventory/stock/{sku}"), ADMIN_KEY)
            .await;
        assert_eq!(response.status, 200, "{}", response.describe());
        let body = response.json();
        let levels = body["levels"].as_array().cloned().unwrap_or_default();
        levels.iter().fold((0, 0, 0), |(h, r, a), level| {
            (
                h + level["on_hand"].as_i64().unwrap_or(0),
                r + level["reserved"].as_i64().unwrap_or(0),
                a + level["allocated"].as_i64().unwrap_or(0),
            )
        })
    }

    /// Places an order paid with `token`; returns the 201 body.
    pub async fn place(&self, body: &Value) -> Value {
        let key = format!(
            "place-{}",
            body["channel_order_ref"].as_str().unwrap_or("x")
        );
        let response = self.api.place_order(&key, body).await;
        assert_eq!(response.status, 201, "{}", response.describe());
        response.json()
    }

    /// Waits until the order's flow is over (no `checkout_flows` row, or parked in `stage`) and
    /// returns its event types.
    pub async fn settled(&self, order_id: &str, waiting_in: Option<&str>) -> Vec<String> {
        let pool = self.env.db().clone();
        let id = uuid::Uuid::parse_str(order_id).expect("order id");
        let stage = waiting_in.map(str::to_owned);
        eventually(&format!("order {order_id} settles"), SETTLE, || {
            let pool = pool.clone();
            let stage = stage.clone();
            async move {
                let row: Option<(String, Option<String>)> = sqlx::query_as(
                    "SELECT stage, last_error FROM checkout_flows WHERE order_id = $1",
                )
                .bind(id)
                .fetch_optional(&pool)
                .await
                .map_err(|e| e.to_string())?;
                match (row, stage) {
                    (None, None) => Ok(()),
                    (Some((at, _)), Some(want)) if at == want => Ok(()),
                    (row, _) => Err(format!("flow row: {row:?}")),
                }
            }
        })
        .await;
        self.env.event_types_of_order(order_id).await
    }

    /// The tracking view once it shows `version` (read as the service).
    pub async fn view_at(&self, order_id: &str, version: usize) -> Value {
        let min = version.to_string();
        let response = self
            .api
            .tracking(order_id, &[("min_version", &min)], Some(SERVICE_KEY))
            .await;
        assert_eq!(response.status, 200, "{}", response.describe());
        let body = response.json();
        assert_eq!(
            body["consistency"]["stale"],
            json!(false),
            "view caught up: {body}"
        );
        body["view"].clone()
    }

    /// Completes a pending 3-D Secure challenge as the customer would.
    pub async fn complete_challenge(&self, order_id: &str, pass: bool) -> HttpResponse {
        let challenge = self
            .env
            .payloads_of(order_id, "PaymentChallengeRequired")
            .await
            .pop()
            .expect("a challenge was recorded");
        let id = challenge["authorization_id"]
            .as_str()
            .expect("authorization id");
        self.api
            .post_plain(
                &format!("{}/v1/challenges/{id}/complete", self.sandbox.sandbox_url()),
                &json!({"result": if pass { "pass" } else { "fail" }}),
            )
            .await
    }
}

impl CheckoutWorld {
    /// The text of the customer message of `kind` (`order_confirmed`, ...) for `order_id` sent
    /// by `medium` (`email`, `sms`), once the development sink has written it.
    pub async fn notification(&self, order_id: &str, kind: &str, medium: &str) -> String {
        let dir = self.env.notifications_dir.clone();
        let needle = format!("-{order_id}-{kind}-");
        let suffix = format!(".{medium}.txt");
        eventually(&format!("a {kind} {medium} for {order_id}"), SETTLE, || {
            let dir = dir.clone();
            let needle = needle.clone();
            let suffix = suffix.clone();
            async move {
                let entries =
                    std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.contains(&needle) && name.ends_with(&suffix) {
                        return std::fs::read_to_string(entry.path()).map_err(|e| e.to_string());
                    }
                }
                Err("not written yet".to_owned())
            }
        })
        .await
    }
}

/// A one-line order for `units` of `sku` at 25.00 USD each, paid with `token`, from a customer
/// of its own (so velocity rules see one order per customer).
pub fn order(reference: &str, sku: &str, units: u32, token: &str) -> Value {
    json!({
        "channel": "web",
        "channel_order_ref": reference,
        "currency": "USD",
        "customer": {"customer_id": reference, "name": "Grace Hopper",
                     "email": format!("{}@example.com", reference.to_lowercase()), "phone": "+1 555 0100"},
        "lines": [{"sku": sku, "name": sku, "quantity": units, "unit_price_minor": 2500}],
        "shipping_address": {"name": "Grace Hopper", "line1": "1 Main St", "city": "Springfield",
                             "region": "IL", "postal_code": "62701", "country": "US"},
        "shipping": {"method": "standard"},
        "payment": {"method": "card", "token": token}
    })
}
