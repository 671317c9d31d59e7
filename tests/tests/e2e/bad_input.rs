//! Bad requests to `POST /v1/orders`: each class gets a 4xx `application/problem+json` with a
//! stable type naming the field that was wrong, and none of them stores anything.

use serde_json::{json, Value};
use waybill_e2e::{sample_order, Api, Role, TestEnv, SERVICE_KEY};

/// One bad request and the answer it must get.
struct Case {
    name: &'static str,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    idempotency_key: bool,
    bearer: bool,
    status: &'static [u16],
    slugs: &'static [&'static str],
    field: Option<&'static str>,
}

fn case(name: &'static str, body: Vec<u8>) -> Case {
    Case {
        name,
        body,
        content_type: Some("application/json"),
        idempotency_key: true,
        bearer: true,
        status: &[422],
        slugs: &["validation-failed"],
        field: None,
    }
}

fn with(mut order: Value, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    edit(&mut order);
    order.to_string().into_bytes()
}

fn cases() -> Vec<Case> {
    let order = || sample_order("WEB-BAD");
    // Serde-level problems (missing field, wrong type) may be reported as malformed or invalid,
    // but must name the field.
    let shape = &[400u16, 422][..];
    let shape_slugs = &["validation-failed", "malformed-json"][..];
    vec![
        Case {
            status: &[400],
            slugs: &["malformed-json"],
            ..case("malformed JSON", br#"{"channel": "web","#.to_vec())
        },
        Case {
            status: shape,
            slugs: shape_slugs,
            field: Some("currency"),
            ..case(
                "missing field",
                with(order(), |o| {
                    o.as_object_mut().map(|m| m.remove("currency"));
                }),
            )
        },
        Case {
            status: shape,
            slugs: shape_slugs,
            field: Some("lines[0].quantity"),
            ..case(
                "wrong type",
                with(order(), |o| o["lines"][0]["quantity"] = json!("two")),
            )
        },
        Case {
            field: Some("lines[0].quantity"),
            ..case(
                "zero quantity",
                with(order(), |o| o["lines"][0]["quantity"] = json!(0)),
            )
        },
        Case {
            field: Some("lines[0].quantity"),
            ..case(
                "negative quantity",
                with(order(), |o| o["lines"][0]["quantity"] = json!(-3)),
            )
        },
        Case {
            status: shape,
            slugs: shape_slugs,
            field: Some("currency"),
            ..case(
                "unknown currency",
                with(order(), |o| o["currency"] = json!("XYZ")),
            )
        },
        Case {
            status: shape,
            slugs: shape_slugs,
            field: Some("channel"),
            ..case(
                "unknown channel",
                with(order(), |o| o["channel"] = json!("fax")),
            )
        },
        Case {
            field: Some("customer.email"),
            ..case(
                "invalid email",
                with(order(), |o| o["customer"]["email"] = json!("ada@")),
            )
        },
        Case {
            field: Some("lines"),
            ..case("no lines", with(order(), |o| o["lines"] = json!([])))
        },
        Case {
            status: &[413],
            slugs: &["payload-too-large"],
            ..case(
                "body over the limit",
                with(order(), |o| {
                    o["lines"][0]["name"] = json!("x".repeat(70 * 1024))
                }),
            )
        },
        Case {
            status: &[400],
            slugs: &["missing-idempotency-key"],
            idempotency_key: false,
            ..case("missing Idempotency-Key", order().to_string().into_bytes())
        },
        Case {
            status: &[415],
            slugs: &["unsupported-media-type"],
            content_type: Some("text/plain"),
            ..case("not JSON content type", order().to_string().into_bytes())
        },
        Case {
            status: &[401],
            slugs: &["unauthorized"],
            bearer: false,
            ..case("no API key", order().to_string().into_bytes())
        },
    ]
}

/// What is wrong with the answer to one case, if anything.
async fn check(api: &Api, index: usize, case: Case) -> Option<String> {
    let key = format!("bad-input-{index}");
    let response = api
        .command_request(
            "/v1/orders",
            case.bearer.then_some(SERVICE_KEY),
            case.idempotency_key.then_some(key.as_str()),
            case.content_type,
            case.body,
        )
        .await;
    let mut wrong = Vec::new();
    if !case.status.contains(&response.status) {
        wrong.push(format!(
            "status {} (want {:?})",
            response.status, case.status
        ));
    }
    match response.problem_slug() {
        Some(slug) if case.slugs.contains(&slug.as_str()) => {}
        other => wrong.push(format!(
            "problem type {other:?} (want one of {:?}, content-type {:?})",
            case.slugs,
            response.header("content-type")
        )),
    }
    if let Some(field) = case.field {
        let fields = response.problem_fields();
        if !fields.iter().any(|f| f == field) {
            wrong.push(format!("fields {fields:?} (want {field:?})"));
        }
    }
    (!wrong.is_empty()).then(|| {
        let mut text = response.text();
        text.truncate(400);
        format!("{}: {} — response: {text}", case.name, wrong.join("; "))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_problem_json_naming_the_field_and_stores_nothing() {
    let env = TestEnv::new("bad_input").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();

    let mut failures = Vec::new();
    for (index, case) in cases().into_iter().enumerate() {
        if let Some(failure) = check(&api, index, case).await {
            failures.push(failure);
        }
    }
    let mut stored = Vec::new();
    for table in ["events", "outbox", "channel_orders", "idempotency_records"] {
        let rows = env.count_rows(table).await;
        if rows != 0 {
            stored.push(format!("{table}: {rows} rows"));
        }
    }
    assert!(
        failures.is_empty() && stored.is_empty(),
        "bad input answered wrongly:\n  {}\nstored after bad input: {stored:?}",
        failures.join("\n  ")
    );
}
