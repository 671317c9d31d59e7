//! The Redis layout the order views share: one hash per order at `<prefix>:<view>:{<order uuid>}`
//! (the order id is the key's hash tag, so on a Redis Cluster all of an order's keys share one
//! slot and the compare-and-set script touches one node) with the fields `version` (the last stream version applied) and `view` (the state as JSON).
//! Reads and writes for a whole batch go in one pipeline each; every write is a compare-and-set
//! on `version`, run as a Lua script so the check and the write are one atomic step. Each view's
//! store wraps an [`OrderHashes`] and turns a [`HashError`] into its own error.

use std::fmt::Display;

use redis::Script;
use serde::de::DeserializeOwned;
use serde::Serialize;
use waybill_schemas::OrderId;

use crate::redis_connection::{KeyScan, RedisConnection};

/// Writes `view` only if the stored version equals the expected one (missing counts as 0).
const COMPARE_AND_SET: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if (current == false and ARGV[1] == '0') or current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'view', ARGV[3])
  return 1
end
return 0
";

/// What went wrong reading or writing the hashes.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("{stream_id} is not an order stream")]
    NotAnOrder { stream_id: String },
    #[error("{key} is unreadable: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// One view's hashes under one key prefix.
#[derive(Clone)]
pub struct OrderHashes {
    redis: RedisConnection,
    prefix: String,
    view: &'static str,
    cas: Script,
}

impl OrderHashes {
    pub fn new(redis: RedisConnection, prefix: String, view: &'static str) -> Self {
        Self {
            redis,
            prefix,
            view,
            cas: Script::new(COMPARE_AND_SET),
        }
    }

    pub fn connection(&self) -> RedisConnection {
        self.redis.clone()
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:<view>:{<order uuid>}`.
    pub fn key(&self, order_id: impl Display) -> String {
        order_key(&self.prefix, self.view, order_id)
    }

    /// The match pattern for every key of this view under this prefix.
    pub fn key_pattern(&self) -> String {
        format!("{}:{}:*", self.prefix, self.view)
    }

    /// The states of these order streams (`order-<uuid>`), in order, with one round trip.
    pub async fn load_streams<T: DeserializeOwned>(
        &self,
        stream_ids: &[String],
    ) -> Result<Vec<Option<T>>, HashError> {
        let mut keys = Vec::with_capacity(stream_ids.len());
        for stream_id in stream_ids {
            let order =
                OrderId::from_stream_id(stream_id).ok_or_else(|| HashError::NotAnOrder {
                    stream_id: stream_id.clone(),
                })?;
            keys.push(self.key(order));
        }
        self.load_keys(keys).await
    }

    /// The stored versions of these order streams (0: none), in order, with one round trip
    /// that reads only the `version` field (the compare-and-set field).
    pub async fn versions(&self, stream_ids: &[String]) -> Result<Vec<i64>, HashError> {
        if stream_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for stream_id in stream_ids {
            let order =
                OrderId::from_stream_id(stream_id).ok_or_else(|| HashError::NotAnOrder {
                    stream_id: stream_id.clone(),
                })?;
            pipe.hget(self.key(order), "version");
        }
        let versions: Vec<Option<i64>> = pipe.query_async(&mut self.redis.clone()).await?;
        Ok(versions.into_iter().map(|v| v.unwrap_or(0)).collect())
    }

    /// The states at these keys, with one round trip.
    pub async fn load_keys<T: DeserializeOwned>(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<Option<T>>, HashError> {
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
                    .map_err(|source| HashError::Corrupt { key, source }),
            })
            .collect()
    }

    /// Compare-and-set writes of `(order id, expected version, version, state)`, one round trip;
    /// `true` where the write happened, `false` where the stored version had moved on.
    pub async fn compare_and_set<'a, T: Serialize + 'a>(
        &self,
        writes: impl ExactSizeIterator<Item = (impl Display, i64, i64, &'a T)>,
    ) -> Result<Vec<bool>, HashError> {
        if writes.len() == 0 {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        // Loading first makes the pipeline survive a Redis restart that forgot the script.
        pipe.load_script(&self.cas).ignore();
        for (order_id, expected_version, version, state) in writes {
            let key = self.key(order_id);
            let json = encode(&key, state)?;
            pipe.invoke_script(
                self.cas
                    .key(key)
                    .arg(expected_version)
                    .arg(version)
                    .arg(json),
            );
        }
        let written: Vec<i64> = pipe.query_async(&mut self.redis.clone()).await?;
        self.redis.await_replicas().await?;
        Ok(written.into_iter().map(|w| w == 1).collect())
    }

    /// Deletes every key of this view under this prefix (key by key: on a cluster a multi-key
    /// delete may not span slots).
    pub async fn delete_all(&self) -> Result<u64, HashError> {
        Ok(self.redis.delete_matching(self.key_pattern()).await?)
    }

    /// Every key of this view under this prefix, page by page (each master's on a cluster).
    pub fn scan(&self) -> KeyScan {
        self.redis.scan(self.key_pattern())
    }
}

/// `<prefix>:<view>:{<order uuid>}`: the order id in braces is the Redis Cluster hash tag.
pub fn order_key(prefix: &str, view: &str, order_id: impl Display) -> String {
    format!("{prefix}:{view}:{{{order_id}}}")
}

/// `state` as the JSON stored under `key`.
pub fn encode(key: &str, state: &impl Serialize) -> Result<String, HashError> {
    serde_json::to_string(state).map_err(|source| HashError::Corrupt {
        key: key.to_owned(),
        source,
    })
}
