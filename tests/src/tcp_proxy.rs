//! A TCP proxy the test controls, standing between a Waybill process and a shared server (the
//! machine's Postgres): [`TcpProxy::cut`] drops every open connection and refuses new ones, as a
//! network partition or a database outage would, without stopping the server other tests use;
//! [`TcpProxy::restore`] lets connections through again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Default)]
struct Links {
    open: AtomicBool,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

/// The running proxy; stops when dropped.
pub struct TcpProxy {
    addr: SocketAddr,
    links: Arc<Links>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the TCP proxy");
        let addr = listener.local_addr().expect("proxy address");
        let links = Arc::new(Links::default());
        links.open.store(true, Ordering::SeqCst);
        let shared = Arc::clone(&links);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !shared.open.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                if let Ok(mut connections) = shared.connections.lock() {
                    connections.retain(|c| !c.is_finished());
                    connections.push(link);
                }
            }
        });
        TcpProxy {
            addr,
            links,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.links.open.store(false, Ordering::SeqCst);
        if let Ok(mut connections) = self.links.connections.lock() {
            for connection in connections.drain(..) {
                connection.abort();
            }
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.links.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
