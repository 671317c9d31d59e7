//! Pure: how long a stage may take before the desk calls it overdue, learned per stage, channel
//! and node from the durations of recent orders. With enough samples the limit is their high
//! quantile (p99 by default, nearest rank), never below a floor (so a stage that is always
//! instant does not flag every order that takes a second); with too few, the stage's default
//! limit applies, also not below the floor.

use std::collections::HashMap;
use std::time::Duration;

use super::watch::Stage;

/// How limits are learned.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningPolicy {
    /// The quantile of recent durations that is the limit (0.99).
    pub quantile: f64,
    /// Samples needed before the learned limit replaces the default.
    pub min_samples: usize,
    /// No limit is shorter than this.
    pub floor: Duration,
    /// How many recent samples per key are considered.
    pub recent: usize,
    /// Limits before anything is learned, per stage.
    pub defaults: HashMap<Stage, Duration>,
}

impl Default for LearningPolicy {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let defaults = HashMap::from([
            (Stage::Validation, minutes(5)),
            (Stage::Review, minutes(12 * 60)),
            (Stage::Reservation, minutes(10)),
            (Stage::Payment, minutes(20)),
            (Stage::Confirmation, minutes(10)),
            (Stage::Fulfillment, minutes(2 * 24 * 60)),
            (Stage::InTransit, minutes(7 * 24 * 60)),
            (Stage::Pickup, minutes(5 * 24 * 60)),
        ]);
        Self {
            quantile: 0.99,
            min_samples: 30,
            floor: Duration::from_secs(60),
            recent: 500,
            defaults,
        }
    }
}

/// The limit of one stage, channel and node, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub limit: Duration,
    /// Learned from `samples` durations (else the stage's default).
    pub learned: bool,
    pub samples: usize,
}

/// The limit for `stage` given recent durations (milliseconds, any order).
pub fn limit(stage: Stage, durations_ms: &[i64], policy: &LearningPolicy) -> Limit {
    let floor = policy.floor;
    if durations_ms.len() < policy.min_samples.max(1) {
        let default = policy
            .defaults
            .get(&stage)
            .copied()
            .unwrap_or(Duration::from_secs(3600));
        return Limit {
            limit: default.max(floor),
            learned: false,
            samples: durations_ms.len(),
        };
    }
    let mut sorted: Vec<i64> = durations_ms.iter().map(|d| (*d).max(0)).collect();
    sorted.sort_unstable();
    let rank = (policy.quantile.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    let at = sorted[rank.clamp(1, sorted.len()) - 1];
    Limit {
        limit: Duration::from_millis(at as u64).max(floor),
        learned: true,
        samples: sorted.len(),
    }
}

/// A learning key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StageKey {
    pub stage: Stage,
    pub channel: String,
    pub node: String,
}

/// Limits for every key with samples; [`Limits::get`] answers the default for the others.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    learned: HashMap<StageKey, Limit>,
    policy: LearningPolicy,
}

impl Limits {
    /// Learns from `samples` (key → recent durations).
    pub fn learn(samples: HashMap<StageKey, Vec<i64>>, policy: LearningPolicy) -> Self {
        let learned = samples
            .into_iter()
            .map(|(key, durations)| {
                let limit = limit(key.stage, &durations, &policy);
                (key, limit)
            })
            .collect();
        Self { learned, policy }
    }

    pub fn get(&self, key: &StageKey) -> Limit {
        self.learned
            .get(key)
            .copied()
            .unwrap_or_else(|| limit(key.stage, &[], &self.policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min_samples: usize, floor_ms: u64) -> LearningPolicy {
        LearningPolicy {
            min_samples,
            floor: Duration::from_millis(floor_ms),
            ..LearningPolicy::default()
        }
    }

    #[test]
    fn the_limit_is_the_p99_of_recent_durations_by_nearest_rank() {
        // 1..=100 seconds: the 99th of 100 sorted values is 99 s.
        let durations: Vec<i64> = (1..=100).rev().map(|s| s * 1000).collect();
        let learned = limit(Stage::Fulfillment, &durations, &policy(30, 1000));
        assert_eq!(learned.limit, Duration::from_secs(99));
        assert!(learned.learned);
        assert_eq!(learned.samples, 100);
        // With 10 samples the p99 is the largest.
        let few: Vec<i64> = (1..=10).map(|s| s * 1000).collect();
        assert_eq!(
            limit(Stage::Payment, &few, &policy(5, 0)).limit,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn too_few_samples_keep_the_stage_default() {
        let policy = policy(30, 1000);
        let learned = limit(Stage::Reservation, &[500; 29], &policy);
        assert!(!learned.learned);
        assert_eq!(learned.limit, Duration::from_secs(600));
        assert_eq!(learned.samples, 29);
    }

    #[test]
    fn no_limit_is_below_the_floor() {
        // Stages that are always instant would otherwise flag an order that takes 1 ms more.
        let learned = limit(Stage::Validation, &[3; 50], &policy(30, 60_000));
        assert_eq!(learned.limit, Duration::from_secs(60));
        assert!(learned.learned);
        let mut policy = policy(30, 60_000);
        policy
            .defaults
            .insert(Stage::Validation, Duration::from_secs(1));
        assert_eq!(
            limit(Stage::Validation, &[], &policy).limit,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn keys_are_learned_apart_and_unknown_keys_get_the_default() {
        let key = |node: &str| StageKey {
            stage: Stage::Fulfillment,
            channel: "web".into(),
            node: node.into(),
        };
        let limits = Limits::learn(
            HashMap::from([
                (key("wh-east"), vec![2_000; 40]),
                (key("store-9"), vec![90_000; 40]),
            ]),
            policy(30, 1000),
        );
        assert_eq!(limits.get(&key("wh-east")).limit, Duration::from_secs(2));
        assert_eq!(limits.get(&key("store-9")).limit, Duration::from_secs(90));
        let unknown = limits.get(&key("wh-west"));
        assert!(!unknown.learned);
        assert_eq!(unknown.limit, Duration::from_secs(2 * 24 * 3600));
    }

    #[test]
    fn negative_durations_from_clock_skew_count_as_zero() {
        let learned = limit(Stage::Payment, &[-5_000; 40], &policy(30, 10));
        assert_eq!(learned.limit, Duration::from_millis(10));
    }
}
