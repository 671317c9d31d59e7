//! An event's payload as the JSON text it travels in, decoded straight into its typed event.
//!
//! Envelopes are read far more often than they are written: every view decodes every message
//! and the write side replays streams. Keeping the payload as text means reading an envelope
//! copies one string instead of building a `serde_json::Value` tree, and decoding reads the
//! typed event from that text in one pass. A `Value` is made only where a payload is edited
//! (personal fields sealed or opened) or shown as generic JSON.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON payload held as validated JSON text.
#[derive(Clone)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The payload of `value` (serialized once).
    pub fn from_value(value: &Value) -> Self {
        Self::serialize(value)
    }

    /// The payload `value` serializes to. Serializing the plain data types events and JSON
    /// trees are made of cannot fail; should one fail, the payload is `null`, which no event
    /// decodes from, so the fault surfaces where the payload is read.
    pub fn serialize<T: Serialize + ?Sized>(value: &T) -> Self {
        let raw = serde_json::value::to_raw_value(value)
            .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("null is JSON"));
        Self(raw)
    }

    /// The payload of stored JSON text; checked to be JSON (without building a tree).
    pub fn from_text(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The JSON text as a raw JSON value.
    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }

    /// The payload as a generic JSON tree (for editing or showing it).
    pub fn to_value(&self) -> Value {
        // Validated JSON text always parses.
        serde_json::from_str(self.as_str()).unwrap_or(Value::Null)
    }

    /// Reads the payload as `T`.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.as_str())
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self::from_value(&value)
    }
}

impl From<&Value> for Payload {
    fn from(value: &Value) -> Self {
        Self::from_value(value)
    }
}

/// Equal when the JSON values are equal: stored text may differ in spacing and key order from
/// the text the payload was written with (Postgres `jsonb` normalises both).
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        &self.to_value() == other
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_and_tree_round_trip() {
        let value = json!({"order_id": "o-1", "lines": [{"sku": "A", "qty": 2}]});
        let payload = Payload::from_value(&value);
        assert_eq!(payload.to_value(), value);
        assert_eq!(
            Payload::from_text(payload.as_str().to_owned()).unwrap(),
            payload
        );
    }

    #[test]
    fn equality_ignores_spacing_and_key_order() {
        let written = Payload::from_value(&json!({"a": 1, "b": [true, null]}));
        let stored = Payload::from_text(r#"{"b": [true, null], "a": 1}"#.to_owned()).unwrap();
        assert_eq!(written, stored);
        assert_ne!(
            written,
            Payload::from_value(&json!({"a": 2, "b": [true, null]}))
        );
    }

    #[test]
    fn text_that_is_not_json_is_refused() {
        assert!(Payload::from_text("{\"a\": ".to_owned()).is_err());
        assert!(Payload::from_text("not json".to_owned()).is_err());
    }

    #[test]
    fn an_envelope_body_carries_the_payload_verbatim() {
        #[derive(Serialize, Deserialize)]
        struct Body {
            kind: String,
            payload: Payload,
        }
        let body: Body =
            serde_json::from_str(r#"{"kind":"k","payload":{"x": [1, 2], "y": "z"}}"#).unwrap();
        assert_eq!(body.payload.as_str(), r#"{"x": [1, 2], "y": "z"}"#);
        let again = serde_json::to_string(&body).unwrap();
        assert_eq!(again, r#"{"kind":"k","payload":{"x": [1, 2], "y": "z"}}"#);
    }
}
