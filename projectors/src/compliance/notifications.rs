//! The notifications view (Redis state, a file sink recording what it is handed) in the
//! compliance suite. Its new generation is a fresh key prefix and replays without sending.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::{compliance_suite, Subject};
use crate::runtime::ProjectorConfig;
use crate::testing::redis;
use crate::views::notifications::{
    FileSink, Notification, NotificationSink, NotificationState, NotificationStore,
    NotificationsConfig, NotificationsProjection, SinkError,
};

/// The development file sink, recording the id of every message handed to it.
#[derive(Clone)]
struct Recording {
    files: FileSink,
    handed: Arc<Mutex<Vec<String>>>,
}

impl NotificationSink for Recording {
    async fn deliver(&self, messages: Vec<Notification>) -> Result<(), SinkError> {
        let ids: Vec<String> = messages.iter().map(Notification::id).collect();
        self.files.deliver(messages).await?;
        self.handed.lock().expect("lock").extend(ids);
        Ok(())
    }
}

struct Notifications {
    store: NotificationStore,
    sink: Recording,
    config: NotificationsConfig,
    dir: PathBuf,
    generations: Mutex<Vec<NotificationStore>>,
    prefix: String,
}

impl Subject for Notifications {
    type View = NotificationsProjection<Recording>;

    async fn open(config: &ProjectorConfig) -> Self {
        let dir = std::env::temp_dir().join(format!("waybill-compliance-{}", config.redis_prefix));
        let notifications = NotificationsConfig {
            // Fixture events are from 2025: deliver them all.
            stale_after: None,
            ..NotificationsConfig::new(&dir, "https://shop.example", b"compliance".to_vec())
        };
        Self {
            store: NotificationStore::new(redis().await, config.redis_prefix.clone()),
            sink: Recording {
                files: FileSink::new(dir.clone()),
                handed: Arc::default(),
            },
            config: notifications,
            dir,
            generations: Mutex::default(),
            prefix: config.redis_prefix.clone(),
        }
    }

    fn live(&self) -> Self::View {
        NotificationsProjection::new(self.store.clone(), self.sink.clone(), &self.config)
    }

    async fn green(&self) -> Self::View {
        let prefix = format!("{}:green-{}", self.prefix, Uuid::now_v7().simple());
        let store = NotificationStore::new(self.store.connection(), prefix);
        self.generations.lock().expect("lock").push(store.clone());
        // The same sink as the live view: a replaying view must not hand it anything.
        NotificationsProjection::new(store, self.sink.clone(), &self.config).replaying()
    }

    fn settled(mut state: NotificationState) -> NotificationState {
        state.outgoing.clear();
        state
    }

    fn messages(state: &NotificationState) -> Vec<String> {
        state.outgoing.iter().map(Notification::id).collect()
    }

    fn deliveries(&self) -> Vec<String> {
        self.sink.handed.lock().expect("lock").clone()
    }

    async fn cleanup(self) {
        let _ = self.store.delete_all().await;
        for store in self.generations.into_inner().expect("lock") {
            let _ = store.delete_all().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

compliance_suite!(Notifications);
