//! Event payloads, current versions. Each has a JSON Schema per version under `schemas/json/`;
//! `tests` below checks the checked-in files against these types.

mod order_cancelled;
mod order_placed;

use serde::Serialize;

pub use order_cancelled::{CancelReason, OrderCancelled};
pub use order_placed::{Address, Customer, Discount, OrderLine, OrderPlaced, Shipping, Totals};

use crate::upcast;

/// Every order event, in its current schema version.
/// (`OrderPlaced` is by far the largest; events are moved rarely enough that boxing it buys nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OrderEvent {
    OrderPlaced(OrderPlaced),
    OrderCancelled(OrderCancelled),
}

/// The event type names, as stored in `event_type` and used in NATS subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderEventKind {
    OrderPlaced,
    OrderCancelled,
}

impl OrderEventKind {
    pub const ALL: &'static [OrderEventKind] =
        &[OrderEventKind::OrderPlaced, OrderEventKind::OrderCancelled];

    pub fn name(self) -> &'static str {
        match self {
            Self::OrderPlaced => "OrderPlaced",
            Self::OrderCancelled => "OrderCancelled",
        }
    }
    /// The schema version new events of this kind are written in.
    pub fn current_version(self) -> i32 {
        match self {
            Self::OrderPlaced => 2,
            Self::OrderCancelled => 1,
        }
    }
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
    pub fn kind(&self) -> OrderEventKind {
        match self {
            Self::OrderPlaced(_) => OrderEventKind::OrderPlaced,
            Self::OrderCancelled(_) => OrderEventKind::OrderCancelled,
        }
    }
    pub fn event_type(&self) -> &'static str {
        self.kind().name()
    }
    pub fn schema_version(&self) -> i32 {
        self.kind().current_version()
    }

    /// The payload JSON as stored (current version).
    pub fn to_payload(&self) -> serde_json::Value {
        // Serializing these plain structs cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Like [`OrderEvent::decode`] for a borrowed payload: one already at the current version is
    /// read in place, without copying its tree first; older ones are copied and upcast.
    pub fn decode_ref(
        event_type: &str,
        schema_version: i32,
        payload: &serde_json::Value,
    ) -> Result<Self, DecodeError> {
        let kind = OrderEventKind::from_name(event_type)
            .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
        let version = kind.current_version();
        if schema_version != version {
            return Self::decode(event_type, schema_version, payload.clone());
        }
        let wrap = |source| DecodeError::Payload {
            event_type: event_type.to_owned(),
            version,
            source,
        };
        Ok(match kind {
            OrderEventKind::OrderPlaced => {
                Self::OrderPlaced(serde::Deserialize::deserialize(payload).map_err(wrap)?)
            }
            OrderEventKind::OrderCancelled => {
                Self::OrderCancelled(serde::Deserialize::deserialize(payload).map_err(wrap)?)
            }
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
        let wrap = |source| DecodeError::Payload {
            event_type: event_type.to_owned(),
            version,
            source,
        };
        Ok(match kind {
            OrderEventKind::OrderPlaced => {
                Self::OrderPlaced(serde_json::from_value(payload).map_err(wrap)?)
            }
            OrderEventKind::OrderCancelled => {
                Self::OrderCancelled(serde_json::from_value(payload).map_err(wrap)?)
            }
        })
    }
}

#[cfg(test)]
mod tests;
