//! A payment gateway's fee contract, per currency: on a capture a percentage of the gross plus
//! a fixed fee, on a lost dispute a dispute fee. The fixed and dispute fees are amounts of
//! money, so they are in each currency's own minor units: 0.30 is 30 cents but ¥0, and 15.00
//! is 1,500 cents, ¥15 and 15.000 KWD (15000 fils).
//!
//! The default contract (the sandbox gateway's) states them once in major units and scales
//! them by each currency's exponent ([`Currency::exponent`]); a deployment overrides any
//! currency with `WAYBILL_GATEWAY_FEES`, whose format [`FeeSchedule::parse_overrides`] reads:
//! `CUR=fixed/dispute` entries in minor units, comma-separated, e.g.
//! `USD=30/1500,JPY=40/2000,KWD=100/5000`.

use std::collections::BTreeMap;

use crate::values::{Currency, ValueError};

/// The fixed and dispute fee in one currency, in its minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyFees {
    pub fixed: i64,
    pub dispute: i64,
}

/// The gateway's fees: on a capture `basis_points` of the gross (rounded half up) plus the
/// currency's fixed fee; on a lost chargeback the currency's dispute fee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeSchedule {
    pub basis_points: i64,
    /// Fees of currencies that do not follow the scaled default.
    pub overrides: BTreeMap<Currency, CurrencyFees>,
}

/// Why a fee setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeeConfigError {
    #[error("'{0}' is not CUR=fixed/dispute (e.g. USD=30/1500)")]
    Entry(String),
    #[error("'{entry}': {source}")]
    Currency { entry: String, source: ValueError },
    #[error("'{0}': fees are whole, non-negative minor units")]
    Amount(String),
    #[error("{0} is given twice")]
    Twice(String),
}

impl FeeSchedule {
    /// 2.9 % per capture, the default contract's.
    pub const DEFAULT_BASIS_POINTS: i64 = 290;
    /// The default fixed fee per capture, 0.30, in hundredths of the major unit.
    const DEFAULT_FIXED_HUNDREDTHS: i64 = 30;
    /// The default fee per lost dispute, 15.00, in hundredths of the major unit.
    const DEFAULT_DISPUTE_HUNDREDTHS: i64 = 1_500;

    /// The default contract with `overrides` on top.
    pub fn new(basis_points: i64, overrides: BTreeMap<Currency, CurrencyFees>) -> Self {
        Self {
            basis_points,
            overrides,
        }
    }

    /// Reads `WAYBILL_GATEWAY_FEES` (empty: no overrides).
    pub fn parse_overrides(raw: &str) -> Result<BTreeMap<Currency, CurrencyFees>, FeeConfigError> {
        let mut overrides = BTreeMap::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (code, amounts) = entry
                .split_once('=')
                .ok_or_else(|| FeeConfigError::Entry(entry.to_owned()))?;
            let currency =
                Currency::parse(code.trim()).map_err(|source| FeeConfigError::Currency {
                    entry: entry.to_owned(),
                    source,
                })?;
            let (fixed, dispute) = amounts
                .split_once('/')
                .ok_or_else(|| FeeConfigError::Entry(entry.to_owned()))?;
            let amount = |raw: &str| {
                raw.trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|v| *v >= 0)
                    .ok_or_else(|| FeeConfigError::Amount(entry.to_owned()))
            };
            let fees = CurrencyFees {
                fixed: amount(fixed)?,
                dispute: amount(dispute)?,
            };
            if overrides.insert(currency, fees).is_some() {
                return Err(FeeConfigError::Twice(currency.code().to_owned()));
            }
        }
        Ok(overrides)
    }

    /// The fixed and dispute fee in `currency`.
    pub fn fees_in(&self, currency: Currency) -> CurrencyFees {
        self.overrides
            .get(&currency)
            .copied()
            .unwrap_or_else(|| CurrencyFees {
                fixed: scaled(Self::DEFAULT_FIXED_HUNDREDTHS, currency),
                dispute: scaled(Self::DEFAULT_DISPUTE_HUNDREDTHS, currency),
            })
    }

    /// The fee expected on a capture of `gross` minor units of `currency`.
    pub fn capture_fee(&self, gross: i64, currency: Currency) -> i64 {
        (gross.abs() * self.basis_points + 5_000) / 10_000 + self.fees_in(currency).fixed
    }

    /// The fee expected on a report line of `kind` and `gross` in `currency`.
    pub fn expected(&self, kind: &str, gross: i64, currency: Currency) -> i64 {
        match kind {
            "capture" => self.capture_fee(gross, currency),
            "chargeback" => self.fees_in(currency).dispute,
            _ => 0,
        }
    }
}

impl Default for FeeSchedule {
    /// 2.9 % + 0.30 per capture and 15.00 per lost dispute, each currency in its own minor
    /// units: the sandbox gateway's contract.
    fn default() -> Self {
        Self::new(Self::DEFAULT_BASIS_POINTS, BTreeMap::new())
    }
}

/// `hundredths` of a major unit in `currency`'s minor units, rounded half up.
fn scaled(hundredths: i64, currency: Currency) -> i64 {
    match currency.exponent() {
        0 => (hundredths + 50) / 100,
        1 => (hundredths + 5) / 10,
        e => hundredths * 10_i64.pow(u32::from(e) - 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn default_fees_are_the_same_money_in_every_currency() {
        let fees = FeeSchedule::default();
        let table: Vec<(&str, i64, i64)> = ["USD", "EUR", "GBP", "JPY", "KRW", "KWD"]
            .iter()
            .map(|code| {
                let f = fees.fees_in(c(code));
                (*code, f.fixed, f.dispute)
            })
            .collect();
        assert_eq!(
            table,
            vec![
                ("USD", 30, 1_500),
                ("EUR", 30, 1_500),
                ("GBP", 30, 1_500),
                ("JPY", 0, 15),
                ("KRW", 0, 15),
                ("KWD", 300, 15_000),
            ]
        );
    }

    #[test]
    fn a_capture_fee_is_the_percentage_plus_the_currencys_fixed_fee() {
        let fees = FeeSchedule::default();
        // 2.9 % of 10,000 = 290 (+ 30 cents); of ¥10,000 = 290 (+ ¥0).
        assert_eq!(fees.capture_fee(10_000, c("USD")), 320);
        assert_eq!(fees.capture_fee(10_000, c("JPY")), 290);
        assert_eq!(fees.capture_fee(-10_000, c("KWD")), 590);
        assert_eq!(fees.expected("chargeback", 5_000, c("JPY")), 15);
        assert_eq!(fees.expected("refund", 5_000, c("USD")), 0);
    }

    #[test]
    fn overrides_replace_a_currencys_fees_and_are_read_strictly() {
        let overrides = FeeSchedule::parse_overrides(" JPY=40/2000, KWD=100/5000 ").unwrap();
        let fees = FeeSchedule::new(290, overrides);
        assert_eq!(
            fees.fees_in(c("JPY")),
            CurrencyFees {
                fixed: 40,
                dispute: 2_000
            }
        );
        assert_eq!(fees.fees_in(c("USD")).fixed, 30);
        assert!(FeeSchedule::parse_overrides("").unwrap().is_empty());
        for bad in [
            "JPY",
            "JPY=40",
            "XYZ=1/2",
            "USD=-1/2",
            "USD=1/2.5",
            "USD=1/2,USD=3/4",
        ] {
            assert!(FeeSchedule::parse_overrides(bad).is_err(), "{bad}");
        }
    }
}
