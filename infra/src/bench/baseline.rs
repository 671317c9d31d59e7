//! The baseline: what Postgres itself does here. The same number of events the run produced are
//! inserted by plain multi-row `INSERT` statements (`batch` rows each, autocommit) into a scratch
//! table shaped like `events` (same columns, keys and indexes), over one sqlx pool of
//! `connections`, with real event payloads. Rows are built before the clock starts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::types::Json;
use sqlx::QueryBuilder;

#[derive(Debug, Clone, Serialize)]
pub struct BaselineResult {
    pub events: usize,
    pub batch: usize,
    pub connections: u32,
    pub seconds: f64,
    pub events_per_sec: f64,
}

struct Row {
    stream_id: String,
    event_id: uuid::Uuid,
    correlation_id: uuid::Uuid,
    payload: Json<serde_json::Value>,
}

pub async fn run(
    database_url: &str,
    events: usize,
    batch: usize,
    connections: u32,
) -> anyhow::Result<BaselineResult> {
    let batch = batch.clamp(1, 4_000);
    let pool = PgPoolOptions::new()
        .max_connections(connections.max(1))
        .connect(database_url)
        .await
        .context("connecting the baseline pool")?;
    let table = format!("bench_baseline_events_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE TABLE {table} (LIKE events INCLUDING ALL)"))
        .execute(&pool)
        .await
        .context("creating the baseline table")?;

    let payloads: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT payload FROM events ORDER BY recorded_at LIMIT 1000")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    let payloads = if payloads.is_empty() {
        vec![crate::orders::OrderFactory::new(1, "baseline").order(0)]
    } else {
        payloads
    };
    let rows: Arc<Vec<Row>> = Arc::new(
        (0..events)
            .map(|i| Row {
                stream_id: format!("order-{}", uuid::Uuid::now_v7()),
                event_id: uuid::Uuid::now_v7(),
                correlation_id: uuid::Uuid::now_v7(),
                payload: Json(payloads[i % payloads.len()].clone()),
            })
            .collect(),
    );

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (pool, rows, next, table) = (pool.clone(), rows.clone(), next.clone(), table.clone());
        tasks.spawn(async move {
            loop {
                let from = next.fetch_add(batch, Ordering::Relaxed);
                if from >= rows.len() {
                    return Ok::<(), sqlx::Error>(());
                }
                let chunk = &rows[from..(from + batch).min(rows.len())];
                let now = Utc::now();
                let mut insert = QueryBuilder::new(format!(
                    "INSERT INTO {table} (stream_id, stream_version, event_id, event_type, \
                     schema_version, occurred_at, recorded_at, correlation_id, causation_id, \
                     traceparent, actor_kind, actor_id, channel, payload) "
                ));
                insert.push_values(chunk, |mut b, row| {
                    b.push_bind(&row.stream_id)
                        .push_bind(1_i64)
                        .push_bind(row.event_id)
                        .push_bind("OrderPlaced")
                        .push_bind(2_i32)
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(row.correlation_id)
                        .push_bind(None::<uuid::Uuid>)
                        .push_bind(None::<String>)
                        .push_bind("client")
                        .push_bind("bench")
                        .push_bind("web")
                        .push_bind(&row.payload);
                });
                insert.build().execute(&pool).await?;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined
            .context("a baseline writer panicked")?
            .context("baseline INSERT failed")?;
    }
    let elapsed = started.elapsed().max(Duration::from_micros(1));
    let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&pool)
        .await;
    pool.close().await;
    Ok(BaselineResult {
        events,
        batch,
        connections,
        seconds: elapsed.as_secs_f64(),
        events_per_sec: events as f64 / elapsed.as_secs_f64(),
    })
}
