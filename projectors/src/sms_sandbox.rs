//! The SMS sandbox: a SIMULATED SMS provider (`waybill serve sms-sandbox`) for development,
//! tests and the demo. It sends no text message to any phone. It speaks the protocol of the
//! notifications view's SMS adapter ([`crate::views::notifications::SmsClient`]):
//!
//! - `POST /v1/messages` (Bearer API key, `Idempotency-Key`, `{"to", "body", "from",
//!   "reference"}`) answers `201 {"id": "sms_…", "status": "accepted"}`; the same key again
//!   answers `200` with the first answer and `Idempotent-Replayed: true` (a different body under
//!   a used key is `422`), so a message retried after a crash is accepted once. A number that is
//!   not `+` and 7–15 digits (spaces and dashes allowed) is refused with `422`, and one ending in
//!   `0000` is refused as unreachable (`422`): the refusals a real provider gives for good.
//! - `GET /v1/messages?reference=<order id>` lists what it accepted, oldest first (for tests
//!   and the demo: the "phone" of every customer).
//! - `fail_first` (`WAYBILL_SMS_SANDBOX_FAIL_FIRST`) makes the first n sends answer `503`, to
//!   see the adapter retry.
//!
//! With a state directory it keeps its messages and answered keys in `sms-sandbox.json`
//! (replaced atomically before a send is answered), so a restarted sandbox still recognises a
//! key; without one, in memory.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use waybill_write_side::state_file::{StateFile, StateFileError};

use crate::views::notifications::sms::{SmsAccepted, SmsRequest};

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "sms-sandbox";

#[derive(Debug, Clone)]
pub struct SmsSandboxConfig {
    /// The key callers must send as `Authorization: Bearer <key>`.
    pub api_key: String,
    /// The first this many sends answer 503.
    pub fail_first: u32,
    pub state_dir: Option<PathBuf>,
}

/// One accepted text message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSms {
    pub id: String,
    pub idempotency_key: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub reference: String,
    pub accepted_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    messages: Vec<SandboxSms>,
    /// Idempotency key → (request hash, index into `messages`).
    keys: HashMap<String, (String, usize)>,
}

#[derive(Clone)]
struct Sandbox {
    config: Arc<SmsSandboxConfig>,
    inner: Arc<Mutex<Persisted>>,
    sends: Arc<AtomicU32>,
    state_file: Option<Arc<StateFile>>,
}

/// The sandbox's routes, its state loaded from the state directory when it has one.
pub fn router(config: SmsSandboxConfig) -> Result<Router, StateFileError> {
    let state_file = match &config.state_dir {
        Some(dir) => Some(Arc::new(StateFile::open(dir, STATE_FILE)?)),
        None => None,
    };
    let saved: Persisted = match &state_file {
        Some(file) => file.load()?.unwrap_or_default(),
        None => Persisted::default(),
    };
    let sandbox = Sandbox {
        config: Arc::new(config),
        inner: Arc::new(Mutex::new(saved)),
        sends: Arc::default(),
        state_file,
    };
    Ok(Router::new()
        .route("/v1/messages", post(send).get(list))
        .route("/health", get(|| async { "ok" }))
        .with_state(sandbox))
}

pub async fn serve(
    listener: TcpListener,
    config: SmsSandboxConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), state_dir = ?config.state_dir, "SMS sandbox (simulated SMS provider) listening");
    let router = router(config).map_err(std::io::Error::other)?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        Json(serde_json::json!({ "title": status.canonical_reason(), "status": status.as_u16(), "detail": detail.into() })),
    )
        .into_response()
}

fn authorized(sandbox: &Sandbox, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", sandbox.config.api_key);
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| {
            use subtle::ConstantTimeEq;
            bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
        })
}

/// `+` then 7–15 digits, spaces and dashes ignored.
fn valid_number(to: &str) -> bool {
    let Some(rest) = to.trim().strip_prefix('+') else {
        return false;
    };
    let digits: String = rest.chars().filter(|c| *c != ' ' && *c != '-').collect();
    (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

async fn send(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&sandbox, &headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer <api key>",
        );
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(str::to_owned)
    else {
        return problem(StatusCode::BAD_REQUEST, "send an Idempotency-Key header");
    };
    let request: SmsRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("the body is not a message: {e}"),
            )
        }
    };
    let hash = hex::encode(Sha256::digest(&body));
    let replay = {
        let inner = sandbox.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .keys
            .get(&key)
            .map(|(seen, index)| (seen == &hash, inner.messages[*index].clone()))
    };
    if let Some((same, message)) = replay {
        if !same {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this Idempotency-Key was used for a different message",
            );
        }
        let answer = SmsAccepted {
            id: message.id,
            status: "accepted".into(),
        };
        return (
            StatusCode::OK,
            [("idempotent-replayed", "true")],
            Json(answer),
        )
            .into_response();
    }
    if sandbox.sends.fetch_add(1, Ordering::SeqCst) < sandbox.config.fail_first {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "simulated outage (fail_first); retry",
        );
    }
    if !valid_number(&request.to) {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "to: must be an international number, + and 7-15 digits",
        );
    }
    if request.to.trim().ends_with("0000") {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "to: the number is unreachable",
        );
    }
    if request.body.is_empty() || request.body.chars().count() > 1600 {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "body: 1-1600 characters");
    }
    let message = SandboxSms {
        id: format!("sms_{}", uuid::Uuid::now_v7().simple()),
        idempotency_key: key.clone(),
        to: request.to,
        from: request.from,
        body: request.body,
        reference: request.reference,
        accepted_at: Utc::now(),
    };
    let snapshot = {
        let mut inner = sandbox.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // A concurrent request with the same key may have won meanwhile.
        if let Some((_, index)) = inner.keys.get(&key) {
            let id = inner.messages[*index].id.clone();
            drop(inner);
            let answer = SmsAccepted {
                id,
                status: "accepted".into(),
            };
            return (
                StatusCode::OK,
                [("idempotent-replayed", "true")],
                Json(answer),
            )
                .into_response();
        }
        inner.messages.push(message.clone());
        let index = inner.messages.len() - 1;
        inner.keys.insert(key, (hash, index));
        sandbox.state_file.is_some()
    };
    if snapshot {
        if let Some(file) = &sandbox.state_file {
            let inner = sandbox.inner.clone();
            let saved = file
                .save(move || {
                    let inner = inner.lock().unwrap_or_else(PoisonError::into_inner);
                    serde_json::to_vec(&*inner).unwrap_or_default()
                })
                .await;
            if let Err(error) = saved {
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the sandbox could not save its state: {error}"),
                );
            }
        }
    }
    let answer = SmsAccepted {
        id: message.id,
        status: "accepted".into(),
    };
    (StatusCode::CREATED, Json(answer)).into_response()
}

#[derive(Debug, Deserialize)]
struct ListParams {
    reference: Option<String>,
}

async fn list(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Response {
    if !authorized(&sandbox, &headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer <api key>",
        );
    }
    let inner = sandbox.inner.lock().unwrap_or_else(PoisonError::into_inner);
    let messages: Vec<&SandboxSms> = inner
        .messages
        .iter()
        .filter(|m| params.reference.as_deref().is_none_or(|r| m.reference == r))
        .collect();
    Json(serde_json::json!({ "messages": messages })).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::views::notifications::channel::{Channel, RetryPolicy, SendError};
    use crate::views::notifications::render::{test_draft, Locale, Medium, NotificationKind};
    use crate::views::notifications::{Notification, SmsClient, SmsConfig};
    use waybill_schemas::OrderId;

    async fn start(fail_first: u32) -> (String, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = router(SmsSandboxConfig {
            api_key: "k".into(),
            fail_first,
            state_dir: None,
        })
        .expect("router");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        (format!("http://{addr}"), task)
    }

    fn client(base: &str, key: &str) -> SmsClient {
        SmsClient::new(SmsConfig {
            base_url: base.into(),
            api_key: key.into(),
            sender: "Waybill".into(),
            timeout: Duration::from_secs(5),
        })
        .expect("client")
    }

    fn sms(to: &str) -> Notification {
        let order = OrderId::new_v7();
        Notification {
            event_id: uuid::Uuid::now_v7(),
            order_id: order,
            kind: NotificationKind::Shipped,
            medium: Medium::Sms,
            to: to.into(),
            locale: Locale::En,
            subject: None,
            body: "Order WEB-1 shipped.".into(),
            occurred_at: Utc::now(),
            requested: false,
            draft: test_draft(order),
        }
    }

    async fn listed(base: &str, reference: &str) -> Vec<SandboxSms> {
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!("{base}/v1/messages?reference={reference}"))
            .bearer_auth("k")
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        serde_json::from_value(body["messages"].clone()).expect("messages")
    }

    #[tokio::test]
    async fn a_message_sent_twice_under_its_key_reaches_the_phone_once() {
        let (base, task) = start(0).await;
        let client = client(&base, "k");
        let message = sms("+44 20 7946 0958");
        let first = client.send(&message).await.expect("accepted");
        let again = client.send(&message).await.expect("replayed");
        assert_eq!(first, again);
        let phone = listed(&base, &message.order_id.to_string()).await;
        assert_eq!(phone.len(), 1);
        assert_eq!(phone[0].idempotency_key, message.id());
        assert_eq!(phone[0].body, "Order WEB-1 shipped.");
        task.abort();
    }

    #[tokio::test]
    async fn an_outage_is_retried_and_a_bad_number_or_key_is_told_apart() {
        let (base, task) = start(2).await;
        let policy = RetryPolicy {
            attempts: 4,
            first: Duration::from_millis(5),
            max: Duration::from_millis(20),
        };
        let good = client(&base, "k");
        policy
            .send(&good, &sms("+49 30 1234567"))
            .await
            .expect("sent after two 503s");
        assert!(matches!(
            good.send(&sms("+49 30 1230000")).await,
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            good.send(&sms("call me")).await,
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            client(&base, "wrong").send(&sms("+49 30 1234567")).await,
            Err(SendError::Transient(_))
        ));
        task.abort();
    }
}
