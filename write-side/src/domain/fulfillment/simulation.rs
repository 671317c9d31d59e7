//! Routing what-if, the pure part: a recorded decision replayed with a candidate config, the
//! replays of one order folded into a per-order comparison, and the comparisons summed into an
//! aggregate. The baseline is what was recorded (what happened); the candidate is
//! [`RoutingInputs::plan`] with the candidate config over the recorded inputs.
//!
//! Per order, over its decisions in the window: cost and carbon are summed, the ETA is when
//! the last parcel arrives (hours after the first decision), and the order is split when its
//! units went to more than one node.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use waybill_schemas::events::{RouteCause, RoutingDecided, RoutingOutcome};
use waybill_schemas::OrderId;

use super::decision::{outcome, RoutingInputs};
use super::routing::RoutingConfig;

/// One recorded decision and what the candidate config does with its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionReplay {
    pub order_id: OrderId,
    pub decided_at: DateTime<Utc>,
    pub cause: RouteCause,
    pub config_version: String,
    pub baseline: RoutingOutcome,
    pub candidate: RoutingOutcome,
}

/// Replays `decided` with `candidate`.
pub fn replay(decided: RoutingDecided, candidate: &RoutingConfig) -> DecisionReplay {
    let plan = RoutingInputs::recorded(&decided).plan(candidate);
    DecisionReplay {
        order_id: decided.order_id,
        decided_at: decided.decided_at,
        cause: decided.cause,
        config_version: decided.config_version,
        baseline: decided.outcome,
        candidate: outcome(&plan),
    }
}

/// One side (recorded or candidate) of an order, measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default, utoipa::ToSchema)]
pub struct OrderMeasure {
    /// Carrier cost, minor units of the config's currency.
    pub cost_minor: i64,
    pub co2_grams: i64,
    /// Hours from the first decision to the last parcel's ETA (`null`: nothing routed).
    pub eta_hours: Option<i64>,
    /// Distinct nodes the units went to.
    pub nodes: u32,
    pub unroutable_units: u32,
}

impl OrderMeasure {
    fn of<'a>(start: DateTime<Utc>, outcomes: impl Iterator<Item = &'a RoutingOutcome>) -> Self {
        let mut measure = Self::default();
        let mut nodes = BTreeSet::new();
        let mut last_eta: Option<DateTime<Utc>> = None;
        for o in outcomes {
            for r in &o.routes {
                measure.cost_minor += r.cost_minor;
                measure.co2_grams += r.co2_grams;
                nodes.insert(r.node_id.as_str());
                last_eta = last_eta.max(Some(r.eta));
            }
            measure.unroutable_units += o.unroutable_units;
        }
        measure.nodes = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
        measure.eta_hours = last_eta.map(|eta| (eta - start).num_hours());
        measure
    }

    pub fn split(&self) -> bool {
        self.nodes > 1
    }
}

/// One order, recorded against candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrderDelta {
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    /// The first decision's time.
    pub decided_at: DateTime<Utc>,
    pub decisions: u32,
    /// Whether any decision's routes (node, carrier, units) or unroutable units differ.
    pub changed: bool,
    pub recorded: OrderMeasure,
    pub candidate: OrderMeasure,
    pub cost_delta_minor: i64,
    pub co2_delta_grams: i64,
    /// Candidate minus recorded ETA hours (`null` when either routed nothing).
    pub eta_delta_hours: Option<i64>,
}

/// Folds replays into one row per order, orders in the order of their first decision.
pub fn by_order(replays: Vec<DecisionReplay>) -> Vec<OrderDelta> {
    let mut index: BTreeMap<OrderId, usize> = BTreeMap::new();
    let mut groups: Vec<Vec<DecisionReplay>> = Vec::new();
    for replay in replays {
        match index.get(&replay.order_id) {
            Some(&i) => groups[i].push(replay),
            None => {
                index.insert(replay.order_id, groups.len());
                groups.push(vec![replay]);
            }
        }
    }
    groups.into_iter().filter_map(order_delta).collect()
}

fn order_delta(replays: Vec<DecisionReplay>) -> Option<OrderDelta> {
    let first = replays.iter().map(|r| r.decided_at).min()?;
    let order_id = replays.first()?.order_id;
    let recorded = OrderMeasure::of(first, replays.iter().map(|r| &r.baseline));
    let candidate = OrderMeasure::of(first, replays.iter().map(|r| &r.candidate));
    let changed = replays.iter().any(|r| r.baseline != r.candidate);
    Some(OrderDelta {
        order_id,
        decided_at: first,
        decisions: u32::try_from(replays.len()).unwrap_or(u32::MAX),
        changed,
        cost_delta_minor: candidate.cost_minor - recorded.cost_minor,
        co2_delta_grams: candidate.co2_grams - recorded.co2_grams,
        eta_delta_hours: recorded
            .eta_hours
            .zip(candidate.eta_hours)
            .map(|(before, after)| after - before),
        recorded,
        candidate,
    })
}

/// One side of the aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Default, utoipa::ToSchema)]
pub struct SideTotals {
    pub cost_minor: i64,
    pub co2_grams: i64,
    /// Orders whose units went to more than one node.
    pub split_orders: u64,
    /// `split_orders / orders`.
    pub split_rate: f64,
    /// Mean ETA hours over the orders routed on both sides.
    pub mean_eta_hours: Option<f64>,
    pub unroutable_units: u64,
}

/// The whole window, recorded against candidate.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Aggregate {
    pub orders: u64,
    pub decisions: u64,
    /// Orders whose plan the candidate changes.
    pub changed_orders: u64,
    /// The currency of the costs (the candidate config's).
    pub currency: String,
    pub recorded: SideTotals,
    pub candidate: SideTotals,
    pub cost_delta_minor: i64,
    pub co2_delta_grams: i64,
    /// Candidate minus recorded mean ETA hours.
    pub mean_eta_delta_hours: Option<f64>,
    /// Candidate minus recorded split rate.
    pub split_rate_delta: f64,
    /// Orders split only under the candidate, and only as recorded.
    pub newly_split_orders: u64,
    pub no_longer_split_orders: u64,
    /// Decisions by the config version that made them.
    pub config_versions: BTreeMap<String, u64>,
}

/// Sums the per-order rows (and counts the decisions by config version).
pub fn aggregate(
    orders: &[OrderDelta],
    config_versions: BTreeMap<String, u64>,
    candidate: &RoutingConfig,
) -> Aggregate {
    let n = orders.len() as u64;
    let both: Vec<(i64, i64)> = orders
        .iter()
        .filter_map(|o| o.recorded.eta_hours.zip(o.candidate.eta_hours))
        .collect();
    let mean = |pick: fn(&(i64, i64)) -> i64| {
        (!both.is_empty()).then(|| both.iter().map(pick).sum::<i64>() as f64 / both.len() as f64)
    };
    let side = |measure: fn(&OrderDelta) -> &OrderMeasure, eta: Option<f64>| {
        let split = orders.iter().filter(|o| measure(o).split()).count() as u64;
        SideTotals {
            cost_minor: orders.iter().map(|o| measure(o).cost_minor).sum(),
            co2_grams: orders.iter().map(|o| measure(o).co2_grams).sum(),
            split_orders: split,
            split_rate: if n == 0 { 0.0 } else { split as f64 / n as f64 },
            mean_eta_hours: eta,
            unroutable_units: orders
                .iter()
                .map(|o| u64::from(measure(o).unroutable_units))
                .sum(),
        }
    };
    let recorded = side(|o| &o.recorded, mean(|p| p.0));
    let after = side(|o| &o.candidate, mean(|p| p.1));
    Aggregate {
        orders: n,
        decisions: orders.iter().map(|o| u64::from(o.decisions)).sum(),
        changed_orders: orders.iter().filter(|o| o.changed).count() as u64,
        currency: candidate.currency.to_string(),
        cost_delta_minor: after.cost_minor - recorded.cost_minor,
        co2_delta_grams: after.co2_grams - recorded.co2_grams,
        mean_eta_delta_hours: recorded
            .mean_eta_hours
            .zip(after.mean_eta_hours)
            .map(|(before, now)| now - before),
        split_rate_delta: after.split_rate - recorded.split_rate,
        newly_split_orders: orders
            .iter()
            .filter(|o| o.candidate.split() && !o.recorded.split())
            .count() as u64,
        no_longer_split_orders: orders
            .iter()
            .filter(|o| !o.candidate.split() && o.recorded.split())
            .count() as u64,
        config_versions,
        recorded,
        candidate: after,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use waybill_schemas::events::RoutedShare;

    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, hour, 0, 0).unwrap()
    }

    fn share(node: &str, cost: i64, grams: i64, eta: DateTime<Utc>) -> RoutedShare {
        RoutedShare {
            node_id: node.into(),
            carrier: "parcelco".into(),
            units: 1,
            cost_minor: cost,
            co2_grams: grams,
            eta,
        }
    }

    fn replay(
        order_id: OrderId,
        baseline: Vec<RoutedShare>,
        candidate: Vec<RoutedShare>,
    ) -> DecisionReplay {
        DecisionReplay {
            order_id,
            decided_at: at(9),
            cause: RouteCause::Confirmation,
            config_version: "sha256:a".into(),
            baseline: RoutingOutcome {
                routes: baseline,
                unroutable_units: 0,
            },
            candidate: RoutingOutcome {
                routes: candidate,
                unroutable_units: 0,
            },
        }
    }

    #[test]
    fn an_order_split_only_by_the_candidate_counts_in_the_split_rate_change() {
        let (a, b) = (OrderId::new_v7(), OrderId::new_v7());
        let eta = at(9) + Duration::hours(30);
        let replays = vec![
            replay(
                a,
                vec![share("wh-east", 650, 240, eta)],
                vec![
                    share("wh-east", 650, 240, eta),
                    share("wh-west", 500, 120, eta + Duration::hours(6)),
                ],
            ),
            replay(
                b,
                vec![share("wh-east", 800, 360, eta)],
                vec![share("wh-east", 800, 360, eta)],
            ),
        ];
        let orders = by_order(replays);
        assert_eq!(orders.len(), 2);
        assert!(orders[0].changed && !orders[1].changed);
        assert_eq!(orders[0].cost_delta_minor, 500);
        assert_eq!(orders[0].co2_delta_grams, 120);
        assert_eq!(orders[0].eta_delta_hours, Some(6));
        let config = RoutingConfig::bundled().unwrap();
        let total = aggregate(&orders, BTreeMap::new(), &config);
        assert_eq!((total.orders, total.changed_orders), (2, 1));
        assert_eq!(total.recorded.split_orders, 0);
        assert_eq!(total.candidate.split_orders, 1);
        assert!((total.split_rate_delta - 0.5).abs() < 1e-9);
        assert_eq!(total.newly_split_orders, 1);
        assert_eq!(total.cost_delta_minor, 500);
        assert_eq!(total.mean_eta_delta_hours, Some(3.0));
        assert_eq!(total.currency, "USD");
    }

    #[test]
    fn two_decisions_of_one_order_make_one_row_with_the_last_parcel_as_eta() {
        let a = OrderId::new_v7();
        let first = replay(
            a,
            vec![share("wh-east", 650, 240, at(9) + Duration::hours(30))],
            vec![share("wh-east", 650, 240, at(9) + Duration::hours(30))],
        );
        let mut reroute = replay(
            a,
            vec![share("wh-west", 500, 100, at(9) + Duration::hours(50))],
            vec![share("wh-west", 500, 100, at(9) + Duration::hours(50))],
        );
        reroute.decided_at = at(12);
        let orders = by_order(vec![first, reroute]);
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].decisions, 2);
        assert_eq!(orders[0].recorded.eta_hours, Some(50));
        assert_eq!(orders[0].recorded.nodes, 2);
        assert_eq!(orders[0].recorded.cost_minor, 1150);
        assert!(!orders[0].changed);
    }
}
