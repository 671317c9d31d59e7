//! `POST /v1/customers/{id}/erasure` and `POST /v1/guests/erasure`: erase a customer's (or a
//! guest's, by the email of their checkouts) personal data by crypto-shredding
//! ([`crate::pii`]). One SERIALIZABLE transaction destroys the subject's data keys, appends the
//! audited `CustomerErased` event (stream `erasure-<digest>`, nothing personal in it)
//! with its outbox row, scrubs the copies of personal data the event store's database keeps
//! outside the log (idempotency records' stored responses, the notification ledger's
//! recipients) and stores the response under the `Idempotency-Key`. The views re-project the
//! customer's orders when they apply the event.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;
use waybill_schemas::access::customer_digest;
use waybill_schemas::api_keys::Role;
use waybill_schemas::events::CustomerErased;
use waybill_schemas::{Email, OrderEvent, OrderId};

use super::{CommandContext, CommandError, CommandServices, Reply};
use crate::domain::fields::{object, Errors, BODY};
use crate::event_store::{new_events, retry, rows, stamp};
use crate::idempotency::{self, StoredResponse};
use crate::pii::{self, fields};

/// Longest customer id accepted (the channel's id, as `OrderPlaced` carries it).
const MAX_CUSTOMER_ID: usize = 64;
/// Longest email accepted (as placement takes it).
pub const MAX_EMAIL: usize = 254;

/// The answer to an erasure.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErasureResponse {
    /// The channel customer id erased.
    pub customer_id: String,
    /// The `CustomerErased` event recording the erasure.
    pub event_id: Uuid,
    /// The orders whose personal fields now read as erased everywhere.
    #[schema(value_type = Vec<String>)]
    pub orders: Vec<OrderId>,
    /// Data keys destroyed (0: the customer had been erased already; the views are scrubbed
    /// again all the same).
    pub keys_destroyed: u32,
    /// Always `erased`: the keys are gone; the views drop what they held once they apply the
    /// event.
    pub status: &'static str,
    pub erased_at: DateTime<Utc>,
}

/// The customer id of the path, when it can name a customer at all (placement takes ids of 1
/// to 64 characters without control characters); anything else names nobody: 404.
fn parse_customer_id(raw: &str) -> Result<String, CommandError> {
    let id = raw.trim();
    if id.is_empty() || id.chars().count() > MAX_CUSTOMER_ID || id.chars().any(char::is_control) {
        return Err(CommandError::CustomerNotFound(
            id.chars()
                .filter(|c| !c.is_control())
                .take(MAX_CUSTOMER_ID)
                .collect(),
        ));
    }
    Ok(id.to_owned())
}

/// Erases customer `raw_customer_id` (role `admin`).
pub async fn erase_customer(
    services: &CommandServices,
    ctx: &CommandContext,
    raw_customer_id: &str,
) -> Result<Reply, CommandError> {
    if ctx.role != Role::Admin {
        return Err(CommandError::Forbidden);
    }
    let customer_id = parse_customer_id(raw_customer_id)?;
    let subject = Subject {
        key_subject: fields::customer_subject(&customer_id),
        digest: customer_digest(&customer_id),
        guest: false,
    };
    erase_subject(services, ctx, &subject, |erased| {
        json_response(&ErasureResponse {
            customer_id: customer_id.clone(),
            event_id: erased.event_id,
            orders: erased.orders.clone(),
            keys_destroyed: erased.keys_destroyed,
            status: "erased",
            erased_at: erased.erased_at,
        })
    })
    .await?
    .ok_or(CommandError::CustomerNotFound(customer_id))
}

/// The answer to a guest's erasure: like [`ErasureResponse`], without the email.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GuestErasureResponse {
    /// The `CustomerErased` event recording the erasure (`guest`: true).
    pub event_id: Uuid,
    /// The guest checkouts whose personal fields now read as erased everywhere.
    #[schema(value_type = Vec<String>)]
    pub orders: Vec<OrderId>,
    /// Data keys destroyed (0: the guest had been erased already and has not ordered since;
    /// the views are scrubbed again all the same).
    pub keys_destroyed: u32,
    /// Always `erased`.
    pub status: &'static str,
    pub erased_at: DateTime<Utc>,
}

/// The body of a guest's erasure: the email the guest checked out with.
pub fn parse_guest_email(body: &Value) -> Result<Email, CommandError> {
    let mut errors = Errors::default();
    let parsed = object(body, BODY.to_owned(), &mut errors).and_then(|o| {
        o.required_str("email", MAX_EMAIL, &mut errors)
            .and_then(|raw| match Email::parse(&raw) {
                Ok(email) => Some(email),
                Err(e) => {
                    errors.push(o.path_of("email"), e.to_string());
                    None
                }
            })
    });
    errors.finish(parsed).map_err(CommandError::Validation)
}

/// Erases every guest checkout placed with the email of `body` (role `admin`): their data
/// key is the guest's, found by the keyed digest of the normalised email.
pub async fn erase_guest(
    services: &CommandServices,
    ctx: &CommandContext,
    body: &Value,
) -> Result<Reply, CommandError> {
    if ctx.role != Role::Admin {
        return Err(CommandError::Forbidden);
    }
    let email = parse_guest_email(body)?;
    let key_subject =
        pii::guest_subject(&email).map_err(|e| CommandError::Internal(e.to_string()))?;
    let digest = key_subject
        .strip_prefix("guest:")
        .unwrap_or(&key_subject)
        .to_owned();
    let subject = Subject {
        key_subject,
        digest,
        guest: true,
    };
    erase_subject(services, ctx, &subject, |erased| {
        json_response(&GuestErasureResponse {
            event_id: erased.event_id,
            orders: erased.orders.clone(),
            keys_destroyed: erased.keys_destroyed,
            status: "erased",
            erased_at: erased.erased_at,
        })
    })
    .await?
    .ok_or(CommandError::GuestNotFound)
}

/// Whose data keys an erasure destroys.
struct Subject {
    /// The key store's subject (`customer:<id>`, `guest:<digest>`).
    key_subject: String,
    /// What the audit event names the subject by (never the id or email itself).
    digest: String,
    guest: bool,
}

/// What an erasure did, for its response.
struct Erased {
    event_id: Uuid,
    orders: Vec<OrderId>,
    keys_destroyed: u32,
    erased_at: DateTime<Utc>,
}

/// Destroys `subject`'s data keys, records `CustomerErased`, scrubs the copies outside the log
/// and stores the response `respond` makes, in one transaction. `None`: no order was ever
/// sealed under the subject's keys (nothing to erase).
async fn erase_subject(
    services: &CommandServices,
    ctx: &CommandContext,
    subject: &Subject,
    respond: impl Fn(&Erased) -> StoredResponse,
) -> Result<Option<Reply>, CommandError> {
    if let Some(record) =
        idempotency::find(&services.pool, &ctx.client_id, &ctx.idempotency_key).await?
    {
        return ctx.answer_from(record).map(Some);
    }
    let streams = pii::streams_of_subject(&services.pool, &subject.key_subject).await?;
    if streams.is_empty() {
        return Ok(None);
    }
    // What the copies outside the log may hold, read while the keys still open it.
    let logged = services.store.read_streams(&streams).await?;
    let mut texts = Vec::new();
    for event in logged.values().flatten() {
        fields::personal_texts(&event.event_type, &event.payload.to_value(), &mut texts);
    }
    let orders: Vec<OrderId> = streams
        .iter()
        .filter_map(|s| OrderId::from_stream_id(s))
        .collect();
    let stream_id = format!("erasure-{}", subject.digest);
    let committed = retry::serializable(|| async {
        let mut tx = retry::begin(&services.pool).await?;
        let destroyed = pii::destroy_subject(&mut tx, &subject.key_subject)
            .await
            .map_err(pii::PiiError::into_sqlx)?;
        let version: Option<i64> =
            sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = $1")
                .bind(&stream_id)
                .fetch_one(&mut *tx)
                .await?;
        let now = Utc::now();
        let keys_destroyed = u32::try_from(destroyed.len()).unwrap_or(u32::MAX);
        let event = CustomerErased {
            customer_digest: subject.digest.clone(),
            guest: subject.guest,
            orders: orders.clone(),
            keys_destroyed,
            requested_by: ctx.client_id.clone(),
            erased_at: now,
        };
        let new = new_events(vec![OrderEvent::CustomerErased(event)], now);
        let event_id = new[0].event_id;
        let envelopes = stamp(&stream_id, version.unwrap_or(0), new, &ctx.meta(None), now);
        let refs: Vec<_> = envelopes.iter().collect();
        rows::insert_events_and_outbox(&mut tx, &refs, now).await?;
        scrub_copies(&mut tx, &orders, &texts).await?;
        let response = respond(&Erased {
            event_id,
            orders: orders.clone(),
            keys_destroyed,
            erased_at: now,
        });
        let record = ctx.record(&response);
        let inserted = idempotency::insert_new(&mut tx, &[&record], now).await?;
        if inserted.is_empty() {
            // Another request took the key meanwhile: its answer is the one to give.
            return Ok(None);
        }
        retry::commit(tx).await?;
        Ok(Some(response))
    })
    .await?;
    match committed {
        Some(response) => {
            tracing::info!(
                orders = orders.len(),
                guest = subject.guest,
                "personal data erased"
            );
            Ok(Some(Reply::Fresh(response)))
        }
        None => services.answer_from_stored(ctx).await.map(Some),
    }
}

/// Scrubs the copies of `texts` (the customer's personal field values) that the event store's
/// database holds outside the log: stored responses of idempotency records that name one of
/// `orders`, the velocity signals (email, IP) of `orders`, the postal code their stock
/// reservations were routed for, the recipients of the notification ledger's rows, and the
/// notes of the desk's resolutions of `orders`.
async fn scrub_copies(
    conn: &mut PgConnection,
    orders: &[OrderId],
    texts: &[String],
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = orders.iter().map(|o| o.as_uuid()).collect();
    let names: Vec<String> = orders.iter().map(|o| o.to_string()).collect();
    idempotency::scrub_responses(&mut *conn, &names, texts, fields::ERASED_TEXT).await?;
    crate::risk_signals::forget_orders(&mut *conn, &ids).await?;
    crate::inventory::forget_ship_postal_codes(&mut *conn, &ids, fields::ERASED_TEXT).await?;
    sqlx::query(
        "UPDATE notification_deliveries SET recipient = $2, last_error = NULL \
         WHERE order_id = ANY($1)",
    )
    .bind(&ids)
    .bind(fields::ERASED_TEXT)
    .execute(&mut *conn)
    .await?;
    crate::desk::entries::forget_notes(&mut *conn, &ids).await?;
    Ok(())
}

fn json_response(body: &impl Serialize) -> StoredResponse {
    StoredResponse {
        status: 200,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        // Plain strings, ids and times always serialize.
        body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_erasure_takes_an_email_as_placement_does_and_names_the_field() {
        use serde_json::json;
        let email = parse_guest_email(&json!({"email": "  Ada@Example.COM "})).unwrap();
        assert_eq!(email.as_str(), "ada@example.com");
        for bad in [
            json!({}),
            json!({"email": null}),
            json!({"email": "no-at-sign"}),
            json!({"email": 7}),
            json!({"email": format!("{}@example.com", "a".repeat(250))}),
        ] {
            match parse_guest_email(&bad) {
                Err(CommandError::Validation(errors)) => {
                    assert_eq!(errors.0[0].field, "email", "{bad}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_id_placement_could_never_have_taken_names_nobody() {
        assert_eq!(parse_customer_id(" c-42 ").ok().as_deref(), Some("c-42"));
        for bad in ["", "  ", "a\u{86}b", &"x".repeat(65)] {
            assert!(matches!(
                parse_customer_id(bad),
                Err(CommandError::CustomerNotFound(_))
            ));
        }
    }
}
