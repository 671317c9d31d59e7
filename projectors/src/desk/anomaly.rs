//! Pure: per channel, whether confirmations dropped or declines or fraud holds spiked. Signals
//! are counted in fixed windows; the newest windows are compared with the mean of the
//! `baseline_windows` before them:
//! - a spike (declines, fraud holds) is judged on the window in progress, so it is raised while
//!   it happens: at least `spike_min` events and at least `spike_factor` × the baseline (a
//!   baseline under 1 counts as 1);
//! - a drop (confirmations) is judged on the last complete window, since the window in
//!   progress always looks low: a baseline of at least `drop_min_baseline` and the window at
//!   most `drop_ratio` × the baseline.

use std::time::Duration;

use super::watch::SignalKind;

/// Thresholds of the detector.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyPolicy {
    pub window: Duration,
    pub baseline_windows: usize,
    pub spike_factor: f64,
    pub spike_min: u64,
    pub drop_ratio: f64,
    pub drop_min_baseline: f64,
}

impl Default for AnomalyPolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            baseline_windows: 12,
            spike_factor: 3.0,
            spike_min: 5,
            drop_ratio: 0.3,
            drop_min_baseline: 10.0,
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    ConfirmationDrop,
    DeclineSpike,
    FraudHoldSpike,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfirmationDrop => "confirmation_drop",
            Self::DeclineSpike => "decline_spike",
            Self::FraudHoldSpike => "fraud_hold_spike",
        }
    }

    /// The anomaly a signal can show.
    pub fn of(signal: SignalKind) -> Self {
        match signal {
            SignalKind::Confirmation => Self::ConfirmationDrop,
            SignalKind::Decline => Self::DeclineSpike,
            SignalKind::FraudHold => Self::FraudHoldSpike,
        }
    }
}

/// A detected anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// The judged window's count.
    pub count: u64,
    /// Mean count of the windows before it.
    pub baseline: f64,
    /// How many windows before the newest the judged window is (0: in progress, 1: the last
    /// complete one).
    pub windows_ago: usize,
}

impl Anomaly {
    /// In words, for the desk entry.
    pub fn reason(&self, channel: &str, window: Duration) -> String {
        let minutes = window.as_secs_f64() / 60.0;
        match self.kind {
            AnomalyKind::ConfirmationDrop => format!(
                "confirmations on {channel} dropped to {} in {minutes:.1} min against {:.1} per window before",
                self.count, self.baseline
            ),
            AnomalyKind::DeclineSpike => format!(
                "{} payment declines on {channel} in the current {minutes:.1} min window against {:.1} per window before",
                self.count, self.baseline
            ),
            AnomalyKind::FraudHoldSpike => format!(
                "{} fraud holds on {channel} in the current {minutes:.1} min window against {:.1} per window before",
                self.count, self.baseline
            ),
        }
    }
}

fn mean(counts: &[u64]) -> f64 {
    if counts.is_empty() {
        0.0
    } else {
        counts.iter().sum::<u64>() as f64 / counts.len() as f64
    }
}

/// Judges one channel's `signal` counts, oldest window first and the window in progress last.
pub fn detect(signal: SignalKind, counts: &[u64], policy: &AnomalyPolicy) -> Option<Anomaly> {
    let kind = AnomalyKind::of(signal);
    let windows_ago = match kind {
        AnomalyKind::ConfirmationDrop => 1,
        _ => 0,
    };
    let judged_at = counts.len().checked_sub(1 + windows_ago)?;
    let count = counts[judged_at];
    let baseline = mean(&counts[judged_at.saturating_sub(policy.baseline_windows)..judged_at]);
    let anomalous = match kind {
        AnomalyKind::ConfirmationDrop => {
            judged_at > 0
                && baseline >= policy.drop_min_baseline
                && (count as f64) <= policy.drop_ratio * baseline
        }
        _ => count >= policy.spike_min && count as f64 >= policy.spike_factor * baseline.max(1.0),
    };
    anomalous.then_some(Anomaly {
        kind,
        count,
        baseline,
        windows_ago,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AnomalyPolicy {
        AnomalyPolicy {
            baseline_windows: 4,
            ..AnomalyPolicy::default()
        }
    }

    #[test]
    fn a_burst_of_declines_over_a_quiet_baseline_is_a_spike() {
        let spike = detect(SignalKind::Decline, &[0, 1, 0, 1, 6], &policy()).expect("spike");
        assert_eq!(spike.kind, AnomalyKind::DeclineSpike);
        assert_eq!(spike.count, 6);
        assert_eq!(spike.baseline, 0.5);
        assert_eq!(spike.windows_ago, 0);
    }

    #[test]
    fn declines_at_their_usual_rate_or_too_few_to_matter_are_no_spike() {
        // Busy channel: 20 per window is normal, 40 is not 3 times that.
        assert_eq!(
            detect(SignalKind::Decline, &[20, 22, 18, 20, 40], &policy()),
            None
        );
        // Quiet channel: 4 declines are fewer than spike_min.
        assert_eq!(
            detect(SignalKind::Decline, &[0, 0, 0, 0, 4], &policy()),
            None
        );
        // 60 against 20 is.
        assert!(detect(SignalKind::Decline, &[20, 22, 18, 20, 60], &policy()).is_some());
    }

    #[test]
    fn fraud_holds_spike_like_declines() {
        let spike = detect(SignalKind::FraudHold, &[1, 1, 1, 1, 5], &policy()).expect("spike");
        assert_eq!(spike.kind, AnomalyKind::FraudHoldSpike);
    }

    #[test]
    fn a_drop_in_confirmations_is_judged_on_the_last_complete_window() {
        // The window in progress (last, 0) is ignored; the complete one before it (2) is judged.
        let drop =
            detect(SignalKind::Confirmation, &[30, 28, 32, 30, 2, 0], &policy()).expect("drop");
        assert_eq!(drop.kind, AnomalyKind::ConfirmationDrop);
        assert_eq!(drop.count, 2);
        assert_eq!(drop.baseline, 30.0);
        assert_eq!(drop.windows_ago, 1);
        // An ordinary window followed by a window just begun is no drop.
        assert_eq!(
            detect(
                SignalKind::Confirmation,
                &[30, 28, 32, 30, 29, 0],
                &policy()
            ),
            None
        );
    }

    #[test]
    fn a_channel_too_quiet_to_judge_never_drops() {
        assert_eq!(
            detect(SignalKind::Confirmation, &[3, 2, 4, 3, 0, 0], &policy()),
            None
        );
        assert_eq!(detect(SignalKind::Confirmation, &[0], &policy()), None);
        assert_eq!(detect(SignalKind::Decline, &[], &policy()), None);
    }
}
