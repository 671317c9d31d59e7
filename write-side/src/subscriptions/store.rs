//! The admin side of `webhook_subscriptions`, `webhook_retries` and `webhook_dead_letters`:
//! register, read, change, remove, list dead letters and send one again. Every change is
//! written in one serializable transaction with its idempotency record, so a retried request
//! is answered with the first response and applied once. (The delivery workers' side of the
//! same tables is [`super::delivery::ledger`].)

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::request::{NewSubscription, Start, SubscriptionPatch};
use super::seal::SealingKey;
use super::SubscriptionError;
use crate::commands::{CommandContext, Reply};
use crate::event_store::retry;
use crate::idempotency::{self, IdempotencyRecord, StoredResponse};

/// A registered endpoint as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Subscription {
    pub subscription_id: Uuid,
    pub url: String,
    /// Event types delivered; empty: every type.
    pub event_types: Vec<String>,
    pub description: Option<String>,
    /// `active` or `paused`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Feed position delivered (or held back for a retry) through.
    pub position: i64,
    /// Successful deliveries so far.
    pub delivered: i64,
    /// Rounds in a row in which every delivery failed (0: healthy).
    pub consecutive_failures: i32,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// Events waiting for a retry.
    pub pending_retries: i64,
    /// Events given up on (dead letters not yet delivered again).
    pub dead_letters: i64,
}

/// The answer to a registration: the subscription and its signing secret, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedSubscription {
    pub subscription: Subscription,
    /// The HMAC-SHA256 signing secret (`Waybill-Signature`); returned only here.
    pub secret: String,
}

/// Every subscription.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<Subscription>,
}

/// An event given up on for one subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub dead_letter_id: Uuid,
    pub subscription_id: Uuid,
    /// The event's feed position.
    pub position: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub stream_id: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// `dead`, `redelivering` (sent again on request, not yet accepted) or `redelivered`.
    pub status: String,
    pub dead_at: DateTime<Utc>,
    pub redelivered_at: Option<DateTime<Utc>>,
}

/// A page of dead letters, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetter>,
    pub total: i64,
}

/// The answer to a redelivery request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Redelivery {
    pub dead_letter_id: Uuid,
    /// `redelivering`: queued ahead of the order's later events for this subscription.
    pub status: String,
}

const SELECT: &str = "SELECT s.subscription_id, s.url, s.event_types, s.description, s.status, \
    s.created_at, s.updated_at, s.position, s.delivered, s.failures, s.last_error, \
    s.last_delivered_at, \
    (SELECT count(*) FROM webhook_retries r WHERE r.subscription_id = s.subscription_id), \
    (SELECT count(*) FROM webhook_dead_letters d WHERE d.subscription_id = s.subscription_id \
        AND d.status = 'dead') \
    FROM webhook_subscriptions s";

type Row = (
    Uuid,
    String,
    Vec<String>,
    Option<String>,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
    i64,
    i32,
    Option<String>,
    Option<DateTime<Utc>>,
    i64,
    i64,
);

fn from_row(row: Row) -> Subscription {
    Subscription {
        subscription_id: row.0,
        url: row.1,
        event_types: row.2,
        description: row.3,
        status: row.4,
        created_at: row.5,
        updated_at: row.6,
        position: row.7,
        delivered: row.8,
        consecutive_failures: row.9,
        last_error: row.10,
        last_delivered_at: row.11,
        pending_retries: row.12,
        dead_letters: row.13,
    }
}

async fn fetch(conn: &mut PgConnection, id: Uuid) -> Result<Option<Subscription>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE s.subscription_id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(from_row))
}

/// One subscription.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Subscription>, sqlx::Error> {
    retry::serializable(|| async {
        let mut conn = pool.acquire().await?;
        fetch(&mut conn, id).await
    })
    .await
}

/// Every subscription, oldest first.
pub async fn list(pool: &PgPool) -> Result<Vec<Subscription>, sqlx::Error> {
    let sql = format!("{SELECT} ORDER BY s.created_at, s.subscription_id");
    let rows: Vec<Row> = retry::serializable(|| sqlx::query_as(&sql).fetch_all(pool)).await?;
    Ok(rows.into_iter().map(from_row).collect())
}

fn json_response(status: u16, body: &impl Serialize) -> StoredResponse {
    StoredResponse {
        status,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: serde_json::to_vec(body)
            .unwrap_or_else(|_| b"{}".to_vec())
            .into(),
    }
}

fn record(ctx: &CommandContext, response: &StoredResponse) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: ctx.client_id.clone(),
        key: ctx.idempotency_key.clone(),
        request_hash: ctx.request_hash.clone(),
        response: response.clone(),
    }
}

/// The stored answer to this key: a replay, or a refusal of a different request.
async fn stored_answer(
    pool: &PgPool,
    ctx: &CommandContext,
) -> Result<Option<Reply>, SubscriptionError> {
    match idempotency::find(pool, &ctx.client_id, &ctx.idempotency_key).await? {
        Some(found) if found.request_hash == ctx.request_hash => {
            Ok(Some(Reply::Replayed(found.response)))
        }
        Some(_) => Err(SubscriptionError::KeyReused(ctx.idempotency_key.clone())),
        None => Ok(None),
    }
}

/// What one attempt of a change's transaction came to.
enum Attempt {
    /// Committed with its idempotency record.
    Done(StoredResponse),
    /// Refused; nothing written.
    Refused(SubscriptionError),
    /// Another request with the same key committed first.
    KeyTaken,
}

/// Stores `response` under the request's key in `tx` and commits.
async fn commit_with_record(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    ctx: &CommandContext,
    response: StoredResponse,
) -> Result<Attempt, sqlx::Error> {
    let inserted = idempotency::insert_new(&mut tx, &[&record(ctx, &response)], Utc::now()).await?;
    if inserted.is_empty() {
        tx.rollback().await?;
        return Ok(Attempt::KeyTaken);
    }
    retry::commit(tx).await?;
    Ok(Attempt::Done(response))
}

async fn settle(
    pool: &PgPool,
    ctx: &CommandContext,
    attempt: Attempt,
) -> Result<Reply, SubscriptionError> {
    match attempt {
        Attempt::Done(response) => Ok(Reply::Fresh(response)),
        Attempt::Refused(error) => Err(error),
        Attempt::KeyTaken => stored_answer(pool, ctx)
            .await?
            .ok_or_else(|| SubscriptionError::Internal("idempotency record vanished".into())),
    }
}

/// A generated signing secret: `whsec_` and 32 random bytes in hex.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", hex::encode(bytes))
}

/// The body stored for a registration: the secret sealed, so the idempotency record (kept a
/// day) holds no secret in the clear. [`open_created`] turns it into the answer.
#[derive(Serialize, Deserialize)]
struct StoredCreated {
    subscription: Subscription,
    sealed_secret: String,
}

/// The answer to send for a stored registration (fresh or replayed).
pub fn open_created(
    key: &SealingKey,
    stored: StoredResponse,
) -> Result<StoredResponse, SubscriptionError> {
    if stored.status != 201 {
        return Ok(stored);
    }
    let parsed: StoredCreated = serde_json::from_slice(&stored.body)
        .map_err(|e| SubscriptionError::Internal(format!("stored registration: {e}")))?;
    let sealed = hex::decode(&parsed.sealed_secret)
        .map_err(|e| SubscriptionError::Internal(format!("stored registration: {e}")))?;
    let secret = key.open(parsed.subscription.subscription_id, &sealed)?;
    let body = CreatedSubscription {
        subscription: parsed.subscription,
        secret,
    };
    Ok(StoredResponse {
        body: serde_json::to_vec(&body)
            .unwrap_or_else(|_| b"{}".to_vec())
            .into(),
        ..stored
    })
}

/// Registers `new`. Answers 201 with the subscription and (sealed, see [`open_created`]) its
/// secret.
pub async fn create(
    pool: &PgPool,
    key: &SealingKey,
    ctx: &CommandContext,
    new: NewSubscription,
) -> Result<Reply, SubscriptionError> {
    if let Some(reply) = stored_answer(pool, ctx).await? {
        return Ok(reply);
    }
    let id = Uuid::now_v7();
    let secret = new.secret.clone().unwrap_or_else(generate_secret);
    let sealed = key.seal(id, &secret);
    let attempt = retry::serializable_idempotent(|| async {
        let mut tx = retry::begin(pool).await?;
        let now = Utc::now();
        let position = match new.start {
            Start::Beginning => 0,
            Start::Now => {
                sqlx::query_scalar::<_, i64>("SELECT position FROM event_feed_head WHERE id = 1")
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or(0)
            }
        };
        sqlx::query(
            "INSERT INTO webhook_subscriptions (subscription_id, url, event_types, description, \
                 sealed_secret, status, created_at, updated_at, position, retry_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $7) \
             ON CONFLICT (subscription_id) DO NOTHING",
        )
        .bind(id)
        .bind(&new.url)
        .bind(&new.event_types)
        .bind(&new.description)
        .bind(&sealed)
        .bind(new.status.as_str())
        .bind(now)
        .bind(position)
        .execute(&mut *tx)
        .await?;
        let Some(subscription) = fetch(&mut tx, id).await? else {
            return Ok(Attempt::Refused(SubscriptionError::Internal(
                "a subscription just written cannot be read".into(),
            )));
        };
        let response = json_response(
            201,
            &StoredCreated {
                subscription,
                sealed_secret: hex::encode(&sealed),
            },
        );
        commit_with_record(tx, ctx, response).await
    })
    .await?;
    settle(pool, ctx, attempt).await
}

/// Changes a subscription. A new URL, types or secret apply to deliveries from the next round
/// on; `paused` stops deliveries (events keep their place: resuming delivers them).
pub async fn update(
    pool: &PgPool,
    key: &SealingKey,
    ctx: &CommandContext,
    id: Uuid,
    patch: SubscriptionPatch,
) -> Result<Reply, SubscriptionError> {
    if let Some(reply) = stored_answer(pool, ctx).await? {
        return Ok(reply);
    }
    let sealed = patch.secret.as_ref().map(|s| key.seal(id, s));
    let attempt = retry::serializable_idempotent(|| async {
        let mut tx = retry::begin(pool).await?;
        let changed = sqlx::query(
            "UPDATE webhook_subscriptions SET \
                 url = COALESCE($2, url), \
                 event_types = COALESCE($3, event_types), \
                 description = CASE WHEN $4 THEN $5 ELSE description END, \
                 sealed_secret = COALESCE($6, sealed_secret), \
                 status = COALESCE($7, status), \
                 retry_at = CASE WHEN $7 = 'active' THEN $8 ELSE retry_at END, \
                 failures = CASE WHEN $7 = 'active' THEN 0 ELSE failures END, \
                 updated_at = $8 \
             WHERE subscription_id = $1",
        )
        .bind(id)
        .bind(&patch.url)
        .bind(&patch.event_types)
        .bind(patch.description.is_some())
        .bind(patch.description.clone().flatten())
        .bind(&sealed)
        .bind(patch.status.map(|s| s.as_str()))
        .bind(Utc::now())
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(Attempt::Refused(SubscriptionError::NotFound {
                field: "subscription_id",
                id: id.to_string(),
            }));
        }
        let Some(subscription) = fetch(&mut tx, id).await? else {
            return Ok(Attempt::Refused(SubscriptionError::Internal(
                "a subscription just changed cannot be read".into(),
            )));
        };
        commit_with_record(tx, ctx, json_response(200, &subscription)).await
    })
    .await?;
    settle(pool, ctx, attempt).await
}

/// Removes a subscription with its retries and dead letters; a worker delivering it notices at
/// its next write and stops. Answers 204.
pub async fn delete(
    pool: &PgPool,
    ctx: &CommandContext,
    id: Uuid,
) -> Result<Reply, SubscriptionError> {
    if let Some(reply) = stored_answer(pool, ctx).await? {
        return Ok(reply);
    }
    let attempt = retry::serializable_idempotent(|| async {
        let mut tx = retry::begin(pool).await?;
        let gone = sqlx::query("DELETE FROM webhook_subscriptions WHERE subscription_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(Attempt::Refused(SubscriptionError::NotFound {
                field: "subscription_id",
                id: id.to_string(),
            }));
        }
        for table in ["webhook_retries", "webhook_dead_letters"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE subscription_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let response = StoredResponse {
            status: 204,
            headers: Vec::new(),
            body: Default::default(),
        };
        commit_with_record(tx, ctx, response).await
    })
    .await?;
    settle(pool, ctx, attempt).await
}

type DeadRow = (
    Uuid,
    Uuid,
    i64,
    Uuid,
    String,
    String,
    i32,
    Option<String>,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn dead_from(row: DeadRow) -> DeadLetter {
    DeadLetter {
        dead_letter_id: row.0,
        subscription_id: row.1,
        position: row.2,
        event_id: row.3,
        event_type: row.4,
        stream_id: row.5,
        attempts: row.6,
        last_error: row.7,
        status: row.8,
        dead_at: row.9,
        redelivered_at: row.10,
    }
}

const DEAD_COLUMNS: &str = "dead_letter_id, subscription_id, position, event_id, event_type, \
    stream_id, attempts, last_error, status, dead_at, redelivered_at";

/// A subscription's dead letters, newest first; `None` when the subscription does not exist.
pub async fn dead_letters(
    pool: &PgPool,
    id: Uuid,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Option<DeadLetterPage>, sqlx::Error> {
    retry::serializable(|| async {
        let mut tx = retry::begin(pool).await?;
        let exists: Option<Uuid> = sqlx::query_scalar(
            "SELECT subscription_id FROM webhook_subscriptions WHERE subscription_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let rows: Vec<DeadRow> = sqlx::query_as(&format!(
            "SELECT {DEAD_COLUMNS} FROM webhook_dead_letters \
             WHERE subscription_id = $1 AND ($2::text IS NULL OR status = $2) \
             ORDER BY dead_at DESC, dead_letter_id DESC LIMIT $3 OFFSET $4"
        ))
        .bind(id)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_dead_letters \
             WHERE subscription_id = $1 AND ($2::text IS NULL OR status = $2)",
        )
        .bind(id)
        .bind(status)
        .fetch_one(&mut *tx)
        .await?;
        retry::commit(tx).await?;
        Ok(Some(DeadLetterPage {
            items: rows.into_iter().map(dead_from).collect(),
            total,
        }))
    })
    .await
}

/// Sends a dead letter again: it goes back to the subscription's retries (ahead of the order's
/// later held-back events, by its position) with fresh attempts. Answers 202.
pub async fn redeliver(
    pool: &PgPool,
    ctx: &CommandContext,
    subscription_id: Uuid,
    dead_letter_id: Uuid,
) -> Result<Reply, SubscriptionError> {
    if let Some(reply) = stored_answer(pool, ctx).await? {
        return Ok(reply);
    }
    let attempt = retry::serializable_idempotent(|| async {
        let mut tx = retry::begin(pool).await?;
        let now = Utc::now();
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "UPDATE webhook_dead_letters SET status = 'redelivering' \
             WHERE dead_letter_id = $1 AND subscription_id = $2 \
             RETURNING position, stream_id, status",
        )
        .bind(dead_letter_id)
        .bind(subscription_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((position, stream_id, _)) = row else {
            tx.rollback().await?;
            return Ok(Attempt::Refused(SubscriptionError::NotFound {
                field: "dead_letter_id",
                id: dead_letter_id.to_string(),
            }));
        };
        sqlx::query(
            "INSERT INTO webhook_retries (subscription_id, position, stream_id, attempts, \
                 next_attempt_at, dead_letter_id) VALUES ($1, $2, $3, 0, $4, $5) \
             ON CONFLICT (subscription_id, position) DO NOTHING",
        )
        .bind(subscription_id)
        .bind(position)
        .bind(&stream_id)
        .bind(now)
        .bind(dead_letter_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_subscriptions SET retry_at = LEAST(retry_at, $2) \
             WHERE subscription_id = $1",
        )
        .bind(subscription_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let body = Redelivery {
            dead_letter_id,
            status: "redelivering".to_owned(),
        };
        commit_with_record(tx, ctx, json_response(202, &body)).await
    })
    .await?;
    settle(pool, ctx, attempt).await
}
