//! One error vocabulary on every endpoint of both APIs: whatever refuses a request (a handler, an
//! extractor, the body limit, the router's 404/405, the request timeout), the answer is
//! `application/problem+json` whose `type` is one of the shared types, whose `status` is that
//! type's one status, and which names the offending field where there is one. The table below is
//! the specification; the last assertion checks that no type came with two statuses.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::Value;
use waybill_e2e::{Role, TestEnv, ADMIN_KEY, AGENT_KEY, SERVICE_KEY};

/// Which API a row is sent to.
#[derive(Clone, Copy, Debug)]
enum On {
    Command,
    Query,
}

struct Row {
    what: &'static str,
    on: On,
    method: Method,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    slug: &'static str,
    field: Option<&'static str>,
}

fn row(what: &'static str, on: On, method: Method, path: &'static str) -> Row {
    Row {
        what,
        on,
        method,
        path,
        headers: Vec::new(),
        body: Vec::new(),
        status: 0,
        slug: "",
        field: None,
    }
}

impl Row {
    fn bearer(mut self, key: &str) -> Self {
        self.headers
            .push(("Authorization", format!("Bearer {key}")));
        self
    }
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
    fn json(self, body: &str) -> Self {
        let mut row = self.header("Content-Type", "application/json");
        row.body = body.as_bytes().to_vec();
        row
    }
    fn command(self, key: &str) -> Self {
        self.bearer(key).header("Idempotency-Key", "problems-1")
    }
    fn expect(mut self, status: u16, slug: &'static str, field: Option<&'static str>) -> Self {
        self.status = status;
        self.slug = slug;
        self.field = field;
        self
    }
}

/// A JSON string 70,000 bytes long: past the 64 KiB default body limit.
fn oversized() -> String {
    format!("{{\"padding\": \"{}\"}}", "x".repeat(70_000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_on_both_apis_is_one_problem_vocabulary() {
    let env = TestEnv::new("problems").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    let big = oversized();

    use On::{Command, Query};
    let rows = vec![
        // The body limit, on webhooks (plain text before) and on commands.
        row(
            "payment webhook over the limit",
            Command,
            Method::POST,
            "/v1/webhooks/payments",
        )
        .json(&big)
        .expect(413, "payload-too-large", None),
        row(
            "WMS webhook over the limit",
            Command,
            Method::POST,
            "/v1/webhooks/wms",
        )
        .json(&big)
        .expect(413, "payload-too-large", None),
        row(
            "carrier webhook over the limit",
            Command,
            Method::POST,
            "/v1/webhooks/carrier",
        )
        .json(&big)
        .expect(413, "payload-too-large", None),
        row(
            "stock movement over the limit",
            Command,
            Method::POST,
            "/v1/inventory/stock/SKU-1/dc-1/restock",
        )
        .command(ADMIN_KEY)
        .json(&big)
        .expect(413, "payload-too-large", None),
        // An unknown resource in a path is 404, a stock location too.
        row(
            "stock movement at an unknown location",
            Command,
            Method::POST,
            "/v1/inventory/stock/SKU-1/nowhere-1/restock",
        )
        .command(ADMIN_KEY)
        .json(r#"{"quantity":1}"#)
        .expect(404, "not-found", Some("location")),
        row("order over the limit", Command, Method::POST, "/v1/orders")
            .command(SERVICE_KEY)
            .json(&big)
            .expect(413, "payload-too-large", None),
        // The router's own answers.
        row(
            "wrong method on a command",
            Command,
            Method::GET,
            "/v1/orders",
        )
        .bearer(SERVICE_KEY)
        .expect(405, "method-not-allowed", None),
        row(
            "wrong method on a query",
            Query,
            Method::DELETE,
            "/v1/search/orders",
        )
        .bearer(AGENT_KEY)
        .expect(405, "method-not-allowed", None),
        row(
            "no such command endpoint",
            Command,
            Method::GET,
            "/v1/nothing-here",
        )
        .expect(404, "not-found", None),
        row(
            "no such query endpoint",
            Query,
            Method::GET,
            "/v1/nothing-here",
        )
        .expect(404, "not-found", None),
        // Path parameters that are not UTF-8 (axum's plain-text 400 before).
        row(
            "command path not UTF-8",
            Command,
            Method::POST,
            "/v1/orders/%FF%FE/cancel",
        )
        .command(SERVICE_KEY)
        .json(r#"{"reason": "other"}"#)
        .expect(422, "validation-failed", Some("id")),
        row(
            "query path not UTF-8",
            Query,
            Method::GET,
            "/v1/agent/orders/%FF%FE",
        )
        .bearer(AGENT_KEY)
        .expect(422, "validation-failed", Some("id")),
        // Query strings: one status for validation-failed on both APIs (400 on the query API
        // before).
        row(
            "query parameter out of range (command API)",
            Command,
            Method::GET,
            "/v1/reviews?limit=0",
        )
        .bearer(ADMIN_KEY)
        .expect(422, "validation-failed", Some("limit")),
        row(
            "query string that does not parse (command API)",
            Command,
            Method::GET,
            "/v1/reviews?limit=many",
        )
        .bearer(ADMIN_KEY)
        .expect(422, "validation-failed", Some("query")),
        row(
            "query parameter out of range (query API)",
            Query,
            Method::GET,
            "/v1/finance/payouts?limit=0",
        )
        .bearer(ADMIN_KEY)
        .expect(422, "validation-failed", Some("limit")),
        row(
            "tracking min_version not a number",
            Query,
            Method::GET,
            "/v1/orders/01890000-0000-7000-8000-000000000000/tracking?min_version=soon",
        )
        .bearer(SERVICE_KEY)
        .expect(422, "validation-failed", Some("min_version")),
        // Headers and bodies.
        row(
            "no credentials (command)",
            Command,
            Method::POST,
            "/v1/orders",
        )
        .header("Idempotency-Key", "k")
        .json("{}")
        .expect(401, "unauthorized", None),
        row(
            "no credentials (query)",
            Query,
            Method::GET,
            "/v1/search/orders",
        )
        .expect(401, "unauthorized", None),
        row(
            "finance key on a command",
            Command,
            Method::POST,
            "/v1/orders",
        )
        .command(waybill_e2e::FINANCE_KEY)
        .json("{}")
        .expect(403, "forbidden", None),
        row(
            "customer-facing key reading finance",
            Query,
            Method::GET,
            "/v1/finance/summary",
        )
        .bearer(AGENT_KEY)
        .expect(403, "forbidden", None),
        row("no Idempotency-Key", Command, Method::POST, "/v1/orders")
            .bearer(SERVICE_KEY)
            .json("{}")
            .expect(400, "missing-idempotency-key", Some("Idempotency-Key")),
        row("not JSON", Command, Method::POST, "/v1/orders")
            .command(SERVICE_KEY)
            .header("Content-Type", "text/plain")
            .expect(415, "unsupported-media-type", None),
        row("JSON syntax error", Command, Method::POST, "/v1/orders")
            .command(SERVICE_KEY)
            .json(r#"{"channel": "#)
            .expect(400, "malformed-json", None),
        row(
            "a field's value refused",
            Command,
            Method::POST,
            "/v1/orders",
        )
        .command(SERVICE_KEY)
        .json(r#"{"channel": "fax"}"#)
        .expect(422, "validation-failed", Some("channel")),
        row(
            "unknown order",
            Command,
            Method::POST,
            "/v1/orders/01890000-0000-7000-8000-000000000000/cancel",
        )
        .command(SERVICE_KEY)
        .json(r#"{"reason": "other"}"#)
        .expect(404, "order-not-found", None),
        row(
            "unsigned webhook",
            Command,
            Method::POST,
            "/v1/webhooks/wms",
        )
        .json("{}")
        .expect(401, "invalid-signature", None),
    ];

    let mut statuses: BTreeMap<String, u16> = BTreeMap::new();
    let mut failures = Vec::new();
    for row in &rows {
        let base = match row.on {
            On::Command => &api.command_url,
            On::Query => &api.query_url,
        };
        let headers: Vec<(&str, &str)> =
            row.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = api
            .raw(
                row.method.clone(),
                &format!("{base}{}", row.path),
                &headers,
                row.body.clone(),
            )
            .await;
        let content_type = response
            .header("content-type")
            .unwrap_or_default()
            .to_owned();
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let slug = response.problem_slug();
        let field_ok = match row.field {
            Some(expected) => response.problem_fields().iter().any(|f| f == expected),
            None => body.get("field").is_none(),
        };
        let ok = response.status == row.status
            && content_type == "application/problem+json"
            && slug.as_deref() == Some(row.slug)
            && body["status"] == row.status
            && body["title"].is_string()
            && body["detail"].is_string()
            && field_ok;
        if !ok {
            failures.push(format!(
                "{} ({:?} {} {}): expected {} {} field {:?}, got {}",
                row.what,
                row.on,
                row.method,
                row.path,
                row.status,
                row.slug,
                row.field,
                response.describe()
            ));
        }
        if let (Some(slug), Some(status)) = (slug, body["status"].as_u64()) {
            let seen = statuses.entry(slug.clone()).or_insert(status as u16);
            assert_eq!(
                *seen, status as u16,
                "type {slug} came with two statuses ({seen} and {status})"
            );
        }
        if row.status == 405 {
            assert!(
                response.header("allow").is_some(),
                "{}: a 405 keeps its Allow header",
                row.what
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows answered otherwise:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
