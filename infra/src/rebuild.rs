//! `waybill rebuild tracking|search|notifications|analytics`: replay the event log into a
//! fresh copy of the view and swap it in, printing progress. The live projector keeps
//! running.

use std::time::Instant;

use anyhow::Context;

use crate::config::Settings;
use crate::progress::LogProgress;
use crate::services;
use waybill_write_side::event_store::EventStore;

pub async fn tracking(settings: &Settings) -> anyhow::Result<()> {
    let pool = crate::migrate::connect(&settings.database_url, 4).await?;
    let total = count_events(&pool).await?;
    let redis = services::connect_redis(settings).await?;
    let config = services::projector_config(settings);
    eprintln!(
        "rebuilding tracking views under prefix '{}' from {total} events",
        settings.redis_prefix
    );
    let started = Instant::now();
    let mut progress = LogProgress::new("tracking", total.max(0) as u64);
    let report =
        waybill_projectors::rebuild_tracking(&config, pool, redis, |done| progress.update(done))
            .await
            .context("rebuilding the tracking view")?;
    progress.finish(report.events);
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

/// `waybill rebuild search`: replays the event log into a new generation of the search index
/// (a new index behind the alias for Elasticsearch; a new generation directory for Tantivy,
/// which the running search projector adopts, or the rebuild switches in when none runs).
pub async fn search(settings: &Settings) -> anyhow::Result<()> {
    let pool = crate::migrate::connect(&settings.database_url, 4).await?;
    let total = count_events(&pool).await?;
    let search = settings.search();
    let backend = waybill_projectors::views::search::open_for_rebuild(&search)
        .await
        .context("opening the search index")?;
    eprintln!(
        "rebuilding the search view ({}) from {total} events",
        match &search.elasticsearch_url {
            Some(url) => format!("alias {}-orders at {url}", search.prefix),
            None => format!("Tantivy index in {}", search.dir.display()),
        }
    );
    let started = Instant::now();
    let events = EventStore::new(pool);
    let page = services::projector_config(settings).rebuild_page;
    let mut progress = LogProgress::new("search", total.max(0) as u64);
    let report =
        waybill_projectors::views::search::rebuild_search(&events, backend, page, |done| {
            progress.update(done)
        })
        .await
        .context("rebuilding the search view")?;
    progress.finish(report.events);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuilt search in {seconds:.1}s into {} (switched in by {}): {} events ({:.0} events/s), {} documents, {} orders left out (unappliable)",
        report.target,
        report.switched_by,
        report.events,
        report.events as f64 / seconds.max(0.001),
        report.documents,
        report.unappliable
    );
    Ok(())
}

/// `waybill rebuild notifications`: rebuilds every order's notification state into a staging
/// prefix and switches it in order by order, sending nothing. The live projector keeps running.
pub async fn notifications(settings: &Settings) -> anyhow::Result<()> {
    let pool = crate::migrate::connect(&settings.database_url, 4).await?;
    let total = count_events(&pool).await?;
    let redis = services::connect_redis(settings).await?;
    let config = services::projector_config(settings);
    let secrets = crate::secrets::Secrets::resolve(settings)?;
    let notifications = services::notifications_config(settings, &secrets);
    eprintln!(
        "rebuilding notification states under prefix '{}' from {total} events (nothing is sent)",
        settings.redis_prefix
    );
    let started = Instant::now();
    let mut progress = LogProgress::new("notifications", total.max(0) as u64);
    let report = waybill_projectors::views::notifications::rebuild_notifications(
        &config,
        &notifications,
        pool,
        redis,
        |done| progress.update(done),
    )
    .await
    .context("rebuilding the notifications view")?;
    progress.finish(report.events);
    println!(
        "rebuilt notifications in {:.1}s: {} events, {} order states, {} switched in, {} left out (unappliable), 0 messages sent",
        started.elapsed().as_secs_f64(),
        report.events,
        report.states,
        report.switched,
        report.unappliable
    );
    Ok(())
}

/// `waybill rebuild analytics`: replays the event log into a new generation of the warehouse's
/// analytics tables while the live ones serve, catches it up, switches it in with one rename
/// per server and drops the old one. The live projector keeps running.
pub async fn analytics(settings: &Settings) -> anyhow::Result<()> {
    let pool = crate::migrate::connect(&settings.database_url, 4).await?;
    let total = count_events(&pool).await?;
    let warehouse = settings.warehouse.config();
    crate::migrate::migrate_warehouse(&warehouse).await?;
    eprintln!(
        "rebuilding the analytics tables of ClickHouse database {} from {total} events",
        warehouse.database
    );
    let started = Instant::now();
    let events = EventStore::new(pool);
    let page = services::projector_config(settings).rebuild_page;
    let mut progress = LogProgress::new("analytics", total.max(0) as u64);
    let report = waybill_projectors::views::analytics::rebuild_analytics(
        &events,
        &warehouse,
        page,
        |done| progress.update(done),
    )
    .await
    .context("rebuilding the analytics view")?;
    progress.finish(report.events);
    println!(
        "rebuilt analytics in {:.1}s via {}: {} events, {} streams, {} repaired after the switch, {} left out (unappliable)",
        started.elapsed().as_secs_f64(),
        report.generation,
        report.events,
        report.streams,
        report.repaired,
        report.unappliable
    );
    Ok(())
}

/// Events in the log (the rebuild's progress total), retried like every transaction.
async fn count_events(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    EventStore::new(pool.clone())
        .count()
        .await
        .context("counting events")
}
