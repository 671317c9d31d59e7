//! How a polling worker paces itself while nothing is due. The work lists are polled (no
//! LISTEN/NOTIFY on CockroachDB), and every poll is a SERIALIZABLE transaction: idle loops
//! polling every 10–20 ms kept Postgres busy on a stack doing nothing (two checkout and two
//! fulfillment workers: about 290 transactions a second, a fifth of a core). After an empty
//! poll a loop waits its interval, after each further empty poll twice as long as before, up
//! to [`IDLE_CEILING`]; a poll that finds work resets it. A busy worker polls as before; an
//! order arriving at an idle one waits at most the ceiling before it is claimed.

use std::time::Duration;

/// The longest wait between two empty polls.
pub const IDLE_CEILING: Duration = Duration::from_millis(160);

/// One loop's pacing; see the module doc.
#[derive(Debug, Clone)]
pub struct IdleBackoff {
    interval: Duration,
    ceiling: Duration,
    empty: u32,
}

impl IdleBackoff {
    /// Waits of `interval` doubling up to [`IDLE_CEILING`] (or `interval`, if longer).
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            ceiling: IDLE_CEILING.max(interval),
            empty: 0,
        }
    }

    /// Records that a poll found `found` items; answers how long to wait before the next poll
    /// when the loop waits at all (the interval after work, longer after empty polls).
    pub fn after_poll(&mut self, found: usize) -> Duration {
        if found > 0 {
            self.empty = 0;
            return self.interval;
        }
        self.empty = (self.empty + 1).min(16);
        self.interval
            .saturating_mul(1 << (self.empty - 1))
            .min(self.ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_polls_double_the_wait_up_to_the_ceiling_and_work_resets_it() {
        let mut pace = IdleBackoff::new(Duration::from_millis(10));
        let waits: Vec<u64> = (0..8)
            .map(|_| pace.after_poll(0).as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 160, 160, 160]);
        assert_eq!(pace.after_poll(3), Duration::from_millis(10));
        assert_eq!(pace.after_poll(0), Duration::from_millis(10));
        assert_eq!(pace.after_poll(0), Duration::from_millis(20));
    }

    #[test]
    fn an_interval_longer_than_the_ceiling_is_kept() {
        let mut pace = IdleBackoff::new(Duration::from_millis(500));
        for _ in 0..20 {
            assert_eq!(pace.after_poll(0), Duration::from_millis(500));
        }
    }
}
