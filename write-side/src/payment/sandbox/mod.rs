//! The sandbox gateway: a SIMULATED card gateway that speaks Waybill's gateway protocol, for
//! development, tests, the demo and the benchmark. It moves no money and keeps everything in
//! memory; a restart forgets every authorization.
//!
//! [`state`] is the ledger (what each test card does, what may be captured, voided, refunded),
//! [`idempotency`] replays answers per `Idempotency-Key`, [`routes`] is the HTTP shell,
//! [`challenge`] renders the 3-D Secure page a person can click, and [`delivery`] sends the
//! signed webhooks. [`disputes`] simulates card holders' chargebacks and [`settlement`] writes
//! the daily settlement report (with switchable awkward cases). `write-side/PAYMENT-SANDBOX.md` documents the protocol and the test cards.

pub mod challenge;
pub mod delivery;
pub mod disputes;
pub mod idempotency;
mod operator;
pub mod routes;
pub mod settlement;
pub mod state;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use axum::Router;
use chrono::{TimeDelta, Utc};
use tokio::net::TcpListener;

use delivery::{DeliverySettings, Webhooks};
use idempotency::IdempotencyStore;
use state::{Ledger, Policy};

/// The sandbox server's settings.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Callers send `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// Where webhooks are POSTed; `None` records them without sending.
    pub webhook_url: Option<String>,
    /// HMAC-SHA256 key of the `Waybill-Gateway-Signature` header.
    pub webhook_secret: Vec<u8>,
    /// Base URL the sandbox is reached at (challenge URLs start with it), no trailing slash.
    pub public_url: String,
    /// How long an authorization can be captured (default 7 days).
    pub auth_validity: Duration,
    /// How long a 3-D Secure challenge waits for the customer (default 10 minutes).
    pub challenge_validity: Duration,
    /// How late the slow test card answers (default 3 s).
    pub slow_response: Duration,
    /// Delivery attempts per webhook before giving up (default 8).
    pub webhook_max_attempts: u32,
    /// Wait after the first failed attempt; doubles up to 10 s (default 200 ms).
    pub webhook_initial_backoff: Duration,
    /// Timeout of one webhook POST (default 5 s).
    pub webhook_timeout: Duration,
}

impl SandboxConfig {
    /// Defaults for everything but the key, the webhook secret and the public URL.
    pub fn new(
        api_key: impl Into<String>,
        webhook_secret: impl Into<Vec<u8>>,
        public_url: impl Into<String>,
    ) -> Self {
        Self {
            api_key: api_key.into(),
            webhook_url: None,
            webhook_secret: webhook_secret.into(),
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            auth_validity: Duration::from_secs(7 * 24 * 3600),
            challenge_validity: Duration::from_secs(10 * 60),
            slow_response: Duration::from_secs(3),
            webhook_max_attempts: 8,
            webhook_initial_backoff: Duration::from_millis(200),
            webhook_timeout: Duration::from_secs(5),
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    ledger: Mutex<Ledger>,
    idempotency: Mutex<IdempotencyStore>,
    webhooks: Arc<Webhooks>,
    /// The awkward cases settlement reports contain (switched by an operator endpoint).
    quirks: Mutex<Vec<settlement::Quirk>>,
}

impl Sandbox {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn quirks(&self) -> MutexGuard<'_, Vec<settlement::Quirk>> {
        self.quirks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn idempotency(&self) -> MutexGuard<'_, IdempotencyStore> {
        self.idempotency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// The sandbox's routes, with its webhook delivery and challenge-expiry tasks started. Call it
/// inside a Tokio runtime; the tasks end once the router (and every clone) is dropped.
pub fn router(config: SandboxConfig) -> Router {
    let policy = Policy {
        public_url: config.public_url.clone(),
        auth_validity: delta(config.auth_validity),
        challenge_validity: delta(config.challenge_validity),
    };
    let webhooks = Webhooks::start(DeliverySettings {
        url: config.webhook_url.clone(),
        secret: config.webhook_secret.clone(),
        max_attempts: config.webhook_max_attempts,
        initial_backoff: config.webhook_initial_backoff,
        request_timeout: config.webhook_timeout,
    });
    let sweep_every =
        (config.challenge_validity / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let sandbox = Arc::new(Sandbox {
        config,
        ledger: Mutex::new(Ledger::new(policy)),
        idempotency: Mutex::new(IdempotencyStore::default()),
        webhooks,
        quirks: Mutex::new(Vec::new()),
    });
    tokio::spawn(expire_challenges(Arc::downgrade(&sandbox), sweep_every));
    routes::routes(sandbox)
}

/// Serves the sandbox on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: SandboxConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        public_url = %config.public_url,
        "sandbox payment gateway (simulated, in memory) listening"
    );
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Fails challenges left past their deadline and sends their `authorization.failed` webhooks.
async fn expire_challenges(sandbox: Weak<Sandbox>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(sandbox) = sandbox.upgrade() else {
            return;
        };
        let now = Utc::now();
        let expired = sandbox.ledger().expire_challenges(now);
        for event in expired {
            sandbox.webhooks.emit(event, now);
        }
    }
}
