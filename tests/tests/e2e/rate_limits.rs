//! Rate limits behind proxies, shared by every query API instance: two query API processes
//! count against one limit per client; `X-Forwarded-For` is believed only from a trusted proxy
//! (from anyone else it is ignored, so spoofing it gains nothing); and the `/track` lookup
//! counts failed guesses per order number, whichever address they come from.

use serde_json::json;
use waybill_e2e::{sample_order, Api, HttpResponse, Role, TestEnv};

fn assert_limited(response: &HttpResponse, what: &str) {
    response.assert_problem(429, "rate-limited", what);
    let retry = response.retry_after_secs(what);
    assert!((1..=60).contains(&retry), "{what}: Retry-After {retry}");
}

async fn my_orders_from(api: &Api, token: &str, forwarded_for: &str) -> HttpResponse {
    api.raw(
        reqwest::Method::GET,
        &format!("{}/v1/me/orders", api.query_url),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-forwarded-for", forwarded_for),
        ],
        Vec::new(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_limit_and_spoofed_forwarding_from_untrusted_peers_is_ignored() {
    let env = TestEnv::new("rate_limits_shared").await;
    // The tests talk from 127.0.0.1: not a trusted proxy here.
    let limits = [
        ("WAYBILL_QUERY_RATE_LIMIT", "6"),
        ("WAYBILL_QUERY_RATE_WINDOW_SECS", "60"),
        ("WAYBILL_TRUSTED_PROXIES", "10.0.0.0/8"),
    ];
    let one = env.start_with(Role::Query, &limits).await;
    let two = env.start_with(Role::Query, &limits).await;
    let (one, two) = (one.api(), two.api());
    let token = env.jwt("cust-limits", "customer");
    for n in 0..6 {
        let api = if n % 2 == 0 { &one } else { &two };
        // A new made-up client address every time: ignored, the peer is the client.
        let response = my_orders_from(api, &token, &format!("198.51.100.{n}")).await;
        assert_eq!(response.status, 200, "request {n}: {}", response.describe());
    }
    assert_limited(
        &my_orders_from(&one, &token, "198.51.100.77").await,
        "the seventh request, on the first instance",
    );
    assert_limited(
        &my_orders_from(&two, &token, "198.51.100.78").await,
        "the eighth, on the second",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit_and_guesses_count_per_order() {
    let env = TestEnv::new("rate_limits_proxy").await;
    // 127.0.0.1 is the load balancer here.
    let limits = [
        ("WAYBILL_QUERY_RATE_LIMIT", "4"),
        ("WAYBILL_QUERY_RATE_WINDOW_SECS", "60"),
        ("WAYBILL_TRUSTED_PROXIES", "127.0.0.0/8,::1"),
        ("WAYBILL_LOOKUP_FAILURES_PER_ORDER", "3"),
        ("WAYBILL_LOOKUP_FAILURE_WINDOW_SECS", "600"),
    ];
    let all = env.start_with(Role::All, &limits).await;
    let query = env.start_with(Role::Query, &limits).await;
    let (first, second) = (all.api(), query.api());
    let token = env.jwt("cust-proxy", "customer");
    for n in 0..4 {
        let api = if n % 2 == 0 { &first } else { &second };
        let response = my_orders_from(api, &token, "1.2.3.4, 203.0.113.5").await;
        assert_eq!(response.status, 200, "request {n}: {}", response.describe());
    }
    assert_limited(
        &my_orders_from(&second, &token, "203.0.113.5").await,
        "the client behind the proxy, fifth request",
    );
    // Another client behind the same proxy is not affected.
    let other = my_orders_from(&first, &token, "203.0.113.6").await;
    assert_eq!(other.status, 200, "{}", other.describe());

    // An order to look up by number and postcode.
    let mut order = sample_order("GUESS-1");
    order["shipping_address"]["postal_code"] = json!("10115");
    let placed = first.place_order("guess-1", &order).await;
    assert_eq!(placed.status, 201, "{}", placed.describe());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let lookup = |api: &Api, contact: &'static str, from: String| {
        let url = format!("{}/track", api.query_url);
        let client = client.clone();
        async move {
            client
                .post(url)
                .header("x-forwarded-for", from)
                .form(&[("order_number", "GUESS-1"), ("contact", contact)])
                .send()
                .await
                .expect("POST /track")
        }
    };
    // Wait until the order is projected (a lookup before that would count as a failed guess).
    let placed = placed.json();
    let (order_id, token) = (
        placed["order_id"].as_str().expect("order id"),
        placed["tracking_token"].as_str().expect("tracking token"),
    );
    crate::tracking_at(&first, order_id, token, 1).await;
    let found = lookup(&first, "10115", "192.0.2.1".into()).await;
    assert_eq!(found.status(), 303, "the right postcode finds the order");
    // Three wrong postcodes for it, from three addresses and both instances...
    for (n, api) in [&first, &second, &first].into_iter().enumerate() {
        let response = lookup(api, "99999", format!("192.0.2.{}", 10 + n)).await;
        assert_eq!(response.status(), 404, "guess {n}");
    }
    // ...and the order number is closed to lookups for the window, even with the right
    // postcode from a fresh address (the customer still has the link in their email).
    let response = lookup(&second, "10115", "192.0.2.50".into()).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}
