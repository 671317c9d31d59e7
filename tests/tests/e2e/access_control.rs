//! Who may call what, over HTTP against the real binary: one table of endpoint × caller →
//! expected status, covering every endpoint of the command API and the query API. A new endpoint
//! is one more row in [`MATRIX`].
//!
//! Callers (columns): nobody, the customer who placed order A (JWT, role customer), another
//! customer (JWT), and the staff/service roles by API key; plus an agent by JWT, an expired JWT
//! and a JWT signed with another key (both must be worth nothing). Every answer must carry
//! `X-Content-Type-Options: nosniff`. The JWT columns are then run again, on every read-only
//! row, with RS256 tokens of the storefront's identity provider (keys from its JWKS): they
//! must reach exactly what Waybill's own HS256 tokens reach.

use reqwest::Method;
use serde_json::{json, Value};
use waybill_e2e::{
    eventually, sample_order, Api, IdentityProvider, Role, TestEnv, ADMIN_KEY, AGENT_KEY,
    FINANCE_KEY, SERVICE_KEY,
};
use waybill_schemas::jwt::testing::TestSigner;

/// Column order of [`MATRIX`].
const CALLERS: [&str; 10] = [
    "anonymous",
    "owner (customer JWT)",
    "other customer (JWT)",
    "agent key",
    "finance key",
    "admin key",
    "service key",
    "agent JWT",
    "expired admin JWT",
    "admin JWT signed with another key",
];

/// 2xx: any success status (200 or 201: the table is about access, not about which success).
const OK: u16 = 200;

/// `(service, method, path, expected status per caller in CALLERS order)`. In paths `{A}` is
/// order A (placed by the owner), `{B}` order B (the other customer's), `{missing}` an order id
/// nobody placed, `{tokenA}` order A's tracking token, `{n}` a number unique to the cell.
#[rustfmt::skip]
const MATRIX: &[(Service, &str, &str, [u16; 10])] = &[
    //                                                                    anon own  oth  agt  fin  adm  svc  aJWT exp  forged
    (Q, "GET",  "/v1/orders/{A}/tracking",                               [401, OK,  404, OK,  403, OK,  OK,  OK,  401, 401]),
    (Q, "GET",  "/v1/orders/{B}/tracking",                               [401, 404, OK,  OK,  403, OK,  OK,  OK,  401, 401]),
    (Q, "GET",  "/v1/orders/{missing}/tracking",                         [401, 404, 404, 404, 403, 404, 404, 404, 401, 401]),
    (Q, "GET",  "/v1/orders/{B}/tracking?token={tokenA}",                [404, 404, OK,  OK,  403, OK,  OK,  OK,  401, 401]),
    (Q, "GET",  "/v1/me/orders",                                         [401, OK,  OK,  403, 403, 403, 403, 403, 401, 401]),
    (Q, "GET",  "/v1/me/store-credit",                                   [401, OK,  OK,  403, 403, 403, 403, 403, 401, 401]),
    (Q, "GET",  "/track/{A}?token={tokenA}",                             [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    (Q, "GET",  "/track/{B}?token={tokenA}",                             [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
    (Q, "GET",  "/track/{missing}?token={tokenA}",                       [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
    (Q, "GET",  "/track/{A}/events?token={tokenB}",                      [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
    (Q, "GET",  "/track",                                                [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    (Q, "GET",  "/track/assets/page.js",                                 [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    (Q, "GET",  "/track/assets/page.css",                                [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    (Q, "GET",  "/v1/search/orders?q=ACL",                              [401, 403, 403, OK,  403, OK,  403, OK,  401, 401]),
    (Q, "GET",  "/v1/agent/orders/{A}",                                  [401, 403, 403, OK,  403, OK,  403, OK,  401, 401]),
    (Q, "GET",  "/v1/agent/orders/{A}/history",                          [401, 403, 403, OK,  403, OK,  403, OK,  401, 401]),
    (Q, "GET",  "/v1/agent/orders/{A}/diff?from=1&to=1",                 [401, 403, 403, OK,  403, OK,  403, OK,  401, 401]),
    (Q, "GET",  "/v1/finance/summary",                                   [401, 403, 403, 403, OK,  OK,  403, 403, 401, 401]),
    (Q, "GET",  "/v1/finance/payouts",                                   [401, 403, 403, 403, OK,  OK,  403, 403, 401, 401]),
    (Q, "GET",  "/v1/finance/reconciliation",                            [401, 403, 403, 403, OK,  OK,  403, 403, 401, 401]),
    (Q, "GET",  "/v1/finance/metrics",                                   [401, 403, 403, 403, OK,  OK,  403, 403, 401, 401]),
    (Q, "GET",  "/health",                                               [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    (Q, "GET",  "/openapi.json",                                         [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    (Q, "GET",  "/live",                                                 [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    (Q, "GET",  "/ready",                                                [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    // Metrics are on the process's own listener, never on a public port.
    (Q, "GET",  "/metrics",                                              [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
    (C, "POST", "/v1/orders",                                            [401, 403, 403, OK,  403, OK,  OK,  OK,  401, 401]),
    (C, "POST", "/v1/orders/{missing}/cancel",                           [401, 403, 403, 404, 403, 404, 404, 404, 401, 401]),
    (C, "POST", "/v1/orders/{missing}/lines/cancel",                     [401, 403, 403, 404, 403, 404, 404, 404, 401, 401]),
    // Whose order an edit may touch is proven in edits.rs (order A may be mid-checkout here).
    (C, "POST", "/v1/orders/{missing}/edits",                            [401, 404, 404, 404, 403, 404, 404, 404, 401, 401]),
    (C, "POST", "/v1/orders/{missing}/edits/preview",                    [401, 404, 404, 404, 403, 404, 404, 404, 401, 401]),
    (C, "POST", "/v1/orders/{missing}/review",                           [401, 403, 403, 404, 403, 404, 403, 404, 401, 401]),
    (C, "GET",  "/v1/reviews",                                           [401, 403, 403, OK,  403, OK,  403, OK,  401, 401]),
    (C, "GET",  "/v1/desk/entries",                                      [401, 403, 403, OK,  403, OK,  403, OK,  401, 401]),
    (C, "GET",  "/v1/desk/entries/{missing}",                            [401, 403, 403, 404, 403, 404, 403, 404, 401, 401]),
    (C, "POST", "/v1/desk/entries/{missing}/resolve",                    [401, 403, 403, 404, 403, 404, 403, 404, 401, 401]),
    (C, "POST", "/v1/webhooks/payments",                                 [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
    (C, "PUT",  "/v1/inventory/locations/acl-{n}",                       [401, 403, 403, 403, 403, OK,  OK,  403, 401, 401]),
    (C, "GET",  "/v1/inventory/stock/ACL-SKU",                           [401, 403, 403, 403, 403, OK,  OK,  403, 401, 401]),
    (C, "POST", "/v1/inventory/stock/ACL-SKU/acl-home/restock",          [401, 403, 403, 403, 403, OK,  OK,  403, 401, 401]),
    (C, "POST", "/v1/inventory/stock/ACL-SKU/acl-home/adjust",           [401, 403, 403, 403, 403, OK,  OK,  403, 401, 401]),
    (C, "POST", "/v1/orders/{missing}/refunds",                          [401, 403, 403, 404, 403, 404, 404, 404, 401, 401]),
    (C, "POST", "/v1/orders/{missing}/notifications/resend",             [401, 403, 403, 404, 403, 404, 403, 404, 401, 401]),
    (C, "GET",  "/v1/me/notification-preferences",                       [401, OK,  OK,  403, 403, 403, 403, 403, 401, 401]),
    (C, "PUT",  "/v1/me/notification-preferences",                       [401, OK,  OK,  403, 403, 403, 403, 403, 401, 401]),
    (C, "POST", "/v1/orders/{missing}/charges",                          [401, 403, 403, 404, 403, 404, 404, 404, 401, 401]),
    (C, "POST", "/v1/orders/{missing}/disputes/dp_acl/evidence",         [401, 403, 403, 404, 404, 404, 403, 404, 401, 401]),
    // Order A is not delivered: callers allowed past access get 422 naming lines[0].quantity.
    (C, "POST", "/v1/orders/{A}/returns",                                [401, 422, 404, 422, 403, 422, 422, 422, 401, 401]),
    (C, "POST", "/v1/orders/{B}/returns",                                [401, 404, 422, 422, 403, 422, 422, 422, 401, 401]),
    (C, "POST", "/v1/orders/{missing}/returns",                          [401, 404, 404, 404, 403, 404, 404, 404, 401, 401]),
    (C, "POST", "/v1/orders/{missing}/returns/{missing}-R1/inspection",  [401, 403, 403, 404, 403, 404, 403, 404, 401, 401]),
    (C, "POST", "/v1/settlement/imports",                                [401, 403, 403, 403, 422, 422, 403, 403, 401, 401]),
    (C, "POST", "/v1/subscriptions",                                     [401, 403, 403, 403, 403, OK,  403, 403, 401, 401]),
    (C, "GET",  "/v1/subscriptions",                                     [401, 403, 403, 403, 403, OK,  403, 403, 401, 401]),
    (C, "GET",  "/v1/subscriptions/{missing}",                           [401, 403, 403, 403, 403, 404, 403, 403, 401, 401]),
    (C, "PATCH", "/v1/subscriptions/{missing}",                          [401, 403, 403, 403, 403, 404, 403, 403, 401, 401]),
    (C, "DELETE", "/v1/subscriptions/{missing}",                         [401, 403, 403, 403, 403, 404, 403, 403, 401, 401]),
    (C, "GET",  "/v1/subscriptions/{missing}/dead-letters",              [401, 403, 403, 403, 403, 404, 403, 403, 401, 401]),
    (C, "POST", "/v1/subscriptions/{missing}/dead-letters/{missing}/redeliver", [401, 403, 403, 403, 403, 404, 403, 403, 401, 401]),
    (C, "GET",  "/v1/events?limit=5",                                    [401, 403, 403, 403, 403, OK,  403, 403, 401, 401]),
    (C, "POST", "/v1/routing/simulations",                               [401, 403, 403, 403, 403, OK,  403, 403, 401, 401]),
    (C, "POST", "/v1/customers/{missing}/erasure",                       [401, 403, 403, 403, 403, 404, 403, 403, 401, 401]),
    // A guest no checkout was placed with: past the admin check, 404 naming `email`.
    (C, "POST", "/v1/guests/erasure",                                    [401, 403, 403, 403, 403, 404, 403, 403, 401, 401]),
    (C, "GET",  "/health",                                               [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    (C, "GET",  "/openapi.json",                                         [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    (C, "GET",  "/live",                                                 [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    (C, "GET",  "/ready",                                                [OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK ]),
    (C, "GET",  "/metrics",                                              [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Command,
    Query,
}
use Service::{Command as C, Query as Q};

/// A body each endpoint accepts when the caller is allowed.
fn body_for(path: &str, n: usize) -> Option<Value> {
    if path == "/v1/orders" {
        let mut order = sample_order(&format!("ACL-{n}"));
        order["customer"]["customer_id"] = json!("acl-staff-order");
        return Some(order);
    }
    if path.ends_with("/lines/cancel") {
        return Some(
            json!({"lines": [{"line_no": 1, "quantity": 1}], "reason": "customer_request"}),
        );
    }
    if path.ends_with("/edits") || path.ends_with("/edits/preview") {
        return Some(json!({"changes": [{"line_no": 1, "quantity": 1}]}));
    }
    if path == "/v1/subscriptions" {
        return Some(json!({"url": format!("https://acl.example/hooks/{n}")}));
    }
    if path.starts_with("/v1/subscriptions/") && !path.ends_with("/redeliver") {
        return Some(json!({"status": "paused"}));
    }
    if path.ends_with("/cancel") {
        return Some(json!({"reason": "customer_request", "note": null}));
    }
    if path.ends_with("/resolve") {
        return Some(json!({"action": "acknowledge", "note": "acl"}));
    }
    if path.ends_with("/review") {
        return Some(json!({"decision": "approve", "note": "acl"}));
    }
    if path.starts_with("/v1/inventory/locations/") {
        return Some(json!({"kind": "warehouse", "name": "ACL", "country": "US", "zone": 1}));
    }
    if path.ends_with("/restock") {
        return Some(json!({"quantity": 5}));
    }
    if path.ends_with("/adjust") {
        return Some(json!({"delta": 1, "reason": "count"}));
    }
    if path.ends_with("/notifications/resend") {
        return Some(json!({"kind": "order_confirmed", "reason": "acl"}));
    }
    if path == "/v1/me/notification-preferences" {
        return Some(json!({"media": ["email"], "locale": "de"}));
    }
    if path.ends_with("/refunds") {
        return Some(json!({"amount_minor": 100, "currency": "USD", "reason": "acl"}));
    }
    if path.ends_with("/charges") {
        return Some(json!({"amount_minor": 100, "currency": "USD", "reason": "acl"}));
    }
    if path.ends_with("/returns") {
        return Some(json!({"lines": [{"line_no": 1, "quantity": 1, "reason": "wrong_size"}]}));
    }
    if path.ends_with("/inspection") {
        return Some(json!({"lines": [{"line_no": 1, "sku": "ACL-SKU", "accepted": 1}]}));
    }
    if path.ends_with("/evidence") {
        return Some(json!({"text": "acl"}));
    }
    if path == "/v1/settlement/imports" {
        // Past authorization, an unreadable report is refused naming its line: 422.
        return Some(json!({"gateway": "sandbox", "date": "2026-11-25", "csv": "not,a,report"}));
    }
    if path == "/v1/routing/simulations" {
        // The bundled routing config over the last day (any decisions recorded by the test).
        let config: Value =
            serde_json::from_str(include_str!("../../../write-side/fulfillment-routing.json"))
                .expect("bundled routing config");
        let now = chrono::Utc::now();
        return Some(json!({
            "config": config,
            "from": (now - chrono::Duration::days(1)).to_rfc3339(),
            "to": (now + chrono::Duration::minutes(5)).to_rfc3339(),
        }));
    }
    if path == "/v1/guests/erasure" {
        return Some(json!({"email": format!("nobody-{n}@acl.example")}));
    }
    if path == "/v1/webhooks/payments" {
        return Some(json!({"id": "evt-acl", "type": "authorization.succeeded"}));
    }
    None
}

fn placed_as(reference: &str, customer_id: &str, postcode: &str) -> Value {
    let mut order = sample_order(reference);
    order["customer"]["customer_id"] = json!(customer_id);
    order["customer"]["email"] = json!(format!("{}@example.com", reference.to_lowercase()));
    order["shipping_address"]["postal_code"] = json!(postcode);
    order
}

async fn place(api: &Api, body: &Value) -> (String, String) {
    let key = format!(
        "place-{}",
        body["channel_order_ref"].as_str().unwrap_or("x")
    );
    let response = api.place_order(&key, body).await;
    assert_eq!(response.status, 201, "{}", response.describe());
    let json = response.json();
    (
        json["order_id"].as_str().expect("order id").to_owned(),
        json["tracking_token"].as_str().expect("token").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_reaches_exactly_the_endpoints_it_may() {
    let env = TestEnv::new("access_control").await;
    let idp_key = TestSigner::rsa("acl-idp");
    let provider = IdentityProvider::start(&[&idp_key]).await;
    let jwks_url = provider.jwks_url();
    let waybill = env
        .start_with(
            Role::All,
            &[
                ("WAYBILL_QUERY_RATE_LIMIT", "0"),
                ("WAYBILL_JWKS_URL", jwks_url.as_str()),
            ],
        )
        .await;
    let api = waybill.api();

    let (order_a, token_a) = place(&api, &placed_as("ACL-A", "cust-a", "10115")).await;
    let (order_b, token_b) = place(&api, &placed_as("ACL-B", "cust-b", "75001")).await;
    let missing = "01a214fd-0000-7000-8000-0000000000aa";
    // Both views exist before the table runs (read as the service).
    for order in [&order_a, &order_b] {
        crate::tracking_at_as_service(&api, order).await;
    }
    // The analytics view has filled its new store (finance answers 503 view-catching-up until
    // then), so the table below sees each role's answer, not the view's state.
    eventually(
        "the finance summary answered",
        std::time::Duration::from_secs(60),
        || async {
            match api
                .query_get("/v1/finance/summary", &[], Some(FINANCE_KEY))
                .await
                .status
            {
                503 => Err("503".to_owned()),
                _ => Ok(()),
            }
        },
    )
    .await;
    // The home location for the inventory rows.
    let home = api
        .put_json(
            "/v1/inventory/locations/acl-home",
            ADMIN_KEY,
            "acl-home",
            &json!({"kind": "warehouse", "name": "home", "country": "US", "zone": 1}),
        )
        .await;
    assert!(home.status < 300, "{}", home.describe());
    let stocked = api
        .post_json(
            "/v1/inventory/stock/ACL-SKU/acl-home/restock",
            ADMIN_KEY,
            "acl-stock",
            &json!({"quantity": 100}),
        )
        .await;
    assert!(stocked.status < 300, "{}", stocked.describe());

    let hour = chrono::Utc::now().timestamp() + 3600;
    let forged = waybill_schemas::jwt::JwtKey::new(b"not-the-configured-secret").issue(
        &waybill_schemas::jwt::Claims {
            sub: "mallory".into(),
            role: "admin".into(),
            exp: hour,
        },
    );
    let callers: [Option<String>; 10] = [
        None,
        Some(env.jwt("cust-a", "customer")),
        Some(env.jwt("cust-b", "customer")),
        Some(AGENT_KEY.to_owned()),
        Some(FINANCE_KEY.to_owned()),
        Some(ADMIN_KEY.to_owned()),
        Some(SERVICE_KEY.to_owned()),
        Some(env.jwt("agent-jo", "agent")),
        // Expired beyond the default 60 s leeway (WAYBILL_JWT_LEEWAY_SECS).
        Some(env.jwt_expiring("ops", "admin", chrono::Utc::now().timestamp() - 3600)),
        Some(forged),
    ];

    let expand = |template: &str, n: usize| {
        template
            .replace("{A}", &order_a)
            .replace("{B}", &order_b)
            .replace("{missing}", missing)
            .replace("{tokenA}", &token_a)
            .replace("{tokenB}", &token_b)
            .replace("{n}", &n.to_string())
    };
    let base_of = |service: &Service| match service {
        Service::Command => api.command_url.clone(),
        Service::Query => api.query_url.clone(),
    };
    let mut failures = Vec::new();
    let mut n = 0;
    for (service, method, template, expected) in MATRIX {
        for (column, (caller, expected)) in callers.iter().zip(expected).enumerate() {
            n += 1;
            let path = expand(template, n);
            let base = base_of(service);
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let body = body_for(template, n);
            let key = format!("acl-{n}");
            let idempotency = (method != Method::GET).then_some(key.as_str());
            let url = format!("{base}{path}");
            let response = if path.contains("/events") {
                // An event stream stays open: read only the status line and headers.
                api.status_only(&url, caller.as_deref()).await
            } else {
                let response = api
                    .send(
                        method.clone(),
                        &url,
                        caller.as_deref(),
                        idempotency,
                        body.as_ref(),
                    )
                    .await;
                // Every answer, allowed or not, tells browsers not to sniff its type.
                if response.header("x-content-type-options") != Some("nosniff") {
                    failures.push(format!(
                        "{method} {template} as {}: no X-Content-Type-Options: nosniff",
                        CALLERS[column]
                    ));
                }
                response.status
            };
            let matches = if *expected == OK {
                (200..300).contains(&response)
            } else {
                response == *expected
            };
            if !matches {
                failures.push(format!(
                    "{method} {template} as {}: expected {expected}, got {response}",
                    CALLERS[column]
                ));
            }
        }
    }
    // The identity provider's RS256 tokens in the JWT columns, on every read-only row.
    let now = chrono::Utc::now().timestamp();
    let idp = |sub: &str, role: &str, exp: i64| {
        idp_key.sign(&json!({"sub": sub, "role": role, "exp": exp}))
    };
    // Same kid as the published key, but not its key.
    let impostor = TestSigner::rsa("acl-idp");
    let idp_callers = [
        (1, idp("cust-a", "customer", now + 3600)),
        (2, idp("cust-b", "customer", now + 3600)),
        (7, idp("agent-jo", "agent", now + 3600)),
        (8, idp("ops", "admin", now - 3600)),
        (
            9,
            impostor.sign(&json!({"sub": "mallory", "role": "admin", "exp": now + 3600})),
        ),
    ];
    for (service, _, template, expected) in MATRIX.iter().filter(|row| row.1 == "GET") {
        for (column, caller) in &idp_callers {
            n += 1;
            let url = format!("{}{}", base_of(service), expand(template, n));
            let status = if url.contains("/events") {
                api.status_only(&url, Some(caller)).await
            } else {
                api.send(Method::GET, &url, Some(caller), None, None)
                    .await
                    .status
            };
            let expected = expected[*column];
            let matches = if expected == OK {
                (200..300).contains(&status)
            } else {
                status == expected
            };
            if !matches {
                failures.push(format!(
                    "GET {template} as {} (identity provider, RS256): expected {expected}, got {status}",
                    CALLERS[*column]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "access matrix violations:\n{}",
        failures.join("\n")
    );

    // "Not yours" and "not there" are the same answer, byte for byte apart from nothing.
    let owner = env.jwt("cust-a", "customer");
    let not_yours = api.tracking(&order_b, &[], Some(&owner)).await;
    let not_there = api.tracking(missing, &[], Some(&owner)).await;
    assert_eq!(not_yours.status, 404);
    assert_eq!(
        not_yours.body, not_there.body,
        "same 404 body for not yours and not there"
    );

    // The owner's list holds their order and not the other customer's.
    let mine = api
        .send(
            Method::GET,
            &format!("{}/v1/me/orders", api.query_url),
            Some(&owner),
            None,
            None,
        )
        .await
        .json();
    let ids: Vec<&str> = mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["order_id"].as_str())
        .collect();
    assert_eq!(ids, vec![order_a.as_str()], "{mine}");
}
