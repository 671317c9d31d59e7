//! Realistic place-order requests for the demo and the benchmark: several channels and
//! currencies, one to four lines from a small catalogue, line and order discounts, taxes at the
//! destination's rate, and shipping. Deterministic for a given seed. [`OrderShape`] fixes what
//! the demo needs fixed (channel, payment, lines, who prices the order, promotion codes).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

pub struct Product {
    pub sku: &'static str,
    pub name: &'static str,
    /// Price in minor units of USD; scaled for other currencies.
    pub usd_minor: i64,
}

pub const CATALOGUE: &[Product] = &[
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

/// Products the demo orders on purpose and random orders never draw: one expensive enough for
/// the fraud review, one stocked with a single unit.
pub const SPECIALS: &[Product] = &[
    Product {
        sku: "WATCH-GOLD",
        name: "Gold watch",
        usd_minor: 250_000,
    },
    Product {
        sku: "PRINT-LTD",
        name: "Signed print, limited",
        usd_minor: 6_500,
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
    /// The store customers of this market collect pickup orders at (`shipping.pickup_location`);
    /// a market without one ships its orders instead.
    pickup_store: Option<&'static str>,
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
        pickup_store: Some("store-chicago"),
    },
    Market {
        currency: "EUR",
        scale_percent: 92,
        tax_bp: 1_900,
        city: "Berlin",
        region: None,
        postal: "10115",
        country: "DE",
        pickup_store: None,
    },
    Market {
        currency: "GBP",
        scale_percent: 79,
        tax_bp: 2_000,
        city: "London",
        region: None,
        postal: "SW1A 1AA",
        country: "GB",
        pickup_store: None,
    },
    Market {
        currency: "JPY",
        scale_percent: 150,
        tax_bp: 1_000,
        city: "Tokyo",
        region: Some("Tokyo"),
        postal: "100-0001",
        country: "JP",
        pickup_store: None,
    },
    Market {
        currency: "CAD",
        scale_percent: 136,
        tax_bp: 1_300,
        city: "Toronto",
        region: Some("ON"),
        postal: "M5H 2N2",
        country: "CA",
        pickup_store: None,
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

/// The sandbox card that authorizes (write-side/PAYMENT-SANDBOX.md).
pub const APPROVED_CARD: &str = "tok_4242424242424242";

/// How an order pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payment {
    /// A sandbox card token; see write-side/PAYMENT-SANDBOX.md for what each one does.
    Card(&'static str),
    /// Paid on the channel (marketplace, till): nothing to authorize.
    Prepaid,
}

/// Who sets tax and shipping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pricing {
    /// The request carries line taxes, the shipping price and its tax (as channels that price
    /// their own orders do), sometimes with a channel discount.
    Sent,
    /// The request leaves them out; the enrichment rules at capture fill them in.
    ByRules,
}

/// The shape of one order. What is not fixed here (market, customer name, lines when `lines`
/// is empty) is drawn from the factory's seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderShape {
    /// `web`, `app`, `pos` or `marketplace`.
    pub channel: &'static str,
    pub payment: Payment,
    /// `(sku, quantity)`; empty: one to four catalogue lines.
    pub lines: Vec<(&'static str, u32)>,
    /// The market's currency (`USD`, `EUR`, `GBP`, `JPY`, `CAD`); `None`: drawn.
    pub currency: Option<&'static str>,
    pub pricing: Pricing,
    pub promo_codes: Vec<&'static str>,
    /// Replaces the generated customer email (one of its own per order and run).
    pub email: Option<String>,
}

impl OrderShape {
    /// A web order paid by `payment`, everything else drawn.
    pub fn web(payment: Payment) -> Self {
        Self {
            channel: "web",
            payment,
            lines: Vec::new(),
            currency: None,
            pricing: Pricing::Sent,
            promo_codes: Vec::new(),
            email: None,
        }
    }
}

/// Generates order requests; `run` makes channel refs, emails and IPs unique across runs (so
/// repeated runs never trip the risk rules' velocity limits).
pub struct OrderFactory {
    rng: StdRng,
    run: String,
    /// Second octet of the generated IPs, from `run`.
    ip_octet: u8,
}

impl OrderFactory {
    pub fn new(seed: u64, run: impl Into<String>) -> Self {
        let run = run.into();
        let ip_octet = run
            .bytes()
            .fold(7u8, |acc, b| acc.wrapping_mul(31).wrapping_add(b));
        Self {
            rng: StdRng::seed_from_u64(seed),
            run,
            ip_octet,
        }
    }

    /// The `n`-th order of this run: channels in turn, marketplace and till orders prepaid,
    /// web and app orders paid by the card that authorizes.
    pub fn order(&mut self, n: usize) -> Value {
        let (channel, _) = CHANNELS[n % CHANNELS.len()];
        let payment = match channel {
            "marketplace" | "pos" => Payment::Prepaid,
            _ => Payment::Card(APPROVED_CARD),
        };
        self.shaped(
            n,
            &OrderShape {
                channel,
                ..OrderShape::web(payment)
            },
        )
    }

    /// The `n`-th order of this run, shaped by `shape`.
    pub fn shaped(&mut self, n: usize, shape: &OrderShape) -> Value {
        let rng = &mut self.rng;
        let prefix = CHANNELS
            .iter()
            .find(|(channel, _)| *channel == shape.channel)
            .map_or("ORD", |(_, prefix)| *prefix);
        let drawn_market = &MARKETS[rng.random_range(0..MARKETS.len())];
        let market = shape
            .currency
            .and_then(|code| MARKETS.iter().find(|m| m.currency == code))
            .unwrap_or(drawn_market);
        let name = NAMES[rng.random_range(0..NAMES.len())];
        let chosen: Vec<(&Product, i64)> = if shape.lines.is_empty() {
            let line_count = rng.random_range(1..=4);
            (0..line_count)
                .map(|i| {
                    (
                        &CATALOGUE[(n + i * 3) % CATALOGUE.len()],
                        rng.random_range(1..=3),
                    )
                })
                .collect()
        } else {
            shape
                .lines
                .iter()
                .filter_map(|(sku, quantity)| Some((product(sku)?, i64::from(*quantity))))
                .collect()
        };
        let sent = shape.pricing == Pricing::Sent;
        let mut lines = Vec::with_capacity(chosen.len());
        let mut subtotal_after_line_discounts = 0i64;
        for (product, quantity) in chosen {
            let unit = price(product.usd_minor, market);
            let gross = unit * quantity;
            // One line in five is on sale: 10 % off the line.
            let discount = if rng.random_ratio(1, 5) {
                gross / 10
            } else {
                0
            };
            subtotal_after_line_discounts += gross - discount;
            let mut line = json!({
                "sku": product.sku, "name": product.name, "quantity": quantity,
                "unit_price_minor": unit, "discount_minor": discount,
            });
            if sent {
                line["tax_minor"] = json!((gross - discount) * market.tax_bp / 10_000);
            }
            lines.push(line);
        }
        // One order in four that prices itself and names no promotion code carries a channel
        // discount worth 5 (or the local equivalent), never above the subtotal.
        let discounts = if sent && shape.promo_codes.is_empty() && rng.random_ratio(1, 4) {
            let amount = price(500, market).min(subtotal_after_line_discounts / 2);
            vec![json!({"code": "WELCOME5", "amount_minor": amount})]
        } else {
            Vec::new()
        };
        let (method, shipping_usd) = match (rng.random_range(0..3), market.pickup_store) {
            (1, _) => ("express", 1_500),
            (2, Some(_)) => ("pickup", 0),
            _ => ("standard", 500),
        };
        let mut shipping = if sent {
            let price = price(shipping_usd, market);
            json!({"method": method, "price_minor": price, "tax_minor": price * market.tax_bp / 10_000})
        } else {
            json!({"method": method})
        };
        if method == "pickup" {
            shipping["pickup_location"] = json!(market.pickup_store);
        }
        let address = json!({
            "name": name, "line1": format!("{} Main St", 1 + n % 200), "line2": null,
            "city": market.city, "region": market.region, "postal_code": market.postal,
            "country": market.country,
        });
        let email = shape.email.clone().unwrap_or_else(|| {
            format!(
                "{}+{}-{n}@example.com",
                name.split(' ').next().unwrap_or("customer").to_lowercase(),
                self.run
            )
        });
        // Card orders come from an address of their own (no velocity hits).
        let (payment, risk_context) = match shape.payment {
            Payment::Prepaid => (
                json!({"method": "prepaid", "reference": format!("PAY-{}-{n}", self.run)}),
                Value::Null,
            ),
            Payment::Card(token) => (
                json!({"method": "card", "token": token}),
                json!({"ip": format!("10.{}.{}.{}", self.ip_octet, (n >> 8) & 255, n & 255)}),
            ),
        };
        json!({
            "channel": shape.channel,
            "channel_order_ref": format!("{prefix}-{}-{n}", self.run),
            "currency": market.currency,
            "customer": {"customer_id": format!("c-{}", n % 997), "name": name, "email": email,
                         "phone": format!("+1 312 555 {:04}", n % 10_000)},
            "lines": lines,
            "discounts": discounts,
            "promo_codes": shape.promo_codes,
            "shipping_address": address,
            "billing_address": null,
            "shipping": shipping,
            "payment": payment,
            "risk_context": risk_context,
        })
    }
}

/// A product of the catalogue or of the specials.
fn product(sku: &str) -> Option<&'static Product> {
    CATALOGUE.iter().chain(SPECIALS).find(|p| p.sku == sku)
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
        let routing =
            waybill_write_side::domain::fulfillment::RoutingConfig::bundled().expect("bundled");
        let mut pickups = 0;
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
            let mut parsed = waybill_write_side::domain::parse_place_order(&order)
                .unwrap_or_else(|e| panic!("order {n} refused: {e}"));
            assert!(parsed.payment.is_some());
            // Pickup orders name a store that offers pickup (US market only).
            waybill_write_side::domain::choose_pickup_store(&mut parsed, &routing)
                .unwrap_or_else(|e| panic!("order {n}: {e}"));
            if parsed.shipping.method == "pickup" {
                pickups += 1;
                assert_eq!(order["shipping_address"]["country"], "US");
            }
        }
        assert!(pickups > 0, "some orders are collected at a store");
    }

    #[test]
    fn shaped_orders_keep_what_the_shape_fixes() {
        let mut factory = OrderFactory::new(3, "r");
        let shape = OrderShape {
            lines: vec![("WATCH-GOLD", 1)],
            currency: Some("USD"),
            promo_codes: vec!["SAVE10"],
            email: Some("blocked@example.com".to_owned()),
            ..OrderShape::web(Payment::Card("tok_4000000000003220"))
        };
        let order = factory.shaped(5, &shape);
        assert_eq!(order["channel_order_ref"], "WEB-r-5");
        assert_eq!(order["currency"], "USD");
        assert_eq!(order["lines"].as_array().unwrap().len(), 1);
        assert_eq!(order["lines"][0]["sku"], "WATCH-GOLD");
        assert_eq!(order["lines"][0]["unit_price_minor"], 250_000);
        assert_eq!(order["promo_codes"], serde_json::json!(["SAVE10"]));
        assert_eq!(order["customer"]["email"], "blocked@example.com");
        assert_eq!(order["payment"]["token"], "tok_4000000000003220");
        let parsed = waybill_write_side::domain::parse_place_order(&order).unwrap();
        assert_eq!(parsed.discounts.len(), 1, "SAVE10 became a discount");
        assert_eq!(parsed.discounts[0].code, "SAVE10");
        assert!(parsed.discounts[0].amount.minor >= 22_500);
    }

    #[test]
    fn orders_priced_by_rules_leave_tax_and_shipping_price_out() {
        let mut factory = OrderFactory::new(4, "r");
        for n in 0..50 {
            let order = factory.shaped(
                n,
                &OrderShape {
                    pricing: Pricing::ByRules,
                    ..OrderShape::web(Payment::Prepaid)
                },
            );
            for line in order["lines"].as_array().unwrap() {
                assert!(line.get("tax_minor").is_none(), "{line}");
            }
            assert!(order["shipping"].get("price_minor").is_none());
            assert!(order["discounts"].as_array().unwrap().is_empty());
            waybill_write_side::domain::parse_place_order(&order)
                .unwrap_or_else(|e| panic!("order {n} refused: {e}"));
        }
    }

    #[test]
    fn runs_differ_in_emails_and_ips() {
        let a = OrderFactory::new(1, "run-a").order(0);
        let b = OrderFactory::new(1, "run-b").order(0);
        assert_ne!(a["customer"]["email"], b["customer"]["email"]);
        assert_ne!(a["risk_context"]["ip"], b["risk_context"]["ip"]);
    }
}
