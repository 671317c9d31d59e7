//! What both backends index for a document, and how a free-text query is read. One pure
//! definition, so Tantivy and the Elasticsearch/OpenSearch API match the same documents for the
//! same query (the shared test suite checks it).
//!
//! Indexed fields:
//! - `names`: analysed words of the customer's and the addresses' names and of product names,
//!   the only text matched with typo tolerance (Levenshtein distance 0 for words of 1–2
//!   characters, 1 for 3–5, 2 beyond, like Elasticsearch's `fuzziness: AUTO`; none for words
//!   with digits);
//! - `places`: analysed words of the addresses (street, city, region, postcode, country),
//!   matched exactly;
//! - `keys`: identifiers, lowercased and whole (order id, channel order ref, email, SKUs,
//!   tracking and RMA numbers), matched exactly or by prefix, never split into words;
//! - `phone_keys`: the phone's digits and its trailing 7+ digit suffixes, matched by prefix, so
//!   `+1 217 555`, `2175550142` and `555-0142` all find `+1 217 555 0142`.
//!
//! How a query term matches: see [`QueryTerm`]. Relevance: an exact identifier scores highest,
//! then an identifier or phone prefix, then a phrase or exact word in names, then a word found
//! only with a typo, then an address word (the boosts below, the same in both backends).

use serde::{Deserialize, Serialize};
use waybill_schemas::views::OrderDocument;

/// Shortest phone fragment (in digits) searched as a phone number.
pub const MIN_PHONE_DIGITS: usize = 4;
/// Shortest phone suffix indexed (a local number without area code).
const MIN_PHONE_SUFFIX: usize = 7;
/// Shortest term matched as the prefix of an identifier (shorter ones must match whole).
pub const MIN_KEY_PREFIX: usize = 3;

/// Score boosts of each way a term can match (see the module docs).
pub mod boost {
    pub const KEY_EXACT: f32 = 8.0;
    pub const KEY_PREFIX: f32 = 4.0;
    pub const PHONE_PREFIX: f32 = 4.0;
    pub const NAME_EXACT: f32 = 2.0;
    pub const NAME_TYPO: f32 = 1.0;
    pub const PLACE: f32 = 1.0;
}

/// The fields derived from a document for indexing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexFields {
    /// One value per name (a phrase never spans two).
    pub names: Vec<String>,
    pub places: Vec<String>,
    pub keys: Vec<String>,
    pub phone_keys: Vec<String>,
    pub status: String,
    pub channel: String,
    pub tags: Vec<String>,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
    pub total: i64,
}

pub fn digits(raw: &str) -> String {
    raw.chars().filter(char::is_ascii_digit).collect()
}

impl IndexFields {
    pub fn of(document: &OrderDocument) -> Self {
        let mut names = vec![document.customer.name.clone()];
        let mut places = Vec::new();
        for address in std::iter::once(&document.shipping_address).chain(&document.billing_address)
        {
            names.push(address.name.clone());
            places.extend([
                address.line1.clone(),
                address.line2.clone().unwrap_or_default(),
                address.city.clone(),
                address.region.clone().unwrap_or_default(),
                address.postal_code.clone(),
                address.country.clone(),
            ]);
        }
        names.extend(document.lines.iter().map(|line| line.name.clone()));
        names.retain(|t| !t.is_empty());
        places.retain(|t| !t.is_empty());

        let mut keys = vec![
            document.order_id.to_lowercase(),
            document.channel_order_ref.to_lowercase(),
            document.customer.email.to_lowercase(),
        ];
        keys.extend(document.lines.iter().map(|l| l.sku.to_lowercase()));
        keys.extend(document.tracking_numbers.iter().map(|t| t.to_lowercase()));
        keys.extend(document.rma_numbers.iter().map(|t| t.to_lowercase()));
        keys.retain(|k| !k.is_empty());
        keys.sort();
        keys.dedup();

        let phone = document
            .customer
            .phone
            .as_deref()
            .map(digits)
            .unwrap_or_default();
        let mut phone_keys = Vec::new();
        if !phone.is_empty() {
            phone_keys.push(phone.clone());
            for start in 1..phone.len() {
                if phone.len() - start >= MIN_PHONE_SUFFIX {
                    phone_keys.push(phone[start..].to_owned());
                }
            }
        }

        Self {
            names,
            places,
            keys,
            phone_keys,
            status: enum_word(&document.status),
            channel: document.channel.as_str().to_owned(),
            tags: document.tags.clone(),
            created_at: document.created_at.timestamp_micros(),
            updated_at: document.updated_at.timestamp_micros(),
            total: document.grand_total_minor,
        }
    }
}

/// The snake_case word serde writes for a unit enum variant.
pub fn enum_word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The words an analysed text is split into: runs of letters and digits, lowercased (what
/// Tantivy's default tokenizer and Elasticsearch's standard analyzer agree on for our data).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Edits allowed when matching this word: by length, and none for words with digits
/// (postcodes, numbers in refs and SKUs must match exactly).
pub fn fuzziness(word: &str) -> u8 {
    if word.chars().any(|c| c.is_ascii_digit()) {
        return 0;
    }
    match word.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    }
}

/// Characters that make a term an identifier (`SKU-0004`, `ada@example.com`, `RMA_7`,
/// `1Z999…`) rather than a word of a name.
const IDENTIFIER_MARKS: &str = "-_@#/:.+";

/// What a term may match in the indexed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextMatch {
    /// One plain word: names with its typo allowance, places exactly.
    Word(String),
    /// Plain words joined by other punctuation (`O'Brien`): the exact phrase in names or
    /// places.
    Phrase(Vec<String>),
    /// An identifier-shaped term: never names (a SKU's fragments must not find a customer);
    /// its words as an exact phrase in places only (`221b`, `SW1A`, `Königs-Allee`).
    PlacesPhrase(Vec<String>),
}

/// One whitespace-separated part of a free-text query. A document matches the query when it
/// matches every term; it matches a term when any of these does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTerm {
    /// The term lowercased, for `keys`: exact, or prefix when at least [`MIN_KEY_PREFIX`]
    /// characters long.
    pub raw: String,
    /// Its analysed words (for highlighting and [`Self::text`]).
    pub words: Vec<String>,
    /// Its digits when it can be (part of) a phone number.
    pub phone: Option<String>,
}

impl QueryTerm {
    /// Whether the term may match identifiers by prefix.
    pub fn key_prefix(&self) -> bool {
        self.raw.chars().count() >= MIN_KEY_PREFIX
    }

    /// Whether the term looks like an identifier: it has a digit or joins parts with
    /// identifier punctuation. Such a term is never matched with typos or in names.
    pub fn identifier_shaped(&self) -> bool {
        self.raw
            .chars()
            .any(|c| c.is_ascii_digit() || IDENTIFIER_MARKS.contains(c))
    }

    /// How the term matches analysed text, if at all.
    pub fn text(&self) -> Option<TextMatch> {
        match self.words.as_slice() {
            [] => None,
            _ if self.identifier_shaped() => Some(TextMatch::PlacesPhrase(self.words.clone())),
            [word] => Some(TextMatch::Word(word.clone())),
            words => Some(TextMatch::Phrase(words.to_vec())),
        }
    }

    /// Whether `word` (of a name) matches this term as the backends do: with the typo
    /// allowance for a plain word, exactly for a word of a phrase.
    pub fn matches_name_word(&self, word: &str) -> bool {
        match self.text() {
            Some(TextMatch::Word(q)) => {
                super::highlight::edit_distance(&q, word) <= usize::from(fuzziness(&q))
            }
            Some(TextMatch::Phrase(words)) => words.iter().any(|q| q == word),
            _ => false,
        }
    }
}

/// Splits free text into terms. A query that is only a phone number with spaces
/// (`+1 217 555 0142`) is kept as one term.
pub fn query_terms(text: &str) -> Vec<QueryTerm> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    let phone_like = trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    let parts: Vec<&str> = if phone_like && digits(trimmed).len() >= MIN_PHONE_DIGITS {
        vec![trimmed]
    } else {
        trimmed.split_whitespace().collect()
    };
    parts
        .into_iter()
        .map(|part| {
            let d = digits(part);
            let only_phone_chars = part
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
            QueryTerm {
                raw: part.to_lowercase(),
                words: words(part),
                phone: (only_phone_chars && d.len() >= MIN_PHONE_DIGITS).then_some(d),
            }
        })
        .filter(|t| !t.raw.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spaced_phone_number_is_one_term_and_names_are_several() {
        let terms = query_terms("+1 217 555 0142");
        assert_eq!(terms.len(), 1);
        assert_eq!(terms[0].phone.as_deref(), Some("12175550142"));
        let terms = query_terms("Ada  lovelace");
        assert_eq!(
            terms.iter().map(|t| t.raw.as_str()).collect::<Vec<_>>(),
            ["ada", "lovelace"]
        );
        assert_eq!(terms[0].phone, None);
    }

    #[test]
    fn identifiers_never_reach_names_and_plain_words_do() {
        let text = |q: &str| query_terms(q)[0].text();
        assert_eq!(
            text("TEE-RED-M"),
            Some(TextMatch::PlacesPhrase(vec![
                "tee".into(),
                "red".into(),
                "m".into()
            ]))
        );
        assert_eq!(
            text("ada@example.com"),
            Some(TextMatch::PlacesPhrase(vec![
                "ada".into(),
                "example".into(),
                "com".into()
            ]))
        );
        assert_eq!(text("Lovelace"), Some(TextMatch::Word("lovelace".into())));
        assert_eq!(
            text("O'Brien"),
            Some(TextMatch::Phrase(vec!["o".into(), "brien".into()]))
        );
        assert_eq!(text("…"), None);
        let sku = &query_terms("SKU-0004")[0];
        assert!(sku.identifier_shaped() && sku.key_prefix());
        assert!(!query_terms("ab")[0].key_prefix());
    }

    #[test]
    fn a_name_word_matches_with_typos_only_for_a_plain_word() {
        let term = &query_terms("lovlace")[0];
        assert!(term.matches_name_word("lovelace"));
        let phrase = &query_terms("o'brien")[0];
        assert!(phrase.matches_name_word("brien") && !phrase.matches_name_word("brian"));
        let sku = &query_terms("TEE-RED-M")[0];
        assert!(!sku.matches_name_word("tee"));
    }

    #[test]
    fn fuzziness_grows_with_word_length_like_elasticsearch_auto() {
        assert_eq!(fuzziness("ab"), 0);
        assert_eq!(fuzziness("abc"), 1);
        assert_eq!(fuzziness("abcde"), 1);
        assert_eq!(fuzziness("abcdef"), 2);
    }

    #[test]
    fn words_split_on_punctuation_and_lowercase() {
        assert_eq!(
            words("WEB-1234 Königs Allee"),
            ["web", "1234", "königs", "allee"]
        );
    }
}
