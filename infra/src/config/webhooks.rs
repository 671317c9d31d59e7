//! Webhook subscriptions: the key their secrets are sealed under (command API and delivery
//! workers) and how the delivery worker (`serve webhooks`) sends and retries.

use std::time::Duration;

use clap::Args;
use waybill_write_side::subscriptions::delivery::{RetryPolicy, WorkerConfig};

#[derive(Debug, Clone, Args)]
pub struct WebhookSettings {
    /// Key that subscription secrets are sealed under at rest: 64 hex characters
    /// (`openssl rand -hex 32`), or any text of at least 32 characters (hashed). The same in
    /// the command API and every delivery worker. Unset: generated into
    /// `<secrets dir>/webhook-sealing-key` (development only: separately started processes
    /// share it through that directory).
    #[arg(
        long,
        env = "WAYBILL_WEBHOOK_SEALING_KEY",
        global = true,
        hide_env_values = true
    )]
    pub webhook_sealing_key: Option<String>,
    /// One delivery's time limit (ms).
    #[arg(
        long,
        env = "WAYBILL_WEBHOOK_TIMEOUT_MS",
        global = true,
        default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(100..=60_000)
    )]
    pub webhook_timeout_ms: u64,
    /// Attempts of one event before it becomes a dead letter.
    #[arg(
        long,
        env = "WAYBILL_WEBHOOK_MAX_ATTEMPTS",
        global = true,
        default_value_t = 12,
        value_parser = clap::value_parser!(u32).range(1..=100)
    )]
    pub webhook_max_attempts: u32,
    /// Wait after an event's first failed delivery (ms); doubles per failure, with jitter.
    #[arg(
        long,
        env = "WAYBILL_WEBHOOK_RETRY_BASE_MS",
        global = true,
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000)
    )]
    pub webhook_retry_base_ms: u64,
    /// Longest wait between attempts, and between rounds of an endpoint that answers nothing (ms).
    #[arg(
        long,
        env = "WAYBILL_WEBHOOK_MAX_BACKOFF_MS",
        global = true,
        default_value_t = 300_000,
        value_parser = clap::value_parser!(u64).range(10..=86_400_000)
    )]
    pub webhook_max_backoff_ms: u64,
    /// Orders delivered at once to one endpoint (each order's events one after the other).
    #[arg(
        long,
        env = "WAYBILL_WEBHOOK_CONCURRENCY",
        global = true,
        default_value_t = 64,
        value_parser = clap::value_parser!(u64).range(1..=1_024)
    )]
    pub webhook_concurrency: u64,
    /// Endpoints one worker delivers at once.
    #[arg(
        long,
        env = "WAYBILL_WEBHOOK_SUBSCRIPTIONS_PER_WORKER",
        global = true,
        default_value_t = 16,
        value_parser = clap::value_parser!(u64).range(1..=1_024)
    )]
    pub webhook_subscriptions_per_worker: u64,
    /// Events read from the feed per round.
    #[arg(
        long,
        env = "WAYBILL_WEBHOOK_BATCH",
        global = true,
        default_value_t = 500,
        value_parser = clap::value_parser!(i64).range(1..=10_000)
    )]
    pub webhook_batch: i64,
    /// An endpoint's lease: a worker that dies holding it passes it on after this long (ms).
    #[arg(
        long,
        env = "WAYBILL_WEBHOOK_LEASE_MS",
        global = true,
        default_value_t = 60_000,
        value_parser = clap::value_parser!(u64).range(1_000..=3_600_000)
    )]
    pub webhook_lease_ms: u64,
}

impl WebhookSettings {
    /// The worker's configuration.
    pub fn worker(&self) -> WorkerConfig {
        let lease = Duration::from_millis(self.webhook_lease_ms);
        WorkerConfig {
            batch: self.webhook_batch,
            concurrency: self.webhook_concurrency as usize,
            subscriptions: self.webhook_subscriptions_per_worker as usize,
            lease,
            timeout: Duration::from_millis(self.webhook_timeout_ms),
            round_budget: lease / 3,
            policy: RetryPolicy {
                max_attempts: self.webhook_max_attempts as i32,
                base: Duration::from_millis(self.webhook_retry_base_ms),
                max_backoff: Duration::from_millis(self.webhook_max_backoff_ms),
            },
            ..WorkerConfig::default()
        }
    }
}
