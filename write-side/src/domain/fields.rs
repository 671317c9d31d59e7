//! Walking a raw JSON request with field paths: every accessor records a [`FieldError`] naming
//! the exact path (`lines[0].quantity`) instead of stopping at the first problem, so a client
//! gets all of its mistakes in one response.

use serde_json::{Map, Value};

/// One refused field: its path in the request and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Path of the field, e.g. `lines[0].quantity`; `body` for the request as a whole.
    pub field: String,
    pub detail: String,
}

/// All the field errors of one request; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", summary(.0))]
pub struct ValidationErrors(pub Vec<FieldError>);

fn summary(errors: &[FieldError]) -> String {
    match errors.first() {
        Some(first) => format!(
            "{} invalid field(s), first {}: {}",
            errors.len(),
            first.field,
            first.detail
        ),
        None => "invalid request".to_owned(),
    }
}

/// Path of the whole request body in field errors.
pub const BODY: &str = "body";

/// Collects field errors while a request is parsed.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            detail: detail.into(),
        });
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `Ok(value)` when nothing was refused.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ValidationErrors> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ if self.0.is_empty() => Err(ValidationErrors(vec![FieldError {
                field: BODY.to_owned(),
                detail: "is invalid".to_owned(),
            }])),
            _ => Err(ValidationErrors(self.0)),
        }
    }
}

pub fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() || parent == BODY {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// A present string field, trimmed: non-empty, at most `max` characters, no control
/// characters. The error is the field error's detail.
pub fn check_str(raw: &str, max: usize) -> Result<&str, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(s)
}

/// The integer a JSON number stands for: `3` and also `3.0` (JSON Schema counts a number with
/// no fractional part as an integer, and so do the OpenAPI documents); `None` for `3.5` or a
/// number outside `i64`.
pub fn integral(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18)
            .map(|f| f as i64)
    })
}

/// The integer a JSON value stands for, as [`integral`].
pub fn integral_value(value: &Value) -> Option<i64> {
    value.as_number().and_then(integral)
}

/// A present integer field in `min..=max`. The error is the field error's detail.
pub fn check_int(i: i64, min: i64, max: i64) -> Result<i64, String> {
    if i < min {
        Err(format!("must be at least {min}"))
    } else if i > max {
        Err(format!("must be at most {max}"))
    } else {
        Ok(i)
    }
}

/// A present field was refused; the reason is already recorded in [`Errors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// A JSON object at a known path.
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    pub path: String,
}

/// The value at `path` as an object, or an error.
pub fn object<'a>(value: &'a Value, path: String, errors: &mut Errors) -> Option<Obj<'a>> {
    match value {
        Value::Object(map) => Some(Obj { map, path }),
        _ => {
            errors.push(path, "must be an object");
            None
        }
    }
}

impl<'a> Obj<'a> {
    pub fn path_of(&self, key: &str) -> String {
        child(&self.path, key)
    }

    /// The value of `key`; JSON `null` counts as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn missing(&self, key: &str, errors: &mut Errors) {
        errors.push(self.path_of(key), "is required");
    }

    /// A required, trimmed, non-empty string of at most `max` characters.
    pub fn required_str(&self, key: &str, max: usize, errors: &mut Errors) -> Option<String> {
        match self.optional_str(key, max, errors) {
            Ok(Some(s)) => Some(s),
            Ok(None) => {
                self.missing(key, errors);
                None
            }
            Err(Refused) => None,
        }
    }

    /// An optional string; present means trimmed, non-empty and at most `max` characters.
    /// `Err(Refused)` when present but refused (the error is recorded).
    pub fn optional_str(
        &self,
        key: &str,
        max: usize,
        errors: &mut Errors,
    ) -> Result<Option<String>, Refused> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let Some(raw) = value.as_str() else {
            errors.push(self.path_of(key), "must be a string");
            return Err(Refused);
        };
        match check_str(raw, max) {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(detail) => {
                errors.push(self.path_of(key), detail);
                Err(Refused)
            }
        }
    }

    /// A required integer in `min..=max`.
    pub fn required_int(&self, key: &str, min: i64, max: i64, errors: &mut Errors) -> Option<i64> {
        let Some(value) = self.get(key) else {
            self.missing(key, errors);
            return None;
        };
        self.int_value(key, value, min, max, errors)
    }

    /// An optional integer in `min..=max`, `default` when absent.
    pub fn int_or(
        &self,
        key: &str,
        default: i64,
        min: i64,
        max: i64,
        errors: &mut Errors,
    ) -> Option<i64> {
        match self.get(key) {
            None => Some(default),
            Some(value) => self.int_value(key, value, min, max, errors),
        }
    }

    /// An optional integer in `min..=max`; `Err(Refused)` when present but refused.
    pub fn optional_int(
        &self,
        key: &str,
        min: i64,
        max: i64,
        errors: &mut Errors,
    ) -> Result<Option<i64>, Refused> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => self
                .int_value(key, value, min, max, errors)
                .map(Some)
                .ok_or(Refused),
        }
    }

    fn int_value(
        &self,
        key: &str,
        value: &Value,
        min: i64,
        max: i64,
        errors: &mut Errors,
    ) -> Option<i64> {
        let n = match value {
            Value::Number(n) => n,
            _ => {
                errors.push(self.path_of(key), "must be an integer");
                return None;
            }
        };
        match integral(n) {
            Some(i) => match check_int(i, min, max) {
                Ok(i) => return Some(i),
                Err(detail) => errors.push(self.path_of(key), detail),
            },
            None if n.as_u64().is_some() => {
                errors.push(self.path_of(key), format!("must be at most {max}"))
            }
            None => errors.push(
                self.path_of(key),
                format!("must be an integer between {min} and {max}"),
            ),
        }
        None
    }

    /// A required nested object.
    pub fn required_obj(&self, key: &str, errors: &mut Errors) -> Option<Obj<'a>> {
        match self.get(key) {
            Some(value) => object(value, self.path_of(key), errors),
            None => {
                self.missing(key, errors);
                None
            }
        }
    }

    /// An optional nested object; `Err(Refused)` when present but not an object.
    pub fn optional_obj(&self, key: &str, errors: &mut Errors) -> Result<Option<Obj<'a>>, Refused> {
        match self.get(key) {
            Some(value) => object(value, self.path_of(key), errors)
                .map(Some)
                .ok_or(Refused),
            None => Ok(None),
        }
    }

    /// An array of at most `max` items; absent counts as empty when `required` is false.
    pub fn array(
        &self,
        key: &str,
        required: bool,
        max: usize,
        errors: &mut Errors,
    ) -> Option<&'a [Value]> {
        match self.get(key) {
            None if required => {
                self.missing(key, errors);
                None
            }
            None => Some(&[]),
            Some(Value::Array(items)) if items.len() > max => {
                errors.push(
                    self.path_of(key),
                    format!("must have at most {max} items, got {}", items.len()),
                );
                None
            }
            Some(Value::Array(items)) => Some(items),
            Some(_) => {
                errors.push(self.path_of(key), "must be an array");
                None
            }
        }
    }
}
