//! Which fields of which events are personal, and how they are sealed and opened in the
//! payload JSON (pure: no I/O, keys come in as values).
//!
//! Personal are the customer's identity and addresses, and every free text a person writes
//! about an order: cancellation notes, return and inspection notes, refund, charge and store
//! credit reasons, dispute evidence, a review's note, a resend's reason, a desk resolution's
//! note. Any of them can hold a name, a phone number or an address ("Ms Lovelace called from
//! +44 ..."), so all of them are sealed under the order's data key and erased with it.
//!
//! A sealed field keeps its place in the payload and becomes a marker object
//! `{"$pii": "<key id>#<index>", "erased": <stand-in>}`. The fields of one payload are sealed
//! together: the JSON array of their values is one ciphertext (base64 of nonce‖ciphertext),
//! kept in the marker of index 0 as `"sealed"`, so opening an event decrypts once however many
//! fields it has. Markers written before fields were sealed together hold their own ciphertext
//! (`{"$pii": "<key id>.<base64 nonce‖ciphertext of the field's JSON>", "erased": …}`) and
//! open as they always did. Opening puts each field's JSON back; when the key was erased it puts
//! the stand-in instead,
//! a value of the field's own type (`"[erased]"`, `null`, an `.invalid` email), so an erased
//! event still decodes into its typed shape and every fold, projection and rebuild reads it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::{MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;
use waybill_schemas::json_body::ObjectKey;
use waybill_schemas::Payload;

use super::PiiError;
use crate::subscriptions::seal::SealingKey;

/// The marker key, spelled once for [`MARKER`] and its quoted form.
macro_rules! marker {
    () => {
        "$pii"
    };
}
/// The key of a marker object.
pub const MARKER: &str = marker!();
/// [`MARKER`] as it appears in JSON text.
const MARKER_KEY: &str = concat!("\"", marker!(), "\"");
/// The key of a marker's stand-in.
const ERASED_KEY: &str = "erased";
/// The key of the marker holding the ciphertext of every field of its payload ([`seal`]).
const SEALED_KEY: &str = "sealed";
/// What a personal text field reads as once its customer was erased.
pub const ERASED_TEXT: &str = "[erased]";
/// What a personal email reads as once its customer was erased (still a valid [`Email`]).
///
/// [`Email`]: waybill_schemas::Email
pub const ERASED_EMAIL: &str = "erased@erased.invalid";

/// What one personal field reads as once erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StandIn {
    Text,
    Email,
    Null,
}

impl StandIn {
    fn value(self) -> Value {
        match self {
            Self::Text => Value::String(ERASED_TEXT.into()),
            Self::Email => Value::String(ERASED_EMAIL.into()),
            Self::Null => Value::Null,
        }
    }
}

/// A field's path in the payload; [`EACH`] steps into every element of an array.
type Field = (&'static [&'static str], StandIn);

/// The path step that means "every element of this array".
const EACH: &str = "*";

/// The personal fields of `OrderPlaced`: the customer's name, email and phone, both
/// addresses (all but the country, which tax, routing and reports read), and the buyer's IP
/// and device id.
const ORDER_PLACED: &[Field] = &[
    (&["customer", "name"], StandIn::Text),
    (&["customer", "email"], StandIn::Email),
    (&["customer", "phone"], StandIn::Null),
    (&["shipping_address", "name"], StandIn::Text),
    (&["shipping_address", "line1"], StandIn::Text),
    (&["shipping_address", "line2"], StandIn::Null),
    (&["shipping_address", "city"], StandIn::Text),
    (&["shipping_address", "region"], StandIn::Null),
    (&["shipping_address", "postal_code"], StandIn::Text),
    (&["billing_address", "name"], StandIn::Text),
    (&["billing_address", "line1"], StandIn::Text),
    (&["billing_address", "line2"], StandIn::Null),
    (&["billing_address", "city"], StandIn::Text),
    (&["billing_address", "region"], StandIn::Null),
    (&["billing_address", "postal_code"], StandIn::Text),
    (&["risk_context", "ip"], StandIn::Null),
    (&["risk_context", "device_id"], StandIn::Null),
];

/// `OrderEdited` carries the new shipping address when it changed.
const ORDER_EDITED: &[Field] = &[
    (&["shipping_address", "name"], StandIn::Text),
    (&["shipping_address", "line1"], StandIn::Text),
    (&["shipping_address", "line2"], StandIn::Null),
    (&["shipping_address", "city"], StandIn::Text),
    (&["shipping_address", "region"], StandIn::Null),
    (&["shipping_address", "postal_code"], StandIn::Text),
];

/// `ShipmentTracked` carries who signed for a delivery and a photo of the door.
const SHIPMENT_TRACKED: &[Field] = &[
    (&["proof", "received_by"], StandIn::Text),
    (&["proof", "photo_url"], StandIn::Null),
];

/// Free text an agent, a customer or finance wrote, optional in the event: erased to `null`.
const NOTE: &[Field] = &[(&["note"], StandIn::Null)];
/// Free text that every event of its kind has: erased to `[erased]`.
const REASON: &[Field] = &[(&["reason"], StandIn::Text)];
/// Notes per returned or inspected line.
const LINE_NOTES: &[Field] = &[(&["lines", EACH, "note"], StandIn::Null)];

/// The personal fields of `event_type` (empty: the event holds none).
fn fields(event_type: &str) -> &'static [Field] {
    match event_type {
        "OrderPlaced" => ORDER_PLACED,
        "OrderEdited" => ORDER_EDITED,
        "ShipmentTracked" => SHIPMENT_TRACKED,
        "OrderCancelled" | "OrderLinesCancelled" | "RiskReviewResolved" | "DeskEntryResolved" => {
            NOTE
        }
        "ReturnRequested" | "ReturnInspected" => LINE_NOTES,
        "RefundRequested" | "ExtraChargeRequested" | "StoreCreditIssued" => REASON,
        "NotificationResendRequested" => &[(&["reason"], StandIn::Null)],
        "ChargebackEvidenceSubmitted" => &[(&["text"], StandIn::Text)],
        _ => &[],
    }
}

/// True when a payload of `event_type`, as JSON text, can hold a sealed field: the event kind
/// holds personal data and the text names the marker key. Postgres `jsonb` and serde_json write
/// the key as is (neither escapes `$`), so a payload without it has nothing to open; a text
/// that quotes it in a value only costs a parse.
pub fn may_hold_markers(event_type: &str, text: &str) -> bool {
    is_personal(event_type) && text.contains(MARKER_KEY)
}

/// True when events of `event_type` can hold personal data.
pub fn is_personal(event_type: &str) -> bool {
    !fields(event_type).is_empty()
}

/// Who placed an order, as far as whose data key it seals under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacedBy {
    /// A channel customer id.
    Customer(String),
    /// A guest checkout, by its email (normalised: trimmed, lower case).
    Guest(waybill_schemas::Email),
    /// Neither (an event without the customer's email): a key of the order alone,
    /// `order:<stream id>`.
    Order(String),
}

/// Who placed the order of an `OrderPlaced` payload (opened, not sealed).
pub fn placed_by(stream_id: &str, payload: &Value) -> PlacedBy {
    let customer = payload.get("customer");
    if let Some(id) = customer
        .and_then(|c| c.get("customer_id"))
        .and_then(Value::as_str)
    {
        return PlacedBy::Customer(id.to_owned());
    }
    match customer
        .and_then(|c| c.get("email"))
        .and_then(Value::as_str)
        .map(waybill_schemas::Email::parse)
    {
        Some(Ok(email)) => PlacedBy::Guest(email),
        _ => PlacedBy::Order(format!("order:{stream_id}")),
    }
}

/// The key-store subject of a channel customer id.
pub fn customer_subject(customer_id: &str) -> String {
    format!("customer:{customer_id}")
}

/// The key-store subject of every guest checkout with one email: `guest:<keyed digest of the
/// normalised email>` (the key store computes the digest; the email itself is stored nowhere).
pub fn guest_subject(email_digest: &str) -> String {
    format!("guest:{email_digest}")
}

/// The order stream whose data key an event of `event_type` seals under: its own stream, or
/// for a desk resolution (stream `desk-<entry>`) the stream of the order the entry is about.
pub fn key_stream(event_type: &str, stream_id: &str, payload: &Value) -> Option<String> {
    if event_type == "DeskEntryResolved" {
        return payload
            .get("order_id")
            .and_then(Value::as_str)
            .and_then(|id| waybill_schemas::OrderId::parse(id).ok())
            .map(|id| id.stream_id());
    }
    Some(stream_id.to_owned())
}

/// Calls `f` on every value at `path` in `payload` (one, or one per array element where the
/// path says [`EACH`]); absent fields are skipped.
fn each_mut(payload: &mut Value, path: &[&str], f: &mut impl FnMut(&mut Value)) {
    let Some((step, rest)) = path.split_first() else {
        f(payload);
        return;
    };
    if *step == EACH {
        if let Some(items) = payload.as_array_mut() {
            for item in items {
                each_mut(item, rest, f);
            }
        }
    } else if let Some(next) = payload.as_object_mut().and_then(|o| o.get_mut(*step)) {
        each_mut(next, rest, f);
    }
}

/// [`each_mut`] for reading.
fn each<'a>(payload: &'a Value, path: &[&str], f: &mut impl FnMut(&'a Value)) {
    let Some((step, rest)) = path.split_first() else {
        f(payload);
        return;
    };
    if *step == EACH {
        if let Some(items) = payload.as_array() {
            for item in items {
                each(item, rest, f);
            }
        }
    } else if let Some(next) = payload.as_object().and_then(|o| o.get(*step)) {
        each(next, rest, f);
    }
}

/// Seals the present, non-null personal fields of `payload` (of `event_type`) under `key`, all
/// in one ciphertext: the JSON array of their values, in path order, is sealed once and kept in
/// the first field's marker (`"sealed"`); every field's marker names its place in that array
/// (`"<key id>#<index>"`). A payload that already holds a marker has its other fields sealed
/// one by one ([`seal_each`]), so that no two arrays of one key ever share a payload.
pub fn seal(event_type: &str, payload: &mut Value, key_id: Uuid, key: &SealingKey) {
    let mut values: Vec<&Value> = Vec::new();
    let mut marked = false;
    for (path, _) in fields(event_type) {
        each(payload, path, &mut |field| {
            if is_marker(field) {
                marked = true;
            } else if !field.is_null() {
                values.push(field);
            }
        });
    }
    if marked {
        seal_each(event_type, payload, key_id, key);
        return;
    }
    if values.is_empty() {
        return;
    }
    // A tree of JSON values always serializes.
    let plain = serde_json::to_string(&values).unwrap_or_else(|_| "[]".into());
    let mut sealed = Some(BASE64.encode(key.seal(key_id, &plain)));
    let mut index = 0usize;
    for (path, stand_in) in fields(event_type) {
        each_mut(payload, path, &mut |field| {
            if field.is_null() {
                return;
            }
            let mut marker = Map::new();
            marker.insert(MARKER.into(), Value::String(format!("{key_id}#{index}")));
            marker.insert(ERASED_KEY.into(), stand_in.value());
            if let Some(sealed) = sealed.take() {
                marker.insert(SEALED_KEY.into(), Value::String(sealed));
            }
            index += 1;
            *field = Value::Object(marker);
        });
    }
}

/// Seals each present, non-null personal field of `payload` that is no marker yet in a
/// ciphertext of its own (`"<key id>.<base64 nonce‖ciphertext of the field's JSON>"`): how
/// every field was sealed before [`seal`] sealed them together. Such markers open as before.
pub fn seal_each(event_type: &str, payload: &mut Value, key_id: Uuid, key: &SealingKey) {
    for (path, stand_in) in fields(event_type) {
        each_mut(payload, path, &mut |field| {
            if field.is_null() || is_marker(field) {
                return;
            }
            let plain = serde_json::to_string(field).unwrap_or_else(|_| "null".into());
            let sealed = BASE64.encode(key.seal(key_id, &plain));
            let mut marker = Map::new();
            marker.insert(MARKER.into(), Value::String(format!("{key_id}.{sealed}")));
            marker.insert(ERASED_KEY.into(), stand_in.value());
            *field = Value::Object(marker);
        });
    }
}

/// Puts each personal field's stand-in in place (an event of a customer erased before it was
/// stored: nothing personal is written at all).
pub fn erase(event_type: &str, payload: &mut Value) {
    for (path, stand_in) in fields(event_type) {
        each_mut(payload, path, &mut |field| {
            if !field.is_null() {
                *field = stand_in.value();
            }
        });
    }
}

fn is_marker(value: &Value) -> bool {
    value.as_object().is_some_and(|o| o.contains_key(MARKER))
}

/// The text of each personal field of an opened `payload` (of `event_type`), added to `into`
/// once: what an erasure looks for in the copies it scrubs.
pub fn personal_texts(event_type: &str, payload: &Value, into: &mut Vec<String>) {
    for (path, _) in fields(event_type) {
        each(payload, path, &mut |field| {
            if let Value::String(text) = field {
                let kept = text.trim().is_empty() || text == ERASED_TEXT || text == ERASED_EMAIL;
                if !kept && !into.contains(text) {
                    into.push(text.clone());
                }
            }
        });
    }
}

/// What a marker holds of its field.
#[derive(Debug)]
enum Body<'a> {
    /// The field's own ciphertext (base64 of nonce‖ciphertext of its JSON): [`seal_each`].
    Own(Cow<'a, str>),
    /// Element `index` of the payload's array sealed under the same key ([`seal`]); the marker
    /// of element 0 holds that array's ciphertext (`sealed`).
    Shared {
        index: usize,
        sealed: Option<Cow<'a, str>>,
    },
}

/// A sealed field found in a payload's JSON text: the data key it was sealed under, what its
/// marker holds, and its stand-in.
#[derive(Debug)]
pub struct SealedField<'a> {
    key_id: Uuid,
    body: Body<'a>,
    erased: Option<&'a RawValue>,
}

impl SealedField<'_> {
    pub fn key_id(&self) -> Uuid {
        self.key_id
    }
}

/// The entries of a JSON object in text order, each value kept as its text.
struct Entries<'a>(Vec<(ObjectKey<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// A marker object's fields, as its text holds them.
#[derive(Deserialize)]
struct MarkerText<'a> {
    #[serde(rename = "$pii", borrow)]
    pii: Cow<'a, str>,
    #[serde(borrow, default)]
    erased: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sealed: Option<Cow<'a, str>>,
}

/// A payload's JSON text as far as opening it needs: the objects and arrays on the event kind's
/// personal paths taken apart down to their sealed fields, everything else kept as its text.
#[derive(Debug)]
enum Node<'a> {
    Text(&'a RawValue),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
    Array(Vec<Node<'a>>),
    /// The sealed field at this index of [`SealedPayload::fields`].
    Field(usize),
}

/// The sealed fields of one payload, and where they stand in it ([`sealed_fields`]).
#[derive(Debug)]
pub struct SealedPayload<'a> {
    tree: Node<'a>,
    fields: Vec<SealedField<'a>>,
}

impl SealedPayload<'_> {
    /// True when the payload holds no sealed field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The data keys its fields were sealed under, each once.
    pub fn key_ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self.fields.iter().map(SealedField::key_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The payload with each sealed field opened: with its key when `keys` holds it live, as
    /// its stand-in when `keys` holds it erased (`None`). A key `keys` does not know is an
    /// error, as is a marker that does not open under its key. The payload is written from its
    /// parts, which are JSON already: it is not parsed again.
    pub fn open(&self, keys: &HashMap<Uuid, Option<SealingKey>>) -> Result<Payload, PiiError> {
        let live = |key_id: Uuid| match keys.get(&key_id) {
            None => Err(PiiError::UnknownKey(key_id)),
            Some(key) => Ok(key.as_ref()),
        };
        // Each ciphertext opened once: the array of the fields sealed together (one per key),
        // and the text of each field sealed on its own.
        let mut arrays: Vec<(Uuid, String)> = Vec::new();
        let mut owns: Vec<(usize, Uuid, String)> = Vec::new();
        for (at, field) in self.fields.iter().enumerate() {
            let Some(key) = live(field.key_id)? else {
                continue;
            };
            match &field.body {
                Body::Own(sealed) => {
                    owns.push((at, field.key_id, open_text(key, field.key_id, sealed)?));
                }
                Body::Shared {
                    sealed: Some(sealed),
                    ..
                } => {
                    if arrays.iter().any(|(id, _)| *id == field.key_id) {
                        return Err(PiiError::DoesNotOpen(field.key_id));
                    }
                    arrays.push((field.key_id, open_text(key, field.key_id, sealed)?));
                }
                Body::Shared { sealed: None, .. } => {}
            }
        }
        let arrays: Vec<(Uuid, Vec<&RawValue>)> = arrays
            .iter()
            .map(|(key_id, plain)| Ok((*key_id, parse_plain(*key_id, plain)?)))
            .collect::<Result<_, PiiError>>()?;
        let owns: Vec<(usize, &RawValue)> = owns
            .iter()
            .map(|(at, key_id, plain)| Ok((*at, parse_plain(*key_id, plain)?)))
            .collect::<Result<_, PiiError>>()?;
        let mut values: Vec<Option<&RawValue>> = Vec::with_capacity(self.fields.len());
        for (at, field) in self.fields.iter().enumerate() {
            let does_not_open = || PiiError::DoesNotOpen(field.key_id);
            let value = match (live(field.key_id)?, &field.body) {
                (None, _) => field.erased,
                (Some(_), Body::Own(_)) => owns.iter().find(|(own, _)| *own == at).map(|o| o.1),
                (Some(_), Body::Shared { index, .. }) => Some(
                    arrays
                        .iter()
                        .find(|(id, _)| *id == field.key_id)
                        .and_then(|(_, array)| array.get(*index).copied())
                        .ok_or_else(does_not_open)?,
                ),
            };
            values.push(value);
        }
        Ok(Payload::serialize(&Opened {
            node: &self.tree,
            values: &values,
        }))
    }
}

/// The JSON text `sealed` (base64 of nonce‖ciphertext) opens to under `key`.
fn open_text(key: &SealingKey, key_id: Uuid, sealed: &str) -> Result<String, PiiError> {
    let bytes = BASE64
        .decode(sealed)
        .map_err(|_| PiiError::DoesNotOpen(key_id))?;
    key.open(key_id, &bytes)
        .map_err(|_| PiiError::DoesNotOpen(key_id))
}

/// The JSON an opened ciphertext of `key_id` holds, read from its text.
fn parse_plain<'p, T: Deserialize<'p>>(key_id: Uuid, plain: &'p str) -> Result<T, PiiError> {
    serde_json::from_str(plain).map_err(|_| PiiError::DoesNotOpen(key_id))
}

/// A [`Node`] written out with its fields' opened values (`None`: `null`).
struct Opened<'t, 'a> {
    node: &'t Node<'a>,
    values: &'t [Option<&'t RawValue>],
}

impl Serialize for Opened<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let at = |node| Opened {
            node,
            values: self.values,
        };
        match self.node {
            Node::Text(text) => text.serialize(serializer),
            Node::Field(index) => self
                .values
                .get(*index)
                .copied()
                .flatten()
                .serialize(serializer),
            Node::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&at(item))?;
                }
                seq.end()
            }
            Node::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key.as_ref(), &at(value))?;
                }
                map.end()
            }
        }
    }
}

/// The sealed fields of a payload of `event_type` given as JSON text. Only the event kind's
/// personal paths are looked at (an object with a marker key anywhere else is data, not a
/// marker), and only the objects on those paths are taken apart: the rest of the text is
/// skipped over, not built into a tree.
pub fn sealed_fields<'a>(event_type: &str, payload: &'a Payload) -> SealedPayload<'a> {
    let paths: Vec<&[&str]> = fields(event_type).iter().map(|(path, _)| *path).collect();
    let mut fields = Vec::new();
    let json = payload.as_raw();
    let tree = node(json, &paths, &mut fields).unwrap_or(Node::Text(json));
    SealedPayload { tree, fields }
}

/// `json` taken apart along `paths` down to the sealed fields at their ends, adding those to
/// `fields`; `None` when no sealed field is under it (then it is written out as its text).
/// Absent fields, and steps into something that is not an object or array, are skipped.
fn node<'a>(
    json: &'a RawValue,
    paths: &[&[&str]],
    fields: &mut Vec<SealedField<'a>>,
) -> Option<Node<'a>> {
    if paths.iter().any(|path| path.is_empty()) {
        let field = parse_marker(json.get())?;
        fields.push(field);
        return Some(Node::Field(fields.len() - 1));
    }
    let rests = |step: &str| -> Vec<&[&str]> {
        paths
            .iter()
            .filter(|path| path[0] == step)
            .map(|path| &path[1..])
            .collect()
    };
    if paths.iter().all(|path| path[0] == EACH) {
        let items = serde_json::from_str::<Vec<&RawValue>>(json.get()).ok()?;
        let rests = rests(EACH);
        let before = fields.len();
        let items: Vec<Node<'a>> = items
            .into_iter()
            .map(|item| node(item, &rests, fields).unwrap_or(Node::Text(item)))
            .collect();
        return (fields.len() > before).then_some(Node::Array(items));
    }
    let Entries(entries) = serde_json::from_str(json.get()).ok()?;
    let before = fields.len();
    let entries: Vec<(Cow<'a, str>, Node<'a>)> = entries
        .into_iter()
        .map(|(ObjectKey(key), value)| {
            let taken = paths
                .iter()
                .any(|path| path[0] == key)
                .then(|| node(value, &rests(&key), fields))
                .flatten();
            (key, taken.unwrap_or(Node::Text(value)))
        })
        .collect();
    (fields.len() > before).then_some(Node::Object(entries))
}

/// The sealed field a marker object given as JSON text holds (`None`: it is no marker).
fn parse_marker(json: &str) -> Option<SealedField<'_>> {
    if !json.starts_with('{') {
        return None;
    }
    let marker: MarkerText<'_> = serde_json::from_str(json).ok()?;
    let erased = marker.erased;
    if let Some((key, index)) = marker.pii.split_once('#') {
        let key_id = Uuid::parse_str(key).ok()?;
        let index = index.parse().ok()?;
        return Some(SealedField {
            key_id,
            body: Body::Shared {
                index,
                sealed: marker.sealed,
            },
            erased,
        });
    }
    let dot = marker.pii.find('.')?;
    let key_id = Uuid::parse_str(&marker.pii[..dot]).ok()?;
    let body = match marker.pii {
        Cow::Borrowed(pii) => Cow::Borrowed(&pii[dot + 1..]),
        Cow::Owned(pii) => Cow::Owned(pii[dot + 1..].to_owned()),
    };
    Some(SealedField {
        key_id,
        body: Body::Own(body),
        erased,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn placed() -> Value {
        json!({
            "customer": {"customer_id": "c-1", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000"},
            "shipping_address": {"name": "Ada Lovelace", "line1": "12 St James's Square", "line2": null, "city": "London", "region": null, "postal_code": "SW1Y 4JH", "country": "GB"},
            "billing_address": null,
            "risk_context": {"ip": "203.0.113.9", "device_id": null},
            "totals": {"grand_total": {"minor": 1000, "currency": "EUR"}}
        })
    }

    fn key() -> SealingKey {
        SealingKey::parse(&"ab".repeat(32)).unwrap()
    }

    /// Opens the markers of a tree the way a reader does: through its text.
    fn open_tree(
        event_type: &str,
        payload: &mut Value,
        keys: &HashMap<Uuid, Option<SealingKey>>,
    ) -> Result<(), PiiError> {
        let text = Payload::from_value(payload);
        *payload = sealed_fields(event_type, &text).open(keys)?.to_value();
        Ok(())
    }

    /// The payload of JSON `text`.
    fn payload_text(text: &str) -> Payload {
        Payload::from_text(text.to_owned()).unwrap()
    }

    #[test]
    fn a_payload_opens_from_text_spaced_and_ordered_as_postgres_writes_it() {
        let key_id = Uuid::now_v7();
        let mut payload = placed();
        seal("OrderPlaced", &mut payload, key_id, &key());
        // jsonb writes `{"a": 1, "b": 2}`: a space after each colon and comma. Writers may
        // also escape what needs no escape: every dot (all inside strings) spelled `\u002e`,
        // every slash (base64 has them) `\/`, and a letter of a key `\u006f`.
        let spaced = serde_json::to_string_pretty(&payload)
            .unwrap()
            .replace('.', "\\u002e")
            .replace('/', "\\/")
            .replace("\"customer\"", "\"cust\\u006fmer\"");
        for escaped in ["\\u002e", "\\/", "\\u006f"] {
            assert!(spaced.contains(escaped), "{spaced}");
        }
        let spaced = payload_text(&spaced);
        let sealed = sealed_fields("OrderPlaced", &spaced);
        assert_eq!(sealed.fields.len(), 8);
        let keys = HashMap::from([(key_id, Some(key()))]);
        assert_eq!(sealed.open(&keys).unwrap().to_value(), placed());
    }

    #[test]
    fn a_marker_shaped_object_off_the_personal_paths_is_data_left_as_it_is() {
        let key_id = Uuid::now_v7();
        let mut payload = placed();
        seal("OrderPlaced", &mut payload, key_id, &key());
        let lookalike = payload["customer"]["name"].clone();
        payload["customer"]["customer_id"] = lookalike.clone();
        payload["metadata"] = json!({"note": lookalike});
        let text = Payload::from_value(&payload);
        let keys = HashMap::from([(key_id, Some(key()))]);
        let opened = sealed_fields("OrderPlaced", &text)
            .open(&keys)
            .unwrap()
            .to_value();
        assert_eq!(opened["customer"]["name"], "Ada Lovelace");
        assert_eq!(opened["customer"]["customer_id"], lookalike);
        assert_eq!(opened["metadata"]["note"], lookalike);
        assert!(sealed_fields("OrderConfirmed", &text).is_empty());
        assert!(sealed_fields("OrderPlaced", &payload_text("\"no object\"")).is_empty());
    }

    #[test]
    fn only_a_personal_payload_whose_text_names_the_marker_key_may_hold_markers() {
        let clear = placed().to_string();
        let mut sealed = placed();
        seal("OrderPlaced", &mut sealed, Uuid::now_v7(), &key());
        let sealed = sealed.to_string();
        assert!(may_hold_markers("OrderPlaced", &sealed));
        assert!(!may_hold_markers("OrderPlaced", &clear));
        assert!(!may_hold_markers("OrderConfirmed", &sealed));
    }

    #[test]
    fn sealed_personal_fields_hold_no_plaintext_and_open_back_to_the_original() {
        let key_id = Uuid::now_v7();
        let mut payload = placed();
        seal("OrderPlaced", &mut payload, key_id, &key());
        let text = payload.to_string();
        for personal in [
            "Ada",
            "ada@example.com",
            "7946",
            "James",
            "London",
            "SW1Y",
            "203.0.113",
        ] {
            assert!(!text.contains(personal), "{personal} left in {text}");
        }
        assert!(text.contains("\"GB\"") && text.contains("c-1") && text.contains("1000"));
        let text = Payload::from_value(&payload);
        let ids: Vec<Uuid> = sealed_fields("OrderPlaced", &text)
            .fields
            .iter()
            .map(SealedField::key_id)
            .collect();
        assert_eq!(ids, vec![key_id; 8], "one per sealed, non-null field");
        let keys = HashMap::from([(key_id, Some(key()))]);
        open_tree("OrderPlaced", &mut payload, &keys).unwrap();
        assert_eq!(payload, placed());
        let mut texts = Vec::new();
        personal_texts("OrderPlaced", &payload, &mut texts);
        assert_eq!(
            texts,
            [
                "Ada Lovelace",
                "ada@example.com",
                "+44 20 7946 0000",
                "12 St James's Square",
                "London",
                "SW1Y 4JH",
                "203.0.113.9"
            ]
        );
    }

    #[test]
    fn an_erased_key_opens_every_field_as_its_typed_stand_in() {
        let key_id = Uuid::now_v7();
        let mut payload = placed();
        seal("OrderPlaced", &mut payload, key_id, &key());
        open_tree(
            "OrderPlaced",
            &mut payload,
            &HashMap::from([(key_id, None)]),
        )
        .unwrap();
        assert_eq!(payload["customer"]["name"], ERASED_TEXT);
        assert_eq!(payload["customer"]["email"], ERASED_EMAIL);
        assert_eq!(payload["customer"]["phone"], Value::Null);
        assert_eq!(payload["shipping_address"]["postal_code"], ERASED_TEXT);
        assert_eq!(payload["shipping_address"]["country"], "GB");
        assert_eq!(payload["risk_context"]["ip"], Value::Null);
        assert!(waybill_schemas::Email::parse(ERASED_EMAIL).is_ok());
        let mut direct = placed();
        erase("OrderPlaced", &mut direct);
        assert_eq!(direct, payload);
    }

    #[test]
    fn a_marker_under_an_unknown_or_wrong_key_is_an_error_not_an_erasure() {
        let key_id = Uuid::now_v7();
        let mut payload = placed();
        seal("OrderPlaced", &mut payload, key_id, &key());
        let mut unknown = payload.clone();
        assert!(open_tree("OrderPlaced", &mut unknown, &HashMap::new()).is_err());
        let wrong = SealingKey::parse(&"cd".repeat(32)).unwrap();
        let keys = HashMap::from([(key_id, Some(wrong))]);
        assert!(matches!(
            open_tree("OrderPlaced", &mut payload, &keys),
            Err(PiiError::DoesNotOpen(_))
        ));
    }

    #[test]
    fn customers_seal_under_their_id_and_guests_under_their_email() {
        assert_eq!(
            placed_by("order-1", &placed()),
            PlacedBy::Customer("c-1".into())
        );
        let mut guest = placed();
        guest["customer"]["customer_id"] = Value::Null;
        guest["customer"]["email"] = json!("  Ada@Example.COM ");
        assert_eq!(
            placed_by("order-1", &guest),
            PlacedBy::Guest(waybill_schemas::Email::parse("ada@example.com").unwrap())
        );
        guest["customer"]["email"] = json!({"$pii": "sealed already"});
        assert_eq!(
            placed_by("order-1", &guest),
            PlacedBy::Order("order:order-1".into())
        );
        assert!(is_personal("ShipmentTracked") && !is_personal("PaymentCaptured"));
    }

    #[test]
    fn free_text_notes_and_reasons_are_sealed_and_erase_to_their_stand_ins() {
        let key_id = Uuid::now_v7();
        let cases = [
            (
                "OrderCancelled",
                json!({"reason": "customer_request", "note": "Ada Lovelace rang"}),
            ),
            (
                "RefundRequested",
                json!({"amount": 1, "reason": "Ada Lovelace rang"}),
            ),
            (
                "ChargebackEvidenceSubmitted",
                json!({"text": "signed by Ada Lovelace"}),
            ),
            (
                "NotificationResendRequested",
                json!({"kind": "shipped", "reason": "Ada Lovelace rang"}),
            ),
            (
                "ReturnRequested",
                json!({"lines": [{"line_no": 1, "note": "Ada Lovelace's size"}, {"line_no": 2, "note": null}]}),
            ),
            (
                "DeskEntryResolved",
                json!({"order_id": null, "note": "called Ada Lovelace"}),
            ),
        ];
        for (event_type, original) in cases {
            let mut payload = original.clone();
            seal(event_type, &mut payload, key_id, &key());
            assert!(
                !payload.to_string().contains("Lovelace"),
                "{event_type}: {payload}"
            );
            let mut texts = Vec::new();
            let mut opened = payload.clone();
            open_tree(
                event_type,
                &mut opened,
                &HashMap::from([(key_id, Some(key()))]),
            )
            .unwrap();
            assert_eq!(opened, original, "{event_type}");
            personal_texts(event_type, &opened, &mut texts);
            assert_eq!(texts.len(), 1, "{event_type}: {texts:?}");
            open_tree(event_type, &mut payload, &HashMap::from([(key_id, None)])).unwrap();
            let mut direct = original.clone();
            erase(event_type, &mut direct);
            assert_eq!(payload, direct, "{event_type}");
            assert!(!payload.to_string().contains("Lovelace"), "{event_type}");
        }
        let mut erased = json!({"amount": 1, "reason": "x"});
        erase("RefundRequested", &mut erased);
        assert_eq!(erased["reason"], ERASED_TEXT);
        let mut erased = json!({"lines": [{"note": "x"}, {"note": null}]});
        erase("ReturnInspected", &mut erased);
        assert_eq!(erased, json!({"lines": [{"note": null}, {"note": null}]}));
    }

    #[test]
    fn a_desk_resolution_seals_under_the_key_of_the_order_it_is_about() {
        let order =
            waybill_schemas::OrderId::parse("0190b3c4-0000-7000-8000-000000000001").unwrap();
        assert_eq!(
            key_stream(
                "DeskEntryResolved",
                "desk-1",
                &json!({"order_id": order.to_string()})
            ),
            Some(order.stream_id())
        );
        assert_eq!(
            key_stream("DeskEntryResolved", "desk-1", &json!({"order_id": null})),
            None
        );
        assert_eq!(
            key_stream("RefundRequested", "order-x", &json!({})),
            Some("order-x".to_owned())
        );
    }

    /// The marker objects of a sealed `OrderPlaced` payload, in path order.
    fn markers(payload: &Value) -> Vec<Value> {
        let mut found = Vec::new();
        for (path, _) in ORDER_PLACED {
            each(payload, path, &mut |field| {
                if is_marker(field) {
                    found.push(field.clone());
                }
            });
        }
        found
    }

    #[test]
    fn every_personal_field_of_a_payload_is_sealed_in_one_ciphertext() {
        let key_id = Uuid::now_v7();
        let mut payload = placed();
        seal("OrderPlaced", &mut payload, key_id, &key());
        let markers = markers(&payload);
        let refs: Vec<&str> = markers
            .iter()
            .map(|m| m[MARKER].as_str().unwrap())
            .collect();
        let expected: Vec<String> = (0..8).map(|i| format!("{key_id}#{i}")).collect();
        assert_eq!(refs, expected);
        let holders: Vec<&Value> = markers
            .iter()
            .filter(|m| m.get(SEALED_KEY).is_some())
            .collect();
        assert_eq!(holders.len(), 1, "one ciphertext: {markers:?}");
        assert!(markers[0].get(SEALED_KEY).is_some());
        let sealed = BASE64
            .decode(markers[0][SEALED_KEY].as_str().unwrap())
            .unwrap();
        let array: Vec<Value> =
            serde_json::from_str(&key().open(key_id, &sealed).unwrap()).unwrap();
        assert_eq!(array[0], "Ada Lovelace");
        assert_eq!(array[7], "203.0.113.9");
        assert_eq!(markers[1][ERASED_KEY], ERASED_EMAIL);
    }

    #[test]
    fn fields_sealed_one_by_one_before_open_as_they_always_did() {
        let key_id = Uuid::now_v7();
        let mut payload = placed();
        seal_each("OrderPlaced", &mut payload, key_id, &key());
        let markers = markers(&payload);
        assert_eq!(markers.len(), 8);
        assert!(markers.iter().all(|m| m.get(SEALED_KEY).is_none()
            && m[MARKER]
                .as_str()
                .unwrap()
                .starts_with(&format!("{key_id}."))));
        let mut opened = payload.clone();
        open_tree(
            "OrderPlaced",
            &mut opened,
            &HashMap::from([(key_id, Some(key()))]),
        )
        .unwrap();
        assert_eq!(opened, placed());
        open_tree(
            "OrderPlaced",
            &mut payload,
            &HashMap::from([(key_id, None)]),
        )
        .unwrap();
        let mut erased = placed();
        erase("OrderPlaced", &mut erased);
        assert_eq!(payload, erased);
    }

    #[test]
    fn a_payload_already_holding_a_marker_has_its_other_fields_sealed_one_by_one() {
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        let other = SealingKey::parse(&"cd".repeat(32)).unwrap();
        let mut payload = placed();
        let mut name = json!({"customer": {"name": "Ada Lovelace"}});
        seal("OrderPlaced", &mut name, first, &key());
        payload["customer"]["name"] = name["customer"]["name"].clone();
        seal("OrderPlaced", &mut payload, second, &other);
        let refs: Vec<String> = markers(&payload)
            .iter()
            .map(|m| m[MARKER].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(refs[0], format!("{first}#0"));
        assert!(refs[1..]
            .iter()
            .all(|r| r.starts_with(&format!("{second}."))));
        let keys = HashMap::from([(first, Some(key())), (second, Some(other))]);
        open_tree("OrderPlaced", &mut payload, &keys).unwrap();
        assert_eq!(payload, placed());
    }

    #[test]
    fn markers_rearranged_in_the_text_do_not_open() {
        let key_id = Uuid::now_v7();
        let keys = HashMap::from([(key_id, Some(key()))]);
        let mut sealed = placed();
        seal("OrderPlaced", &mut sealed, key_id, &key());
        // The holder of the ciphertext copied onto a second field: two ciphertexts of one key.
        let mut twice = sealed.clone();
        twice["customer"]["email"] = twice["customer"]["name"].clone();
        // A field pointing past the end of the array.
        let mut past = sealed.clone();
        past["customer"]["email"][MARKER] = json!(format!("{key_id}#8"));
        // The ciphertext gone.
        let mut lost = sealed.clone();
        lost["customer"]["name"]
            .as_object_mut()
            .unwrap()
            .remove(SEALED_KEY);
        for (what, mut payload) in [("twice", twice), ("past", past), ("lost", lost)] {
            assert!(
                matches!(
                    open_tree("OrderPlaced", &mut payload, &keys),
                    Err(PiiError::DoesNotOpen(id)) if id == key_id
                ),
                "{what}"
            );
        }
        // Erased, the stand-ins need no ciphertext at all.
        let mut lost = sealed.clone();
        lost["customer"]["name"]
            .as_object_mut()
            .unwrap()
            .remove(SEALED_KEY);
        open_tree("OrderPlaced", &mut lost, &HashMap::from([(key_id, None)])).unwrap();
        assert_eq!(lost["customer"]["name"], ERASED_TEXT);
    }
}
