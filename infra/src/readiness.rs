//! The `/ready` probes of a process: one per dependency it connected to (Postgres, NATS, Redis,
//! ClickHouse, the search index), so every role checks exactly what it uses.

use sqlx::PgPool;
use waybill_projectors::views::search::SearchBackend;
use waybill_projectors::RedisConnection;
use waybill_projectors::WarehouseConfig;
use waybill_write_side::readiness::Readiness;

/// What a process connected to; `None` for what its parts do not use.
pub struct Dependencies<'a> {
    pub postgres: Option<&'a PgPool>,
    pub nats: Option<&'a async_nats::Client>,
    pub redis: Option<&'a RedisConnection>,
    pub clickhouse: Option<WarehouseConfig>,
    pub search: Option<&'a SearchBackend>,
}

/// The probes for `dependencies`, in that order.
pub fn probes(dependencies: Dependencies<'_>) -> Readiness {
    let mut readiness = Readiness::new();
    if let Some(pool) = dependencies.postgres.cloned() {
        readiness = readiness.check("postgres", move || {
            let pool = pool.clone();
            async move {
                sqlx::query("SELECT 1")
                    .execute(&pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        });
    }
    if let Some(client) = dependencies.nats.cloned() {
        readiness = readiness.check("nats", move || {
            let state = client.connection_state();
            async move {
                match state {
                    async_nats::connection::State::Connected => Ok(()),
                    other => Err(format!("connection {other}")),
                }
            }
        });
    }
    if let Some(redis) = dependencies.redis.cloned() {
        readiness = readiness.check("redis", move || {
            let mut redis = redis.clone();
            async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut redis)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        });
    }
    if let Some(warehouse) = dependencies.clickhouse {
        readiness = readiness.check("clickhouse", move || {
            let client = warehouse.client();
            async move {
                client
                    .query("SELECT 1")
                    .execute()
                    .await
                    .map_err(|e| e.to_string())
            }
        });
    }
    if let Some(search) = dependencies.search.cloned() {
        readiness = readiness.check("search", move || {
            let search = search.clone();
            async move { search.ping().await.map_err(|e| e.to_string()) }
        });
    }
    readiness
}
