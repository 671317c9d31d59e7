//! `waybill balance`: a small TCP load balancer for running several instances of a role on one
//! machine (`infra/scripts/cluster.sh`, the chaos test). Each accepted connection goes to the
//! next upstream in turn; an upstream that refuses or does not answer the connect within
//! [`CONNECT_TIMEOUT`] is skipped and counted down for [`DOWN_FOR`], so a killed instance costs
//! the clients nothing but the connections they had open to it. Bytes are copied both ways
//! untouched (HTTP keep-alive connections stay on one instance). A production deployment puts
//! its own load balancer in front instead.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};

use crate::config::BalanceArgs;
use crate::shutdown::Shutdown;

/// How long a connect to one upstream may take before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long an upstream that failed a connect goes last in the order.
const DOWN_FOR: Duration = Duration::from_secs(1);

/// The upstreams and what is known about them.
struct Upstreams {
    addrs: Vec<SocketAddr>,
    next: AtomicUsize,
    /// When each upstream last failed a connect.
    failed_at: Mutex<Vec<Option<Instant>>>,
}

impl Upstreams {
    fn new(addrs: Vec<SocketAddr>) -> Self {
        let failed_at = Mutex::new(vec![None; addrs.len()]);
        Self {
            addrs,
            next: AtomicUsize::new(0),
            failed_at,
        }
    }

    /// The order in which to try the upstreams for the next connection.
    fn order(&self, now: Instant) -> Vec<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let down: Vec<bool> = self
            .failed_at
            .lock()
            .map(|failed| {
                failed
                    .iter()
                    .map(|at| at.is_some_and(|at| now.duration_since(at) < DOWN_FOR))
                    .collect()
            })
            .unwrap_or_else(|_| vec![false; self.addrs.len()]);
        try_order(start, &down)
    }

    fn mark(&self, index: usize, failed: bool) {
        if let Ok(mut failed_at) = self.failed_at.lock() {
            failed_at[index] = failed.then(Instant::now);
        }
    }

    /// A connection to the first upstream that takes one, in this connection's order.
    async fn connect(&self) -> Option<(usize, TcpStream)> {
        for index in self.order(Instant::now()) {
            let addr = self.addrs[index];
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    self.mark(index, false);
                    return Some((index, stream));
                }
                Ok(Err(error)) => {
                    tracing::debug!(%addr, %error, "upstream refused; trying the next");
                    self.mark(index, true);
                }
                Err(_) => {
                    tracing::debug!(%addr, "upstream connect timed out; trying the next");
                    self.mark(index, true);
                }
            }
        }
        None
    }
}

/// Round robin from `start`, upstreams that are up first, those recently down after them (so
/// that when every one looks down the connection is still tried everywhere).
fn try_order(start: usize, down: &[bool]) -> Vec<usize> {
    let n = down.len();
    let rotated = (0..n).map(|i| (start + i) % n);
    let (up, recently_down): (Vec<usize>, Vec<usize>) = rotated.partition(|&i| !down[i]);
    up.into_iter().chain(recently_down).collect()
}

pub async fn run(args: &BalanceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.upstream.is_empty(), "--upstream: give at least one");
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let upstreams = Arc::new(Upstreams::new(args.upstream.clone()));
    tracing::info!(listen = %args.listen, upstreams = ?args.upstream, "balancing connections");
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let (client, peer) = tokio::select! {
            () = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let upstreams = Arc::clone(&upstreams);
        tokio::spawn(async move {
            let Some((index, upstream)) = upstreams.connect().await else {
                tracing::warn!(%peer, "no upstream takes connections; closing the client's");
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (mut client, mut upstream) = (client, upstream);
            if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(%peer, upstream = %upstreams.addrs[index], %error, "connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_take_the_upstreams_in_turn() {
        assert_eq!(try_order(0, &[false, false, false]), vec![0, 1, 2]);
        assert_eq!(try_order(1, &[false, false, false]), vec![1, 2, 0]);
        assert_eq!(try_order(5, &[false, false]), vec![1, 0]);
    }

    #[test]
    fn an_upstream_recently_down_is_tried_last_and_still_tried() {
        assert_eq!(try_order(0, &[true, false]), vec![1, 0]);
        assert_eq!(try_order(1, &[false, true, false]), vec![2, 0, 1]);
        assert_eq!(try_order(0, &[true, true]), vec![0, 1]);
    }

    #[tokio::test]
    async fn a_connection_goes_to_the_upstream_that_answers_when_the_other_is_gone() {
        let alive = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let alive_addr = alive.local_addr().unwrap();
        // A port nothing listens on: bound and dropped.
        let gone = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let upstreams = Upstreams::new(vec![gone, alive_addr]);
        for _ in 0..4 {
            let (index, _stream) = upstreams.connect().await.expect("one upstream answers");
            assert_eq!(index, 1);
            let _ = alive.accept().await.unwrap();
        }
    }
}
