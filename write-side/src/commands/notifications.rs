//! Customer notification commands:
//!
//! - `PUT /v1/me/notification-preferences` (the customer): media and locale, written to
//!   `notification_preferences` in the same transaction as the request's idempotency record.
//! - `POST /v1/orders/{id}/notifications/resend` (agent or admin): a
//!   `NotificationResendRequested` event in the order's stream, committed with the idempotency
//!   record, so one request is one event and the notifications view sends its message once.
//!   Refused (409) when the order never had a message of that kind.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;
use uuid::Uuid;
use waybill_schemas::events::NotificationResendRequested;
use waybill_schemas::notifications::{Locale, Medium, NotificationKind};
use waybill_schemas::{OrderEvent, OrderId};

use super::{CommandContext, CommandError, CommandServices, Reply, CONFLICT_RETRIES};
use crate::commit_batcher::{CommitOutcome, CommitRequest};
use crate::domain::fields::{object, Errors, BODY};
use crate::domain::Order;
use crate::event_store::{new_events, retry, stamp};
use crate::idempotency::{self, StoredResponse};
use crate::notification_preferences::{self, Preferences};

/// Longest reason kept.
const MAX_REASON: usize = 500;

/// A customer's preferences as the API shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreferencesResponse {
    pub customer_id: String,
    /// The media messages go by: `email`, `sms`; empty: none.
    #[schema(value_type = Vec<String>, example = json!(["email"]))]
    pub media: Vec<Medium>,
    /// `en` or `de`.
    #[schema(value_type = String, example = "de")]
    pub locale: Locale,
    /// When they were set; `null` while the defaults apply.
    pub updated_at: Option<DateTime<Utc>>,
}

impl PreferencesResponse {
    pub fn new(
        customer_id: &str,
        preferences: &Preferences,
        updated_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            customer_id: customer_id.to_owned(),
            media: preferences.media.iter().copied().collect(),
            locale: preferences.locale,
            updated_at,
        }
    }
}

fn json_response(status: u16, body: &impl Serialize) -> StoredResponse {
    StoredResponse {
        status,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        // Plain structs of strings, ids and times always serialize.
        body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
    }
}

/// `PUT /v1/me/notification-preferences`.
pub async fn set_notification_preferences(
    services: &CommandServices,
    ctx: &CommandContext,
    body: &Value,
) -> Result<Reply, CommandError> {
    let preferences = notification_preferences::parse(body)?;
    if let Some(record) =
        idempotency::find(&services.pool, &ctx.client_id, &ctx.idempotency_key).await?
    {
        return ctx.answer_from(record);
    }
    let now = Utc::now();
    let response = json_response(
        200,
        &PreferencesResponse::new(&ctx.client_id, &preferences, Some(now)),
    );
    let record = ctx.record(&response);
    let stored = retry::serializable_idempotent(|| async {
        let mut tx = retry::begin(&services.pool).await?;
        let inserted = idempotency::insert_new(&mut tx, &[&record], now).await?;
        if inserted.is_empty() {
            return Ok(false);
        }
        notification_preferences::put(&mut tx, &ctx.client_id, &preferences, now).await?;
        retry::commit(tx).await?;
        Ok(true)
    })
    .await?;
    if stored {
        tracing::info!(
            media = ?preferences.media,
            locale = preferences.locale.as_str(),
            "notification preferences set"
        );
        Ok(Reply::Fresh(response))
    } else {
        services.answer_from_stored(ctx).await
    }
}

/// A parsed resend request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResendBody {
    pub kind: NotificationKind,
    pub medium: Option<Medium>,
    pub reason: Option<String>,
}

/// Reads `{"kind": "order_confirmed", "medium": "email", "reason": "..."}` (`medium` and
/// `reason` optional).
pub fn parse_resend(body: &Value) -> Result<ResendBody, CommandError> {
    let mut errors = Errors::default();
    let parsed = object(body, BODY.to_owned(), &mut errors).and_then(|o| {
        let kinds: Vec<&str> = NotificationKind::ALL.iter().map(|k| k.as_str()).collect();
        let kind =
            o.required_str("kind", 32, &mut errors).and_then(
                |raw| match NotificationKind::from_name(&raw) {
                    Some(kind) => Some(kind),
                    None => {
                        errors.push(
                            o.path_of("kind"),
                            format!("must be one of: {}", kinds.join(", ")),
                        );
                        None
                    }
                },
            );
        let medium = match o.optional_str("medium", 16, &mut errors) {
            Ok(None) => Ok(None),
            Ok(Some(raw)) => match Medium::from_name(&raw) {
                Some(medium) => Ok(Some(medium)),
                None => {
                    errors.push(o.path_of("medium"), "must be one of: email, sms");
                    Err(())
                }
            },
            Err(_) => Err(()),
        };
        let reason = o.optional_str("reason", MAX_REASON, &mut errors);
        Some(ResendBody {
            kind: kind?,
            medium: medium.ok()?,
            reason: reason.ok()?,
        })
    });
    errors.finish(parsed).map_err(CommandError::Validation)
}

/// The answer to a resend request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResendResponse {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    pub resend_id: Uuid,
    #[schema(value_type = String, example = "order_confirmed")]
    pub kind: NotificationKind,
    /// `null`: by every medium the customer's preferences allow.
    #[schema(value_type = Option<String>, example = "email")]
    pub medium: Option<Medium>,
    /// The `NotificationResendRequested` event; the message sent again is identified by it.
    pub event_id: Uuid,
    /// Always `accepted`: the notifications view sends the message once it applies the event.
    pub status: &'static str,
    pub requested_at: DateTime<Utc>,
}

/// `POST /v1/orders/{id}/notifications/resend`.
pub async fn resend_notification(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_order_id: &str,
    body: &Value,
) -> Result<Reply, CommandError> {
    let order_id =
        OrderId::parse(raw_order_id).map_err(|_| CommandError::NotFound(raw_order_id.into()))?;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let request = parse_resend(body)?;
    if let Some(record) =
        idempotency::find(&services.pool, &ctx.client_id, &ctx.idempotency_key).await?
    {
        return ctx.answer_from(record);
    }
    for _ in 0..CONFLICT_RETRIES {
        let envelopes = services
            .store
            .read_stream(&order_id.stream_id(), 1, None)
            .await?;
        let events = envelopes
            .iter()
            .map(|e| e.decode())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        if events.is_empty() {
            return Err(CommandError::NotFound(order_id.to_string()));
        }
        if !events
            .iter()
            .any(|e| NotificationKind::of_event(e) == Some(request.kind))
        {
            return Err(CommandError::Refused(format!(
                "order {order_id} never had a {} message to send again",
                request.kind.as_str()
            )));
        }
        let order = Order::from_events(&events);
        let now = Utc::now();
        let resend_id = Uuid::now_v7();
        let event = NotificationResendRequested {
            order_id,
            resend_id,
            kind: request.kind,
            medium: request.medium,
            reason: request.reason.clone(),
            requested_at: now,
        };
        let new = new_events(vec![OrderEvent::NotificationResendRequested(event)], now);
        let event_id = new[0].event_id;
        let channel = order.state().map(|s| s.channel());
        let stamped = stamp(
            &order_id.stream_id(),
            order.version(),
            new,
            &ctx.meta(channel),
            now,
        );
        let response = json_response(
            202,
            &ResendResponse {
                order_id,
                resend_id,
                kind: request.kind,
                medium: request.medium,
                event_id,
                status: "accepted",
                requested_at: now,
            },
        );
        let commit = CommitRequest {
            idempotency: ctx.record(&response),
            channel_order: None,
            events: stamped,
            wake_flow: None,
        };
        let span = tracing::info_span!("notifications.resend", kind = request.kind.as_str());
        match services
            .commit(ctx, order_id, commit)
            .instrument(span)
            .await
        {
            CommitOutcome::Committed => return Ok(Reply::Fresh(response)),
            CommitOutcome::IdempotencyKeyTaken => return services.answer_from_stored(ctx).await,
            CommitOutcome::StreamConflict { .. } => continue,
            other => return Err(CommandError::Internal(format!("{other:?}"))),
        }
    }
    Err(CommandError::Conflict(order_id))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::commands::invalid_fields;

    #[test]
    fn a_resend_names_a_known_kind_and_optionally_a_medium() {
        let ok = parse_resend(&json!({"kind": "shipped", "medium": "sms", "reason": "lost"}))
            .expect("ok");
        assert_eq!(ok.kind, NotificationKind::Shipped);
        assert_eq!(ok.medium, Some(Medium::Sms));
        assert_eq!(ok.reason.as_deref(), Some("lost"));
        let bare = parse_resend(&json!({"kind": "refund_issued"})).expect("ok");
        assert_eq!(bare.medium, None);
        assert_eq!(
            invalid_fields(parse_resend(&json!({"kind": "spam", "medium": "fax"})).unwrap_err()),
            vec!["kind", "medium"]
        );
        assert_eq!(
            invalid_fields(parse_resend(&json!({"medium": 3})).unwrap_err()),
            vec!["kind", "medium"]
        );
        assert_eq!(
            invalid_fields(
                parse_resend(&json!({"kind": "shipped", "reason": "x".repeat(501)})).unwrap_err()
            ),
            vec!["reason"]
        );
    }
}
