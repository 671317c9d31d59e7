//! A per-client-IP token bucket for the public tracking endpoint, kept in memory. It blunts
//! token guessing and scraping from one address; it is per process, not a global quota.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Buckets beyond this many are pruned (the full ones first) so memory stays bounded.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// Refill rate and burst size of each client's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl RateLimit {
    /// `n` requests per second with a burst of `2n`.
    pub fn per_second(n: u32) -> Self {
        Self {
            per_second: f64::from(n),
            burst: f64::from(n.saturating_mul(2).max(1)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// The buckets of all clients seen.
#[derive(Clone)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Arc::default(),
        }
    }

    /// Takes one token for `client` at `now`; `Err(wait)` says how long until one is free.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock only means another request panicked; do not lock everyone out.
            return Ok(());
        };
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&client) {
            let limit = self.limit;
            buckets.retain(|_, b| refilled(*b, limit, now).tokens < limit.burst);
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.limit.burst,
            refilled_at: now,
        });
        *bucket = refilled(*bucket, self.limit, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - bucket.tokens;
            Err(Duration::from_secs_f64(
                missing / self.limit.per_second.max(f64::MIN_POSITIVE),
            ))
        }
    }
}

fn refilled(bucket: Bucket, limit: RateLimit, now: Instant) -> Bucket {
    let elapsed = now
        .saturating_duration_since(bucket.refilled_at)
        .as_secs_f64();
    Bucket {
        tokens: (bucket.tokens + elapsed * limit.per_second).min(limit.burst),
        refilled_at: now,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_for_refill() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 10.0,
            burst: 3.0,
        });
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(ip, t0).is_ok());
        }
        let wait = limiter.check(ip, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100));
        assert!(limiter.check(other, t0).is_ok(), "buckets are per client");
        assert!(limiter.check(ip, t0 + Duration::from_millis(100)).is_ok());
    }
}
