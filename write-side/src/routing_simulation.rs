//! Routing what-if over the event log (issue 17.5): the recorded `RoutingDecided` events of a
//! time window, read page by page ([`EventStore::read_routing_decisions`]), each decoded and
//! replayed with a candidate config on every core (rayon) while the next page is read, then
//! folded per order and summed ([`crate::domain::fulfillment::simulation`]). Used by `waybill
//! routing simulate` and `POST /v1/routing/simulations`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use waybill_schemas::events::RoutingDecided;
use waybill_schemas::{OrderEvent, OrderEventKind};

use crate::domain::fulfillment::simulation::{self, Aggregate, DecisionReplay, OrderDelta};
use crate::domain::fulfillment::RoutingConfig;
use crate::event_store::decisions::StoredDecision;
use crate::event_store::{EventStore, EventStoreError, ReadAllCursor};

/// A page being replayed on the rayon pool.
type PendingPage = tokio::task::JoinHandle<Result<Vec<DecisionReplay>, SimulationError>>;

/// Decisions read per page.
pub const PAGE: i64 = 5_000;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    #[error(transparent)]
    Store(#[from] EventStoreError),
    #[error("recorded decision {stream_id} v{stream_version} is unreadable: {detail}")]
    Corrupt {
        stream_id: String,
        stream_version: i64,
        detail: String,
    },
    #[error("the window holds {found} routing decisions, more than the {limit} allowed")]
    TooMany { found: i64, limit: i64 },
    #[error("the replay worker stopped: {0}")]
    Worker(String),
}

/// The result: one row per order and the aggregate.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub candidate_version: String,
    pub orders: Vec<OrderDelta>,
    pub aggregate: Aggregate,
}

/// Replays the decisions recorded in `[from, to)` with `candidate` on `threads` (`None`: rayon's
/// global pool, one thread per core); `progress` is told how many decisions are done after
/// each page. Refuses a window of more than `limit` decisions (if given) before replaying any.
pub async fn simulate(
    store: &EventStore,
    candidate: Arc<RoutingConfig>,
    window: (DateTime<Utc>, DateTime<Utc>),
    limit: Option<i64>,
    threads: Option<Arc<rayon::ThreadPool>>,
    mut progress: impl FnMut(u64),
) -> Result<Simulation, SimulationError> {
    let (from, to) = window;
    if let Some(limit) = limit {
        let found = store.count_routing_decisions(from, to).await?;
        if found > limit {
            return Err(SimulationError::TooMany { found, limit });
        }
    }
    let mut replays: Vec<DecisionReplay> = Vec::new();
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    let mut cursor: Option<ReadAllCursor> = None;
    let mut pending: Option<PendingPage> = None;
    loop {
        let (page, next) = store
            .read_routing_decisions(from, to, cursor.as_ref(), PAGE)
            .await?;
        // The previous page was replayed while this one was read.
        if let Some(done) = pending.take() {
            collect(done, &mut replays, &mut versions).await?;
            progress(replays.len() as u64);
        }
        if !page.is_empty() {
            let config = candidate.clone();
            let threads = threads.clone();
            pending = Some(tokio::task::spawn_blocking(move || match threads {
                Some(pool) => pool.install(|| replay_page(page, &config)),
                None => replay_page(page, &config),
            }));
        }
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if let Some(done) = pending.take() {
        collect(done, &mut replays, &mut versions).await?;
        progress(replays.len() as u64);
    }
    let orders = simulation::by_order(replays);
    let aggregate = simulation::aggregate(&orders, versions, &candidate);
    Ok(Simulation {
        from,
        to,
        candidate_version: candidate.version.clone(),
        orders,
        aggregate,
    })
}

async fn collect(
    done: PendingPage,
    replays: &mut Vec<DecisionReplay>,
    versions: &mut BTreeMap<String, u64>,
) -> Result<(), SimulationError> {
    let page = done
        .await
        .map_err(|e| SimulationError::Worker(e.to_string()))??;
    for replay in &page {
        *versions.entry(replay.config_version.clone()).or_default() += 1;
    }
    replays.extend(page);
    Ok(())
}

/// Decodes and replays one page on the rayon pool, keeping the page's order.
fn replay_page(
    page: Vec<StoredDecision>,
    candidate: &RoutingConfig,
) -> Result<Vec<DecisionReplay>, SimulationError> {
    page.into_par_iter()
        .map(|row| decode(&row).map(|decided| simulation::replay(decided, candidate)))
        .collect()
}

/// A stored payload as the current `RoutingDecided` (older versions upcast).
fn decode(row: &StoredDecision) -> Result<RoutingDecided, SimulationError> {
    let corrupt = |detail: String| SimulationError::Corrupt {
        stream_id: row.stream_id.clone(),
        stream_version: row.stream_version,
        detail,
    };
    if row.schema_version == OrderEventKind::RoutingDecided.current_version() {
        return serde_json::from_str(&row.payload).map_err(|e| corrupt(e.to_string()));
    }
    let value: serde_json::Value =
        serde_json::from_str(&row.payload).map_err(|e| corrupt(e.to_string()))?;
    match OrderEvent::decode("RoutingDecided", row.schema_version, value) {
        Ok(OrderEvent::RoutingDecided(decided)) => Ok(decided),
        Ok(other) => Err(corrupt(format!("decoded as {}", other.event_type()))),
        Err(e) => Err(corrupt(e.to_string())),
    }
}
