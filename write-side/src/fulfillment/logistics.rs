//! The HTTP protocol between Waybill and the logistics systems it drives: a node's WMS (pick/pack
//! tasks) and a carrier (labels, handoff retries), and the signed webhooks both send back. The
//! client here is the adapter; `sandbox` is our simulated WMS + carrier speaking the same HTTP.
//!
//! Webhooks carry `Waybill-Logistics-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! (the same scheme as the payment gateway's, under its own secret) and a stable `id` that
//! Waybill de-duplicates on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use waybill_schemas::events::{FulfillmentLine, InspectedLine};
use waybill_schemas::OrderId;

/// The header that carries a logistics webhook's signature.
pub const SIGNATURE_HEADER: &str = "waybill-logistics-signature";

/// `POST {wms}/wms/v1/tasks` (header `Idempotency-Key`): pick and pack a fulfillment order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRequest {
    pub order_id: OrderId,
    pub fulfillment_id: String,
    pub node_id: String,
    pub lines: Vec<FulfillmentLine>,
    /// BOPIS: hold the parcel for collection instead of handing it to a carrier.
    pub pickup: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskAccepted {
    pub task_id: String,
}

/// `POST {carrier}/carrier/v1/labels` (header `Idempotency-Key`): a label for one parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRequest {
    pub order_id: OrderId,
    pub shipment_id: String,
    pub carrier: String,
    pub from_node: String,
    pub zone_distance: u32,
    pub promised_eta: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCreated {
    pub tracking_number: String,
    pub tracking_url: String,
    pub label_url: String,
    pub eta: DateTime<Utc>,
}

/// `POST {carrier}/carrier/v1/return-labels` (header `Idempotency-Key`, `<return id>:label`):
/// a prepaid label for the customer to send a return to `to_node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLabelRequest {
    pub order_id: OrderId,
    pub return_id: String,
    /// The carrier that delivered the units (the carrier's own default when empty).
    pub carrier: String,
    pub to_node: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLabelCreated {
    pub carrier: String,
    pub tracking_number: String,
    pub tracking_url: String,
    pub label_url: String,
}

/// What a node reports about a fulfillment order or a return (`POST /v1/webhooks/wms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeWebhook {
    pub id: String,
    pub order_id: OrderId,
    /// The fulfillment order's id; for `return_received` / `return_inspected`, the return id.
    pub fulfillment_id: String,
    pub report: NodeReport,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NodeReport {
    Picked,
    Packed,
    ShortPicked {
        missing: Vec<FulfillmentLine>,
    },
    ReadyForPickup {
        pickup_code: String,
        collect_by: DateTime<Utc>,
    },
    PickedUp {
        pickup_code: String,
    },
    /// The return's parcel arrived at the node.
    ReturnReceived,
    /// The node inspected the returned units.
    ReturnInspected {
        lines: Vec<InspectedLine>,
    },
}

/// A carrier scan (`POST /v1/webhooks/carrier`). `status_code` is the carrier's own code
/// (see `domain::fulfillment::carrier::normalize`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierWebhook {
    pub id: String,
    pub order_id: OrderId,
    pub shipment_id: String,
    pub tracking_number: String,
    pub status_code: String,
    pub carrier_time: DateTime<Utc>,
    pub description: String,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub received_by: Option<String>,
    #[serde(default)]
    pub photo_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogisticsError {
    #[error("{system} unreachable: {source}")]
    Unreachable {
        system: &'static str,
        source: reqwest::Error,
    },
    #[error("{system} answered {status}: {body}")]
    Refused {
        system: &'static str,
        status: u16,
        body: String,
    },
    #[error("bad logistics URL {0}")]
    Url(String),
}

/// The HTTP adapter for WMS and carrier.
#[derive(Debug, Clone)]
pub struct LogisticsClient {
    http: reqwest::Client,
    wms_url: String,
    carrier_url: String,
}

impl LogisticsClient {
    pub fn new(
        wms_url: &str,
        carrier_url: &str,
        timeout: Duration,
    ) -> Result<Self, LogisticsError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| LogisticsError::Url(e.to_string()))?;
        Ok(Self {
            http,
            wms_url: wms_url.trim_end_matches('/').to_owned(),
            carrier_url: carrier_url.trim_end_matches('/').to_owned(),
        })
    }

    pub async fn submit_task(
        &self,
        key: &str,
        request: &TaskRequest,
    ) -> Result<TaskAccepted, LogisticsError> {
        self.post(
            "WMS",
            &format!("{}/wms/v1/tasks", self.wms_url),
            key,
            request,
        )
        .await
    }

    pub async fn create_label(
        &self,
        key: &str,
        request: &LabelRequest,
    ) -> Result<LabelCreated, LogisticsError> {
        self.post(
            "carrier",
            &format!("{}/carrier/v1/labels", self.carrier_url),
            key,
            request,
        )
        .await
    }

    pub async fn create_return_label(
        &self,
        key: &str,
        request: &ReturnLabelRequest,
    ) -> Result<ReturnLabelCreated, LogisticsError> {
        self.post(
            "carrier",
            &format!("{}/carrier/v1/return-labels", self.carrier_url),
            key,
            request,
        )
        .await
    }

    /// Asks the carrier to attempt a failed handoff again.
    pub async fn retry_handoff(
        &self,
        key: &str,
        tracking_number: &str,
    ) -> Result<serde_json::Value, LogisticsError> {
        self.post(
            "carrier",
            &format!(
                "{}/carrier/v1/parcels/{tracking_number}/retry",
                self.carrier_url
            ),
            key,
            &serde_json::json!({}),
        )
        .await
    }

    async fn post<B: Serialize, R: for<'de> Deserialize<'de>>(
        &self,
        system: &'static str,
        url: &str,
        key: &str,
        body: &B,
    ) -> Result<R, LogisticsError> {
        let response = self
            .http
            .post(url)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .map_err(|source| LogisticsError::Unreachable { system, source })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(LogisticsError::Refused {
                system,
                status: status.as_u16(),
                body,
            });
        }
        response
            .json()
            .await
            .map_err(|source| LogisticsError::Unreachable { system, source })
    }
}
