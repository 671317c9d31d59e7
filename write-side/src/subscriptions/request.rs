//! What an admin may ask of the subscriptions API, parsed once: a [`NewSubscription`] or a
//! [`SubscriptionPatch`] exists only valid, and every refusal names its field.

use serde_json::Value;
use waybill_schemas::OrderEventKind;

use crate::domain::FieldError;

/// Longest accepted endpoint URL.
pub const MAX_URL: usize = 2048;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 500;
/// Accepted length of a supplied secret.
pub const SECRET_LENGTH: std::ops::RangeInclusive<usize> = 16..=256;

/// Whether a subscription is delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Paused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(Self::Active),
            "paused" => Some(Self::Paused),
            _ => None,
        }
    }
}

/// Where a new subscription starts in the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Events recorded from now on (the default).
    Now,
    /// Every event the feed holds.
    Beginning,
}

/// A valid registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub url: String,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    pub description: Option<String>,
    /// `None`: Waybill generates one.
    pub secret: Option<String>,
    pub status: Status,
    pub start: Start,
}

/// A valid change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub secret: Option<String>,
    pub status: Option<Status>,
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: &str, detail: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            detail: detail.into(),
        });
    }
}

fn url(value: Option<&Value>, errors: &mut Errors) -> Option<String> {
    let Some(value) = value else {
        errors.add("url", "is required");
        return None;
    };
    let Some(raw) = value.as_str() else {
        errors.add("url", "must be a string");
        return None;
    };
    match check_url(raw) {
        Ok(()) => Some(raw.to_owned()),
        Err(detail) => {
            errors.add("url", detail);
            None
        }
    }
}

/// An absolute `http`/`https` URL with a host, no credentials, no fragment.
fn check_url(raw: &str) -> Result<(), &'static str> {
    if raw.len() > MAX_URL {
        return Err("must be at most 2048 characters");
    }
    let parsed = reqwest::Url::parse(raw).map_err(|_| "must be an absolute http or https URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name a host");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials (the signature authenticates Waybill)");
    }
    if parsed.fragment().is_some() {
        return Err("must not have a fragment");
    }
    Ok(())
}

fn event_types(value: &Value, errors: &mut Errors) -> Option<Vec<String>> {
    let Some(items) = value.as_array() else {
        errors.add("event_types", "must be an array of event type names");
        return None;
    };
    if items.len() > OrderEventKind::ALL.len() {
        errors.add("event_types", "names more types than there are");
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match item.as_str().and_then(OrderEventKind::from_name) {
            Some(kind) => {
                if !out.iter().any(|t| t == kind.name()) {
                    out.push(kind.name().to_owned());
                }
            }
            None => {
                ok = false;
                errors.add(
                    &format!("event_types[{i}]"),
                    "must be an event type name (OrderPlaced, OrderConfirmed, ...)",
                );
            }
        }
    }
    ok.then(|| {
        out.sort();
        out
    })
}

fn description(value: &Value, errors: &mut Errors) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        Value::String(s) if s.chars().count() <= MAX_DESCRIPTION => Some(Some(s.clone())),
        Value::String(_) => {
            errors.add("description", "must be at most 500 characters");
            None
        }
        _ => {
            errors.add("description", "must be a string or null");
            None
        }
    }
}

fn secret(value: &Value, errors: &mut Errors) -> Option<String> {
    match value.as_str() {
        Some(s) if SECRET_LENGTH.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) => {
            Some(s.to_owned())
        }
        _ => {
            errors.add(
                "secret",
                "must be 16-256 visible ASCII characters (or leave it out to get one)",
            );
            None
        }
    }
}

fn status(value: &Value, errors: &mut Errors) -> Option<Status> {
    let parsed = value.as_str().and_then(Status::parse);
    if parsed.is_none() {
        errors.add("status", "must be active or paused");
    }
    parsed
}

fn object(body: &Value) -> Result<&serde_json::Map<String, Value>, Vec<FieldError>> {
    body.as_object().ok_or_else(|| {
        vec![FieldError {
            field: "(body)".to_owned(),
            detail: "must be a JSON object".to_owned(),
        }]
    })
}

/// Reads a registration.
pub fn parse_new(body: &Value) -> Result<NewSubscription, Vec<FieldError>> {
    let body = object(body)?;
    let mut errors = Errors(Vec::new());
    let url = url(body.get("url"), &mut errors);
    let event_types = match body.get("event_types") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(v) => event_types(v, &mut errors),
    };
    let description = match body.get("description") {
        None => Some(None),
        Some(v) => description(v, &mut errors),
    };
    let secret = match body.get("secret") {
        None | Some(Value::Null) => Some(None),
        Some(v) => secret(v, &mut errors).map(Some),
    };
    let status = match body.get("status") {
        None => Some(Status::Active),
        Some(v) => status(v, &mut errors),
    };
    let start = match body.get("start").map(|v| v.as_str()) {
        None | Some(Some("now")) => Some(Start::Now),
        Some(Some("beginning")) => Some(Start::Beginning),
        Some(_) => {
            errors.add("start", "must be now or beginning");
            None
        }
    };
    match (url, event_types, description, secret, status, start) {
        (
            Some(url),
            Some(event_types),
            Some(description),
            Some(secret),
            Some(status),
            Some(start),
        ) if errors.0.is_empty() => Ok(NewSubscription {
            url,
            event_types,
            description,
            secret,
            status,
            start,
        }),
        _ => Err(errors.0),
    }
}

/// Reads a change.
pub fn parse_patch(body: &Value) -> Result<SubscriptionPatch, Vec<FieldError>> {
    let body = object(body)?;
    let mut errors = Errors(Vec::new());
    let mut patch = SubscriptionPatch::default();
    if let Some(v) = body.get("url") {
        patch.url = url(Some(v), &mut errors);
    }
    if let Some(v) = body.get("event_types") {
        patch.event_types = if v.is_null() {
            Some(Vec::new())
        } else {
            event_types(v, &mut errors)
        };
    }
    if let Some(v) = body.get("description") {
        patch.description = description(v, &mut errors);
    }
    if let Some(v) = body.get("secret") {
        patch.secret = secret(v, &mut errors);
    }
    if let Some(v) = body.get("status") {
        patch.status = status(v, &mut errors);
    }
    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    if patch == SubscriptionPatch::default() {
        return Err(vec![FieldError {
            field: "(body)".to_owned(),
            detail: "must change at least one of url, event_types, description, secret, status"
                .to_owned(),
        }]);
    }
    Ok(patch)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_registration_reads_with_defaults() {
        let new = parse_new(&json!({"url": "https://example.com/hooks"})).unwrap();
        assert_eq!(new.url, "https://example.com/hooks");
        assert!(new.event_types.is_empty());
        assert_eq!(new.status, Status::Active);
        assert_eq!(new.start, Start::Now);
        assert_eq!(new.secret, None);
        let new = parse_new(&json!({"url": "http://127.0.0.1:9/x",
            "event_types": ["OrderPlaced", "OrderConfirmed", "OrderPlaced"],
            "secret": "0123456789abcdef", "status": "paused", "start": "beginning"}))
        .unwrap();
        assert_eq!(new.event_types, vec!["OrderConfirmed", "OrderPlaced"]);
        assert_eq!(new.secret.as_deref(), Some("0123456789abcdef"));
        assert_eq!(new.start, Start::Beginning);
    }

    #[test]
    fn every_wrong_field_is_named() {
        assert_eq!(fields(parse_new(&json!({})).unwrap_err()), vec!["url"]);
        for bad in [
            "ftp://x/y",
            "/relative",
            "https://user:pw@x.com/",
            "https://x.com/#f",
            "nope",
        ] {
            assert_eq!(
                fields(parse_new(&json!({"url": bad})).unwrap_err()),
                vec!["url"],
                "{bad}"
            );
        }
        let long = format!("https://x.com/{}", "a".repeat(MAX_URL));
        assert_eq!(
            fields(parse_new(&json!({"url": long})).unwrap_err()),
            vec!["url"]
        );
        assert_eq!(
            fields(
                parse_new(
                    &json!({"url": "https://x.com", "event_types": ["OrderPlaced", "Nope"],
                    "secret": "short", "status": "gone", "start": 3, "description": 5})
                )
                .unwrap_err()
            ),
            vec!["event_types[1]", "description", "secret", "status", "start"]
        );
        assert_eq!(fields(parse_new(&json!([1])).unwrap_err()), vec!["(body)"]);
        assert_eq!(
            fields(
                parse_new(&json!({"url": "https://x.com", "secret": "abc def ghi jkl mno"}))
                    .unwrap_err()
            ),
            vec!["secret"]
        );
    }

    #[test]
    fn a_patch_must_change_something_valid() {
        assert_eq!(fields(parse_patch(&json!({})).unwrap_err()), vec!["(body)"]);
        assert_eq!(
            fields(parse_patch(&json!({"status": "on"})).unwrap_err()),
            vec!["status"]
        );
        let patch = parse_patch(&json!({"status": "paused", "description": null})).unwrap();
        assert_eq!(patch.status, Some(Status::Paused));
        assert_eq!(patch.description, Some(None));
        assert_eq!(patch.url, None);
    }
}
