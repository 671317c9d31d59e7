//! The binary's one typed configuration: every setting is a flag and an environment variable,
//! with defaults that work on a developer machine with the services from `infra/scripts`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod desk;
mod nats;
mod search;
mod webhooks;
pub use desk::DeskSettings;
pub use nats::{NatsSettings, NatsSettingsError};
pub use search::ElasticSettings;
pub use webhooks::WebhookSettings;

#[derive(Debug, Parser)]
#[command(
    name = "waybill",
    version,
    about = "Waybill order management: run the services, migrate, demo and benchmark",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

/// Connection and service settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Postgres event store (the database is created by `migrate` if missing).
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "postgres://postgres@127.0.0.1:5432/waybill"
    )]
    pub database_url: String,
    /// Most Postgres connections per process.
    #[arg(
        long,
        env = "WAYBILL_DB_MAX_CONNECTIONS",
        global = true,
        default_value_t = 16
    )]
    pub db_max_connections: u32,

    /// Where the payment and logistics sandboxes keep their state (`payment-sandbox.json`,
    /// `logistics-sandbox.json`, replaced atomically after every change), so a restarted
    /// sandbox still knows its captures and parcels as a real gateway and carrier would.
    /// Unset: in memory only, forgotten on restart.
    #[arg(long, env = "WAYBILL_SANDBOX_STATE_DIR", global = true)]
    pub sandbox_state_dir: Option<std::path::PathBuf>,

    /// NATS server, or a cluster's servers comma-separated (`nats://a:4222,nats://b:4222`).
    #[arg(
        long,
        env = "NATS_URL",
        global = true,
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    #[command(flatten)]
    pub nats: NatsSettings,
    /// JetStream stream the relay publishes to and the projectors consume.
    #[arg(
        long,
        env = "WAYBILL_NATS_STREAM",
        global = true,
        default_value = "ORDERS"
    )]
    pub nats_stream: String,
    /// Subject root: events go to `<root>.v1.<partition>.<event_type>`.
    #[arg(
        long,
        env = "WAYBILL_SUBJECT_ROOT",
        global = true,
        default_value = "orders"
    )]
    pub subject_root: String,
    #[arg(long, env = "WAYBILL_PARTITIONS", global = true, default_value_t = 8)]
    pub partitions: u32,

    #[arg(
        long,
        env = "REDIS_URL",
        global = true,
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Treat `REDIS_URL` as the seed of a Redis Cluster even when it names one node (several
    /// comma-separated URLs always mean a cluster).
    #[arg(
        long,
        env = "WAYBILL_REDIS_CLUSTER",
        global = true,
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub redis_cluster: bool,
    /// Replicas a view write must reach (Redis `WAIT`) before its events are acknowledged; 1 on
    /// a cluster with replicas so a failover loses no acknowledged view write, 0 (default) on a
    /// node without replicas.
    #[arg(
        long,
        env = "WAYBILL_REDIS_WAIT_REPLICAS",
        global = true,
        default_value_t = 0
    )]
    pub redis_wait_replicas: u32,
    /// Prefix of every Redis key (`<prefix>:tracking:{<order id>}`).
    #[arg(
        long,
        env = "WAYBILL_REDIS_PREFIX",
        global = true,
        default_value = "waybill"
    )]
    pub redis_prefix: String,

    /// Directory of the embedded (Tantivy) search index; used unless ELASTICSEARCH_URL is set.
    #[arg(
        long,
        env = "WAYBILL_SEARCH_DIR",
        global = true,
        default_value = ".waybill/search"
    )]
    pub search_dir: PathBuf,
    /// Elasticsearch / OpenSearch node URL, or several comma-separated (a node that cannot be
    /// reached is skipped for the next); when set the search view lives there (alias
    /// `<WAYBILL_REDIS_PREFIX>-orders`) instead of in WAYBILL_SEARCH_DIR.
    #[arg(long, env = "ELASTICSEARCH_URL", global = true)]
    pub elasticsearch_url: Option<String>,
    #[command(flatten)]
    pub elastic: ElasticSettings,
    /// How long the search projector gathers messages into one batch (one index commit) before
    /// writing, in milliseconds; 0 (the default) writes whatever one fetch returned. Measured
    /// here (`bench place`, 10,000 orders): 0 gave a lower search-lag p99 than 200 ms on a quiet
    /// machine; a longer linger only pays when commits are slow (a loaded disk or CPU).
    #[arg(
        long,
        env = "WAYBILL_SEARCH_LINGER_MS",
        global = true,
        default_value_t = 0
    )]
    pub search_linger_ms: u64,
    /// How often the search projector commits its index, in milliseconds, like a refresh
    /// interval: a document is searchable (and its events acknowledged) at most this long after
    /// it was written. 0 commits once per batch.
    #[arg(
        long,
        env = "WAYBILL_SEARCH_COMMIT_MS",
        global = true,
        default_value_t = 500
    )]
    pub search_commit_ms: u64,
    /// Which views `serve projector` (and `serve all`) runs: any of tracking, search,
    /// analytics, notifications, repeated or comma-separated; all when not given. Each view
    /// runs on its own: one that fails restarts itself without stopping the others.
    #[arg(
        long = "view",
        env = "WAYBILL_PROJECTOR_VIEWS",
        global = true,
        value_enum,
        value_delimiter = ','
    )]
    pub projector_views: Vec<ProjectorView>,
    /// A view that applies nothing for this long while events wait is logged at WARN
    /// (milliseconds; `waybill_projector_stall_seconds` exports the stall either way).
    #[arg(
        long,
        env = "WAYBILL_PROJECTOR_STALL_WARN_MS",
        global = true,
        default_value_t = 1_000
    )]
    pub projector_stall_warn_ms: u64,
    /// How often each view compares the streams the log changed with its store and fills those
    /// it is behind on (a store that lost confirmed writes, as a Redis failover can); seconds,
    /// 0 turns the audit off.
    #[arg(
        long,
        env = "WAYBILL_PROJECTOR_AUDIT_SECONDS",
        global = true,
        default_value_t = 15
    )]
    pub projector_audit_seconds: u64,
    /// Streams changed less than this long ago are left to the live path by the audit
    /// (seconds).
    #[arg(
        long,
        env = "WAYBILL_PROJECTOR_AUDIT_SETTLE_SECONDS",
        global = true,
        default_value_t = 15
    )]
    pub projector_audit_settle_seconds: u64,
    /// Views consume per partition (`<root>.v1.<partition>`) under leases held in the event
    /// store's database, so several `serve projector` processes of one view share its work
    /// and take over a dead one's partitions. Not for the embedded (Tantivy) search index,
    /// which has one writer.
    #[arg(
        long,
        env = "WAYBILL_PROJECTOR_PARTITIONED",
        global = true,
        default_value_t = false
    )]
    pub projector_partitioned: bool,
    /// A partition lease not renewed for this long passes to another instance (milliseconds;
    /// renewed every third of it).
    #[arg(
        long,
        env = "WAYBILL_PROJECTOR_LEASE_MS",
        global = true,
        default_value_t = 3_000
    )]
    pub projector_lease_ms: u64,

    #[arg(
        long,
        env = "WAYBILL_COMMAND_ADDR",
        global = true,
        default_value = "127.0.0.1:8080"
    )]
    pub command_addr: SocketAddr,
    #[arg(
        long,
        env = "WAYBILL_QUERY_ADDR",
        global = true,
        default_value = "127.0.0.1:8081"
    )]
    pub query_addr: SocketAddr,
    /// `/metrics` + `/health` listener of worker processes (`serve relay|projector`).
    #[arg(
        long,
        env = "WAYBILL_METRICS_ADDR",
        global = true,
        default_value = "127.0.0.1:9100"
    )]
    pub metrics_addr: SocketAddr,

    /// Comma-separated `key:client_id:role` (roles: service, agent, finance, admin). Unset: a
    /// dev admin key is generated into `<secrets dir>/dev-api-key`.
    #[arg(long, env = "WAYBILL_API_KEYS", global = true, hide_env_values = true)]
    pub api_keys: Option<String>,
    /// HMAC secret of customer tracking tokens. Unset: generated into `<secrets dir>/tracking-secret`.
    #[arg(
        long,
        env = "WAYBILL_TRACKING_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub tracking_secret: Option<String>,
    /// Master key the per-customer data keys of personal event fields are wrapped under: 64 hex
    /// characters (`openssl rand -hex 32`), or any text of at least 32 characters (hashed). The
    /// same in every process that writes or reads events; losing it loses every customer's
    /// personal data. Unset: `serve` refuses to start a role that reads or writes events unless
    /// `WAYBILL_ALLOW_GENERATED_PII_KEY` is set; other commands (and `serve` with it) use a key
    /// generated into `<secrets dir>/pii-master-key` (development only).
    #[arg(
        long,
        env = "WAYBILL_PII_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    pub pii_master_key: Option<String>,
    /// Lets `serve` run a role that reads or writes personal data without
    /// `WAYBILL_PII_MASTER_KEY`, with a master key generated into `<secrets dir>/pii-master-key`
    /// (one developer machine: `infra/scripts/demo.sh` sets it). Without it such a role refuses
    /// to start: a generated key is not shared by the other processes of a deployment and is
    /// lost with the directory, and every customer's personal data with it.
    #[arg(
        long,
        env = "WAYBILL_ALLOW_GENERATED_PII_KEY",
        global = true,
        default_value_t = false
    )]
    pub allow_generated_pii_key: bool,
    /// The tracking secret before the last rotation: links it signed keep working until they
    /// expire. Unset: no previous secret.
    #[arg(
        long,
        env = "WAYBILL_TRACKING_SECRET_PREVIOUS",
        global = true,
        hide_env_values = true
    )]
    pub tracking_secret_previous: Option<String>,
    /// Days a tracking link works after the event that sent it.
    #[arg(
        long,
        env = "WAYBILL_TRACKING_TOKEN_TTL_DAYS",
        global = true,
        default_value_t = waybill_schemas::access::DEFAULT_TRACKING_TOKEN_TTL_DAYS,
        value_parser = clap::value_parser!(i64).range(1..=3650)
    )]
    pub tracking_token_ttl_days: i64,
    /// From this time (RFC 3339) first-format tracking tokens (no expiry, in emails sent before
    /// tokens expired) are refused. Unset: accepted.
    #[arg(long, env = "WAYBILL_TRACKING_LEGACY_UNTIL", global = true)]
    pub tracking_legacy_until: Option<chrono::DateTime<chrono::Utc>>,
    /// HMAC secret of HS256 Bearer JWTs (claims sub, role, exp) accepted by both APIs next to
    /// API keys. Unset: generated into `<secrets dir>/jwt-secret`.
    #[arg(
        long,
        env = "WAYBILL_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    #[command(flatten)]
    pub jwt: crate::identity::JwtSettings,
    /// Where generated development secrets are kept (gitignored).
    #[arg(
        long,
        env = "WAYBILL_SECRETS_DIR",
        global = true,
        default_value = ".waybill"
    )]
    pub secrets_dir: PathBuf,

    /// How long a tracking query with `min_version` waits for the view, in milliseconds.
    #[arg(
        long,
        env = "WAYBILL_QUERY_MAX_WAIT_MS",
        global = true,
        default_value_t = 2_000
    )]
    pub query_max_wait_ms: u64,
    /// Open tracking pages and read-your-writes waits are woken by the tracking view's change
    /// announcements (one Redis subscription per query instance); `false` makes them poll
    /// Redis as before (every 250 ms / 5 ms).
    #[arg(
        long,
        env = "WAYBILL_QUERY_LIVE_PUSH",
        global = true,
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub query_live_push: bool,
    /// Requests per WAYBILL_QUERY_RATE_WINDOW_SECS per client on the public (customer)
    /// endpoints, counted in Redis across every query API instance; 0 disables the limit.
    #[arg(
        long,
        env = "WAYBILL_QUERY_RATE_LIMIT",
        global = true,
        default_value_t = 50
    )]
    pub query_rate_limit: u32,
    /// The window of WAYBILL_QUERY_RATE_LIMIT, in seconds.
    #[arg(long, env = "WAYBILL_QUERY_RATE_WINDOW_SECS", global = true, default_value_t = 1,
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub query_rate_window_secs: u64,
    /// Proxies (comma-separated CIDR blocks or addresses) whose `Forwarded` /
    /// `X-Forwarded-For` headers name the client; from any other peer they are ignored.
    #[arg(
        long,
        env = "WAYBILL_TRUSTED_PROXIES",
        global = true,
        default_value = ""
    )]
    pub trusted_proxies: String,
    /// Failed `/track` lookups of one order number (from any client) per
    /// WAYBILL_LOOKUP_FAILURE_WINDOW_SECS before it is refused lookups until the window ends;
    /// 0 disables the limit.
    #[arg(
        long,
        env = "WAYBILL_LOOKUP_FAILURES_PER_ORDER",
        global = true,
        default_value_t = 10
    )]
    pub lookup_failures_per_order: u32,
    /// The window of WAYBILL_LOOKUP_FAILURES_PER_ORDER, in seconds.
    #[arg(long, env = "WAYBILL_LOOKUP_FAILURE_WINDOW_SECS", global = true, default_value_t = 3_600,
        value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub lookup_failure_window_secs: u64,

    /// Where the staff screens send actions: the command API's base URL (default: this
    /// process's own command API when it serves one, else `http://WAYBILL_COMMAND_ADDR`).
    #[arg(long, env = "WAYBILL_COMMAND_API_URL", global = true)]
    pub command_api_url: Option<String>,
    /// The origin browsers reach the staff screens at (`https://console.example.com`): form
    /// POSTs must come from it, and `https://` makes the session cookie `Secure`. Unset: the
    /// request's own host.
    #[arg(long, env = "WAYBILL_CONSOLE_ORIGIN", global = true)]
    pub console_origin: Option<String>,
    /// Mark the session cookie `Secure` whatever WAYBILL_CONSOLE_ORIGIN says (TLS is
    /// terminated in front of the query API).
    #[arg(
        long,
        env = "WAYBILL_CONSOLE_SECURE_COOKIES",
        global = true,
        default_value_t = false
    )]
    pub console_secure_cookies: bool,
    /// Longest life of a staff screens session, in seconds (a JWT's own expiry shortens it).
    #[arg(long, env = "WAYBILL_CONSOLE_SESSION_SECS", global = true, default_value_t = 8 * 3600,
        value_parser = clap::value_parser!(u64).range(60..=7 * 86_400))]
    pub console_session_secs: u64,

    /// Command API group commit: most commands per transaction (1 = one per command).
    #[arg(long, env = "WAYBILL_COMMIT_BATCH_MAX", global = true)]
    pub commit_batch_max: Option<usize>,
    /// Command API group commit: how long a batch's first command waits for others (µs).
    #[arg(long, env = "WAYBILL_COMMIT_LINGER_US", global = true)]
    pub commit_linger_us: Option<u64>,
    /// Command API group commit: batches committed concurrently.
    #[arg(long, env = "WAYBILL_COMMIT_WORKERS", global = true)]
    pub commit_workers: Option<usize>,

    /// Hours an idempotency record is kept; a retry after that is treated as a new request.
    #[arg(
        long,
        env = "WAYBILL_IDEMPOTENCY_RETENTION_HOURS",
        global = true,
        default_value_t = 24
    )]
    pub idempotency_retention_hours: u64,

    #[command(flatten)]
    pub checkout: CheckoutSettings,

    #[command(flatten)]
    pub warehouse: WarehouseSettings,

    #[command(flatten)]
    pub fulfillment: FulfillmentSettings,

    #[command(flatten)]
    pub desk: DeskSettings,

    #[command(flatten)]
    pub webhooks: WebhookSettings,

    /// OTLP/HTTP endpoint (e.g. http://127.0.0.1:4318); spans are exported as JSON when set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
    /// Log lines as human-readable text or JSON. Filter with RUST_LOG.
    #[arg(long, env = "WAYBILL_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The ClickHouse analytics warehouse (analytics projector, reconciliation, finance API) and
/// the gateway fee contract reconciliation checks report lines against.
#[derive(Debug, Clone, Args)]
pub struct WarehouseSettings {
    /// HTTP(S) URL of ClickHouse (`infra/scripts/ensure-clickhouse.sh` starts one on 8124), or
    /// the comma-separated URLs of a cluster's replicas, preferred first: connections fail over
    /// to the next replica when one is down.
    #[arg(
        long,
        env = "WAYBILL_CLICKHOUSE_URL",
        global = true,
        default_value = "http://127.0.0.1:8124"
    )]
    pub clickhouse_url: String,
    /// ClickHouse database of Waybill's tables (created by `migrate`).
    #[arg(
        long,
        env = "WAYBILL_CLICKHOUSE_DATABASE",
        global = true,
        default_value = "waybill"
    )]
    pub clickhouse_database: String,
    /// ClickHouse user (unset: the server's default user without a password).
    #[arg(long, env = "WAYBILL_CLICKHOUSE_USER", global = true)]
    pub clickhouse_user: Option<String>,
    /// ClickHouse password of `WAYBILL_CLICKHOUSE_USER`.
    #[arg(
        long,
        env = "WAYBILL_CLICKHOUSE_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub clickhouse_password: Option<String>,
    /// The ClickHouse cluster (its `remote_servers` name) the URLs' replicas form: `migrate`
    /// then makes replicated tables with a `Distributed` table over them on every replica
    /// (`infra/scripts/ensure-clickhouse-cluster.sh` starts one called `waybill`). Unset: one
    /// server.
    #[arg(long, env = "WAYBILL_CLICKHOUSE_CLUSTER", global = true, value_parser = cluster_name)]
    pub clickhouse_cluster: Option<String>,
    /// PEM file of the CA that signed the ClickHouse servers' certificates (for https URLs).
    #[arg(long, env = "WAYBILL_CLICKHOUSE_CA_FILE", global = true)]
    pub clickhouse_ca_file: Option<std::path::PathBuf>,
    /// Gateway fee per capture, basis points of the gross.
    #[arg(
        long,
        env = "WAYBILL_GATEWAY_FEE_BASIS_POINTS",
        global = true,
        default_value_t = 290
    )]
    pub gateway_fee_basis_points: i64,
    /// Gateway fixed fee per capture and fee per lost dispute, per currency, in that
    /// currency's minor units: `CUR=fixed/dispute,...` (e.g. `USD=30/1500,JPY=40/2000`).
    /// Currencies not listed follow the default contract, 0.30 and 15.00 scaled by the
    /// currency's exponent (USD 30/1500, JPY 0/15, KWD 300/15000).
    #[arg(
        long,
        env = "WAYBILL_GATEWAY_FEES",
        global = true,
        default_value = "",
        value_parser = parse_fee_overrides
    )]
    pub gateway_fees: FeeOverrides,
}

/// Per-currency fee overrides of the gateway's contract.
pub type FeeOverrides =
    std::collections::BTreeMap<waybill_schemas::Currency, waybill_schemas::fees::CurrencyFees>;

fn parse_fee_overrides(raw: &str) -> Result<FeeOverrides, waybill_schemas::fees::FeeConfigError> {
    waybill_schemas::fees::FeeSchedule::parse_overrides(raw)
}

impl WarehouseSettings {
    pub fn config(&self) -> waybill_projectors::WarehouseConfig {
        let config = waybill_projectors::WarehouseConfig::new(
            &self.clickhouse_url,
            &self.clickhouse_database,
        );
        let config = match &self.clickhouse_user {
            Some(user) => {
                config.with_credentials(user, self.clickhouse_password.clone().unwrap_or_default())
            }
            None => config,
        };
        let config = match &self.clickhouse_cluster {
            Some(cluster) => config.with_cluster(cluster),
            None => config,
        };
        match &self.clickhouse_ca_file {
            Some(ca_file) => config.with_ca_file(ca_file),
            None => config,
        }
    }
    pub fn fees(&self) -> waybill_projectors::reconciliation::FeeSchedule {
        waybill_projectors::reconciliation::FeeSchedule::new(
            self.gateway_fee_basis_points,
            self.gateway_fees.clone(),
        )
    }
}

/// The fulfillment flow, its routing rules, WMS and carrier (issue 4).
#[derive(Debug, Clone, Args)]
pub struct FulfillmentSettings {
    /// Whether `serve all` runs the fulfillment worker (off when it runs as its own process,
    /// `serve fulfillment`).
    #[arg(long, env = "WAYBILL_FULFILLMENT_WORKER", global = true, default_value_t = true, action = clap::ArgAction::Set)]
    pub fulfillment_worker: bool,
    /// Base URL of the nodes' WMS API (the sandbox: `waybill serve logistics-sandbox`).
    #[arg(
        long,
        env = "WAYBILL_WMS_URL",
        global = true,
        default_value = "http://127.0.0.1:8092"
    )]
    pub wms_url: String,
    /// Base URL of the carrier API (the same sandbox by default).
    #[arg(
        long,
        env = "WAYBILL_CARRIER_URL",
        global = true,
        default_value = "http://127.0.0.1:8092"
    )]
    pub carrier_url: String,
    /// HMAC secret of node and carrier webhooks. Unset: generated into
    /// `<secrets dir>/logistics-webhook-secret`.
    #[arg(
        long,
        env = "WAYBILL_LOGISTICS_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub logistics_webhook_secret: Option<String>,
    /// Where `serve logistics-sandbox` listens.
    #[arg(
        long,
        env = "WAYBILL_LOGISTICS_SANDBOX_ADDR",
        global = true,
        default_value = "127.0.0.1:8092"
    )]
    pub logistics_sandbox_addr: SocketAddr,
    /// Base URL of the command API the logistics sandbox sends webhooks to. Default: the
    /// command API's address.
    #[arg(long, env = "WAYBILL_LOGISTICS_WEBHOOK_BASE", global = true)]
    pub logistics_webhook_base: Option<String>,
    /// How many seconds ahead of its receipt a node or carrier webhook's own time
    /// (`occurred_at`, `carrier_time`) may be; beyond it the webhook is refused with 422.
    #[arg(
        long,
        env = "WAYBILL_WEBHOOK_CLOCK_SKEW_SECS",
        global = true,
        default_value_t = 300
    )]
    pub webhook_clock_skew_secs: u32,
    /// Days after the last delivery an order closes (fractions allowed: tests use seconds).
    #[arg(
        long,
        env = "WAYBILL_AUTO_CLOSE_DAYS",
        global = true,
        default_value_t = 14.0
    )]
    pub auto_close_days: f64,
    /// Seconds a confirmed order waits before it is routed: the window in which its lines can
    /// be cancelled before any node is involved (0: route at once).
    #[arg(
        long,
        env = "WAYBILL_FULFILLMENT_HOLD_SECS",
        global = true,
        default_value_t = 0
    )]
    pub fulfillment_hold_secs: u64,
    /// Handoff retries after a carrier exception before an agent is alerted.
    #[arg(
        long,
        env = "WAYBILL_MAX_HANDOFF_RETRIES",
        global = true,
        default_value_t = 2
    )]
    pub max_handoff_retries: u32,
    /// Routing rules (JSON, see write-side/FULFILLMENT.md). Unset: the bundled
    /// `write-side/fulfillment-routing.json`.
    #[arg(long, env = "WAYBILL_ROUTING_CONFIG", global = true)]
    pub routing_config: Option<std::path::PathBuf>,
    /// Return policy (JSON, see write-side/RETURNS.md). Unset: the bundled
    /// `write-side/returns-policy.json`.
    #[arg(long, env = "WAYBILL_RETURNS_POLICY", global = true)]
    pub returns_policy: Option<std::path::PathBuf>,
    /// How long the fulfillment worker sleeps when nothing is due, in milliseconds.
    #[arg(
        long,
        env = "WAYBILL_FULFILLMENT_POLL_MS",
        global = true,
        default_value_t = 20
    )]
    pub fulfillment_poll_ms: u64,
    /// How the fulfillment worker and the node/carrier webhooks store what they decide:
    /// `rounds` (the worker advances all claimed orders together, one transaction per round;
    /// webhooks arriving together share one) or `per-step` (one transaction per step and per
    /// webhook; kept for comparison).
    #[arg(long, env = "WAYBILL_FULFILLMENT_COMMIT", global = true, value_enum, default_value_t = FulfillmentCommit::Rounds)]
    pub fulfillment_commit: FulfillmentCommit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FulfillmentCommit {
    Rounds,
    PerStep,
}

/// The checkout flow, the payment gateway and customer notifications.
#[derive(Debug, Clone, Args)]
pub struct CheckoutSettings {
    /// Whether `serve all` runs the checkout worker (turn off when it runs as its own process,
    /// `serve checkout`).
    #[arg(long, env = "WAYBILL_CHECKOUT_WORKER", global = true, default_value_t = true, action = clap::ArgAction::Set)]
    pub checkout_worker: bool,
    /// Base URL of the payment gateway's HTTP API (the sandbox: `waybill serve payment-sandbox`).
    #[arg(
        long,
        env = "WAYBILL_PAYMENT_GATEWAY_URL",
        global = true,
        default_value = "http://127.0.0.1:8090"
    )]
    pub payment_gateway_url: String,
    /// The payment gateway's name: settlement reports are imported for this gateway only
    /// (`POST /v1/settlement/imports` refuses any other `gateway`).
    #[arg(
        long,
        env = "WAYBILL_PAYMENT_GATEWAY_NAME",
        global = true,
        default_value = "sandbox"
    )]
    pub payment_gateway_name: String,
    /// API key for the gateway. Unset: generated into `<secrets dir>/payment-api-key`.
    #[arg(
        long,
        env = "WAYBILL_PAYMENT_API_KEY",
        global = true,
        hide_env_values = true
    )]
    pub payment_api_key: Option<String>,
    /// HMAC secret of the gateway's webhooks. Unset: generated into
    /// `<secrets dir>/payment-webhook-secret`.
    #[arg(
        long,
        env = "WAYBILL_PAYMENT_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub payment_webhook_secret: Option<String>,
    /// Timeout of one gateway call, in milliseconds; the step is retried with the same key.
    #[arg(
        long,
        env = "WAYBILL_PAYMENT_TIMEOUT_MS",
        global = true,
        default_value_t = 2_000
    )]
    pub payment_timeout_ms: u64,

    /// Where `serve payment-sandbox` listens.
    #[arg(
        long,
        env = "WAYBILL_PAYMENT_SANDBOX_ADDR",
        global = true,
        default_value = "127.0.0.1:8090"
    )]
    pub payment_sandbox_addr: SocketAddr,
    /// Where the sandbox sends its webhooks. Default: the command API's
    /// `/v1/webhooks/payments`.
    #[arg(long, env = "WAYBILL_PAYMENT_WEBHOOK_URL", global = true)]
    pub payment_webhook_url: Option<String>,
    /// How long the sandbox's slow test card (tok_4000000000006975) takes, in milliseconds.
    #[arg(
        long,
        env = "WAYBILL_PAYMENT_SLOW_MS",
        global = true,
        default_value_t = 3_000
    )]
    pub payment_slow_ms: u64,

    /// How long the sandbox's authorizations can be captured, in seconds (7 days like real
    /// gateways; tests shorten it to see the expiry deadline fire).
    #[arg(
        long,
        env = "WAYBILL_PAYMENT_AUTH_VALIDITY_SECS",
        global = true,
        default_value_t = 604_800
    )]
    pub payment_auth_validity_secs: u64,

    /// When an authorized payment is captured.
    #[arg(long, env = "WAYBILL_CAPTURE_MODE", global = true, value_enum, default_value_t = CaptureModeSetting::Immediate)]
    pub capture_mode: CaptureModeSetting,
    /// How long stock stays reserved for an unconfirmed order, in seconds.
    #[arg(
        long,
        env = "WAYBILL_RESERVATION_TTL_SECS",
        global = true,
        default_value_t = 900
    )]
    pub reservation_ttl_secs: u64,
    /// How long the customer has for a 3-D Secure challenge, in seconds.
    #[arg(
        long,
        env = "WAYBILL_CHALLENGE_TIMEOUT_SECS",
        global = true,
        default_value_t = 600
    )]
    pub challenge_timeout_secs: u64,
    /// How long an order may wait in the fraud review queue, in seconds.
    #[arg(
        long,
        env = "WAYBILL_REVIEW_TIMEOUT_SECS",
        global = true,
        default_value_t = 172_800
    )]
    pub review_timeout_secs: u64,
    /// What happens to units no location has.
    #[arg(long, env = "WAYBILL_OUT_OF_STOCK", global = true, value_enum, default_value_t = OutOfStockSetting::Reject)]
    pub out_of_stock: OutOfStockSetting,
    /// Orders one checkout pass claims.
    #[arg(
        long,
        env = "WAYBILL_CHECKOUT_BATCH",
        global = true,
        default_value_t = 50
    )]
    pub checkout_batch: i64,
    /// Checkout passes running at once in one process.
    #[arg(
        long,
        env = "WAYBILL_CHECKOUT_CONCURRENCY",
        global = true,
        default_value_t = 4
    )]
    pub checkout_concurrency: usize,
    /// Checkout worker poll interval when idle, in milliseconds.
    #[arg(
        long,
        env = "WAYBILL_CHECKOUT_POLL_MS",
        global = true,
        default_value_t = 10
    )]
    pub checkout_poll_ms: u64,
    /// Risk velocity window, in minutes.
    #[arg(
        long,
        env = "WAYBILL_RISK_WINDOW_MINUTES",
        global = true,
        default_value_t = 60
    )]
    pub risk_window_minutes: i64,

    /// Where the development notification sink writes customer messages (open its index.html).
    #[arg(
        long,
        env = "WAYBILL_NOTIFICATIONS_DIR",
        global = true,
        default_value = ".waybill/notifications"
    )]
    pub notifications_dir: PathBuf,
    /// The SMTP server customer emails go to (unset: emails are written to the notifications
    /// directory instead).
    #[arg(long, env = "WAYBILL_SMTP_HOST", global = true)]
    pub smtp_host: Option<String>,
    #[arg(long, env = "WAYBILL_SMTP_PORT", global = true, default_value_t = 587)]
    pub smtp_port: u16,
    /// `starttls`, `tls` (implicit, port 465) or `plain` (only for a relay on a trusted
    /// network, or the local test server).
    #[arg(long, env = "WAYBILL_SMTP_SECURITY", global = true, default_value = "starttls", value_parser = ["starttls", "tls", "plain"])]
    pub smtp_security: String,
    #[arg(long, env = "WAYBILL_SMTP_USERNAME", global = true)]
    pub smtp_username: Option<String>,
    #[arg(
        long,
        env = "WAYBILL_SMTP_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub smtp_password: Option<String>,
    /// The sender of customer emails.
    #[arg(
        long,
        env = "WAYBILL_NOTIFICATIONS_FROM",
        global = true,
        default_value = "Waybill <orders@waybill.localhost>"
    )]
    pub notifications_from: String,
    /// Base URL of the SMS provider's HTTP API (the sandbox: `waybill serve sms-sandbox`);
    /// unset: text messages are written to the notifications directory instead.
    #[arg(long, env = "WAYBILL_SMS_URL", global = true)]
    pub sms_url: Option<String>,
    /// API key for the SMS provider. Unset: generated into `<secrets dir>/sms-api-key`.
    #[arg(
        long,
        env = "WAYBILL_SMS_API_KEY",
        global = true,
        hide_env_values = true
    )]
    pub sms_api_key: Option<String>,
    /// The sender name or number customers see on text messages.
    #[arg(
        long,
        env = "WAYBILL_SMS_SENDER",
        global = true,
        default_value = "Waybill"
    )]
    pub sms_sender: String,
    /// Where `serve sms-sandbox` listens.
    #[arg(
        long,
        env = "WAYBILL_SMS_SANDBOX_ADDR",
        global = true,
        default_value = "127.0.0.1:8093"
    )]
    pub sms_sandbox_addr: SocketAddr,
    /// The SMS sandbox answers the first this many sends with 503 (to see retries).
    #[arg(
        long,
        env = "WAYBILL_SMS_SANDBOX_FAIL_FIRST",
        global = true,
        default_value_t = 0
    )]
    pub sms_sandbox_fail_first: u32,
    /// Public base URL of the tracking pages, used in links sent to customers.
    #[arg(
        long,
        env = "WAYBILL_PUBLIC_TRACKING_URL",
        global = true,
        default_value = "http://127.0.0.1:8081"
    )]
    pub public_tracking_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureModeSetting {
    Immediate,
    OnShipment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutOfStockSetting {
    Reject,
    Backorder,
}

impl Settings {
    /// Where the search view lives.
    pub fn search(&self) -> waybill_projectors::views::search::SearchConfig {
        waybill_projectors::views::search::SearchConfig {
            dir: self.search_dir.clone(),
            elasticsearch_url: self.elasticsearch_url.clone(),
            elastic: self.elastic.options(),
            prefix: self.redis_prefix.clone(),
        }
    }

    /// Where Redis is: one node, or a cluster's seed nodes.
    pub fn redis(&self) -> anyhow::Result<waybill_projectors::RedisTarget> {
        waybill_projectors::RedisTarget::parse(&self.redis_url, self.redis_cluster)
            .map(|target| target.with_wait_replicas(self.redis_wait_replicas))
            .map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))
    }

    /// The views this process's projector runs (all unless `--view` names some).
    pub fn projector_views(&self) -> Vec<ProjectorView> {
        ProjectorView::ALL
            .into_iter()
            .filter(|v| self.projector_views.is_empty() || self.projector_views.contains(v))
            .collect()
    }

    /// The NATS connection NATS_URL and the NATS_* settings describe; `role` names the
    /// connection on the server (`/connz`).
    pub fn nats_connection(
        &self,
        role: &str,
    ) -> Result<waybill_write_side::nats::NatsConnection, NatsSettingsError> {
        let mut connection = self.nats.connection(&self.nats_url)?;
        connection.name = Some(format!("waybill {role}"));
        Ok(connection)
    }

    pub fn query_max_wait(&self) -> Duration {
        Duration::from_millis(self.query_max_wait_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the databases if missing and apply the migrations (Postgres and ClickHouse).
    Migrate,
    /// Reconcile the ledger against imported settlement reports for a date range (UTC days,
    /// inclusive) and write the results to the warehouse; prints the discrepancies.
    Reconcile(ReconcileArgs),
    /// Run services: `all` in one process, or one part for multi-process deploys.
    Serve {
        #[arg(value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Rebuild a read model from the event log.
    Rebuild {
        #[arg(value_enum)]
        view: View,
    },
    /// Place a realistic mix of orders over the public HTTP API and print where to see them.
    Demo(DemoArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
    /// Gateway settlement reports.
    Settlement {
        #[command(subcommand)]
        settlement: Settlement,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        config: ConfigCommand,
    },
    /// Spread TCP connections over several instances of a role on one machine (the load
    /// balancer of `infra/scripts/cluster.sh`; a deployment brings its own).
    Balance(BalanceArgs),
    /// Fulfillment routing tools.
    Routing {
        #[command(subcommand)]
        routing: RoutingCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoutingCommand {
    /// Replay the routing decisions recorded in a window with a candidate routing config and
    /// report, per order and in aggregate, the change in cost, ETA, carbon and split rate
    /// (JSON, CSV and an HTML page with charts in `--out`).
    Simulate(RoutingSimulateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RoutingSimulateArgs {
    /// The candidate routing config (same format as `write-side/fulfillment-routing.json`).
    #[arg(long)]
    pub config: PathBuf,
    /// Start of the window: YYYY-MM-DD (00:00 UTC) or an RFC 3339 time.
    #[arg(long, value_parser = parse_window_start)]
    pub from: chrono::DateTime<chrono::Utc>,
    /// End of the window: YYYY-MM-DD (that whole day, UTC) or an RFC 3339 time (exclusive).
    #[arg(long, value_parser = parse_window_end)]
    pub to: chrono::DateTime<chrono::Utc>,
    /// Directory for `simulation.json`, `orders.csv` and `index.html`.
    #[arg(long, default_value = "routing-simulation")]
    pub out: PathBuf,
}

/// `--from`: a day starts at its midnight UTC.
fn parse_window_start(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    parse_window(raw, 0)
}

/// `--to`: a day ends at the next midnight (the whole day is in the window).
fn parse_window_end(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    parse_window(raw, 1)
}

fn parse_window(raw: &str, days_after: i64) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(day) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(
            day.and_time(chrono::NaiveTime::MIN).and_utc() + chrono::Duration::days(days_after)
        );
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| format!("{raw:?} is neither YYYY-MM-DD nor an RFC 3339 time"))
}

#[derive(Debug, Clone, Args)]
pub struct BalanceArgs {
    /// Where to accept connections.
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// An instance to forward connections to (repeat, or comma-separated); taken in turn, one
    /// that refuses connections skipped.
    #[arg(long, value_delimiter = ',', required = true)]
    pub upstream: Vec<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a role's configuration (environment and flags) without connecting to anything:
    /// names every missing or malformed setting; exits non-zero if there is one.
    Check {
        /// The role whose configuration to check (as in `serve <role>`).
        #[arg(long, value_enum)]
        role: Role,
    },
}

#[derive(Debug, Subcommand)]
pub enum Settlement {
    /// Import a day's settlement report through the command API (finance or admin key).
    Import(SettlementImportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SettlementImportArgs {
    /// The report's day, YYYY-MM-DD.
    #[arg(long)]
    pub date: String,
    /// Which gateway's report.
    #[arg(long, default_value = "sandbox")]
    pub gateway: String,
    /// Send this CSV file instead of letting Waybill fetch the report from the gateway.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Migrate, then command API, checkout worker, relay, projectors and query API in one
    /// process.
    All,
    /// The command API.
    Commands,
    /// The outbox relay.
    Relay,
    /// The projectors (tracking view, customer notifications, ClickHouse analytics).
    Projector,
    /// The query API.
    Query,
    /// The checkout process manager (risk, stock, payment, confirmation, capture).
    Checkout,
    /// Our simulated payment gateway (for development, demos and tests; moves no money).
    PaymentSandbox,
    /// The fulfillment process manager (routing, WMS tasks, labels, delivery, auto-close).
    Fulfillment,
    /// Our simulated WMS and carrier (for development, demos and tests; moves no parcels).
    LogisticsSandbox,
    /// Our simulated SMS provider (for development, demos and tests; sends no text message).
    SmsSandbox,
    /// The webhook delivery worker (event subscriptions).
    Webhooks,
}

/// One view of the projector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProjectorView {
    /// Customers' tracking views in Redis.
    Tracking,
    /// The agents' search index (Tantivy or Elasticsearch).
    Search,
    /// The ClickHouse warehouse.
    Analytics,
    /// Customer notifications.
    Notifications,
    /// The exceptions desk (order watches in Postgres), with its detector and the operations
    /// sampler.
    Desk,
    /// The event feed (positions for the pull feed and webhook deliveries, in Postgres).
    Feed,
}

impl ProjectorView {
    pub const ALL: [ProjectorView; 6] = [
        ProjectorView::Tracking,
        ProjectorView::Notifications,
        ProjectorView::Search,
        ProjectorView::Analytics,
        ProjectorView::Desk,
        ProjectorView::Feed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Tracking => "tracking",
            Self::Search => "search",
            Self::Analytics => "analytics",
            Self::Notifications => "notifications",
            Self::Desk => "desk",
            Self::Feed => "feed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum View {
    Tracking,
    /// The agents' search index (Tantivy: stop the projector first).
    Search,
    /// The customer notifications' per-order state; sends nothing.
    Notifications,
    /// The ClickHouse analytics tables (finance, metrics), blue/green while they serve.
    Analytics,
}

#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// First day, YYYY-MM-DD.
    #[arg(long)]
    pub from: chrono::NaiveDate,
    /// Last day, YYYY-MM-DD (default: `--from`).
    #[arg(long)]
    pub to: Option<chrono::NaiveDate>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Start all services and the payment sandbox in this process first (on the configured
    /// addresses) and keep them running after the demo until Ctrl-C.
    #[arg(long)]
    pub start: bool,
    /// Orders to place (besides the duplicate and the replay); 14 or more show every outcome.
    #[arg(long, default_value_t = 20)]
    pub orders: usize,
    /// How long to follow the orders through checkout before reporting, in seconds.
    #[arg(long, default_value_t = 90)]
    pub wait_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Place orders over HTTP with relay and projector running; compare with plain INSERTs.
    Place(BenchPlaceArgs),
    /// Many one-unit orders race for one hot SKU: the inventory's batching writer against one
    /// conditional-UPDATE transaction per reservation, on a scratch database.
    FlashSale(BenchFlashSaleArgs),
    /// Card orders through the whole checkout flow (risk, stock, sandbox payment, confirmation,
    /// capture) on a scratch environment, beside placement alone for the same orders.
    Checkout(BenchCheckoutArgs),
    /// The customer read path at a fixed request rate (open loop): the JSON tracking endpoint
    /// and the tracking page, beside `/health` as a baseline, on a scratch environment.
    Tracking(BenchTrackingArgs),
    /// Index synthetic orders into a scratch Tantivy index, then time agent queries (filtered
    /// free text against an exact-id baseline, at 10 % and at the full size).
    Search(BenchSearchArgs),
    /// The ClickHouse analytics path: view lag at a paced order rate, projector ingest rows/s
    /// against a direct bulk insert, and finance/reconciliation query latency over synthetic
    /// orders (against the same query without FINAL).
    Analytics(BenchAnalyticsArgs),
    /// Card orders from placement through fulfillment to delivery and close (the logistics
    /// sandbox acting as nodes and carrier), beside the checkout flow alone.
    Lifecycle(BenchLifecycleArgs),
    /// Read the whole event log as a rebuild does (keyset pages) on a scratch database of
    /// synthetic events; events/s and CPU per event beside a plain table scan and the
    /// pre-index statement.
    LogRead(BenchLogReadArgs),
    /// Open live tracking pages (server-sent events) on one query instance: idle CPU with and
    /// without them, and update latency from the event's append to every page.
    LivePages(BenchLivePagesArgs),
    /// Replay recorded routing decisions with a candidate config (`waybill routing simulate`)
    /// on a scratch database seeded with N decisions; decisions/s on every core beside one
    /// thread.
    RoutingSim(BenchRoutingSimArgs),
    /// The webhook delivery worker draining N orders' events to a local receiver that checks
    /// signatures and order per order; deliveries/s and CPU per delivery beside plain signed
    /// POSTs of the same events; `--outage-secs` takes the receiver down for a while.
    Webhooks(BenchWebhooksArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BenchWebhooksArgs {
    /// Orders whose events (five each) are in the scratch feed before delivery starts.
    #[arg(long, default_value_t = 20_000)]
    pub orders: u64,
    /// Subscriptions (endpoints), all on the one receiver; each gets every event.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub subscriptions: u64,
    /// Take the receiver down for this many seconds once a third of the deliveries arrived
    /// (0: no outage).
    #[arg(long, default_value_t = 0)]
    pub outage_secs: u64,
    /// Skip the baseline (plain signed POSTs without the feed and the ledger).
    #[arg(long)]
    pub no_baseline: bool,
    /// Keep the scratch database afterwards.
    #[arg(long)]
    pub keep: bool,
    /// JSON report path; the SVG charts are written next to it.
    #[arg(long, default_value = "bench-results/webhooks.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct BenchRoutingSimArgs {
    /// Recorded decisions (one order each) seeded into the scratch log.
    #[arg(long, default_value_t = 100_000)]
    pub orders: u64,
    /// Keep the scratch database afterwards.
    #[arg(long)]
    pub keep: bool,
    /// JSON report path; the SVG chart is written next to it.
    #[arg(long, default_value = "bench-results/routing-sim.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct BenchLivePagesArgs {
    /// Open pages (event streams), spread evenly over the orders.
    #[arg(long, default_value_t = 10_000)]
    pub pages: usize,
    /// Orders placed; each is cancelled once to send its pages an update.
    #[arg(long, default_value_t = 20)]
    pub orders: usize,
    /// Seconds of each idle CPU window (without pages, then with them).
    #[arg(long, default_value_t = 10)]
    pub idle_seconds: u64,
    /// Milliseconds between two cancellations.
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// Internal: run as the page client the bench starts (reads page URLs on stdin).
    #[arg(long, hide = true)]
    pub pages_client: bool,
    /// JSON report path; the SVG chart is written next to it.
    #[arg(long, default_value = "bench-results/live-pages.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct BenchLogReadArgs {
    /// Events in the scratch log.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Events per page (the rebuild's page size).
    #[arg(long, default_value_t = 1_000)]
    pub page: i64,
    /// Pages read with the pre-index statement for the baseline.
    #[arg(long, default_value_t = 5)]
    pub sorted_pages: u32,
    /// Keep the scratch database afterwards.
    /// Store the payloads with their personal fields sealed under data keys, as placements are
    /// stored, so the read opens them as every reader of a real log does.
    #[arg(long)]
    pub sealed: bool,
    #[arg(long)]
    pub keep: bool,
    /// JSON report path; the SVG charts are written next to it.
    #[arg(long, default_value = "bench-results/log-read.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct BenchTrackingArgs {
    /// Requests per second sent to each target.
    #[arg(long, default_value_t = 2_000)]
    pub rate: u32,
    /// Seconds of load per target.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Seconds of the same load before each target, not recorded.
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u64,
    /// Orders placed (and tracked in turn).
    #[arg(long, default_value_t = 200)]
    pub orders: usize,
    /// JSON report path; the SVG chart is written next to it.
    #[arg(long, default_value = "bench-results/tracking.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct BenchSearchArgs {
    /// Synthetic orders to index.
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: usize,
    /// Documents per upsert (one commit each, as one projector batch).
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Queries of each kind per measurement.
    #[arg(long, default_value_t = 2_000)]
    pub queries: usize,
    /// Index directory (kept); default: a scratch directory removed afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// JSON report path; the SVG chart is written next to it.
    #[arg(long, default_value = "bench-results/search.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct BenchAnalyticsArgs {
    /// Orders placed over HTTP at `--rate` for the lag measurement.
    #[arg(long, default_value_t = 20_000)]
    pub orders: usize,
    /// Orders per second offered (paced, not closed-loop).
    #[arg(long, default_value_t = 1_000)]
    pub rate: u32,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Synthetic orders bulk-inserted for the query latency part.
    #[arg(long, default_value_t = 1_000_000)]
    pub synthetic_orders: usize,
    /// Repetitions of each timed query.
    #[arg(long, default_value_t = 10)]
    pub repetitions: usize,
    /// JSON report path; the SVG chart is written next to it.
    #[arg(long, default_value = "bench-results/analytics.json")]
    pub out: PathBuf,
    /// Keep the scratch databases and stream afterwards.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BenchLifecycleArgs {
    /// Orders to place.
    #[arg(long, default_value_t = 2_000)]
    pub orders: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// JSON report path.
    #[arg(long, default_value = "bench-results/lifecycle.json")]
    pub out: PathBuf,
    /// How long after the last placement orders may take to close, in seconds.
    #[arg(long, default_value_t = 120)]
    pub deadline_secs: u64,
    /// Skip the checkout-only baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Keep the scratch databases, streams and Redis keys afterwards.
    #[arg(long)]
    pub keep: bool,
    /// The fulfillment commit modes to run the lifecycle with (`WAYBILL_FULFILLMENT_COMMIT`),
    /// each on its own scratch environment, in this order (default: per-step,rounds: the old
    /// way beside the new).
    #[arg(long = "runs", value_enum, value_delimiter = ',')]
    pub runs: Vec<FulfillmentCommit>,
    /// Share of the orders that send a unit back once closed (return, inspection, restock,
    /// refund), 0 to 1.
    #[arg(long, default_value_t = 0.2)]
    pub return_share: f64,
    /// Drive services already running (the cluster stack) instead of starting them in this
    /// process: one run with the stack's own settings, no baseline. Placements go to
    /// WAYBILL_COMMAND_ADDR with a key of WAYBILL_API_KEYS; stock is seeded into DATABASE_URL.
    /// The stack must close delivered orders at once (WAYBILL_AUTO_CLOSE_DAYS=0).
    #[arg(long, requires = "sandbox_url")]
    pub external: bool,
    /// With --external: the stack's logistics sandbox (its WMS and carrier), whose driver
    /// endpoints pack and deliver the run's orders.
    #[arg(long)]
    pub sandbox_url: Option<String>,
    /// With --external: `/metrics` pages (comma-separated) to read the tracking lag and the
    /// fulfillment counters from, e.g. every projector, fulfillment worker and command API.
    #[arg(long, value_delimiter = ',')]
    pub metrics_url: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct BenchCheckoutArgs {
    /// Orders to place (each paid by the sandbox's approving test card).
    #[arg(long, default_value_t = 10_000)]
    pub orders: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// JSON report path; the SVG chart is written next to it.
    #[arg(long, default_value = "bench-results/checkout.json")]
    pub out: PathBuf,
    /// How long after the last placement every order may take to reach OrderConfirmed and
    /// PaymentCaptured, in seconds; orders not there by then are reported as missing.
    #[arg(long, default_value_t = 120)]
    pub deadline_secs: u64,
    /// Skip the placement-only baseline (checkout worker off) on its own scratch environment.
    #[arg(long)]
    pub no_baseline: bool,
    /// Keep the scratch databases, streams and Redis keys afterwards.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BenchFlashSaleArgs {
    /// Orders (one unit each), all sent at once.
    #[arg(long, default_value_t = 5_000)]
    pub orders: usize,
    /// Units of the hot SKU on hand.
    #[arg(long, default_value_t = 1_000)]
    pub stock: u32,
    /// Concurrent connections of the one-transaction-per-reservation baseline.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Most reservations decided in one transaction by the batching writer.
    #[arg(long, default_value_t = 500)]
    pub batch_max: usize,
    /// JSON report path.
    #[arg(long, default_value = "bench-results/flash-sale.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct BenchPlaceArgs {
    /// Orders to place.
    #[arg(long, default_value_t = 20_000)]
    pub orders: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// JSON report path; the SVG chart is written next to it.
    #[arg(long, default_value = "bench-results/place.json")]
    pub out: PathBuf,
    /// Use services already running at the configured addresses instead of starting them
    /// in-process on a scratch database, stream and Redis prefix.
    #[arg(long)]
    pub external: bool,
    /// Keep the scratch database, stream and Redis keys afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Skip the plain-INSERT baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Rows per multi-row INSERT in the baseline.
    #[arg(long, default_value_t = 1_000)]
    pub baseline_batch: usize,
    /// Concurrent connections of the baseline's pool.
    #[arg(long, default_value_t = 2)]
    pub baseline_connections: u32,
}

/// A ClickHouse cluster name: it is spliced into `Distributed(…)`, so a plain identifier.
fn cluster_name(value: &str) -> Result<String, String> {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(value.to_owned())
    } else {
        Err("a cluster name is letters, digits and underscores".to_owned())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_point_at_this_machine() {
        // Only meaningful when the environment does not override; skip any var that is set.
        let cli = Cli::try_parse_from(["waybill", "serve"]).unwrap();
        let s = cli.settings;
        if std::env::var_os("DATABASE_URL").is_none() {
            assert_eq!(s.database_url, "postgres://postgres@127.0.0.1:5432/waybill");
        }
        if std::env::var_os("WAYBILL_COMMAND_ADDR").is_none() {
            assert_eq!(s.command_addr.to_string(), "127.0.0.1:8080");
        }
        if std::env::var_os("WAYBILL_QUERY_ADDR").is_none() {
            assert_eq!(s.query_addr.to_string(), "127.0.0.1:8081");
        }
        if std::env::var_os("WAYBILL_PARTITIONS").is_none() {
            assert_eq!(s.partitions, 8);
        }
        if std::env::var_os("WAYBILL_LOG_FORMAT").is_none() {
            assert_eq!(s.log_format, LogFormat::Text);
        }
        assert!(matches!(cli.command, Command::Serve { role: Role::All }));
    }

    #[test]
    fn subcommands_parse_their_arguments() {
        let cli = Cli::try_parse_from([
            "waybill",
            "bench",
            "place",
            "--orders",
            "100",
            "--clients",
            "4",
            "--out",
            "x.json",
        ])
        .unwrap();
        let Command::Bench {
            bench: Bench::Place(args),
        } = cli.command
        else {
            panic!("not bench place");
        };
        assert_eq!((args.orders, args.clients), (100, 4));
        assert_eq!(args.out, PathBuf::from("x.json"));

        let cli =
            Cli::try_parse_from(["waybill", "serve", "projector", "--partitions", "4"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Serve {
                role: Role::Projector
            }
        ));
        assert_eq!(cli.settings.partitions, 4);
        assert!(Cli::try_parse_from(["waybill", "serve", "everything"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["waybill", "rebuild", "tracking"])
                .unwrap()
                .command,
            Command::Rebuild {
                view: View::Tracking
            }
        ));
    }
}
