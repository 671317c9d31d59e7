//! Tax rules: one rate per destination, applied to each line after its discount and, where the
//! destination taxes it, to shipping.
//!
//! Rates are in parts per million of the taxed amount (72,500 = 7.25 %). The tax of an amount is
//! rounded half up to the minor unit (`amount × rate / 1,000,000`, a remainder of one half or
//! more rounds up), computed per line, so the tax total is the sum of the line taxes plus the
//! shipping tax and every line's tax can be checked on its own.
//!
//! Order-level discounts (promotion codes) do not lower the taxed amount of the lines: they are
//! shown as discounts of the order as a whole. Shipping is taxed on its price after a free
//! shipping promotion.
//!
//! The rate is chosen by the shipping address:
//! - United States, by state (`region`, case-insensitive), state base rates only (no county or
//!   city rates): CA 7.25 % (shipping not taxed), FL 6 % (taxed), IL 6.25 % (not taxed),
//!   NY 4 % (taxed), TX 6.25 % (taxed), WA 6.5 % (taxed). Any other state, or no state: 0 %.
//! - Standard VAT/GST per country, shipping taxed: AT 20 %, AU 10 %, BE 21 %, CA 5 % (federal
//!   GST only), CH 8.1 %, DE 19 %, DK 25 %, ES 21 %, FR 20 %, GB 20 %, IE 23 %, IT 22 %,
//!   JP 10 %, NL 21 %, NZ 15 %, PL 23 %, PT 23 %, SE 25 %.
//! - Any other country: 0 % (no rule).
//!
//! A line or shipping that arrives with its tax already set (`tax_minor`, marketplace-priced
//! orders) keeps it; these rules only fill in what is absent.

use waybill_schemas::events::Address;

/// Parts per million in one whole.
const PPM: i128 = 1_000_000;

/// The rate that applies to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxRule {
    /// Where the rate comes from, e.g. `US-IL`, `DE`, or `none`.
    pub jurisdiction: &'static str,
    /// Parts per million of the taxed amount.
    pub rate_ppm: u32,
    pub shipping_taxable: bool,
}

/// No tax: destinations without a rule.
pub const NO_TAX: TaxRule = TaxRule {
    jurisdiction: "none",
    rate_ppm: 0,
    shipping_taxable: false,
};

const fn rule(jurisdiction: &'static str, rate_ppm: u32, shipping_taxable: bool) -> TaxRule {
    TaxRule {
        jurisdiction,
        rate_ppm,
        shipping_taxable,
    }
}

/// US states with a rule, by two-letter state code.
pub const US_STATES: &[(&str, TaxRule)] = &[
    ("CA", rule("US-CA", 72_500, false)),
    ("FL", rule("US-FL", 60_000, true)),
    ("IL", rule("US-IL", 62_500, false)),
    ("NY", rule("US-NY", 40_000, true)),
    ("TX", rule("US-TX", 62_500, true)),
    ("WA", rule("US-WA", 65_000, true)),
];

/// Countries with one national rate.
pub const COUNTRIES: &[(&str, TaxRule)] = &[
    ("AT", rule("AT", 200_000, true)),
    ("AU", rule("AU", 100_000, true)),
    ("BE", rule("BE", 210_000, true)),
    ("CA", rule("CA", 50_000, true)),
    ("CH", rule("CH", 81_000, true)),
    ("DE", rule("DE", 190_000, true)),
    ("DK", rule("DK", 250_000, true)),
    ("ES", rule("ES", 210_000, true)),
    ("FR", rule("FR", 200_000, true)),
    ("GB", rule("GB", 200_000, true)),
    ("IE", rule("IE", 230_000, true)),
    ("IT", rule("IT", 220_000, true)),
    ("JP", rule("JP", 100_000, true)),
    ("NL", rule("NL", 210_000, true)),
    ("NZ", rule("NZ", 150_000, true)),
    ("PL", rule("PL", 230_000, true)),
    ("PT", rule("PT", 230_000, true)),
    ("SE", rule("SE", 250_000, true)),
];

/// The rule for goods shipped to `address` (its country already normalized).
pub fn rule_for(address: &Address) -> TaxRule {
    if address.country == "US" {
        let state = address.region.as_deref().unwrap_or_default();
        return US_STATES
            .iter()
            .find(|(code, _)| code.eq_ignore_ascii_case(state.trim()))
            .map_or(NO_TAX, |(_, rule)| *rule);
    }
    COUNTRIES
        .iter()
        .find(|(code, _)| *code == address.country)
        .map_or(NO_TAX, |(_, rule)| *rule)
}

/// Tax on `amount_minor` (≥ 0) at `rate_ppm`, rounded half up to the minor unit; `None` when
/// the amount is negative or the tax does not fit in an `i64`.
pub fn tax_on(amount_minor: i64, rate_ppm: u32) -> Option<i64> {
    if amount_minor < 0 {
        return None;
    }
    let scaled = i128::from(amount_minor) * i128::from(rate_ppm) + PPM / 2;
    i64::try_from(scaled / PPM).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn to(country: &str, region: Option<&str>) -> Address {
        Address {
            name: "A".into(),
            line1: "1 Main St".into(),
            line2: None,
            city: "X".into(),
            region: region.map(str::to_owned),
            postal_code: "1".into(),
            country: country.into(),
        }
    }

    #[test]
    fn the_rate_follows_the_destination() {
        assert_eq!(rule_for(&to("US", Some("il"))).jurisdiction, "US-IL");
        assert_eq!(rule_for(&to("US", Some("OR"))), NO_TAX);
        assert_eq!(rule_for(&to("US", None)), NO_TAX);
        assert_eq!(rule_for(&to("DE", None)).rate_ppm, 190_000);
        assert_eq!(rule_for(&to("BR", None)), NO_TAX);
        assert!(!rule_for(&to("US", Some("CA"))).shipping_taxable);
        assert!(rule_for(&to("CA", Some("ON"))).shipping_taxable);
    }

    #[test]
    fn tax_rounds_half_up_to_the_minor_unit() {
        assert_eq!(tax_on(3000, 62_500), Some(188)); // 187.5
        assert_eq!(tax_on(1000, 62_500), Some(63)); // 62.5
        assert_eq!(tax_on(999, 72_500), Some(72)); // 72.4275
        assert_eq!(tax_on(1, 190_000), Some(0)); // 0.19
        assert_eq!(tax_on(3, 190_000), Some(1)); // 0.57
        assert_eq!(tax_on(0, 250_000), Some(0));
        assert_eq!(tax_on(-1, 250_000), None);
        assert_eq!(tax_on(i64::MAX, 1_000_000), Some(i64::MAX));
        assert_eq!(tax_on(i64::MAX, 1_000_001), None);
    }

    proptest! {
        #[test]
        fn tax_is_never_negative_and_never_more_than_half_a_unit_off(
            amount in 0i64..=1_000_000_000_000_000, rate in 0u32..=300_000) {
            let tax = tax_on(amount, rate).expect("fits");
            prop_assert!(tax >= 0);
            let exact = i128::from(amount) * i128::from(rate);
            let diff = i128::from(tax) * PPM - exact;
            prop_assert!((-PPM / 2 + 1..=PPM / 2).contains(&diff), "{tax} vs {exact}/1e6");
        }
    }
}
