//! The exceptions desk: orders stuck or at risk, found on the event stream rather than by
//! agents noticing.
//!
//! - The **desk view** (durable consumer `desk`, on the shared runtime: duplicates, gaps, DLQ)
//!   folds each order's events into a [`watch::Watch`] in Postgres (`desk_watches`), recording
//!   each finished stage's duration and each confirmation, decline and fraud hold with it
//!   ([`store`]). It also applies `DeskEntryResolved` (streams `desk-<entry id>`) to the
//!   entries.
//! - The **detector** ([`detector`]) runs every `tick`: it learns each stage's limit per
//!   channel and node from recent durations ([`learning`], pure), judges every active watch
//!   ([`conditions`], pure), reads the dead-letter stream, and judges per-channel signal counts
//!   ([`anomaly`], pure). What is due becomes a desk entry (`write-side/src/desk/entries.rs`);
//!   an entry whose condition went away is resolved automatically, as a `DeskEntryResolved`
//!   event by the actor `desk`.
//! - The **operations sampler** ([`ops`]) records per-view lag, stalls, throughput, DLQ sizes
//!   and work-list backlogs into `ops_samples` for the `/ops` page.

pub mod anomaly;
pub mod conditions;
pub mod detector;
pub mod learning;
pub mod ops;
pub mod store;
pub mod watch;

use waybill_schemas::events::desk::desk_entry_of;
use waybill_schemas::{EventEnvelope, OrderEvent, OrderId};

pub use detector::{run_detector, DeskConfig};
pub use store::{DeskState, DeskStore, PendingResolution};

use crate::runtime::{View, ViewWrite};

/// The desk view's consumer name.
pub const VIEW_NAME: &str = "desk";

/// Why the desk could not do something.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("desk database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("desk state: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    #[error("event {event_type} v{version} of {stream_id} cannot be decoded: {detail}")]
    Decode {
        stream_id: String,
        version: i64,
        event_type: String,
        detail: String,
    },
    #[error("{stream_id} v{version}: {event_type} does not belong in a desk entry's stream")]
    WrongStream {
        stream_id: String,
        version: i64,
        event_type: String,
    },
}

/// The desk view: order watches and entry resolutions.
#[derive(Debug, Clone)]
pub struct DeskProjection {
    store: DeskStore,
}

impl DeskProjection {
    pub fn new(store: DeskStore) -> Self {
        Self { store }
    }
}

impl View for DeskProjection {
    type State = DeskState;
    type Error = DeskError;

    fn name(&self) -> &str {
        VIEW_NAME
    }

    fn handles(&self, stream_id: &str) -> bool {
        OrderId::from_stream_id(stream_id).is_some() || desk_entry_of(stream_id).is_some()
    }

    fn version_of(state: &DeskState) -> i64 {
        state.version()
    }

    async fn load(&self, stream_ids: &[String]) -> Result<Vec<Option<DeskState>>, DeskError> {
        self.store.load(stream_ids).await
    }

    fn apply(
        &self,
        state: Option<&DeskState>,
        event: &EventEnvelope,
    ) -> Result<DeskState, DeskError> {
        let decoded = event.decode().map_err(|e| DeskError::Decode {
            stream_id: event.stream_id.clone(),
            version: event.stream_version,
            event_type: event.event_type.clone(),
            detail: e.to_string(),
        })?;
        if desk_entry_of(&event.stream_id).is_some() {
            let resolution = match decoded {
                OrderEvent::DeskEntryResolved(resolved) => Some(PendingResolution {
                    event: resolved,
                    actor: event.actor.id.clone(),
                    event_id: event.event_id,
                }),
                other => {
                    return Err(DeskError::WrongStream {
                        stream_id: event.stream_id.clone(),
                        version: event.stream_version,
                        event_type: other.event_type().to_owned(),
                    })
                }
            };
            // A later event of the stream keeps the first resolution's effect (the table
            // update is idempotent); only the version moves.
            let _ = state;
            return Ok(DeskState::Entry {
                version: event.stream_version,
                resolution,
            });
        }
        let previous = match state {
            Some(DeskState::Order(watch)) => Some(watch),
            _ => None,
        };
        Ok(DeskState::Order(watch::apply(previous, event, &decoded)?))
    }

    async fn store(&self, writes: Vec<ViewWrite<DeskState>>) -> Result<Vec<bool>, DeskError> {
        self.store.store(&writes).await
    }
}
