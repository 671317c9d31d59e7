//! Reading and writing tracking views in Redis. Reads and writes for a whole batch go in one
//! pipeline each; every write is a compare-and-set on the hash's `version` field, run as a Lua
//! script so the check and the write are one atomic step.

use redis::aio::ConnectionManager;
use redis::Script;
use waybill_schemas::views::TrackingView;
use waybill_schemas::OrderId;

use super::TrackingError;

/// Writes `view` only if the stored version equals the expected one (missing counts as 0).
pub(crate) const COMPARE_AND_SET: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if (current == false and ARGV[1] == '0') or current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'view', ARGV[3])
  return 1
end
return 0
";

/// Writes `view` unless the stored one is newer: used by a rebuild to replace views it
/// recomputed at the same or a later version.
const REPLACE_UNLESS_NEWER: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if current == false or tonumber(current) <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'view', ARGV[2])
  return 1
end
return 0
";

/// A view to write if the stored one is still at `expected_version`.
#[derive(Debug, Clone)]
pub struct TrackingWrite {
    pub expected_version: i64,
    pub view: TrackingView,
}

/// The tracking views under one key prefix.
#[derive(Clone)]
pub struct TrackingStore {
    redis: ConnectionManager,
    prefix: String,
    cas: Script,
    replace: Script,
}

impl TrackingStore {
    pub fn new(redis: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            cas: Script::new(COMPARE_AND_SET),
            replace: Script::new(REPLACE_UNLESS_NEWER),
        }
    }

    /// The Redis connection this store uses.
    pub fn connection(&self) -> ConnectionManager {
        self.redis.clone()
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:tracking:<order uuid>`.
    pub fn key(&self, order_id: &str) -> String {
        format!("{}:tracking:{order_id}", self.prefix)
    }

    /// The match pattern for every tracking key under this prefix.
    pub fn key_pattern(&self) -> String {
        format!("{}:tracking:*", self.prefix)
    }

    /// One order's view, if it has one.
    pub async fn get(&self, order_id: &str) -> Result<Option<TrackingView>, TrackingError> {
        let mut found = self.load_keys(vec![self.key(order_id)]).await?;
        Ok(found.pop().flatten())
    }

    /// The views of these order streams (`order-<uuid>`), in order, with one round trip.
    pub async fn load_streams(
        &self,
        stream_ids: &[String],
    ) -> Result<Vec<Option<TrackingView>>, TrackingError> {
        let mut keys = Vec::with_capacity(stream_ids.len());
        for stream_id in stream_ids {
            let order =
                OrderId::from_stream_id(stream_id).ok_or_else(|| TrackingError::NotAnOrder {
                    stream_id: stream_id.clone(),
                })?;
            keys.push(self.key(&order.to_string()));
        }
        self.load_keys(keys).await
    }

    /// The views at these keys, with one round trip.
    pub async fn load_keys(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<Option<TrackingView>>, TrackingError> {
        if keys.is_empty() {
            return Ok(Vec::new());
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
                    .map_err(|source| TrackingError::CorruptView { key, source }),
            })
            .collect()
    }

    /// Compare-and-set writes, one round trip; `true` where the write happened, `false` where
    /// the stored version had moved on.
    pub async fn compare_and_set(
        &self,
        writes: &[TrackingWrite],
    ) -> Result<Vec<bool>, TrackingError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        // Loading first makes the pipeline survive a Redis restart that forgot the script.
        pipe.load_script(&self.cas).ignore();
        for write in writes {
            let json = encode(&write.view)?;
            pipe.invoke_script(
                self.cas
                    .key(self.key(&write.view.order_id))
                    .arg(write.expected_version)
                    .arg(write.view.version)
                    .arg(json),
            );
        }
        let written: Vec<i64> = pipe.query_async(&mut self.redis.clone()).await?;
        Ok(written.into_iter().map(|w| w == 1).collect())
    }

    /// Writes views unless the stored one is newer, one round trip; `true` where written.
    pub async fn replace_unless_newer(
        &self,
        views: &[TrackingView],
    ) -> Result<Vec<bool>, TrackingError> {
        if views.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.load_script(&self.replace).ignore();
        for view in views {
            pipe.invoke_script(
                self.replace
                    .key(self.key(&view.order_id))
                    .arg(view.version)
                    .arg(encode(view)?),
            );
        }
        let written: Vec<i64> = pipe.query_async(&mut self.redis.clone()).await?;
        Ok(written.into_iter().map(|w| w == 1).collect())
    }

    /// Deletes every tracking key under this prefix (used to drop a rebuild's staging copy).
    pub async fn delete_all(&self) -> Result<u64, TrackingError> {
        let mut deleted = 0;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys) = self.scan_keys(cursor).await?;
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

    /// One page of keys under this prefix: `(next cursor, keys)`; cursor 0 ends the scan.
    pub async fn scan_keys(&self, cursor: u64) -> Result<(u64, Vec<String>), TrackingError> {
        Ok(redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(self.key_pattern())
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut self.redis.clone())
            .await?)
    }
}

fn encode(view: &TrackingView) -> Result<String, TrackingError> {
    serde_json::to_string(view).map_err(|source| TrackingError::CorruptView {
        key: view.order_id.clone(),
        source,
    })
}
