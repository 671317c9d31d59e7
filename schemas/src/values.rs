//! Value types that events are made of. Each has one constructor, `parse`, so a value that
//! exists is valid and nothing downstream re-checks it. Deserialization goes through `parse` too.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a raw value was refused. The message names the rule; the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("contains characters outside {allowed}")]
    BadCharacters { allowed: &'static str },
    #[error("'{0}' is not an ISO-4217 currency code Waybill knows")]
    UnknownCurrency(String),
    #[error("must be at least {min}, got {got}")]
    TooSmall { min: i64, got: i64 },
    #[error("must be at most {max}, got {got}")]
    TooLarge { max: i64, got: i64 },
    #[error("is not a valid email address")]
    BadEmail,
    #[error("is not a valid order id (a UUID)")]
    BadOrderId,
    #[error("'{0}' is not one of web, app, pos, marketplace")]
    UnknownChannel(String),
    #[error("currency {found} does not match the order currency {expected}")]
    CurrencyMismatch { expected: Currency, found: Currency },
    #[error("amount overflows")]
    Overflow,
}

macro_rules! string_schema {
    ($ty:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

/// A Waybill order id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        Uuid::parse_str(raw.trim())
            .map(Self)
            .map_err(|_| ValueError::BadOrderId)
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
    /// The event-store stream that holds this order's events.
    pub fn stream_id(&self) -> String {
        format!("order-{}", self.0)
    }
    /// Inverse of [`OrderId::stream_id`].
    pub fn from_stream_id(stream_id: &str) -> Option<Self> {
        stream_id
            .strip_prefix("order-")
            .and_then(|raw| Uuid::parse_str(raw).ok())
            .map(Self)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_schema!(OrderId, "OrderId", {"type": "string", "format": "uuid"});

/// A stock keeping unit: 1–64 characters of letters, digits, `-`, `_`, `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    pub const MAX_LEN: usize = 64;
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ValueError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(ValueError::TooLong { max: Self::MAX_LEN });
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ValueError::BadCharacters {
                allowed: "letters, digits, '-', '_', '.'",
            });
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = ValueError;
    fn try_from(raw: String) -> Result<Self, ValueError> {
        Self::parse(&raw)
    }
}
impl From<Sku> for String {
    fn from(sku: Sku) -> String {
        sku.0
    }
}
string_schema!(Sku, "Sku", {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._-]+$"});

/// ISO-4217 currencies Waybill accepts, with their minor-unit exponent.
const CURRENCIES: &[(&str, u8)] = &[
    ("AUD", 2),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("INR", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("PLN", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("USD", 2),
    ("ZAR", 2),
];

/// An ISO-4217 currency code from the list Waybill supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        CURRENCIES
            .iter()
            .find(|(code, _)| *code == raw)
            .map(|(code, _)| {
                let b = code.as_bytes();
                Self([b[0], b[1], b[2]])
            })
            .ok_or_else(|| ValueError::UnknownCurrency(raw.chars().take(16).collect()))
    }
    /// Every code [`Currency::parse`] accepts.
    pub fn codes() -> impl Iterator<Item = &'static str> {
        CURRENCIES.iter().map(|(code, _)| *code)
    }
    pub fn code(&self) -> &str {
        // Only built from the ASCII table above.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
    /// Digits after the decimal point (2 for EUR, 0 for JPY, 3 for KWD).
    pub fn exponent(&self) -> u8 {
        CURRENCIES
            .iter()
            .find(|(code, _)| code.as_bytes() == self.0)
            .map(|(_, e)| *e)
            .unwrap_or(2)
    }

    /// `minor` units of this currency as a decimal by its exponent, without the code:
    /// `376.63` (USD 37663), `37663` (JPY 37663), `-1.500` (KWD -1500).
    pub fn format_minor(&self, minor: i64) -> String {
        let exp = u32::from(self.exponent());
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        if exp == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10_u64.pow(exp);
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exp as usize
        )
    }

    /// The inverse of [`Currency::format_minor`] for amounts people type: a non-negative
    /// decimal with at most this currency's exponent of digits after the point, as minor
    /// units (`12.5` USD → 1250, `500` JPY → 500; `1.005` USD and `5.5` JPY are refused).
    pub fn parse_major(&self, raw: &str) -> Result<i64, ValueError> {
        let raw = raw.trim();
        let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let exp = usize::from(self.exponent());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || raw.ends_with('.') {
            return Err(ValueError::BadCharacters {
                allowed: "digits and one decimal point",
            });
        }
        if fraction.len() > exp {
            return Err(ValueError::TooLong { max: exp });
        }
        let scale = 10_i64.pow(exp as u32);
        let whole: i64 = whole.parse().map_err(|_| ValueError::Overflow)?;
        let fraction: i64 = if fraction.is_empty() {
            0
        } else {
            format!("{fraction:0<exp$}")
                .parse()
                .map_err(|_| ValueError::Overflow)?
        };
        whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(fraction))
            .ok_or(ValueError::Overflow)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
impl TryFrom<String> for Currency {
    type Error = ValueError;
    fn try_from(raw: String) -> Result<Self, ValueError> {
        Self::parse(&raw)
    }
}
impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_owned()
    }
}
impl FromStr for Currency {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Self::parse(s)
    }
}
string_schema!(Currency, "Currency", {"type": "string", "pattern": "^[A-Z]{3}$"});

/// An amount of money in integer minor units (cents) of one currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }
    pub fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }
    pub fn checked_add(self, other: Money) -> Result<Money, ValueError> {
        self.same_currency(other)?;
        self.minor
            .checked_add(other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(ValueError::Overflow)
    }
    pub fn checked_sub(self, other: Money) -> Result<Money, ValueError> {
        self.same_currency(other)?;
        self.minor
            .checked_sub(other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(ValueError::Overflow)
    }
    pub fn checked_mul(self, factor: u32) -> Result<Money, ValueError> {
        self.minor
            .checked_mul(i64::from(factor))
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(ValueError::Overflow)
    }
    fn same_currency(self, other: Money) -> Result<(), ValueError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(ValueError::CurrencyMismatch {
                expected: self.currency,
                found: other.currency,
            })
        }
    }
}

impl fmt::Display for Money {
    /// `376.63 USD`, `37663 JPY`, `-1.500 KWD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.currency.format_minor(self.minor),
            self.currency
        )
    }
}

/// A count of units on an order line: 1 to 10,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: u32 = 10_000;
    pub fn parse(raw: i64) -> Result<Self, ValueError> {
        if raw < 1 {
            return Err(ValueError::TooSmall { min: 1, got: raw });
        }
        if raw > i64::from(Self::MAX) {
            return Err(ValueError::TooLarge {
                max: i64::from(Self::MAX),
                got: raw,
            });
        }
        Ok(Self(raw as u32))
    }
    pub fn get(&self) -> u32 {
        self.0
    }
}
impl TryFrom<i64> for Quantity {
    type Error = ValueError;
    fn try_from(raw: i64) -> Result<Self, ValueError> {
        Self::parse(raw)
    }
}
impl From<Quantity> for u32 {
    fn from(q: Quantity) -> u32 {
        q.0
    }
}
string_schema!(Quantity, "Quantity", {"type": "integer", "minimum": 1, "maximum": 10000});

/// An email address: one `@`, a non-empty local part and a dotted domain, at most 254 chars.
/// Stored lower-cased so lookups by email match however the customer typed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ValueError::Empty);
        }
        if raw.len() > 254 {
            return Err(ValueError::TooLong { max: 254 });
        }
        let (local, domain) = raw.split_once('@').ok_or(ValueError::BadEmail)?;
        let ok = !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !raw.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(ValueError::BadEmail);
        }
        Ok(Self(raw.to_lowercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Email {
    type Error = ValueError;
    fn try_from(raw: String) -> Result<Self, ValueError> {
        Self::parse(&raw)
    }
}
impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}
string_schema!(Email, "Email", {"type": "string", "format": "email", "maxLength": 254});

/// Where an order came from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Web,
    App,
    Pos,
    Marketplace,
}

impl Channel {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        match raw {
            "web" => Ok(Self::Web),
            "app" => Ok(Self::App),
            "pos" => Ok(Self::Pos),
            "marketplace" => Ok(Self::Marketplace),
            other => Err(ValueError::UnknownChannel(other.chars().take(32).collect())),
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::App => "app",
            Self::Pos => "pos",
            Self::Marketplace => "marketplace",
        }
    }
}

/// A client-chosen key that makes a mutating request safe to retry: 1–255 visible ASCII chars.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        if raw.is_empty() {
            return Err(ValueError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(ValueError::TooLong { max: Self::MAX_LEN });
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValueError::BadCharacters {
                allowed: "visible ASCII",
            });
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn typed_amounts_parse_by_the_currency_exponent_and_round_trip_with_format_minor() {
        let usd = Currency::parse("USD").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(usd.parse_major("12.5"), Ok(1250));
        assert_eq!(usd.parse_major(" 12.50 "), Ok(1250));
        assert_eq!(usd.parse_major("7"), Ok(700));
        assert_eq!(jpy.parse_major("500"), Ok(500));
        assert_eq!(kwd.parse_major("1.5"), Ok(1500));
        assert!(
            usd.parse_major("1.005").is_err(),
            "more digits than the exponent"
        );
        assert!(jpy.parse_major("5.5").is_err());
        for bad in ["", "-1", "1,00", "1.", ".5", "1e3", "abc"] {
            assert!(usd.parse_major(bad).is_err(), "{bad:?}");
        }
        for minor in [0, 1, 99, 100, 123_456] {
            for currency in [usd, jpy, kwd] {
                assert_eq!(
                    currency.parse_major(&currency.format_minor(minor)),
                    Ok(minor)
                );
            }
        }
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn money_formats_with_the_currency_exponent() {
        let eur = Currency::parse("EUR").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Money::new(1999, eur).to_string(), "19.99 EUR");
        assert_eq!(Money::new(-5, eur).to_string(), "-0.05 EUR");
        assert_eq!(Money::new(1999, jpy).to_string(), "1999 JPY");
        assert_eq!(Money::new(1, kwd).to_string(), "0.001 KWD");
        assert_eq!(Money::new(-1500, jpy).to_string(), "-1500 JPY");
        assert_eq!(
            Money::new(i64::MIN, eur).to_string(),
            "-92233720368547758.08 EUR"
        );
    }

    #[test]
    fn a_minor_amount_is_written_as_a_decimal_by_the_exponent() {
        let c = |code| Currency::parse(code).unwrap();
        assert_eq!(c("USD").format_minor(37663), "376.63");
        assert_eq!(c("JPY").format_minor(37663), "37663");
        assert_eq!(c("KWD").format_minor(-1500), "-1.500");
        assert_eq!(c("EUR").format_minor(7), "0.07");
        assert_eq!(c("EUR").format_minor(0), "0.00");
    }

    #[test]
    fn adding_money_of_two_currencies_is_refused() {
        let eur = Money::new(100, Currency::parse("EUR").unwrap());
        let usd = Money::new(100, Currency::parse("USD").unwrap());
        assert!(matches!(
            eur.checked_add(usd),
            Err(ValueError::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn unknown_and_lowercase_currencies_are_refused() {
        assert!(Currency::parse("XYZ").is_err());
        assert!(Currency::parse("eur").is_err());
        assert!(serde_json::from_str::<Currency>("\"ABC\"").is_err());
    }

    #[test]
    fn quantity_rejects_zero_and_negative_through_serde_too() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(-3).is_err());
        assert!(serde_json::from_str::<Quantity>("-1").is_err());
        assert_eq!(serde_json::from_str::<Quantity>("2").unwrap().get(), 2);
    }

    #[test]
    fn email_is_normalised_to_lower_case() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in ["", "ada", "ada@", "@x.com", "a@b", "a b@c.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn order_id_round_trips_through_its_stream_id() {
        let id = OrderId::new_v7();
        assert_eq!(OrderId::from_stream_id(&id.stream_id()), Some(id));
        assert_eq!(OrderId::from_stream_id("inventory-x"), None);
    }

    proptest! {
        #[test]
        fn sku_parse_accepts_exactly_the_documented_alphabet(raw in "\\PC{0,80}") {
            let ok = !raw.trim().is_empty()
                && raw.trim().len() <= Sku::MAX_LEN
                && raw.trim().chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            prop_assert_eq!(Sku::parse(&raw).is_ok(), ok);
        }

        #[test]
        fn money_addition_is_exact(a in -1_000_000_000_i64..1_000_000_000, b in -1_000_000_000_i64..1_000_000_000) {
            let usd = Currency::parse("USD").unwrap();
            prop_assert_eq!(Money::new(a, usd).checked_add(Money::new(b, usd)).unwrap().minor, a + b);
        }
    }
}
