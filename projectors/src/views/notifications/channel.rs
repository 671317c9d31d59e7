//! A [`Channel`] takes one message to a provider: email over SMTP ([`super::smtp`]), text
//! messages over an SMS provider's HTTP API ([`super::sms`]), or, in development, a file
//! ([`FileSink`]). It tells a refusal for good (an address the provider will never take) from a
//! failure worth retrying (the server is down, busy, or timed out); the retries themselves, with
//! backoff, are [`RetryPolicy`]'s.

use std::time::Duration;

use futures::future::BoxFuture;

use waybill_schemas::OrderId;

use super::render::Notification;
use super::sink::FileSink;

/// What a provider said when it took a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id for the message (SMTP: the Message-ID we sent; SMS: the provider's).
    pub provider_id: String,
}

/// Why a message did not go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (connection refused, timeout, 4xx SMTP reply, HTTP 5xx/429).
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The provider will never take it (5xx SMTP reply to the recipient, HTTP 4xx).
    #[error("refused: {0}")]
    Permanent(String),
}

/// Takes one message to its provider. Must be idempotent per [`Notification::id`] as far as
/// the provider allows (the id goes out as the Message-ID / Idempotency-Key).
pub trait Channel: Send + Sync + 'static {
    fn send<'a>(&'a self, message: &'a Notification) -> BoxFuture<'a, Result<Accepted, SendError>>;

    /// Removes whatever the channel keeps of the messages of `orders` (an erasure): the file
    /// channel its files; providers that only send keep nothing.
    fn forget<'a>(&'a self, orders: &'a [OrderId]) -> BoxFuture<'a, Result<(), SendError>> {
        let _ = orders;
        Box::pin(async { Ok(()) })
    }
}

/// Retries with exponential backoff: `attempts` tries in all, the first retry after `first`,
/// doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 4 tries within about 1.4 s: a provider that is down longer is retried by the projector
    /// (the batch fails and is tried again), not by holding one batch.
    fn default() -> Self {
        Self {
            attempts: 4,
            first: Duration::from_millis(200),
            max: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 = the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        self.first
            .saturating_mul(1 << retry.saturating_sub(1).min(16))
            .min(self.max)
    }

    /// Sends `message` through `channel`, retrying transient failures.
    pub async fn send(
        &self,
        channel: &dyn Channel,
        message: &Notification,
    ) -> Result<Accepted, SendError> {
        let mut tried = 0;
        loop {
            tried += 1;
            match channel.send(message).await {
                Err(SendError::Transient(error)) if tried < self.attempts.max(1) => {
                    metrics::counter!("waybill_notifications_retries_total", "medium" => message.medium.as_str())
                        .increment(1);
                    tracing::info!(
                        order_id = %message.order_id,
                        message = %message.id(),
                        tried,
                        %error,
                        "notification provider failed; retrying"
                    );
                    tokio::time::sleep(self.delay(tried)).await;
                }
                outcome => return outcome,
            }
        }
    }
}

impl Channel for FileSink {
    fn send<'a>(&'a self, message: &'a Notification) -> BoxFuture<'a, Result<Accepted, SendError>> {
        Box::pin(async move {
            let sink = self.clone();
            let owned = message.clone();
            tokio::task::spawn_blocking(move || sink.write_one(&owned))
                .await
                .map_err(|e| SendError::Transient(e.to_string()))?
                .map_err(|e| SendError::Transient(e.to_string()))?;
            Ok(Accepted {
                provider_id: FileSink::file_name(message),
            })
        })
    }

    fn forget<'a>(&'a self, orders: &'a [OrderId]) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let sink = self.clone();
            let orders = orders.to_vec();
            tokio::task::spawn_blocking(move || sink.forget_orders(&orders))
                .await
                .map_err(|e| SendError::Transient(e.to_string()))?
                .map_err(|e| SendError::Transient(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::testing::*;
    use crate::views::notifications::render::{render, Links, OrderContact};
    use waybill_schemas::{OrderEvent, OrderId};

    /// Fails with `failure` the first `failures` times, then accepts.
    struct Flaky {
        failures: u32,
        failure: SendError,
        calls: Arc<AtomicU32>,
    }

    impl Channel for Flaky {
        fn send<'a>(
            &'a self,
            _message: &'a Notification,
        ) -> BoxFuture<'a, Result<Accepted, SendError>> {
            Box::pin(async move {
                let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                if call <= self.failures {
                    Err(self.failure.clone())
                } else {
                    Ok(Accepted {
                        provider_id: format!("p{call}"),
                    })
                }
            })
        }
    }

    fn a_message() -> Notification {
        let order = OrderId::new_v7();
        let placed = placed_event(order, 1);
        let OrderEvent::OrderPlaced(p) = placed.decode().expect("decodes") else {
            panic!("placement")
        };
        let links = Links {
            public_tracking_base_url: "https://shop.example".into(),
            tracking: waybill_schemas::access::TrackingKeys::new(b"s".as_slice()),
        };
        let contact = OrderContact::from_placed(&p);
        render(
            &contact,
            &placed.decode().expect("decodes"),
            &placed,
            &links,
        )
        .remove(0)
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            first: Duration::from_millis(1),
            max: Duration::from_millis(4),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_the_provider_takes_it() {
        let calls = Arc::new(AtomicU32::new(0));
        let flaky = Flaky {
            failures: 3,
            failure: SendError::Transient("503".into()),
            calls: calls.clone(),
        };
        let accepted = fast().send(&flaky, &a_message()).await.expect("sent");
        assert_eq!(accepted.provider_id, "p4");
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn retries_stop_at_the_limit_and_a_refusal_is_never_retried() {
        let calls = Arc::new(AtomicU32::new(0));
        let down = Flaky {
            failures: 10,
            failure: SendError::Transient("down".into()),
            calls: calls.clone(),
        };
        assert!(matches!(
            fast().send(&down, &a_message()).await,
            Err(SendError::Transient(_))
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        let calls = Arc::new(AtomicU32::new(0));
        let refusing = Flaky {
            failures: 10,
            failure: SendError::Permanent("no such user".into()),
            calls: calls.clone(),
        };
        assert!(matches!(
            fast().send(&refusing, &a_message()).await,
            Err(SendError::Permanent(_))
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1), Duration::from_millis(200));
        assert_eq!(policy.delay(2), Duration::from_millis(400));
        assert_eq!(policy.delay(3), Duration::from_millis(800));
        assert_eq!(policy.delay(5), Duration::from_secs(2));
    }
}
