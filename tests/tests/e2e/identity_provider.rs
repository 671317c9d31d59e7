//! Customers and staff signed in with the storefront's identity provider: RS256 and ES256
//! Bearer JWTs verified against the keys its JWKS endpoint publishes (served here by the test
//! harness, with keys made by the test), checked for issuer, audience and time with a leeway,
//! the role read from a configured claim; key rotation picked up on the first token that needs
//! it, and a flood of unknown key ids never turned into a flood of fetches.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use waybill_e2e::{
    eventually, sample_order, Api, IdentityProvider, Role, TestEnv, DEFAULT_DEADLINE,
};
use waybill_schemas::jwt::testing::{sign_hs256, TestSigner};

const ISSUER: &str = "https://id.storefront.test";
const AUDIENCE: &str = "waybill-orders";
const MIN_REFRESH_SECS: u64 = 2;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims the storefront's provider issues for a signed-in shopper.
fn shopper(sub: &str) -> Value {
    json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 600})
}

fn with(mut claims: Value, patch: Value) -> Value {
    for (key, value) in patch.as_object().into_iter().flatten() {
        claims[key] = value.clone();
    }
    claims
}

async fn my_orders(api: &Api, token: &str) -> waybill_e2e::HttpResponse {
    api.query_get("/v1/me/orders", &[], Some(token)).await
}

fn assert_refused(response: &waybill_e2e::HttpResponse, what: &str) {
    response.assert_problem(401, "unauthorized", what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_signed_in_with_the_storefronts_identity_provider_see_their_orders() {
    let rsa = TestSigner::rsa("rsa-2026-01");
    let ec = TestSigner::ec("ec-2026-01");
    let provider = IdentityProvider::start(&[&rsa, &ec]).await;
    let env = TestEnv::new("idp_signin").await;
    let jwks_url = provider.jwks_url();
    let min_refresh = MIN_REFRESH_SECS.to_string();
    let waybill = env
        .start_with(
            Role::All,
            &[
                ("WAYBILL_JWKS_URL", jwks_url.as_str()),
                ("WAYBILL_JWT_ISSUER", ISSUER),
                ("WAYBILL_JWT_AUDIENCE", AUDIENCE),
                ("WAYBILL_JWT_LEEWAY_SECS", "30"),
                ("WAYBILL_JWT_ROLE_CLAIM", "waybill.roles"),
                ("WAYBILL_JWKS_MIN_REFRESH_SECS", min_refresh.as_str()),
                ("WAYBILL_QUERY_RATE_LIMIT", "0"),
            ],
        )
        .await;
    let api = waybill.api();
    assert!(provider.fetches() >= 1, "keys fetched at start");

    // An IdP "service" token (role from the configured nested claim) places an order for a
    // customer the IdP knows.
    let service = rsa.sign(&with(
        shopper("storefront-backend"),
        json!({"waybill": {"roles": ["offline_access", "service"]}}),
    ));
    let mut order = sample_order("IDP-1");
    order["customer"]["customer_id"] = json!("idp-cust-1");
    let placed = api
        .command_request(
            "/v1/orders",
            Some(&service),
            Some("idp-place-1"),
            Some("application/json"),
            order.to_string().into_bytes(),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.describe());
    let order_id = placed.json()["order_id"]
        .as_str()
        .expect("order id")
        .to_owned();

    // The shopper, with an RS256 and an ES256 token, lists it.
    for (alg, token) in [
        ("RS256", rsa.sign(&shopper("idp-cust-1"))),
        ("ES256", ec.sign(&shopper("idp-cust-1"))),
    ] {
        eventually(
            &format!("{alg} shopper sees the order"),
            DEFAULT_DEADLINE,
            || async {
                let response = my_orders(&api, &token).await;
                match response.status {
                    200 if response.json()["items"][0]["order_id"] == json!(order_id) => Ok(()),
                    _ => Err(response.describe()),
                }
            },
        )
        .await;
    }
    // Another shopper of the same provider sees nothing of it.
    let other = my_orders(&api, &ec.sign(&shopper("idp-cust-2"))).await;
    assert_eq!(other.status, 200, "{}", other.describe());
    assert_eq!(other.json()["items"], json!([]));
    // A shopper token is no staff token.
    let search = api
        .query_get(
            "/v1/search/orders",
            &[],
            Some(&rsa.sign(&shopper("idp-cust-1"))),
        )
        .await;
    assert_eq!(search.status, 403, "{}", search.describe());
    // A staff token: role agent from the configured claim.
    let agent = ec.sign(&with(
        shopper("agent-kim"),
        json!({"waybill": {"roles": "agent"}}),
    ));
    let search = api.query_get("/v1/search/orders", &[], Some(&agent)).await;
    assert_eq!(search.status, 200, "{}", search.describe());

    // Everything a token must not get away with, on both APIs.
    let stranger = TestSigner::ec("ec-2026-01");
    let refused: Vec<(&str, String)> = vec![
        (
            "wrong issuer",
            rsa.sign(&with(
                shopper("idp-cust-1"),
                json!({"iss": "https://id.evil.test"}),
            )),
        ),
        (
            "no issuer",
            rsa.sign(&json!({"sub": "idp-cust-1", "aud": AUDIENCE, "exp": now() + 600})),
        ),
        (
            "wrong audience",
            rsa.sign(&with(shopper("idp-cust-1"), json!({"aud": "another-api"}))),
        ),
        (
            "expired beyond the leeway",
            ec.sign(&with(shopper("idp-cust-1"), json!({"exp": now() - 120}))),
        ),
        (
            "not valid before a minute from now",
            ec.sign(&with(shopper("idp-cust-1"), json!({"nbf": now() + 120}))),
        ),
        (
            "HS256 signed with the RSA public key (alg confusion)",
            sign_hs256(
                rsa.public_key_pem().as_bytes(),
                &shopper("idp-cust-1"),
                Some(rsa.kid()),
            ),
        ),
        (
            "HS256 signed with the RSA public key, no kid",
            sign_hs256(
                rsa.public_key_pem().as_bytes(),
                &shopper("idp-cust-1"),
                None,
            ),
        ),
        (
            "signed by a key the provider does not publish",
            stranger.sign(&shopper("idp-cust-1")),
        ),
        (
            "a role the claim does not know",
            rsa.sign(&with(
                shopper("idp-cust-1"),
                json!({"waybill": {"roles": ["root"]}}),
            )),
        ),
    ];
    for (what, token) in &refused {
        assert_refused(&my_orders(&api, token).await, what);
        let command = api
            .command_request(
                "/v1/orders",
                Some(token),
                Some("idp-refused"),
                Some("application/json"),
                sample_order("IDP-REFUSED").to_string().into_bytes(),
            )
            .await;
        assert_refused(&command, &format!("command API, {what}"));
    }
    // Within the leeway, times are forgiven.
    let late = ec.sign(&with(
        shopper("idp-cust-1"),
        json!({"exp": now() - 5, "nbf": now() + 5}),
    ));
    assert_eq!(my_orders(&api, &late).await.status, 200);

    // The provider rotates: a new RSA key replaces the old one. The first token signed with it
    // gets the key set fetched again (at most once per WAYBILL_JWKS_MIN_REFRESH_SECS).
    let old_token = rsa.sign(&shopper("idp-cust-1"));
    let rotated = TestSigner::rsa("rsa-2026-02");
    provider.publish(&[&rotated, &ec]);
    let new_token = rotated.sign(&shopper("idp-cust-1"));
    eventually(
        "a token signed with the rotated key",
        Duration::from_secs(15),
        || async {
            let response = my_orders(&api, &new_token).await;
            match response.status {
                200 => Ok(()),
                _ => Err(response.describe()),
            }
        },
    )
    .await;
    assert_refused(
        &my_orders(&api, &old_token).await,
        "a key the provider withdrew",
    );

    // A flood of made-up key ids: each refused, and the provider is asked at most once per
    // interval, not once per token.
    let before = provider.fetches();
    let started = Instant::now();
    for n in 0..40 {
        let token = rotated.sign_as(&shopper("idp-cust-1"), Some(&format!("made-up-{n}")));
        assert_refused(&my_orders(&api, &token).await, "an unknown kid");
    }
    let fetched = provider.fetches() - before;
    let allowed = 1 + (started.elapsed().as_secs() / MIN_REFRESH_SECS) as usize + 1;
    assert!(
        fetched <= allowed,
        "40 unknown kids caused {fetched} fetches in {:?} (allowed {allowed})",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waybills_own_hs256_tokens_keep_working_beside_an_identity_provider() {
    let rsa = TestSigner::rsa("rsa-only");
    let provider = IdentityProvider::start(&[&rsa]).await;
    let env = TestEnv::new("idp_hs256").await;
    let jwks_url = provider.jwks_url();
    let waybill = env
        .start_with(
            Role::Query,
            &[
                ("WAYBILL_JWKS_URL", jwks_url.as_str()),
                ("WAYBILL_QUERY_RATE_LIMIT", "0"),
            ],
        )
        .await;
    let api = waybill.api();
    let own = env.jwt("cust-own", "customer");
    let response = my_orders(&api, &own).await;
    assert_eq!(response.status, 200, "{}", response.describe());
    let idp = rsa.sign(&json!({"sub": "cust-idp", "exp": now() + 60}));
    assert_eq!(my_orders(&api, &idp).await.status, 200);
    // An identity-provider token meant for some other audience is refused when Waybill has
    // none configured.
    let elsewhere = rsa.sign(&json!({"sub": "cust-idp", "aud": "crm", "exp": now() + 60}));
    assert_refused(
        &my_orders(&api, &elsewhere).await,
        "a token for another audience",
    );
}
