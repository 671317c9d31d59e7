//! Fulfillment events (issue 4): a confirmed order is split into fulfillment orders, one per
//! node; nodes report picking and packing; parcels get carrier labels and tracking scans; BOPIS
//! orders are collected in store; the order closes some days after its last delivery. All of
//! them live in the order's stream, so one fold of the stream gives the whole picture.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{OrderId, Quantity, Sku};

/// What kind of place fulfils a fulfillment order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Warehouse,
    ShipFromStore,
    /// Buy online, pick up in store: the customer collects the parcel at this node.
    PickupStore,
    ThirdParty,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warehouse => "warehouse",
            Self::ShipFromStore => "ship_from_store",
            Self::PickupStore => "pickup_store",
            Self::ThirdParty => "third_party",
        }
    }
}

/// Units of one order line in a fulfillment order or parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfillmentLine {
    pub line_no: u32,
    pub sku: Sku,
    pub quantity: Quantity,
}

/// One term of a routing score, so an agent can see why a node won. Lower totals win.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScorePart {
    /// `stock`, `distance`, `cost`, `cutoff`, `eta` or `carbon`.
    pub factor: String,
    /// The measured input, in words ("zone distance 2", "cost 650 minor units").
    pub input: String,
    /// Weighted points this factor added.
    pub points: i64,
}

/// Why a fulfillment order was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RouteCause {
    /// Routing of the confirmed order.
    Confirmation,
    /// The remainder a node could not pick, sent to another node.
    ShortPick { from_fulfillment_id: String },
    /// Replacement units of an exchange, linked to its return.
    Exchange { return_id: String },
}

/// Where and how a BOPIS customer collects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupPoint {
    pub store_name: String,
    pub address: String,
    pub instructions: String,
}

/// `FulfillmentRouted` v1: lines of the order go to one node; the score's parts and the rule
/// that chose the node are kept for agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfillmentRouted {
    pub order_id: OrderId,
    /// `<order id>-F<n>`, n counting from 1 in the order's stream.
    pub fulfillment_id: String,
    pub node_id: String,
    pub node_kind: NodeKind,
    pub carrier: String,
    /// Zone distance from the node to the customer (what transit times are learned by).
    pub zone_distance: u32,
    pub lines: Vec<FulfillmentLine>,
    /// The routing rule (by name, from the routing config) that chose this node.
    pub rule: String,
    pub score: Vec<ScorePart>,
    pub total_score: i64,
    /// Promised delivery (or ready-for-pickup) time.
    pub eta: DateTime<Utc>,
    pub cause: RouteCause,
    #[serde(default)]
    pub pickup: Option<PickupPoint>,
    pub routed_at: DateTime<Utc>,
}

/// `FulfillmentSubmitted` v1: the node's WMS accepted the pick/pack task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfillmentSubmitted {
    pub order_id: OrderId,
    pub fulfillment_id: String,
    pub wms_task_id: String,
    pub submitted_at: DateTime<Utc>,
}

/// What a node reported about a fulfillment order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeProgress {
    Picked,
    Packed,
}

/// `FulfillmentProgressed` v1: the node picked or packed the fulfillment order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfillmentProgressed {
    pub order_id: OrderId,
    pub fulfillment_id: String,
    pub progress: NodeProgress,
    pub reported_at: DateTime<Utc>,
}

/// `FulfillmentShortPicked` v1: the node could not find these units; the rest of the
/// fulfillment order goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfillmentShortPicked {
    pub order_id: OrderId,
    pub fulfillment_id: String,
    pub missing: Vec<FulfillmentLine>,
    pub reported_at: DateTime<Utc>,
}

/// `FulfillmentLinesCancelled` v1: units no node can fulfil are cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfillmentLinesCancelled {
    pub order_id: OrderId,
    pub fulfillment_id: String,
    pub lines: Vec<FulfillmentLine>,
    /// In words, for agents and the customer ("no other node has the item").
    pub reason: String,
    pub cancelled_at: DateTime<Utc>,
}

/// `PickupReady` v1: a BOPIS order waits at the store. The code itself is sent to the
/// customer; the stream keeps only its SHA-256 and a hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupReady {
    pub order_id: OrderId,
    pub fulfillment_id: String,
    /// Hex SHA-256 of the pickup code.
    pub code_sha256: String,
    /// The code's last two characters, shown on the tracking page ("••••42").
    pub code_hint: String,
    pub collect_by: DateTime<Utc>,
    pub ready_at: DateTime<Utc>,
}

/// `PickupCompleted` v1: the customer collected a BOPIS order, showing the right code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupCompleted {
    pub order_id: OrderId,
    pub fulfillment_id: String,
    pub picked_up_at: DateTime<Utc>,
}

/// `ShipmentCreated` v1: a packed fulfillment order got a carrier label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentCreated {
    pub order_id: OrderId,
    pub shipment_id: String,
    pub fulfillment_id: String,
    pub carrier: String,
    pub tracking_number: String,
    pub tracking_url: String,
    pub label_url: String,
    pub lines: Vec<FulfillmentLine>,
    pub eta: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// The normalized carrier statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CarrierStatus {
    PickedUp,
    InTransit,
    OutForDelivery,
    Delivered,
    Exception,
    ReturnedToSender,
}

impl CarrierStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PickedUp => "picked_up",
            Self::InTransit => "in_transit",
            Self::OutForDelivery => "out_for_delivery",
            Self::Delivered => "delivered",
            Self::Exception => "exception",
            Self::ReturnedToSender => "returned_to_sender",
        }
    }
}

/// Proof of delivery as the carrier gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofOfDelivery {
    /// Who signed, or where the parcel was left.
    pub received_by: String,
    #[serde(default)]
    pub photo_url: Option<String>,
}

/// `ShipmentTracked` v1: a carrier scan newer (by carrier time) than any recorded before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentTracked {
    pub order_id: OrderId,
    pub shipment_id: String,
    pub carrier_event_id: String,
    pub status: CarrierStatus,
    /// When the carrier saw it (orders scans; not when we heard of it).
    pub carrier_time: DateTime<Utc>,
    pub description: String,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub proof: Option<ProofOfDelivery>,
    pub recorded_at: DateTime<Utc>,
}

impl ShipmentTracked {
    /// When the scan counts as having happened, for ordering scans and dating a delivery: the
    /// carrier's time, but never later than Waybill heard of it. A carrier clock running ahead
    /// (or a forged date) can then never make a scan look newer than one that really happened
    /// after it arrived.
    pub fn effective_time(&self) -> DateTime<Utc> {
        effective_scan_time(self.carrier_time, self.recorded_at)
    }
}

/// A scan's ordering time: `carrier_time`, capped at `received_at` (see
/// [`ShipmentTracked::effective_time`]).
pub fn effective_scan_time(
    carrier_time: DateTime<Utc>,
    received_at: DateTime<Utc>,
) -> DateTime<Utc> {
    carrier_time.min(received_at)
}

/// What an exception made the process manager do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionAction {
    /// Asked the carrier to attempt the handoff again.
    RetryHandoff,
    /// Retries used up: raised for an agent.
    Alert,
}

/// `ShipmentExceptionHandled` v1: the reaction to a carrier exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentExceptionHandled {
    pub order_id: OrderId,
    pub shipment_id: String,
    pub action: ExceptionAction,
    /// The exception scan this answers.
    pub carrier_event_id: String,
    pub detail: String,
    pub handled_at: DateTime<Utc>,
}

/// `OrderClosed` v1: every unit was delivered, collected or cancelled, and the auto-close
/// period after the last delivery passed with no return open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderClosed {
    pub order_id: OrderId,
    pub last_delivery_at: DateTime<Utc>,
    pub closed_at: DateTime<Utc>,
}
