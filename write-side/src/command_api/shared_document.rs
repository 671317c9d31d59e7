//! An OpenAPI document built and serialised once per process, served from shared bytes.
//!
//! The `OpenApi` value is a deep tree of maps and strings: a handler that captured it cloned it
//! per connection (the router's handlers are cloned for each) and again per request, and
//! serialised it every time. Here the first request serialises it and every later one hands
//! out the same bytes (a reference count).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

pub struct SharedDocument {
    bytes: OnceLock<Bytes>,
    build: fn() -> serde_json::Value,
}

impl SharedDocument {
    /// A document `build` makes on first use.
    pub const fn new(build: fn() -> serde_json::Value) -> Self {
        Self {
            bytes: OnceLock::new(),
            build,
        }
    }

    /// The document as JSON, the same bytes every call.
    pub fn bytes(&self) -> Bytes {
        self.bytes
            .get_or_init(|| {
                Bytes::from(
                    serde_json::to_vec(&(self.build)())
                        .expect("an OpenAPI document serialises to JSON"),
                )
            })
            .clone()
    }

    /// `200 application/json` with the document.
    pub fn response(&self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.bytes()).into_response()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn doc() -> serde_json::Value {
        serde_json::json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}})
    }

    #[test]
    fn the_document_is_serialised_once_and_its_bytes_shared() {
        static DOC: SharedDocument = SharedDocument::new(doc);
        let first = DOC.bytes();
        let second = DOC.bytes();
        assert_eq!(first.as_ptr(), second.as_ptr(), "the same allocation");
        let parsed: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(parsed, serde_json::to_value(doc()).unwrap());
        let response = DOC.response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
