//! A storefront's identity provider as Waybill meets it: an HTTP server publishing a JWKS
//! document (`GET /jwks.json`) that the test can change (key rotation) and that counts how
//! often it was fetched (so a test can see Waybill does not hammer it). The keys are made by
//! the test ([`waybill_schemas::jwt::testing::TestSigner`]); this server only publishes their
//! public halves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use waybill_schemas::jwt::testing::{jwks, TestSigner};

#[derive(Clone, Default)]
struct Published {
    document: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

/// The running server; stops when dropped.
pub struct IdentityProvider {
    addr: SocketAddr,
    published: Published,
    task: tokio::task::JoinHandle<()>,
}

impl IdentityProvider {
    /// Starts on a free loopback port, publishing `signers`.
    pub async fn start(signers: &[&TestSigner]) -> IdentityProvider {
        let published = Published::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the identity provider");
        let addr = listener.local_addr().expect("identity provider address");
        let app = Router::new()
            .route("/jwks.json", get(serve_jwks))
            .with_state(published.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let provider = IdentityProvider {
            addr,
            published,
            task,
        };
        provider.publish(signers);
        provider
    }

    /// `WAYBILL_JWKS_URL` for this provider.
    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Publishes exactly these keys from now on (a rotation drops the ones not listed).
    pub fn publish(&self, signers: &[&TestSigner]) {
        if let Ok(mut document) = self.published.document.lock() {
            *document = jwks(signers);
        }
    }

    /// How many times the key set was fetched.
    pub fn fetches(&self) -> usize {
        self.published.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for IdentityProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_jwks(State(published): State<Published>) -> Json<Value> {
    published.fetches.fetch_add(1, Ordering::SeqCst);
    let document = published
        .document
        .lock()
        .map(|d| d.clone())
        .unwrap_or_default();
    Json(document)
}
