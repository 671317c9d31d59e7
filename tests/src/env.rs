//! One test's private slice of the shared services: a database created from scratch (with
//! SERIALIZABLE as its default isolation, migrated by `waybill migrate`), a JetStream stream name
//! and subject root nobody else uses, a Redis key prefix, a tracking secret and a log directory.
//! It also gets a ClickHouse database of its own (`WAYBILL_CLICKHOUSE_URL`, default
//! `http://127.0.0.1:8124`). Dropping it deletes the databases, the stream (and the streams named
//! after it, like its dead letters) and the keys (set `WAYBILL_E2E_KEEP=1` to keep them for a post-mortem).

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use waybill_write_side::event_store::retry;
use waybill_write_side::testing::create_serializable_database;

use crate::binary::{assert_succeeded, waybill_binary};
use crate::process::{Role, WaybillProcess};

const DEFAULT_PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const DEFAULT_CLICKHOUSE_URL: &str = "http://127.0.0.1:8124";

/// The master key personal fields' data keys are wrapped under, in every test's processes and
/// in the test process (one key for all tests, so tests sharing a process agree on it).
pub const PII_MASTER_KEY: &str = "e2e-pii-master-key-shared-by-every-test-process";

pub struct TestEnv {
    /// Short random hex shared by every name below.
    pub id: String,
    pub database: String,
    pub database_url: String,
    pub nats_url: String,
    pub stream: String,
    pub subject_root: String,
    pub redis_url: String,
    pub redis_prefix: String,
    /// ClickHouse HTTP URL and this test's database there.
    pub clickhouse_url: String,
    pub clickhouse_database: String,
    pub tracking_secret: String,
    /// HMAC secret of Bearer JWTs (`WAYBILL_JWT_SECRET`); tests mint tokens with it.
    pub jwt_secret: String,
    pub log_dir: PathBuf,
    /// Where this test's payment sandbox listens (chosen up front so every process agrees).
    pub payment_sandbox_addr: std::net::SocketAddr,
    pub payment_api_key: String,
    pub payment_webhook_secret: String,
    /// Where this test's logistics sandbox (WMS + carrier) listens.
    pub logistics_sandbox_addr: std::net::SocketAddr,
    pub logistics_webhook_secret: String,
    /// Where the notification sink of this test's processes writes.
    pub notifications_dir: PathBuf,
    pg_server: String,
    pool: PgPool,
}

/// `WAYBILL_E2E_PG_SERVER` (no database path), `NATS_URL`, `REDIS_URL`, or this machine's defaults.
fn setting(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl TestEnv {
    /// A Bearer JWT signed with this test's `WAYBILL_JWT_SECRET`, valid for an hour.
    pub fn jwt(&self, subject: &str, role: &str) -> String {
        self.jwt_expiring(subject, role, chrono::Utc::now().timestamp() + 3600)
    }

    /// A Bearer JWT with the given expiry (seconds since the epoch).
    pub fn jwt_expiring(&self, subject: &str, role: &str, exp: i64) -> String {
        waybill_schemas::jwt::JwtKey::new(self.jwt_secret.as_bytes()).issue(
            &waybill_schemas::jwt::Claims {
                sub: subject.to_owned(),
                role: role.to_owned(),
                exp,
            },
        )
    }

    /// Creates and migrates a fresh database for the test called `test_name`.
    pub async fn new(test_name: &str) -> TestEnv {
        waybill_write_side::pii::install(
            waybill_write_side::subscriptions::seal::SealingKey::parse(PII_MASTER_KEY)
                .expect("a valid master key"),
        );
        let simple = uuid::Uuid::now_v7().simple().to_string();
        // The tail of a UUIDv7 is random; its head is the clock.
        let id = simple[simple.len() - 12..].to_owned();
        let pg_server = setting("WAYBILL_E2E_PG_SERVER", DEFAULT_PG_SERVER)
            .trim_end_matches('/')
            .to_owned();
        let database = format!("waybill_e2e_{id}");
        let database_url = format!("{pg_server}/{database}");

        let mut admin = PgConnection::connect(&format!("{pg_server}/postgres"))
            .await
            .expect("connect to Postgres (is it running? infra/scripts/ensure-services.sh)");
        create_serializable_database(&mut admin, &database)
            .await
            .expect("create the test database, SERIALIZABLE by default");
        let _ = admin.close().await;

        let log_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("e2e-logs")
            .join(format!("{test_name}-{id}"));
        std::fs::create_dir_all(&log_dir).expect("create the test's log directory");

        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&database_url)
            .await
            .expect("connect to the test database");

        let env = TestEnv {
            database,
            database_url,
            nats_url: setting("NATS_URL", DEFAULT_NATS_URL),
            stream: format!("E2E_{}", id.to_uppercase()),
            subject_root: format!("e2e_{id}"),
            redis_url: setting("REDIS_URL", DEFAULT_REDIS_URL),
            redis_prefix: format!("e2e:{id}"),
            clickhouse_url: setting("WAYBILL_CLICKHOUSE_URL", DEFAULT_CLICKHOUSE_URL),
            clickhouse_database: format!("waybill_e2e_{id}"),
            tracking_secret: format!("e2e-tracking-secret-{simple}"),
            jwt_secret: format!("e2e-jwt-secret-{simple}"),
            payment_sandbox_addr: crate::process::free_port(),
            payment_api_key: format!("e2e-gateway-key-{simple}"),
            payment_webhook_secret: format!("e2e-webhook-secret-{simple}"),
            logistics_sandbox_addr: crate::process::free_port(),
            logistics_webhook_secret: format!("e2e-logistics-secret-{simple}"),
            notifications_dir: log_dir.join("notifications"),
            log_dir,
            pg_server,
            pool,
            id,
        };
        env.migrate().await;
        env
    }

    /// Runs `waybill migrate` against the test database.
    async fn migrate(&self) {
        let output = self.run_migrate(&[]).await;
        let log = self.log_dir.join("migrate.log");
        let _ = std::fs::write(&log, [&output.stdout[..], &output.stderr[..]].concat());
        assert_succeeded(&output, "waybill migrate");
    }

    /// Runs `waybill migrate` with this test's environment plus `extra` (e.g. another
    /// `DATABASE_URL`) and returns what it did, success or not.
    pub async fn run_migrate(&self, extra: &[(&str, &str)]) -> std::process::Output {
        let mut command = tokio::process::Command::new(waybill_binary());
        command.arg("migrate").kill_on_drop(true);
        self.apply_env(&mut command, extra);
        command
            .current_dir(&self.log_dir)
            .output()
            .await
            .expect("run waybill migrate")
    }

    /// Runs `waybill <args>` (a one-shot command such as `reconcile`) with this test's
    /// environment and returns what it did, success or not.
    pub async fn run_command(&self, args: &[&str]) -> std::process::Output {
        self.run_command_with(args, &[]).await
    }

    /// [`Self::run_command`] with `extra` settings on top of the test's environment.
    pub async fn run_command_with(
        &self,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> std::process::Output {
        let mut command = tokio::process::Command::new(waybill_binary());
        command.args(args).kill_on_drop(true);
        self.apply_env(&mut command, extra);
        command
            .current_dir(&self.log_dir)
            .output()
            .await
            .unwrap_or_else(|e| panic!("run waybill {args:?}: {e}"))
    }

    /// [`Self::run_command`] that must succeed: answers what it printed, and fails the test
    /// with its output when it exits with an error.
    pub async fn run_ok(&self, args: &[&str]) -> String {
        self.run_ok_with(args, &[]).await
    }

    /// [`Self::run_ok`] with `extra` settings on top of the test's environment.
    pub async fn run_ok_with(&self, args: &[&str], extra: &[(&str, &str)]) -> String {
        let output = self.run_command_with(args, extra).await;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "waybill {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// The environment every process of this test runs with (on top of a cleared environment),
    /// plus `extra` (later entries win).
    pub fn process_env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = [
            ("DATABASE_URL", self.database_url.as_str()),
            ("NATS_URL", self.nats_url.as_str()),
            ("WAYBILL_NATS_STREAM", self.stream.as_str()),
            ("WAYBILL_SUBJECT_ROOT", self.subject_root.as_str()),
            ("REDIS_URL", self.redis_url.as_str()),
            ("WAYBILL_REDIS_PREFIX", self.redis_prefix.as_str()),
            ("WAYBILL_CLICKHOUSE_URL", self.clickhouse_url.as_str()),
            (
                "WAYBILL_CLICKHOUSE_DATABASE",
                self.clickhouse_database.as_str(),
            ),
            ("WAYBILL_API_KEYS", crate::api::API_KEYS_SETTING),
            ("WAYBILL_TRACKING_SECRET", self.tracking_secret.as_str()),
            ("WAYBILL_JWT_SECRET", self.jwt_secret.as_str()),
            ("WAYBILL_PAYMENT_API_KEY", self.payment_api_key.as_str()),
            (
                "WAYBILL_PAYMENT_WEBHOOK_SECRET",
                self.payment_webhook_secret.as_str(),
            ),
            // Debug builds on a busy 2-core box: leave the gateway time to answer.
            ("WAYBILL_PAYMENT_TIMEOUT_MS", "5000"),
            // Tests of the checkout flow turn it on; the rest see placement alone.
            ("WAYBILL_CHECKOUT_WORKER", "false"),
            // Likewise for fulfillment.
            ("WAYBILL_FULFILLMENT_WORKER", "false"),
            (
                "WAYBILL_LOGISTICS_WEBHOOK_SECRET",
                self.logistics_webhook_secret.as_str(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        // The subscriptions' sealing key, shared by this test's processes.
        vars.push((
            "WAYBILL_WEBHOOK_SEALING_KEY".to_owned(),
            format!("e2e-webhook-sealing-key-of-{}", self.database),
        ));
        // The master key of personal data's data keys, shared by this test's processes (and
        // installed in the test process itself, which reads the log too).
        vars.push((
            "WAYBILL_PII_MASTER_KEY".to_owned(),
            PII_MASTER_KEY.to_owned(),
        ));
        vars.push((
            "WAYBILL_PAYMENT_SANDBOX_ADDR".to_owned(),
            self.payment_sandbox_addr.to_string(),
        ));
        vars.push((
            "WAYBILL_PAYMENT_GATEWAY_URL".to_owned(),
            format!("http://{}", self.payment_sandbox_addr),
        ));
        let logistics = format!("http://{}", self.logistics_sandbox_addr);
        vars.push((
            "WAYBILL_LOGISTICS_SANDBOX_ADDR".to_owned(),
            self.logistics_sandbox_addr.to_string(),
        ));
        vars.push(("WAYBILL_WMS_URL".to_owned(), logistics.clone()));
        vars.push(("WAYBILL_CARRIER_URL".to_owned(), logistics));
        vars.push((
            "WAYBILL_NOTIFICATIONS_DIR".to_owned(),
            self.notifications_dir.display().to_string(),
        ));
        // The embedded search index of this test's processes (Tantivy allows one writer per
        // directory, so concurrent tests must not share it).
        vars.push((
            "WAYBILL_SEARCH_DIR".to_owned(),
            self.log_dir.join("search").display().to_string(),
        ));
        for name in ["PATH", "HOME", "RUST_BACKTRACE"] {
            if let Ok(value) = std::env::var(name) {
                vars.push((name.to_owned(), value));
            }
        }
        // The binary's own default filter unless the developer asks for another one: spans the
        // tracing test looks for must not be filtered out by the harness.
        if let Ok(filter) = std::env::var("WAYBILL_E2E_RUST_LOG") {
            vars.push(("RUST_LOG".to_owned(), filter));
        }
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        vars
    }

    fn apply_env(&self, command: &mut tokio::process::Command, extra: &[(&str, &str)]) {
        command.env_clear();
        for (key, value) in self.process_env(extra) {
            command.env(key, value);
        }
    }

    /// Starts `waybill serve <role>` for this test and waits until it answers.
    pub async fn start(&self, role: Role) -> WaybillProcess {
        self.start_with(role, &[]).await
    }

    /// Like [`TestEnv::start`], with extra environment variables.
    pub async fn start_with(&self, role: Role, extra: &[(&str, &str)]) -> WaybillProcess {
        let mut process = WaybillProcess::spawn(role, self.process_env(extra), &self.log_dir);
        process.wait_ready().await;
        process
    }

    /// Starts this test's payment sandbox, sending its webhooks to `command_url`'s
    /// `/v1/webhooks/payments`.
    pub async fn start_sandbox(&self, command_url: &str, extra: &[(&str, &str)]) -> WaybillProcess {
        let webhook_url = format!("{command_url}/v1/webhooks/payments");
        let mut vars: Vec<(&str, &str)> = vec![("WAYBILL_PAYMENT_WEBHOOK_URL", &webhook_url)];
        vars.extend_from_slice(extra);
        self.start_with(Role::PaymentSandbox, &vars).await
    }

    /// The event types of one order's stream, in order.
    /// Starts this test's logistics sandbox, sending node and carrier webhooks to
    /// `command_url`.
    pub async fn start_logistics(&self, command_url: &str) -> WaybillProcess {
        self.start_logistics_with(command_url, &[]).await
    }

    /// Like [`TestEnv::start_logistics`], with extra environment variables.
    pub async fn start_logistics_with(
        &self,
        command_url: &str,
        extra: &[(&str, &str)],
    ) -> WaybillProcess {
        let mut vars: Vec<(&str, &str)> = vec![("WAYBILL_LOGISTICS_WEBHOOK_BASE", command_url)];
        vars.extend_from_slice(extra);
        self.start_with(Role::LogisticsSandbox, &vars).await
    }

    /// The types of one order's events, in stream order.
    pub async fn event_types_of_order(&self, order_id: &str) -> Vec<String> {
        let stream = format!("order-{order_id}");
        retry::serializable(|| {
            sqlx::query_scalar::<_, String>(
                "SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_version",
            )
            .bind(&stream)
            .fetch_all(&self.pool)
        })
        .await
        .expect("read the event types of an order")
    }

    /// The payloads of one order's events of type `event_type`, in stream order.
    pub async fn payloads_of(&self, order_id: &str, event_type: &str) -> Vec<serde_json::Value> {
        // Read as every reader of the log reads them: personal fields (names, notes, reasons)
        // opened with the test's master key.
        waybill_write_side::event_store::EventStore::new(self.pool.clone())
            .read_stream(&format!("order-{order_id}"), 1, None)
            .await
            .expect("read payloads of an order")
            .into_iter()
            .filter(|e| e.event_type == event_type)
            .map(|e| e.payload.to_value())
            .collect()
    }

    /// The test database.
    pub fn db(&self) -> &PgPool {
        &self.pool
    }

    /// Rows in one table of the test database (`events`, `outbox`, `idempotency_records`, ...).
    /// The database is SERIALIZABLE, so a read racing the processes' writes may be told to retry
    /// (40001); it is, like every other transaction here.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        retry::serializable(|| sqlx::query_scalar::<_, i64>(&sql).fetch_one(&self.pool))
            .await
            .unwrap_or_else(|e| panic!("count rows of {table}: {e}"))
    }

    /// Events stored for one order.
    pub async fn events_of_order(&self, order_id: &str) -> i64 {
        let stream = format!("order-{order_id}");
        retry::serializable(|| {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE stream_id = $1")
                .bind(&stream)
                .fetch_one(&self.pool)
        })
        .await
        .expect("count events of an order")
    }

    /// A JetStream context on this test's NATS (`nats_url` may list several servers).
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = nats_client(&self.nats_url).await.expect("connect to NATS");
        async_nats::jetstream::new(client)
    }

    /// Messages in this test's JetStream stream (0 if the stream does not exist yet or cannot
    /// be read right now, as while a cluster elects a leader).
    pub async fn stream_message_count(&self) -> u64 {
        match self.jetstream().await.get_stream(&self.stream).await {
            Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Waits up to `deadline` until the outbox is empty and the stream holds exactly `events`
    /// messages: everything committed was published, nothing twice.
    pub async fn wait_outbox_drained_into_stream(&self, events: i64, deadline: Duration) {
        crate::poll::eventually("the outbox to drain into the stream", deadline, || async {
            let pending = self.count_rows("outbox").await;
            let published = self.stream_message_count().await;
            if pending == 0 && i64::try_from(published) == Ok(events) {
                Ok(())
            } else {
                Err(format!(
                    "{pending} in the outbox, {published} of {events} in the stream"
                ))
            }
        })
        .await;
    }

    /// The `Nats-Msg-Id` (event id) of every message in this test's stream, in stream order.
    pub async fn stream_message_ids(&self) -> Vec<String> {
        use async_nats::jetstream::consumer::pull::OrderedConfig;
        let stream = self
            .jetstream()
            .await
            .get_stream(&self.stream)
            .await
            .expect("the test's stream exists");
        let total = stream.cached_info().state.messages;
        let consumer = stream
            .create_consumer(OrderedConfig::default())
            .await
            .expect("an ordered consumer on the test's stream");
        let mut messages = consumer.messages().await.expect("read the stream");
        let mut ids = Vec::new();
        while (ids.len() as u64) < total {
            let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
                .await
                .expect("the stream's messages keep coming")
                .expect("the stream does not end")
                .expect("a readable message");
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map_or_else(String::new, |id| id.as_str().to_owned());
            ids.push(id);
        }
        ids
    }

    /// A connection to the test's Redis as the binary makes it (`redis_url` may list a
    /// cluster's nodes).
    pub async fn redis(&self) -> waybill_projectors::RedisConnection {
        redis_connection(&self.redis_url)
            .await
            .expect("connect to the test's Redis")
    }

    /// The tracking hash of one order in Redis: (`version`, `view` JSON), if written.
    pub async fn tracking_hash(&self, order_id: &str) -> Option<(i64, serde_json::Value)> {
        let mut conn = self.redis().await;
        let key = waybill_projectors::views::tracking::keys::view_key(&self.redis_prefix, order_id);
        let (version, view): (Option<i64>, Option<String>) = redis::cmd("HMGET")
            .arg(&key)
            .arg("version")
            .arg("view")
            .query_async(&mut conn)
            .await
            .expect("HMGET tracking hash");
        let view = serde_json::from_str(&view?).expect("tracking view is JSON");
        Some((version?, view))
    }
}

/// Connects to the Redis node or cluster `url` names.
async fn redis_connection(url: &str) -> Result<waybill_projectors::RedisConnection, String> {
    waybill_projectors::RedisTarget::parse(url, false)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// Connects to one of the servers in `url` (comma-separated), failing at once when none answers.
async fn nats_client(url: &str) -> Result<async_nats::Client, String> {
    let servers =
        waybill_write_side::nats::NatsConnection::parse_servers(url).map_err(|e| e.to_string())?;
    async_nats::connect(servers)
        .await
        .map_err(|e| e.to_string())
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::env::var_os("WAYBILL_E2E_KEEP").is_some() {
            eprintln!(
                "WAYBILL_E2E_KEEP: kept database {}, stream {}, redis prefix {}",
                self.database, self.stream, self.redis_prefix
            );
            return;
        }
        let pg_server = self.pg_server.clone();
        let database = self.database.clone();
        let nats_url = self.nats_url.clone();
        let stream = self.stream.clone();
        let redis_url = self.redis_url.clone();
        let redis_prefix = self.redis_prefix.clone();
        let clickhouse_url = self.clickhouse_url.clone();
        let clickhouse_database = self.clickhouse_database.clone();
        // Drop cannot await, and the test's runtime may be shutting down: clean up on a thread
        // with its own small runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&format!("{pg_server}/postgres")).await
                {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                            .execute(&mut admin)
                            .await;
                }
                if let Ok(client) = nats_client(&nats_url).await {
                    // The stream and any the services derived from its name (dead letters).
                    let jetstream = async_nats::jetstream::new(client);
                    let names: Vec<String> = jetstream
                        .stream_names()
                        .filter_map(|name| async move { name.ok() })
                        .collect()
                        .await;
                    for name in names.iter().filter(|n| n.starts_with(&stream)) {
                        let _ = jetstream.delete_stream(name).await;
                    }
                }
                let _ = reqwest::Client::new()
                    .post(&clickhouse_url)
                    .body(format!("DROP DATABASE IF EXISTS {clickhouse_database}"))
                    .send()
                    .await;
                if let Ok(redis) = redis_connection(&redis_url).await {
                    let _ = redis.delete_matching(format!("{redis_prefix}:*")).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
