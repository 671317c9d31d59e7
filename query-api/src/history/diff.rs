//! What changed between two JSON documents, as a list of leaf changes addressed by JSON Pointer
//! (RFC 6901). Objects are compared key by key, arrays index by index (views only ever append
//! to their lists, so an appended timeline entry shows as one added index); anything else is
//! compared whole. Pure: used to show support agents how an order changed between versions.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// One changed place: `before` is absent where the value was added, `after` where it was removed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Change {
    /// JSON Pointer to the value, e.g. `/payment/state` or `/timeline/4`.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub after: Option<Value>,
}

/// Every change that turns `before` into `after`, in document order.
pub fn changes(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(&mut String::new(), Some(before), Some(after), &mut out);
    out
}

fn walk(path: &mut String, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<Change>) {
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            for (key, old) in b {
                within(path, &escape(key), |path| {
                    walk(path, Some(old), a.get(key), out)
                });
            }
            for (key, new) in a.iter().filter(|(key, _)| !b.contains_key(*key)) {
                within(path, &escape(key), |path| walk(path, None, Some(new), out));
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) => {
            for i in 0..b.len().max(a.len()) {
                within(path, &i.to_string(), |path| {
                    walk(path, b.get(i), a.get(i), out)
                });
            }
        }
        (b, a) if b == a => {}
        (b, a) => out.push(Change {
            path: if path.is_empty() {
                String::new()
            } else {
                path.clone()
            },
            before: b.cloned(),
            after: a.cloned(),
        }),
    }
}

/// Runs `f` with `segment` appended to `path`, then takes it off again.
fn within(path: &mut String, segment: &str, f: impl FnOnce(&mut String)) {
    let len = path.len();
    path.push('/');
    path.push_str(segment);
    f(path);
    path.truncate(len);
}

/// RFC 6901: `~` is written `~0` and `/` is written `~1` inside a segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(changes: &[Change]) -> Vec<&str> {
        changes.iter().map(|c| c.path.as_str()).collect()
    }

    #[test]
    fn equal_documents_have_no_changes() {
        let doc = json!({"a": [1, {"b": null}], "c": "x"});
        assert!(changes(&doc, &doc).is_empty());
    }

    #[test]
    fn changed_added_and_removed_leaves_are_named_by_pointer() {
        let before = json!({"status": "confirmed", "payment": {"state": "authorized", "void": 1}});
        let after = json!({"status": "cancelled", "payment": {"state": "voided"}, "reason": "x"});
        let mut found = changes(&before, &after);
        // Key order follows serde_json's map, which a feature of another crate may change.
        found.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            found,
            vec![
                Change {
                    path: "/payment/state".into(),
                    before: Some(json!("authorized")),
                    after: Some(json!("voided")),
                },
                Change {
                    path: "/payment/void".into(),
                    before: Some(json!(1)),
                    after: None,
                },
                Change {
                    path: "/reason".into(),
                    before: None,
                    after: Some(json!("x")),
                },
                Change {
                    path: "/status".into(),
                    before: Some(json!("confirmed")),
                    after: Some(json!("cancelled")),
                },
            ]
        );
    }

    #[test]
    fn an_appended_list_entry_is_one_added_index() {
        let before = json!({"timeline": [{"s": "placed"}]});
        let after = json!({"timeline": [{"s": "placed"}, {"s": "shipped"}]});
        let found = changes(&before, &after);
        assert_eq!(paths(&found), vec!["/timeline/1"]);
        assert_eq!(found[0].before, None);
        assert_eq!(found[0].after, Some(json!({"s": "shipped"})));
    }

    #[test]
    fn keys_with_slash_or_tilde_are_escaped() {
        let found = changes(&json!({"a/b": 1}), &json!({"a/b": 2}));
        assert_eq!(paths(&found), vec!["/a~1b"]);
        let found = changes(&json!({"c~d": 1}), &json!({"c~d": 2}));
        assert_eq!(paths(&found), vec!["/c~0d"]);
    }

    #[test]
    fn a_value_changing_kind_is_one_change_at_its_place() {
        let found = changes(&json!({"x": {"y": 1}}), &json!({"x": [1]}));
        assert_eq!(paths(&found), vec!["/x"]);
        let whole = changes(&json!(1), &json!(2));
        assert_eq!(paths(&whole), vec![""]);
    }
}
