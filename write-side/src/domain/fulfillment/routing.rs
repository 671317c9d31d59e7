//! Routing: which node fulfils which units of a confirmed order, chosen by a score.
//!
//! The rules are data ([`RoutingConfig`], read from `write-side/fulfillment-routing.json`,
//! documented in `write-side/FULFILLMENT.md`). The first rule whose shipping methods match the
//! order decides which node kinds may serve it. Every (node, carrier) pair of those kinds is
//! scored; lower is better:
//!
//! | factor | input | points |
//! |---|---|---|
//! | stock | units of the remaining lines the node cannot give | × `weights.stock` |
//! | distance | zone distance node → customer | × `weights.distance` |
//! | cost | carrier base + per-zone cost, minor units | × `weights.cost` / 100 |
//! | cutoff | 1 when the node's carrier cut-off for today has passed | × `weights.cutoff` |
//! | eta | hours to delivery: handling + learned transit (+24 after cut-off) | × `weights.eta` |
//! | carbon | grams CO₂e: carrier grams per zone × (distance + 1) | × `weights.carbon` / 100 |
//!
//! The best pair takes every unit it has of the remaining lines; the next best takes from what
//! is left, until nothing is left or no node has any. Ties go to the smaller node id, then
//! carrier. A node marked `disabled` serves nothing. Pure: stock, distances, learned transit
//! times and the clock come in as data.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Timelike, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use waybill_schemas::events::{
    CandidateLocation, FulfillmentLine, NodeKind, PickupPoint, RoutingCandidate, ScorePart,
};
use waybill_schemas::{Currency, Quantity};

/// The routing rules, weights, nodes and carriers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub weights: Weights,
    pub rules: Vec<Rule>,
    pub carriers: Vec<Carrier>,
    /// Per-node settings, by inventory location id. A location not listed gets
    /// [`RoutingConfig::default_node`].
    #[serde(default)]
    pub nodes: Vec<NodeSettings>,
    pub default_node: NodeDefaults,
    /// The currency of the carriers' costs (default USD).
    #[serde(default = "default_currency")]
    pub currency: Currency,
    /// `sha256:` and the first 16 hex digits of the text it was parsed from (set by
    /// [`RoutingConfig::parse`]; recorded with every decision).
    #[serde(skip)]
    pub version: String,
}

fn default_currency() -> Currency {
    // A code in the table, tested below.
    Currency::parse("USD").unwrap_or_else(|_| unreachable!("USD is a known currency"))
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub stock: i64,
    pub distance: i64,
    pub cost: i64,
    pub cutoff: i64,
    pub eta: i64,
    pub carbon: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// Shipping methods (lower case) this rule applies to; empty = any.
    #[serde(default)]
    pub shipping_methods: Vec<String>,
    pub node_kinds: Vec<NodeKind>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Carrier {
    pub carrier: String,
    pub base_cost_minor: i64,
    pub cost_per_zone_minor: i64,
    pub co2_grams_per_zone: i64,
    /// Transit hours per zone of distance (+ one zone) until this carrier has history.
    pub default_transit_hours_per_zone: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    pub node_id: String,
    #[serde(default)]
    pub carriers: Option<Vec<String>>,
    #[serde(default)]
    pub cutoff_hour_utc: Option<u32>,
    #[serde(default)]
    pub handling_hours: Option<i64>,
    /// Set for stores that hand out BOPIS orders.
    #[serde(default)]
    pub pickup: Option<PickupPoint>,
    /// A disabled node serves nothing (its units go elsewhere or stay unroutable).
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDefaults {
    pub carriers: Vec<String>,
    pub cutoff_hour_utc: u32,
    pub handling_hours: i64,
}

/// The carrier name of a BOPIS fulfillment order (no parcel leaves the store).
pub const PICKUP_CARRIER: &str = "in_store";

/// The kind of inventory location a node is (as recorded in `RoutingDecided`).
pub type LocationType = CandidateLocation;

/// A place that may serve the order (zone distance to the customer), with the units of each
/// order line it can give: the same type `RoutingDecided` records, so a replay routes exactly
/// what was routed.
pub type Candidate = RoutingCandidate;

/// Transit hours learned per carrier and zone distance: (deliveries, total hours).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransitHistory(pub BTreeMap<(String, u32), (i64, i64)>);

impl TransitHistory {
    /// The mean learned transit hours, or the carrier's documented default.
    pub fn hours(&self, carrier: &Carrier, distance: u32) -> i64 {
        match self.0.get(&(carrier.carrier.clone(), distance)) {
            Some(&(count, total)) if count > 0 => total / count,
            _ => carrier.default_transit_hours_per_zone * (i64::from(distance) + 1),
        }
    }
}

/// What to route.
#[derive(Debug, Clone)]
pub struct RouteRequest<'a> {
    pub shipping_method: &'a str,
    /// The store the customer chose for a pickup order: the only store it may go to
    /// (`None`: any store that offers pickup, for orders placed before stores were chosen).
    pub pickup_location: Option<&'a str>,
    pub lines: &'a [FulfillmentLine],
    pub candidates: &'a [Candidate],
    pub history: &'a TransitHistory,
    pub now: DateTime<Utc>,
}

/// One node's share of the order, with the score that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub node_id: String,
    pub node_kind: NodeKind,
    pub carrier: String,
    pub zone_distance: u32,
    pub lines: Vec<FulfillmentLine>,
    pub rule: String,
    pub score: Vec<ScorePart>,
    pub total_score: i64,
    pub eta: DateTime<Utc>,
    pub pickup: Option<PickupPoint>,
    /// The carrier's cost in minor units of [`RoutingConfig::currency`] (0 for a pickup).
    pub cost_minor: i64,
    /// Grams CO₂e of the parcel (0 for a pickup).
    pub co2_grams: i64,
}

/// The routing decision: the routes and the units no allowed node has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoutePlan {
    pub routes: Vec<Route>,
    pub unroutable: Vec<FulfillmentLine>,
}

/// Why a routing config was refused; each names the field (a path such as `weights.carbon`
/// or `nodes[2].carriers[0]`) that was wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoutingConfigError {
    #[error("routing config field {field}: {detail}")]
    Parse { field: String, detail: String },
    #[error("routing config names carrier {carrier} at {field} that it does not define")]
    UnknownCarrier { carrier: String, field: String },
    #[error("routing config has no rules")]
    NoRules,
    #[error("routing config field {field} must be between {min} and {max}")]
    OutOfRange { field: String, min: i64, max: i64 },
}

impl RoutingConfigError {
    /// The field (path inside the config) that was wrong; empty for the config as a whole.
    pub fn field(&self) -> &str {
        match self {
            Self::Parse { field, .. }
            | Self::UnknownCarrier { field, .. }
            | Self::OutOfRange { field, .. } => field,
            Self::NoRules => "rules",
        }
    }
}

/// Largest weight: with the other bounds no score can overflow.
const MAX_WEIGHT: i64 = 1_000_000;
/// Largest carrier cost (base or per zone), minor units.
const MAX_COST: i64 = 10_000_000;
/// Largest grams per zone, hours per zone and handling hours.
const MAX_GRAMS: i64 = 1_000_000;
const MAX_HOURS: i64 = 10_000;

impl RoutingConfig {
    /// Parses and checks the config: every carrier named is defined, at least one rule,
    /// weights, costs, grams and hours within bounds (so no score overflows), cut-offs 0-23.
    pub fn parse(json: &str) -> Result<Self, RoutingConfigError> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let mut config: Self =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
                let path = e.path().to_string();
                RoutingConfigError::Parse {
                    field: if path == "." { String::new() } else { path },
                    detail: e.into_inner().to_string(),
                }
            })?;
        deserializer.end().map_err(|e| RoutingConfigError::Parse {
            field: String::new(),
            detail: e.to_string(),
        })?;
        config.version = format!(
            "sha256:{}",
            &hex::encode(Sha256::digest(json.as_bytes()))[..16]
        );
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), RoutingConfigError> {
        if self.rules.is_empty() {
            return Err(RoutingConfigError::NoRules);
        }
        let range = |field: String, value: i64, max: i64| {
            if (0..=max).contains(&value) {
                Ok(())
            } else {
                Err(RoutingConfigError::OutOfRange { field, min: 0, max })
            }
        };
        let w = self.weights;
        for (name, value) in [
            ("stock", w.stock),
            ("distance", w.distance),
            ("cost", w.cost),
            ("cutoff", w.cutoff),
            ("eta", w.eta),
            ("carbon", w.carbon),
        ] {
            range(format!("weights.{name}"), value, MAX_WEIGHT)?;
        }
        for (i, c) in self.carriers.iter().enumerate() {
            range(
                format!("carriers[{i}].base_cost_minor"),
                c.base_cost_minor,
                MAX_COST,
            )?;
            range(
                format!("carriers[{i}].cost_per_zone_minor"),
                c.cost_per_zone_minor,
                MAX_COST,
            )?;
            range(
                format!("carriers[{i}].co2_grams_per_zone"),
                c.co2_grams_per_zone,
                MAX_GRAMS,
            )?;
            range(
                format!("carriers[{i}].default_transit_hours_per_zone"),
                c.default_transit_hours_per_zone,
                MAX_HOURS,
            )?;
        }
        range(
            "default_node.cutoff_hour_utc".into(),
            i64::from(self.default_node.cutoff_hour_utc),
            23,
        )?;
        range(
            "default_node.handling_hours".into(),
            self.default_node.handling_hours,
            MAX_HOURS,
        )?;
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(hour) = node.cutoff_hour_utc {
                range(format!("nodes[{i}].cutoff_hour_utc"), i64::from(hour), 23)?;
            }
            if let Some(hours) = node.handling_hours {
                range(format!("nodes[{i}].handling_hours"), hours, MAX_HOURS)?;
            }
        }
        let known = |name: &String| self.carriers.iter().any(|c| &c.carrier == name);
        let named = self
            .default_node
            .carriers
            .iter()
            .enumerate()
            .map(|(j, c)| (c, format!("default_node.carriers[{j}]")))
            .chain(self.nodes.iter().enumerate().flat_map(|(i, node)| {
                node.carriers
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(move |(j, c)| (c, format!("nodes[{i}].carriers[{j}]")))
            }));
        for (carrier, field) in named {
            if !known(carrier) {
                return Err(RoutingConfigError::UnknownCarrier {
                    carrier: carrier.clone(),
                    field,
                });
            }
        }
        Ok(())
    }

    /// The config checked into the repository.
    pub fn bundled() -> Result<Self, RoutingConfigError> {
        Self::parse(include_str!("../../../fulfillment-routing.json"))
    }

    /// Whether orders shipped by `shipping_method` are collected at a store (their routing
    /// rule allows only pickup stores' node kind).
    pub fn is_pickup_method(&self, shipping_method: &str) -> bool {
        self.rule_for(shipping_method)
            .is_some_and(|r| r.node_kinds.contains(&NodeKind::PickupStore))
    }

    /// The stores that hand out pickup orders (nodes with a `pickup` point), by node id.
    pub fn pickup_stores(&self) -> impl Iterator<Item = (&str, &PickupPoint)> {
        self.nodes
            .iter()
            .filter_map(|n| n.pickup.as_ref().map(|p| (n.node_id.as_str(), p)))
    }

    fn node(&self, node_id: &str) -> Option<&NodeSettings> {
        self.nodes.iter().find(|n| n.node_id == node_id)
    }

    fn rule_for(&self, shipping_method: &str) -> Option<&Rule> {
        let method = shipping_method.trim().to_ascii_lowercase();
        self.rules
            .iter()
            .find(|r| r.shipping_methods.is_empty() || r.shipping_methods.contains(&method))
    }

    /// Splits `request.lines` over nodes (see the module documentation).
    pub fn route(&self, request: &RouteRequest<'_>) -> RoutePlan {
        let Some(rule) = self.rule_for(request.shipping_method) else {
            return RoutePlan {
                routes: Vec::new(),
                unroutable: request.lines.to_vec(),
            };
        };
        let mut remaining: BTreeMap<u32, (FulfillmentLine, u32)> = request
            .lines
            .iter()
            .map(|l| (l.line_no, (l.clone(), l.quantity.get())))
            .collect();
        let mut used: Vec<&str> = Vec::new();
        let mut routes = Vec::new();
        loop {
            let best = request
                .candidates
                .iter()
                .filter(|c| !used.contains(&c.node_id.as_str()))
                .flat_map(|c| self.options(rule, c, &remaining, request))
                .filter(|(_, gives)| gives.iter().any(|(_, n)| *n > 0))
                .min_by(|(a, _), (b, _)| {
                    (a.total_score, &a.node_id, &a.carrier).cmp(&(
                        b.total_score,
                        &b.node_id,
                        &b.carrier,
                    ))
                });
            let Some((mut route, gives)) = best else {
                break;
            };
            used.push(
                request
                    .candidates
                    .iter()
                    .find(|c| c.node_id == route.node_id)
                    .map(|c| c.node_id.as_str())
                    .unwrap_or_default(),
            );
            for (line_no, units) in gives {
                let Some((line, left)) = remaining.get_mut(&line_no) else {
                    continue;
                };
                *left -= units;
                if let Ok(quantity) = Quantity::parse(i64::from(units)) {
                    route.lines.push(FulfillmentLine {
                        line_no,
                        sku: line.sku.clone(),
                        quantity,
                    });
                }
            }
            routes.push(route);
            remaining.retain(|_, (_, left)| *left > 0);
            if remaining.is_empty() {
                break;
            }
        }
        let unroutable = remaining
            .into_values()
            .filter_map(|(line, left)| {
                Quantity::parse(i64::from(left))
                    .ok()
                    .map(|quantity| FulfillmentLine { quantity, ..line })
            })
            .collect();
        RoutePlan { routes, unroutable }
    }

    /// Each carrier option of `candidate` under `rule`, scored, with the units it would take.
    fn options(
        &self,
        rule: &Rule,
        candidate: &Candidate,
        remaining: &BTreeMap<u32, (FulfillmentLine, u32)>,
        request: &RouteRequest<'_>,
    ) -> Vec<(Route, Vec<(u32, u32)>)> {
        let settings = self.node(&candidate.node_id);
        if settings.is_some_and(|s| s.disabled) {
            return Vec::new();
        }
        let pickup = settings.and_then(|s| s.pickup.clone());
        let kind = match candidate.location {
            LocationType::Warehouse => NodeKind::Warehouse,
            LocationType::ThirdParty => NodeKind::ThirdParty,
            LocationType::Store if rule.node_kinds.contains(&NodeKind::PickupStore) => {
                NodeKind::PickupStore
            }
            LocationType::Store => NodeKind::ShipFromStore,
        };
        if !rule.node_kinds.contains(&kind) || (kind == NodeKind::PickupStore && pickup.is_none()) {
            return Vec::new();
        }
        if kind == NodeKind::PickupStore
            && request
                .pickup_location
                .is_some_and(|chosen| chosen != candidate.node_id)
        {
            // Not the store the customer chose to collect at.
            return Vec::new();
        }
        let gives: Vec<(u32, u32)> = remaining
            .iter()
            .map(|(no, (_, left))| {
                let has = candidate.units.get(no).copied().unwrap_or(0);
                (*no, has.min(*left))
            })
            .collect();
        let missing: u32 = remaining.values().map(|(_, left)| left).sum::<u32>()
            - gives.iter().map(|(_, n)| n).sum::<u32>();
        let cutoff_hour = settings
            .and_then(|s| s.cutoff_hour_utc)
            .unwrap_or(self.default_node.cutoff_hour_utc);
        let handling = settings
            .and_then(|s| s.handling_hours)
            .unwrap_or(self.default_node.handling_hours);
        let past_cutoff = request.now.hour() >= cutoff_hour;
        let carriers: Vec<&Carrier> = if kind == NodeKind::PickupStore {
            Vec::new()
        } else {
            let names = settings
                .and_then(|s| s.carriers.as_ref())
                .unwrap_or(&self.default_node.carriers);
            self.carriers
                .iter()
                .filter(|c| names.contains(&c.carrier))
                .collect()
        };
        let w = self.weights;
        let distance = i64::from(candidate.distance);
        let base = |hours: i64| {
            vec![
                part(
                    "stock",
                    format!("{missing} units missing"),
                    i64::from(missing) * w.stock,
                ),
                part(
                    "distance",
                    format!("zone distance {distance}"),
                    distance * w.distance,
                ),
                part(
                    "cutoff",
                    if past_cutoff {
                        format!("past the {cutoff_hour}:00 UTC cut-off")
                    } else {
                        format!("before the {cutoff_hour}:00 UTC cut-off")
                    },
                    i64::from(past_cutoff) * w.cutoff,
                ),
                part("eta", format!("{hours} hours"), hours * w.eta),
            ]
        };
        let delay = handling + if past_cutoff { 24 } else { 0 };
        let build =
            |carrier: &str, mut score: Vec<ScorePart>, hours: i64, cost: i64, grams: i64| {
                let total_score = score.iter().map(|p| p.points).sum();
                score.sort_by(|a, b| a.factor.cmp(&b.factor));
                (
                    Route {
                        node_id: candidate.node_id.clone(),
                        node_kind: kind,
                        carrier: carrier.to_owned(),
                        zone_distance: candidate.distance,
                        lines: Vec::new(),
                        rule: rule.name.clone(),
                        score,
                        total_score,
                        eta: request.now + Duration::hours(hours),
                        pickup: if kind == NodeKind::PickupStore {
                            pickup.clone()
                        } else {
                            None
                        },
                        cost_minor: cost,
                        co2_grams: grams,
                    },
                    gives.clone(),
                )
            };
        if kind == NodeKind::PickupStore {
            let mut score = base(delay);
            score.push(part("cost", "no carrier".into(), 0));
            score.push(part("carbon", "no carrier".into(), 0));
            return vec![build(PICKUP_CARRIER, score, delay, 0, 0)];
        }
        carriers
            .into_iter()
            .map(|carrier| {
                let hours = delay + request.history.hours(carrier, candidate.distance);
                let cost = carrier.base_cost_minor + carrier.cost_per_zone_minor * distance;
                let grams = carrier.co2_grams_per_zone * (distance + 1);
                let mut score = base(hours);
                score.push(part(
                    "cost",
                    format!("{cost} minor units via {}", carrier.carrier),
                    cost * w.cost / 100,
                ));
                score.push(part(
                    "carbon",
                    format!("{grams} g CO2e"),
                    grams * w.carbon / 100,
                ));
                build(&carrier.carrier, score, hours, cost, grams)
            })
            .collect()
    }
}

fn part(factor: &str, input: String, points: i64) -> ScorePart {
    ScorePart {
        factor: factor.to_owned(),
        input,
        points,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use waybill_schemas::Sku;

    use super::*;

    fn line(no: u32, qty: u32) -> FulfillmentLine {
        FulfillmentLine {
            line_no: no,
            sku: Sku::parse(&format!("SKU-{no}")).unwrap(),
            quantity: Quantity::parse(i64::from(qty)).unwrap(),
        }
    }

    fn candidate(
        id: &str,
        location: LocationType,
        distance: u32,
        units: &[(u32, u32)],
    ) -> Candidate {
        Candidate {
            node_id: id.into(),
            location,
            distance,
            units: units.iter().copied().collect(),
        }
    }

    fn morning() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
    }

    fn route(method: &str, lines: &[FulfillmentLine], candidates: &[Candidate]) -> RoutePlan {
        let config = RoutingConfig::bundled().expect("bundled config parses");
        config.route(&RouteRequest {
            shipping_method: method,
            pickup_location: None,
            lines,
            candidates,
            history: &TransitHistory::default(),
            now: morning(),
        })
    }

    #[test]
    fn the_bundled_config_parses_and_names_only_defined_carriers() {
        let config = RoutingConfig::bundled().expect("parses");
        assert!(!config.rules.is_empty());
        let broken = include_str!("../../../fulfillment-routing.json")
            .replace("\"carriers\": [\"parcelco\"", "\"carriers\": [\"nobody\"");
        let error = RoutingConfig::parse(&broken).unwrap_err();
        assert!(matches!(error, RoutingConfigError::UnknownCarrier { .. }));
        // The first list that named parcelco: the default node's.
        assert_eq!(error.field(), "default_node.carriers[0]");
    }

    #[test]
    fn a_bad_config_is_refused_naming_the_field() {
        let bundled = include_str!("../../../fulfillment-routing.json");
        let field = |json: String| RoutingConfig::parse(&json).unwrap_err().field().to_owned();
        assert_eq!(
            field(bundled.replace("\"carbon\": 5", "\"carbon\": \"lots\"")),
            "weights.carbon"
        );
        assert_eq!(
            field(bundled.replace("\"carbon\": 5", "\"carbon\": -5")),
            "weights.carbon"
        );
        assert_eq!(
            field(bundled.replace("\"eta\": 2", "\"eta\": 2, \"speed\": 1")),
            "weights.speed"
        );
        assert_eq!(
            field(bundled.replace("\"cutoff_hour_utc\": 18", "\"cutoff_hour_utc\": 24")),
            "nodes[0].cutoff_hour_utc"
        );
        assert_eq!(
            field(bundled.replace(
                "\"base_cost_minor\": 500",
                "\"base_cost_minor\": 9000000000"
            )),
            "carriers[0].base_cost_minor"
        );
    }

    #[test]
    fn one_node_with_everything_beats_two_nearer_partial_nodes() {
        let lines = [line(1, 1), line(2, 1)];
        let plan = route(
            "standard",
            &lines,
            &[
                candidate("wh-east", LocationType::Warehouse, 3, &[(1, 1), (2, 1)]),
                candidate("wh-west", LocationType::Warehouse, 0, &[(1, 1)]),
            ],
        );
        assert_eq!(plan.routes.len(), 1);
        assert_eq!(plan.routes[0].node_id, "wh-east");
        assert_eq!(plan.routes[0].lines, lines.to_vec());
        assert!(plan.unroutable.is_empty());
        let stock = plan.routes[0]
            .score
            .iter()
            .find(|p| p.factor == "stock")
            .unwrap();
        assert_eq!(stock.points, 0);
        assert_eq!(plan.routes[0].rule, "ship_to_customer");
    }

    #[test]
    fn an_order_no_node_holds_whole_is_split_nearest_first() {
        let plan = route(
            "standard",
            &[line(1, 2), line(2, 1)],
            &[
                candidate("wh-east", LocationType::Warehouse, 1, &[(1, 2)]),
                candidate("3pl-north", LocationType::ThirdParty, 4, &[(2, 5)]),
            ],
        );
        let nodes: Vec<_> = plan.routes.iter().map(|r| r.node_id.as_str()).collect();
        assert_eq!(nodes, ["wh-east", "3pl-north"]);
        assert_eq!(plan.routes[1].node_kind, NodeKind::ThirdParty);
        assert_eq!(plan.routes[1].lines, vec![line(2, 1)]);
        assert!(plan.unroutable.is_empty());
    }

    #[test]
    fn units_nobody_has_are_unroutable() {
        let plan = route(
            "standard",
            &[line(1, 3)],
            &[candidate("wh-east", LocationType::Warehouse, 1, &[(1, 2)])],
        );
        assert_eq!(plan.routes[0].lines, vec![line(1, 2)]);
        assert_eq!(plan.unroutable, vec![line(1, 1)]);
    }

    #[test]
    fn a_pickup_order_goes_to_the_store_the_customer_chose_and_nowhere_else() {
        let config = RoutingConfig::bundled().expect("bundled config parses");
        let stores = [
            candidate("store-chicago", LocationType::Store, 0, &[(1, 1)]),
            candidate("store-soho", LocationType::Store, 5, &[(1, 1)]),
        ];
        let plan = |chosen: Option<&str>, candidates: &[Candidate]| {
            config.route(&RouteRequest {
                shipping_method: "pickup",
                pickup_location: chosen,
                lines: &[line(1, 1)],
                candidates,
                history: &TransitHistory::default(),
                now: morning(),
            })
        };
        // Chicago is nearer (and would win), but the customer chose Soho.
        let nodes = |p: &RoutePlan| {
            p.routes
                .iter()
                .map(|r| r.node_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(nodes(&plan(None, &stores)), ["store-chicago"]);
        let soho = plan(Some("store-soho"), &stores);
        assert_eq!(nodes(&soho), ["store-soho"]);
        assert_eq!(
            soho.routes[0]
                .pickup
                .as_ref()
                .map(|p| p.store_name.as_str()),
            Some("Waybill Soho")
        );
        // The chosen store without the units: not sent to another store.
        let elsewhere = plan(Some("store-soho"), &stores[..1]);
        assert!(elsewhere.routes.is_empty());
        assert_eq!(elsewhere.unroutable, vec![line(1, 1)]);
    }

    #[test]
    fn pickup_orders_go_only_to_stores_that_hand_out_orders() {
        let plan = route(
            "pickup",
            &[line(1, 1)],
            &[
                candidate("wh-east", LocationType::Warehouse, 0, &[(1, 1)]),
                candidate("store-soho", LocationType::Store, 2, &[(1, 1)]),
            ],
        );
        assert_eq!(plan.routes.len(), 1);
        let route = &plan.routes[0];
        assert_eq!(
            (route.node_id.as_str(), route.node_kind),
            ("store-soho", NodeKind::PickupStore)
        );
        assert_eq!(route.carrier, PICKUP_CARRIER);
        assert!(route.pickup.is_some());
        assert_eq!(route.rule, "pickup_in_store");
    }

    #[test]
    fn a_store_ships_when_the_order_is_not_for_pickup() {
        let plan = route(
            "express",
            &[line(1, 1)],
            &[candidate("store-soho", LocationType::Store, 0, &[(1, 1)])],
        );
        assert_eq!(plan.routes[0].node_kind, NodeKind::ShipFromStore);
        assert_eq!(plan.routes[0].pickup, None);
        assert_ne!(plan.routes[0].carrier, PICKUP_CARRIER);
    }

    #[test]
    fn after_the_cut_off_the_eta_moves_a_day_and_the_score_says_why() {
        let config = RoutingConfig::bundled().unwrap();
        let lines = [line(1, 1)];
        let candidates = [candidate("wh-east", LocationType::Warehouse, 1, &[(1, 1)])];
        let at = |hour| {
            config.route(&RouteRequest {
                shipping_method: "standard",
                pickup_location: None,
                lines: &lines,
                candidates: &candidates,
                history: &TransitHistory::default(),
                now: Utc.with_ymd_and_hms(2026, 11, 26, hour, 0, 0).unwrap(),
            })
        };
        let (before, after) = (at(9), at(23));
        let cutoff = |p: &RoutePlan| {
            p.routes[0]
                .score
                .iter()
                .find(|s| s.factor == "cutoff")
                .unwrap()
                .points
        };
        assert_eq!(cutoff(&before), 0);
        assert!(cutoff(&after) > 0);
        assert_eq!(
            (after.routes[0].eta - Duration::hours(14)) - before.routes[0].eta,
            Duration::hours(24)
        );
    }

    #[test]
    fn learned_transit_times_replace_the_default_and_can_change_the_carrier() {
        let config = RoutingConfig::bundled().unwrap();
        let parcelco = config
            .carriers
            .iter()
            .find(|c| c.carrier == "parcelco")
            .unwrap();
        let empty = TransitHistory::default();
        assert_eq!(
            empty.hours(parcelco, 2),
            parcelco.default_transit_hours_per_zone * 3
        );
        let mut history = TransitHistory::default();
        history.0.insert(("parcelco".into(), 2), (4, 4 * 200));
        assert_eq!(history.hours(parcelco, 2), 200);
        let lines = [line(1, 1)];
        let candidates = [candidate("wh-east", LocationType::Warehouse, 2, &[(1, 1)])];
        let pick = |history: &TransitHistory| {
            config
                .route(&RouteRequest {
                    shipping_method: "standard",
                    pickup_location: None,
                    lines: &lines,
                    candidates: &candidates,
                    history,
                    now: morning(),
                })
                .routes[0]
                .carrier
                .clone()
        };
        assert_eq!(pick(&empty), "parcelco");
        assert_eq!(
            pick(&history),
            "swiftpost",
            "a slow learned ETA loses to the other carrier"
        );
    }
}
