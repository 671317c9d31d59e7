//! Stall detection: how long a view has gone without applying anything while it has work.
//!
//! `waybill_projector_stall_seconds{view}` is the time since the view last settled a batch, or
//! 0 while it has no backlog (nothing pending at the server, nothing delivered and unsettled,
//! nothing in hand). The backlog is read from the consumer's info by the watchdog itself, so a
//! runtime that hangs anywhere (a pull that never ends, a store call that never returns, a
//! retry back-off) still shows as stalled. `waybill_projector_stall_longest_seconds{view}` is
//! the longest stall since the process started, and every stall longer than the configured
//! threshold is logged at WARN with what the runtime was doing, once when it crosses the
//! threshold and once when the view applies again (`waybill_projector_stalls_total{view}`).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;

/// What the runtime is doing; named in the stall warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Waiting for the consumer to deliver messages.
    Waiting = 0,
    /// Loading, applying and writing a batch.
    Processing = 1,
    /// The view's store or the event store failed; retrying after a back-off.
    StoreBackoff = 2,
    /// The pull subscription failed; retrying after a back-off.
    FetchBackoff = 3,
    /// Waiting for the view's durable commit before acknowledging.
    Committing = 4,
    /// Between batches, the view switching its store (a rebuilt generation adopted).
    Switching = 5,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Processing,
            2 => Self::StoreBackoff,
            3 => Self::FetchBackoff,
            4 => Self::Committing,
            5 => Self::Switching,
            _ => Self::Waiting,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Waiting => "waiting for messages",
            Self::Processing => "processing a batch",
            Self::StoreBackoff => "retrying an unavailable store",
            Self::FetchBackoff => "retrying the pull subscription",
            Self::Committing => "committing",
            Self::Switching => "switching to a rebuilt store",
        }
    }
}

/// Shared between the runtime (which reports progress) and its watchdog.
#[derive(Debug)]
pub struct StallClock {
    started: Instant,
    /// Milliseconds since `started` at the last settled batch or empty backlog.
    progress_ms: AtomicU64,
    /// Messages the runtime holds (received, not yet settled).
    in_hand: AtomicU64,
    phase: AtomicU8,
}

impl Default for StallClock {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            progress_ms: AtomicU64::new(0),
            in_hand: AtomicU64::new(0),
            phase: AtomicU8::new(Phase::Waiting as u8),
        }
    }
}

impl StallClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The view applied (or settled) messages just now.
    pub fn progressed(&self) {
        self.progress_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    pub fn hold(&self, messages: usize) {
        self.in_hand.fetch_add(messages as u64, Ordering::Relaxed);
    }

    pub fn release(&self, messages: usize) {
        let _ = self
            .in_hand
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                Some(held.saturating_sub(messages as u64))
            });
    }

    pub fn in_hand(&self) -> u64 {
        self.in_hand.load(Ordering::Relaxed)
    }

    /// The stall given the server-side backlog (`pending + unacknowledged`): zero, and the
    /// clock reset, when there is no work at all.
    pub fn observe(&self, server_backlog: u64) -> Duration {
        if server_backlog == 0 && self.in_hand() == 0 {
            self.progressed();
            return Duration::ZERO;
        }
        let since = self.progress_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(since))
    }
}

/// Polls the consumer every `every` and keeps the stall gauges and warnings of `view` current.
pub(crate) async fn watch(
    consumer: PullConsumer,
    view: String,
    clock: Arc<StallClock>,
    every: Duration,
    warn_after: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut longest = Duration::ZERO;
    let mut warned: Option<Duration> = None;
    let mut backlog = 0u64;
    loop {
        tick.tick().await;
        match consumer.get_info().await {
            Ok(info) => backlog = info.num_pending + info.num_ack_pending as u64,
            // Keep the last known backlog: a server we cannot ask is no reason to call the
            // view idle.
            Err(err) => tracing::debug!(view, error = %err, "consumer backlog not read"),
        }
        let stall = clock.observe(backlog);
        metrics::gauge!("waybill_projector_stall_seconds", "view" => view.clone())
            .set(stall.as_secs_f64());
        if stall > longest {
            longest = stall;
            metrics::gauge!("waybill_projector_stall_longest_seconds", "view" => view.clone())
                .set(longest.as_secs_f64());
        }
        match warned {
            None if stall >= warn_after => {
                warned = Some(stall);
                metrics::counter!("waybill_projector_stalls_total", "view" => view.clone())
                    .increment(1);
                tracing::warn!(
                    view,
                    stalled_ms = stall.as_millis() as u64,
                    backlog,
                    in_hand = clock.in_hand(),
                    doing = clock.phase().name(),
                    "view stalled: nothing applied while messages wait"
                );
            }
            Some(longest_seen) if stall < longest_seen => {
                tracing::warn!(
                    view,
                    stalled_ms = longest_seen.as_millis() as u64,
                    "view applying again after a stall"
                );
                warned = None;
            }
            Some(_) => warned = Some(stall),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_view_is_not_stalled_and_its_clock_restarts() {
        let clock = StallClock::default();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(clock.observe(0), Duration::ZERO);
        // Work appears: the stall counts from when the view was last seen idle.
        std::thread::sleep(Duration::from_millis(30));
        let stall = clock.observe(3);
        assert!(stall >= Duration::from_millis(30), "{stall:?}");
        assert!(stall < Duration::from_millis(1_000), "{stall:?}");
    }

    #[test]
    fn messages_in_hand_are_backlog_even_when_the_server_has_none() {
        let clock = StallClock::default();
        clock.hold(2);
        std::thread::sleep(Duration::from_millis(20));
        assert!(clock.observe(0) >= Duration::from_millis(20));
        clock.release(2);
        clock.progressed();
        assert_eq!(clock.observe(0), Duration::ZERO);
    }
}
