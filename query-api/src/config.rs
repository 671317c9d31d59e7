//! The query API's configuration, built by the binary from its typed CLI/env config.

use std::sync::Arc;
use std::time::Duration;

use waybill_projectors::views::tracking::keys as tracking_keys;
use waybill_schemas::access::TrackingKeys;
use waybill_write_side::readiness::Readiness;

use crate::auth::ApiKeys;
use crate::client_ip::TrustedProxies;
use crate::rate_limit::Quota;

/// Renders the process's Prometheus metrics as text; installed by the binary, served on the
/// process's metrics listener (never on the public API).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
pub struct QueryApiConfig {
    /// Redis key prefix; the tracking view of an order lives at `<prefix>:tracking:{<uuid>}`.
    pub redis_prefix: String,
    /// Secrets and lifetime of customer tracking tokens (the command API and the
    /// notifications sign with the same ones).
    pub tracking: TrackingKeys,
    /// Bearer keys of staff and services (`WAYBILL_API_KEYS`).
    pub api_keys: ApiKeys,
    /// How long a query with `min_version`/`consistency_token` waits for the view to catch up.
    pub max_wait: Duration,
    /// How often Redis is polled while waiting.
    pub poll_interval: Duration,
    /// Per-client limit on the public endpoints, shared by all instances through Redis;
    /// `None` disables it.
    pub rate_limit: Option<Quota>,
    /// Per-client limit on the `/track` lookup form (guessing order number + email);
    /// `None` disables it.
    pub lookup_rate_limit: Option<Quota>,
    /// Failed `/track` lookups per order number, from any client, before that order number is
    /// refused lookups until the window ends (order number + postcode is low-entropy);
    /// `None` disables it.
    pub lookup_failures_per_order: Option<Quota>,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` name the client (none: the peer is).
    pub trusted_proxies: TrustedProxies,
    /// How often an open tracking page's event stream checks its order for changes when there
    /// is no change feed.
    pub live_poll_interval: Duration,
    /// The tracking view's change announcements (one Redis subscription per instance): open
    /// pages and read-your-writes waits re-read when their order changes instead of polling.
    /// `None`: they poll (`live_poll_interval`, `poll_interval`).
    pub changes: Option<waybill_projectors::views::tracking::ChangeFeed>,
    /// Whole-request timeout (must exceed `max_wait`).
    pub request_timeout: Duration,
    /// The dependencies `GET /ready` checks (the binary registers what it connected).
    pub readiness: Readiness,
    /// The search index agents query (`None`: search endpoints answer 500).
    pub search: Option<waybill_projectors::views::search::SearchBackend>,
    /// The event store, for the agents' full order timeline.
    pub events: Option<waybill_write_side::event_store::EventStore>,
    /// The ClickHouse warehouse the finance endpoints read; `None` answers them 503.
    pub warehouse: Option<waybill_projectors::WarehouseConfig>,
    /// The staff screens: sessions, cookies, where actions are sent.
    pub screens: crate::screens::ScreensConfig,
}

impl QueryApiConfig {
    /// A config with the documented defaults (2 s bounded wait, 5 ms polling, 50 requests per
    /// second per client, 10 lookups per minute per client, 10 failed lookups per order number
    /// per hour, no trusted proxies, open pages polled every 250 ms).
    pub fn new(redis_prefix: impl Into<String>, tracking_secret: impl Into<Arc<[u8]>>) -> Self {
        Self {
            redis_prefix: redis_prefix.into(),
            tracking: TrackingKeys::new(tracking_secret),
            api_keys: ApiKeys::default(),
            max_wait: Duration::from_secs(2),
            poll_interval: Duration::from_millis(5),
            rate_limit: Some(Quota::new(50, Duration::from_secs(1))),
            lookup_rate_limit: Some(Quota::new(10, Duration::from_secs(60))),
            lookup_failures_per_order: Some(Quota::new(10, Duration::from_secs(3600))),
            trusted_proxies: TrustedProxies::default(),
            live_poll_interval: Duration::from_millis(250),
            changes: None,
            request_timeout: Duration::from_secs(10),
            readiness: Readiness::new(),
            search: None,
            events: None,
            warehouse: None,
            screens: crate::screens::ScreensConfig::default(),
        }
    }

    /// The tracking view's keys come from its own layout module
    /// (`waybill_projectors::views::tracking::keys`), never spelled here.
    pub(crate) fn tracking_key(&self, order: impl std::fmt::Display) -> String {
        tracking_keys::view_key(&self.redis_prefix, order)
    }

    pub(crate) fn customer_orders_key(&self, customer_digest: &str) -> String {
        tracking_keys::customer_orders_key(&self.redis_prefix, customer_digest)
    }

    pub(crate) fn lookup_key(&self, lookup_digest: &str) -> String {
        tracking_keys::lookup_key(&self.redis_prefix, lookup_digest)
    }
}
