//! Reading a JSON request body strictly: an object that names the same key twice is refused,
//! with the key's path (`currency`, `shipping_address.country`, `lines[0].sku`), and so is a
//! string holding a control character other than tab, line feed and carriage return, named
//! the same way.
//!
//! RFC 8259 leaves duplicate names to the parser, and `serde_json` keeps the last one, so
//! `{"currency":"USD","currency":"EUR"}` would book an order in EUR while a proxy, a log or a
//! signature check in front of Waybill read USD. A NUL byte (`\u0000`) cannot be stored in a
//! Postgres `text` or `jsonb` value at all, and the other control characters have no place in
//! an order (they garble logs, exports and pages); free text keeps its tabs and line breaks.
//! The command API runs every request body through [`check`] once, in a layer in front of
//! every endpoint, so no handler can forget the rules.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Why a body is not one JSON value Waybill can read.
#[derive(Debug, thiserror::Error)]
pub enum JsonBodyError {
    /// Not JSON, or JSON of the wrong shape for the target type.
    #[error("the body is not valid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// An object names the same key twice.
    #[error("{path} appears more than once in the same object")]
    DuplicateKey { path: String },
    /// A string (or an object key) holds a control character other than tab, LF and CR.
    #[error("{path} must not contain control characters (U+{code:04X})")]
    ControlCharacter { path: String, code: u32 },
}

impl JsonBodyError {
    /// The path of the field the error is about, when one is known.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::DuplicateKey { path } | Self::ControlCharacter { path, .. } => Some(path),
            Self::Syntax(_) => None,
        }
    }
}

/// Parses `body` into `T` after [`check`]ing it.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, JsonBodyError> {
    check(body)?;
    Ok(serde_json::from_slice(body)?)
}

/// Whether `c` is refused in a string: every control character but tab, LF and CR.
pub fn is_refused_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Checks that `body` is one JSON value in which no object repeats a key and no string holds a
/// refused control character; builds nothing. The first refusal found is reported.
pub fn check(body: &[u8]) -> Result<(), JsonBodyError> {
    let found = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let walked = Walk {
        path: &Path::Root,
        found: &found,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    match (walked, found.into_inner()) {
        (_, Some(refused)) => Err(refused),
        (Err(e), None) => Err(JsonBodyError::Syntax(e)),
        (Ok(()), None) => Ok(()),
    }
}

/// Where a value sits in the document; rendered only when a duplicate is found.
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn rendered(&self) -> String {
        let mut out = String::new();
        self.render(&mut out);
        out
    }

    fn render(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.render(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Index(parent, index) => {
                parent.render(out);
                let _ = write!(out, "[{index}]");
            }
        }
    }
}

/// Visits one value, recording the first refusal it meets (the error serde carries cannot hold
/// the path, so it travels beside it).
#[derive(Clone, Copy)]
struct Walk<'a> {
    path: &'a Path<'a>,
    found: &'a RefCell<Option<JsonBodyError>>,
}

impl Walk<'_> {
    fn refuse<E: de::Error>(&self, refused: JsonBodyError) -> E {
        let message = refused.to_string();
        *self.found.borrow_mut() = Some(refused);
        E::custom(message)
    }

    /// Refuses `text` (a string at `path`) when it holds a control character.
    fn text<E: de::Error>(&self, path: &Path<'_>, text: &str) -> Result<(), E> {
        match text.chars().find(|c| is_refused_control(*c)) {
            Some(c) => Err(self.refuse(JsonBodyError::ControlCharacter {
                path: path.rendered(),
                code: u32::from(c),
            })),
            None => Ok(()),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// An object key of JSON text, borrowed from the text when it has no escapes (reading keys
/// without allocating: request bodies here, stored payloads where personal fields are opened).
pub struct ObjectKey<'de>(pub std::borrow::Cow<'de, str>);

impl<'de> de::Deserialize<'de> for ObjectKey<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = ObjectKey<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<ObjectKey<'de>, E> {
                Ok(ObjectKey(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ObjectKey<'de>, E> {
                Ok(ObjectKey(v.to_owned().into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ObjectKey<'de>, E> {
                Ok(ObjectKey(v.into()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.text(self.path, v)
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let path = Path::Index(self.path, index);
            let element = Walk {
                path: &path,
                found: self.found,
            };
            if seq.next_element_seed(element)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: Vec<ObjectKey<'de>> = Vec::new();
        while let Some(key) = map.next_key::<ObjectKey<'de>>()? {
            {
                let path = Path::Key(self.path, &key.0);
                if seen.iter().any(|k| k.0 == key.0) {
                    let path = path.rendered();
                    return Err(self.refuse(JsonBodyError::DuplicateKey { path }));
                }
                self.text(&path, &key.0)?;
                map.next_value_seed(Walk {
                    path: &path,
                    found: self.found,
                })?;
            }
            seen.push(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn duplicate(body: &str) -> Option<String> {
        match check(body.as_bytes()) {
            Err(JsonBodyError::DuplicateKey { path }) => Some(path),
            Err(other) => panic!("{body}: {other}"),
            Ok(()) => None,
        }
    }

    fn control(body: &str) -> Option<(String, u32)> {
        match check(body.as_bytes()) {
            Err(JsonBodyError::ControlCharacter { path, code }) => Some((path, code)),
            Err(other) => panic!("{body}: {other}"),
            Ok(()) => None,
        }
    }

    #[test]
    fn a_repeated_top_level_key_is_named() {
        assert_eq!(
            duplicate(r#"{"currency":"USD","lines":[],"currency":"EUR"}"#).as_deref(),
            Some("currency")
        );
    }

    #[test]
    fn a_repeated_key_in_a_nested_object_is_named_by_its_path() {
        assert_eq!(
            duplicate(r#"{"shipping_address":{"country":"US","city":"x","country":"DE"}}"#)
                .as_deref(),
            Some("shipping_address.country")
        );
    }

    #[test]
    fn a_repeated_key_inside_an_array_element_is_named_with_its_index() {
        let body = r#"{"lines":[{"sku":"A","quantity":1},{"sku":"B","sku":"C"}]}"#;
        assert_eq!(duplicate(body).as_deref(), Some("lines[1].sku"));
        let nested = r#"[[{}],[{"a":{"b":1,"b":2}}]]"#;
        assert_eq!(duplicate(nested).as_deref(), Some("[1][0].a.b"));
    }

    #[test]
    fn an_escaped_spelling_of_the_same_key_is_a_duplicate() {
        assert_eq!(
            duplicate(r#"{"currency":"USD","curr\u0065ncy":"EUR"}"#).as_deref(),
            Some("currency")
        );
    }

    #[test]
    fn the_same_key_in_different_objects_is_fine() {
        let body = r#"{"a":{"id":1},"b":{"id":2},"lines":[{"id":1},{"id":1}],"id":3}"#;
        assert_eq!(duplicate(body), None);
        let parsed: Value = from_slice(body.as_bytes()).unwrap();
        assert_eq!(parsed["lines"][1]["id"], json!(1));
    }

    #[test]
    fn invalid_json_and_trailing_bytes_are_syntax_errors() {
        for body in [r#"{"a":"#, r#"{"a":1} {"#, "", r#"{"a":1,}"#] {
            assert!(
                matches!(check(body.as_bytes()), Err(JsonBodyError::Syntax(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn a_nul_byte_anywhere_is_named_by_its_path() {
        assert_eq!(
            control(r#"{"name":"Main\u0000Street"}"#),
            Some(("name".to_owned(), 0))
        );
        assert_eq!(
            control(r#"{"lines":[{"sku":"A"},{"note":"x\u001by"}]}"#),
            Some(("lines[1].note".to_owned(), 0x1b))
        );
        assert_eq!(
            control(r#"{"a":{"bad\u0000key":1}}"#),
            Some(("a.bad\u{0}key".to_owned(), 0))
        );
        // C1 controls and DEL are control characters too.
        assert_eq!(control(r#"{"x":"\u0085"}"#), Some(("x".to_owned(), 0x85)));
        assert_eq!(control(r#"{"x":"\u007f"}"#), Some(("x".to_owned(), 0x7f)));
    }

    #[test]
    fn tabs_and_line_breaks_in_free_text_are_fine() {
        assert_eq!(control("{\"note\":\"line one\\n\\tline two\\r\\n\"}"), None);
        assert_eq!(control(r#"{"name":"Zoë 東京 🚚"}"#), None);
    }

    #[test]
    fn from_slice_parses_a_body_without_duplicates_like_serde_json() {
        let body = br#"{"x":[1,2.5,"s",null,true,{"y":{}}]}"#;
        let strict: Value = from_slice(body).unwrap();
        assert_eq!(strict, serde_json::from_slice::<Value>(body).unwrap());
        let error = from_slice::<Value>(br#"{"x":1,"x":1}"#).unwrap_err();
        assert_eq!(error.field(), Some("x"));
    }
}
