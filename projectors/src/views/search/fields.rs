//! What both backends index for a document, and how a free-text query is read. One pure
//! definition, so Tantivy and the Elasticsearch/OpenSearch API match the same documents for the
//! same query (the shared test suite checks it).
//!
//! - `text`: analysed words (customer and address names, streets, cities, postcodes, product
//!   names, SKUs, channel ref), matched with typo tolerance (Levenshtein distance 0 for terms of
//!   1–2 characters, 1 for 3–5, 2 beyond, like Elasticsearch's `fuzziness: AUTO`);
//! - `keys`: exact identifiers, lowercased (order id, channel order ref, email, SKUs, tracking
//!   and RMA numbers);
//! - `email`: the lowercased address, matched by prefix;
//! - `phone_keys`: the phone's digits and its trailing 7+ digit suffixes, matched by prefix, so
//!   `+1 217 555`, `2175550142` and `555-0142` all find `+1 217 555 0142`.

use serde::{Deserialize, Serialize};
use waybill_schemas::views::OrderDocument;

/// Shortest phone fragment (in digits) searched as a phone number.
pub const MIN_PHONE_DIGITS: usize = 4;
/// Shortest phone suffix indexed (a local number without area code).
const MIN_PHONE_SUFFIX: usize = 7;

/// The fields derived from a document for indexing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexFields {
    pub text: String,
    pub keys: Vec<String>,
    pub email: String,
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
        let mut text = vec![
            document.customer.name.clone(),
            document.channel_order_ref.clone(),
        ];
        for address in std::iter::once(&document.shipping_address).chain(&document.billing_address)
        {
            text.extend([
                address.name.clone(),
                address.line1.clone(),
                address.line2.clone().unwrap_or_default(),
                address.city.clone(),
                address.region.clone().unwrap_or_default(),
                address.postal_code.clone(),
                address.country.clone(),
            ]);
        }
        for line in &document.lines {
            text.push(line.name.clone());
            text.push(line.sku.clone());
        }
        text.retain(|t| !t.is_empty());

        let mut keys = vec![
            document.order_id.to_lowercase(),
            document.channel_order_ref.to_lowercase(),
            document.customer.email.to_lowercase(),
        ];
        keys.extend(document.lines.iter().map(|l| l.sku.to_lowercase()));
        keys.extend(document.tracking_numbers.iter().map(|t| t.to_lowercase()));
        keys.extend(document.rma_numbers.iter().map(|t| t.to_lowercase()));
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
            text: text.join(" \n "),
            keys,
            email: document.customer.email.to_lowercase(),
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

/// One whitespace-separated part of a free-text query. A document matches the query when it
/// matches every term; it matches a term when any of these does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTerm {
    /// The term lowercased, for `keys` (exact) and `email` (prefix).
    pub raw: String,
    /// Its analysed words, each matched in `text` with [`fuzziness`]; all must match.
    pub words: Vec<String>,
    /// Its digits when it can be (part of) a phone number.
    pub phone: Option<String>,
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
