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
//! `{"$pii": "<key id>.<base64 nonce‖ciphertext of the field's JSON>", "erased": <stand-in>}`.
//! Opening puts the field's JSON back; when the key was erased it puts the stand-in instead,
//! a value of the field's own type (`"[erased]"`, `null`, an `.invalid` email), so an erased
//! event still decodes into its typed shape and every fold, projection and rebuild reads it.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use base64::Engine as _;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

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

/// Seals each present, non-null personal field of `payload` (of `event_type`) under `key`.
pub fn seal(event_type: &str, payload: &mut Value, key_id: Uuid, key: &SealingKey) {
    for (path, stand_in) in fields(event_type) {
        each_mut(payload, path, &mut |field| {
            if field.is_null() || is_marker(field) {
                return;
            }
            let plain = serde_json::to_string(field).unwrap_or_else(|_| "null".into());
            let sealed = base64::engine::general_purpose::STANDARD.encode(key.seal(key_id, &plain));
            let mut marker = Map::new();
            marker.insert(MARKER.into(), Value::String(format!("{key_id}.{sealed}")));
            marker.insert("erased".into(), stand_in.value());
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

/// A sealed field found in a payload's JSON text: where its marker object stands in the text,
/// the data key it was sealed under, and what it holds.
#[derive(Debug)]
pub struct SealedField<'a> {
    at: Range<usize>,
    key_id: Uuid,
    sealed: String,
    erased: Option<&'a RawValue>,
}

impl SealedField<'_> {
    pub fn key_id(&self) -> Uuid {
        self.key_id
    }

    /// The JSON text the field opens to: with its key when `keys` holds it live, as its stand-in
    /// when `keys` holds it erased (`None`).
    fn opened(&self, keys: &HashMap<Uuid, Option<SealingKey>>) -> Result<String, PiiError> {
        match keys.get(&self.key_id) {
            None => Err(PiiError::UnknownKey(self.key_id)),
            Some(None) => Ok(self.erased.map_or("null", RawValue::get).to_owned()),
            Some(Some(key)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&self.sealed)
                    .map_err(|_| PiiError::DoesNotOpen(self.key_id))?;
                let plain = key
                    .open(self.key_id, &bytes)
                    .map_err(|_| PiiError::DoesNotOpen(self.key_id))?;
                serde_json::from_str::<IgnoredAny>(&plain)
                    .map_err(|_| PiiError::DoesNotOpen(self.key_id))?;
                Ok(plain)
            }
        }
    }
}

/// The data keys `sealed` fields were sealed under, each once.
pub fn key_ids(sealed: &[SealedField<'_>]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = sealed.iter().map(SealedField::key_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The sealed fields of a payload of `event_type` given as JSON text, in text order. Only the
/// event kind's personal paths are looked at (an object with a marker key anywhere else is
/// data, not a marker), and only the objects on those paths are parsed: the rest of the text is
/// skipped over, not built into a tree.
pub fn sealed_fields<'a>(event_type: &str, text: &'a str) -> Vec<SealedField<'a>> {
    let paths: Vec<&[&str]> = fields(event_type).iter().map(|(path, _)| *path).collect();
    let mut found = Vec::new();
    values_at(text, &paths, &mut found);
    let mut sealed: Vec<SealedField<'a>> = found
        .into_iter()
        .filter_map(|value| {
            let (key_id, sealed, erased) = parse_marker(value)?;
            let start = value.as_ptr() as usize - text.as_ptr() as usize;
            Some(SealedField {
                at: start..start + value.len(),
                key_id,
                sealed,
                erased,
            })
        })
        .collect();
    sealed.sort_by_key(|field| field.at.start);
    sealed
}

/// The JSON text of each value at `paths` in `json` (a slice of one text: the values found are
/// slices of it too); absent fields, and steps into something that is not an object or array,
/// are skipped.
fn values_at<'a>(json: &'a str, paths: &[&[&str]], found: &mut Vec<&'a str>) {
    if paths.iter().any(|path| path.is_empty()) {
        found.push(json);
        return;
    }
    let rests = |step: &str| -> Vec<&[&str]> {
        paths
            .iter()
            .filter(|path| path[0] == step)
            .map(|path| &path[1..])
            .collect()
    };
    if paths.iter().all(|path| path[0] == EACH) {
        if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(json) {
            let rests = rests(EACH);
            for item in items {
                values_at(item.get(), &rests, found);
            }
        }
        return;
    }
    let Ok(object) = serde_json::from_str::<BTreeMap<String, &RawValue>>(json) else {
        return;
    };
    let mut steps: Vec<&str> = Vec::new();
    for path in paths {
        if !steps.contains(&path[0]) {
            steps.push(path[0]);
        }
    }
    for step in steps {
        if let Some(value) = object.get(step) {
            values_at(value.get(), &rests(step), found);
        }
    }
}

/// The key id, sealed text and stand-in of a marker object given as JSON text (`None`: it is
/// no marker).
fn parse_marker(json: &str) -> Option<(Uuid, String, Option<&RawValue>)> {
    if !json.starts_with('{') {
        return None;
    }
    let object = serde_json::from_str::<BTreeMap<String, &RawValue>>(json).ok()?;
    let sealed: String = serde_json::from_str(object.get(MARKER)?.get()).ok()?;
    let (key, body) = sealed.split_once('.')?;
    let key_id = Uuid::parse_str(key).ok()?;
    let body = body.to_owned();
    Some((key_id, body, object.get("erased").copied()))
}

/// `text` (a payload's JSON) with each of its `sealed` fields (from [`sealed_fields`] of that
/// text) opened in place. A key `keys` does not know is an error, as is a marker that does not
/// open under its key.
pub fn open(
    text: &str,
    sealed: &[SealedField<'_>],
    keys: &HashMap<Uuid, Option<SealingKey>>,
) -> Result<String, PiiError> {
    let mut opened = String::with_capacity(text.len());
    let mut copied = 0;
    for field in sealed {
        opened.push_str(&text[copied..field.at.start]);
        opened.push_str(&field.opened(keys)?);
        copied = field.at.end;
    }
    opened.push_str(&text[copied..]);
    Ok(opened)
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
        let text = payload.to_string();
        let sealed = sealed_fields(event_type, &text);
        *payload = serde_json::from_str(&open(&text, &sealed, keys)?).unwrap();
        Ok(())
    }

    #[test]
    fn a_payload_opens_from_text_spaced_and_ordered_as_postgres_writes_it() {
        let key_id = Uuid::now_v7();
        let mut payload = placed();
        seal("OrderPlaced", &mut payload, key_id, &key());
        // jsonb writes `{"a": 1, "b": 2}`: a space after each colon and comma. Writers may
        // also escape what needs no escape: every dot (all inside strings) spelled `\u002e`.
        let spaced = serde_json::to_string_pretty(&payload)
            .unwrap()
            .replace('.', "\\u002e");
        assert!(spaced.contains("\\u002e"), "{spaced}");
        let sealed = sealed_fields("OrderPlaced", &spaced);
        assert_eq!(sealed.len(), 8);
        let keys = HashMap::from([(key_id, Some(key()))]);
        let opened: Value = serde_json::from_str(&open(&spaced, &sealed, &keys).unwrap()).unwrap();
        assert_eq!(opened, placed());
    }

    #[test]
    fn a_marker_shaped_object_off_the_personal_paths_is_data_left_as_it_is() {
        let key_id = Uuid::now_v7();
        let mut payload = placed();
        seal("OrderPlaced", &mut payload, key_id, &key());
        let lookalike = payload["customer"]["name"].clone();
        payload["customer"]["customer_id"] = lookalike.clone();
        payload["metadata"] = json!({"note": lookalike});
        let text = payload.to_string();
        let keys = HashMap::from([(key_id, Some(key()))]);
        let opened: Value = serde_json::from_str(
            &open(&text, &sealed_fields("OrderPlaced", &text), &keys).unwrap(),
        )
        .unwrap();
        assert_eq!(opened["customer"]["name"], "Ada Lovelace");
        assert_eq!(opened["customer"]["customer_id"], lookalike);
        assert_eq!(opened["metadata"]["note"], lookalike);
        assert!(sealed_fields("OrderConfirmed", &text).is_empty());
        assert!(sealed_fields("OrderPlaced", "not json").is_empty());
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
        let ids: Vec<Uuid> = sealed_fields("OrderPlaced", &text)
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
}
