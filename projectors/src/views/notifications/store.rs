//! Reading and writing notification states in Redis, in the layout of
//! [`crate::views::order_hashes`] under `<prefix>:notifications:{<order uuid>}`.

use waybill_schemas::OrderId;

use super::apply::NotificationState;
use super::NotificationError;
use crate::redis_connection::RedisConnection;
use crate::views::order_hashes::{HashError, OrderHashes};

/// The notification states under one key prefix.
#[derive(Clone)]
pub struct NotificationStore {
    hashes: OrderHashes,
}

impl From<HashError> for NotificationError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::NotAnOrder { stream_id } => NotificationError::NotAnOrder { stream_id },
            HashError::Corrupt { key, source } => NotificationError::CorruptState { key, source },
            HashError::Redis(error) => NotificationError::Redis(error),
        }
    }
}

impl NotificationStore {
    pub fn new(redis: RedisConnection, prefix: impl Into<String>) -> Self {
        Self {
            hashes: OrderHashes::new(redis, prefix.into(), "notifications"),
        }
    }

    /// The Redis connection this store uses.
    pub fn connection(&self) -> RedisConnection {
        self.hashes.connection()
    }

    /// `<prefix>:notifications:{<order uuid>}`.
    pub fn key(&self, order_id: OrderId) -> String {
        self.hashes.key(order_id)
    }

    /// One order's state, if it has one.
    pub async fn get(
        &self,
        order_id: OrderId,
    ) -> Result<Option<NotificationState>, NotificationError> {
        let found = self.load_streams(&[order_id.stream_id()]).await?;
        Ok(found.into_iter().next().flatten())
    }

    /// The states of these order streams (`order-<uuid>`), in order, with one round trip.
    pub async fn load_streams(
        &self,
        stream_ids: &[String],
    ) -> Result<Vec<Option<NotificationState>>, NotificationError> {
        Ok(self.hashes.load_streams(stream_ids).await?)
    }

    /// Writes each state if the stored version is still the expected one (missing counts as 0);
    /// `true` where written.
    pub async fn compare_and_set(
        &self,
        writes: &[(i64, NotificationState)],
    ) -> Result<Vec<bool>, NotificationError> {
        let writes = writes.iter().map(|(expected_version, state)| {
            (
                state.contact.order_id,
                *expected_version,
                state.version,
                state,
            )
        });
        Ok(self.hashes.compare_and_set(writes).await?)
    }

    /// Deletes every state under this prefix.
    pub async fn delete_all(&self) -> Result<u64, NotificationError> {
        Ok(self.hashes.delete_all().await?)
    }
}
