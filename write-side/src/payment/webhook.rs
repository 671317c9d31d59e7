//! Gateway webhooks: the signature both ends compute, its verification, and the typed events.
//!
//! The gateway POSTs `{id, type, created_at, data}` with the header
//! `Waybill-Gateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
//! A receiver verifies the header against the raw bytes it received (before parsing), refuses
//! timestamps outside its tolerance (replays of old deliveries), then parses. Event ids are
//! stable across redeliveries, so a receiver de-duplicates on [`GatewayEvent::id`].

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;
use waybill_schemas::{Money, OrderId};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "waybill-gateway-signature";

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("signature header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("signature timestamp {timestamp} is more than {tolerance_secs} s from now")]
    Stale { timestamp: i64, tolerance_secs: u64 },
    #[error("no signature in the header matches the body")]
    BadSignature,
    #[error("webhook body is not a gateway event: {0}")]
    MalformedBody(String),
}

/// The signature header value for `body` sent at unix time `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mac = mac_for(secret, timestamp, body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Checks `header` against the raw `body`: the timestamp must be within `tolerance` of `now`
/// and one of the `v1` signatures must match (compared in constant time).
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                let parsed = value
                    .parse::<i64>()
                    .map_err(|_| WebhookError::MalformedHeader("t is not a unix timestamp"))?;
                timestamp = Some(parsed);
            }
            Some(("v1", value)) => signatures.push(value),
            Some(_) => {}
            None => return Err(WebhookError::MalformedHeader("expected key=value parts")),
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MalformedHeader("no t= part"))?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedHeader("no v1= part"));
    }
    let age = now.timestamp().abs_diff(timestamp);
    if age > tolerance.as_secs() {
        return Err(WebhookError::Stale {
            timestamp,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    let matches = signatures.iter().any(|signature| {
        hex::decode(signature).is_ok_and(|expected| {
            mac_for(secret, timestamp, body)
                .verify_slice(&expected)
                .is_ok()
        })
    });
    if matches {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

fn mac_for(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// A verified webhook, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEvent {
    /// `evt_<uuid>`; the same on every redelivery.
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub kind: GatewayEventKind,
}

/// What happened. Types this version does not know parse as `Unknown` so a newer gateway does
/// not break an older receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEventKind {
    AuthorizationSucceeded(AuthorizationSucceeded),
    AuthorizationFailed(AuthorizationFailed),
    CaptureSucceeded(CaptureSucceeded),
    AuthorizationVoided(AuthorizationVoided),
    RefundSucceeded(RefundSucceeded),
    DisputeOpened(DisputeOpened),
    DisputeWon(DisputeDecided),
    DisputeLost(DisputeDecided),
    Unknown(String),
}

impl GatewayEventKind {
    /// The wire `type` of this event.
    pub fn type_name(&self) -> &str {
        match self {
            GatewayEventKind::AuthorizationSucceeded(_) => "authorization.succeeded",
            GatewayEventKind::AuthorizationFailed(_) => "authorization.failed",
            GatewayEventKind::CaptureSucceeded(_) => "capture.succeeded",
            GatewayEventKind::AuthorizationVoided(_) => "authorization.voided",
            GatewayEventKind::RefundSucceeded(_) => "refund.succeeded",
            GatewayEventKind::DisputeOpened(_) => "dispute.opened",
            GatewayEventKind::DisputeWon(_) => "dispute.won",
            GatewayEventKind::DisputeLost(_) => "dispute.lost",
            GatewayEventKind::Unknown(name) => name,
        }
    }

    /// The `data` object of this event.
    pub fn data(&self) -> serde_json::Value {
        let data = match self {
            GatewayEventKind::AuthorizationSucceeded(d) => serde_json::to_value(d),
            GatewayEventKind::AuthorizationFailed(d) => serde_json::to_value(d),
            GatewayEventKind::CaptureSucceeded(d) => serde_json::to_value(d),
            GatewayEventKind::AuthorizationVoided(d) => serde_json::to_value(d),
            GatewayEventKind::RefundSucceeded(d) => serde_json::to_value(d),
            GatewayEventKind::DisputeOpened(d) => serde_json::to_value(d),
            GatewayEventKind::DisputeWon(d) | GatewayEventKind::DisputeLost(d) => {
                serde_json::to_value(d)
            }
            GatewayEventKind::Unknown(_) => Ok(serde_json::Value::Object(Default::default())),
        };
        data.unwrap_or_default()
    }
}

/// `authorization.succeeded`: a 3-D Secure challenge passed; `amount` is held until
/// `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationSucceeded {
    pub authorization_id: String,
    pub order_id: OrderId,
    pub amount: Money,
    pub three_ds: bool,
    pub expires_at: DateTime<Utc>,
}

/// `authorization.failed`: the challenge failed (`authentication_failed`) or expired
/// (`challenge_expired`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationFailed {
    pub authorization_id: String,
    pub order_id: OrderId,
    pub code: String,
    pub message: String,
}

/// `capture.succeeded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureSucceeded {
    pub capture_id: String,
    pub authorization_id: String,
    pub order_id: OrderId,
    pub amount: Money,
}

/// `authorization.voided`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationVoided {
    pub authorization_id: String,
    pub order_id: OrderId,
}

/// `refund.succeeded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundSucceeded {
    pub refund_id: String,
    pub capture_id: String,
    pub authorization_id: String,
    pub order_id: OrderId,
    pub amount: Money,
}

/// `dispute.opened`: the card holder disputed `amount` of a capture; evidence is due by
/// `evidence_due_by`. `reason` is the card network's reason code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeOpened {
    pub dispute_id: String,
    pub capture_id: String,
    pub order_id: OrderId,
    pub amount: Money,
    pub reason: String,
    pub evidence_due_by: DateTime<Utc>,
}

/// `dispute.won` / `dispute.lost`: the bank's decision; on a loss `amount` is taken back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeDecided {
    pub dispute_id: String,
    pub capture_id: String,
    pub order_id: OrderId,
    pub amount: Money,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    type_name: String,
    created_at: DateTime<Utc>,
    #[serde(default)]
    data: serde_json::Value,
}

/// Parses a (verified) webhook body.
pub fn parse(body: &[u8]) -> Result<GatewayEvent, WebhookError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| WebhookError::MalformedBody(e.to_string()))?;
    fn data<T: serde::de::DeserializeOwned>(
        value: serde_json::Value,
        wrap: fn(T) -> GatewayEventKind,
    ) -> Result<GatewayEventKind, WebhookError> {
        serde_json::from_value(value)
            .map(wrap)
            .map_err(|e| WebhookError::MalformedBody(format!("data: {e}")))
    }
    let kind = match envelope.type_name.as_str() {
        "authorization.succeeded" => data(
            envelope.data,
            GatewayEventKind::AuthorizationSucceeded as fn(_) -> _,
        )?,
        "authorization.failed" => data(
            envelope.data,
            GatewayEventKind::AuthorizationFailed as fn(_) -> _,
        )?,
        "capture.succeeded" => data(
            envelope.data,
            GatewayEventKind::CaptureSucceeded as fn(_) -> _,
        )?,
        "authorization.voided" => data(
            envelope.data,
            GatewayEventKind::AuthorizationVoided as fn(_) -> _,
        )?,
        "refund.succeeded" => data(
            envelope.data,
            GatewayEventKind::RefundSucceeded as fn(_) -> _,
        )?,
        "dispute.opened" => data(envelope.data, GatewayEventKind::DisputeOpened as fn(_) -> _)?,
        "dispute.won" => data(envelope.data, GatewayEventKind::DisputeWon as fn(_) -> _)?,
        "dispute.lost" => data(envelope.data, GatewayEventKind::DisputeLost as fn(_) -> _)?,
        _ => GatewayEventKind::Unknown(envelope.type_name),
    };
    Ok(GatewayEvent {
        id: envelope.id,
        created_at: envelope.created_at,
        kind,
    })
}

/// The body the gateway sends for `event`.
pub fn encode(event: &GatewayEvent) -> Vec<u8> {
    let body = serde_json::json!({
        "id": event.id,
        "type": event.kind.type_name(),
        "created_at": event.created_at,
        "data": event.kind.data(),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use waybill_schemas::Currency;

    const SECRET: &[u8] = b"whsec_test";

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().expect("valid time")
    }

    fn event() -> GatewayEvent {
        GatewayEvent {
            id: "evt_1".into(),
            created_at: at(1_700_000_000),
            kind: GatewayEventKind::CaptureSucceeded(CaptureSucceeded {
                capture_id: "cap_1".into(),
                authorization_id: "auth_1".into(),
                order_id: OrderId::new_v7(),
                amount: Money::new(1250, Currency::parse("EUR").expect("EUR")),
            }),
        }
    }

    #[test]
    fn a_signed_body_verifies_within_tolerance() {
        let body = encode(&event());
        let header = sign(SECRET, 1_700_000_000, &body);
        let now = at(1_700_000_100);
        assert_eq!(
            verify(SECRET, &header, &body, now, Duration::from_secs(300)),
            Ok(())
        );
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let body = encode(&event());
        let header = sign(SECRET, 1_700_000_000, &body);
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        let result = verify(
            SECRET,
            &header,
            &tampered,
            at(1_700_000_000),
            Duration::from_secs(300),
        );
        assert_eq!(result, Err(WebhookError::BadSignature));
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let body = encode(&event());
        let header = sign(b"another secret", 1_700_000_000, &body);
        let result = verify(
            SECRET,
            &header,
            &body,
            at(1_700_000_000),
            Duration::from_secs(300),
        );
        assert_eq!(result, Err(WebhookError::BadSignature));
    }

    #[test]
    fn a_stale_timestamp_is_refused_even_with_a_good_signature() {
        let body = encode(&event());
        let header = sign(SECRET, 1_700_000_000, &body);
        let result = verify(
            SECRET,
            &header,
            &body,
            at(1_700_000_301),
            Duration::from_secs(300),
        );
        assert!(matches!(result, Err(WebhookError::Stale { .. })));
    }

    #[test]
    fn a_header_without_parts_is_malformed() {
        let now = at(1_700_000_000);
        let tolerance = Duration::from_secs(300);
        for header in ["", "t=1700000000", "v1=abcd", "t=soon,v1=abcd", "garbage"] {
            assert!(
                matches!(
                    verify(SECRET, header, b"{}", now, tolerance),
                    Err(WebhookError::MalformedHeader(_))
                ),
                "{header:?}"
            );
        }
    }

    #[test]
    fn any_matching_v1_signature_is_enough_during_secret_rotation() {
        let body = encode(&event());
        let good = sign(SECRET, 1_700_000_000, &body);
        let good_sig = good.split("v1=").nth(1).expect("v1");
        let header = format!("t=1700000000,v1={},v1={good_sig}", "00".repeat(32));
        assert_eq!(
            verify(
                SECRET,
                &header,
                &body,
                at(1_700_000_000),
                Duration::from_secs(60)
            ),
            Ok(())
        );
    }

    #[test]
    fn encode_and_parse_round_trip() {
        let event = event();
        assert_eq!(parse(&encode(&event)), Ok(event));
    }

    #[test]
    fn an_unknown_type_parses_as_unknown() {
        let body = br#"{"id":"evt_9","type":"dispute.created","created_at":"2026-01-01T00:00:00Z","data":{"x":1}}"#;
        let parsed = parse(body).expect("parses");
        assert_eq!(
            parsed.kind,
            GatewayEventKind::Unknown("dispute.created".into())
        );
    }

    #[test]
    fn a_known_type_with_bad_data_is_malformed() {
        let body = br#"{"id":"evt_9","type":"capture.succeeded","created_at":"2026-01-01T00:00:00Z","data":{}}"#;
        assert!(matches!(parse(body), Err(WebhookError::MalformedBody(_))));
    }
}
