//! The analytics view's generation marker ([`crate::runtime::self_heal`]), kept in the
//! warehouse database it marks: the row `analytics` of the table `view_markers` (generation,
//! `catching_up` | `ready`) and beside it the row `analytics:filler`, the lease of the instance
//! filling the store. A `DROP DATABASE` takes the marker with the data. The store also counts as
//! lost when one of the view's tables ([`super::TABLES`]) is gone.
//!
//! ClickHouse has no conditional write: every change is a row with a higher `version` (the
//! newest wins under `FINAL`), read back after writing. Two instances starting a generation or
//! taking the lease in the same instant may both think they won for one check; the next check
//! reads one winner, and a second filler in the meantime only writes rows the first writes too
//! (every table is a ReplacingMergeTree keyed by its natural key with the stream's version).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::store::POSITION_TABLES;
use super::{TABLES, VIEW_NAME};
use crate::runtime::self_heal::{StoreMarker, StoreState};
use crate::warehouse::generation::{drop_tables, missing_tables};
use crate::warehouse::rows::insert_rows;
use crate::warehouse::{restore_schema, WarehouseConfig, WarehouseError};

const MARKERS: &str = "view_markers";
const CATCHING_UP: &str = "catching_up";
const READY: &str = "ready";

/// A table found missing is looked for again this much later before the store counts as lost:
/// `rebuild analytics` renames tables, and one may be between names for an instant.
const RECHECK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct MarkerRow {
    name: String,
    generation: String,
    state: String,
    holder: String,
    lease_until: u64,
    version: u64,
}

/// The analytics view's marker in one warehouse.
#[derive(Clone)]
pub struct AnalyticsStoreMarker {
    warehouse: WarehouseConfig,
    name: String,
    lease_name: String,
}

impl AnalyticsStoreMarker {
    pub fn new(warehouse: WarehouseConfig) -> Self {
        Self {
            warehouse,
            name: VIEW_NAME.to_owned(),
            lease_name: format!("{VIEW_NAME}:filler"),
        }
    }

    /// The tables whose loss is the store's loss: the view's and the markers'.
    fn watched() -> Vec<&'static str> {
        TABLES.iter().copied().chain([MARKERS]).collect()
    }

    /// What the marker says, without looking twice at missing tables (readers use this).
    pub async fn read(&self) -> Result<StoreState, WarehouseError> {
        if !missing_tables(&self.warehouse, &Self::watched())
            .await?
            .is_empty()
        {
            return Ok(StoreState::Missing);
        }
        Ok(match self.row(&self.name).await? {
            Some(row) if row.state == READY => StoreState::Ready {
                generation: row.generation,
            },
            Some(row) => StoreState::CatchingUp {
                generation: row.generation,
            },
            None => StoreState::Missing,
        })
    }

    async fn row(&self, name: &str) -> Result<Option<MarkerRow>, WarehouseError> {
        let rows: Vec<MarkerRow> = self
            .warehouse
            .client()
            .query(&format!(
                "SELECT ?fields FROM {MARKERS} FINAL WHERE name = ?"
            ))
            .bind(name)
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("reading the view marker"))?;
        Ok(rows.into_iter().max_by_key(|r| r.version))
    }

    async fn write(&self, row: MarkerRow) -> Result<(), WarehouseError> {
        insert_rows(&self.warehouse.client(), MARKERS, &[row]).await
    }
}

/// A version above every one this process wrote before (and, the clocks being close, above
/// other instances' earlier ones): the wall clock in nanoseconds.
fn next_version() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
    let previous = LAST.fetch_max(now, Ordering::Relaxed);
    if previous >= now {
        LAST.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        now
    }
}

fn now_millis() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

impl StoreMarker for AnalyticsStoreMarker {
    type Error = WarehouseError;

    async fn state(&self) -> Result<StoreState, WarehouseError> {
        let state = self.read().await?;
        if state == StoreState::Missing {
            tokio::time::sleep(RECHECK).await;
            return self.read().await;
        }
        Ok(state)
    }

    /// Makes the view's tables exist again, then marks `generation` catching up. Where some of
    /// the view's tables survived a loss, the position tables are emptied first: positions
    /// surviving the rows they cover would make the fill skip those rows.
    async fn begin(&self, generation: &str) -> Result<bool, WarehouseError> {
        let missing = missing_tables(&self.warehouse, &Self::watched()).await?;
        let lost_positions = POSITION_TABLES
            .iter()
            .all(|t| missing.iter().any(|m| m == t));
        if !missing.is_empty() && !lost_positions {
            tracing::warn!(view = VIEW_NAME, ?missing, database = %self.warehouse.database,
                "some analytics tables are gone: emptying the positions so the fill rewrites every row");
            drop_tables(&self.warehouse, POSITION_TABLES).await?;
        }
        restore_schema(&self.warehouse).await?;
        if missing.is_empty() && self.row(&self.name).await?.is_some() {
            // Another instance marked it meanwhile.
            return Ok(false);
        }
        self.write(MarkerRow {
            name: self.name.clone(),
            generation: generation.to_owned(),
            state: CATCHING_UP.to_owned(),
            holder: String::new(),
            lease_until: 0,
            version: next_version(),
        })
        .await?;
        Ok(self
            .row(&self.name)
            .await?
            .is_some_and(|row| row.generation == generation))
    }

    async fn finish(&self, generation: &str) -> Result<bool, WarehouseError> {
        if !missing_tables(&self.warehouse, &Self::watched())
            .await?
            .is_empty()
        {
            return Ok(false);
        }
        match self.row(&self.name).await? {
            Some(row) if row.generation == generation => {
                self.write(MarkerRow {
                    state: READY.to_owned(),
                    version: next_version(),
                    ..row
                })
                .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn lease(&self, holder: &str, ttl: Duration) -> Result<bool, WarehouseError> {
        let now = now_millis();
        let free = match self.row(&self.lease_name).await? {
            None => true,
            Some(row) => row.holder == holder || row.lease_until < now,
        };
        if !free {
            return Ok(false);
        }
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.write(MarkerRow {
            name: self.lease_name.clone(),
            generation: String::new(),
            state: String::new(),
            holder: holder.to_owned(),
            lease_until: now.saturating_add(ttl),
            version: next_version(),
        })
        .await?;
        Ok(self
            .row(&self.lease_name)
            .await?
            .is_some_and(|row| row.holder == holder))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{drop_warehouse, fresh_warehouse};
    use crate::warehouse::drop_database;

    #[tokio::test]
    async fn a_generation_goes_from_missing_to_ready_and_is_lost_with_the_database() {
        let warehouse = fresh_warehouse().await;
        let marker = AnalyticsStoreMarker::new(warehouse.clone());
        assert_eq!(marker.state().await.unwrap(), StoreState::Missing);
        assert!(marker.begin("g1").await.unwrap());
        assert!(!marker.begin("g2").await.unwrap(), "already marked");
        assert_eq!(
            marker.state().await.unwrap(),
            StoreState::CatchingUp {
                generation: "g1".into()
            }
        );
        assert!(!marker.finish("g2").await.unwrap(), "another generation");
        assert!(marker.finish("g1").await.unwrap());
        assert_eq!(
            marker.read().await.unwrap(),
            StoreState::Ready {
                generation: "g1".into()
            }
        );

        // The database is dropped: the marker goes with it, a late finish does not mark the
        // empty store ready, and a new generation makes the tables again.
        drop_database(&warehouse).await.unwrap();
        assert_eq!(marker.state().await.unwrap(), StoreState::Missing);
        assert!(!marker.finish("g1").await.unwrap());
        assert!(marker.begin("g3").await.unwrap());
        assert!(missing_tables(&warehouse, &AnalyticsStoreMarker::watched())
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            marker.state().await.unwrap(),
            StoreState::CatchingUp {
                generation: "g3".into()
            }
        );
        drop_warehouse(&warehouse).await;
    }

    /// One table dropped by hand: the store is lost (the marker survives in its own table, so
    /// the missing table is what tells), the table comes back, and the positions are emptied
    /// so that the fill rewrites the rows the lost table held.
    #[tokio::test]
    async fn a_dropped_table_loses_the_store_and_empties_the_positions() {
        let warehouse = fresh_warehouse().await;
        let marker = AnalyticsStoreMarker::new(warehouse.clone());
        assert!(marker.begin("g1").await.unwrap());
        assert!(marker.finish("g1").await.unwrap());
        warehouse
            .client()
            .query("INSERT INTO stream_positions (stream_id, version) VALUES ('payout-x', 3)")
            .execute()
            .await
            .unwrap();
        drop_tables(&warehouse, &["line_facts"]).await.unwrap();
        assert_eq!(marker.state().await.unwrap(), StoreState::Missing);
        assert!(marker.begin("g2").await.unwrap());
        let positions: u64 = warehouse
            .client()
            .query("SELECT count() FROM stream_positions")
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(positions, 0);
        assert_eq!(
            marker.state().await.unwrap(),
            StoreState::CatchingUp {
                generation: "g2".into()
            }
        );
        drop_warehouse(&warehouse).await;
    }

    #[tokio::test]
    async fn one_holder_has_the_lease_until_it_lapses() {
        let warehouse = fresh_warehouse().await;
        let marker = AnalyticsStoreMarker::new(warehouse.clone());
        let ttl = Duration::from_millis(400);
        assert!(marker.lease("a", ttl).await.unwrap());
        assert!(!marker.lease("b", ttl).await.unwrap());
        assert!(
            marker.lease("a", ttl).await.unwrap(),
            "renewed by its holder"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(marker.lease("b", ttl).await.unwrap(), "taken once lapsed");
        assert!(!marker.lease("a", ttl).await.unwrap());
        drop_warehouse(&warehouse).await;
    }
}
