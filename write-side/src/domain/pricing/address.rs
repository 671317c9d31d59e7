//! Address rules applied at capture: the country must be a known ISO-3166-1 alpha-2 code, and
//! for the countries listed in [`POSTAL_FORMATS`] the postal code must have that country's shape.
//!
//! Values are normalized for the event: surrounding spaces trimmed, runs of spaces collapsed to
//! one, country and postal code upper-cased. A postal code typed without its separator
//! (`k1a0b1`, `sw1a1aa`, `1000001`) is rewritten into the country's canonical form (`K1A 0B1`,
//! `SW1A 1AA`, `100-0001`). Countries without a listed format keep any postal code.

/// Every officially assigned ISO-3166-1 alpha-2 code (249), in alphabetical order.
const COUNTRIES: &str = "\
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ \
EC EE EG EH ER ES ET \
FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU \
ID IE IL IM IN IO IQ IR IS IT \
JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ \
LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ \
OM \
PA PE PF PG PH PK PL PM PN PR PS PT PW PY \
QA \
RE RO RS RU RW \
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ \
UA UG UM US UY UZ \
VA VC VE VG VI VN VU \
WF WS \
YE YT \
ZA ZM ZW";

/// A postal code format: in a pattern `9` is a digit, `A` a letter, and a space or `-` is the
/// separator of the canonical form.
pub struct PostalFormat {
    pub country: &'static str,
    /// How the error names the code, e.g. "US ZIP code".
    pub name: &'static str,
    pub patterns: &'static [&'static str],
}

/// The countries whose postal codes are checked.
pub const POSTAL_FORMATS: &[PostalFormat] = &[
    PostalFormat {
        country: "US",
        name: "US ZIP code",
        patterns: &["99999", "99999-9999"],
    },
    PostalFormat {
        country: "CA",
        name: "Canadian postal code",
        patterns: &["A9A 9A9"],
    },
    PostalFormat {
        country: "GB",
        name: "UK postcode",
        patterns: &[
            "A9 9AA", "A99 9AA", "AA9 9AA", "AA99 9AA", "A9A 9AA", "AA9A 9AA",
        ],
    },
    PostalFormat {
        country: "DE",
        name: "German postal code",
        patterns: &["99999"],
    },
    PostalFormat {
        country: "FR",
        name: "French postal code",
        patterns: &["99999"],
    },
    PostalFormat {
        country: "NL",
        name: "Dutch postal code",
        patterns: &["9999 AA"],
    },
    PostalFormat {
        country: "AU",
        name: "Australian postcode",
        patterns: &["9999"],
    },
    PostalFormat {
        country: "JP",
        name: "Japanese postal code",
        patterns: &["999-9999"],
    },
    PostalFormat {
        country: "IT",
        name: "Italian postal code (CAP)",
        patterns: &["99999"],
    },
    PostalFormat {
        country: "ES",
        name: "Spanish postal code",
        patterns: &["99999"],
    },
    PostalFormat {
        country: "AT",
        name: "Austrian postal code",
        patterns: &["9999"],
    },
    PostalFormat {
        country: "BE",
        name: "Belgian postal code",
        patterns: &["9999"],
    },
    PostalFormat {
        country: "CH",
        name: "Swiss postal code",
        patterns: &["9999"],
    },
    PostalFormat {
        country: "DK",
        name: "Danish postal code",
        patterns: &["9999"],
    },
    PostalFormat {
        country: "SE",
        name: "Swedish postal code",
        patterns: &["999 99"],
    },
    PostalFormat {
        country: "PL",
        name: "Polish postal code",
        patterns: &["99-999"],
    },
    PostalFormat {
        country: "PT",
        name: "Portuguese postal code",
        patterns: &["9999-999"],
    },
];

/// `raw` with surrounding spaces trimmed and inner runs of white space collapsed to one space.
pub fn collapse_spaces(raw: &str) -> String {
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// True for an assigned ISO-3166-1 alpha-2 code (upper case).
/// Every assigned code, upper case.
pub fn assigned_country_codes() -> impl Iterator<Item = &'static str> {
    COUNTRIES.split(' ').filter(|c| c.len() == 2)
}

pub fn is_known_country(code: &str) -> bool {
    code.len() == 2 && COUNTRIES.split(' ').any(|c| c == code)
}

/// The upper-cased country code, or why it is refused.
pub fn country(raw: &str) -> Result<String, String> {
    let code = raw.trim().to_ascii_uppercase();
    if !(code.len() == 2 && code.chars().all(|c| c.is_ascii_alphabetic())) {
        return Err("must be an ISO-3166 alpha-2 country code (2 letters)".to_owned());
    }
    if !is_known_country(&code) {
        return Err(format!(
            "{code} is not an assigned ISO-3166 alpha-2 country code"
        ));
    }
    Ok(code)
}

/// The normalized postal code for `country` (already normalized), or why it is refused.
pub fn postal_code(country: &str, raw: &str) -> Result<String, String> {
    let normalized = collapse_spaces(raw).to_uppercase();
    let Some(format) = POSTAL_FORMATS.iter().find(|f| f.country == country) else {
        return Ok(normalized);
    };
    let compact: Vec<char> = normalized
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .collect();
    format
        .patterns
        .iter()
        .find_map(|pattern| canonical(pattern, &compact))
        .ok_or_else(|| {
            format!(
                "not a valid {} (expected {})",
                format.name,
                format.patterns.join(" or ")
            )
        })
}

/// `compact` (no separators) written in `pattern`'s form, when it matches it.
fn canonical(pattern: &str, compact: &[char]) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut input = compact.iter();
    for p in pattern.chars() {
        match p {
            '9' | 'A' => {
                let c = *input.next()?;
                let fits = if p == '9' {
                    c.is_ascii_digit()
                } else {
                    c.is_ascii_uppercase()
                };
                if !fits {
                    return None;
                }
                out.push(c);
            }
            separator => out.push(separator),
        }
    }
    input.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_country_list_is_the_249_assigned_codes_in_order() {
        let codes: Vec<&str> = COUNTRIES.split(' ').collect();
        assert_eq!(codes.len(), 249);
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert!(codes.iter().all(|c| c.len() == 2));
        for format in POSTAL_FORMATS {
            assert!(is_known_country(format.country), "{}", format.country);
        }
    }

    #[test]
    fn countries_are_upper_cased_and_unknown_ones_refused() {
        assert_eq!(country(" us").as_deref(), Ok("US"));
        assert_eq!(country("gb").as_deref(), Ok("GB"));
        assert!(country("XX").is_err_and(|e| e.contains("not an assigned")));
        assert!(country("UK").is_err(), "the UK's code is GB");
        assert!(country("1A").is_err_and(|e| e.contains("2 letters")));
    }

    #[test]
    fn postal_codes_are_checked_and_written_canonically() {
        let ok = [
            ("US", "62701", "62701"),
            ("US", "62701-1234", "62701-1234"),
            ("CA", "k1a0b1", "K1A 0B1"),
            ("CA", "M5H  2N2", "M5H 2N2"),
            ("GB", "sw1a1aa", "SW1A 1AA"),
            ("GB", "M1 1AE", "M1 1AE"),
            ("NL", "1234ab", "1234 AB"),
            ("JP", "1000001", "100-0001"),
            ("DE", "10115", "10115"),
            ("SE", "11455", "114 55"),
            ("IE", " d02  x285 ", "D02 X285"),
        ];
        for (country, raw, want) in ok {
            assert_eq!(
                postal_code(country, raw).as_deref(),
                Ok(want),
                "{country} {raw}"
            );
        }
        let bad = [
            ("US", "6270"),
            ("US", "ABCDE"),
            ("CA", "12345"),
            ("GB", "12345"),
            ("DE", "1011"),
        ];
        for (country, raw) in bad {
            assert!(postal_code(country, raw).is_err(), "{country} {raw}");
        }
        assert_eq!(
            postal_code("US", "6270"),
            Err("not a valid US ZIP code (expected 99999 or 99999-9999)".to_owned())
        );
    }

    proptest! {
        #[test]
        fn a_canonical_postal_code_is_accepted_unchanged(
            i in 0..POSTAL_FORMATS.len(), raw in "[0-9A-Za-z -]{0,10}") {
            let format = &POSTAL_FORMATS[i];
            if let Ok(code) = postal_code(format.country, &raw) {
                prop_assert_eq!(postal_code(format.country, &code), Ok(code.clone()));
            }
        }

        #[test]
        fn collapsing_spaces_is_idempotent(raw in "[ a-z]{0,20}") {
            let once = collapse_spaces(&raw);
            prop_assert!(!once.contains("  ") && once.trim() == once);
            prop_assert_eq!(collapse_spaces(&once), once.clone());
        }
    }
}
