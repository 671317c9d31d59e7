//! The command API (axum): `POST /v1/orders`, `POST /v1/orders/{id}/cancel`, refunds
//! dispute evidence and settlement imports ([`money`]), the inventory
//! endpoints under `/v1/inventory` ([`inventory`]), plus `/openapi.json`, `/health`, `/live` and
//! `/ready` ([`crate::readiness`]; `/metrics` is on the process's own metrics listener, not
//! here). Handlers are thin: the [`request`] extractor refuses
//! what is not a command, [`crate::commands`] carries it out, [`problem`] renders refusals.

mod body_check;
mod cancellation;
mod checkout;
pub mod contract;
mod desk;
mod edits;
mod erasure;
mod fulfillment;
mod handlers;
mod inventory;
mod money;
mod notifications;
pub mod openapi;
pub mod problem;
mod request;
mod returns;
mod routing;
pub mod shared_document;
mod subscriptions;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sqlx::PgPool;
use tokio::task::JoinHandle;

pub use handlers::REPLAYED_HEADER;
pub use problem::{Problem, ProblemType};
pub use request::{CORRELATION_ID_HEADER, IDEMPOTENCY_KEY_HEADER};
pub use waybill_schemas::api_keys::{ApiKeyError, ApiKeys, Principal, Role};

use crate::commands::CommandServices;
use crate::commit_batcher::{CommitBatcher, CommitBatcherConfig};
use crate::domain::fulfillment::RoutingConfig;
use crate::domain::returns::ReturnsPolicy;
use crate::event_store::EventStore;
use crate::fulfillment::webhook_batcher::{WebhookBatcher, WebhookBatcherConfig};
use crate::inventory::{Inventory, InventoryConfig};
use crate::payment::HttpGateway;
use crate::readiness::Readiness;

/// Default request body limit: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Everything the command API is configured with (the listen address is the binary's).
pub struct CommandApiConfig {
    /// Group commit: most commands per transaction (1 = one transaction per command).
    pub batch_max: usize,
    /// Group commit: how long the first command of a batch waits for others.
    pub batch_linger: Duration,
    /// Group commit: batches committed concurrently.
    pub batch_workers: usize,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Whole-request timeout; past it the client gets 503 and may retry with the same
    /// Idempotency-Key (a commit that still lands is then replayed, never applied twice).
    pub request_timeout: Duration,
    /// How long idempotency records are kept; a retry after that counts as a new request.
    pub idempotency_retention: Duration,
    pub api_keys: ApiKeys,
    /// Secrets and lifetime of customer tracking tokens (shared with the query API).
    pub tracking: waybill_schemas::access::TrackingKeys,
    /// HMAC secret of the payment gateway's webhooks (empty: webhooks are refused with 503).
    pub payment_webhook_secret: Vec<u8>,
    /// HMAC secret of node (WMS) and carrier webhooks (empty: refused with 503).
    pub logistics_webhook_secret: Vec<u8>,
    /// Node and carrier webhooks arriving together share one transaction (group commit, with
    /// the batch size and linger above); false applies each in a transaction of its own.
    pub logistics_webhook_batching: bool,
    /// The dependencies `GET /ready` checks (the binary registers what it connected).
    pub readiness: Readiness,
    /// How far ahead of its receipt a node or carrier webhook's own time may be; beyond it the
    /// webhook is refused with 422 naming the field (`carrier_time`, `occurred_at`).
    pub webhook_clock_skew: chrono::Duration,
    /// The inventory writer behind `/v1/inventory/...`.
    pub inventory: InventoryConfig,
    /// The payment gateway evidence for disputes is sent to and settlement reports are fetched
    /// from (`None`: those endpoints answer 500 and log why).
    pub gateway: Option<HttpGateway>,
    /// The payment gateway's name; settlement reports of any other gateway are refused.
    pub gateway_name: String,
    /// The return policy (`POST /v1/orders/{id}/returns`, return reports).
    pub returns_policy: Arc<ReturnsPolicy>,
    /// The routing rules: which shipping methods are collected at a store and which stores
    /// offer pickup (`shipping.pickup_location` of `POST /v1/orders`).
    pub routing: Arc<RoutingConfig>,
    /// The carrier and WMS the exceptions desk's actions go through (a parcel's handoff
    /// retried); `None`: those actions answer 502 and the entry stays open.
    pub logistics: Option<crate::fulfillment::logistics::LogisticsClient>,
    /// The key webhook subscriptions' secrets are sealed under (`None`: the subscription
    /// endpoints that need it answer 503 `webhooks-not-configured`).
    pub sealing_key: Option<crate::subscriptions::seal::SealingKey>,
}

impl CommandApiConfig {
    /// Defaults: batches of up to 256 lingering 1 ms on 2 workers, 64 KiB bodies.
    pub fn new(api_keys: ApiKeys, tracking_secret: Vec<u8>) -> Self {
        let batch = CommitBatcherConfig::default();
        Self {
            batch_max: batch.max_batch,
            batch_linger: batch.linger,
            batch_workers: batch.workers,
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: Duration::from_secs(10),
            idempotency_retention: Duration::from_secs(24 * 60 * 60),
            api_keys,
            tracking: waybill_schemas::access::TrackingKeys::new(tracking_secret),
            payment_webhook_secret: Vec::new(),
            logistics_webhook_secret: Vec::new(),
            logistics_webhook_batching: true,
            readiness: Readiness::new(),
            webhook_clock_skew: crate::fulfillment::webhooks::DEFAULT_CLOCK_SKEW,
            inventory: InventoryConfig::default(),
            gateway: None,
            gateway_name: "sandbox".to_owned(),
            // The bundled policy is tested to parse; the default is the same minus the fees.
            returns_policy: Arc::new(ReturnsPolicy::bundled().unwrap_or_default()),
            routing: Arc::new(
                RoutingConfig::bundled().expect("the bundled routing config parses (tested)"),
            ),
            logistics: None,
            sealing_key: None,
        }
    }
}

/// Shared by every handler. Handlers and middleware take it by value (axum clones the state for
/// each of them per request), so it is one reference-counted pointer to [`Shared`].
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every handler reads through [`AppState`].
pub struct Shared {
    services: CommandServices,
    inventory: Inventory,
    api_keys: Arc<ApiKeys>,
    body_limit: usize,
    readiness: Readiness,
    webhook_secret: Option<Arc<[u8]>>,
    gateway: Option<Arc<HttpGateway>>,
    gateway_name: Arc<str>,
    logistics_secret: Option<Arc<[u8]>>,
    webhook_clock_skew: chrono::Duration,
    /// Group commit of node and carrier webhooks (`None`: one transaction each).
    logistics_batcher: Option<WebhookBatcher>,
    /// Seals webhook subscriptions' secrets.
    sealing_key: Option<Arc<crate::subscriptions::seal::SealingKey>>,
}

/// The running command API's background work: the commit batcher's workers. They finish once
/// the router (and every clone of its state) is dropped and the queue is drained.
pub struct CommandApiWorkers {
    pub handles: Vec<JoinHandle<()>>,
    /// The inventory service the API writes through (one writer per process: share it).
    pub inventory: Inventory,
}

impl CommandApiWorkers {
    /// Waits for the batcher to drain its queue and stop.
    pub async fn join(self) {
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

/// How often expired idempotency records are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Answers 503 problem+json when a request runs past `limit`. A command whose commit still
/// lands is replayed to the client's retry with the same Idempotency-Key, never applied twice.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            ProblemType::Timeout,
            "the request took too long; retry it with the same Idempotency-Key",
        )
        .into_response(),
    }
}

/// `X-Content-Type-Options: nosniff` on every response: a body is only ever read as the type it
/// is declared as.
async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

/// Builds the router and starts the commit batcher on the current runtime.
pub fn router(config: CommandApiConfig, pool: PgPool) -> (Router, CommandApiWorkers) {
    let (batcher, handles) = CommitBatcher::spawn(
        pool.clone(),
        CommitBatcherConfig {
            max_batch: config.batch_max.max(1),
            linger: config.batch_linger,
            workers: config.batch_workers.max(1),
            ..CommitBatcherConfig::default()
        },
    );
    let inventory = Inventory::spawn(pool.clone(), config.inventory);
    let mut handles = handles;
    let logistics_batcher = config.logistics_webhook_batching.then(|| {
        let (batcher, workers) = WebhookBatcher::spawn(
            pool.clone(),
            config.returns_policy.clone(),
            WebhookBatcherConfig {
                max_batch: config.batch_max.max(1),
                linger: config.batch_linger,
                workers: config.batch_workers.max(1),
            },
        );
        handles.extend(workers);
        batcher
    });
    let state = AppState(Arc::new(Shared {
        inventory: inventory.clone(),
        services: CommandServices {
            store: EventStore::new(pool.clone()),
            pool,
            batcher,
            tracking: config.tracking,
            returns_policy: config.returns_policy,
            routing: config.routing,
            logistics: config.logistics,
        },
        api_keys: Arc::new(config.api_keys),
        body_limit: config.body_limit,
        readiness: config.readiness,
        webhook_secret: (!config.payment_webhook_secret.is_empty())
            .then(|| config.payment_webhook_secret.into()),
        gateway: config.gateway.map(Arc::new),
        gateway_name: config.gateway_name.into(),
        logistics_secret: (!config.logistics_webhook_secret.is_empty())
            .then(|| config.logistics_webhook_secret.into()),
        webhook_clock_skew: config.webhook_clock_skew,
        logistics_batcher,
        sealing_key: config.sealing_key.map(Arc::new),
    }));
    let api_keys = (*state.api_keys).clone();
    let router = Router::new()
        .route("/v1/orders", post(handlers::place_order))
        .route("/v1/orders/{id}/cancel", post(handlers::cancel_order))
        .route(
            "/v1/orders/{id}/lines/cancel",
            post(cancellation::cancel_lines),
        )
        .route("/v1/orders/{id}/edits", post(edits::edit_order))
        .route("/v1/orders/{id}/edits/preview", post(edits::preview_edit))
        .route("/v1/orders/{id}/review", post(checkout::review_order))
        .route("/v1/orders/{id}/refunds", post(money::refund_order))
        .route("/v1/orders/{id}/charges", post(money::charge_order))
        .route(
            "/v1/orders/{id}/disputes/{dispute_id}/evidence",
            post(money::submit_evidence),
        )
        .route("/v1/settlement/imports", post(money::import_settlement))
        .route("/v1/routing/simulations", post(routing::simulate))
        .route("/v1/orders/{id}/returns", post(returns::request_return))
        .route(
            "/v1/orders/{id}/returns/{return_id}/inspection",
            post(returns::record_inspection),
        )
        .route(
            "/v1/orders/{id}/notifications/resend",
            post(notifications::resend),
        )
        .route("/v1/customers/{id}/erasure", post(erasure::erase_customer))
        .route("/v1/guests/erasure", post(erasure::erase_guest))
        .route(
            "/v1/me/notification-preferences",
            get(notifications::get_preferences).put(notifications::put_preferences),
        )
        .route("/v1/reviews", get(checkout::review_queue))
        .route("/v1/desk/entries", get(desk::list_entries))
        .route("/v1/desk/entries/{entry_id}", get(desk::get_entry))
        .route(
            "/v1/desk/entries/{entry_id}/resolve",
            post(desk::resolve_entry),
        )
        .route("/v1/webhooks/payments", post(checkout::payment_webhook))
        .route("/v1/webhooks/wms", post(fulfillment::wms_webhook))
        .route("/v1/webhooks/carrier", post(fulfillment::carrier_webhook))
        .merge(inventory::routes())
        .merge(subscriptions::routes())
        .layer(middleware::from_fn_with_state(
            config.body_limit,
            body_check::refuse_unreadable_json,
        ))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .route(
            "/openapi.json",
            get(|| async { openapi::DOCUMENT.response() }),
        )
        .route("/health", get(handlers::health))
        .route("/live", get(crate::readiness::live))
        .route("/ready", get(handlers::ready))
        .fallback(handlers::not_found)
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            api_keys,
            crate::jwks::fresh_keys,
        ))
        .layer(middleware::from_fn_with_state(
            config.request_timeout,
            time_limit,
        ))
        .layer(axum::Extension(problem::BodyLimit(config.body_limit)))
        .layer(middleware::from_fn(problem::safety_net))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(crate::trace_context::request_span),
        )
        .layer(middleware::map_response(nosniff));
    (router, CommandApiWorkers { handles, inventory })
}

/// Serves the command API on `listener` until `shutdown` completes, then lets in-flight
/// requests finish and the commit batcher drain.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: CommandApiConfig,
    pool: PgPool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let retention = config.idempotency_retention;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(crate::idempotency::sweep_expired(
        pool.clone(),
        retention,
        SWEEP_EVERY,
        async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|stop| *stop).await;
        },
    ));
    let (router, workers) = router(config, pool);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await?;
    workers.join().await;
    let _ = sweeper.await;
    Ok(())
}
