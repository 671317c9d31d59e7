//! A webhook receiver of ours, as an integrator would run one: it checks every delivery's
//! `Waybill-Signature` against the subscription's secret (refusing a bad one with 401), keeps
//! what it accepted, and can be taken down (connections refused) and brought up again on the
//! same port, or told to answer 500 to one order's events.
//!
//! Listens on 127.0.0.1 in the subscriptions tests' port range (15450–15469).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use waybill_write_side::subscriptions::signature;

/// One accepted delivery.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: Value,
    pub event_id: String,
    pub subscription_id: String,
    pub attempt: u32,
}

#[derive(Default)]
struct Inner {
    secret: Mutex<Option<String>>,
    received: Mutex<Vec<Received>>,
    refused_streams: Mutex<HashSet<String>>,
    down: AtomicBool,
    requests: AtomicUsize,
    bad_signatures: AtomicUsize,
}

/// The receiver; stops when dropped.
pub struct WebhookReceiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

/// First and last port of the range these tests may listen on.
const PORTS: (u16, u16) = (15450, 15469);

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    inner.requests.fetch_add(1, Ordering::SeqCst);
    if inner.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let secret = inner.secret.lock().expect("lock").clone();
    let Some(secret) = secret else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    let now = chrono::Utc::now().timestamp();
    if signature::verify(
        &secret,
        &header(signature::SIGNATURE_HEADER),
        &body,
        now,
        300,
    )
    .is_err()
    {
        inner.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let stream = event["stream_id"].as_str().unwrap_or_default().to_owned();
    if inner
        .refused_streams
        .lock()
        .expect("lock")
        .contains(&stream)
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    inner.received.lock().expect("lock").push(Received {
        event_id: header(signature::EVENT_ID_HEADER),
        subscription_id: header(signature::SUBSCRIPTION_HEADER),
        attempt: header(signature::ATTEMPT_HEADER).parse().unwrap_or(0),
        event,
    });
    StatusCode::NO_CONTENT
}

impl WebhookReceiver {
    /// Starts listening on the first free port of the range.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        for port in PORTS.0..=PORTS.1 {
            if let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                let addr = listener.local_addr().expect("local addr");
                let mut receiver = Self {
                    addr,
                    inner,
                    server: None,
                };
                receiver.serve(listener);
                return receiver;
            }
        }
        panic!("no free port in {PORTS:?} for the webhook receiver");
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/hooks", post(handle))
            .with_state(self.inner.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        self.server = Some((stop, task));
    }

    /// The URL to register.
    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// The secret deliveries must be signed with (until it is set, everything gets 503).
    pub fn set_secret(&self, secret: &str) {
        *self.inner.secret.lock().expect("lock") = Some(secret.to_owned());
    }

    /// Stops listening: new connections are refused (and any kept-alive one answers 503).
    pub async fn go_down(&mut self) {
        self.inner.down.store(true, Ordering::SeqCst);
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }

    /// Listens again on the same port.
    pub async fn come_up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind the receiver's port");
        self.inner.down.store(false, Ordering::SeqCst);
        self.serve(listener);
    }

    /// Answers 500 to every event of `stream_id` (or accepts them again).
    pub fn refuse_stream(&self, stream_id: &str, refuse: bool) {
        let mut refused = self.inner.refused_streams.lock().expect("lock");
        if refuse {
            refused.insert(stream_id.to_owned());
        } else {
            refused.remove(stream_id);
        }
    }

    /// Deliveries accepted so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().expect("lock").clone()
    }

    /// Requests that reached the handler (accepted or not).
    pub fn requests(&self) -> usize {
        self.inner.requests.load(Ordering::SeqCst)
    }

    /// Deliveries whose signature did not verify.
    pub fn bad_signatures(&self) -> usize {
        self.inner.bad_signatures.load(Ordering::SeqCst)
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            task.abort();
        }
    }
}
