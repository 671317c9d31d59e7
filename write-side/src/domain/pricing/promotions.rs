//! Promotion codes: each code a request names becomes one order-level discount `{code, amount}`,
//! so the totals show what every code took off.
//!
//! The codes ([`PROMOTIONS`]):
//! - `SAVE10`: 10 % off the merchandise, rounded down to the minor unit; any currency; needs a
//!   merchandise subtotal of at least 50 (major units of the order currency).
//! - `WELCOME5`: 5.00 off; orders in USD, EUR or GBP only; no minimum.
//! - `FREESHIP`: the shipping price off (after the rate table); any currency, no minimum.
//!
//! "Merchandise" is Σ quantity × unit price − line discounts. Codes are matched ignoring case and
//! applied in the order of the table whatever the order in the request (percentages first), each
//! to what is left of the merchandise after the channel's own order discounts and the codes
//! before it, so merchandise promotions never take off more than the merchandise. A code may be
//! named once.

use waybill_schemas::events::Discount;
use waybill_schemas::{Currency, Money};

/// What a promotion takes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A percentage of the remaining merchandise, rounded down.
    PercentOff(u8),
    /// A fixed amount in major units of the order currency, at most the remaining merchandise.
    AmountOff { major: i64 },
    /// The shipping price.
    FreeShipping,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Promotion {
    pub code: &'static str,
    pub effect: Effect,
    /// Currencies the code is valid in; empty: all.
    pub currencies: &'static [&'static str],
    /// Least merchandise subtotal, in major units of the order currency.
    pub min_subtotal_major: i64,
}

pub const PROMOTIONS: &[Promotion] = &[
    Promotion {
        code: "SAVE10",
        effect: Effect::PercentOff(10),
        currencies: &[],
        min_subtotal_major: 50,
    },
    Promotion {
        code: "WELCOME5",
        effect: Effect::AmountOff { major: 5 },
        currencies: &["USD", "EUR", "GBP"],
        min_subtotal_major: 0,
    },
    Promotion {
        code: "FREESHIP",
        effect: Effect::FreeShipping,
        currencies: &[],
        min_subtotal_major: 0,
    },
];

/// The promotion named `code` (any case).
pub fn lookup(code: &str) -> Option<&'static Promotion> {
    PROMOTIONS
        .iter()
        .find(|p| p.code.eq_ignore_ascii_case(code.trim()))
}

/// What the codes of one order took off.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// One per code, in table order.
    pub discounts: Vec<Discount>,
    /// The part of `discounts` that is shipping (lowers the taxed shipping amount).
    pub shipping_minor: i64,
}

/// The discounts of `codes` (each with its index in the request's `promo_codes`), or for each
/// code whose conditions the order does not meet, its index and which condition failed.
///
/// `merchandise_minor` decides the minimum; `remaining_minor` (merchandise after the channel's
/// order discounts) is what merchandise promotions may take off.
pub fn apply(
    codes: &[(usize, &'static Promotion)],
    currency: Currency,
    merchandise_minor: i64,
    remaining_minor: i64,
    shipping_minor: i64,
) -> Result<Applied, Vec<(usize, String)>> {
    let mut refused = Vec::new();
    for (i, promotion) in codes {
        if let Err(why) = eligible(promotion, currency, merchandise_minor) {
            refused.push((*i, why));
        }
    }
    if !refused.is_empty() {
        return Err(refused);
    }
    let mut ordered: Vec<&Promotion> = codes.iter().map(|(_, p)| *p).collect();
    ordered.sort_by_key(|p| PROMOTIONS.iter().position(|q| q == *p));
    let mut left = remaining_minor.max(0);
    let mut applied = Applied {
        discounts: Vec::with_capacity(ordered.len()),
        shipping_minor: 0,
    };
    for promotion in ordered {
        let amount = match promotion.effect {
            Effect::PercentOff(pct) => {
                let off = i128::from(left) * i128::from(pct) / 100;
                i64::try_from(off).unwrap_or(left).min(left)
            }
            Effect::AmountOff { major } => major_to_minor(major, currency)
                .unwrap_or(i64::MAX)
                .min(left),
            Effect::FreeShipping => {
                applied.shipping_minor = shipping_minor;
                shipping_minor
            }
        };
        if !matches!(promotion.effect, Effect::FreeShipping) {
            left -= amount;
        }
        applied.discounts.push(Discount {
            code: promotion.code.to_owned(),
            amount: Money::new(amount, currency),
        });
    }
    Ok(applied)
}

/// Whether the order may use `promotion`; the error says which condition is not met.
fn eligible(
    promotion: &Promotion,
    currency: Currency,
    merchandise_minor: i64,
) -> Result<(), String> {
    if !promotion.currencies.is_empty() && !promotion.currencies.contains(&currency.code()) {
        return Err(format!(
            "{} is valid only for orders in {} (this order is in {currency})",
            promotion.code,
            promotion.currencies.join(", ")
        ));
    }
    let minimum = major_to_minor(promotion.min_subtotal_major, currency).unwrap_or(i64::MAX);
    if merchandise_minor < minimum {
        return Err(format!(
            "{} needs a subtotal of at least {} (this order's is {})",
            promotion.code,
            Money::new(minimum, currency),
            Money::new(merchandise_minor, currency)
        ));
    }
    Ok(())
}

fn major_to_minor(major: i64, currency: Currency) -> Option<i64> {
    10_i64
        .checked_pow(u32::from(currency.exponent()))
        .and_then(|scale| major.checked_mul(scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).expect("known currency")
    }

    fn codes(names: &[&str]) -> Vec<(usize, &'static Promotion)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (i, lookup(n).expect("known code")))
            .collect()
    }

    fn amounts(applied: &Applied) -> Vec<(&str, i64)> {
        applied
            .discounts
            .iter()
            .map(|d| (d.code.as_str(), d.amount.minor))
            .collect()
    }

    #[test]
    fn each_code_becomes_a_discount_in_table_order() {
        let applied = apply(
            &codes(&["freeship", "WELCOME5", "save10"]),
            cur("USD"),
            6_000,
            6_000,
            1_500,
        )
        .expect("eligible");
        assert_eq!(
            amounts(&applied),
            vec![("SAVE10", 600), ("WELCOME5", 500), ("FREESHIP", 1_500)]
        );
        assert_eq!(applied.shipping_minor, 1_500);
    }

    #[test]
    fn unmet_conditions_say_which_one() {
        let refused = apply(&codes(&["SAVE10"]), cur("USD"), 3_000, 3_000, 0).expect_err("minimum");
        assert_eq!(
            refused,
            vec![(
                0,
                "SAVE10 needs a subtotal of at least 50.00 USD (this order's is 30.00 USD)"
                    .to_owned()
            )]
        );
        let refused = apply(
            &codes(&["FREESHIP", "WELCOME5"]),
            cur("JPY"),
            9_000,
            9_000,
            700,
        )
        .expect_err("currency");
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, 1);
        assert!(refused[0]
            .1
            .contains("only for orders in USD, EUR, GBP (this order is in JPY)"));
    }

    #[test]
    fn a_fixed_amount_never_exceeds_what_is_left() {
        let applied = apply(&codes(&["WELCOME5"]), cur("EUR"), 300, 300, 0).expect("eligible");
        assert_eq!(amounts(&applied), vec![("WELCOME5", 300)]);
        assert!(lookup("NOPE").is_none());
    }

    proptest! {
        #[test]
        fn merchandise_promotions_never_exceed_the_merchandise(
            merchandise in 0i64..10_000_000, channel_discount in 0i64..10_000_000,
            shipping in 0i64..100_000, pick in prop::collection::btree_set(0..PROMOTIONS.len(), 0..=3)) {
            let remaining = (merchandise - channel_discount).max(0);
            let chosen: Vec<(usize, &'static Promotion)> =
                pick.into_iter().enumerate().map(|(i, p)| (i, &PROMOTIONS[p])).collect();
            if let Ok(applied) = apply(&chosen, cur("USD"), merchandise, remaining, shipping) {
                let merch: i64 = applied.discounts.iter().filter(|d| d.code != "FREESHIP")
                    .map(|d| d.amount.minor).sum();
                prop_assert!(applied.discounts.iter().all(|d| d.amount.minor >= 0));
                prop_assert!(merch <= remaining);
                prop_assert!(applied.shipping_minor <= shipping);
            }
        }
    }
}
