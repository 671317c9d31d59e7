//! The generation marker of a view kept in Redis ([`crate::runtime::self_heal`]): a hash at the
//! key the view's layout names (`generation`, `state` = `catching_up` | `ready`) and, beside it,
//! the filler's lease (`<marker key>:filler`, the holder's id with a time to live). Both vanish
//! with the rest of the store on `FLUSHALL` or a restart without persistence, which is the
//! point. Each is one key, so on a Redis Cluster every command touches one node.

use std::time::Duration;

use redis::Script;

use crate::redis_connection::RedisConnection;
use crate::runtime::self_heal::{StoreMarker, StoreState};

/// Creates the marker, catching up, unless one exists.
const BEGIN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'state', 'catching_up')
  return 1
end
return 0
";

/// Marks the generation ready if it is still the marker's.
const FINISH: &str = r"
if redis.call('HGET', KEYS[1], 'generation') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', 'ready')
  return 1
end
return 0
";

/// Takes the lease if free, or renews it for its holder.
const LEASE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

const READY: &str = "ready";

/// One view's marker in Redis.
#[derive(Clone)]
pub struct RedisStoreMarker {
    redis: RedisConnection,
    key: String,
    lease_key: String,
}

impl RedisStoreMarker {
    /// The marker at `key` (named by the view's key layout).
    pub fn new(redis: RedisConnection, key: String) -> Self {
        let lease_key = format!("{key}:filler");
        Self {
            redis,
            key,
            lease_key,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// What the marker says, one round trip (readers use this when a view is missing).
    pub async fn read(&self) -> Result<StoreState, redis::RedisError> {
        let (generation, state): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&self.key)
            .arg("generation")
            .arg("state")
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(match (generation, state) {
            (Some(generation), Some(state)) if state == READY => StoreState::Ready { generation },
            (Some(generation), _) => StoreState::CatchingUp { generation },
            (None, _) => StoreState::Missing,
        })
    }

    async fn flag(
        &self,
        script: &str,
        key: &str,
        args: &[&str],
    ) -> Result<bool, redis::RedisError> {
        let script = Script::new(script);
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(*arg);
        }
        let done: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        Ok(done == 1)
    }
}

impl StoreMarker for RedisStoreMarker {
    type Error = redis::RedisError;

    async fn state(&self) -> Result<StoreState, redis::RedisError> {
        self.read().await
    }

    async fn begin(&self, generation: &str) -> Result<bool, redis::RedisError> {
        self.flag(BEGIN, &self.key, &[generation]).await
    }

    async fn finish(&self, generation: &str) -> Result<bool, redis::RedisError> {
        self.flag(FINISH, &self.key, &[generation]).await
    }

    async fn lease(&self, holder: &str, ttl: Duration) -> Result<bool, redis::RedisError> {
        let millis = ttl.as_millis().max(1).to_string();
        self.flag(LEASE, &self.lease_key, &[holder, &millis]).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn marker(redis: RedisConnection) -> RedisStoreMarker {
        RedisStoreMarker::new(
            redis,
            format!("marker-test-{}:view-store:x", uuid::Uuid::now_v7().simple()),
        )
    }

    async fn delete(redis: &RedisConnection, key: &str) {
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut redis.clone())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_generation_goes_from_missing_to_catching_up_to_ready_and_is_lost_with_its_key() {
        let redis = crate::testing::redis().await;
        let marker = marker(redis.clone());
        assert_eq!(marker.state().await.unwrap(), StoreState::Missing);
        assert!(marker.begin("g1").await.unwrap());
        // A second instance finds it marked and does not start its own generation.
        assert!(!marker.begin("g2").await.unwrap());
        assert_eq!(
            marker.state().await.unwrap(),
            StoreState::CatchingUp {
                generation: "g1".into()
            }
        );
        assert!(!marker.finish("g2").await.unwrap(), "another generation");
        assert!(marker.finish("g1").await.unwrap());
        assert_eq!(
            marker.state().await.unwrap(),
            StoreState::Ready {
                generation: "g1".into()
            }
        );
        // The store loses its data: the marker goes with it, and a fill finishing late for
        // the lost generation does not mark the empty store ready.
        delete(&redis, marker.key()).await;
        assert_eq!(marker.state().await.unwrap(), StoreState::Missing);
        assert!(!marker.finish("g1").await.unwrap());
        assert_eq!(marker.state().await.unwrap(), StoreState::Missing);
    }

    #[tokio::test]
    async fn one_holder_has_the_lease_until_it_lapses() {
        let redis = crate::testing::redis().await;
        let marker = marker(redis.clone());
        let ttl = Duration::from_millis(300);
        assert!(marker.lease("a", ttl).await.unwrap());
        assert!(!marker.lease("b", ttl).await.unwrap());
        assert!(
            marker.lease("a", ttl).await.unwrap(),
            "renewed by its holder"
        );
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(
            marker.lease("b", ttl).await.unwrap(),
            "taken over once lapsed"
        );
        assert!(!marker.lease("a", ttl).await.unwrap());
        delete(&redis, &marker.lease_key).await;
    }
}
