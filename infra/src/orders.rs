//! Realistic place-order requests for the demo and the benchmark: several channels and
//! currencies, one to four lines from a small catalogue, line and order discounts, taxes at the
//! destination's rate, and shipping. Deterministic for a given seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

struct Product {
    sku: &'static str,
    name: &'static str,
    /// Price in minor units of USD; scaled for other currencies.
    usd_minor: i64,
}

const CATALOGUE: &[Product] = &[
    Product {
        sku: "TEE-RED-M",
        name: "Red tee, M",
        usd_minor: 1_500,
    },
    Product {
        sku: "TEE-BLK-L",
        name: "Black tee, L",
        usd_minor: 1_500,
    },
    Product {
        sku: "HOODIE-GRY-M",
        name: "Grey hoodie, M",
        usd_minor: 4_900,
    },
    Product {
        sku: "CAP-NAVY",
        name: "Navy cap",
        usd_minor: 2_200,
    },
    Product {
        sku: "MUG-LOGO",
        name: "Logo mug",
        usd_minor: 1_200,
    },
    Product {
        sku: "SOCKS-3PK",
        name: "Socks, 3 pack",
        usd_minor: 999,
    },
    Product {
        sku: "BAG-TOTE",
        name: "Canvas tote",
        usd_minor: 1_800,
    },
    Product {
        sku: "JKT-RAIN-S",
        name: "Rain jacket, S",
        usd_minor: 12_900,
    },
];

/// A market: currency, minor units per USD minor unit (rough), tax rate in basis points, address.
struct Market {
    currency: &'static str,
    scale_percent: i64,
    tax_bp: i64,
    city: &'static str,
    region: Option<&'static str>,
    postal: &'static str,
    country: &'static str,
}

const MARKETS: &[Market] = &[
    Market {
        currency: "USD",
        scale_percent: 100,
        tax_bp: 800,
        city: "Springfield",
        region: Some("IL"),
        postal: "62701",
        country: "US",
    },
    Market {
        currency: "EUR",
        scale_percent: 92,
        tax_bp: 1_900,
        city: "Berlin",
        region: None,
        postal: "10115",
        country: "DE",
    },
    Market {
        currency: "GBP",
        scale_percent: 79,
        tax_bp: 2_000,
        city: "London",
        region: None,
        postal: "SW1A 1AA",
        country: "GB",
    },
    Market {
        currency: "JPY",
        scale_percent: 150,
        tax_bp: 1_000,
        city: "Tokyo",
        region: Some("Tokyo"),
        postal: "100-0001",
        country: "JP",
    },
    Market {
        currency: "CAD",
        scale_percent: 136,
        tax_bp: 1_300,
        city: "Toronto",
        region: Some("ON"),
        postal: "M5H 2N2",
        country: "CA",
    },
];

const CHANNELS: &[(&str, &str)] = &[
    ("web", "WEB"),
    ("app", "APP"),
    ("pos", "POS"),
    ("marketplace", "MKT"),
];
const NAMES: &[&str] = &[
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Ken Thompson",
    "Frances Allen",
    "Donald Knuth",
];

/// Generates order requests; `run` makes channel refs unique across runs.
pub struct OrderFactory {
    rng: StdRng,
    run: String,
}

impl OrderFactory {
    pub fn new(seed: u64, run: impl Into<String>) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            run: run.into(),
        }
    }

    /// The `n`-th order of this run.
    pub fn order(&mut self, n: usize) -> Value {
        let rng = &mut self.rng;
        let (channel, prefix) = CHANNELS[n % CHANNELS.len()];
        let market = &MARKETS[rng.random_range(0..MARKETS.len())];
        let name = NAMES[rng.random_range(0..NAMES.len())];
        let line_count = rng.random_range(1..=4);
        let mut lines = Vec::with_capacity(line_count);
        let mut subtotal_after_line_discounts = 0i64;
        for i in 0..line_count {
            let product = &CATALOGUE[(n + i * 3) % CATALOGUE.len()];
            let quantity: i64 = rng.random_range(1..=3);
            let unit = price(product.usd_minor, market);
            let gross = unit * quantity;
            // One line in five is on sale: 10 % off the line.
            let discount = if rng.random_ratio(1, 5) {
                gross / 10
            } else {
                0
            };
            let tax = (gross - discount) * market.tax_bp / 10_000;
            subtotal_after_line_discounts += gross - discount;
            lines.push(json!({
                "sku": product.sku, "name": product.name, "quantity": quantity,
                "unit_price_minor": unit, "discount_minor": discount, "tax_minor": tax,
            }));
        }
        // One order in four uses a code worth 5 (or the local equivalent), never above the subtotal.
        let discounts = if rng.random_ratio(1, 4) {
            let amount = price(500, market).min(subtotal_after_line_discounts / 2);
            vec![json!({"code": "WELCOME5", "amount_minor": amount})]
        } else {
            Vec::new()
        };
        let (method, shipping_usd) = match rng.random_range(0..3) {
            0 => ("standard", 500),
            1 => ("express", 1_500),
            _ => ("pickup", 0),
        };
        let shipping = price(shipping_usd, market);
        let address = json!({
            "name": name, "line1": format!("{} Main St", 1 + n % 200), "line2": null,
            "city": market.city, "region": market.region, "postal_code": market.postal,
            "country": market.country,
        });
        let email = format!(
            "{}+{}@example.com",
            name.split(' ').next().unwrap_or("customer").to_lowercase(),
            n
        );
        // Marketplaces and tills take the money themselves; web and app orders pay by the
        // sandbox card that authorizes, from an address of their own (no velocity hits).
        let (payment, risk_context) = match channel {
            "marketplace" | "pos" => (
                json!({"method": "prepaid", "reference": format!("PAY-{}-{n}", self.run)}),
                Value::Null,
            ),
            _ => (
                json!({"method": "card", "token": "tok_4242424242424242"}),
                json!({"ip": format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)}),
            ),
        };
        json!({
            "channel": channel,
            "channel_order_ref": format!("{prefix}-{}-{n}", self.run),
            "currency": market.currency,
            "customer": {"customer_id": format!("c-{}", n % 997), "name": name, "email": email, "phone": null},
            "lines": lines,
            "discounts": discounts,
            "shipping_address": address,
            "billing_address": null,
            "shipping": {"method": method, "price_minor": shipping, "tax_minor": shipping * market.tax_bp / 10_000},
            "payment": payment,
            "risk_context": risk_context,
        })
    }
}

fn price(usd_minor: i64, market: &Market) -> i64 {
    usd_minor * market.scale_percent / 100
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_deterministic_and_well_formed() {
        let a = OrderFactory::new(7, "r").order(3);
        let b = OrderFactory::new(7, "r").order(3);
        assert_eq!(a, b);
        let mut factory = OrderFactory::new(1, "r");
        for n in 0..200 {
            let order = factory.order(n);
            let lines = order["lines"].as_array().unwrap();
            assert!(!lines.is_empty() && lines.len() <= 4);
            let mut net = 0;
            for line in lines {
                let gross =
                    line["unit_price_minor"].as_i64().unwrap() * line["quantity"].as_i64().unwrap();
                let discount = line["discount_minor"].as_i64().unwrap();
                assert!(discount <= gross);
                net += gross - discount;
            }
            let order_discount: i64 = order["discounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["amount_minor"].as_i64().unwrap())
                .sum();
            assert!(
                order_discount <= net,
                "order {n} discounts exceed its subtotal"
            );
            assert_eq!(
                order["shipping_address"]["country"].as_str().unwrap().len(),
                2
            );
            let parsed = waybill_write_side::domain::parse_place_order(&order)
                .unwrap_or_else(|e| panic!("order {n} refused: {e}"));
            assert!(parsed.payment.is_some());
        }
    }
}
