//! Change announcements of the tracking view, so live pages and read-your-writes waits are
//! pushed to instead of polling Redis.
//!
//! The projector, after its compare-and-set wrote a batch's views, publishes one message per
//! written view on the Redis channel [`keys::changes_channel`] (`<prefix>:tracking-changes`):
//! `<order uuid> <version>`. Each query instance holds one [`ChangeFeed`]: one Redis
//! subscription whose messages are fanned out, in process, to whoever watches that order (an
//! open page's event stream, a request waiting for its own write). Nothing is polled while
//! nothing changes.
//!
//! Announcements are hints, the view in Redis stays the truth: a watcher re-reads the view
//! when woken. A message can be missed (the subscription was down, or the projector died
//! between its write and its publish); every watcher is therefore woken whenever the
//! subscription is (re)established, and pages re-read on reconnect anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use super::keys;
use crate::redis_connection::RedisConnection;

/// Publishes `(order id, version)` for views just written, one round trip.
pub async fn announce(
    redis: &mut RedisConnection,
    prefix: &str,
    written: &[(&str, i64)],
) -> redis::RedisResult<()> {
    if written.is_empty() {
        return Ok(());
    }
    let channel = keys::changes_channel(prefix);
    let mut pipe = redis::pipe();
    for (order_id, version) in written {
        pipe.publish(&channel, format!("{order_id} {version}"))
            .ignore();
    }
    pipe.query_async::<()>(redis).await
}

/// Reads an announcement: the order id and the version its view reached.
pub fn parse_announcement(payload: &str) -> Option<(&str, i64)> {
    let (order, version) = payload.split_once(' ')?;
    Some((order, version.parse().ok()?))
}

/// One query instance's subscription to the tracking view's announcements, fanned out to the
/// watchers of each order. Cheap to clone.
#[derive(Clone)]
pub struct ChangeFeed {
    inner: Arc<Inner>,
}

struct Inner {
    /// The newest version announced per watched order; an entry lives while someone watches.
    orders: Mutex<Registry>,
    /// Bumped whenever the subscription is (re)established: every watcher re-reads.
    epoch: watch::Sender<u64>,
}

#[derive(Default)]
struct Registry {
    watched: HashMap<String, Weak<watch::Sender<i64>>>,
    /// Sweep dead entries when the map grows past this.
    sweep_at: usize,
}

/// A watcher of one order: wakes when an announcement for it arrives (or the feed
/// reconnects). Dropping it stops the watching.
pub struct Watch {
    version: watch::Receiver<i64>,
    epoch: watch::Receiver<u64>,
    _sender: Arc<watch::Sender<i64>>,
    /// Keeps the feed (and its epoch sender) alive while watched.
    _feed: Arc<Inner>,
}

impl Watch {
    /// Waits for the next announcement of this order (or a reconnect of the feed). Returns
    /// the newest version announced so far (0: none yet).
    pub async fn changed(&mut self) -> i64 {
        tokio::select! {
            _ = self.version.changed() => {}
            _ = self.epoch.changed() => {}
        }
        *self.version.borrow_and_update()
    }
}

impl ChangeFeed {
    /// Subscribes to `prefix`'s announcements on the Redis server of `clients` (one node, or
    /// the nodes of a cluster, which broadcasts a `PUBLISH` to every node: any one will do), in
    /// a task that reconnects (100 ms doubling to 5 s, to the next node) for as long as the feed
    /// or a clone of it lives.
    pub fn start(clients: Vec<redis::Client>, prefix: &str) -> Self {
        let (epoch, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            orders: Mutex::new(Registry {
                watched: HashMap::new(),
                sweep_at: 1024,
            }),
            epoch,
        });
        tokio::spawn(subscribe(
            clients,
            keys::changes_channel(prefix),
            Arc::downgrade(&inner),
        ));
        Self { inner }
    }

    /// Starts watching `order_id` (the UUID, as the view spells it).
    pub fn watch(&self, order_id: &str) -> Watch {
        let mut registry = self.inner.lock();
        let sender = match registry.watched.get(order_id).and_then(Weak::upgrade) {
            Some(sender) => sender,
            None => {
                let sender = Arc::new(watch::channel(0).0);
                registry
                    .watched
                    .insert(order_id.to_owned(), Arc::downgrade(&sender));
                if registry.watched.len() >= registry.sweep_at {
                    registry.watched.retain(|_, w| w.strong_count() > 0);
                    registry.sweep_at = (registry.watched.len() * 2).max(1024);
                }
                sender
            }
        };
        drop(registry);
        Watch {
            version: sender.subscribe(),
            epoch: self.inner.epoch.subscribe(),
            _sender: sender,
            _feed: self.inner.clone(),
        }
    }

    /// Waits until the subscription is established (the first time).
    pub async fn subscribed(&self) {
        let mut epoch = self.inner.epoch.subscribe();
        let _ = epoch.wait_for(|epoch| *epoch > 0).await;
    }

    /// Orders watched right now (for metrics and tests).
    pub fn watched(&self) -> usize {
        self.inner
            .lock()
            .watched
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.orders.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deliver(&self, payload: &str) {
        let Some((order, version)) = parse_announcement(payload) else {
            tracing::debug!(payload, "unreadable tracking announcement ignored");
            return;
        };
        let mut registry = self.lock();
        let Some(weak) = registry.watched.get(order) else {
            return;
        };
        match weak.upgrade() {
            Some(sender) => {
                sender.send_if_modified(|newest| {
                    let newer = version > *newest;
                    *newest = (*newest).max(version);
                    newer
                });
            }
            None => {
                registry.watched.remove(order);
            }
        }
    }
}

async fn subscribe(clients: Vec<redis::Client>, channel: String, feed: Weak<Inner>) {
    let mut failures: u32 = 0;
    let mut next = 0;
    loop {
        if feed.strong_count() == 0 || clients.is_empty() {
            return;
        }
        let client = &clients[next % clients.len()];
        next += 1;
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    failures = 0;
                    tracing::info!(channel, "tracking change feed subscribed");
                    if let Some(inner) = feed.upgrade() {
                        // Whatever was announced while we were away: everyone re-reads.
                        inner.epoch.send_modify(|epoch| *epoch += 1);
                    }
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Some(inner) = feed.upgrade() else { return };
                        if let Ok(payload) = message.get_payload::<String>() {
                            inner.deliver(&payload);
                        }
                    }
                    tracing::warn!(channel, "tracking change feed lost its subscription");
                }
                Err(error) => {
                    tracing::warn!(channel, %error, "tracking change feed cannot subscribe")
                }
            },
            Err(error) => tracing::warn!(channel, %error, "tracking change feed cannot connect"),
        }
        failures += 1;
        let exp = failures.saturating_sub(1).min(6);
        let delay = Duration::from_millis(100 * (1u64 << exp)).min(Duration::from_secs(5));
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_read_back_as_written() {
        assert_eq!(parse_announcement("abc 7"), Some(("abc", 7)));
        assert_eq!(parse_announcement("abc seven"), None);
        assert_eq!(parse_announcement("abc"), None);
    }

    #[tokio::test]
    async fn a_watcher_wakes_on_its_orders_announcement_only_and_leaves_no_trace() {
        let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
        let client = redis::Client::open("redis://127.0.0.1:6379").expect("redis url");
        let feed = ChangeFeed::start(vec![client.clone()], &prefix);
        let mut redis: RedisConnection = redis::aio::ConnectionManager::new(client)
            .await
            .expect("redis up")
            .into();
        tokio::time::timeout(Duration::from_secs(10), feed.subscribed())
            .await
            .expect("subscribed");
        let mut mine = feed.watch("order-a");
        let mut other = feed.watch("order-b");

        announce(&mut redis, &prefix, &[("order-a", 3)])
            .await
            .expect("publish");
        let version = tokio::time::timeout(Duration::from_secs(10), mine.changed())
            .await
            .expect("announcement arrives");
        assert_eq!(version, 3);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), other.changed())
                .await
                .is_err(),
            "another order's watcher sleeps on"
        );
        // A second watcher of the same order shares its entry; dropping both removes it.
        let again = feed.watch("order-a");
        assert_eq!(feed.watched(), 2);
        drop((mine, again, other));
        assert_eq!(feed.watched(), 0);
    }
}
