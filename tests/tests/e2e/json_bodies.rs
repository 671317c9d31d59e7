//! JSON bodies Waybill must not read, on every endpoint that takes one: an object naming a key
//! twice (`"currency":"USD","currency":"EUR"` would otherwise book the order in EUR) and a
//! string holding a NUL byte or another control character (Postgres cannot store a NUL; the
//! answer used to be a 500 "safe to retry" that never succeeds). Each is refused with
//! problem+json naming the field by its path, and nothing is stored.

use serde_json::{json, Value};
use waybill_e2e::{sample_order, Api, HttpResponse, Role, TestEnv, ADMIN_KEY, SERVICE_KEY};

const ORDER: &str = "0190f0c4-0000-7000-8000-000000000001";
const OTHER: &str = "0190f0c4-0000-7000-8000-000000000002";

/// Who signs or authenticates a request.
#[derive(Clone, Copy)]
enum Caller {
    Key(&'static str),
    /// A signed-in customer (a JWT of this test).
    Customer,
    PaymentWebhook,
    LogisticsWebhook,
}

/// One endpoint that takes JSON: its method, its OpenAPI path template, a concrete path, and
/// who may call it.
struct Endpoint {
    method: &'static str,
    template: &'static str,
    path: String,
    caller: Caller,
}

fn endpoints() -> Vec<Endpoint> {
    let e = |method, template: &'static str, caller| Endpoint {
        method,
        template,
        path: template
            .replace("{id}", ORDER)
            .replace("{dispute_id}", OTHER)
            .replace("{return_id}", OTHER)
            .replace("{entry_id}", OTHER)
            .replace("{subscription_id}", OTHER)
            .replace("{sku}", "TEE-1")
            .replace("{location}", "wh-1"),
        caller,
    };
    let service = Caller::Key(SERVICE_KEY);
    let admin = Caller::Key(ADMIN_KEY);
    vec![
        e("post", "/v1/orders", service),
        e("post", "/v1/desk/entries/{entry_id}/resolve", admin),
        e("post", "/v1/orders/{id}/cancel", service),
        e("post", "/v1/orders/{id}/lines/cancel", service),
        e("post", "/v1/orders/{id}/edits", admin),
        e("post", "/v1/orders/{id}/edits/preview", admin),
        e("post", "/v1/orders/{id}/review", admin),
        e("post", "/v1/orders/{id}/notifications/resend", admin),
        e("put", "/v1/me/notification-preferences", Caller::Customer),
        e("post", "/v1/orders/{id}/refunds", admin),
        e("post", "/v1/orders/{id}/charges", admin),
        e(
            "post",
            "/v1/orders/{id}/disputes/{dispute_id}/evidence",
            admin,
        ),
        e("post", "/v1/settlement/imports", admin),
        e("post", "/v1/routing/simulations", admin),
        e("post", "/v1/guests/erasure", admin),
        e("post", "/v1/orders/{id}/returns", admin),
        e(
            "post",
            "/v1/orders/{id}/returns/{return_id}/inspection",
            admin,
        ),
        e("post", "/v1/webhooks/payments", Caller::PaymentWebhook),
        e("post", "/v1/webhooks/wms", Caller::LogisticsWebhook),
        e("post", "/v1/webhooks/carrier", Caller::LogisticsWebhook),
        e("put", "/v1/inventory/locations/{id}", admin),
        e(
            "post",
            "/v1/inventory/stock/{sku}/{location}/restock",
            admin,
        ),
        e("post", "/v1/inventory/stock/{sku}/{location}/adjust", admin),
        e("post", "/v1/subscriptions", admin),
        e("patch", "/v1/subscriptions/{subscription_id}", admin),
    ]
}

/// Bodies with a repeated key, each with the path the answer must name. Written as text:
/// a JSON value cannot hold a repeated key.
const DUPLICATES: &[(&str, &str)] = &[
    (
        r#"{"reason":"x","currency":"USD","currency":"EUR"}"#,
        "currency",
    ),
    (
        r#"{"shipping_address":{"country":"US","city":"Springfield","country":"DE"}}"#,
        "shipping_address.country",
    ),
    (
        r#"{"lines":[{"sku":"TEE-1","quantity":1},{"sku":"TEE-2","quantity":1,"sku":"TEE-3"}]}"#,
        "lines[1].sku",
    ),
];

/// Bodies with a control character in a string, each with the path the answer must name.
const CONTROLS: &[(&str, &str)] = &[
    (r#"{"name":"Main\u0000Street","reason":"x"}"#, "name"),
    (
        r#"{"lines":[{"note":"fine"},{"note":"bell\u0007"}]}"#,
        "lines[1].note",
    ),
];

async fn send(
    api: &Api,
    env: &TestEnv,
    endpoint: &Endpoint,
    key: &str,
    body: &str,
) -> HttpResponse {
    let url = format!("{}{}", api.command_url, endpoint.path);
    let client = reqwest::Client::new();
    let mut request = match endpoint.method {
        "put" => client.put(&url),
        "patch" => client.patch(&url),
        _ => client.post(&url),
    }
    .header("content-type", "application/json")
    .header("idempotency-key", key)
    .body(body.to_owned());
    let sign = |secret: &str| {
        waybill_write_side::payment::webhook::sign(
            secret.as_bytes(),
            chrono::Utc::now().timestamp(),
            body.as_bytes(),
        )
    };
    request = match endpoint.caller {
        Caller::Key(bearer) => request.bearer_auth(bearer),
        Caller::Customer => request.bearer_auth(env.jwt("json-customer", "customer")),
        Caller::PaymentWebhook => request.header(
            "waybill-gateway-signature",
            sign(&env.payment_webhook_secret),
        ),
        Caller::LogisticsWebhook => request.header(
            "waybill-logistics-signature",
            sign(&env.logistics_webhook_secret),
        ),
    };
    Api::read(request.send().await.expect("send")).await
}

/// What is wrong with `response`, if anything, for a refusal `status`/`slug` naming `field`.
fn wrong(response: &HttpResponse, status: u16, slug: &str, field: &str) -> Option<String> {
    let ok = response.status == status
        && response.header("content-type") == Some("application/problem+json")
        && response.problem_slug().as_deref() == Some(slug)
        && response.json()["field"] == json!(field);
    (!ok).then(|| {
        format!(
            "want {status} {slug} naming {field}, got {}",
            response.describe()
        )
    })
}

/// Every operation of the command API's OpenAPI document that takes a request body.
async fn documented_json_operations(api: &Api) -> Vec<(String, String)> {
    let document = api
        .get(&format!("{}/openapi.json", api.command_url))
        .await
        .json();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if operation.get("requestBody").is_some() {
                // The document says what the endpoint refuses.
                let responses = &operation["responses"];
                for (status, slug) in [("400", "duplicate-key"), ("422", "control character")] {
                    let description = responses[status]["description"].as_str().unwrap_or("");
                    assert!(
                        description.contains(slug),
                        "{method} {path}: {status} does not document {slug}: {description:?}"
                    );
                }
                operations.push((method.clone(), path.clone()));
            }
        }
    }
    operations.sort();
    operations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_keys_and_control_characters_are_refused_on_every_json_endpoint() {
    let env = TestEnv::new("json_bodies").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();

    // The table covers every endpoint the document says takes a body.
    let mut covered: Vec<(String, String)> = endpoints()
        .iter()
        .map(|e| (e.method.to_owned(), e.template.to_owned()))
        .collect();
    covered.sort();
    assert_eq!(documented_json_operations(&api).await, covered);

    let mut failures = Vec::new();
    let mut n = 0;
    for endpoint in endpoints() {
        for (body, field) in DUPLICATES {
            n += 1;
            let response = send(&api, &env, &endpoint, &format!("dup-{n}"), body).await;
            if let Some(w) = wrong(&response, 400, "duplicate-key", field) {
                failures.push(format!("{} {}: {w}", endpoint.method, endpoint.path));
            }
        }
        for (body, field) in CONTROLS {
            n += 1;
            let response = send(&api, &env, &endpoint, &format!("ctl-{n}"), body).await;
            if let Some(w) = wrong(&response, 422, "validation-failed", field) {
                failures.push(format!("{} {}: {w}", endpoint.method, endpoint.path));
            }
        }
    }
    let mut stored = Vec::new();
    for table in [
        "events",
        "outbox",
        "idempotency_records",
        "inventory_locations",
        "notification_preferences",
    ] {
        let rows = env.count_rows(table).await;
        if rows != 0 {
            stored.push(format!("{table}: {rows} rows"));
        }
    }
    assert!(
        failures.is_empty() && stored.is_empty(),
        "refused wrongly:\n  {}\nstored: {stored:?}",
        failures.join("\n  ")
    );
}

/// The order with the currency written twice: refused, where it used to be booked in the
/// second currency. Written once, the same order is placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_naming_its_currency_twice_is_refused_and_books_nothing() {
    let env = TestEnv::new("json_currency_twice").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();

    let order = sample_order("WEB-DUP-1");
    assert_eq!(order["currency"], json!("USD"));
    let text = order.to_string();
    let twice = format!("{},\"currency\":\"EUR\"}}", &text[..text.len() - 1]);
    let refused = api
        .command_request(
            "/v1/orders",
            Some(SERVICE_KEY),
            Some("dup-currency"),
            Some("application/json"),
            twice.into_bytes(),
        )
        .await;
    assert_eq!(
        wrong(&refused, 400, "duplicate-key", "currency"),
        None::<String>
    );
    assert_eq!(env.count_rows("events").await, 0);

    let placed = api.place_order("once-currency", &order).await;
    assert_eq!(placed.status, 201, "{}", placed.describe());
    let _: Value = placed.json();
}

/// A location name with a NUL byte: 422 naming `name` (it was a 500 "safe to retry"); a
/// country code orders refuse (`XX`): 422 naming `country` (it was stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_with_a_nul_in_its_name_or_an_unknown_country_is_refused_naming_the_field() {
    let env = TestEnv::new("json_location_nul").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();

    let body = json!({"kind": "warehouse", "name": "Main\u{0}Street", "country": "US", "zone": 6});
    let response = api
        .put_json("/v1/inventory/locations/wh-nul", ADMIN_KEY, "nul-1", &body)
        .await;
    assert_eq!(
        wrong(&response, 422, "validation-failed", "name"),
        None::<String>
    );
    for (key, country) in [("xx-1", "XX"), ("zz-1", "zz")] {
        let body = json!({"kind": "warehouse", "name": "Main", "country": country, "zone": 6});
        let response = api
            .put_json("/v1/inventory/locations/wh-nul", ADMIN_KEY, key, &body)
            .await;
        assert_eq!(
            wrong(&response, 422, "validation-failed", "country"),
            None::<String>
        );
        // Orders refuse the same code.
        let mut order = sample_order(&format!("WEB-{key}"));
        order["shipping_address"]["country"] = json!(country);
        let placed = api.place_order(key, &order).await;
        assert_eq!(placed.status, 422, "{}", placed.describe());
        assert!(
            placed
                .problem_fields()
                .contains(&"shipping_address.country".to_owned()),
            "{}",
            placed.describe()
        );
    }
    assert_eq!(env.count_rows("inventory_locations").await, 0);
    let fine = json!({"kind": "warehouse", "name": "Main Street", "country": "US", "zone": 6});
    let response = api
        .put_json("/v1/inventory/locations/wh-nul", ADMIN_KEY, "nul-2", &fine)
        .await;
    assert_eq!(response.status, 200, "{}", response.describe());
}
