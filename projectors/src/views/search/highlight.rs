//! Which fields of a hit matched the query, with the matching words wrapped in `<em>…</em>`.
//! Computed from the document and the query terms with the same matching rules as
//! [`super::fields`], so both backends highlight identically.

use waybill_schemas::views::{Highlight, OrderDocument};

use super::fields::{digits, QueryTerm, TextMatch, MIN_PHONE_DIGITS};

/// Edit distance with adjacent transpositions counting one edit (optimal string alignment),
/// the distance both backends use for typo tolerance.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (prev[j] + 1).min(row[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, row);
    }
    prev[b.len()]
}

/// Whether a word of a name (customer, address or product name) matches a term.
fn name_word(word: &str, terms: &[QueryTerm]) -> bool {
    terms.iter().any(|t| t.matches_name_word(word))
}

/// Whether a word of an address matches a term (exactly: no typos in places).
fn place_word(word: &str, terms: &[QueryTerm]) -> bool {
    terms.iter().any(|t| match t.text() {
        Some(TextMatch::Word(q)) => q == word,
        Some(TextMatch::Phrase(words) | TextMatch::PlacesPhrase(words)) => {
            words.iter().any(|q| q == word)
        }
        None => false,
    })
}

/// `value` with every word for which `matches` holds wrapped, or `None` if none does.
fn mark_words(
    value: &str,
    terms: &[QueryTerm],
    matches: fn(&str, &[QueryTerm]) -> bool,
) -> Option<String> {
    let mut out = String::with_capacity(value.len() + 16);
    let mut word = String::new();
    let mut any = false;
    let flush = |word: &mut String, out: &mut String, any: &mut bool| {
        if word.is_empty() {
            return;
        }
        if matches(&word.to_lowercase(), terms) {
            *any = true;
            out.push_str("<em>");
            out.push_str(word);
            out.push_str("</em>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in value.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out, &mut any);
            out.push(c);
        }
    }
    flush(&mut word, &mut out, &mut any);
    any.then_some(out)
}

/// An identifier with the longest term it equals or starts with (see
/// [`QueryTerm::key_prefix`]) wrapped, or `None`.
fn mark_key(value: &str, terms: &[QueryTerm]) -> Option<String> {
    let lower = value.to_lowercase();
    terms
        .iter()
        .filter(|t| lower == t.raw || (t.key_prefix() && lower.starts_with(&t.raw)))
        .map(|t| t.raw.chars().count())
        .max()
        .map(|n| {
            let split = value.char_indices().nth(n).map_or(value.len(), |(i, _)| i);
            format!("<em>{}</em>{}", &value[..split], &value[split..])
        })
}

fn mark_whole(value: &str) -> String {
    format!("<em>{value}</em>")
}

/// The highlighted fields of `document` for `terms` (empty when the query had no text).
pub fn highlight(document: &OrderDocument, terms: &[QueryTerm]) -> Vec<Highlight> {
    if terms.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut push = |field: &str, fragment: Option<String>| {
        if let Some(fragment) = fragment {
            out.push(Highlight {
                field: field.to_owned(),
                fragment,
            });
        }
    };

    push("order_id", mark_key(&document.order_id, terms));
    push(
        "channel_order_ref",
        mark_key(&document.channel_order_ref, terms),
    );
    push(
        "customer.name",
        mark_words(&document.customer.name, terms, name_word),
    );
    push("customer.email", mark_key(&document.customer.email, terms));
    if let Some(phone) = &document.customer.phone {
        let phone_digits = digits(phone);
        let hit = terms.iter().filter_map(|t| t.phone.as_deref()).any(|q| {
            q.len() >= MIN_PHONE_DIGITS
                && (phone_digits.starts_with(q)
                    || (0..phone_digits.len()).any(|start| {
                        phone_digits.len() - start >= 7 && phone_digits[start..].starts_with(q)
                    }))
        });
        push("customer.phone", hit.then(|| mark_whole(phone)));
    }
    for line in &document.lines {
        push("lines.sku", mark_key(&line.sku, terms));
        push("lines.name", mark_words(&line.name, terms, name_word));
    }
    for (prefix, address) in std::iter::once(("shipping_address", &document.shipping_address))
        .chain(
            document
                .billing_address
                .iter()
                .map(|a| ("billing_address", a)),
        )
    {
        push(
            &format!("{prefix}.name"),
            mark_words(&address.name, terms, name_word),
        );
        push(
            &format!("{prefix}.line1"),
            mark_words(&address.line1, terms, place_word),
        );
        push(
            &format!("{prefix}.city"),
            mark_words(&address.city, terms, place_word),
        );
        push(
            &format!("{prefix}.postal_code"),
            mark_words(&address.postal_code, terms, place_word),
        );
    }
    for number in &document.tracking_numbers {
        push("tracking_numbers", mark_key(number, terms));
    }
    for number in &document.rma_numbers {
        push("rma_numbers", mark_key(number, terms));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fields::query_terms;
    use super::*;

    #[test]
    fn edit_distance_counts_a_transposition_once() {
        assert_eq!(edit_distance("lovelace", "lovelace"), 0);
        assert_eq!(edit_distance("lovelcae", "lovelace"), 1);
        assert_eq!(edit_distance("lovlace", "lovelace"), 1);
        assert_eq!(edit_distance("ada", "bob"), 3);
    }

    #[test]
    fn typo_in_a_name_highlights_the_real_word() {
        let marked =
            mark_words("Ada Lovelace", &query_terms("lovelcae"), name_word).expect("matches");
        assert_eq!(marked, "Ada <em>Lovelace</em>");
        assert_eq!(
            mark_words("Ada Lovelace", &query_terms("byron"), name_word),
            None
        );
    }

    #[test]
    fn an_identifier_prefix_is_highlighted_and_its_fragments_are_not() {
        assert_eq!(
            mark_key("TEE-RED-M", &query_terms("tee-red")).as_deref(),
            Some("<em>TEE-RED</em>-M")
        );
        assert_eq!(mark_key("TEE-RED-M", &query_terms("red")), None);
        assert_eq!(
            mark_words("Red tee", &query_terms("TEE-RED-M"), name_word),
            None
        );
    }
}
