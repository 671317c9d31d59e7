//! [`Delivery`]: the sink the notifications view hands its messages to when it sends for real.
//! For each batch it
//!
//! 1. applies each customer's preferences (`notification_preferences`, read once per batch):
//!    drops the media they turned off (an agent's resend naming a medium still goes) and
//!    re-words the rest in their locale;
//! 2. claims every message in the sent-once [`Ledger`]; a message already sent or refused for
//!    good is skipped, one claimed by another live sender makes the batch fail for now (the
//!    projector tries it again, and takes over once that claim lapses);
//! 3. sends what it claimed through the medium's [`Channel`] with retries and backoff
//!    ([`RetryPolicy`]), a few at a time, and records the outcomes of each few in the ledger in
//!    one statement: `sent` with the provider's id, or `failed` when the provider refused it
//!    for good. A provider still failing after the retries fails the batch, so its events are
//!    not acknowledged and come back; what was sent meanwhile is `sent` in the ledger and is
//!    skipped then.

use std::collections::BTreeSet;
use std::sync::Arc;

use sqlx::PgPool;
use tracing::Instrument;
use waybill_write_side::notification_preferences;

use super::channel::{Channel, RetryPolicy, SendError};
use super::ledger::{Claim, Ledger, Settled};
use super::render::{Medium, Notification};
use super::sink::{NotificationSink, SinkError};

/// Messages sent at once.
const CONCURRENCY: usize = 8;

/// Sends through a channel per medium, once per message, by the ledger.
#[derive(Clone)]
pub struct Delivery {
    pool: PgPool,
    ledger: Ledger,
    email: Arc<dyn Channel>,
    sms: Arc<dyn Channel>,
    retry: RetryPolicy,
}

impl Delivery {
    pub fn new(pool: PgPool, email: Arc<dyn Channel>, sms: Arc<dyn Channel>) -> Self {
        Self {
            ledger: Ledger::new(pool.clone()),
            pool,
            email,
            sms,
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_ledger(mut self, ledger: Ledger) -> Self {
        self.ledger = ledger;
        self
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn channel(&self, medium: Medium) -> &dyn Channel {
        match medium {
            Medium::Email => self.email.as_ref(),
            Medium::Sms => self.sms.as_ref(),
        }
    }

    /// The messages as the customers want them: their media, their locale.
    async fn as_preferred(
        &self,
        messages: Vec<Notification>,
    ) -> Result<Vec<Notification>, SinkError> {
        let customers: Vec<String> = messages
            .iter()
            .filter_map(|m| m.draft.contact.customer_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let preferences = notification_preferences::load_many(&self.pool, &customers)
            .await
            .map_err(|e| SinkError::Unavailable(format!("reading preferences: {e}")))?;
        Ok(messages
            .into_iter()
            .filter_map(|message| {
                let chosen = message
                    .draft
                    .contact
                    .customer_id
                    .as_ref()
                    .and_then(|c| preferences.get(c));
                match chosen {
                    None => Some(message),
                    Some(stored) => {
                        let wanted = stored.preferences.media.contains(&message.medium);
                        if !wanted && !message.requested {
                            metrics::counter!("waybill_notifications_opted_out_total", "medium" => message.medium.as_str())
                                .increment(1);
                            return None;
                        }
                        Some(message.in_locale(stored.preferences.locale))
                    }
                }
            })
            .collect())
    }

    /// Sends one claimed message through its medium's channel, with the retries.
    async fn send_claimed(
        &self,
        message: &Notification,
        attempt: i32,
    ) -> Result<String, SendError> {
        let span = tracing::info_span!(
            "notification.send",
            order_id = %message.order_id,
            message = %message.id(),
            kind = message.kind.as_str(),
            medium = message.medium.as_str(),
            attempt
        );
        self.retry
            .send(self.channel(message.medium), message)
            .instrument(span)
            .await
            .map(|accepted| accepted.provider_id)
    }

    /// Records what became of messages sent together, in one ledger statement; the first
    /// message to be tried again (`Err`) once the others are recorded.
    async fn record(
        &self,
        sent: &[(&Notification, Result<String, SendError>)],
    ) -> Result<(), SinkError> {
        let settled: Vec<(&Notification, Settled<'_>)> = sent
            .iter()
            .filter_map(|(message, outcome)| match outcome {
                Ok(provider_id) => Some((*message, Settled::Sent { provider_id })),
                Err(SendError::Permanent(error)) => Some((*message, Settled::Refused { error })),
                Err(SendError::Transient(_)) => None,
            })
            .collect();
        self.ledger
            .settle(&settled)
            .await
            .map_err(|e| SinkError::Unavailable(format!("ledger: {e}")))?;
        let mut retry = None;
        for (message, outcome) in sent {
            let (order_id, id, medium) = (message.order_id, message.id(), message.medium.as_str());
            match outcome {
                Ok(provider_id) => {
                    metrics::counter!(
                        "waybill_notifications_sent_total",
                        "kind" => message.kind.as_str(),
                        "medium" => medium
                    )
                    .increment(1);
                    tracing::info!(%order_id, message = %id, medium, %provider_id, "notification sent");
                }
                Err(SendError::Permanent(error)) => {
                    metrics::counter!("waybill_notifications_refused_total", "medium" => medium)
                        .increment(1);
                    tracing::warn!(%order_id, message = %id, medium, %error, "notification refused by the provider; not retried");
                }
                Err(SendError::Transient(error)) => {
                    // Best effort: the error is for operators; the claim holds either way.
                    let _ = self.ledger.note_error(message, error).await;
                    retry.get_or_insert_with(|| {
                        SinkError::Unavailable(format!("{medium} provider: {error}"))
                    });
                }
            }
        }
        retry.map_or(Ok(()), Err)
    }
}

impl NotificationSink for Delivery {
    async fn forget(&self, orders: Vec<waybill_schemas::OrderId>) -> Result<(), SinkError> {
        for channel in [&self.email, &self.sms] {
            channel
                .forget(&orders)
                .await
                .map_err(|e| SinkError::Unavailable(format!("forgetting messages: {e}")))?;
        }
        Ok(())
    }

    async fn deliver(&self, messages: Vec<Notification>) -> Result<(), SinkError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut seen = BTreeSet::new();
        let messages: Vec<Notification> = self
            .as_preferred(messages)
            .await?
            .into_iter()
            .filter(|m| seen.insert(m.id()))
            .collect();
        let claims = self
            .ledger
            .claim(&messages)
            .await
            .map_err(|e| SinkError::Unavailable(format!("ledger: {e}")))?;
        let mut held = 0;
        let mut to_send = Vec::new();
        for (message, claim) in messages.iter().zip(claims) {
            match claim {
                Claim::Send { attempt } => to_send.push((message, attempt)),
                Claim::AlreadySent | Claim::Refused => {
                    metrics::counter!("waybill_notifications_duplicates_skipped_total", "medium" => message.medium.as_str())
                        .increment(1);
                    tracing::info!(order_id = %message.order_id, message = %message.id(), "notification already settled; not sent again");
                }
                Claim::HeldElsewhere => held += 1,
            }
        }
        let mut retry = None;
        for chunk in to_send.chunks(CONCURRENCY) {
            let sends = chunk.iter().map(|&(message, attempt)| async move {
                (message, self.send_claimed(message, attempt).await)
            });
            let sent = futures::future::join_all(sends).await;
            if let Err(error) = self.record(&sent).await {
                retry.get_or_insert(error);
            }
        }
        if let Some(error) = retry {
            return Err(error);
        }
        if held > 0 {
            return Err(SinkError::Unavailable(format!(
                "{held} messages are being sent by another sender; trying again after its claim lapses"
            )));
        }
        Ok(())
    }
}
