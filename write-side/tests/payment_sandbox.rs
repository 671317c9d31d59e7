//! The HTTP payment adapter against the sandbox gateway, both over real HTTP on 127.0.0.1:
//! every test card, idempotent replays, timeouts, captures, voids, refunds, 3-D Secure and the
//! signed webhooks a small receiver verifies.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use waybill_schemas::{Currency, Money, OrderId};
use waybill_write_side::payment::sandbox::{self, SandboxConfig};
use waybill_write_side::payment::webhook::{self, GatewayEventKind, SIGNATURE_HEADER};
use waybill_write_side::payment::wire::AuthorizationStatus;
use waybill_write_side::payment::{
    AuthorizeOutcome, AuthorizeRequest, CaptureOutcome, CaptureRequest, GatewayError, HttpGateway,
    PaymentGateway, RefundOutcome, RefundRequest, VoidOutcome, VoidRequest,
};

const API_KEY: &str = "sk_sandbox_test";
const SECRET: &[u8] = b"whsec_sandbox_test";
const TOLERANCE: Duration = Duration::from_secs(300);

const APPROVE: &str = "tok_4242424242424242";
const THREE_DS: &str = "tok_4000000000003220";
const SLOW: &str = "tok_4000000000006975";

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR"))
}

/// A sandbox on an ephemeral port; its URL.
async fn start_sandbox(configure: impl FnOnce(&mut SandboxConfig)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = SandboxConfig::new(API_KEY, SECRET, url.clone());
    configure(&mut config);
    tokio::spawn(sandbox::serve(listener, config, std::future::pending()));
    url
}

fn adapter(url: &str) -> HttpGateway {
    HttpGateway::new(url, API_KEY, Duration::from_secs(5)).expect("adapter")
}

fn authorize_request(key: &str, minor: i64, token: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        idempotency_key: key.to_owned(),
        order_id: OrderId::new_v7(),
        amount: eur(minor),
        token: token.to_owned(),
    }
}

async fn authorized(gateway: &HttpGateway, key: &str, minor: i64) -> String {
    match gateway
        .authorize(authorize_request(key, minor, APPROVE))
        .await
    {
        Ok(AuthorizeOutcome::Authorized {
            authorization_id, ..
        }) => authorization_id,
        other => panic!("expected an authorization, got {other:?}"),
    }
}

async fn capture(gateway: &HttpGateway, key: &str, id: &str, minor: i64) -> CaptureOutcome {
    gateway
        .capture(CaptureRequest {
            idempotency_key: key.to_owned(),
            authorization_id: id.to_owned(),
            amount: eur(minor),
        })
        .await
        .expect("capture answered")
}

fn refused_code<T: std::fmt::Debug>(outcome: T) -> String {
    let text = format!("{outcome:?}");
    assert!(text.starts_with("Refused"), "expected a refusal: {text}");
    text.split("code: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("code")
        .to_owned()
}

/// Webhooks as received: signature header and raw body.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(String, Bytes)>>>,
    /// Answer 500 to this many deliveries before accepting.
    fail_first: Arc<Mutex<u32>>,
}

impl Receiver {
    async fn start(fail_first: u32) -> (Self, String) {
        let receiver = Receiver {
            fail_first: Arc::new(Mutex::new(fail_first)),
            ..Receiver::default()
        };
        async fn hook(
            State(receiver): State<Receiver>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let mut fail = receiver.fail_first.lock().expect("lock");
            if *fail > 0 {
                *fail -= 1;
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            let signature = headers
                .get(SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            receiver
                .received
                .lock()
                .expect("lock")
                .push((signature, body));
            StatusCode::NO_CONTENT
        }
        let app = Router::new()
            .route("/hooks", post(hook))
            .with_state(receiver.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    /// Waits (with a deadline) until `count` deliveries arrived; returns them all.
    async fn wait_for(&self, count: usize) -> Vec<(String, Bytes)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let received = self.received.lock().expect("lock").clone();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} webhooks arrived",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Verifies and parses one delivery as the lead's receiver would.
fn verified(delivery: &(String, Bytes)) -> webhook::GatewayEvent {
    webhook::verify(SECRET, &delivery.0, &delivery.1, Utc::now(), TOLERANCE)
        .expect("signature verifies");
    webhook::parse(&delivery.1).expect("parses")
}

async fn raw_post(url: &str, key: Option<&str>, body: &str) -> (u16, HeaderMap, Bytes) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(url)
        .header("authorization", format!("Bearer {API_KEY}"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.expect("body"))
}

async fn sandbox_webhooks(url: &str) -> Vec<Value> {
    reqwest::Client::new()
        .get(format!("{url}/v1/_sandbox/webhooks"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn every_test_card_gets_its_documented_outcome_through_the_adapter() {
    let url = start_sandbox(|_| {}).await;
    let gateway = adapter(&url);

    let approved = gateway
        .authorize(authorize_request("card-1", 4599, APPROVE))
        .await
        .expect("answered");
    match approved {
        AuthorizeOutcome::Authorized {
            amount, expires_at, ..
        } => {
            assert_eq!(amount, eur(4599));
            let validity = expires_at - Utc::now();
            assert!(validity > chrono::Duration::days(6), "{validity}");
        }
        other => panic!("expected authorized, got {other:?}"),
    }

    let challenged = gateway
        .authorize(authorize_request("card-2", 4599, THREE_DS))
        .await
        .expect("answered");
    match challenged {
        AuthorizeOutcome::ChallengeRequired {
            authorization_id,
            challenge_url,
            ..
        } => assert_eq!(challenge_url, format!("{url}/challenge/{authorization_id}")),
        other => panic!("expected a challenge, got {other:?}"),
    }

    for (key, token, expected) in [
        ("card-3", "tok_4000000000000002", "card_declined"),
        ("card-4", "tok_4000000000009995", "insufficient_funds"),
        ("card-5", "tok_4000000000000069", "expired_card"),
        ("card-6", "tok_4111111111111111", "invalid_token"),
    ] {
        match gateway
            .authorize(authorize_request(key, 4599, token))
            .await
            .expect("answered")
        {
            AuthorizeOutcome::Declined {
                authorization_id,
                code,
                message,
            } => {
                assert_eq!(code, expected, "{token}");
                assert!(authorization_id.is_some());
                assert!(!message.is_empty());
            }
            other => panic!("{token}: expected a decline, got {other:?}"),
        }
    }

    let failed = gateway
        .authorize(authorize_request("card-7", 4599, "tok_4000000000000119"))
        .await
        .expect_err("processing error");
    assert!(
        matches!(failed, GatewayError::Unavailable(ref m) if m.contains("processing_error")),
        "{failed:?}"
    );
    assert!(failed.is_retryable());
}

#[tokio::test]
async fn replaying_an_idempotency_key_returns_the_first_answer_byte_for_byte() {
    let url = start_sandbox(|_| {}).await;
    let gateway = adapter(&url);
    let request = authorize_request("replay-1", 1000, APPROVE);
    let first = gateway.authorize(request.clone()).await.expect("first");
    let again = gateway.authorize(request).await.expect("again");
    assert_eq!(first, again);

    let body = json!({"order_id": OrderId::new_v7(), "amount": {"minor": 500, "currency": "EUR"}, "token": APPROVE}).to_string();
    let endpoint = format!("{url}/v1/authorizations");
    let (status, headers, bytes) = raw_post(&endpoint, Some("replay-2"), &body).await;
    assert_eq!(status, 201);
    assert!(headers.get("idempotent-replayed").is_none());
    let (status_again, headers_again, bytes_again) =
        raw_post(&endpoint, Some("replay-2"), &body).await;
    assert_eq!(status_again, 201);
    assert_eq!(bytes_again, bytes, "byte for byte");
    assert_eq!(
        headers_again
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );

    let other_body = body.replace("500", "501");
    let (status, _, problem) = raw_post(&endpoint, Some("replay-2"), &other_body).await;
    assert_eq!(status, 422);
    let problem: Value = serde_json::from_slice(&problem).expect("json");
    assert_eq!(problem["code"], "idempotency_key_reused");

    let reused = authorize_request("replay-1", 2000, APPROVE);
    let error = gateway.authorize(reused).await.expect_err("reused key");
    assert!(
        matches!(error, GatewayError::Protocol(_)) && !error.is_retryable(),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_slow_card_times_out_then_a_retry_with_the_same_key_gets_the_same_authorization() {
    let url = start_sandbox(|config| config.slow_response = Duration::from_millis(800)).await;
    let impatient = HttpGateway::new(&url, API_KEY, Duration::from_millis(200)).expect("adapter");
    let request = authorize_request("slow-1", 1200, SLOW);

    let first = impatient.authorize(request.clone()).await;
    assert_eq!(first, Err(GatewayError::Timeout));

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saw_in_progress = false;
    let outcome = loop {
        match impatient.authorize(request.clone()).await {
            Err(GatewayError::InProgress) => saw_in_progress = true,
            Err(GatewayError::Timeout) => {}
            other => break other.expect("authorized"),
        }
        assert!(Instant::now() < deadline, "the slow card never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        saw_in_progress,
        "a retry during the first request is told it is in progress"
    );
    let AuthorizeOutcome::Authorized {
        authorization_id, ..
    } = outcome
    else {
        panic!("expected authorized, got {outcome:?}");
    };
    let once_more = impatient.authorize(request).await.expect("replayed");
    assert!(
        matches!(once_more, AuthorizeOutcome::Authorized { authorization_id: ref id, .. } if *id == authorization_id)
    );
}

#[tokio::test]
async fn captures_may_be_partial_but_never_exceed_the_authorization() {
    let url = start_sandbox(|_| {}).await;
    let gateway = adapter(&url);
    let id = authorized(&gateway, "cap-auth", 1000).await;

    let first = capture(&gateway, "cap-1", &id, 300).await;
    let CaptureOutcome::Captured { capture_id, amount } = first.clone() else {
        panic!("expected a capture, got {first:?}");
    };
    assert_eq!(amount, eur(300));
    assert_eq!(
        capture(&gateway, "cap-1", &id, 300).await,
        first,
        "replayed, not captured twice"
    );

    let over = capture(&gateway, "cap-2", &id, 701).await;
    assert_eq!(refused_code(over), "amount_exceeds_authorized");

    let rest = capture(&gateway, "cap-3", &id, 700).await;
    assert!(
        matches!(rest, CaptureOutcome::Captured { capture_id: ref other, .. } if *other != capture_id)
    );
    let nothing_left = capture(&gateway, "cap-4", &id, 1).await;
    assert_eq!(refused_code(nothing_left), "amount_exceeds_authorized");

    let unknown = capture(&gateway, "cap-5", "auth_missing", 1).await;
    assert_eq!(refused_code(unknown), "authorization_not_found");
}

#[tokio::test]
async fn a_capture_after_the_authorization_expired_is_refused() {
    let url = start_sandbox(|config| config.auth_validity = Duration::from_millis(300)).await;
    let gateway = adapter(&url);
    let id = authorized(&gateway, "exp-auth", 1000).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let authorization = gateway.authorization(&id).await.expect("found");
        if authorization.status == AuthorizationStatus::Expired {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never expired: {authorization:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let refused = capture(&gateway, "exp-cap", &id, 1000).await;
    assert_eq!(refused_code(refused), "authorization_expired");
}

#[tokio::test]
async fn a_void_releases_the_authorization_and_a_second_void_still_answers_voided() {
    let url = start_sandbox(|_| {}).await;
    let gateway = adapter(&url);
    let id = authorized(&gateway, "void-auth", 1000).await;
    let void = |key: &str| VoidRequest {
        idempotency_key: key.to_owned(),
        authorization_id: id.clone(),
    };
    assert_eq!(gateway.void(void("void-1")).await, Ok(VoidOutcome::Voided));
    assert_eq!(gateway.void(void("void-1")).await, Ok(VoidOutcome::Voided));
    assert_eq!(gateway.void(void("void-2")).await, Ok(VoidOutcome::Voided));
    let after = capture(&gateway, "void-cap", &id, 100).await;
    assert_eq!(refused_code(after), "authorization_voided");

    let captured = authorized(&gateway, "void-auth-2", 1000).await;
    capture(&gateway, "void-cap-2", &captured, 1000).await;
    let refused = gateway
        .void(VoidRequest {
            idempotency_key: "void-3".into(),
            authorization_id: captured,
        })
        .await
        .expect("answered");
    assert_eq!(refused_code(refused), "authorization_captured");
}

#[tokio::test]
async fn refunds_are_capped_at_what_was_captured_and_not_yet_refunded() {
    let url = start_sandbox(|_| {}).await;
    let gateway = adapter(&url);
    let id = authorized(&gateway, "ref-auth", 1000).await;
    let CaptureOutcome::Captured { capture_id, .. } = capture(&gateway, "ref-cap", &id, 800).await
    else {
        panic!("expected a capture");
    };
    let refund = |key: &str, minor: i64| RefundRequest {
        idempotency_key: key.to_owned(),
        capture_id: capture_id.clone(),
        amount: eur(minor),
    };
    let first = gateway
        .refund(refund("ref-1", 500))
        .await
        .expect("answered");
    assert!(matches!(first, RefundOutcome::Refunded { amount, .. } if amount == eur(500)));
    assert_eq!(gateway.refund(refund("ref-1", 500)).await, Ok(first));
    let over = gateway
        .refund(refund("ref-2", 301))
        .await
        .expect("answered");
    assert_eq!(refused_code(over), "amount_exceeds_refundable");
    let rest = gateway
        .refund(refund("ref-3", 300))
        .await
        .expect("answered");
    assert!(matches!(rest, RefundOutcome::Refunded { amount, .. } if amount == eur(300)));

    let unknown = gateway
        .refund(RefundRequest {
            idempotency_key: "ref-4".into(),
            capture_id: "cap_missing".into(),
            amount: eur(1),
        })
        .await
        .expect("answered");
    assert_eq!(refused_code(unknown), "capture_not_found");
}

async fn challenged(gateway: &HttpGateway, key: &str) -> (String, String) {
    match gateway
        .authorize(authorize_request(key, 2500, THREE_DS))
        .await
        .expect("answered")
    {
        AuthorizeOutcome::ChallengeRequired {
            authorization_id,
            challenge_url,
            ..
        } => (authorization_id, challenge_url),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

#[tokio::test]
async fn a_passed_challenge_sends_a_signed_authorization_succeeded_webhook() {
    let (receiver, hook_url) = Receiver::start(0).await;
    let url = start_sandbox(|config| config.webhook_url = Some(hook_url)).await;
    let gateway = adapter(&url);
    let (id, challenge_url) = challenged(&gateway, "3ds-pass").await;

    let page = reqwest::get(&challenge_url).await.expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("value=\"pass\"") && html.contains("value=\"fail\""),
        "{html}"
    );

    let completed = reqwest::Client::new()
        .post(format!("{url}/v1/challenges/{id}/complete"))
        .json(&json!({"result": "pass"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(completed.status(), 200);

    let deliveries = receiver.wait_for(1).await;
    let event = verified(&deliveries[0]);
    match event.kind {
        GatewayEventKind::AuthorizationSucceeded(data) => {
            assert_eq!(data.authorization_id, id);
            assert!(data.three_ds);
            assert_eq!(data.amount, eur(2500));
        }
        other => panic!("expected authorization.succeeded, got {other:?}"),
    }
    let captured = capture(&gateway, "3ds-cap", &id, 2500).await;
    assert!(
        matches!(captured, CaptureOutcome::Captured { .. }),
        "{captured:?}"
    );
}

#[tokio::test]
async fn a_failed_challenge_from_the_page_sends_authorization_failed_and_blocks_capture() {
    let (receiver, hook_url) = Receiver::start(0).await;
    let url = start_sandbox(|config| config.webhook_url = Some(hook_url)).await;
    let gateway = adapter(&url);
    let (id, challenge_url) = challenged(&gateway, "3ds-fail").await;

    let clicked = reqwest::Client::new()
        .post(&challenge_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("result=fail")
        .send()
        .await
        .expect("sent");
    assert_eq!(clicked.status(), 200);
    assert!(clicked
        .text()
        .await
        .expect("html")
        .contains("authentication_failed"));

    let event = verified(&receiver.wait_for(1).await[0]);
    match event.kind {
        GatewayEventKind::AuthorizationFailed(data) => {
            assert_eq!(data.authorization_id, id);
            assert_eq!(data.code, "authentication_failed");
        }
        other => panic!("expected authorization.failed, got {other:?}"),
    }
    let refused = capture(&gateway, "3ds-fail-cap", &id, 2500).await;
    assert_eq!(refused_code(refused), "authorization_declined");
}

#[tokio::test]
async fn a_challenge_left_past_its_deadline_fails_with_a_webhook() {
    let (receiver, hook_url) = Receiver::start(0).await;
    let url = start_sandbox(|config| {
        config.webhook_url = Some(hook_url);
        config.challenge_validity = Duration::from_millis(300);
    })
    .await;
    let gateway = adapter(&url);
    let (id, _) = challenged(&gateway, "3ds-late").await;
    let event = verified(&receiver.wait_for(1).await[0]);
    assert!(
        matches!(&event.kind, GatewayEventKind::AuthorizationFailed(data)
            if data.authorization_id == id && data.code == "challenge_expired"),
        "{event:?}"
    );
}

#[tokio::test]
async fn webhooks_are_retried_until_the_receiver_accepts_and_a_resend_repeats_the_event_id() {
    let (receiver, hook_url) = Receiver::start(2).await;
    let url = start_sandbox(|config| {
        config.webhook_url = Some(hook_url);
        config.webhook_initial_backoff = Duration::from_millis(20);
    })
    .await;
    let gateway = adapter(&url);
    let id = authorized(&gateway, "hook-auth", 1000).await;
    capture(&gateway, "hook-cap", &id, 1000).await;

    let first = receiver.wait_for(1).await[0].clone();
    let event = verified(&first);
    assert!(
        matches!(event.kind, GatewayEventKind::CaptureSucceeded(ref data) if data.authorization_id == id)
    );
    let log = sandbox_webhooks(&url).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["id"], event.id.as_str());
    assert_eq!(log[0]["status"], "delivered");
    let statuses: Vec<&Value> = log[0]["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [&json!(500), &json!(500), &json!(204)]);

    let resent = reqwest::Client::new()
        .post(format!("{url}/v1/_sandbox/webhooks/{}/resend", event.id))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("sent");
    assert_eq!(resent.status(), 202);
    let both = receiver.wait_for(2).await;
    let again = verified(&both[1]);
    assert_eq!(again.id, event.id, "a resend is the same event");
    assert_eq!(both[1].1, first.1, "with the same body");
    let log = sandbox_webhooks(&url).await;
    assert_eq!(log[0]["deliveries"], 2);
}

#[tokio::test]
async fn signature_verification_refuses_a_tampered_body_a_wrong_secret_and_a_stale_timestamp() {
    let (receiver, hook_url) = Receiver::start(0).await;
    let url = start_sandbox(|config| config.webhook_url = Some(hook_url)).await;
    let gateway = adapter(&url);
    let id = authorized(&gateway, "sig-auth", 1000).await;
    gateway
        .void(VoidRequest {
            idempotency_key: "sig-void".into(),
            authorization_id: id,
        })
        .await
        .expect("voided");
    let (header, body) = receiver.wait_for(1).await[0].clone();
    let now = Utc::now();
    assert_eq!(
        webhook::verify(SECRET, &header, &body, now, TOLERANCE),
        Ok(())
    );

    let tampered = String::from_utf8(body.to_vec())
        .expect("utf-8")
        .replace("authorization.voided", "authorization.succeeded");
    assert_eq!(
        webhook::verify(SECRET, &header, tampered.as_bytes(), now, TOLERANCE),
        Err(webhook::WebhookError::BadSignature)
    );
    assert_eq!(
        webhook::verify(b"not the secret", &header, &body, now, TOLERANCE),
        Err(webhook::WebhookError::BadSignature)
    );
    let much_later = now + chrono::Duration::minutes(6);
    assert!(matches!(
        webhook::verify(SECRET, &header, &body, much_later, TOLERANCE),
        Err(webhook::WebhookError::Stale { .. })
    ));
}

#[tokio::test]
async fn bad_input_is_refused_with_422_naming_the_field() {
    let url = start_sandbox(|_| {}).await;
    let endpoint = format!("{url}/v1/authorizations");
    let order_id = OrderId::new_v7();
    let cases = [
        (
            json!({"amount": {"minor": 100, "currency": "EUR"}, "token": APPROVE}),
            "order_id",
        ),
        (
            json!({"order_id": "nope", "amount": {"minor": 100, "currency": "EUR"}, "token": APPROVE}),
            "order_id",
        ),
        (json!({"order_id": order_id, "token": APPROVE}), "amount"),
        (
            json!({"order_id": order_id, "amount": {"minor": -5, "currency": "EUR"}, "token": APPROVE}),
            "amount.minor",
        ),
        (
            json!({"order_id": order_id, "amount": {"minor": 1.5, "currency": "EUR"}, "token": APPROVE}),
            "amount.minor",
        ),
        (
            json!({"order_id": order_id, "amount": {"minor": 100, "currency": "XYZ"}, "token": APPROVE}),
            "amount.currency",
        ),
        (
            json!({"order_id": order_id, "amount": {"minor": 100, "currency": "EUR"}}),
            "token",
        ),
    ];
    for (index, (body, field)) in cases.iter().enumerate() {
        let (status, headers, bytes) =
            raw_post(&endpoint, Some(&format!("bad-{index}")), &body.to_string()).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let problem: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(problem["field"], *field, "{body}: {problem}");
        assert_eq!(problem["code"], "validation_failed");
    }

    let valid = json!({"order_id": order_id, "amount": {"minor": 100, "currency": "EUR"}, "token": APPROVE}).to_string();
    let (status, _, _) = raw_post(&endpoint, None, &valid).await;
    assert_eq!(status, 400, "an idempotency key is required");

    let wrong_key = HttpGateway::new(&url, "sk_wrong", Duration::from_secs(5)).expect("adapter");
    let error = wrong_key
        .authorize(authorize_request("wrong-key", 100, APPROVE))
        .await
        .expect_err("unauthorized");
    assert!(
        matches!(error, GatewayError::Protocol(ref m) if m.contains("unauthorized")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unreachable_gateway_is_unavailable_and_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let error = adapter(&url)
        .authorize(authorize_request("down-1", 100, APPROVE))
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, GatewayError::Unavailable(_)), "{error:?}");
    assert!(error.is_retryable());
}

/// Authorizations per second through the adapter, sandbox in the same process.
/// `cargo test -p waybill-write-side --release --test payment_sandbox -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a test"]
async fn measure_authorizations_per_second() {
    let url = start_sandbox(|_| {}).await;
    let gateway = Arc::new(adapter(&url));
    let total = 20_000;
    let concurrency = 64;
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let gateway = gateway.clone();
        workers.push(tokio::spawn(async move {
            let mut n = worker;
            while n < total {
                let outcome = gateway
                    .authorize(authorize_request(&format!("bench-{n}"), 1999, APPROVE))
                    .await
                    .expect("authorized");
                assert!(matches!(outcome, AuthorizeOutcome::Authorized { .. }));
                n += concurrency;
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed();
    println!(
        "{total} authorizations in {elapsed:?}: {:.0}/s with {concurrency} in flight",
        f64::from(total) / elapsed.as_secs_f64()
    );
}
