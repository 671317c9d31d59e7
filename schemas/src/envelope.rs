//! The envelope every stored and published event travels in.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{DecodeError, OrderEvent};
use crate::payload::Payload;
use crate::values::Channel;

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    pub kind: ActorKind,
    /// The customer, agent, service or saga id, as the caller identified itself.
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Customer,
    Agent,
    Service,
    System,
}

impl Actor {
    pub fn service(id: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Service,
            id: id.into(),
        }
    }
    pub fn system(id: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::System,
            id: id.into(),
        }
    }
}

/// A stored event: its position in its stream, its metadata, and its payload as JSON in the
/// payload's own schema version (old versions are upcast by [`EventEnvelope::decode`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventEnvelope {
    /// UUIDv7; also the JetStream `Nats-Msg-Id`, so a re-publish is de-duplicated.
    pub event_id: Uuid,
    /// `order-<uuid>` for order streams.
    pub stream_id: String,
    /// 1-based and contiguous within the stream.
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    /// W3C trace context of the command that caused the event.
    pub traceparent: Option<String>,
    pub actor: Actor,
    pub channel: Option<Channel>,
    // The payload as JSON text, read straight into the typed event by `decode` (a plain comment:
    // the published schema of the envelope is unchanged, the payload is any JSON).
    #[schemars(with = "serde_json::Value")]
    pub payload: Payload,
}

impl EventEnvelope {
    /// The typed event, with old payload versions upcast to the current one.
    pub fn decode(&self) -> Result<OrderEvent, DecodeError> {
        OrderEvent::decode_payload(&self.event_type, self.schema_version, &self.payload)
    }
}

/// An event a command decided on, before the store gives it a place in its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event: OrderEvent,
    pub occurred_at: DateTime<Utc>,
}
