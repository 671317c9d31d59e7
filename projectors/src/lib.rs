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
pub mod views;
pub mod warehouse;

#[cfg(test)]
mod compliance;
#[cfg(test)]
mod testing;

use std::future::Future;

use async_nats::jetstream;
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

/// Runs the tracking projector (durable consumer `tracking`) until `shutdown` completes.
pub async fn run_tracking_projector(
    config: ProjectorConfig,
    pool: PgPool,
    js: jetstream::Context,
    redis: RedisConnection,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let view = TrackingProjection::new(TrackingStore::new(redis, config.redis_prefix.clone()));
    run_projector(config, pool, js, view, shutdown).await
}

/// Runs the notifications projector (durable consumer `notifications`) until `shutdown`
/// completes, writing messages with the development [`FileSink`] into `notifications.dir`.
pub async fn run_notifications_projector(
    config: ProjectorConfig,
    notifications: NotificationsConfig,
    pool: PgPool,
    js: jetstream::Context,
    redis: RedisConnection,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let view = NotificationsProjection::new(
        NotificationStore::new(redis, config.redis_prefix.clone()),
        FileSink::new(notifications.dir.clone()),
        &notifications,
    );
    run_projector(config, pool, js, view, shutdown).await
}

/// Runs the analytics projector (durable consumer `analytics`, batches of
/// [`views::analytics::BATCH`] with a [`views::analytics::LINGER`]) into the warehouse until
/// `shutdown` completes. The warehouse must be migrated ([`warehouse::migrate`]).
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
    run_projector(config, pool, js, view, shutdown).await
}
