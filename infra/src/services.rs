//! Starting the services: each part (command API, checkout worker, relay, projectors, query API,
//! and the payment sandbox for development) gets its
//! connections, its listener and the shared shutdown signal, and runs as a task. `serve all`
//! runs every part in one process; `serve <part>` one of them. A part that fails brings the
//! process down (after the others drained) so a supervisor restarts it.

use std::net::SocketAddr;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use waybill_projectors::RedisConnection;
use waybill_query_api::rate_limit::Quota;
use waybill_query_api::{ApiKeys, QueryApiConfig};
use waybill_schemas::jwt::JwtVerifier;
use waybill_write_side::outbox::relay::{self, RelayConfig};

use crate::config::Settings;
use crate::secrets::Secrets;
use crate::shutdown::Shutdown;

/// One part of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Commands,
    Checkout,
    Relay,
    Projector,
    Query,
    /// Our simulated payment gateway; never part of `all` (a real deploy talks to a real one).
    PaymentSandbox,
    Fulfillment,
    /// Our simulated WMS + carrier; never part of `all`.
    LogisticsSandbox,
    /// Our simulated SMS provider; never part of `all`.
    SmsSandbox,
    /// The webhook delivery worker.
    Webhooks,
}

impl Part {
    /// What `serve all` runs.
    pub const ALL: [Part; 7] = [
        Part::Commands,
        Part::Checkout,
        Part::Fulfillment,
        Part::Relay,
        Part::Projector,
        Part::Query,
        Part::Webhooks,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Part::Commands => "command API",
            Part::Relay => "outbox relay",
            Part::Projector => "projectors",
            Part::Query => "query API",
            Part::Checkout => "checkout worker",
            Part::PaymentSandbox => "payment sandbox",
            Part::Fulfillment => "fulfillment worker",
            Part::LogisticsSandbox => "logistics sandbox",
            Part::SmsSandbox => "SMS sandbox",
            Part::Webhooks => "webhook delivery worker",
        }
    }
}

/// Where the HTTP parts listen; `port 0` addresses are resolved when bound.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub command: SocketAddr,
    pub query: SocketAddr,
    pub payment_sandbox: SocketAddr,
    pub logistics_sandbox: SocketAddr,
    pub sms_sandbox: SocketAddr,
}

/// Services running in this process.
pub struct Running {
    pub command_addr: Option<SocketAddr>,
    pub query_addr: Option<SocketAddr>,
    pub payment_sandbox_addr: Option<SocketAddr>,
    /// The search index this process writes or reads (benchmarks sample it directly).
    pub search: Option<waybill_projectors::views::search::SearchBackend>,
    pub logistics_sandbox_addr: Option<SocketAddr>,
    pub sms_sandbox_addr: Option<SocketAddr>,
    /// The dependencies this process uses, for `/ready` (on its APIs and metrics listener).
    pub readiness: waybill_write_side::readiness::Readiness,
    tasks: JoinSet<(Part, anyhow::Result<()>)>,
    shutdown: Shutdown,
}

impl Running {
    /// Waits until every part stopped. The first part to stop on its own (with an error or
    /// not) triggers shutdown of the rest. Returns the first error.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error: Option<anyhow::Error> = None;
        while let Some(joined) = self.tasks.join_next().await {
            let (part, result) = match joined {
                Ok(done) => done,
                Err(join_error) => {
                    self.shutdown.trigger();
                    first_error
                        .get_or_insert(anyhow::anyhow!("a service task panicked: {join_error}"));
                    continue;
                }
            };
            match result {
                Ok(()) => tracing::info!(part = part.name(), "stopped"),
                Err(error) => {
                    tracing::error!(part = part.name(), error = format!("{error:#}"), "failed");
                    first_error.get_or_insert(error.context(format!("{} failed", part.name())));
                }
            }
            self.shutdown.trigger();
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Connects what `parts` need and starts them.
pub async fn start(
    settings: &Settings,
    secrets: &Secrets,
    parts: &[Part],
    addresses: Addresses,
    shutdown: &Shutdown,
) -> anyhow::Result<Running> {
    let needs_db = parts.iter().any(|p| {
        matches!(
            p,
            Part::Commands
                | Part::Checkout
                | Part::Fulfillment
                | Part::Relay
                | Part::Projector
                | Part::Query
                | Part::Webhooks
        )
    });
    let pool = if needs_db {
        Some(crate::migrate::connect(&settings.database_url, settings.db_max_connections).await?)
    } else {
        None
    };
    let needs_nats = parts
        .iter()
        .any(|p| matches!(p, Part::Relay | Part::Projector));
    let nats = if needs_nats {
        let role = if parts.len() == 1 {
            parts[0].name()
        } else {
            "all"
        };
        Some(settings.nats_connection(role)?.connect().await?)
    } else {
        None
    };
    let needs_redis = parts
        .iter()
        .any(|p| matches!(p, Part::Projector | Part::Query));
    let redis = if needs_redis {
        Some(connect_redis(settings).await?)
    } else {
        None
    };

    // The search view holds the index's single writer; a query API in the same process
    // shares it, one on its own (or beside a projector without the search view, or while
    // another process holds the writer) opens a reader.
    let runs_search = parts.contains(&Part::Projector)
        && settings
            .projector_views()
            .contains(&crate::config::ProjectorView::Search);
    let search_writer = if runs_search {
        match settings.search().open_writer().await {
            Ok(writer) => Some(writer),
            Err(error) => {
                tracing::error!(
                    view = "search",
                    error = %error,
                    "search index writer not available; the search view keeps retrying"
                );
                None
            }
        }
    } else {
        None
    };
    let search = match &search_writer {
        Some(writer) => Some(writer.clone()),
        None if parts.contains(&Part::Query) => Some(
            settings
                .search()
                .open_reader()
                .await
                .context("opening the search index")?,
        ),
        None => None,
    };

    let uses_warehouse = parts
        .iter()
        .any(|p| matches!(p, Part::Projector | Part::Query));
    let readiness = crate::readiness::probes(crate::readiness::Dependencies {
        postgres: pool.as_ref(),
        nats: nats.as_ref(),
        redis: redis.as_ref(),
        clickhouse: uses_warehouse.then(|| settings.warehouse.config()),
        search: search.as_ref(),
    });
    let serves_api = parts
        .iter()
        .any(|p| matches!(p, Part::Commands | Part::Query));
    let jwt = if serves_api {
        crate::identity::verifier(&settings.jwt, &secrets.jwt_secret, shutdown).await?
    } else {
        None
    };
    let mut running = Running {
        readiness: readiness.clone(),
        command_addr: None,
        query_addr: None,
        payment_sandbox_addr: None,
        search: search.clone(),
        logistics_sandbox_addr: None,
        sms_sandbox_addr: None,
        tasks: JoinSet::new(),
        shutdown: shutdown.clone(),
    };
    for part in parts {
        match part {
            Part::Commands => {
                let listener = bind(addresses.command, "command API").await?;
                running.command_addr = Some(listener.local_addr()?);
                let pool = require(&pool)?;
                let future = commands::serve(
                    listener,
                    settings,
                    secrets,
                    pool,
                    readiness.clone(),
                    jwt.clone(),
                    shutdown,
                );
                running
                    .tasks
                    .spawn(async move { (Part::Commands, future.await) });
            }
            Part::Relay => {
                let mut config = RelayConfig::new(&settings.nats_stream, &settings.subject_root);
                config.partitions = settings.partitions;
                config.limits = settings.nats.event_limits()?;
                let js = relay::relay_jetstream(require(&nats)?);
                let pool = require(&pool)?;
                let stop = shutdown.wait();
                running.tasks.spawn(async move {
                    tracing::info!(stream = %config.stream_name, "outbox relay starting");
                    (Part::Relay, relay::run_relay(config, pool, js, stop).await)
                });
            }
            Part::Checkout => {
                let future = checkout::run(settings, secrets, require(&pool)?, shutdown)?;
                running
                    .tasks
                    .spawn(async move { (Part::Checkout, future.await) });
            }
            Part::PaymentSandbox => {
                let listener = bind(addresses.payment_sandbox, "payment sandbox").await?;
                let addr = listener.local_addr()?;
                running.payment_sandbox_addr = Some(addr);
                let config = sandbox::config(settings, secrets, addr);
                let stop = shutdown.wait();
                running.tasks.spawn(async move {
                    tracing::info!(%addr, "payment sandbox (simulated gateway) listening");
                    let result =
                        waybill_write_side::payment::sandbox::serve(listener, config, stop)
                            .await
                            .context("payment sandbox");
                    (Part::PaymentSandbox, result)
                });
            }
            Part::Fulfillment => {
                let future = fulfillment::run(settings, require(&pool)?, shutdown)?;
                running
                    .tasks
                    .spawn(async move { (Part::Fulfillment, future.await) });
            }
            Part::LogisticsSandbox => {
                let listener = bind(addresses.logistics_sandbox, "logistics sandbox").await?;
                let addr = listener.local_addr()?;
                running.logistics_sandbox_addr = Some(addr);
                let config = fulfillment::sandbox_config(settings, secrets, addr);
                let stop = shutdown.wait();
                running.tasks.spawn(async move {
                    let result =
                        waybill_write_side::fulfillment::sandbox::serve(listener, config, stop)
                            .await
                            .context("logistics sandbox");
                    (Part::LogisticsSandbox, result)
                });
            }
            Part::SmsSandbox => {
                let listener = bind(addresses.sms_sandbox, "SMS sandbox").await?;
                running.sms_sandbox_addr = Some(listener.local_addr()?);
                let config = waybill_projectors::sms_sandbox::SmsSandboxConfig {
                    api_key: secrets.sms_api_key.clone(),
                    fail_first: settings.checkout.sms_sandbox_fail_first,
                    state_dir: settings.sandbox_state_dir.clone(),
                };
                let stop = shutdown.wait();
                running.tasks.spawn(async move {
                    let result = waybill_projectors::sms_sandbox::serve(listener, config, stop)
                        .await
                        .context("SMS sandbox");
                    (Part::SmsSandbox, result)
                });
            }
            Part::Webhooks => {
                let pool = require(&pool)?;
                let key = secrets.webhook_sealing_key.clone();
                let config = settings.webhooks.worker();
                let stop = shutdown.wait();
                running.tasks.spawn(async move {
                    let result =
                        waybill_write_side::subscriptions::delivery::run(pool, key, config, stop)
                            .await;
                    (Part::Webhooks, result)
                });
            }
            Part::Projector => {
                let future = projector::run(
                    settings,
                    secrets,
                    require(&pool)?,
                    require(&nats)?,
                    require(&redis)?,
                    search_writer.clone(),
                    shutdown,
                );
                running
                    .tasks
                    .spawn(async move { (Part::Projector, future.await) });
            }
            Part::Query => {
                let listener = bind(addresses.query, "query API").await?;
                running.query_addr = Some(listener.local_addr()?);
                let mut config = query_config(settings, secrets, jwt.clone())?;
                if settings.command_api_url.is_none() {
                    if let Some(own) = running.command_addr {
                        config.screens.command_api_url = Some(format!("http://{own}"));
                    }
                }
                config.readiness = readiness.clone();
                config.search = search.clone();
                config.events = Some(waybill_write_side::event_store::EventStore::new(require(
                    &pool,
                )?));
                let redis = require(&redis)?;
                let stop = shutdown.wait();
                running.tasks.spawn(async move {
                    (
                        Part::Query,
                        waybill_query_api::serve(listener, config, redis, stop).await,
                    )
                });
            }
        }
    }
    Ok(running)
}

pub fn query_config(
    settings: &Settings,
    secrets: &Secrets,
    jwt: Option<JwtVerifier>,
) -> anyhow::Result<QueryApiConfig> {
    let mut config = QueryApiConfig::new(settings.redis_prefix.clone(), Vec::new());
    config.tracking = secrets.tracking.clone();
    config.api_keys = ApiKeys::parse(&secrets.api_keys)
        .context("WAYBILL_API_KEYS")?
        .with_jwt_verifier(jwt);
    config.max_wait = settings.query_max_wait();
    config.request_timeout = config.max_wait + std::time::Duration::from_secs(8);
    config.rate_limit = (settings.query_rate_limit > 0).then(|| {
        Quota::new(
            settings.query_rate_limit,
            std::time::Duration::from_secs(settings.query_rate_window_secs),
        )
    });
    config.lookup_failures_per_order = (settings.lookup_failures_per_order > 0).then(|| {
        Quota::new(
            settings.lookup_failures_per_order,
            std::time::Duration::from_secs(settings.lookup_failure_window_secs),
        )
    });
    config.trusted_proxies =
        waybill_query_api::client_ip::TrustedProxies::parse(&settings.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("WAYBILL_TRUSTED_PROXIES: {e}"))?;
    config.warehouse = Some(settings.warehouse.config());
    config.screens = waybill_query_api::screens::ScreensConfig {
        command_api_url: Some(
            settings
                .command_api_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", settings.command_addr)),
        ),
        session_ttl: std::time::Duration::from_secs(settings.console_session_secs),
        public_origin: settings.console_origin.clone(),
        secure_cookies: settings.console_secure_cookies,
    };
    if settings.query_live_push {
        let clients = settings
            .redis()?
            .clients()
            .with_context(|| format!("REDIS_URL {} is not a Redis URL", settings.redis_url))?;
        config.changes = Some(waybill_projectors::views::tracking::ChangeFeed::start(
            clients,
            &settings.redis_prefix,
        ));
    }
    Ok(config)
}

/// A Redis connection (one node or a cluster, see `waybill_projectors::redis_connection`)
/// that reconnects by itself: while Redis is down a command fails within about a second, so
/// readers answer 503 at once, and the next command tries again.
pub async fn connect_redis(settings: &Settings) -> anyhow::Result<RedisConnection> {
    let target = settings.redis()?;
    target
        .connect()
        .await
        .with_context(|| format!("connecting to {target}"))
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} on {addr}"))
}

fn require<T: Clone>(connection: &Option<T>) -> anyhow::Result<T> {
    connection
        .clone()
        .context("internal: a part started without its connection")
}

/// The command API from the write side.
mod commands {
    use super::*;
    use waybill_write_side::command_api::{self, CommandApiConfig};

    pub fn serve(
        listener: TcpListener,
        settings: &Settings,
        secrets: &Secrets,
        pool: PgPool,
        readiness: waybill_write_side::readiness::Readiness,
        jwt: Option<JwtVerifier>,
        shutdown: &Shutdown,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static {
        let policy = super::returns_policy(settings).map(std::sync::Arc::new);
        let routing = super::routing_config(settings).map(std::sync::Arc::new);
        let config = command_api::ApiKeys::parse(&secrets.api_keys)
            .map_err(|e| anyhow::anyhow!("WAYBILL_API_KEYS: {e}"))
            .map(|keys| {
                let keys = keys.with_jwt_verifier(jwt);
                let mut config = CommandApiConfig::new(keys, Vec::new());
                config.tracking = secrets.tracking.clone();
                config.sealing_key = Some(secrets.webhook_sealing_key.clone());
                config.readiness = readiness;
                config.idempotency_retention = std::time::Duration::from_secs(
                    settings.idempotency_retention_hours.saturating_mul(3600),
                );
                if let Some(max) = settings.commit_batch_max {
                    config.batch_max = max;
                }
                if let Some(linger) = settings.commit_linger_us {
                    config.batch_linger = std::time::Duration::from_micros(linger);
                }
                if let Some(workers) = settings.commit_workers {
                    config.batch_workers = workers;
                }
                config.payment_webhook_secret = secrets.payment_webhook_secret.clone();
                config.gateway_name = settings.checkout.payment_gateway_name.clone();
                config.logistics_webhook_secret = secrets.logistics_webhook_secret.clone();
                if let Ok(policy) = &policy {
                    config.returns_policy = policy.clone();
                }
                config.webhook_clock_skew = chrono::Duration::seconds(i64::from(
                    settings.fulfillment.webhook_clock_skew_secs,
                ));
                if let Ok(routing) = &routing {
                    config.routing = routing.clone();
                }
                config.logistics_webhook_batching = settings.fulfillment.fulfillment_commit
                    == crate::config::FulfillmentCommit::Rounds;
                config.inventory.reservation_ttl =
                    std::time::Duration::from_secs(settings.checkout.reservation_ttl_secs);
                config.gateway = waybill_write_side::payment::HttpGateway::new(
                    &settings.checkout.payment_gateway_url,
                    &secrets.payment_api_key,
                    std::time::Duration::from_millis(settings.checkout.payment_timeout_ms),
                )
                .map_err(|e| tracing::warn!(error = %e, "no payment gateway for evidence and settlement imports"))
                .ok();
                config.logistics = waybill_write_side::fulfillment::logistics::LogisticsClient::new(
                    &settings.fulfillment.wms_url,
                    &settings.fulfillment.carrier_url,
                    std::time::Duration::from_secs(5),
                )
                .map_err(|e| tracing::warn!(error = %e, "no carrier for the exceptions desk's actions"))
                .ok();
                config
            });
        let stop = shutdown.wait();
        async move {
            let config = config?;
            policy?;
            routing?;
            tracing::info!(addr = %listener.local_addr()?, "command API listening");
            command_api::serve(listener, config, pool, stop).await
        }
    }
}

/// The projector: each selected view in its own supervised task.
mod projector {
    use super::*;
    use std::time::Duration;

    use waybill_projectors::views::search::{SearchBackend, SearchIndex, SearchProjection};
    use waybill_projectors::{NotificationsConfig, ProjectorConfig};

    use crate::config::ProjectorView;

    /// Restart back-off of a failed view: doubling from 1 s to 30 s.
    const RESTART_FIRST: Duration = Duration::from_secs(1);
    const RESTART_MAX: Duration = Duration::from_secs(30);

    pub fn config(settings: &Settings) -> ProjectorConfig {
        let mut config = ProjectorConfig::new(
            &settings.nats_stream,
            &settings.subject_root,
            &settings.redis_prefix,
        );
        config.stall_warn = Duration::from_millis(settings.projector_stall_warn_ms);
        config.audit.every = Duration::from_secs(settings.projector_audit_seconds);
        config.audit.settle = Duration::from_secs(settings.projector_audit_settle_seconds);
        config.dead_letter_limits = settings.nats.dead_letter_limits();
        if settings.projector_partitioned {
            config.sharing = Some(waybill_projectors::runtime::Sharing::new(
                settings.partitions,
                Duration::from_millis(settings.projector_lease_ms.max(300)),
            ));
        }
        config
    }

    /// Where the notifications view sends (SMTP and the SMS provider when configured, else
    /// files) and how it signs its tracking links.
    pub fn notifications_config(settings: &Settings, secrets: &Secrets) -> NotificationsConfig {
        use waybill_projectors::views::notifications::{SmsConfig, SmtpConfig, SmtpSecurity};
        let checkout = &settings.checkout;
        let mut notifications = NotificationsConfig::new(
            checkout.notifications_dir.clone(),
            checkout.public_tracking_url.clone(),
            Vec::new(),
        );
        notifications.tracking = secrets.tracking.clone();
        notifications.smtp = checkout.smtp_host.as_ref().map(|host| {
            let from_domain = checkout
                .notifications_from
                .rsplit_once('@')
                .map(|(_, domain)| domain.trim_end_matches('>').trim().to_owned())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "waybill.localhost".to_owned());
            SmtpConfig {
                host: host.clone(),
                port: checkout.smtp_port,
                security: SmtpSecurity::parse(&checkout.smtp_security)
                    .unwrap_or(SmtpSecurity::StartTls),
                username: checkout.smtp_username.clone(),
                password: checkout.smtp_password.clone(),
                from: checkout.notifications_from.clone(),
                message_id_domain: from_domain,
                timeout: Duration::from_secs(10),
            }
        });
        notifications.sms = checkout.sms_url.as_ref().map(|url| SmsConfig {
            base_url: url.clone(),
            api_key: secrets.sms_api_key.clone(),
            sender: checkout.sms_sender.clone(),
            timeout: Duration::from_secs(10),
        });
        notifications
    }

    /// What every view needs to start.
    #[derive(Clone)]
    struct Inputs {
        config: ProjectorConfig,
        settings: Settings,
        notifications: NotificationsConfig,
        pool: PgPool,
        js: async_nats::jetstream::Context,
        redis: RedisConnection,
        search: Option<SearchBackend>,
    }

    pub fn run(
        settings: &Settings,
        secrets: &Secrets,
        pool: PgPool,
        nats: async_nats::Client,
        redis: RedisConnection,
        search: Option<SearchBackend>,
        shutdown: &Shutdown,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static {
        let views = settings.projector_views();
        let inputs = Inputs {
            config: config(settings),
            settings: settings.clone(),
            notifications: notifications_config(settings, secrets),
            pool,
            js: async_nats::jetstream::new(nats),
            redis,
            search,
        };
        let shutdown = shutdown.clone();
        async move {
            tracing::info!(
                stream = %inputs.config.stream_name,
                views = ?views.iter().map(|v| v.name()).collect::<Vec<_>>(),
                "projector starting"
            );
            let mut tasks = JoinSet::new();
            for view in views {
                tasks.spawn(supervise(view, inputs.clone(), shutdown.clone()));
            }
            while tasks.join_next().await.is_some() {}
            Ok(())
        }
    }

    /// Runs `view` until shutdown; a view that fails or panics is logged at ERROR and started
    /// again after a back-off, while the other views carry on.
    async fn supervise(view: ProjectorView, inputs: Inputs, shutdown: Shutdown) {
        let mut delay = RESTART_FIRST;
        loop {
            let started = std::time::Instant::now();
            let attempt = tokio::spawn(run_view(view, inputs.clone(), shutdown.clone()));
            let outcome = match attempt.await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(format!("{error:#}")),
                Err(join) => Some(format!("panicked: {join}")),
            };
            if shutdown.is_triggered() {
                return;
            }
            if started.elapsed() > RESTART_MAX {
                delay = RESTART_FIRST;
            }
            let error = outcome.unwrap_or_else(|| "stopped without an error".to_owned());
            metrics::counter!("waybill_projector_restarts_total", "view" => view.name())
                .increment(1);
            tracing::error!(
                view = view.name(),
                error,
                restart_in_ms = delay.as_millis() as u64,
                "view failed; restarting it (the other views carry on)"
            );
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(RESTART_MAX);
        }
    }

    async fn run_view(
        view: ProjectorView,
        inputs: Inputs,
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let Inputs {
            config,
            settings,
            notifications,
            pool,
            js,
            redis,
            search,
        } = inputs;
        let stop = shutdown.wait();
        match view {
            ProjectorView::Tracking => {
                waybill_projectors::run_tracking_projector(config, pool, js, redis, stop).await
            }
            ProjectorView::Notifications => {
                waybill_projectors::run_notifications_projector(
                    config,
                    notifications,
                    pool,
                    js,
                    redis,
                    stop,
                )
                .await
            }
            ProjectorView::Search => {
                let index = match search {
                    Some(index) => index,
                    // Opened here when the process could not open it at start (another
                    // process holds Tantivy's writer): fails, and is retried, until it can.
                    None => settings
                        .search()
                        .open_writer()
                        .await
                        .context("opening the search index writer")?,
                };
                tracing::info!(backend = index.backend(), "search view starting");
                let config = ProjectorConfig {
                    linger: Duration::from_millis(settings.search_linger_ms),
                    batch: config.batch.max(2_000),
                    // The embedded index has one writer per directory: one consumer for all.
                    sharing: config
                        .sharing
                        .filter(|_| settings.search().elasticsearch_url.is_some()),
                    ..config
                };
                let marker =
                    waybill_projectors::views::search::SearchStoreMarker::new(index.clone());
                let mut projection = SearchProjection::new(index);
                if settings.search_commit_ms > 0 {
                    projection = projection
                        .with_commit_interval(Duration::from_millis(settings.search_commit_ms));
                }
                waybill_projectors::run_self_healing(config, pool, js, projection, marker, stop)
                    .await
            }
            ProjectorView::Analytics => {
                run_analytics(config, settings.warehouse.config(), pool, js, stop).await
            }
            ProjectorView::Feed => {
                let view = waybill_projectors::views::feed::FeedProjection::new(pool.clone());
                waybill_projectors::run_projector(config, pool, js, view, stop).await
            }
            ProjectorView::Desk => {
                let desk = settings.desk.config(
                    &settings.nats_stream,
                    Duration::from_secs(settings.checkout.review_timeout_secs),
                );
                let ops = settings.desk.ops(&settings.nats_stream);
                let view = waybill_projectors::desk::DeskProjection::new(
                    waybill_projectors::desk::DeskStore::new(pool.clone()),
                );
                tokio::try_join!(
                    waybill_projectors::run_projector(config, pool.clone(), js.clone(), view, stop),
                    waybill_projectors::desk::run_detector(
                        desk,
                        pool.clone(),
                        js.clone(),
                        shutdown.wait()
                    ),
                    waybill_projectors::desk::ops::run_sampler(ops, pool, js, shutdown.wait()),
                )
                .map(|_| ())
            }
        }
    }

    /// The analytics projector, once the warehouse is migrated. ClickHouse being down delays
    /// only this view (retried every 2 s); the others run meanwhile.
    async fn run_analytics(
        config: ProjectorConfig,
        warehouse: waybill_projectors::WarehouseConfig,
        pool: PgPool,
        js: async_nats::jetstream::Context,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        loop {
            match crate::migrate::migrate_warehouse(&warehouse).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "analytics projector waiting")
                }
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            }
        }
        waybill_projectors::run_analytics_projector(config, warehouse, pool, js, shutdown).await
    }
}

/// The checkout process manager.
mod checkout {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use waybill_schemas::events::CaptureMode;
    use waybill_write_side::checkout::{CheckoutServices, WorkerConfig};
    use waybill_write_side::domain::risk::RiskRules;
    use waybill_write_side::domain::{FlowPolicy, OutOfStockPolicy};
    use waybill_write_side::event_store::EventStore;
    use waybill_write_side::inventory::{Inventory, InventoryConfig, OutOfStock};
    use waybill_write_side::payment::HttpGateway;

    use crate::config::{CaptureModeSetting, OutOfStockSetting};

    /// The inventory writer's settings (reservation TTL, out-of-stock policy).
    pub fn inventory_config(settings: &Settings) -> InventoryConfig {
        let c = &settings.checkout;
        InventoryConfig {
            reservation_ttl: Duration::from_secs(c.reservation_ttl_secs),
            out_of_stock: match c.out_of_stock {
                OutOfStockSetting::Reject => OutOfStock::Reject,
                OutOfStockSetting::Backorder => OutOfStock::Backorder,
            },
            ..InventoryConfig::default()
        }
    }

    /// The flow policy the settings describe.
    pub fn policy(settings: &Settings) -> FlowPolicy {
        let c = &settings.checkout;
        FlowPolicy {
            capture_mode: match c.capture_mode {
                CaptureModeSetting::Immediate => CaptureMode::Immediate,
                CaptureModeSetting::OnShipment => CaptureMode::OnShipment,
            },
            reservation_ttl: chrono::Duration::seconds(c.reservation_ttl_secs as i64),
            challenge_timeout: chrono::Duration::seconds(c.challenge_timeout_secs as i64),
            review_timeout: chrono::Duration::seconds(c.review_timeout_secs as i64),
            out_of_stock: match c.out_of_stock {
                OutOfStockSetting::Reject => OutOfStockPolicy::Reject,
                OutOfStockSetting::Backorder => OutOfStockPolicy::Backorder,
            },
        }
    }

    pub fn run(
        settings: &Settings,
        secrets: &Secrets,
        pool: PgPool,
        shutdown: &Shutdown,
    ) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static>
    {
        let c = settings.checkout.clone();
        let policy = policy(settings);
        let gateway = HttpGateway::new(
            &c.payment_gateway_url,
            &secrets.payment_api_key,
            Duration::from_millis(c.payment_timeout_ms),
        )
        .map_err(|e| anyhow::anyhow!("payment gateway settings: {e}"))?;
        let stop = shutdown.wait();
        let inventory_config = inventory_config(settings);
        Ok(async move {
            let inventory = Inventory::spawn(pool.clone(), inventory_config);
            let services = CheckoutServices {
                store: EventStore::new(pool.clone()),
                pool,
                inventory,
                gateway: Arc::new(gateway),
                risk_rules: Arc::new(RiskRules::default()),
                policy,
                risk_window: chrono::Duration::minutes(c.risk_window_minutes),
                lease: chrono::Duration::seconds(30),
                batch: c.checkout_batch.max(1),
                risk_lock: Arc::default(),
            };
            tracing::info!(gateway = %c.payment_gateway_url, capture = policy.capture_mode.as_str(), "checkout worker starting");
            let config = WorkerConfig {
                poll_interval: Duration::from_millis(c.checkout_poll_ms.max(1)),
                concurrency: c.checkout_concurrency.max(1),
                ..WorkerConfig::default()
            };
            waybill_write_side::checkout::run_worker(services, config, stop).await;
            Ok(())
        })
    }
}

/// The fulfillment worker and our simulated WMS + carrier.
mod fulfillment {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use waybill_write_side::domain::fulfillment::flow::FulfillmentPolicy;
    use waybill_write_side::event_store::EventStore;
    use waybill_write_side::fulfillment::logistics::LogisticsClient;
    use waybill_write_side::fulfillment::sandbox::LogisticsSandboxConfig;
    use waybill_write_side::fulfillment::{CommitMode, FulfillmentServices};
    use waybill_write_side::inventory::Inventory;

    use crate::config::FulfillmentCommit;

    pub fn run(
        settings: &Settings,
        pool: PgPool,
        shutdown: &Shutdown,
    ) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static>
    {
        let f = settings.fulfillment.clone();
        let routing = super::routing_config(settings)?;
        let returns = returns_policy(settings)?;
        let logistics = LogisticsClient::new(&f.wms_url, &f.carrier_url, Duration::from_secs(5))
            .map_err(|e| anyhow::anyhow!("logistics settings: {e}"))?;
        let auto_close_ms = (f.auto_close_days * 86_400_000.0).max(0.0) as i64;
        let inventory_pool = pool.clone();
        let inventory_config = super::checkout::inventory_config(settings);
        let services = move |inventory| FulfillmentServices {
            store: EventStore::new(pool.clone()),
            pool,
            logistics,
            inventory,
            routing: Arc::new(routing),
            returns: Arc::new(returns),
            policy: FulfillmentPolicy {
                auto_close_after: chrono::Duration::milliseconds(auto_close_ms),
                max_handoff_retries: f.max_handoff_retries,
                hold: chrono::Duration::seconds(
                    i64::try_from(f.fulfillment_hold_secs).unwrap_or(i64::MAX / 1000),
                ),
            },
            lease: chrono::Duration::seconds(30),
            batch: 200,
            concurrency: 32,
            idle_poll: Duration::from_millis(f.fulfillment_poll_ms.max(1)),
            commit: match f.fulfillment_commit {
                FulfillmentCommit::Rounds => CommitMode::Rounds,
                FulfillmentCommit::PerStep => CommitMode::PerStep,
            },
        };
        let stop = shutdown.wait();
        Ok(async move {
            // Cancelled units' stock goes back through this process's own inventory writer.
            let services = services(Inventory::spawn(inventory_pool, inventory_config));
            tracing::info!(wms = %f.wms_url, carrier = %f.carrier_url, auto_close_days = f.auto_close_days, "fulfillment worker starting");
            waybill_write_side::fulfillment::run_worker(services, stop).await;
            Ok(())
        })
    }

    pub fn sandbox_config(
        settings: &Settings,
        secrets: &Secrets,
        addr: SocketAddr,
    ) -> LogisticsSandboxConfig {
        let base = settings
            .fulfillment
            .logistics_webhook_base
            .clone()
            .unwrap_or_else(|| format!("http://{}", settings.command_addr));
        let base = base.trim_end_matches('/').to_owned();
        LogisticsSandboxConfig {
            webhook_secret: secrets.logistics_webhook_secret.clone(),
            wms_webhook_url: format!("{base}/v1/webhooks/wms"),
            carrier_webhook_url: format!("{base}/v1/webhooks/carrier"),
            public_url: format!("http://{addr}"),
            transit_hours_per_zone: 24,
            state_dir: settings.sandbox_state_dir.clone(),
        }
    }
}

/// Our simulated payment gateway.
mod sandbox {
    use super::*;
    use std::time::Duration;
    use waybill_write_side::payment::sandbox::SandboxConfig;

    pub fn config(settings: &Settings, secrets: &Secrets, addr: SocketAddr) -> SandboxConfig {
        let c = &settings.checkout;
        let mut config = SandboxConfig::new(
            secrets.payment_api_key.clone(),
            secrets.payment_webhook_secret.clone(),
            format!("http://{addr}"),
        );
        config.webhook_url =
            Some(c.payment_webhook_url.clone().unwrap_or_else(|| {
                format!("http://{}/v1/webhooks/payments", settings.command_addr)
            }));
        config.challenge_validity = Duration::from_secs(c.challenge_timeout_secs);
        config.slow_response = Duration::from_millis(c.payment_slow_ms);
        config.auth_validity = Duration::from_secs(c.payment_auth_validity_secs);
        config.state_dir = settings.sandbox_state_dir.clone();
        config
    }
}

pub use projector::config as projector_config;
pub use projector::notifications_config;

/// A JSON config file at `path`, or the bundled one; `what` names it in errors.
fn file_or_bundled<T, E: std::fmt::Display>(
    path: Option<&std::path::Path>,
    what: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
    bundled: impl FnOnce() -> Result<T, E>,
) -> anyhow::Result<T> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {what} {}", path.display()))?;
            parse(&text)
        }
        None => bundled(),
    }
    .map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// The routing rules: `WAYBILL_ROUTING_CONFIG`, or the bundled ones.
pub fn routing_config(
    settings: &Settings,
) -> anyhow::Result<waybill_write_side::domain::fulfillment::RoutingConfig> {
    use waybill_write_side::domain::fulfillment::RoutingConfig;
    file_or_bundled(
        settings.fulfillment.routing_config.as_deref(),
        "routing config",
        RoutingConfig::parse,
        RoutingConfig::bundled,
    )
}

/// The return policy: `WAYBILL_RETURNS_POLICY`, or the bundled one.
pub fn returns_policy(
    settings: &Settings,
) -> anyhow::Result<waybill_write_side::domain::returns::ReturnsPolicy> {
    use waybill_write_side::domain::returns::ReturnsPolicy;
    file_or_bundled(
        settings.fulfillment.returns_policy.as_deref(),
        "return policy",
        ReturnsPolicy::parse,
        ReturnsPolicy::bundled,
    )
}
