//! The pure part of a delivery round: which events go out now and in what order, and what the
//! answers mean for the subscription's retries and dead letters. No I/O; time comes in as data.
//!
//! The invariant, for one subscription: an order's events reach the receiver in feed order. An
//! event that failed is held back (a retry) with every later event of its order behind it; a
//! held event is only ever attempted when it is the order's first held event and due; after the
//! attempts run out it becomes a dead letter and the order's next event moves up.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// How often and how long one event is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts of one event before it becomes a dead letter.
    pub max_attempts: i32,
    /// Wait after the first failure; doubles with every further one.
    pub base: Duration,
    /// Longest wait between attempts (and between rounds of a subscription whose receiver
    /// answers nothing).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 12 attempts, 1 s doubling to 5 min: about 25 minutes before an event is given up on.
    fn default() -> Self {
        Self {
            max_attempts: 12,
            base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`-th failure (1-based), with `jitter` in `[0, 1)` taking up
    /// to half of it away so that many held events do not come due at one instant.
    pub fn backoff(&self, failures: i32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).clamp(0, 30) as u32;
        let ceiling = self
            .base
            .saturating_mul(1u32 << doublings.min(20))
            .min(self.max_backoff);
        ceiling.mul_f64(1.0 - 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// An event held back for the subscription (a `webhook_retries` row).
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub position: i64,
    pub stream_id: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// Set when it is a dead letter sent again on request.
    pub dead_letter_id: Option<Uuid>,
}

/// One event to try, in its order's lane.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A held event (attempts so far in it).
    Held(Held),
    /// A new event from the feed: (position, stream id).
    New(i64, String),
}

impl Item {
    pub fn position(&self) -> i64 {
        match self {
            Item::Held(h) => h.position,
            Item::New(p, _) => *p,
        }
    }
    fn stream_id(&self) -> &str {
        match self {
            Item::Held(h) => &h.stream_id,
            Item::New(_, s) => s,
        }
    }
}

/// What a round does: lanes to deliver (one per order, items in order) and new events that
/// wait behind an order's held event that is not due yet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub lanes: Vec<Vec<Item>>,
    /// New events parked behind a held event that is not due: (position, stream id, due at).
    pub parked: Vec<(i64, String, DateTime<Utc>)>,
}

/// Plans a round from the subscription's held events and the new events read from the feed
/// (each in feed order).
pub fn plan(held: Vec<Held>, new: Vec<(i64, String)>, now: DateTime<Utc>) -> Plan {
    let mut by_stream: BTreeMap<String, Vec<Item>> = BTreeMap::new();
    let mut first_held: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut held = held;
    held.sort_by_key(|h| h.position);
    for h in held {
        first_held
            .entry(h.stream_id.clone())
            .or_insert(h.next_attempt_at);
        by_stream
            .entry(h.stream_id.clone())
            .or_default()
            .push(Item::Held(h));
    }
    let already: std::collections::HashSet<i64> =
        by_stream.values().flatten().map(Item::position).collect();
    let mut parked = Vec::new();
    // A position read again after a round that stopped early may be held already.
    for (position, stream_id) in new.into_iter().filter(|(p, _)| !already.contains(p)) {
        match first_held.get(&stream_id) {
            Some(due) if *due > now => parked.push((position, stream_id, *due)),
            _ => by_stream
                .entry(stream_id.clone())
                .or_default()
                .push(Item::New(position, stream_id)),
        }
    }
    let lanes = by_stream
        .into_iter()
        .filter(|(stream, _)| first_held.get(stream).is_none_or(|due| *due <= now))
        .map(|(_, items)| items)
        .collect();
    Plan { lanes, parked }
}

/// How one lane went.
#[derive(Debug, Clone, PartialEq)]
pub enum LaneResult {
    /// Never attempted (the round stopped early: the receiver looked down).
    Skipped(Vec<Item>),
    /// `delivered` went through in order; then `failed` failed (with the error) and `rest`
    /// were not tried.
    Ran {
        delivered: Vec<Item>,
        failed: Option<(Item, String)>,
        rest: Vec<Item>,
    },
}

/// What the round writes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Held events delivered: their rows go (and their dead letters, if any, are marked
    /// redelivered).
    pub delivered_held: Vec<Held>,
    pub delivered: i64,
    pub failed: i64,
    /// Rows to insert or update in `webhook_retries`.
    pub hold: Vec<HoldRow>,
    /// Events given up on.
    pub dead: Vec<DeadRow>,
    /// New feed positions that were not looked at: the subscription's position may not pass
    /// the first of them.
    pub unread_from: Option<i64>,
}

/// A `webhook_retries` row to write.
#[derive(Debug, Clone, PartialEq)]
pub struct HoldRow {
    pub position: i64,
    pub stream_id: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub dead_letter_id: Option<Uuid>,
}

/// An event given up on.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadRow {
    pub position: i64,
    pub stream_id: String,
    pub attempts: i32,
    pub last_error: String,
    /// The dead letter it was redelivered from (updated instead of a new one).
    pub dead_letter_id: Option<Uuid>,
}

/// Turns the lanes' results into writes. `jitter` gives one value in `[0, 1)` per call.
pub fn settle(
    plan_parked: Vec<(i64, String, DateTime<Utc>)>,
    results: Vec<LaneResult>,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
    mut jitter: impl FnMut() -> f64,
) -> Outcome {
    let mut out = Outcome::default();
    for (position, stream_id, due) in plan_parked {
        out.hold.push(HoldRow {
            position,
            stream_id,
            attempts: 0,
            next_attempt_at: due,
            last_error: None,
            dead_letter_id: None,
        });
    }
    for result in results {
        match result {
            LaneResult::Skipped(items) => {
                for item in items {
                    if let Item::New(position, _) = item {
                        out.unread_from =
                            Some(out.unread_from.map_or(position, |p| p.min(position)));
                    }
                }
            }
            LaneResult::Ran {
                delivered,
                failed,
                rest,
            } => {
                out.delivered += delivered.len() as i64;
                out.delivered_held
                    .extend(delivered.into_iter().filter_map(|i| match i {
                        Item::Held(h) => Some(h),
                        Item::New(..) => None,
                    }));
                let Some((item, error)) = failed else {
                    // Stopped before these (the round ran out of time): new ones are read
                    // again next round.
                    for item in rest {
                        if let Item::New(position, _) = item {
                            out.unread_from =
                                Some(out.unread_from.map_or(position, |p| p.min(position)));
                        }
                    }
                    continue;
                };
                out.failed += 1;
                let (attempts, dead_letter_id) = match &item {
                    Item::Held(h) => (h.attempts + 1, h.dead_letter_id),
                    Item::New(..) => (1, None),
                };
                let stream_id = item.stream_id().to_owned();
                let next = if attempts >= policy.max_attempts {
                    out.dead.push(DeadRow {
                        position: item.position(),
                        stream_id: stream_id.clone(),
                        attempts,
                        last_error: error,
                        dead_letter_id,
                    });
                    now
                } else {
                    let wait = policy.backoff(attempts, jitter());
                    let next = now + chrono::Duration::from_std(wait).unwrap_or_default();
                    out.hold.push(HoldRow {
                        position: item.position(),
                        stream_id: stream_id.clone(),
                        attempts,
                        next_attempt_at: next,
                        last_error: Some(error),
                        dead_letter_id,
                    });
                    next
                };
                for item in rest {
                    match item {
                        // Already held: its row stays as it is.
                        Item::Held(_) => {}
                        Item::New(position, stream_id) => out.hold.push(HoldRow {
                            position,
                            stream_id,
                            attempts: 0,
                            next_attempt_at: next,
                            last_error: None,
                            dead_letter_id: None,
                        }),
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn held(position: i64, stream: &str, due: i64) -> Held {
        Held {
            position,
            stream_id: stream.into(),
            attempts: 1,
            next_attempt_at: t(due),
            dead_letter_id: None,
        }
    }

    #[test]
    fn an_order_with_a_held_event_not_due_parks_its_new_events_and_others_go() {
        let plan = plan(
            vec![held(3, "a", 10)],
            vec![(5, "a".into()), (6, "b".into()), (7, "a".into())],
            t(0),
        );
        assert_eq!(plan.lanes, vec![vec![Item::New(6, "b".into())]]);
        assert_eq!(
            plan.parked,
            vec![(5, "a".into(), t(10)), (7, "a".into(), t(10))]
        );
    }

    #[test]
    fn a_due_held_event_goes_first_with_its_orders_new_events_behind() {
        let plan = plan(
            vec![held(4, "a", 0), held(3, "a", 0)],
            vec![(9, "a".into())],
            t(0),
        );
        assert_eq!(plan.lanes.len(), 1);
        let positions: Vec<i64> = plan.lanes[0].iter().map(Item::position).collect();
        assert_eq!(positions, vec![3, 4, 9]);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_jitter_only_shortens() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        };
        assert_eq!(p.backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(p.backoff(3, 0.0), Duration::from_secs(4));
        assert_eq!(p.backoff(30, 0.0), Duration::from_secs(10));
        assert_eq!(p.backoff(3, 0.999_999).as_millis(), 2_000);
    }

    #[test]
    fn a_failure_holds_the_event_and_the_rest_of_its_order_and_the_last_attempt_dead_letters() {
        let policy = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let out = settle(
            vec![],
            vec![
                LaneResult::Ran {
                    delivered: vec![Item::New(1, "a".into())],
                    failed: Some((Item::New(2, "a".into()), "500".into())),
                    rest: vec![Item::New(5, "a".into())],
                },
                LaneResult::Ran {
                    delivered: vec![],
                    failed: Some((Item::Held(held(3, "b", 0)), "timeout".into())),
                    rest: vec![Item::New(4, "b".into())],
                },
                LaneResult::Skipped(vec![Item::New(6, "c".into()), Item::New(8, "c".into())]),
            ],
            &policy,
            t(0),
            || 0.0,
        );
        assert_eq!(out.delivered, 1);
        assert_eq!(out.failed, 2);
        let held: Vec<(i64, i32)> = out.hold.iter().map(|h| (h.position, h.attempts)).collect();
        assert_eq!(held, vec![(2, 1), (5, 0), (4, 0)]);
        assert_eq!(out.hold[0].next_attempt_at, t(1));
        assert_eq!(out.hold[1].next_attempt_at, t(1));
        assert_eq!(out.dead.len(), 1);
        assert_eq!(out.dead[0].position, 3);
        assert_eq!(out.dead[0].attempts, 2);
        // The order behind a dead letter is due at once.
        assert_eq!(out.hold[2].next_attempt_at, t(0));
        assert_eq!(out.unread_from, Some(6));
    }

    proptest! {
        /// Whatever fails, a held event is never overtaken: in every lane the planned order is
        /// feed order, and no order has events both in a lane and parked.
        #[test]
        fn lanes_keep_feed_order_and_never_split_an_order(
            held_spec in proptest::collection::vec((0i64..40, 0usize..4, -5i64..5), 0..12),
            new_spec in proptest::collection::vec(0usize..4, 0..30),
        ) {
            let streams = ["a", "b", "c", "d"];
            let mut seen = std::collections::HashSet::new();
            let held: Vec<Held> = held_spec.into_iter().filter(|(p, _, _)| seen.insert(*p))
                .map(|(p, s, due)| held(p, streams[s], due)).collect();
            let new: Vec<(i64, String)> = new_spec.into_iter().enumerate()
                .map(|(i, s)| (100 + i as i64, streams[s].to_owned())).collect();
            let plan = plan(held, new, t(0));
            let mut laned = std::collections::HashSet::new();
            for lane in &plan.lanes {
                let positions: Vec<i64> = lane.iter().map(Item::position).collect();
                let mut sorted = positions.clone();
                sorted.sort();
                prop_assert_eq!(positions, sorted);
                let stream = lane[0].stream_id().to_owned();
                prop_assert!(lane.iter().all(|i| i.stream_id() == stream));
                laned.insert(stream);
            }
            for (_, stream, due) in &plan.parked {
                prop_assert!(!laned.contains(stream));
                prop_assert!(*due > t(0));
            }
        }
    }
}
