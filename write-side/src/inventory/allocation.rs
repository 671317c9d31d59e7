//! The pure allocation decision: which locations give which units to an order's lines.
//!
//! Rules, in order: (1) if one location can fill the whole order, the nearest such location
//! takes it all; (2) otherwise each line, in line order, goes to the nearest location that can
//! fill that line alone; (3) failing that the line is split over locations nearest first. Units
//! nobody has are back-ordered under [`OutOfStock::Backorder`]; under [`OutOfStock::Reject`] the
//! whole request is refused with one shortage per short line and nothing is taken. Distances
//! come from [`super::zones`]; equal distances go to the smaller location id. No I/O.

use std::collections::{BTreeMap, HashMap};

use waybill_schemas::events::{BackorderedLine, ReservedLine, Shortage};
use waybill_schemas::Quantity;

use super::{zones, Location, OutOfStock, RequestedLine, ShipTo};

/// Units free to reserve (on hand − reserved − allocated) per SKU and location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Availability(HashMap<(String, String), u32>);

impl Availability {
    pub fn set(&mut self, sku: &str, location_id: &str, units: u32) {
        self.0
            .insert((sku.to_owned(), location_id.to_owned()), units);
    }

    pub fn get(&self, sku: &str, location_id: &str) -> u32 {
        self.0
            .get(&(sku.to_owned(), location_id.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Takes the units of `lines` away (saturating: a plan never takes more than there is).
    pub fn take(&mut self, lines: &[ReservedLine]) {
        for line in lines {
            let key = (line.sku.as_str().to_owned(), line.location_id.clone());
            let units = self.0.entry(key).or_insert(0);
            *units = units.saturating_sub(line.quantity.get());
        }
    }
}

/// What the locations can do for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Reserved {
        lines: Vec<ReservedLine>,
        backordered: Vec<BackorderedLine>,
    },
    Insufficient {
        shortages: Vec<Shortage>,
    },
}

/// Decides where `lines` are taken from (see the module documentation).
pub fn plan(
    lines: &[RequestedLine],
    ship_to: &ShipTo,
    locations: &[Location],
    available: &Availability,
    policy: OutOfStock,
) -> Plan {
    let nearest = nearest_first(locations, ship_to);
    if let Some(location) = whole_order_location(lines, &nearest, available) {
        let lines = lines
            .iter()
            .map(|line| reserved(line, location.location_id.as_str(), line.quantity))
            .collect();
        return Plan::Reserved {
            lines,
            backordered: Vec::new(),
        };
    }

    let mut taken: HashMap<(&str, &str), u32> = HashMap::new();
    let mut reserved_lines = Vec::new();
    let mut short = Vec::new();
    for line in lines {
        let sku = line.sku.as_str();
        let left = |taken: &HashMap<(&str, &str), u32>, location: &str| {
            available
                .get(sku, location)
                .saturating_sub(taken.get(&(sku, location)).copied().unwrap_or(0))
        };
        let wanted = line.quantity.get();
        let single = nearest
            .iter()
            .find(|l| left(&taken, l.location_id.as_str()) >= wanted);
        let mut missing = wanted;
        let sources: Vec<&Location> = match single {
            Some(location) => vec![location],
            None => nearest.clone(),
        };
        for location in sources {
            if missing == 0 {
                break;
            }
            let id = location.location_id.as_str();
            let units = left(&taken, id).min(missing);
            if let Ok(quantity) = Quantity::parse(i64::from(units)) {
                *taken.entry((sku, id)).or_insert(0) += units;
                reserved_lines.push(reserved(line, id, quantity));
                missing -= units;
            }
        }
        if missing > 0 {
            short.push((line, missing));
        }
    }

    match policy {
        OutOfStock::Reject if !short.is_empty() => Plan::Insufficient {
            shortages: short
                .into_iter()
                .map(|(line, missing)| Shortage {
                    line_no: line.line_no,
                    sku: line.sku.clone(),
                    requested: line.quantity.get(),
                    available: line.quantity.get() - missing,
                })
                .collect(),
        },
        _ => Plan::Reserved {
            lines: reserved_lines,
            backordered: short
                .into_iter()
                .filter_map(|(line, missing)| {
                    Some(BackorderedLine {
                        line_no: line.line_no,
                        sku: line.sku.clone(),
                        quantity: Quantity::parse(i64::from(missing)).ok()?,
                    })
                })
                .collect(),
        },
    }
}

/// Active locations ordered by distance from `ship_to`, then by id.
fn nearest_first<'a>(locations: &'a [Location], ship_to: &ShipTo) -> Vec<&'a Location> {
    let mut active: Vec<&Location> = locations.iter().filter(|l| l.active).collect();
    active.sort_by(|a, b| {
        (zones::distance(a, ship_to), a.location_id.as_str())
            .cmp(&(zones::distance(b, ship_to), b.location_id.as_str()))
    });
    active
}

/// The nearest location holding every line of the order, if there is one.
fn whole_order_location<'a>(
    lines: &[RequestedLine],
    nearest: &[&'a Location],
    available: &Availability,
) -> Option<&'a Location> {
    let mut per_sku: BTreeMap<&str, u32> = BTreeMap::new();
    for line in lines {
        *per_sku.entry(line.sku.as_str()).or_insert(0) += line.quantity.get();
    }
    nearest.iter().copied().find(|location| {
        per_sku
            .iter()
            .all(|(sku, units)| available.get(sku, location.location_id.as_str()) >= *units)
    })
}

fn reserved(line: &RequestedLine, location_id: &str, quantity: Quantity) -> ReservedLine {
    ReservedLine {
        line_no: line.line_no,
        sku: line.sku.clone(),
        location_id: location_id.to_owned(),
        quantity,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use waybill_schemas::Sku;

    use super::*;
    use crate::inventory::{Country, LocationId, LocationKind};

    fn location(id: &str, zone: i32) -> Location {
        Location {
            location_id: LocationId::parse(id).expect("id"),
            kind: LocationKind::Warehouse,
            name: id.to_owned(),
            country: Country::parse("US").expect("country"),
            zone,
            active: true,
        }
    }

    fn line(line_no: u32, sku: &str, quantity: i64) -> RequestedLine {
        RequestedLine {
            line_no,
            sku: Sku::parse(sku).expect("sku"),
            quantity: Quantity::parse(quantity).expect("quantity"),
        }
    }

    fn ship_to_zone(zone: u8) -> ShipTo {
        ShipTo::new("US", &format!("{zone}0000")).expect("ship-to")
    }

    fn stock(entries: &[(&str, &str, u32)]) -> Availability {
        let mut available = Availability::default();
        for (sku, location, units) in entries {
            available.set(sku, location, *units);
        }
        available
    }

    fn taken_from(plan: &Plan) -> Vec<(u32, String, u32)> {
        match plan {
            Plan::Reserved { lines, .. } => lines
                .iter()
                .map(|l| (l.line_no, l.location_id.clone(), l.quantity.get()))
                .collect(),
            Plan::Insufficient { .. } => Vec::new(),
        }
    }

    #[test]
    fn the_nearest_location_with_stock_wins() {
        let locations = [location("EAST", 1), location("MID", 5), location("WEST", 9)];
        let available = stock(&[("A", "EAST", 5), ("A", "MID", 5), ("A", "WEST", 5)]);
        let plan = plan(
            &[line(1, "A", 2)],
            &ship_to_zone(8),
            &locations,
            &available,
            OutOfStock::Reject,
        );
        assert_eq!(taken_from(&plan), vec![(1, "WEST".to_owned(), 2)]);
    }

    #[test]
    fn equal_distances_go_to_the_smaller_location_id() {
        let locations = [location("B-SIDE", 3), location("A-SIDE", 7)];
        let available = stock(&[("A", "A-SIDE", 5), ("A", "B-SIDE", 5)]);
        let plan = plan(
            &[line(1, "A", 1)],
            &ship_to_zone(5),
            &locations,
            &available,
            OutOfStock::Reject,
        );
        assert_eq!(taken_from(&plan), vec![(1, "A-SIDE".to_owned(), 1)]);
    }

    #[test]
    fn one_location_for_the_whole_order_beats_nearer_locations_per_line() {
        // NEAR has only A; FAR has A and B: the whole order ships from FAR.
        let locations = [location("NEAR", 5), location("FAR", 9)];
        let available = stock(&[("A", "NEAR", 5), ("A", "FAR", 5), ("B", "FAR", 5)]);
        let plan = plan(
            &[line(1, "A", 1), line(2, "B", 1)],
            &ship_to_zone(5),
            &locations,
            &available,
            OutOfStock::Reject,
        );
        assert_eq!(
            taken_from(&plan),
            vec![(1, "FAR".to_owned(), 1), (2, "FAR".to_owned(), 1)]
        );
    }

    #[test]
    fn a_line_is_split_nearest_first_only_when_no_location_has_it_all() {
        let locations = [location("NEAR", 5), location("MID", 6), location("FAR", 9)];
        let available = stock(&[("A", "NEAR", 3), ("A", "MID", 2), ("A", "FAR", 10)]);
        let whole = plan(
            &[line(1, "A", 4)],
            &ship_to_zone(5),
            &locations,
            &available,
            OutOfStock::Reject,
        );
        assert_eq!(taken_from(&whole), vec![(1, "FAR".to_owned(), 4)]);
        let split = plan(
            &[line(1, "A", 12)],
            &ship_to_zone(5),
            &locations,
            &available,
            OutOfStock::Reject,
        );
        assert_eq!(
            taken_from(&split),
            vec![
                (1, "NEAR".to_owned(), 3),
                (1, "MID".to_owned(), 2),
                (1, "FAR".to_owned(), 7)
            ]
        );
    }

    #[test]
    fn inactive_locations_give_nothing() {
        let mut closed = location("NEAR", 5);
        closed.active = false;
        let locations = [closed, location("FAR", 9)];
        let available = stock(&[("A", "NEAR", 5), ("A", "FAR", 1)]);
        let plan = plan(
            &[line(1, "A", 1)],
            &ship_to_zone(5),
            &locations,
            &available,
            OutOfStock::Reject,
        );
        assert_eq!(taken_from(&plan), vec![(1, "FAR".to_owned(), 1)]);
    }

    #[test]
    fn under_reject_a_short_order_takes_nothing_and_names_each_short_line() {
        let locations = [location("ONLY", 5)];
        let available = stock(&[("A", "ONLY", 2), ("B", "ONLY", 9)]);
        let plan = plan(
            &[line(1, "A", 3), line(2, "B", 1)],
            &ship_to_zone(5),
            &locations,
            &available,
            OutOfStock::Reject,
        );
        assert_eq!(
            plan,
            Plan::Insufficient {
                shortages: vec![Shortage {
                    line_no: 1,
                    sku: Sku::parse("A").expect("sku"),
                    requested: 3,
                    available: 2,
                }]
            }
        );
    }

    #[test]
    fn under_backorder_the_missing_units_are_back_ordered() {
        let locations = [location("ONLY", 5)];
        let available = stock(&[("A", "ONLY", 2)]);
        let plan = plan(
            &[line(1, "A", 3)],
            &ship_to_zone(5),
            &locations,
            &available,
            OutOfStock::Backorder,
        );
        let Plan::Reserved { lines, backordered } = plan else {
            panic!("expected a reservation");
        };
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].quantity.get(), 2);
        assert_eq!(backordered.len(), 1);
        assert_eq!(backordered[0].quantity.get(), 1);
    }

    const SKUS: [&str; 3] = ["A", "B", "C"];
    const LOCATIONS: [&str; 4] = ["L0", "L1", "L2", "L3"];

    /// Location zones, units per (location, SKU), requested (SKU index, quantity) lines, the
    /// ship-to zone, and whether the policy is back-order.
    type Scenario = (Vec<i32>, Vec<u32>, Vec<(usize, i64)>, u8, bool);

    fn scenario() -> impl Strategy<Value = Scenario> {
        (
            proptest::collection::vec(0..10_i32, 1..=4),
            proptest::collection::vec(0..8_u32, 12),
            proptest::collection::vec((0..3_usize, 1..12_i64), 1..=5),
            0..10_u8,
            any::<bool>(),
        )
    }

    proptest! {
        #[test]
        fn never_takes_more_than_a_location_has_and_accounts_for_every_unit(
            (zones, units, requested, zone, backorder) in scenario()
        ) {
            let locations: Vec<Location> = zones
                .iter()
                .enumerate()
                .map(|(i, z)| location(LOCATIONS[i], *z))
                .collect();
            let mut available = Availability::default();
            for (i, location) in locations.iter().enumerate() {
                for (s, sku) in SKUS.iter().enumerate() {
                    available.set(sku, location.location_id.as_str(), units[i * 3 + s]);
                }
            }
            let lines: Vec<RequestedLine> = requested
                .iter()
                .enumerate()
                .map(|(i, (s, q))| line(i as u32 + 1, SKUS[*s], *q))
                .collect();
            let policy = if backorder { OutOfStock::Backorder } else { OutOfStock::Reject };
            let plan = plan(&lines, &ship_to_zone(zone), &locations, &available, policy);

            let mut per_place: HashMap<(String, String), u32> = HashMap::new();
            let mut per_line: HashMap<u32, u32> = HashMap::new();
            match &plan {
                Plan::Reserved { lines: taken, backordered } => {
                    for t in taken {
                        *per_place.entry((t.sku.as_str().to_owned(), t.location_id.clone()))
                            .or_insert(0) += t.quantity.get();
                        *per_line.entry(t.line_no).or_insert(0) += t.quantity.get();
                    }
                    for b in backordered {
                        *per_line.entry(b.line_no).or_insert(0) += b.quantity.get();
                    }
                    prop_assert!(policy == OutOfStock::Backorder || backordered.is_empty());
                    for line in &lines {
                        prop_assert_eq!(per_line.get(&line.line_no).copied().unwrap_or(0),
                                        line.quantity.get());
                    }
                }
                Plan::Insufficient { shortages } => {
                    prop_assert_eq!(policy, OutOfStock::Reject);
                    prop_assert!(!shortages.is_empty());
                }
            }
            for ((sku, location), units) in per_place {
                prop_assert!(units <= available.get(&sku, &location));
            }
        }
    }
}
