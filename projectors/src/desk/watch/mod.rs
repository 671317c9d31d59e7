//! Pure: what the desk keeps per order. Each event moves the order's [`Watch`]: the stage it is
//! in and since when, its deadlines (authorization, reservation, review), and the parcels with
//! an open problem. A stage change also yields a [`StageSample`] (how long the stage took, for
//! learning), and confirmations, declines and fraud holds yield a [`Signal`] (for anomaly
//! detection); the store writes both with the watch, once per event version.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use waybill_schemas::events::{CarrierStatus, ExceptionAction, ReviewDecision, RiskDecision};
use waybill_schemas::{EventEnvelope, OrderEvent};

/// Where an order is in its life, as far as being stuck goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Placed, waiting for the risk assessment.
    Validation,
    /// Held for a fraud review by an agent.
    Review,
    /// Accepted, waiting for stock to be reserved.
    Reservation,
    /// Stock reserved, waiting for the card authorization (3-D Secure included).
    Payment,
    /// Authorized, waiting for confirmation.
    Confirmation,
    /// Confirmed, waiting for the node to ship (or to ready the pickup).
    Fulfillment,
    /// Shipped, waiting for delivery.
    InTransit,
    /// Ready in store, waiting for the customer to collect.
    Pickup,
    /// Delivered or collected: waiting only for auto-close.
    Delivered,
    /// Closed or cancelled.
    Ended,
}

impl Stage {
    pub const TIMED: &'static [Stage] = &[
        Self::Validation,
        Self::Review,
        Self::Reservation,
        Self::Payment,
        Self::Confirmation,
        Self::Fulfillment,
        Self::InTransit,
        Self::Pickup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::Review => "review",
            Self::Reservation => "reservation",
            Self::Payment => "payment",
            Self::Confirmation => "confirmation",
            Self::Fulfillment => "fulfillment",
            Self::InTransit => "in_transit",
            Self::Pickup => "pickup",
            Self::Delivered => "delivered",
            Self::Ended => "ended",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::TIMED
            .iter()
            .chain(&[Self::Delivered, Self::Ended])
            .copied()
            .find(|s| s.as_str() == raw)
    }

    /// Whether the desk times this stage (the last two wait on nothing anyone does).
    pub fn is_timed(self) -> bool {
        Self::TIMED.contains(&self)
    }

    /// Whether the fulfillment node is part of this stage's learning key.
    fn per_node(self) -> bool {
        matches!(self, Self::Fulfillment | Self::InTransit | Self::Pickup)
    }
}

/// The node label of stages that have none.
pub const NO_NODE: &str = "-";

/// A parcel with an open problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelIssue {
    pub shipment_id: String,
    pub carrier_event_id: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// One finished stage: how long it took, for learning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSample {
    pub stage: Stage,
    pub entered_version: i64,
    pub channel: String,
    pub node: String,
    pub duration_ms: i64,
    pub finished_at: DateTime<Utc>,
}

/// What anomaly detection counts per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Confirmation,
    Decline,
    FraudHold,
}

impl SignalKind {
    pub const ALL: &'static [SignalKind] = &[Self::Confirmation, Self::Decline, Self::FraudHold];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation",
            Self::Decline => "decline",
            Self::FraudHold => "fraud_hold",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == raw)
    }
}

/// One counted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub version: i64,
    pub channel: String,
    pub kind: SignalKind,
    pub at: DateTime<Utc>,
}

/// An order as the desk watches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    pub order_id: String,
    pub version: i64,
    pub channel: String,
    pub placed_at: DateTime<Utc>,
    pub stage: Stage,
    pub entered_at: DateTime<Utc>,
    pub entered_version: i64,
    /// The fulfillment node (`-` before routing).
    pub node: String,
    /// An authorization not yet captured, voided or expired runs out then.
    pub authorization_expires_at: Option<DateTime<Utc>>,
    /// Stock reserved and not yet allocated or released runs out then.
    pub reservation_expires_at: Option<DateTime<Utc>>,
    pub carrier_exceptions: Vec<ParcelIssue>,
    pub failed_handoffs: Vec<ParcelIssue>,
    /// Produced by the events applied since the watch was loaded; written with it.
    #[serde(skip)]
    pub samples: Vec<StageSample>,
    #[serde(skip)]
    pub signals: Vec<Signal>,
}

impl Watch {
    /// Whether anything about the order can still go wrong.
    pub fn active(&self) -> bool {
        self.stage != Stage::Ended
    }

    /// The learning key's node for the current stage.
    pub fn stage_node(&self) -> &str {
        if self.stage.per_node() {
            &self.node
        } else {
            NO_NODE
        }
    }

    fn enter(&mut self, stage: Stage, event: &EventEnvelope) {
        if stage == self.stage {
            return;
        }
        if self.stage.is_timed() {
            self.samples.push(StageSample {
                stage: self.stage,
                entered_version: self.entered_version,
                channel: self.channel.clone(),
                node: self.stage_node().to_owned(),
                duration_ms: (event.occurred_at - self.entered_at)
                    .num_milliseconds()
                    .max(0),
                finished_at: event.occurred_at,
            });
        }
        self.stage = stage;
        self.entered_at = event.occurred_at;
        self.entered_version = event.stream_version;
        if stage == Stage::Ended {
            self.authorization_expires_at = None;
            self.reservation_expires_at = None;
            self.carrier_exceptions.clear();
            self.failed_handoffs.clear();
        }
    }

    fn signal(&mut self, kind: SignalKind, event: &EventEnvelope) {
        self.signals.push(Signal {
            version: event.stream_version,
            channel: self.channel.clone(),
            kind,
            at: event.occurred_at,
        });
    }
}

/// Why a watch cannot take an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("{stream_id} v{version}: {event_type} before OrderPlaced")]
    NotPlaced {
        stream_id: String,
        version: i64,
        event_type: String,
    },
}

/// The watch after `event` (the next version of its order stream).
pub fn apply(
    state: Option<&Watch>,
    event: &EventEnvelope,
    decoded: &OrderEvent,
) -> Result<Watch, WatchError> {
    let mut watch = match (state, decoded) {
        (None, OrderEvent::OrderPlaced(placed)) => {
            return Ok(Watch {
                order_id: placed.order_id.to_string(),
                version: event.stream_version,
                channel: placed.channel.as_str().to_owned(),
                placed_at: placed.placed_at,
                stage: Stage::Validation,
                entered_at: event.occurred_at,
                entered_version: event.stream_version,
                node: NO_NODE.to_owned(),
                authorization_expires_at: None,
                reservation_expires_at: None,
                carrier_exceptions: Vec::new(),
                failed_handoffs: Vec::new(),
                samples: Vec::new(),
                signals: Vec::new(),
            })
        }
        (None, other) => {
            return Err(WatchError::NotPlaced {
                stream_id: event.stream_id.clone(),
                version: event.stream_version,
                event_type: other.event_type().to_owned(),
            })
        }
        (Some(watch), _) => watch.clone(),
    };
    watch.version = event.stream_version;
    if watch.stage == Stage::Ended {
        return Ok(watch);
    }
    match decoded {
        OrderEvent::RiskAssessed(risk) => match risk.decision {
            RiskDecision::Accept => watch.enter(Stage::Reservation, event),
            RiskDecision::Review => {
                watch.signal(SignalKind::FraudHold, event);
                watch.enter(Stage::Review, event);
            }
            // The cancellation follows.
            RiskDecision::Reject => watch.signal(SignalKind::FraudHold, event),
        },
        OrderEvent::RiskReviewResolved(review) if review.decision == ReviewDecision::Approve => {
            watch.enter(Stage::Reservation, event)
        }
        OrderEvent::InventoryReserved(reserved) => {
            watch.reservation_expires_at = Some(reserved.expires_at);
            if watch.stage == Stage::Reservation {
                watch.enter(Stage::Payment, event);
            }
        }
        OrderEvent::InventoryAllocated(_) | OrderEvent::InventoryReleased(_) => {
            watch.reservation_expires_at = None
        }
        OrderEvent::PaymentAuthorized(authorized) => {
            watch.authorization_expires_at = Some(authorized.expires_at);
            if matches!(watch.stage, Stage::Payment | Stage::Reservation) {
                watch.enter(Stage::Confirmation, event);
            }
        }
        OrderEvent::PaymentDeclined(_) => watch.signal(SignalKind::Decline, event),
        OrderEvent::PaymentCaptured(_)
        | OrderEvent::PaymentVoided(_)
        | OrderEvent::PaymentAuthorizationExpired(_) => watch.authorization_expires_at = None,
        OrderEvent::OrderConfirmed(_) => {
            watch.signal(SignalKind::Confirmation, event);
            watch.reservation_expires_at = None;
            watch.enter(Stage::Fulfillment, event);
        }
        OrderEvent::FulfillmentRouted(routed) => watch.node = routed.node_id.clone(),
        OrderEvent::ShipmentCreated(_) if watch.stage == Stage::Fulfillment => {
            watch.enter(Stage::InTransit, event)
        }
        OrderEvent::PickupReady(_) if watch.stage == Stage::Fulfillment => {
            watch.enter(Stage::Pickup, event)
        }
        OrderEvent::PickupCompleted(_) => watch.enter(Stage::Delivered, event),
        OrderEvent::ShipmentTracked(scan) => {
            // A later scan of the parcel answers its earlier problems.
            watch
                .carrier_exceptions
                .retain(|issue| issue.shipment_id != scan.shipment_id);
            watch
                .failed_handoffs
                .retain(|issue| issue.shipment_id != scan.shipment_id);
            match scan.status {
                CarrierStatus::Exception => watch.carrier_exceptions.push(ParcelIssue {
                    shipment_id: scan.shipment_id.clone(),
                    carrier_event_id: scan.carrier_event_id.clone(),
                    detail: scan.description.clone(),
                    at: scan.carrier_time,
                }),
                CarrierStatus::Delivered => watch.enter(Stage::Delivered, event),
                _ => {}
            }
        }
        OrderEvent::ShipmentExceptionHandled(handled)
            if handled.action == ExceptionAction::Alert =>
        {
            watch.failed_handoffs.push(ParcelIssue {
                shipment_id: handled.shipment_id.clone(),
                carrier_event_id: handled.carrier_event_id.clone(),
                detail: handled.detail.clone(),
                at: handled.handled_at,
            });
        }
        OrderEvent::OrderCancelled(_) | OrderEvent::OrderClosed(_) => {
            watch.enter(Stage::Ended, event)
        }
        _ => {}
    }
    Ok(watch)
}

#[cfg(test)]
mod tests;
