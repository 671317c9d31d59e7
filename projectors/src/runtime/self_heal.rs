//! A view whose store lost its data fills it again from the event log while it serves, with
//! nobody running a rebuild.
//!
//! The store carries a **generation marker** ([`StoreMarker`]): written when the view first
//! fills its store, it disappears with everything else when the store loses its data (Redis
//! `FLUSHALL`, a Redis restart without persistence). [`keep_filled`] runs beside the view's
//! consumer and reads the marker every [`SelfHeal::check`]:
//! - **ready**: the store holds what the log holds (the live consumer keeps it so);
//! - **missing**: the store is new or lost its data. A new generation is marked *catching up*
//!   (only if there is still no marker, so instances of the view agree on one generation);
//! - **catching up**: one instance (holding the filler lease, renewed while it works; another
//!   takes over when it lapses) replays the whole log into the live store with the rebuilds'
//!   [`replay_log`](super::replay_log), then marks the generation ready, unless the marker
//!   changed meanwhile (the store was lost again: the fill starts over).
//!
//! Replaying into the live store is safe while the consumer writes to it: every write is a
//! compare-and-set on the stream's version, and the replay skips what a stream already holds.
//! Readers consult the marker when a view is missing: while it is not ready, an order the log
//! knows is answered "catching up", never "not found".

use std::future::Future;
use std::time::{Duration, Instant};

use waybill_write_side::event_store::EventStore;

use super::View;

/// What a store's generation marker says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreState {
    /// No marker: the store is new, or lost its data.
    Missing,
    /// Generation `generation` is being filled from the log.
    CatchingUp { generation: String },
    /// Generation `generation` holds everything the log held when it was filled.
    Ready { generation: String },
}

impl StoreState {
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready { .. })
    }
}

/// A view store's generation marker and the lease of the instance filling it.
pub trait StoreMarker: Send + Sync + 'static {
    type Error: std::error::Error + Send + Sync + 'static;

    /// What the marker says now.
    fn state(&self) -> impl Future<Output = Result<StoreState, Self::Error>> + Send;
    /// Marks `generation` as catching up if the store has no marker; `true` if this call did.
    fn begin(&self, generation: &str) -> impl Future<Output = Result<bool, Self::Error>> + Send;
    /// Marks `generation` ready if it is still the store's; `false` if the marker is gone or
    /// names another generation.
    fn finish(&self, generation: &str) -> impl Future<Output = Result<bool, Self::Error>> + Send;
    /// Takes, or renews, the right to fill the store for `ttl` as `holder`; `false` while
    /// another holder has it.
    fn lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// A marker shared by the self-heal and the audit of one view.
impl<M: StoreMarker> StoreMarker for std::sync::Arc<M> {
    type Error = M::Error;

    fn state(&self) -> impl Future<Output = Result<StoreState, Self::Error>> + Send {
        M::state(self)
    }

    fn begin(&self, generation: &str) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        M::begin(self, generation)
    }

    fn finish(&self, generation: &str) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        M::finish(self, generation)
    }

    fn lease(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        M::lease(self, holder, ttl)
    }
}

/// How often the marker is read and the fill reports progress.
#[derive(Debug, Clone)]
pub struct SelfHeal {
    /// How often the marker is read (and, while filling, the lease renewed).
    pub check: Duration,
    /// How long the filler's lease lasts without renewal.
    pub lease: Duration,
    /// How often fill progress is logged.
    pub progress_every: Duration,
}

impl Default for SelfHeal {
    fn default() -> Self {
        Self {
            check: Duration::from_secs(1),
            lease: Duration::from_secs(5),
            progress_every: Duration::from_secs(5),
        }
    }
}

/// Watches `view`'s store through `marker` and fills it from the log whenever it is found
/// without a ready generation, reading the log `page` events at a time. Runs until dropped
/// (beside the view's consumer).
pub async fn keep_filled<V: View, M: StoreMarker>(
    events: EventStore,
    view: V,
    marker: M,
    settings: SelfHeal,
    page: i64,
) {
    let name = view.name().to_owned();
    let holder = uuid::Uuid::now_v7().simple().to_string();
    // Whether this process has seen the store marked: a marker missing after that is a loss.
    let mut seen_marked = false;
    let mut failures: u32 = 0;
    let mut ticks = tokio::time::interval(settings.check);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let state = match marker.state().await {
            Ok(state) => state,
            Err(error) => {
                // The store is down; the consumer's retries report that. Look again later.
                tracing::debug!(view = %name, %error, "view store marker unreadable");
                continue;
            }
        };
        match state {
            StoreState::Ready { .. } => {
                seen_marked = true;
                metrics::gauge!("waybill_view_catching_up", "view" => name.clone()).set(0.0);
            }
            StoreState::Missing => {
                let generation = uuid::Uuid::now_v7().to_string();
                match marker.begin(&generation).await {
                    Ok(true) if seen_marked => {
                        metrics::counter!("waybill_view_store_resets_total", "view" => name.clone())
                            .increment(1);
                        tracing::warn!(view = %name, %generation,
                            "view store lost its data (generation marker gone): filling it again from the event log");
                    }
                    Ok(true) => {
                        tracing::info!(view = %name, %generation,
                            "view store has no generation marker: filling it from the event log");
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::debug!(view = %name, %error, "view store marker not written")
                    }
                }
                metrics::gauge!("waybill_view_catching_up", "view" => name.clone()).set(1.0);
                // Straight on to filling it, without waiting for the next tick.
                ticks.reset_immediately();
            }
            StoreState::CatchingUp { generation } => {
                seen_marked = true;
                metrics::gauge!("waybill_view_catching_up", "view" => name.clone()).set(1.0);
                match marker.lease(&holder, settings.lease).await {
                    Ok(true) => {}
                    // Another instance fills it.
                    Ok(false) | Err(_) => continue,
                }
                match fill(
                    &events,
                    &view,
                    &marker,
                    &settings,
                    &holder,
                    &generation,
                    page,
                )
                .await
                {
                    Ok(()) => failures = 0,
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(view = %name, %generation, error,
                            "filling the view store from the log failed; trying again");
                        tokio::time::sleep(super::backoff(failures)).await;
                    }
                }
            }
        }
    }
}

/// Replays the log into the store for `generation`, renewing the lease and watching the marker
/// meanwhile, and marks the generation ready. `Ok` also when the fill was overtaken (marker
/// gone or changed, lease lost): the next check decides again.
async fn fill<V: View, M: StoreMarker>(
    events: &EventStore,
    view: &V,
    marker: &M,
    settings: &SelfHeal,
    holder: &str,
    generation: &str,
    page: i64,
) -> Result<(), String> {
    let name = view.name().to_owned();
    let started = Instant::now();
    let total = events.count().await.map_err(|e| e.to_string())?.max(0) as u64;
    metrics::gauge!("waybill_view_catch_up_total_events", "view" => name.clone()).set(total as f64);
    metrics::gauge!("waybill_view_catch_up_events", "view" => name.clone()).set(0.0);
    tracing::info!(view = %name, generation, total_events = total, "view store catching up");
    let mut logged = Instant::now();
    let progress = |done: u64| {
        metrics::gauge!("waybill_view_catch_up_events", "view" => name.clone()).set(done as f64);
        if logged.elapsed() >= settings.progress_every {
            logged = Instant::now();
            let elapsed = started.elapsed().as_secs_f64().max(0.001);
            let rate = done as f64 / elapsed;
            let left = total.saturating_sub(done) as f64 / rate.max(1.0);
            tracing::info!(view = %name, generation, done, total_events = total,
                events_per_second = rate.round() as u64, seconds_left = left.round() as u64,
                "view store catching up");
        }
    };
    let replay = super::replay_log(events, view, None, page, progress);
    tokio::pin!(replay);
    let mut ticks = tokio::time::interval(settings.check);
    ticks.tick().await;
    let report = loop {
        tokio::select! {
            report = &mut replay => break report.map_err(|e| e.to_string())?,
            _ = ticks.tick() => {
                match marker.state().await {
                    Ok(StoreState::CatchingUp { generation: current }) if current == generation => {}
                    Ok(other) => {
                        tracing::warn!(view = %name, generation, now = ?other,
                            "view store changed under the fill (lost again?); starting over");
                        return Ok(());
                    }
                    Err(error) => return Err(format!("reading the marker: {error}")),
                }
                match marker.lease(holder, settings.lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(view = %name, generation, "fill lease lost to another instance");
                        return Ok(());
                    }
                    Err(error) => return Err(format!("renewing the lease: {error}")),
                }
            }
        }
    };
    match marker.finish(generation).await {
        Ok(true) => {
            metrics::gauge!("waybill_view_catching_up", "view" => name.clone()).set(0.0);
            metrics::histogram!("waybill_view_catch_up_seconds", "view" => name.clone())
                .record(started.elapsed().as_secs_f64());
            tracing::info!(view = %name, generation, events = report.events,
                streams = report.streams, unappliable = report.unappliable,
                seconds = started.elapsed().as_secs_f64(),
                "view store caught up with the event log");
            Ok(())
        }
        Ok(false) => {
            tracing::warn!(view = %name, generation,
                "view store lost its marker during the fill; starting over");
            Ok(())
        }
        Err(error) => Err(format!("marking the generation ready: {error}")),
    }
}
