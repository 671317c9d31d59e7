//! The sent-once ledger: the table `notification_deliveries` in the event store's database, one
//! row per message keyed by `(event id, medium)`. It is what makes a message go out once per
//! event and medium whatever happens to the view's Redis state (a `FLUSHALL` makes the runtime
//! replay the order from the log) or to NATS (a redelivered event): before a message is handed
//! to a provider its row is claimed, after the provider accepted it the row says `sent`, and a
//! `sent` row is never claimed again.
//!
//! A claim is held by one sender (`claimed_by`, unique per process) for [`Ledger::claim_for`]
//! and may be taken over after that. What remains: a sender killed after the provider accepted a
//! message and before [`Ledger::settle`] committed leaves a `sending` row; once its claim
//! lapses the message is sent again with the same identity (`Message-ID` for email,
//! `Idempotency-Key` for SMS), so a provider that de-duplicates by it (the SMS sandbox does,
//! like real SMS APIs) drops the repeat, and a mail client that de-duplicates by Message-ID
//! shows one. An SMTP server does not de-duplicate: that window (milliseconds per message) is
//! the one place a second email can still happen, and only under a crash inside it. The
//! messages a sender sends at once are settled together, so that window is as long as the
//! slowest of them.
//!
//! Every statement runs SERIALIZABLE with the event store's retry (CockroachDB semantics).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::OrderId;
use waybill_write_side::event_store::retry;

use super::render::{Medium, Notification};

/// How a message the provider answered ended, for [`Ledger::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled<'a> {
    /// The provider accepted it under `provider_id`.
    Sent { provider_id: &'a str },
    /// The provider refused it for good.
    Refused { error: &'a str },
}

impl Settled<'_> {
    fn status(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "sent",
            Self::Refused { .. } => "failed",
        }
    }
}

const SETTLE: &str = "UPDATE notification_deliveries d \
       SET status = x.status, provider_id = COALESCE(x.provider_id, d.provider_id), \
           last_error = COALESCE(x.error, d.last_error), \
           sent_at = CASE WHEN x.status = 'sent' THEN now() ELSE d.sent_at END, \
           claimed_until = now() \
      FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) \
           AS x(event_id, medium, status, provider_id, error) \
     WHERE d.event_id = x.event_id AND d.medium = x.medium AND d.status = 'sending'";

/// What a claim found for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This sender holds the row now: send it (`attempt` counts claims, 1 the first).
    Send { attempt: i32 },
    /// The provider accepted it already: send nothing.
    AlreadySent,
    /// The provider refused it for good earlier (an invalid address): send nothing.
    Refused,
    /// Another live sender holds it; try again after its claim lapses.
    HeldElsewhere,
}

/// One row of the ledger, as the demo, tests and operators read it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct DeliveryRecord {
    pub event_id: Uuid,
    pub medium: String,
    pub order_id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub locale: String,
    pub status: String,
    pub attempts: i32,
    pub provider_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

const CLAIM: &str = "INSERT INTO notification_deliveries \
       (event_id, medium, order_id, kind, recipient, locale, status, attempts, claimed_by, \
        claimed_until, created_at) \
     SELECT e, m, o, k, r, l, 'sending', 1, $7, now() + $8::float8 * interval '1 millisecond', \
            now() \
       FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[]) \
            AS x(e, m, o, k, r, l) \
     ON CONFLICT (event_id, medium) DO UPDATE \
        SET attempts = notification_deliveries.attempts + 1, \
            claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until, \
            recipient = excluded.recipient, locale = excluded.locale \
      WHERE notification_deliveries.status = 'sending' \
        AND (notification_deliveries.claimed_until < now() \
             OR notification_deliveries.claimed_by = excluded.claimed_by) \
     RETURNING event_id, medium, attempts";

const STATUS_OF: &str = "SELECT event_id, medium, status FROM notification_deliveries \
     WHERE (event_id, medium) IN (SELECT * FROM UNNEST($1::uuid[], $2::text[]))";

/// The ledger of one sender.
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: PgPool,
    sender: String,
    claim_for: Duration,
}

impl Ledger {
    /// A ledger for a new sender (this process) holding claims for 30 s.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            sender: Uuid::now_v7().to_string(),
            claim_for: Duration::from_secs(30),
        }
    }

    /// How long a claim keeps other senders off a message.
    pub fn with_claim_for(mut self, claim_for: Duration) -> Self {
        self.claim_for = claim_for;
        self
    }

    pub fn claim_for(&self) -> Duration {
        self.claim_for
    }

    /// Claims each message (in order; `messages` must not repeat an id) and says what to do
    /// with it.
    pub async fn claim(&self, messages: &[Notification]) -> Result<Vec<Claim>, sqlx::Error> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let events: Vec<Uuid> = messages.iter().map(|m| m.event_id).collect();
        let media: Vec<&str> = messages.iter().map(|m| m.medium.as_str()).collect();
        let orders: Vec<Uuid> = messages.iter().map(|m| m.order_id.as_uuid()).collect();
        let kinds: Vec<&str> = messages.iter().map(|m| m.kind.as_str()).collect();
        let recipients: Vec<&str> = messages.iter().map(|m| m.to.as_str()).collect();
        let locales: Vec<&str> = messages.iter().map(|m| m.locale.as_str()).collect();
        let claim_ms = self.claim_for.as_millis() as f64;
        // Repeating the claim after an unknown commit finds its own rows (claimed_by is ours).
        let (claimed, statuses) = retry::serializable_idempotent(|| async {
            let mut tx = retry::begin(&self.pool).await?;
            let claimed: Vec<(Uuid, String, i32)> = sqlx::query_as(CLAIM)
                .bind(&events)
                .bind(&media)
                .bind(&orders)
                .bind(&kinds)
                .bind(&recipients)
                .bind(&locales)
                .bind(&self.sender)
                .bind(claim_ms)
                .fetch_all(&mut *tx)
                .await?;
            let statuses: Vec<(Uuid, String, String)> = sqlx::query_as(STATUS_OF)
                .bind(&events)
                .bind(&media)
                .fetch_all(&mut *tx)
                .await?;
            retry::commit(tx).await?;
            Ok((claimed, statuses))
        })
        .await?;
        let claimed: HashMap<(Uuid, String), i32> = claimed
            .into_iter()
            .map(|(event, medium, attempt)| ((event, medium), attempt))
            .collect();
        let statuses: HashMap<(Uuid, String), String> = statuses
            .into_iter()
            .map(|(event, medium, status)| ((event, medium), status))
            .collect();
        Ok(messages
            .iter()
            .map(|m| {
                let key = (m.event_id, m.medium.as_str().to_owned());
                if let Some(&attempt) = claimed.get(&key) {
                    return Claim::Send { attempt };
                }
                match statuses.get(&key).map(String::as_str) {
                    Some("sent") => Claim::AlreadySent,
                    Some("failed") => Claim::Refused,
                    _ => Claim::HeldElsewhere,
                }
            })
            .collect())
    }

    /// Records how each of `outcomes` ended, in one statement: `sent` with the provider's id,
    /// or `failed` for a message the provider refused for good (it is not tried again). A row
    /// another sender took over meanwhile (no longer `sending`) is left as it is.
    pub async fn settle(
        &self,
        outcomes: &[(&Notification, Settled<'_>)],
    ) -> Result<(), sqlx::Error> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let events: Vec<Uuid> = outcomes.iter().map(|(m, _)| m.event_id).collect();
        let media: Vec<&str> = outcomes.iter().map(|(m, _)| m.medium.as_str()).collect();
        let statuses: Vec<&str> = outcomes.iter().map(|(_, s)| s.status()).collect();
        let provider_ids: Vec<Option<&str>> = outcomes
            .iter()
            .map(|(_, s)| match s {
                Settled::Sent { provider_id } => Some(*provider_id),
                Settled::Refused { .. } => None,
            })
            .collect();
        let errors: Vec<Option<String>> = outcomes
            .iter()
            .map(|(_, s)| match s {
                Settled::Sent { .. } => None,
                Settled::Refused { error } => Some(truncated(error)),
            })
            .collect();
        // One statement, its own SERIALIZABLE transaction; repeating it after an unknown
        // outcome changes nothing more (only `sending` rows are touched).
        retry::serializable_idempotent(|| {
            retry::single_statement(
                sqlx::query(SETTLE)
                    .bind(&events)
                    .bind(&media)
                    .bind(&statuses)
                    .bind(&provider_ids)
                    .bind(&errors)
                    .execute(&self.pool),
            )
        })
        .await
        .map(|_| ())
    }

    /// Sending failed for now: the error is noted, the claim stays this sender's until it
    /// lapses (the same sender retries sooner).
    pub async fn note_error(&self, message: &Notification, error: &str) -> Result<(), sqlx::Error> {
        let (event_id, medium) = (message.event_id, message.medium.as_str());
        retry::serializable_idempotent(|| async {
            let mut tx = retry::begin(&self.pool).await?;
            sqlx::query(
                "UPDATE notification_deliveries SET last_error = $3 \
                 WHERE event_id = $1 AND medium = $2 AND status = 'sending'",
            )
            .bind(event_id)
            .bind(medium)
            .bind(truncated(error))
            .execute(&mut *tx)
            .await?;
            retry::commit(tx).await
        })
        .await
    }

    /// Every message of one order, oldest first.
    pub async fn of_order(&self, order_id: OrderId) -> Result<Vec<DeliveryRecord>, sqlx::Error> {
        of_order(&self.pool, order_id).await
    }
}

/// Every message of one order in the ledger of `pool`'s database, oldest first.
pub async fn of_order(
    pool: &PgPool,
    order_id: OrderId,
) -> Result<Vec<DeliveryRecord>, sqlx::Error> {
    retry::serializable(|| {
        sqlx::query_as(
            "SELECT event_id, medium, order_id, kind, recipient, locale, status, attempts, \
                    provider_id, last_error, created_at, sent_at \
               FROM notification_deliveries WHERE order_id = $1 \
              ORDER BY created_at, event_id, medium",
        )
        .bind(order_id.as_uuid())
        .fetch_all(pool)
    })
    .await
}

/// Errors are kept short: a provider's answer is not a log.
fn truncated(error: &str) -> String {
    error.chars().take(500).collect()
}

/// The medium of a ledger row.
pub fn medium_of(record: &DeliveryRecord) -> Option<Medium> {
    Medium::from_name(&record.medium)
}
