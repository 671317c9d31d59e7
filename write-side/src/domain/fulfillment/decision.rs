//! A routing decision as data: everything [`RoutingConfig::route`] reads for one order (its
//! lines, the nodes holding its allocation, nodes with free stock, learned transit times, the
//! clock), the two passes the fulfillment worker makes over them, and the `RoutingDecided`
//! event that records them with the outcome.
//!
//! The worker and the routing simulator both plan through [`RoutingInputs::plan`], so replaying
//! a recorded decision with the config that made it gives back exactly the recorded plan, and
//! replaying it with another config gives what that config would have done with the same
//! stock, distances, history and clock.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use waybill_schemas::events::{
    FulfillmentLine, RouteCause, RoutedShare, RoutingDecided, RoutingOutcome, RoutingShipTo,
    TransitMean,
};
use waybill_schemas::OrderId;

use super::routing::{Candidate, RoutePlan, RouteRequest, RoutingConfig, TransitHistory};

/// The inputs of one routing decision.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingInputs {
    pub shipping_method: String,
    pub pickup_location: Option<String>,
    pub ship_to: RoutingShipTo,
    /// The units to route.
    pub lines: Vec<FulfillmentLine>,
    /// Nodes holding the order's allocation, routed first; `None` skips that pass (re-routes
    /// and replacements).
    pub allocated: Option<Vec<Candidate>>,
    /// Nodes with free stock of the lines' SKUs, for what the first pass leaves.
    pub free_stock: Vec<Candidate>,
    pub history: TransitHistory,
    pub now: DateTime<Utc>,
}

impl RoutingInputs {
    /// Routes the lines over the allocation first, then what is left over free stock; a node
    /// in both passes keeps one route (its free units ride with the allocated ones).
    pub fn plan(&self, config: &RoutingConfig) -> RoutePlan {
        let route = |lines: &[FulfillmentLine], candidates: &[Candidate]| {
            config.route(&RouteRequest {
                shipping_method: &self.shipping_method,
                pickup_location: self.pickup_location.as_deref(),
                lines,
                candidates,
                history: &self.history,
                now: self.now,
            })
        };
        let mut plan = match &self.allocated {
            Some(allocated) => route(&self.lines, allocated),
            None => RoutePlan {
                routes: Vec::new(),
                unroutable: self.lines.clone(),
            },
        };
        if !plan.unroutable.is_empty() {
            let rest = route(&plan.unroutable, &self.free_stock);
            for extra in rest.routes {
                match plan.routes.iter_mut().find(|r| r.node_id == extra.node_id) {
                    Some(same) => same.lines = super::add(&same.lines, &extra.lines),
                    None => plan.routes.push(extra),
                }
            }
            plan.unroutable = rest.unroutable;
        }
        plan
    }

    /// The event recording this decision: these inputs (the transit history cut down to the
    /// candidates' distances) and `plan`, decided by `config`.
    pub fn record(
        &self,
        order_id: OrderId,
        cause: RouteCause,
        config_version: &str,
        plan: &RoutePlan,
    ) -> RoutingDecided {
        let distances: BTreeSet<u32> = self
            .allocated
            .iter()
            .flatten()
            .chain(&self.free_stock)
            .map(|c| c.distance)
            .collect();
        let transit = self
            .history
            .0
            .iter()
            .filter(|((_, distance), (count, _))| distances.contains(distance) && *count > 0)
            .map(|((carrier, distance), (count, total))| TransitMean {
                carrier: carrier.clone(),
                distance: *distance,
                hours: total / count,
            })
            .collect();
        RoutingDecided {
            order_id,
            cause,
            decided_at: self.now,
            config_version: config_version.to_owned(),
            shipping_method: self.shipping_method.clone(),
            pickup_location: self.pickup_location.clone(),
            ship_to: self.ship_to.clone(),
            lines: self.lines.clone(),
            allocated: self.allocated.clone(),
            free_stock: self.free_stock.clone(),
            transit,
            outcome: outcome(plan),
        }
    }

    /// The inputs a recorded decision read.
    pub fn recorded(decided: &RoutingDecided) -> Self {
        let history = TransitHistory(
            decided
                .transit
                .iter()
                .map(|t| ((t.carrier.clone(), t.distance), (1, t.hours)))
                .collect(),
        );
        Self {
            shipping_method: decided.shipping_method.clone(),
            pickup_location: decided.pickup_location.clone(),
            ship_to: decided.ship_to.clone(),
            lines: decided.lines.clone(),
            allocated: decided.allocated.clone(),
            free_stock: decided.free_stock.clone(),
            history,
            now: decided.decided_at,
        }
    }
}

/// What a plan chose, measured: per node, the units, carrier cost, grams CO₂e and ETA.
pub fn outcome(plan: &RoutePlan) -> RoutingOutcome {
    RoutingOutcome {
        routes: plan
            .routes
            .iter()
            .map(|r| RoutedShare {
                node_id: r.node_id.clone(),
                carrier: r.carrier.clone(),
                units: super::total(&r.lines),
                cost_minor: r.cost_minor,
                co2_grams: r.co2_grams,
                eta: r.eta,
            })
            .collect(),
        unroutable_units: super::total(&plan.unroutable),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use waybill_schemas::events::CandidateLocation;
    use waybill_schemas::{Quantity, Sku};

    use super::*;

    fn line(no: u32, qty: u32) -> FulfillmentLine {
        FulfillmentLine {
            line_no: no,
            sku: Sku::parse(&format!("SKU-{no}")).unwrap(),
            quantity: Quantity::parse(i64::from(qty)).unwrap(),
        }
    }

    fn node(id: &str, distance: u32, units: &[(u32, u32)]) -> Candidate {
        Candidate {
            node_id: id.into(),
            location: CandidateLocation::Warehouse,
            distance,
            units: units.iter().copied().collect(),
        }
    }

    fn inputs() -> RoutingInputs {
        let mut history = TransitHistory::default();
        history.0.insert(("parcelco".into(), 1), (3, 90));
        history.0.insert(("parcelco".into(), 7), (2, 400));
        RoutingInputs {
            shipping_method: "standard".into(),
            pickup_location: None,
            ship_to: RoutingShipTo {
                country: "US".into(),
                postal_zone: 1,
            },
            lines: vec![line(1, 2), line(2, 1)],
            allocated: Some(vec![node("wh-east", 1, &[(1, 2)])]),
            free_stock: vec![
                node("wh-east", 1, &[(2, 4)]),
                node("wh-west", 3, &[(1, 9), (2, 9)]),
            ],
            history,
            now: Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap(),
        }
    }

    #[test]
    fn free_stock_fills_what_the_allocation_left_and_joins_a_node_already_planned() {
        let config = RoutingConfig::bundled().unwrap();
        let plan = inputs().plan(&config);
        assert_eq!(plan.routes.len(), 1, "{plan:?}");
        assert_eq!(plan.routes[0].node_id, "wh-east");
        assert_eq!(plan.routes[0].lines, vec![line(1, 2), line(2, 1)]);
        assert!(plan.unroutable.is_empty());
    }

    #[test]
    fn a_recorded_decision_replays_to_the_plan_it_recorded() {
        let config = RoutingConfig::bundled().unwrap();
        let inputs = inputs();
        let plan = inputs.plan(&config);
        let order_id = OrderId::new_v7();
        let recorded = inputs.record(
            order_id,
            RouteCause::Confirmation,
            config.version.as_str(),
            &plan,
        );
        // Only the history at the candidates' distances (1 and 3) is kept.
        assert_eq!(
            recorded.transit,
            vec![TransitMean {
                carrier: "parcelco".into(),
                distance: 1,
                hours: 30
            }]
        );
        assert_eq!(recorded.config_version, config.version);
        let replayed = RoutingInputs::recorded(&recorded);
        assert_eq!(replayed.plan(&config), plan);
        assert_eq!(outcome(&replayed.plan(&config)), recorded.outcome);
        assert_eq!(recorded.outcome.routes[0].units, 3);
    }

    #[test]
    fn a_disabled_node_sends_its_allocated_units_to_free_stock() {
        let json = include_str!("../../../fulfillment-routing.json").replace(
            "{ \"node_id\": \"wh-east\",",
            "{ \"node_id\": \"wh-east\", \"disabled\": true,",
        );
        let config = RoutingConfig::parse(&json).unwrap();
        assert_ne!(config.version, RoutingConfig::bundled().unwrap().version);
        let plan = inputs().plan(&config);
        let nodes: Vec<_> = plan.routes.iter().map(|r| r.node_id.as_str()).collect();
        assert_eq!(nodes, ["wh-west"]);
        assert_eq!(plan.routes[0].lines, vec![line(1, 2), line(2, 1)]);
    }
}
