//! Waybill's projectors: the middle box of ARCHITECTURE.md's diagram. They consume the events
//! the outbox relay publishes to JetStream and keep the read models the query API serves.
//!
//! [`runtime`] is the consumer runtime, written once: a durable pull consumer per view, batched
//! idempotent and gap-filling apply, ack after the view write, dead letters, lag metrics.
//! [`views`] holds the read models ([`views::tracking`] in Redis, [`views::notifications`],
//! which turns events into customer messages for a sink, [`views::search`], the agents'
//! search index in Tantivy or Elasticsearch/OpenSearch, and [`views::analytics`] in the
//! ClickHouse [`warehouse`]), each plugged into the runtime through [`runtime::View`].
//! [`rebuild`] replays the event log into a fresh copy of a view and swaps it in.

pub mod desk;
pub mod rebuild;
pub mod reconciliation;
pub mod redis_connection;
pub mod runtime;
pub mod sms_sandbox;
pub mod views;
pub mod warehouse;

#[cfg(test)]
mod compliance;
#[cfg(test)]
mod testing;

use std::future::Future;

use async_nats::jetstream;
use runtime::StoreMarker;
use sqlx::PgPool;

pub use rebuild::{rebuild_tracking, RebuildError, RebuildReport};
pub use redis_connection::{RedisConnection, RedisTarget};
pub use runtime::{run_projector, ProjectorConfig, View};
pub use views::analytics::{AnalyticsProjection, AnalyticsStore};
pub use views::notifications::{
    FileSink, NotificationSink, NotificationStore, NotificationsConfig, NotificationsProjection,
};
pub use views::tracking::{TrackingProjection, TrackingStore};
pub use warehouse::WarehouseConfig;

/// Runs the tracking projector (durable consumer `tracking`) until `shutdown` completes, and
/// beside it the store's self-healing ([`run_self_healing`]).
pub async fn run_tracking_projector(
    config: ProjectorConfig,
    pool: PgPool,
    js: jetstream::Context,
    redis: RedisConnection,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let view = TrackingProjection::new(TrackingStore::new(
        redis.clone(),
        config.redis_prefix.clone(),
    ));
    let marker = views::tracking::store_marker(redis, &config.redis_prefix);
    run_self_healing(config, pool, js, view, marker, shutdown).await
}

/// Runs `view`'s projector until `shutdown` completes, and beside it its store's self-healing
/// ([`runtime::keep_filled`]): a store found without its generation marker (new, flushed,
/// restarted empty) is filled again from the event log while the projector keeps applying;
/// and its audit ([`runtime::keep_converged`]): streams the store lost writes of (a failover
/// that promoted a replica without them) are filled again from the log.
pub async fn run_self_healing<V: View + Clone, M: runtime::StoreMarker>(
    config: ProjectorConfig,
    pool: PgPool,
    js: jetstream::Context,
    view: V,
    marker: M,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let marker = std::sync::Arc::new(marker);
    let heal = runtime::keep_filled(
        waybill_write_side::event_store::EventStore::new(pool.clone()),
        view.clone(),
        marker.clone(),
        config.self_heal.clone(),
        config.rebuild_page,
    );
    let audit = runtime::keep_converged(
        waybill_write_side::event_store::EventStore::new(pool.clone()),
        view.clone(),
        config.audit.clone(),
        || {
            let marker = marker.clone();
            async move { marker.state().await.is_ok_and(|state| state.is_ready()) }
        },
    );
    tokio::select! {
        result = run_projector(config, pool, js, view, shutdown) => result,
        () = heal => Ok(()),
        () = audit => Ok(()),
    }
}

/// Runs the notifications projector (durable consumer `notifications`) until `shutdown`
/// completes, delivering through [`views::notifications::Delivery`] (the sent-once ledger):
/// email over SMTP when `notifications.smtp` is set, text messages to the SMS provider when
/// `notifications.sms` is, and otherwise into the development [`FileSink`] in
/// `notifications.dir`.
pub async fn run_notifications_projector(
    config: ProjectorConfig,
    notifications: NotificationsConfig,
    pool: PgPool,
    js: jetstream::Context,
    redis: RedisConnection,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let delivery = notifications.delivery(pool.clone())?;
    let view = NotificationsProjection::new(
        NotificationStore::new(redis, config.redis_prefix.clone()),
        delivery,
        &notifications,
    );
    run_projector(config, pool, js, view, shutdown).await
}

/// Runs the analytics projector (durable consumer `analytics`, batches of
/// [`views::analytics::BATCH`] with a [`views::analytics::LINGER`]) into the warehouse until
/// `shutdown` completes, and beside it the warehouse's self-healing ([`run_self_healing`] with
/// the marker in the warehouse, [`views::analytics::AnalyticsStoreMarker`]): a database or
/// view table dropped is made again and filled from the event log. The warehouse must be
/// migrated ([`warehouse::migrate`]).
pub async fn run_analytics_projector(
    config: ProjectorConfig,
    warehouse: WarehouseConfig,
    pool: PgPool,
    js: jetstream::Context,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = ProjectorConfig {
        batch: views::analytics::BATCH,
        linger: views::analytics::LINGER,
        ..config
    };
    let view = AnalyticsProjection::new(AnalyticsStore::new(warehouse.client()));
    let marker = views::analytics::AnalyticsStoreMarker::new(warehouse);
    run_self_healing(config, pool, js, view, marker, shutdown).await
}
