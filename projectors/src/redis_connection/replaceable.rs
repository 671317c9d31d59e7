//! A Redis Cluster connection that is replaced when it stops answering.
//!
//! The `redis` crate's cluster connection runs one driver task per connection; every command of
//! the process goes through it. Under load, a master killed with -9 and restarted left that
//! driver stuck for good in about half the tries (`cluster_tests::a_master_killed_and_restarted
//! _under_load_…`): from then on every command, to every node, timed out after
//! [`super::RESPONSE_TIMEOUT`], for as long as the process lived, although each node answered
//! `redis-cli` at once. The likely cause, from the crate's source, is its slot refresh waiting
//! for a write lock that a request it does not poll while refreshing was already queued for;
//! the crate's logs did not show it (with them on, the timing changed and it did not happen).
//!
//! So the connection is held behind a lock and watched: [`TIMEOUTS_BEFORE_REPLACING`] commands
//! in a row that timed out (no answer at all, not an error answer) replace it with a new one
//! built from the seed nodes, at most once per [`REPLACE_AT_MOST_EVERY`]; each replacement is
//! counted in `waybill_redis_connection_replacements_total`. Commands in flight
//! finish on the old one (they time out); the next ones use the new one. A command that got any
//! answer counts as the connection working.
//!
//! What a replacement does not keep: `WAIT` counts the writes made on the connection it is sent
//! on, so writes made on the old connection are not covered by a `WAIT` on the new one. That is
//! the same as any reconnect (the single-node connection manager's too), and the writes in
//! question were made on a connection that had stopped answering.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::RedisResult;

/// Commands in a row that got no answer before the connection is replaced.
pub const TIMEOUTS_BEFORE_REPLACING: u32 = 3;
/// The shortest time between two replacements.
const REPLACE_AT_MOST_EVERY: Duration = Duration::from_secs(5);
/// How long building the new connection may take before the next try.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// The cluster connection in use, and what replaces it.
pub struct Replaceable {
    client: ClusterClient,
    current: RwLock<ClusterConnection>,
    timeouts_in_a_row: AtomicU32,
    replacing: AtomicBool,
    replacements: AtomicU64,
}

impl Replaceable {
    pub async fn connect(client: ClusterClient) -> RedisResult<Arc<Self>> {
        let connection = client.get_async_connection().await?;
        Ok(Arc::new(Self {
            client,
            current: RwLock::new(connection),
            timeouts_in_a_row: AtomicU32::new(0),
            replacing: AtomicBool::new(false),
            replacements: AtomicU64::new(0),
        }))
    }

    /// The connection to send the next command on (clones share it).
    pub fn get(&self) -> ClusterConnection {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many times the connection was replaced.
    pub fn replacements(&self) -> u64 {
        self.replacements.load(Ordering::Relaxed)
    }

    /// Counts what a command on [`Self::get`]'s connection came to, and starts a replacement
    /// after [`TIMEOUTS_BEFORE_REPLACING`] in a row got no answer.
    pub fn observe<T>(self: &Arc<Self>, result: &RedisResult<T>) {
        match result {
            Err(error) if error.is_timeout() => {
                let in_a_row = self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                if in_a_row >= TIMEOUTS_BEFORE_REPLACING
                    && !self.replacing.swap(true, Ordering::AcqRel)
                {
                    tokio::spawn(Arc::clone(self).replace(in_a_row));
                }
            }
            _ => self.timeouts_in_a_row.store(0, Ordering::Relaxed),
        }
    }

    async fn replace(self: Arc<Self>, in_a_row: u32) {
        tracing::warn!(
            timeouts_in_a_row = in_a_row,
            "the Redis Cluster connection stopped answering: replacing it with a new one"
        );
        match tokio::time::timeout(CONNECT_WITHIN, self.client.get_async_connection()).await {
            Ok(Ok(connection)) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = connection;
                self.replacements.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("waybill_redis_connection_replacements_total").increment(1);
                tracing::info!("the Redis Cluster connection was replaced");
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "a new Redis Cluster connection could not be made yet");
            }
            Err(_) => tracing::warn!(
                "a new Redis Cluster connection could not be made within {CONNECT_WITHIN:?}"
            ),
        }
        tokio::time::sleep(REPLACE_AT_MOST_EVERY).await;
        self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        self.replacing.store(false, Ordering::Release);
    }
}
