//! Reading and writing notification states in Redis: one hash per order at
//! `<prefix>:notifications:<order uuid>` with the fields `version` and `view` (the state as JSON):
//! the same layout and compare-and-set script as the tracking view's, a whole batch per pipeline.

use redis::aio::ConnectionManager;
use redis::Script;
use waybill_schemas::OrderId;

use super::apply::NotificationState;
use super::NotificationError;
use crate::views::tracking::COMPARE_AND_SET;

/// The notification states under one key prefix.
#[derive(Clone)]
pub struct NotificationStore {
    redis: ConnectionManager,
    prefix: String,
    cas: Script,
}

impl NotificationStore {
    pub fn new(redis: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            cas: Script::new(COMPARE_AND_SET),
        }
    }

    /// The Redis connection this store uses.
    pub fn connection(&self) -> ConnectionManager {
        self.redis.clone()
    }

    /// `<prefix>:notifications:<order uuid>`.
    pub fn key(&self, order_id: OrderId) -> String {
        format!("{}:notifications:{order_id}", self.prefix)
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
        if stream_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = Vec::with_capacity(stream_ids.len());
        for stream_id in stream_ids {
            let order = OrderId::from_stream_id(stream_id).ok_or_else(|| {
                NotificationError::NotAnOrder {
                    stream_id: stream_id.clone(),
                }
            })?;
            keys.push(self.key(order));
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.hget(key, "view");
        }
        let raw: Vec<Option<String>> = pipe.query_async(&mut self.redis.clone()).await?;
        keys.into_iter()
            .zip(raw)
            .map(|(key, json)| match json {
                None => Ok(None),
                Some(json) => serde_json::from_str(&json)
                    .map(Some)
                    .map_err(|source| NotificationError::CorruptState { key, source }),
            })
            .collect()
    }

    /// Writes each state if the stored version is still the expected one (missing counts as 0);
    /// `true` where written.
    pub async fn compare_and_set(
        &self,
        writes: &[(i64, NotificationState)],
    ) -> Result<Vec<bool>, NotificationError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.load_script(&self.cas).ignore();
        for (expected_version, state) in writes {
            let key = self.key(state.contact.order_id);
            let json =
                serde_json::to_string(state).map_err(|source| NotificationError::CorruptState {
                    key: key.clone(),
                    source,
                })?;
            pipe.invoke_script(
                self.cas
                    .key(key)
                    .arg(*expected_version)
                    .arg(state.version)
                    .arg(json),
            );
        }
        let written: Vec<i64> = pipe.query_async(&mut self.redis.clone()).await?;
        Ok(written.into_iter().map(|w| w == 1).collect())
    }

    /// Deletes every state under this prefix.
    pub async fn delete_all(&self) -> Result<u64, NotificationError> {
        let pattern = format!("{}:notifications:*", self.prefix);
        let mut deleted = 0;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.redis.clone())
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut self.redis.clone())
                    .await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}
