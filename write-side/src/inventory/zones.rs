//! The distance rule that decides which location is "nearest" to an order's ship-to address.
//!
//! Every location is given a zone (0–9) when it is registered. An address's zone comes from the
//! first character of its postal code: a digit is the zone itself (US ZIP codes, German and
//! French postal codes all grow roughly with distance from one corner of the country); a letter
//! (UK, Canadian, Dutch-style codes) maps A–Z evenly onto 0–9 (`(letter − 'A') × 10 / 26`);
//! anything else is zone 0. The distance between a location and an address is the difference of
//! their zones, plus [`OTHER_COUNTRY`] when the location is in another country, so a location
//! at home always beats one abroad. Ties are broken by location id by the caller.

use super::{Location, ShipTo};

/// Added to the zone difference when the location is not in the ship-to country.
pub const OTHER_COUNTRY: u32 = 100;

/// The zone of a postal code (see the module documentation).
pub fn postal_zone(postal_code: &str) -> i32 {
    match postal_code.trim().chars().next() {
        Some(c) if c.is_ascii_digit() => i32::from(c as u8 - b'0'),
        Some(c) if c.is_ascii_alphabetic() => {
            i32::from(c.to_ascii_uppercase() as u8 - b'A') * 10 / 26
        }
        _ => 0,
    }
}

/// How far `location` is from `ship_to`.
pub fn distance(location: &Location, ship_to: &ShipTo) -> u32 {
    let zones = location.zone.abs_diff(postal_zone(&ship_to.postal_code));
    if location.country == ship_to.country {
        zones
    } else {
        zones + OTHER_COUNTRY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Country, LocationId, LocationKind};

    fn location(id: &str, country: &str, zone: i32) -> Location {
        Location {
            location_id: LocationId::parse(id).expect("id"),
            kind: LocationKind::Warehouse,
            name: id.to_owned(),
            country: Country::parse(country).expect("country"),
            zone,
            active: true,
        }
    }

    fn ship_to(country: &str, postal_code: &str) -> ShipTo {
        ShipTo::new(country, postal_code).expect("ship-to")
    }

    #[test]
    fn a_digit_postal_code_is_its_own_zone() {
        assert_eq!(postal_zone("62701"), 6);
        assert_eq!(postal_zone(" 10115"), 1);
    }

    #[test]
    fn letter_postal_codes_spread_over_the_ten_zones() {
        assert_eq!(postal_zone("AB1 2CD"), 0);
        assert_eq!(postal_zone("m5v 2t6"), 4);
        assert_eq!(postal_zone("ZE1"), 9);
        assert_eq!(postal_zone(""), 0);
    }

    #[test]
    fn distance_is_the_zone_difference_within_a_country() {
        assert_eq!(
            distance(&location("CHI", "US", 6), &ship_to("US", "62701")),
            0
        );
        assert_eq!(
            distance(&location("NJ", "US", 0), &ship_to("US", "62701")),
            6
        );
        assert_eq!(
            distance(&location("CA", "US", 9), &ship_to("US", "62701")),
            3
        );
    }

    #[test]
    fn another_country_is_always_farther_than_any_zone_at_home() {
        let abroad = distance(&location("TOR", "CA", 6), &ship_to("US", "62701"));
        let far_home = distance(&location("NJ", "US", 0), &ship_to("US", "92101"));
        assert_eq!(abroad, 100);
        assert!(abroad > far_home);
    }
}
