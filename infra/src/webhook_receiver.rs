//! A webhook receiver as an integrator runs one, for `waybill bench webhooks` and the demo: it
//! checks every delivery's `Waybill-Signature` against its subscription's secret (401 when it
//! does not verify), counts each event once however often it arrives (deliveries are at least
//! once), and checks that every order's events arrive in stream-version order. It can be taken
//! down (the port refuses connections) and brought back on the same port, and told to answer
//! 500 to one order's events (the demo's dead letter).
//!
//! "In order per order" is checked as a receiver sees it: an event arriving for the first time
//! must not have a lower version than one already received for its order. Filtered
//! subscriptions skip versions, so a gap is not a fault; a lower version after a higher one is.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;
use waybill_write_side::subscriptions::signature;

/// How far a signature's timestamp may be from the receiver's clock.
const TOLERANCE_SECS: i64 = 300;
/// Deliveries the receiver remembers for [`WebhookReceiver::recent`].
const RECENT: usize = 20;

/// What the receiver has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Requests that reached the handler.
    pub requests: u64,
    /// Distinct events accepted (per subscription).
    pub accepted: u64,
    /// Deliveries of an event already accepted (at least once at work).
    pub duplicates: u64,
    /// Events that arrived after a later version of their order: must stay 0.
    pub out_of_order: u64,
    pub bad_signatures: u64,
    /// Answered 500 on purpose ([`WebhookReceiver::refuse_stream`]).
    pub refused: u64,
    /// Distinct events accepted, by event type.
    pub by_type: BTreeMap<String, u64>,
}

/// One accepted delivery, as the demo prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub event_type: String,
    pub stream_id: String,
    pub stream_version: i64,
    pub attempt: u32,
}

/// The part of a delivered body the receiver reads.
#[derive(Deserialize)]
struct Body {
    event_type: String,
    stream_id: String,
    stream_version: i64,
}

#[derive(Default)]
struct Books {
    tally: Tally,
    /// (subscription, stream) → versions accepted, and the highest.
    streams: HashMap<(Uuid, String), (HashSet<i64>, i64)>,
    recent: VecDeque<Arrival>,
}

#[derive(Default)]
struct Inner {
    secrets: Mutex<HashMap<Uuid, String>>,
    refused_streams: Mutex<HashSet<String>>,
    books: Mutex<Books>,
}

/// The receiver; stops when dropped.
pub struct WebhookReceiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    /// The runtime it was started on: it serves there after coming back too.
    runtime: tokio::runtime::Handle,
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let subscription = Uuid::parse_str(header(signature::SUBSCRIPTION_HEADER)).ok();
    let secret = subscription.and_then(|id| inner.secrets.lock().ok()?.get(&id).cloned());
    let verified = secret.is_some_and(|secret| {
        signature::verify(
            &secret,
            header(signature::SIGNATURE_HEADER),
            &body,
            chrono::Utc::now().timestamp(),
            TOLERANCE_SECS,
        )
        .is_ok()
    });
    let parsed = serde_json::from_slice::<Body>(&body).ok();
    let refused = parsed.as_ref().is_some_and(|b| {
        inner
            .refused_streams
            .lock()
            .is_ok_and(|r| r.contains(&b.stream_id))
    });
    let attempt = header(signature::ATTEMPT_HEADER).parse().unwrap_or(0);
    let Ok(mut books) = inner.books.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    books.tally.requests += 1;
    let (Some(subscription), true) = (subscription, verified) else {
        books.tally.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    };
    let Some(body) = parsed else {
        return StatusCode::BAD_REQUEST;
    };
    if refused {
        books.tally.refused += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    books.record(subscription, body, attempt);
    StatusCode::NO_CONTENT
}

impl Books {
    fn record(&mut self, subscription: Uuid, body: Body, attempt: u32) {
        let (seen, highest) = self
            .streams
            .entry((subscription, body.stream_id.clone()))
            .or_default();
        if !seen.insert(body.stream_version) {
            self.tally.duplicates += 1;
            return;
        }
        if body.stream_version < *highest {
            self.tally.out_of_order += 1;
        }
        *highest = (*highest).max(body.stream_version);
        self.tally.accepted += 1;
        *self
            .tally
            .by_type
            .entry(body.event_type.clone())
            .or_insert(0) += 1;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Arrival {
            event_type: body.event_type,
            stream_id: body.stream_id,
            stream_version: body.stream_version,
            attempt,
        });
    }
}

impl WebhookReceiver {
    /// Starts listening on `addr` (port 0: one the OS picks), served on the current runtime.
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let mut receiver = Self {
            addr: listener.local_addr()?,
            inner: Arc::new(Inner::default()),
            server: None,
            runtime: tokio::runtime::Handle::current(),
        };
        receiver.serve(listener);
        Ok(receiver)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/hooks", post(handle))
            .with_state(self.inner.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = self.runtime.spawn(async move {
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

    /// Accepts deliveries of `subscription` signed with `secret`.
    pub fn trust(&self, subscription: Uuid, secret: &str) {
        if let Ok(mut secrets) = self.inner.secrets.lock() {
            secrets.insert(subscription, secret.to_owned());
        }
    }

    /// Stops listening: connections are refused until [`Self::come_up`].
    pub async fn go_down(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            let aborter = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), task)
                .await
                .is_err()
            {
                // Kept-alive connections still open: cut them.
                aborter.abort();
            }
        }
    }

    /// Listens again on the same port.
    pub async fn come_up(&mut self) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    /// Answers 500 to every event of `stream_id` (or accepts them again).
    pub fn refuse_stream(&self, stream_id: &str, refuse: bool) {
        if let Ok(mut refused) = self.inner.refused_streams.lock() {
            if refuse {
                refused.insert(stream_id.to_owned());
            } else {
                refused.remove(stream_id);
            }
        }
    }

    pub fn tally(&self) -> Tally {
        self.inner
            .books
            .lock()
            .map(|b| b.tally.clone())
            .unwrap_or_default()
    }

    /// The last deliveries accepted, oldest first.
    pub fn recent(&self) -> Vec<Arrival> {
        self.inner
            .books
            .lock()
            .map(|b| b.recent.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets what was received (the secrets stay).
    pub fn reset(&self) {
        if let Ok(mut books) = self.inner.books.lock() {
            *books = Books::default();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body(stream: &str, version: i64) -> Body {
        Body {
            event_type: "OrderPlaced".to_owned(),
            stream_id: stream.to_owned(),
            stream_version: version,
        }
    }

    #[test]
    fn repeats_count_once_and_a_lower_version_after_a_higher_one_is_out_of_order() {
        let sub = Uuid::now_v7();
        let mut books = Books::default();
        books.record(sub, body("order-a", 1), 1);
        books.record(sub, body("order-a", 1), 2);
        // A filtered subscription skips versions: not a fault.
        books.record(sub, body("order-a", 3), 1);
        books.record(sub, body("order-b", 2), 1);
        books.record(sub, body("order-b", 1), 1);
        // Another subscription's copy of the same event is its own.
        books.record(Uuid::now_v7(), body("order-a", 1), 1);
        assert_eq!(books.tally.accepted, 5);
        assert_eq!(books.tally.duplicates, 1);
        assert_eq!(books.tally.out_of_order, 1);
        assert_eq!(books.tally.by_type.get("OrderPlaced"), Some(&5));
    }

    #[tokio::test]
    async fn only_signed_deliveries_are_accepted_and_a_receiver_down_refuses_connections() {
        let mut receiver = WebhookReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("start");
        let sub = Uuid::now_v7();
        receiver.trust(sub, "whsec_receiver_test_secret");
        // No kept-alive connections: each request connects, as after an outage.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let payload = br#"{"event_type":"OrderPlaced","stream_id":"order-x","stream_version":1}"#;
        let url = receiver.url();
        let post = |secret: &'static str| {
            let signed = signature::sign(secret, chrono::Utc::now().timestamp(), payload);
            client
                .post(&url)
                .header(signature::SIGNATURE_HEADER, signed)
                .header(signature::SUBSCRIPTION_HEADER, sub.to_string())
                .body(payload.to_vec())
                .send()
        };
        assert_eq!(post("another secret").await.expect("post").status(), 401);
        assert_eq!(
            post("whsec_receiver_test_secret")
                .await
                .expect("post")
                .status(),
            204
        );
        let tally = receiver.tally();
        assert_eq!((tally.accepted, tally.bad_signatures), (1, 1));

        receiver.go_down().await;
        let refused = client.post(&url).body("{}").send().await;
        assert!(refused.is_err(), "a receiver that is down answered");
        receiver.come_up().await.expect("come up");
        assert_eq!(
            post("whsec_receiver_test_secret")
                .await
                .expect("post")
                .status(),
            204
        );
        assert_eq!(receiver.tally().duplicates, 1);
    }
}
