//! `waybill rebuild tracking`: replays the event log into a fresh copy of the tracking view and
//! swaps it in, printing progress. The live projector may keep running meanwhile.

use std::time::Instant;

use anyhow::Context;

use crate::config::Settings;
use crate::services;

pub async fn tracking(settings: &Settings) -> anyhow::Result<()> {
    let pool = crate::migrate::connect(&settings.database_url, 4).await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .context("counting events")?;
    let redis = services::connect_redis(&settings.redis_url).await?;
    let config = services::projector_config(settings);
    eprintln!(
        "rebuilding tracking views under prefix '{}' from {total} events",
        settings.redis_prefix
    );
    let started = Instant::now();
    let report = waybill_projectors::rebuild_tracking(&config, pool, redis, |done| {
        let percent = if total > 0 {
            done as f64 * 100.0 / total as f64
        } else {
            100.0
        };
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
        eprintln!("  {done:>10}/{total} events  {percent:5.1} %  {rate:>8.0} events/s");
    })
    .await
    .context("rebuilding the tracking view")?;
    println!(
        "rebuilt tracking in {:.1}s: {} events, {} views, {} swapped in, {} left out (unappliable)",
        started.elapsed().as_secs_f64(),
        report.events,
        report.views,
        report.swapped,
        report.unappliable
    );
    Ok(())
}
