//! The sandbox gateway: a SIMULATED card gateway that speaks Waybill's gateway protocol, for
//! development, tests, the demo and the benchmark. It moves no money. With a state directory
//! ([`SandboxConfig::state_dir`]) it keeps its authorizations, captures, refunds, disputes,
//! answered idempotency keys and settlement quirks in a file replaced atomically after every
//! change ([`crate::state_file`]), saved before it answers or sends the webhook the change
//! causes: a restarted sandbox knows every capture it ever confirmed, as a real gateway does.
//! Without one it keeps everything in memory and a restart forgets it all.
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
use chrono::{DateTime, TimeDelta, Utc};
use tokio::net::TcpListener;

use crate::payment::webhook::GatewayEventKind;
use crate::state_file::{StateFile, StateFileError};
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
    /// Where the state is saved (`payment-sandbox.json`); `None`: in memory only.
    pub state_dir: Option<std::path::PathBuf>,
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
            state_dir: None,
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
    /// Where the state is saved, if anywhere.
    state_file: Option<StateFile>,
}

/// What the sandbox saves: everything but webhook deliveries (a delivery still queued when
/// the process dies is not sent again; Waybill has the operation's answer already).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Persisted {
    ledger: state::LedgerSnapshot,
    answers: Vec<idempotency::SavedAnswer>,
    quirks: Vec<settlement::Quirk>,
}

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "payment-sandbox";

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

    /// Saves the state (after a change, before answering it or sending its webhooks).
    async fn save(&self) -> Result<(), StateFileError> {
        let Some(file) = &self.state_file else {
            return Ok(());
        };
        file.save(|| {
            let persisted = Persisted {
                ledger: self.ledger().snapshot(),
                answers: self.idempotency().snapshot(),
                quirks: self.quirks().clone(),
            };
            serde_json::to_vec(&persisted).unwrap_or_default()
        })
        .await
    }

    /// Saves the state, then queues the webhooks of the change. A failed save is logged and
    /// the webhooks are still sent (what happened, happened; the next save writes it).
    async fn commit(&self, events: Vec<GatewayEventKind>, now: DateTime<Utc>) {
        if let Err(error) = self.save().await {
            tracing::error!(%error, "sandbox state not saved");
        }
        for event in events {
            self.webhooks.emit(event, now);
        }
    }
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// The sandbox's routes, with its webhook delivery and challenge-expiry tasks started, and its
/// state loaded from the state directory when it has one. Call it inside a Tokio runtime; the
/// tasks end once the router (and every clone) is dropped.
pub fn router(config: SandboxConfig) -> Result<Router, StateFileError> {
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
    let state_file = match &config.state_dir {
        Some(dir) => Some(StateFile::open(dir, STATE_FILE)?),
        None => None,
    };
    let saved: Persisted = match &state_file {
        Some(file) => file.load()?.unwrap_or_default(),
        None => Persisted::default(),
    };
    if let Some(file) = &state_file {
        tracing::info!(
            path = %file.path().display(),
            answers = saved.answers.len(),
            "payment sandbox state loaded"
        );
    }
    let sandbox = Arc::new(Sandbox {
        config,
        ledger: Mutex::new(Ledger::restore(policy, saved.ledger)),
        idempotency: Mutex::new(IdempotencyStore::restore(saved.answers)),
        webhooks,
        quirks: Mutex::new(saved.quirks),
        state_file,
    });
    tokio::spawn(expire_challenges(Arc::downgrade(&sandbox), sweep_every));
    Ok(routes::routes(sandbox))
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
        state_dir = ?config.state_dir,
        "sandbox payment gateway (simulated) listening"
    );
    let router = router(config).map_err(std::io::Error::other)?;
    axum::serve(listener, router)
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
        if !expired.is_empty() {
            sandbox.commit(expired, now).await;
        }
    }
}
