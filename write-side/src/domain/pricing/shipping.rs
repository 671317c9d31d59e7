//! The shipping rate table: the price of a method to a zone, in the order's currency, used when
//! a request leaves `shipping.price_minor` out.
//!
//! Orders ship from [`SHIP_FROM_COUNTRY`] (US); an address in that country is the domestic
//! zone, anywhere else international. Prices in major units of the currency:
//!
//! | currency | standard dom. / intl. | express dom. / intl. | pickup | free standard (domestic) from |
//! |---|---|---|---|---|
//! | USD | 5 / 15 | 15 / 40 | 0 | 50 |
//! | EUR | 5 / 15 | 15 / 40 | 0 | 50 |
//! | GBP | 4 / 12 | 12 / 35 | 0 | 40 |
//! | CAD | 7 / 20 | 20 / 55 | 0 | 70 |
//! | AUD | 8 / 22 | 22 / 60 | 0 | 80 |
//! | JPY | 700 / 2,000 | 2,000 / 5,500 | 0 | 7,000 |
//!
//! Standard shipping to the domestic zone is free when the merchandise subtotal (after line
//! discounts, before order-level discounts) reaches the threshold. Other currencies have no
//! rates: such an order must send its own `price_minor`. Method names are matched ignoring case
//! and surrounding spaces; a request that sends its own price may name any method.

use waybill_schemas::Currency;

/// The country orders ship from; it decides the zone.
pub const SHIP_FROM_COUNTRY: &str = "US";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Standard,
    Express,
    Pickup,
}

impl Method {
    /// The names the rate table knows.
    pub const NAMES: &'static str = "standard, express, pickup";

    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "standard" => Some(Self::Standard),
            "express" => Some(Self::Express),
            "pickup" => Some(Self::Pickup),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Domestic,
    International,
}

impl Zone {
    /// The zone of a destination country (normalized ISO code).
    pub fn of(country: &str) -> Self {
        if country == SHIP_FROM_COUNTRY {
            Self::Domestic
        } else {
            Self::International
        }
    }
}

/// One currency's rates, in minor units.
pub struct RateCard {
    pub currency: &'static str,
    /// `[domestic, international]`.
    pub standard: [i64; 2],
    pub express: [i64; 2],
    /// Domestic standard shipping is free from this merchandise subtotal.
    pub free_standard_from: i64,
}

pub const RATE_CARDS: &[RateCard] = &[
    RateCard {
        currency: "USD",
        standard: [500, 1_500],
        express: [1_500, 4_000],
        free_standard_from: 5_000,
    },
    RateCard {
        currency: "EUR",
        standard: [500, 1_500],
        express: [1_500, 4_000],
        free_standard_from: 5_000,
    },
    RateCard {
        currency: "GBP",
        standard: [400, 1_200],
        express: [1_200, 3_500],
        free_standard_from: 4_000,
    },
    RateCard {
        currency: "CAD",
        standard: [700, 2_000],
        express: [2_000, 5_500],
        free_standard_from: 7_000,
    },
    RateCard {
        currency: "AUD",
        standard: [800, 2_200],
        express: [2_200, 6_000],
        free_standard_from: 8_000,
    },
    RateCard {
        currency: "JPY",
        standard: [700, 2_000],
        express: [2_000, 5_500],
        free_standard_from: 7_000,
    },
];

/// The price in minor units of `method` to `zone` for an order of `merchandise_minor`;
/// `None` when the currency has no rate card.
pub fn rate(method: Method, zone: Zone, currency: Currency, merchandise_minor: i64) -> Option<i64> {
    let card = RATE_CARDS.iter().find(|c| c.currency == currency.code())?;
    let z = match zone {
        Zone::Domestic => 0,
        Zone::International => 1,
    };
    Some(match method {
        Method::Pickup => 0,
        Method::Standard
            if zone == Zone::Domestic && merchandise_minor >= card.free_standard_from =>
        {
            0
        }
        Method::Standard => card.standard[z],
        Method::Express => card.express[z],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd() -> Currency {
        Currency::parse("USD").expect("USD")
    }

    #[test]
    fn the_table_prices_each_method_and_zone() {
        let (d, i) = (Zone::Domestic, Zone::International);
        assert_eq!(rate(Method::Standard, d, usd(), 3_000), Some(500));
        assert_eq!(rate(Method::Standard, i, usd(), 3_000), Some(1_500));
        assert_eq!(rate(Method::Express, d, usd(), 3_000), Some(1_500));
        assert_eq!(rate(Method::Express, i, usd(), 3_000), Some(4_000));
        assert_eq!(rate(Method::Pickup, i, usd(), 3_000), Some(0));
        let sek = Currency::parse("SEK").expect("SEK");
        assert_eq!(rate(Method::Standard, d, sek, 3_000), None);
    }

    #[test]
    fn domestic_standard_shipping_is_free_from_the_threshold() {
        assert_eq!(
            rate(Method::Standard, Zone::Domestic, usd(), 4_999),
            Some(500)
        );
        assert_eq!(
            rate(Method::Standard, Zone::Domestic, usd(), 5_000),
            Some(0)
        );
        assert_eq!(
            rate(Method::Standard, Zone::International, usd(), 50_000),
            Some(1_500)
        );
        assert_eq!(
            rate(Method::Express, Zone::Domestic, usd(), 50_000),
            Some(1_500)
        );
    }

    #[test]
    fn zones_and_methods_parse() {
        assert_eq!(Zone::of("US"), Zone::Domestic);
        assert_eq!(Zone::of("CA"), Zone::International);
        assert_eq!(Method::parse(" Express "), Some(Method::Express));
        assert_eq!(Method::parse("drone"), None);
    }

    proptest! {
        #[test]
        fn rates_are_never_negative_and_every_card_currency_exists(
            card in 0..RATE_CARDS.len(), sub in 0i64..1_000_000, m in 0..3usize, intl: bool) {
            let currency = Currency::parse(RATE_CARDS[card].currency).expect("known currency");
            let method = [Method::Standard, Method::Express, Method::Pickup][m];
            let zone = if intl { Zone::International } else { Zone::Domestic };
            let price = rate(method, zone, currency, sub).expect("card exists");
            prop_assert!(price >= 0);
        }
    }
}
