//! The analytics view (ClickHouse) in the compliance suite. Its new generation is a fresh,
//! migrated database.

use std::sync::Mutex;

use super::{compliance_suite, Subject};
use crate::runtime::ProjectorConfig;
use crate::testing::{drop_warehouse, fresh_warehouse};
use crate::views::analytics::{AnalyticsProjection, AnalyticsState, AnalyticsStore};
use crate::warehouse::WarehouseConfig;

struct Analytics {
    live: WarehouseConfig,
    generations: Mutex<Vec<WarehouseConfig>>,
}

impl Subject for Analytics {
    type View = AnalyticsProjection;

    async fn open(_config: &ProjectorConfig) -> Self {
        Self {
            live: fresh_warehouse().await,
            generations: Mutex::default(),
        }
    }

    fn live(&self) -> AnalyticsProjection {
        AnalyticsProjection::new(AnalyticsStore::new(self.live.client()))
    }

    async fn green(&self) -> AnalyticsProjection {
        let warehouse = fresh_warehouse().await;
        let view = AnalyticsProjection::new(AnalyticsStore::new(warehouse.client()));
        self.generations.lock().expect("lock").push(warehouse);
        view
    }

    /// The store keeps the order's fact row and its parcels; the rows a batch adds (lines,
    /// ledger entries, returns) are in its tables, not in the loaded state.
    fn settled(state: AnalyticsState) -> AnalyticsState {
        match state {
            AnalyticsState::Order(mut order) => {
                order.lines.clear();
                order.ledger.clear();
                order.returns.clear();
                AnalyticsState::Order(order)
            }
            AnalyticsState::Settlement(mut settlement) => {
                settlement.lines.clear();
                settlement.fees.clear();
                settlement.payouts.clear();
                AnalyticsState::Settlement(settlement)
            }
        }
    }

    async fn cleanup(self) {
        drop_warehouse(&self.live).await;
        for warehouse in self.generations.into_inner().expect("lock") {
            drop_warehouse(&warehouse).await;
        }
    }
}

compliance_suite!(Analytics);
