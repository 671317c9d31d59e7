//! Pure: what is wrong with an order right now, from its [`Watch`], the learned stage limits
//! and the deadline policy. Each condition has a stable key (the desk entry's dedupe key) and is
//! `due` when it belongs on the desk now; a condition that is no longer listed at all has gone
//! away, and the detector resolves its entry automatically. A stage that ran over stays one
//! condition while the order stays in that stage, whatever the limit learns meanwhile.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use waybill_write_side::desk::{Action, EntryKind};

use super::learning::{Limits, StageKey};
use super::watch::{Stage, Watch};

/// How early deadlines are raised.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadlinePolicy {
    /// An uncaptured authorization this close to expiring is raised.
    pub authorization_warn: Duration,
    /// A reservation this close to expiring (order not confirmed) is raised.
    pub reservation_warn: Duration,
    /// How long a review may wait (the checkout flow's review timeout).
    pub review_timeout: Duration,
    /// A review this close to its deadline is raised.
    pub review_warn: Duration,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        Self {
            authorization_warn: Duration::from_secs(24 * 3600),
            reservation_warn: Duration::from_secs(5 * 60),
            review_timeout: Duration::from_secs(24 * 3600),
            review_warn: Duration::from_secs(2 * 3600),
        }
    }
}

/// One thing wrong (or about to be) with an order.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub key: String,
    pub kind: EntryKind,
    /// On the desk now (else only watched).
    pub due: bool,
    pub reason: String,
    pub suggested: Action,
    pub details: Value,
}

/// `1d 2h`, `3h 5m`, `2m 10s`, `4.2s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=9 => format!("{:.1}s", d.as_secs_f64()),
        10..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn until(deadline: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (deadline - now).to_std().unwrap_or(Duration::ZERO)
}

fn within(deadline: DateTime<Utc>, now: DateTime<Utc>, warn: Duration) -> bool {
    until(deadline, now) <= warn
}

/// Every condition of `watch` at `now`.
pub fn conditions(
    watch: &Watch,
    limits: &Limits,
    deadlines: &DeadlinePolicy,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let order = &watch.order_id;
    let mut found = Vec::new();
    if watch.stage.is_timed() {
        let key = StageKey {
            stage: watch.stage,
            channel: watch.channel.clone(),
            node: watch.stage_node().to_owned(),
        };
        let limit = limits.get(&key);
        let elapsed = (now - watch.entered_at).to_std().unwrap_or(Duration::ZERO);
        let basis = if limit.learned {
            format!(
                "the p99 of the last {} orders on {}{}",
                limit.samples,
                key.channel,
                node_words(&key.node)
            )
        } else {
            format!(
                "the default until {} has enough history ({} orders so far)",
                key.channel, limit.samples
            )
        };
        found.push(Condition {
            key: format!(
                "stage_overdue:{order}:{}:{}",
                watch.stage.as_str(),
                watch.entered_version
            ),
            kind: EntryKind::StageOverdue,
            due: elapsed > limit.limit,
            reason: format!(
                "in {} for {}; this stage usually takes at most {} ({basis})",
                watch.stage.as_str().replace('_', " "),
                human(elapsed),
                human(limit.limit)
            ),
            suggested: match watch.stage {
                Stage::Fulfillment => Action::Reroute,
                _ => Action::ContactCustomer,
            },
            details: json!({
                "stage": watch.stage.as_str(),
                "channel": key.channel,
                "node": key.node,
                "entered_at": watch.entered_at,
                // Rounded up, so an overdue stage never shows as long as its limit.
                "elapsed_ms": u64::try_from(elapsed.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX),
                "limit_ms": limit.limit.as_millis() as u64,
                "learned": limit.learned,
                "samples": limit.samples,
            }),
        });
    }
    if watch.stage == Stage::Review {
        let deadline = watch.placed_at
            + chrono::Duration::from_std(deadlines.review_timeout).unwrap_or_default();
        found.push(Condition {
            key: format!("review_deadline:{order}:{}", watch.entered_version),
            kind: EntryKind::ReviewDeadline,
            due: within(deadline, now, deadlines.review_warn),
            reason: format!(
                "held for fraud review; the review times out (and the order is cancelled) in {}",
                human(until(deadline, now))
            ),
            suggested: EntryKind::ReviewDeadline.suggested(),
            details: json!({ "deadline": deadline }),
        });
    }
    if let Some(expires) = watch.authorization_expires_at {
        found.push(Condition {
            key: format!("authorization_expiring:{order}:{}", expires.timestamp()),
            kind: EntryKind::AuthorizationExpiring,
            due: within(expires, now, deadlines.authorization_warn),
            reason: format!(
                "the card authorization runs out in {} and nothing has been captured",
                human(until(expires, now))
            ),
            suggested: EntryKind::AuthorizationExpiring.suggested(),
            details: json!({ "expires_at": expires, "stage": watch.stage.as_str() }),
        });
    }
    if let Some(expires) = watch.reservation_expires_at {
        found.push(Condition {
            key: format!("reservation_expiring:{order}:{}", expires.timestamp()),
            kind: EntryKind::ReservationExpiring,
            due: within(expires, now, deadlines.reservation_warn),
            reason: format!(
                "the stock reservation runs out in {} and the order is not confirmed",
                human(until(expires, now))
            ),
            suggested: EntryKind::ReservationExpiring.suggested(),
            details: json!({ "expires_at": expires, "stage": watch.stage.as_str() }),
        });
    }
    for issue in &watch.carrier_exceptions {
        found.push(Condition {
            key: format!("carrier_exception:{order}:{}", issue.carrier_event_id),
            kind: EntryKind::CarrierException,
            due: true,
            reason: format!(
                "the carrier reported an exception on parcel {}: {}",
                issue.shipment_id, issue.detail
            ),
            suggested: EntryKind::CarrierException.suggested(),
            details: json!({ "shipment_id": issue.shipment_id, "carrier_event_id": issue.carrier_event_id, "at": issue.at }),
        });
    }
    for issue in &watch.failed_handoffs {
        found.push(Condition {
            key: format!("failed_handoff:{order}:{}", issue.carrier_event_id),
            kind: EntryKind::FailedHandoff,
            due: true,
            reason: format!(
                "the handoff of parcel {} to the carrier failed and the automatic retries gave up: {}",
                issue.shipment_id, issue.detail
            ),
            suggested: EntryKind::FailedHandoff.suggested(),
            details: json!({ "shipment_id": issue.shipment_id, "carrier_event_id": issue.carrier_event_id, "at": issue.at }),
        });
    }
    found
}

fn node_words(node: &str) -> String {
    if node == super::watch::NO_NODE {
        String::new()
    } else {
        format!(" at {node}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::TimeZone;

    use super::*;
    use crate::desk::learning::LearningPolicy;
    use crate::desk::watch::{ParcelIssue, NO_NODE};

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0)
            .single()
            .unwrap()
    }

    fn watch(stage: Stage) -> Watch {
        Watch {
            order_id: "0190".into(),
            version: 4,
            channel: "web".into(),
            placed_at: t(0),
            stage,
            entered_at: t(10),
            entered_version: 3,
            node: "wh-east".into(),
            authorization_expires_at: None,
            reservation_expires_at: None,
            carrier_exceptions: Vec::new(),
            failed_handoffs: Vec::new(),
            samples: Vec::new(),
            signals: Vec::new(),
        }
    }

    fn limits(stage: Stage, node: &str, durations: Vec<i64>) -> Limits {
        Limits::learn(
            HashMap::from([(
                StageKey {
                    stage,
                    channel: "web".into(),
                    node: node.into(),
                },
                durations,
            )]),
            LearningPolicy {
                min_samples: 3,
                floor: Duration::from_secs(1),
                ..LearningPolicy::default()
            },
        )
    }

    fn only(found: &[Condition], kind: EntryKind) -> &Condition {
        let matching: Vec<&Condition> = found.iter().filter(|c| c.kind == kind).collect();
        assert_eq!(matching.len(), 1, "{found:?}");
        matching[0]
    }

    #[test]
    fn a_stage_is_overdue_past_its_learned_limit_for_that_node() {
        let w = watch(Stage::Fulfillment);
        let limits = limits(Stage::Fulfillment, "wh-east", vec![20_000, 25_000, 30_000]);
        let before = conditions(&w, &limits, &DeadlinePolicy::default(), t(35));
        assert!(
            !only(&before, EntryKind::StageOverdue).due,
            "25 s in, limit 30 s"
        );
        let after = conditions(&w, &limits, &DeadlinePolicy::default(), t(41));
        let overdue = only(&after, EntryKind::StageOverdue);
        assert!(overdue.due);
        assert_eq!(overdue.key, "stage_overdue:0190:fulfillment:3");
        assert_eq!(overdue.suggested, Action::Reroute);
        assert_eq!(
            overdue.reason,
            "in fulfillment for 31s; this stage usually takes at most 30s \
             (the p99 of the last 3 orders on web at wh-east)"
        );
        assert_eq!(overdue.details["limit_ms"], 30_000);
    }

    #[test]
    fn an_overdue_stage_shows_more_time_spent_than_its_limit_even_within_a_millisecond() {
        let w = watch(Stage::Fulfillment);
        let limits = limits(Stage::Fulfillment, "wh-east", vec![20_000, 25_000, 30_000]);
        let now = t(40) + chrono::Duration::microseconds(300);
        let found = conditions(&w, &limits, &DeadlinePolicy::default(), now);
        let overdue = only(&found, EntryKind::StageOverdue);
        assert!(overdue.due, "30.0003 s in, limit 30 s");
        assert_eq!(overdue.details["limit_ms"], 30_000);
        assert_eq!(overdue.details["elapsed_ms"], 30_001);
    }

    #[test]
    fn another_node_is_judged_by_the_default_until_it_has_history() {
        let mut w = watch(Stage::Fulfillment);
        w.node = "store-9".into();
        let learned = limits(Stage::Fulfillment, "wh-east", vec![1_000; 3]);
        let found = conditions(&w, &learned, &DeadlinePolicy::default(), t(3600));
        assert!(!only(&found, EntryKind::StageOverdue).due);
        // A stage without a node ignores the node field.
        let paying = watch(Stage::Payment);
        assert_eq!(paying.node, "wh-east");
        let payment = limits(Stage::Payment, NO_NODE, vec![1_000; 3]);
        let found = conditions(&paying, &payment, &DeadlinePolicy::default(), t(13));
        assert!(only(&found, EntryKind::StageOverdue).due);
    }

    #[test]
    fn deadlines_are_raised_inside_their_warning_window() {
        let mut w = watch(Stage::Confirmation);
        w.authorization_expires_at = Some(t(10 + 23 * 3600));
        w.reservation_expires_at = Some(t(10 + 600));
        let policy = DeadlinePolicy::default();
        let found = conditions(&w, &Limits::default(), &policy, t(10));
        assert!(
            only(&found, EntryKind::AuthorizationExpiring).due,
            "23 h < 24 h"
        );
        assert!(
            !only(&found, EntryKind::ReservationExpiring).due,
            "10 min > 5 min"
        );
        let later = conditions(&w, &Limits::default(), &policy, t(10 + 301));
        let reservation = only(&later, EntryKind::ReservationExpiring);
        assert!(reservation.due);
        assert_eq!(
            reservation.reason,
            "the stock reservation runs out in 4m 59s and the order is not confirmed"
        );
    }

    #[test]
    fn a_review_nears_its_deadline_from_the_placement() {
        let w = watch(Stage::Review);
        let policy = DeadlinePolicy {
            review_timeout: Duration::from_secs(3600),
            review_warn: Duration::from_secs(600),
            ..DeadlinePolicy::default()
        };
        assert!(
            !only(
                &conditions(&w, &Limits::default(), &policy, t(2999)),
                EntryKind::ReviewDeadline
            )
            .due
        );
        assert!(
            only(
                &conditions(&w, &Limits::default(), &policy, t(3000)),
                EntryKind::ReviewDeadline
            )
            .due
        );
    }

    #[test]
    fn parcel_problems_are_due_at_once_and_keyed_by_the_carrier_event() {
        let mut w = watch(Stage::InTransit);
        w.carrier_exceptions.push(ParcelIssue {
            shipment_id: "shp_1".into(),
            carrier_event_id: "ce_9".into(),
            detail: "address not found".into(),
            at: t(20),
        });
        w.failed_handoffs.push(ParcelIssue {
            shipment_id: "shp_2".into(),
            carrier_event_id: "ce_10".into(),
            detail: "no pickup after 3 tries".into(),
            at: t(20),
        });
        let found = conditions(&w, &Limits::default(), &DeadlinePolicy::default(), t(21));
        let exception = only(&found, EntryKind::CarrierException);
        assert!(exception.due);
        assert_eq!(exception.key, "carrier_exception:0190:ce_9");
        assert_eq!(
            only(&found, EntryKind::FailedHandoff).suggested,
            Action::RetryHandoff
        );
    }

    #[test]
    fn a_delivered_or_ended_order_has_no_stage_condition() {
        for stage in [Stage::Delivered, Stage::Ended] {
            let found = conditions(
                &watch(stage),
                &Limits::default(),
                &DeadlinePolicy::default(),
                t(1_000_000),
            );
            assert!(found.is_empty(), "{stage:?}: {found:?}");
        }
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_millis(4_200)), "4.2s");
        assert_eq!(human(Duration::from_secs(130)), "2m 10s");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 300)), "3h 5m");
        assert_eq!(human(Duration::from_secs(26 * 3600)), "1d 2h");
    }
}
