//! Locations and stock for the demo, over the inventory API. Running it again is safe: each
//! location is PUT with the same body and key (a replay), and stock is topped up only where
//! fewer units are free than the demo needs, under keys of this run.

use anyhow::Context;
use serde_json::json;

use super::scenario::{REVIEW_SKU, SCARCE_SKU};
use crate::client::ApiClient;
use crate::orders::CATALOGUE;

/// `(id, kind, name, country, zone)`: two US warehouses at either end of the country, one in
/// Germany, a store in Chicago and a third-party warehouse near London. Zones follow the first
/// character of the postal codes (write-side/src/inventory/zones.rs).
pub const LOCATIONS: &[(&str, &str, &str, &str, i32)] = &[
    ("wh-east", "warehouse", "East coast warehouse", "US", 1),
    ("wh-west", "warehouse", "West coast warehouse", "US", 9),
    ("wh-eu", "warehouse", "Berlin warehouse", "DE", 1),
    ("store-chicago", "store", "Chicago store", "US", 6),
    (
        "3pl-london",
        "third_party",
        "London fulfilment partner",
        "GB",
        6,
    ),
];

/// Free units the demo wants at a location before it places orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub sku: &'static str,
    pub location: &'static str,
    pub free: i64,
}

/// Every catalogue SKU in the warehouses (fewer in the store and at the partner), the review
/// SKU in one warehouse, and exactly one unit of the scarce SKU.
pub fn targets() -> Vec<Target> {
    let mut targets = Vec::new();
    for product in CATALOGUE {
        for (location, free) in [
            ("wh-east", 40),
            ("wh-west", 40),
            ("wh-eu", 25),
            ("store-chicago", 5),
            ("3pl-london", 15),
        ] {
            targets.push(Target {
                sku: product.sku,
                location,
                free,
            });
        }
    }
    targets.push(Target {
        sku: REVIEW_SKU,
        location: "wh-east",
        free: 5,
    });
    targets.push(Target {
        sku: SCARCE_SKU,
        location: "store-chicago",
        free: 1,
    });
    targets
}

/// The stock movement that brings `free` units to `target`: a restock when fewer than half
/// the target are free, nothing otherwise; the scarce SKU is set to exactly its target.
pub fn movement(target: &Target, free: i64) -> Option<(&'static str, serde_json::Value)> {
    let exact = target.sku == SCARCE_SKU;
    if free < target.free && (exact || free * 2 < target.free) {
        Some(("restock", json!({"quantity": target.free - free})))
    } else if exact && free > target.free {
        Some((
            "adjust",
            json!({"delta": target.free - free, "reason": "demo keeps one unit"}),
        ))
    } else {
        None
    }
}

/// Registers the locations and tops up the stock; returns the SKUs seeded.
pub async fn seed(client: &ApiClient, run: &str) -> anyhow::Result<Vec<&'static str>> {
    for (id, kind, name, country, zone) in LOCATIONS {
        let body = json!({"kind": kind, "name": name, "country": country, "zone": zone});
        let response = client
            .put_location(id, &body, &format!("demo-location-{id}-v1"))
            .await?;
        anyhow::ensure!(
            response.status.is_success(),
            "registering location {id} answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.raw)
        );
    }
    let targets = targets();
    let mut skus: Vec<&'static str> = targets.iter().map(|t| t.sku).collect();
    skus.dedup();
    let (mut restocked, mut adjusted) = (0, 0);
    for sku in &skus {
        let (status, body) = client
            .command_get(&format!("/v1/inventory/stock/{sku}"))
            .await?;
        anyhow::ensure!(
            status.is_success(),
            "reading stock of {sku} answered {status}: {body}"
        );
        let levels = body["levels"].as_array().cloned().unwrap_or_default();
        for target in targets.iter().filter(|t| t.sku == *sku) {
            let free = levels
                .iter()
                .find(|l| l["location_id"] == target.location)
                .and_then(|l| l["available"].as_i64())
                .unwrap_or(0);
            let Some((kind, body)) = movement(target, free) else {
                continue;
            };
            let key = format!("demo-{kind}-{sku}-{}-{run}", target.location);
            let response = client
                .move_stock(sku, target.location, kind, &body, &key)
                .await
                .with_context(|| format!("{kind} {sku} at {}", target.location))?;
            anyhow::ensure!(
                response.status.is_success(),
                "{kind} of {sku} at {} answered {}: {}",
                target.location,
                response.status,
                String::from_utf8_lossy(&response.raw)
            );
            if kind == "restock" {
                restocked += 1;
            } else {
                adjusted += 1;
            }
        }
    }
    println!(
        "Seeded {} locations and {} SKUs ({restocked} restocks, {adjusted} adjustments; the rest had enough free stock)",
        LOCATIONS.len(),
        skus.len()
    );
    Ok(skus)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(sku: &'static str, free: i64) -> Target {
        Target {
            sku,
            location: "wh-east",
            free,
        }
    }

    #[test]
    fn stock_is_topped_up_only_when_running_low() {
        let tee = target("TEE-RED-M", 40);
        assert_eq!(
            movement(&tee, 0),
            Some(("restock", json!({"quantity": 40})))
        );
        assert_eq!(
            movement(&tee, 19),
            Some(("restock", json!({"quantity": 21})))
        );
        assert_eq!(movement(&tee, 20), None, "half the target is enough");
        assert_eq!(movement(&tee, 500), None, "never taken away");
    }

    #[test]
    fn the_scarce_sku_is_set_to_exactly_its_target() {
        let scarce = target(SCARCE_SKU, 1);
        assert_eq!(
            movement(&scarce, 0),
            Some(("restock", json!({"quantity": 1})))
        );
        assert_eq!(movement(&scarce, 1), None);
        assert_eq!(
            movement(&scarce, 4),
            Some((
                "adjust",
                json!({"delta": -3, "reason": "demo keeps one unit"})
            ))
        );
    }

    #[test]
    fn every_location_a_target_names_is_registered() {
        for t in targets() {
            assert!(LOCATIONS.iter().any(|(id, ..)| *id == t.location), "{t:?}");
        }
    }
}
