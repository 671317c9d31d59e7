//! How Waybill reaches ClickHouse: an HTTP connector over the configured replicas, with TLS
//! verified against the operator's CA when the URLs are `https`.
//!
//! The `clickhouse` client is given the first replica's URL; every new connection it opens goes
//! through [`FailoverConnector`], which dials the replica it used last and, when that one
//! refuses or times out, the next ones in turn. The choice is sticky: once a replica failed,
//! connections stay with the one that answered until that one fails too. A replica killed and
//! started again is therefore not used at once (for about ZooKeeper's session timeout a
//! restarted replica of a replicated table answers writes with "table is in readonly mode").
//! A request under way when its replica dies fails; its caller retries (the projector runtime
//! retries view-store outages in process), and the retry connects to a live replica.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;

/// How long one replica may take to accept a connection before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The replicas' base URLs, and the one connections go to first.
#[derive(Debug)]
pub struct Replicas {
    urls: Vec<Uri>,
    preferred: AtomicUsize,
}

impl Replicas {
    /// Parses the base URLs (`http://host:port` or `https://…`).
    pub fn parse(urls: &[String]) -> Result<Self, String> {
        if urls.is_empty() {
            return Err("no ClickHouse URL is configured".to_owned());
        }
        let urls = urls
            .iter()
            .map(|url| {
                let uri: Uri = url
                    .parse()
                    .map_err(|e| format!("ClickHouse URL {url:?} is not a URL: {e}"))?;
                match (uri.scheme_str(), uri.authority()) {
                    (Some("http" | "https"), Some(_)) => Ok(uri),
                    _ => Err(format!(
                        "ClickHouse URL {url:?} must be http://host:port or https://host:port"
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            urls,
            preferred: AtomicUsize::new(0),
        })
    }

    /// The replica new connections try first.
    pub fn preferred(&self) -> &Uri {
        &self.urls[self.preferred.load(Ordering::Relaxed) % self.urls.len()]
    }

    /// `request` with its scheme and authority replaced by replica `index`'s.
    fn retarget(&self, index: usize, request: &Uri) -> Result<Uri, http::Error> {
        let replica = &self.urls[index];
        let mut parts = request.clone().into_parts();
        parts.scheme = replica.scheme().cloned();
        parts.authority = replica.authority().cloned();
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        Ok(Uri::from_parts(parts)?)
    }
}

/// The trust anchors of `https` replicas: the system's web PKI roots are not used; a private
/// CA file is (ClickHouse clusters are reached inside a network the operator runs).
#[derive(Debug, Clone)]
pub struct TlsTrust {
    ca_file: PathBuf,
    config: Arc<OnceLock<Result<Arc<rustls::ClientConfig>, String>>>,
}

impl TlsTrust {
    pub fn ca_file(path: impl Into<PathBuf>) -> Self {
        Self {
            ca_file: path.into(),
            config: Arc::new(OnceLock::new()),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.ca_file
    }

    /// The client TLS configuration trusting the CA file's certificates (read once).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.config
            .get_or_init(|| load_client_config(&self.ca_file))
            .clone()
    }
}

fn load_client_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let what = || format!("ClickHouse CA file {}", ca_file.display());
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("{}: {e}", what()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", what()))?;
    if certificates.is_empty() {
        return Err(format!("{} holds no certificate", what()));
    }
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| format!("{}: {e}", what()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

type Inner = HttpsConnector<HttpConnector>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connects to the preferred replica, or the next that accepts (see the module doc).
#[derive(Clone)]
pub struct FailoverConnector {
    replicas: Arc<Replicas>,
    inner: Result<Inner, String>,
}

impl FailoverConnector {
    pub fn new(replicas: Arc<Replicas>, tls: Option<&TlsTrust>) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let inner = match tls.map(TlsTrust::client_config) {
            Some(Err(e)) => Err(e),
            Some(Ok(config)) => Ok(HttpsConnectorBuilder::new()
                .with_tls_config((*config).clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http)),
            None => {
                // Plain HTTP only: an `https` URL without a CA file is refused at connect time.
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                })
                .map_err(|e| format!("TLS setup: {e}"));
                config.map(|config| {
                    HttpsConnectorBuilder::new()
                        .with_tls_config(config)
                        .https_or_http()
                        .enable_http1()
                        .wrap_connector(http)
                })
            }
        };
        Self { replicas, inner }
    }
}

impl tower_service::Service<Uri> for FailoverConnector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Uri) -> Self::Future {
        let replicas = Arc::clone(&self.replicas);
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut inner = inner.map_err(BoxError::from)?;
            let count = replicas.urls.len();
            let start = replicas.preferred.load(Ordering::Relaxed) % count;
            let mut failures = Vec::new();
            for step in 0..count {
                let index = (start + step) % count;
                let target = replicas.retarget(index, &request)?;
                match tower_service::Service::call(&mut inner, target).await {
                    Ok(stream) => {
                        if index != start {
                            replicas.preferred.store(index, Ordering::Relaxed);
                            tracing::warn!(
                                replica = %replicas.urls[index],
                                failed = %failures.join("; "),
                                "ClickHouse: connections fail over to another replica"
                            );
                        }
                        return Ok(stream);
                    }
                    Err(e) => failures.push(format!("{}: {e}", replicas.urls[index])),
                }
            }
            Err(format!(
                "no ClickHouse replica accepted a connection: {}",
                failures.join("; ")
            )
            .into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_or_https_with_a_host() {
        assert!(Replicas::parse(&["http://127.0.0.1:8123".into()]).is_ok());
        assert!(Replicas::parse(&["https://ch.internal:8443".into()]).is_ok());
        assert!(Replicas::parse(&["tcp://127.0.0.1:9000".into()]).is_err());
        assert!(Replicas::parse(&["127.0.0.1:8123".into()]).is_err());
        assert!(Replicas::parse(&[]).is_err());
    }

    #[test]
    fn a_request_is_sent_to_the_replica_with_its_path_and_query() {
        let replicas =
            Replicas::parse(&["http://127.0.0.1:1".into(), "https://localhost:2".into()])
                .expect("valid");
        let request: Uri = "http://127.0.0.1:1/?database=w&query=SELECT%201"
            .parse()
            .expect("uri");
        let moved = replicas.retarget(1, &request).expect("retargets");
        assert_eq!(
            moved.to_string(),
            "https://localhost:2/?database=w&query=SELECT%201"
        );
    }

    #[tokio::test]
    async fn connections_go_to_the_next_replica_when_one_refuses_and_stay_there() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let live = listener.local_addr().expect("addr");
        // A port nothing listens on: bind, note it, close.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let replicas = Arc::new(
            Replicas::parse(&[format!("http://{dead}"), format!("http://{live}")]).expect("valid"),
        );
        let mut connector = FailoverConnector::new(Arc::clone(&replicas), None);
        let accept = tokio::spawn(async move { listener.accept().await.map(|(_, peer)| peer) });
        let request: Uri = format!("http://{dead}/ping").parse().expect("uri");
        tower_service::Service::call(&mut connector, request)
            .await
            .expect("the live replica accepts");
        accept.await.expect("joined").expect("accepted");
        assert_eq!(replicas.preferred().to_string(), format!("http://{live}/"));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("waybill-ca-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("ca.crt");
        std::fs::write(&file, "not a certificate\n").expect("write");
        let error = TlsTrust::ca_file(&file)
            .client_config()
            .expect_err("no certificate");
        assert!(error.contains("ca.crt"), "{error}");
        let missing = TlsTrust::ca_file(dir.join("missing.crt"))
            .client_config()
            .expect_err("missing file");
        assert!(missing.contains("missing.crt"), "{missing}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
