//! How a polling worker paces itself while nothing is due. The work lists are polled (no
//! LISTEN/NOTIFY on CockroachDB), and every poll is a SERIALIZABLE transaction: idle loops
//! polling every 10–40 ms kept Postgres busy on a stack doing nothing (two checkout and two
//! fulfillment workers: about 290 transactions a second).
//!
//! For the first [`IDLE_AFTER`] of empty polls a loop keeps its working pace (its interval,
//! doubling up to its `warm` most), since under load work arrives in waves with short gaps and
//! a slower poll there only adds latency. Once it has found nothing for that long the waits
//! keep doubling up to [`IDLE_CEILING`]. A poll that finds work resets it. An order arriving
//! at a worker idle for a while waits at most the ceiling before it is claimed.

use std::time::{Duration, Instant};

/// Empty polls for this long make a loop idle.
pub const IDLE_AFTER: Duration = Duration::from_secs(1);

/// The longest wait between two empty polls of an idle loop.
pub const IDLE_CEILING: Duration = Duration::from_millis(160);

/// One loop's pacing; see the module doc.
#[derive(Debug, Clone)]
pub struct IdleBackoff {
    interval: Duration,
    warm: Duration,
    empty: u32,
    empty_since: Option<Instant>,
}

impl IdleBackoff {
    /// Waits of `interval` doubling up to `warm` while the loop is working, then up to
    /// [`IDLE_CEILING`] (or `warm`, if longer) once it is idle.
    pub fn new(interval: Duration, warm: Duration) -> Self {
        Self {
            interval,
            warm: warm.max(interval),
            empty: 0,
            empty_since: None,
        }
    }

    /// Records that a poll found `found` items at `now`; answers how long to wait before the
    /// next poll when the loop waits at all (the interval after work, longer after empty polls).
    pub fn after_poll(&mut self, found: usize, now: Instant) -> Duration {
        if found > 0 {
            self.empty = 0;
            self.empty_since = None;
            return self.interval;
        }
        let since = *self.empty_since.get_or_insert(now);
        self.empty = (self.empty + 1).min(16);
        let most = if now.duration_since(since) >= IDLE_AFTER {
            IDLE_CEILING.max(self.warm)
        } else {
            self.warm
        };
        self.interval
            .saturating_mul(1 << (self.empty - 1))
            .min(most)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    #[test]
    fn a_working_loop_keeps_its_pace_and_an_idle_one_slows_down_to_the_ceiling() {
        let start = Instant::now();
        let mut pace = IdleBackoff::new(Duration::from_millis(10), Duration::from_millis(40));
        // Within the first second of empty polls: 10, 20, 40, then 40.
        let warm: Vec<u64> = (0..6)
            .map(|i| ms(pace.after_poll(0, start + Duration::from_millis(i * 40))))
            .collect();
        assert_eq!(warm, [10, 20, 40, 40, 40, 40]);
        // Idle for a second: doubling resumes up to the ceiling.
        let idle: Vec<u64> = (0..4)
            .map(|i| ms(pace.after_poll(0, start + IDLE_AFTER + Duration::from_millis(i * 160))))
            .collect();
        assert_eq!(idle, [160, 160, 160, 160]);
        // Work resets it to the working pace.
        let later = start + Duration::from_secs(5);
        assert_eq!(ms(pace.after_poll(3, later)), 10);
        assert_eq!(ms(pace.after_poll(0, later)), 10);
        assert_eq!(ms(pace.after_poll(0, later)), 20);
    }

    #[test]
    fn a_fixed_working_pace_stays_fixed_until_the_loop_is_idle() {
        let start = Instant::now();
        let mut pace = IdleBackoff::new(Duration::from_millis(20), Duration::from_millis(20));
        for i in 0..40 {
            assert_eq!(
                ms(pace.after_poll(0, start + Duration::from_millis(i * 20))),
                20
            );
        }
        let idle: Vec<u64> = (0..5)
            .map(|i| ms(pace.after_poll(0, start + IDLE_AFTER + Duration::from_millis(i))))
            .collect();
        assert_eq!(
            idle,
            [160, 160, 160, 160, 160],
            "doubling from the count reached"
        );
    }

    #[test]
    fn a_pace_slower_than_the_ceiling_is_kept() {
        let start = Instant::now();
        let mut pace = IdleBackoff::new(Duration::from_millis(500), Duration::from_millis(500));
        for i in 0..20 {
            assert_eq!(ms(pace.after_poll(0, start + Duration::from_secs(i))), 500);
        }
    }
}
