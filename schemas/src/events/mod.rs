//! Event payloads, current versions. Each has a JSON Schema per version under `schemas/json/`;
//! `tests` below checks the checked-in files against these types.
//!
//! Every event of the order lifecycle lives in the order's stream (`order-<uuid>`): the order,
//! its risk decision, its stock and its payment (captures, refunds, chargebacks), so one fold
//! gives the whole picture. What the gateway reports it settled and paid out lives in streams of
//! its own (`settlement-…`, `payout-…`, see [`settlement`]).

mod charge;
mod chargeback;
pub mod desk;
mod erasure;
mod exchange;
mod fulfillment;
mod inventory;
mod line_cancellation;
mod notification;
mod order_cancelled;
mod order_confirmed;
mod order_edit;
mod order_placed;
mod payment;
mod refund;
mod returns;
mod risk;
mod routing;
pub mod settlement;
mod store_credit;

use serde::Serialize;

pub use charge::{ExtraChargeCaptured, ExtraChargeDeclined, ExtraChargeRequested};
pub use chargeback::{
    ChargebackEvidenceSubmitted, ChargebackLost, ChargebackOpened, ChargebackWon,
};
pub use desk::DeskEntryResolved;
pub use erasure::CustomerErased;
pub use exchange::{ExchangeReplacementRequested, ReplacementUnit, FIRST_REPLACEMENT_LINE};
pub use fulfillment::{
    effective_scan_time, CarrierStatus, ExceptionAction, FulfillmentLine,
    FulfillmentLinesCancelled, FulfillmentProgressed, FulfillmentRouted, FulfillmentShortPicked,
    FulfillmentSubmitted, NodeKind, NodeProgress, OrderClosed, PickupCompleted, PickupPoint,
    PickupReady, ProofOfDelivery, RouteCause, ScorePart, ShipmentCreated, ShipmentExceptionHandled,
    ShipmentTracked,
};
pub use inventory::{
    BackorderedLine, InventoryAllocated, InventoryReleased, InventoryReservationFailed,
    InventoryReserved, ReleaseReason, ReservedLine, Shortage,
};
pub use line_cancellation::{CancelledUnits, CancelledUnitsReleased, OrderLinesCancelled};
pub use notification::NotificationResendRequested;
pub use order_cancelled::{CancelReason, OrderCancelled};
pub use order_confirmed::{CaptureMode, OrderConfirmed};
pub use order_edit::{EditMoneyAction, OrderEdited};
pub use order_placed::{
    Address, Customer, Discount, OrderLine, OrderPlaced, PickupStore, RiskContext, Shipping, Totals,
};
pub use payment::{
    PaymentAuthorizationExpired, PaymentAuthorized, PaymentCaptureFailed, PaymentCaptured,
    PaymentChallengeRequired, PaymentDeclined, PaymentMethod, PaymentVoided,
};
pub use refund::{PaymentRefunded, RefundFailed, RefundKind, RefundRequested};
pub use returns::{
    InspectedLine, ReplacementLine, ReturnFee, ReturnFeeKind, ReturnInspected, ReturnLabelIssued,
    ReturnLine, ReturnReason, ReturnReceived, ReturnRefundDecided, ReturnRequested,
    ReturnResolution, ReturnRestocked,
};
pub use risk::{ReviewDecision, RiskAssessed, RiskDecision, RiskReason, RiskReviewResolved};
pub use routing::{
    CandidateLocation, RoutedShare, RoutingCandidate, RoutingDecided, RoutingOutcome,
    RoutingShipTo, TransitMean,
};
pub use settlement::{
    PayoutRecorded, SettlementLine, SettlementLineKind, SettlementReportImported,
};

pub use store_credit::StoreCreditIssued;

use crate::payload::Payload;
use crate::upcast;

/// Declares [`OrderEvent`] and [`OrderEventKind`] from one list of `Name = current version`, so
/// adding an event is one line here plus its payload type (and its schema file).
macro_rules! order_events {
    ($($name:ident = $version:literal),+ $(,)?) => {
        /// Every order event, in its current schema version.
        /// (`OrderPlaced` is by far the largest; events are moved rarely enough that boxing it
        /// buys nothing.)
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum OrderEvent {
            $($name($name),)+
        }

        /// The event type names, as stored in `event_type` and used in NATS subjects.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum OrderEventKind {
            $($name,)+
        }

        impl OrderEventKind {
            pub const ALL: &'static [OrderEventKind] = &[$(OrderEventKind::$name,)+];

            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$name => stringify!($name),)+
                }
            }
            /// The schema version new events of this kind are written in.
            pub fn current_version(self) -> i32 {
                match self {
                    $(Self::$name => $version,)+
                }
            }
        }

        impl OrderEvent {
            pub fn kind(&self) -> OrderEventKind {
                match self {
                    $(Self::$name(_) => OrderEventKind::$name,)+
                }
            }
        }

        /// Deserializes a current-version payload of `kind`.
        fn deserialize_current<'de, D: serde::Deserializer<'de>>(
            kind: OrderEventKind,
            payload: D,
        ) -> Result<OrderEvent, D::Error> {
            Ok(match kind {
                $(OrderEventKind::$name => {
                    OrderEvent::$name(serde::Deserialize::deserialize(payload)?)
                })+
            })
        }
    };
}

order_events! {
    OrderPlaced = 4,
    OrderCancelled = 1,
    RiskAssessed = 1,
    RiskReviewResolved = 1,
    InventoryReserved = 1,
    InventoryReservationFailed = 1,
    InventoryAllocated = 1,
    InventoryReleased = 1,
    PaymentChallengeRequired = 1,
    PaymentAuthorized = 1,
    PaymentDeclined = 1,
    PaymentCaptured = 1,
    PaymentVoided = 1,
    PaymentAuthorizationExpired = 1,
    OrderConfirmed = 1,
    RefundRequested = 1,
    PaymentRefunded = 1,
    RefundFailed = 1,
    ChargebackOpened = 1,
    ChargebackEvidenceSubmitted = 1,
    ChargebackWon = 1,
    ChargebackLost = 1,
    SettlementReportImported = 1,
    PayoutRecorded = 1,
    FulfillmentRouted = 1,
    FulfillmentSubmitted = 1,
    FulfillmentProgressed = 1,
    FulfillmentShortPicked = 1,
    FulfillmentLinesCancelled = 1,
    PickupReady = 1,
    PickupCompleted = 1,
    ShipmentCreated = 1,
    ShipmentTracked = 1,
    ShipmentExceptionHandled = 1,
    OrderClosed = 1,
    ReturnRequested = 1,
    ReturnLabelIssued = 1,
    ReturnReceived = 1,
    ReturnInspected = 1,
    ReturnRestocked = 1,
    ReturnRefundDecided = 1,
    OrderLinesCancelled = 1,
    CancelledUnitsReleased = 1,
    ExtraChargeRequested = 1,
    ExtraChargeCaptured = 1,
    ExtraChargeDeclined = 1,
    StoreCreditIssued = 1,
    ExchangeReplacementRequested = 1,
    OrderEdited = 1,
    PaymentCaptureFailed = 1,
    DeskEntryResolved = 1,
    NotificationResendRequested = 1,
    RoutingDecided = 1,
    CustomerErased = 1,
}

impl OrderEventKind {
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// A stored payload that cannot be turned into a current event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0}")]
    UnknownType(String),
    #[error("{event_type} has no schema version {version}")]
    UnknownVersion { event_type: String, version: i32 },
    #[error("{event_type} v{version} payload does not match its schema: {source}")]
    Payload {
        event_type: String,
        version: i32,
        source: serde_json::Error,
    },
}

impl OrderEvent {
    pub fn event_type(&self) -> &'static str {
        self.kind().name()
    }
    pub fn schema_version(&self) -> i32 {
        self.kind().current_version()
    }

    /// The payload as stored (current version), serialized once.
    pub fn to_payload(&self) -> Payload {
        Payload::serialize(self)
    }

    /// Decodes a stored payload of any known version into the current event type: one at the
    /// current version is read straight from its text; older ones go through a JSON tree and
    /// the upcasters.
    pub fn decode_payload(
        event_type: &str,
        schema_version: i32,
        payload: &Payload,
    ) -> Result<Self, DecodeError> {
        let kind = OrderEventKind::from_name(event_type)
            .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
        let version = kind.current_version();
        if schema_version != version {
            return Self::decode(event_type, schema_version, payload.to_value());
        }
        let mut reader = serde_json::Deserializer::from_str(payload.as_str());
        deserialize_current(kind, &mut reader)
            .and_then(|event| reader.end().map(|()| event))
            .map_err(|source| DecodeError::Payload {
                event_type: event_type.to_owned(),
                version,
                source,
            })
    }

    /// Decodes a stored payload of any known version into the current event type.
    pub fn decode(
        event_type: &str,
        schema_version: i32,
        payload: serde_json::Value,
    ) -> Result<Self, DecodeError> {
        let kind = OrderEventKind::from_name(event_type)
            .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
        let payload = upcast::to_current(kind, schema_version, payload)?;
        let version = kind.current_version();
        deserialize_current(kind, payload).map_err(|source| DecodeError::Payload {
            event_type: event_type.to_owned(),
            version,
            source,
        })
    }
}

#[cfg(test)]
mod tests;
