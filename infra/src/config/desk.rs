//! The exceptions desk's detector and the operations sampler (`projectors/src/desk/`), which
//! run with the `desk` view of `serve projector`.

use std::time::Duration;

use clap::Args;
use waybill_projectors::desk::anomaly::AnomalyPolicy;
use waybill_projectors::desk::conditions::DeadlinePolicy;
use waybill_projectors::desk::learning::LearningPolicy;
use waybill_projectors::desk::ops::OpsConfig;
use waybill_projectors::desk::DeskConfig;

#[derive(Debug, Clone, Args)]
pub struct DeskSettings {
    /// How often the desk looks for stuck and at-risk orders, dead letters and anomalies (ms).
    #[arg(
        long,
        env = "WAYBILL_DESK_TICK_MS",
        global = true,
        default_value_t = 5_000
    )]
    pub desk_tick_ms: u64,
    /// Finished orders a stage needs (per channel and node) before its limit is learned.
    #[arg(
        long,
        env = "WAYBILL_DESK_MIN_SAMPLES",
        global = true,
        default_value_t = 30
    )]
    pub desk_min_samples: usize,
    /// The quantile of recent stage durations that is the limit.
    #[arg(
        long,
        env = "WAYBILL_DESK_QUANTILE",
        global = true,
        default_value_t = 0.99
    )]
    pub desk_quantile: f64,
    /// No stage limit is shorter than this (ms).
    #[arg(
        long,
        env = "WAYBILL_DESK_FLOOR_MS",
        global = true,
        default_value_t = 60_000
    )]
    pub desk_floor_ms: u64,
    /// Replaces every stage's limit before it is learned (ms); unset: per-stage defaults
    /// (validation 5 min, review 12 h, reservation 10 min, payment 20 min, confirmation
    /// 10 min, fulfillment 2 days, in transit 7 days, pickup 5 days).
    #[arg(long, env = "WAYBILL_DESK_DEFAULT_LIMIT_MS", global = true)]
    pub desk_default_limit_ms: Option<u64>,
    /// An uncaptured authorization this close to expiring goes on the desk (seconds).
    #[arg(
        long,
        env = "WAYBILL_DESK_AUTHORIZATION_WARN_SECS",
        global = true,
        default_value_t = 86_400
    )]
    pub desk_authorization_warn_secs: u64,
    /// An unconfirmed order's reservation this close to expiring goes on the desk (seconds).
    #[arg(
        long,
        env = "WAYBILL_DESK_RESERVATION_WARN_SECS",
        global = true,
        default_value_t = 300
    )]
    pub desk_reservation_warn_secs: u64,
    /// A review this close to its deadline (WAYBILL_REVIEW_TIMEOUT_SECS) goes on the desk.
    #[arg(
        long,
        env = "WAYBILL_DESK_REVIEW_WARN_SECS",
        global = true,
        default_value_t = 7_200
    )]
    pub desk_review_warn_secs: u64,
    /// The anomaly detector's counting window (seconds).
    #[arg(
        long,
        env = "WAYBILL_DESK_ANOMALY_WINDOW_SECS",
        global = true,
        default_value_t = 300
    )]
    pub desk_anomaly_window_secs: u64,
    /// Windows before the judged one that make its baseline.
    #[arg(
        long,
        env = "WAYBILL_DESK_ANOMALY_BASELINE_WINDOWS",
        global = true,
        default_value_t = 12
    )]
    pub desk_anomaly_baseline_windows: usize,
    /// Fewest declines or fraud holds in a window that can be a spike.
    #[arg(
        long,
        env = "WAYBILL_DESK_SPIKE_MIN",
        global = true,
        default_value_t = 5
    )]
    pub desk_spike_min: u64,
    /// A spike is at least this many times the baseline.
    #[arg(
        long,
        env = "WAYBILL_DESK_SPIKE_FACTOR",
        global = true,
        default_value_t = 3.0
    )]
    pub desk_spike_factor: f64,
    /// Confirmations at most this fraction of the baseline are a drop.
    #[arg(
        long,
        env = "WAYBILL_DESK_DROP_RATIO",
        global = true,
        default_value_t = 0.3
    )]
    pub desk_drop_ratio: f64,
    /// A drop needs a baseline of at least this many confirmations per window.
    #[arg(
        long,
        env = "WAYBILL_DESK_DROP_MIN_BASELINE",
        global = true,
        default_value_t = 10.0
    )]
    pub desk_drop_min_baseline: f64,
    /// How often the operations page's samples are taken (ms).
    #[arg(
        long,
        env = "WAYBILL_OPS_SAMPLE_MS",
        global = true,
        default_value_t = 15_000
    )]
    pub ops_sample_ms: u64,
}

impl DeskSettings {
    /// The detector's configuration; `review_timeout` is the checkout flow's.
    pub fn config(&self, stream_name: &str, review_timeout: Duration) -> DeskConfig {
        let mut learning = LearningPolicy {
            quantile: self.desk_quantile,
            min_samples: self.desk_min_samples,
            floor: Duration::from_millis(self.desk_floor_ms),
            ..LearningPolicy::default()
        };
        if let Some(ms) = self.desk_default_limit_ms {
            for limit in learning.defaults.values_mut() {
                *limit = Duration::from_millis(ms);
            }
        }
        DeskConfig {
            tick: Duration::from_millis(self.desk_tick_ms.max(100)),
            learning,
            deadlines: DeadlinePolicy {
                authorization_warn: Duration::from_secs(self.desk_authorization_warn_secs),
                reservation_warn: Duration::from_secs(self.desk_reservation_warn_secs),
                review_timeout,
                review_warn: Duration::from_secs(self.desk_review_warn_secs),
            },
            anomaly: AnomalyPolicy {
                window: Duration::from_secs(self.desk_anomaly_window_secs.max(1)),
                baseline_windows: self.desk_anomaly_baseline_windows,
                spike_factor: self.desk_spike_factor,
                spike_min: self.desk_spike_min,
                drop_ratio: self.desk_drop_ratio,
                drop_min_baseline: self.desk_drop_min_baseline,
            },
            stream_name: stream_name.to_owned(),
            ..DeskConfig::default()
        }
    }

    pub fn ops(&self, stream_name: &str) -> OpsConfig {
        OpsConfig {
            interval: Duration::from_millis(self.ops_sample_ms.max(100)),
            stream_name: stream_name.to_owned(),
            ..OpsConfig::default()
        }
    }
}
