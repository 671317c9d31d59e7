//! `RoutingDecided` (issue 17.5): what one routing decision read and what it chose, so the
//! decision can be replayed later with another routing configuration (`waybill routing
//! simulate`). It is appended in the same transaction as the `FulfillmentRouted` events it
//! led to, in the order's stream.
//!
//! Compact on purpose (a few hundred bytes for a typical order): candidates carry units by
//! order line number, the transit history only the means at the candidates' distances, the
//! ship-to only its country and postal zone (routing reads no more of the address).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fulfillment::{FulfillmentLine, RouteCause};
use crate::values::OrderId;

/// What kind of inventory location a routing candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CandidateLocation {
    Warehouse,
    Store,
    ThirdParty,
}

/// A node that could serve the order, as routing saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingCandidate {
    pub node_id: String,
    pub location: CandidateLocation,
    /// Zone distance from the node to the customer.
    pub distance: u32,
    /// Units it could give, by order line number (`{"1": 2}`).
    pub units: BTreeMap<u32, u32>,
}

/// The learned mean transit time of one carrier over one zone distance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitMean {
    pub carrier: String,
    pub distance: u32,
    pub hours: i64,
}

/// Where the parcel goes, as far as routing reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingShipTo {
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// The postal zone (0-9) zone distances are measured from.
    pub postal_zone: i32,
}

/// One node's share of the chosen plan, measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutedShare {
    pub node_id: String,
    pub carrier: String,
    /// Units this node ships (all lines).
    pub units: u32,
    /// Carrier cost in minor units of the routing config's currency (0 for a pickup).
    pub cost_minor: i64,
    /// Grams CO₂e (0 for a pickup).
    pub co2_grams: i64,
    /// Promised delivery (or ready-for-pickup) time.
    pub eta: DateTime<Utc>,
}

/// What the decision chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingOutcome {
    pub routes: Vec<RoutedShare>,
    /// Units no allowed node had (they were cancelled).
    pub unroutable_units: u32,
}

/// `RoutingDecided` v1: the inputs and outcome of one routing decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingDecided {
    pub order_id: OrderId,
    pub cause: RouteCause,
    /// The clock routing read: cut-offs and ETAs are measured from it.
    pub decided_at: DateTime<Utc>,
    /// The routing config that decided (`sha256:` and the first 16 hex digits of its file).
    pub config_version: String,
    pub shipping_method: String,
    /// The store the customer chose to collect at (pickup orders).
    #[serde(default)]
    pub pickup_location: Option<String>,
    pub ship_to: RoutingShipTo,
    /// The units asked for.
    pub lines: Vec<FulfillmentLine>,
    /// Nodes holding the order's allocation, routed first (`None`: a re-route or replacement,
    /// which go straight to free stock).
    #[serde(default)]
    pub allocated: Option<Vec<RoutingCandidate>>,
    /// Nodes with free stock of the order's SKUs at decision time (a node that just came up
    /// short left out), routed for whatever the allocation did not cover.
    pub free_stock: Vec<RoutingCandidate>,
    /// Learned transit means at the candidates' distances (others used the carrier default).
    pub transit: Vec<TransitMean>,
    pub outcome: RoutingOutcome,
}
