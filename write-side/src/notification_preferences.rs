//! Customers' notification preferences: by which media (email, sms, or none at all) and in
//! which language they want to hear about their orders. Kept in the table
//! `notification_preferences` of the event store's database (this module owns it), keyed by the
//! channel's customer id, so they survive anything that happens to Redis or NATS. Set by the
//! customer (`PUT /v1/me/notification-preferences`, in the same transaction as the request's
//! idempotency record) and read by the notifications view when it delivers.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use waybill_schemas::notifications::{Locale, Medium};

use crate::domain::fields::{Errors, BODY};
use crate::domain::{FieldError, ValidationErrors};
use crate::event_store::retry;

/// What one customer chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preferences {
    /// The media messages go by; empty: no messages at all.
    #[schema(value_type = Vec<String>, example = json!(["email", "sms"]))]
    pub media: BTreeSet<Medium>,
    /// `en` or `de`.
    #[schema(value_type = String, example = "de")]
    pub locale: Locale,
}

impl Default for Preferences {
    /// What a customer who never chose gets: email, and a text message when they gave a
    /// phone number, in English.
    fn default() -> Self {
        Self {
            media: Medium::ALL.into_iter().collect(),
            locale: Locale::En,
        }
    }
}

/// Stored preferences with when they were set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub preferences: Preferences,
    pub updated_at: DateTime<Utc>,
}

/// Reads `{"media": ["email", "sms"], "locale": "de"}`: both required, `media` a list of
/// distinct known media (empty: none), `locale` a supported language.
pub fn parse(body: &Value) -> Result<Preferences, ValidationErrors> {
    let mut errors = Errors::default();
    let Some(object) = body.as_object() else {
        return Err(ValidationErrors(vec![FieldError {
            field: BODY.to_owned(),
            detail: "must be a JSON object".to_owned(),
        }]));
    };
    let known: Vec<&str> = Medium::ALL.iter().map(|m| m.as_str()).collect();
    let media = match object.get("media") {
        None | Some(Value::Null) => {
            errors.push(
                "media".to_owned(),
                "is required (a list, [] for none)".to_owned(),
            );
            None
        }
        Some(Value::Array(items)) if items.len() <= Medium::ALL.len() => {
            let mut media = BTreeSet::new();
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match item.as_str().and_then(Medium::from_name) {
                    Some(medium) if media.insert(medium) => {}
                    Some(_) => {
                        errors.push(format!("media[{i}]"), "is listed twice".to_owned());
                        ok = false;
                    }
                    None => {
                        errors.push(
                            format!("media[{i}]"),
                            format!("must be one of: {}", known.join(", ")),
                        );
                        ok = false;
                    }
                }
            }
            ok.then_some(media)
        }
        Some(_) => {
            errors.push(
                "media".to_owned(),
                format!(
                    "must be a list of at most {} of: {}",
                    known.len(),
                    known.join(", ")
                ),
            );
            None
        }
    };
    let locales: Vec<&str> = Locale::ALL.iter().map(|l| l.as_str()).collect();
    let locale = match object.get("locale") {
        Some(Value::String(raw)) if raw.len() <= 35 => Locale::parse(raw),
        _ => None,
    };
    if locale.is_none() {
        errors.push(
            "locale".to_owned(),
            format!("must be one of: {}", locales.join(", ")),
        );
    }
    for field in object.keys() {
        if field != "media" && field != "locale" {
            errors.push(field.clone(), "is not a preference".to_owned());
        }
    }
    let parsed = match (media, locale) {
        (Some(media), Some(locale)) => Some(Preferences { media, locale }),
        _ => None,
    };
    errors.finish(parsed)
}

/// One customer's preferences, if they set any.
pub async fn get(pool: &PgPool, customer_id: &str) -> Result<Option<Stored>, sqlx::Error> {
    let found = load_many(pool, &[customer_id.to_owned()]).await?;
    Ok(found.into_values().next())
}

/// The preferences of these customers that set any.
pub async fn load_many(
    pool: &PgPool,
    customer_ids: &[String],
) -> Result<HashMap<String, Stored>, sqlx::Error> {
    if customer_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, Vec<String>, String, DateTime<Utc>)> = retry::serializable(|| {
        sqlx::query_as(
            "SELECT customer_id, media, locale, updated_at FROM notification_preferences \
             WHERE customer_id = ANY($1)",
        )
        .bind(customer_ids)
        .fetch_all(pool)
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|(customer, media, locale, updated_at)| {
            let preferences = Preferences {
                media: media.iter().filter_map(|m| Medium::from_name(m)).collect(),
                locale: Locale::parse(&locale).unwrap_or_default(),
            };
            (
                customer,
                Stored {
                    preferences,
                    updated_at,
                },
            )
        })
        .collect())
}

/// Writes one customer's preferences (inside the caller's transaction).
pub async fn put(
    conn: &mut PgConnection,
    customer_id: &str,
    preferences: &Preferences,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let media: Vec<&str> = preferences.media.iter().map(|m| m.as_str()).collect();
    sqlx::query(
        "INSERT INTO notification_preferences (customer_id, media, locale, updated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (customer_id) DO UPDATE \
            SET media = excluded.media, locale = excluded.locale, updated_at = excluded.updated_at",
    )
    .bind(customer_id)
    .bind(media)
    .bind(preferences.locale.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(result: Result<Preferences, ValidationErrors>) -> Vec<String> {
        result
            .expect_err("refused")
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn media_and_locale_are_read_and_none_is_an_empty_list() {
        let both = parse(&json!({"media": ["sms", "email"], "locale": "de-AT"})).expect("ok");
        assert_eq!(
            both.media,
            [Medium::Email, Medium::Sms].into_iter().collect()
        );
        assert_eq!(both.locale, Locale::De);
        let none = parse(&json!({"media": [], "locale": "en"})).expect("ok");
        assert!(none.media.is_empty());
    }

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(fields(parse(&json!({}))), ["media", "locale"]);
        assert_eq!(
            fields(parse(&json!({"media": ["fax"], "locale": "fr"}))),
            ["media[0]", "locale"]
        );
        assert_eq!(
            fields(parse(&json!({"media": ["sms", "sms"], "locale": "en"}))),
            ["media[1]"]
        );
        assert_eq!(
            fields(parse(
                &json!({"media": "email", "locale": "en", "push": true})
            )),
            ["media", "push"]
        );
        assert_eq!(fields(parse(&json!([1]))), ["body"]);
    }
}
