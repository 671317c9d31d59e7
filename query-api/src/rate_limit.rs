//! Rate limits of the public (customer) endpoints, shared by every query API instance: a
//! counter per subject (a client address, an order number) and fixed window, in Redis, taken
//! atomically by one Lua script (INCR, and PEXPIRE on the window's first hit), so N instances
//! behind a load balancer enforce one limit, not N. Keys: `<prefix>:ratelimit:<scope>:<subject>`,
//! expiring with their window. The client address comes from [`crate::client_ip`].
//!
//! Redis down: **fail open to a per-process bucket.** Every public endpoint reads its answer
//! from Redis too, so while Redis is down they answer 503 whatever the limiter says: failing
//! closed would only turn those 503s into 429s and tell clients the wrong thing, and nothing a
//! guesser could learn is readable without Redis. The per-process bucket (the same quota per
//! instance) still stops one client from hammering an instance meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use waybill_projectors::RedisConnection;

/// `limit` hits per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub window: Duration,
}

impl Quota {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }
}

/// INCR the window's counter, start its expiry on the first hit (or if it somehow has none),
/// and answer the count with the milliseconds left.
const TAKE: &str = r"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
";

/// One limit: its scope's shared counters, and the per-process bucket used while Redis is
/// down. Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    scope: &'static str,
    quota: Quota,
    redis: RedisConnection,
    prefix: Arc<str>,
    take: Arc<redis::Script>,
    local: LocalBuckets,
}

impl Limiter {
    pub fn new(scope: &'static str, quota: Quota, redis: RedisConnection, prefix: &str) -> Self {
        Self {
            scope,
            quota,
            redis,
            prefix: prefix.into(),
            take: Arc::new(redis::Script::new(TAKE)),
            local: LocalBuckets::new(quota),
        }
    }

    fn key(&self, subject: &str) -> String {
        format!("{}:ratelimit:{}:{subject}", self.prefix, self.scope)
    }

    /// Counts one hit on `subject`; `Err(wait)` when it is over the quota.
    pub async fn take(&self, subject: &str) -> Result<(), Duration> {
        let window_ms = u64::try_from(self.quota.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut redis = self.redis.clone();
        let counted: Result<(u64, i64), _> = self
            .take
            .key(self.key(subject))
            .arg(window_ms)
            .invoke_async(&mut redis)
            .await;
        match counted {
            Ok((count, _)) if count <= u64::from(self.quota.limit) => Ok(()),
            Ok((_, ttl_ms)) => Err(self.wait(ttl_ms)),
            Err(error) => {
                self.redis_failed(&error);
                self.local.take(subject, Instant::now())
            }
        }
    }

    /// Whether `subject` is over the quota already, without counting a hit (Redis down: not).
    pub async fn check(&self, subject: &str) -> Result<(), Duration> {
        let key = self.key(subject);
        let mut redis = self.redis.clone();
        let read: Result<(Option<u64>, i64), _> = redis::pipe()
            .get(&key)
            .pttl(&key)
            .query_async(&mut redis)
            .await;
        match read {
            Ok((Some(count), ttl_ms)) if count >= u64::from(self.quota.limit) => {
                Err(self.wait(ttl_ms))
            }
            Ok(_) => Ok(()),
            Err(error) => {
                self.redis_failed(&error);
                Ok(())
            }
        }
    }

    fn wait(&self, ttl_ms: i64) -> Duration {
        u64::try_from(ttl_ms)
            .map_or(self.quota.window, Duration::from_millis)
            .max(Duration::from_secs(1))
    }

    fn redis_failed(&self, error: &redis::RedisError) {
        metrics::counter!("waybill_query_rate_limit_fallback_total", "scope" => self.scope)
            .increment(1);
        tracing::warn!(%error, scope = self.scope, "rate limit counters unavailable; this process limits on its own meanwhile");
    }
}

/// Buckets beyond this many are pruned (the full ones first) so memory stays bounded.
const MAX_TRACKED_CLIENTS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// Per-process token buckets with the quota's rate (limit per window, burst of the limit):
/// the fallback while the shared counters cannot be reached.
#[derive(Clone)]
struct LocalBuckets {
    per_second: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

impl LocalBuckets {
    fn new(quota: Quota) -> Self {
        Self {
            per_second: f64::from(quota.limit) / quota.window.as_secs_f64().max(0.001),
            burst: f64::from(quota.limit.max(1)),
            buckets: Arc::default(),
        }
    }

    fn take(&self, subject: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock only means another request panicked; do not lock everyone out.
            return Ok(());
        };
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(subject) {
            buckets.retain(|_, b| self.refilled(*b, now).tokens < self.burst);
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(subject.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            refilled_at: now,
        });
        *bucket = self.refilled(*bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - bucket.tokens;
            Err(Duration::from_secs_f64(
                missing / self.per_second.max(f64::MIN_POSITIVE),
            ))
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now
            .saturating_duration_since(bucket.refilled_at)
            .as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + elapsed * self.per_second).min(self.burst),
            refilled_at: now,
        }
    }
}

/// Whole seconds to put in `Retry-After` for a wait (rounded up, at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_gives_a_client_its_quota_then_waits_for_refill() {
        let local = LocalBuckets::new(Quota::new(3, Duration::from_millis(300)));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(local.take("10.0.0.1", t0).is_ok());
        }
        let wait = local.take("10.0.0.1", t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(local.take("10.0.0.2", t0).is_ok(), "buckets are per client");
        assert!(local
            .take("10.0.0.1", t0 + Duration::from_millis(100))
            .is_ok());
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
