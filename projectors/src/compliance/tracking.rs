//! The tracking view (Redis) in the compliance suite. Its new generation is a fresh key prefix.

use std::sync::Mutex;

use uuid::Uuid;
use waybill_schemas::views::TrackingView;

use super::{compliance_suite, Subject};
use crate::runtime::ProjectorConfig;
use crate::testing::redis;
use crate::views::tracking::{TrackingProjection, TrackingStore};

struct Tracking {
    live: TrackingStore,
    generations: Mutex<Vec<TrackingStore>>,
}

impl Subject for Tracking {
    type View = TrackingProjection;

    async fn open(config: &ProjectorConfig) -> Self {
        Self {
            live: TrackingStore::new(redis().await, config.redis_prefix.clone()),
            generations: Mutex::default(),
        }
    }

    fn live(&self) -> TrackingProjection {
        TrackingProjection::new(self.live.clone())
    }

    async fn green(&self) -> TrackingProjection {
        let prefix = format!("{}:green-{}", self.live.prefix(), Uuid::now_v7().simple());
        let store = TrackingStore::new(self.live.connection(), prefix);
        self.generations.lock().expect("lock").push(store.clone());
        TrackingProjection::new(store)
    }

    fn settled(state: TrackingView) -> TrackingView {
        state
    }

    async fn cleanup(self) {
        let _ = self.live.delete_all().await;
        for store in self.generations.into_inner().expect("lock") {
            let _ = store.delete_all().await;
        }
    }
}

compliance_suite!(Tracking);
