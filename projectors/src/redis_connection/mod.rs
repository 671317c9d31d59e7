//! How Waybill reaches Redis, written once for every store and reader: one node (the default)
//! or a Redis Cluster, plain or TLS (`rediss://`), behind one [`RedisConnection`] that
//! implements the `redis` crate's async `ConnectionLike`, so stores build commands and pipelines
//! the same way for both.
//!
//! **Which one.** [`RedisTarget::parse`] reads `REDIS_URL`: one URL is a single node; several,
//! comma-separated, are the seed nodes of a cluster; `WAYBILL_REDIS_CLUSTER=true` makes a single
//! URL a cluster seed too. The cluster client learns the other nodes from the seeds and follows
//! `MOVED`/`ASK` redirections and failovers by itself.
//!
//! **What a cluster asks of the callers** (and where it is handled):
//! - every key of one order carries the order id as a hash tag (`…:{<order uuid>}`), so an
//!   order's keys and the Lua compare-and-set on them live in one slot
//!   (`views::tracking::keys`, `views::order_hashes`);
//! - a pipeline may span slots: on a cluster it is split by slot ([`cluster`]), each part sent to
//!   the slot's master concurrently, keyless commands (`SCRIPT LOAD`) to every master first, and
//!   the answers put back in the pipeline's order; a single node gets the pipeline as it is;
//! - `SCAN` sees one node's keys: [`RedisConnection::scan`] walks every master in turn;
//! - no multi-key command spans slots (deletes go key by key in a pipeline).

mod cluster;
mod masters;
mod replaceable;
mod scan;

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value};

pub use cluster::slot;
pub use scan::KeyScan;

use replaceable::Replaceable;

/// A command that gets no answer gives up after this long (a hung server, a network partition).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connecting to a node gives up after this long, so readers answer 503 at once while Redis
/// is down instead of waiting out a long backoff.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// Where Redis is: one node or the seed nodes of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    nodes: Vec<String>,
    cluster: bool,
    wait_replicas: u32,
}

/// A `REDIS_URL` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("REDIS_URL is empty")]
    Empty,
    #[error("{url} is not a Redis URL: {source}")]
    NotAUrl { url: String, source: RedisError },
    #[error("the cluster seed nodes mix TLS (rediss://) and plain (redis://) URLs")]
    MixedTls,
}

impl RedisTarget {
    /// `url` is one Redis URL or several comma-separated; several, or `force_cluster`, mean a
    /// Redis Cluster with these seed nodes.
    pub fn parse(url: &str, force_cluster: bool) -> Result<Self, TargetError> {
        let nodes: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if nodes.is_empty() {
            return Err(TargetError::Empty);
        }
        for node in &nodes {
            node.as_str()
                .into_connection_info()
                .map_err(|source| TargetError::NotAUrl {
                    url: node.clone(),
                    source,
                })?;
        }
        let tls = nodes.iter().filter(|n| n.starts_with("rediss://")).count();
        if tls != 0 && tls != nodes.len() {
            return Err(TargetError::MixedTls);
        }
        let cluster = force_cluster || nodes.len() > 1;
        Ok(Self {
            nodes,
            cluster,
            wait_replicas: 0,
        })
    }

    /// View writes wait until this many replicas have them (`WAIT`) before the projector
    /// acknowledges their events, so a master that dies right after a write does not take it
    /// along (Redis replicates asynchronously). 0, the default, does not wait.
    pub fn with_wait_replicas(mut self, replicas: u32) -> Self {
        self.wait_replicas = replicas;
        self
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The URLs as given (one, or the cluster's seeds).
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// A plain client per node (for what the cluster client does not do, such as a pub/sub
    /// subscription: a cluster broadcasts `PUBLISH` to every node, so any node will do).
    pub fn clients(&self) -> RedisResult<Vec<redis::Client>> {
        self.nodes
            .iter()
            .map(|node| redis::Client::open(node.as_str()))
            .collect()
    }

    /// Connects. The connection reconnects by itself: while Redis (or a cluster's master) is
    /// down a command fails within about [`CONNECTION_TIMEOUT`] (retried once) and the next
    /// one tries again; a cluster connection also refreshes its slot map after a failover.
    pub async fn connect(&self) -> RedisResult<RedisConnection> {
        if self.cluster {
            let client = redis::cluster::ClusterClientBuilder::new(self.nodes.clone())
                .connection_timeout(CONNECTION_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .retries(4)
                .min_retry_wait(50)
                .max_retry_wait(500)
                .build()?;
            Ok(RedisConnection(
                Inner::Cluster(Replaceable::connect(client).await?),
                self.wait_replicas,
            ))
        } else {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(CONNECTION_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT)
                .set_number_of_retries(1)
                .set_max_delay(500);
            let connection = redis::Client::open(self.nodes[0].as_str())?
                .get_connection_manager_with_config(config)
                .await?;
            Ok(RedisConnection(
                Inner::Single(connection),
                self.wait_replicas,
            ))
        }
    }
}

impl std::fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.cluster { "cluster" } else { "node" };
        // Only host and port: a URL may carry a password.
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match n.as_str().into_connection_info() {
                Ok(info) => info.addr.to_string(),
                Err(_) => "?".to_owned(),
            })
            .collect();
        write!(f, "Redis {kind} {}", hosts.join(","))
    }
}

/// A Redis connection, single node or cluster; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct RedisConnection(Inner, u32);

/// How long [`RedisConnection::await_replicas`] waits for replicas.
const WAIT_TIMEOUT_MS: u64 = 1000;

#[derive(Clone)]
enum Inner {
    Single(ConnectionManager),
    Cluster(std::sync::Arc<Replaceable>),
}

impl RedisConnection {
    /// Whether this is a Redis Cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self.0, Inner::Cluster(_))
    }

    /// Waits until the configured number of replicas has every write made so far on this
    /// connection (`WAIT`, sent to each master on a cluster), at most a second.
    ///
    /// Each master is first asked how many of its replicas are *online* (in sync, so able to
    /// confirm; `INFO replication`), and its `WAIT` asks for no more than those. A master
    /// whose online replicas did not all confirm in time is an error (`TryAgain`): the caller
    /// must not acknowledge what it wrote, because a write that only its master holds is lost if
    /// that master dies before copying it. The view retries, and the redelivered event finds the
    /// write on the master that survives or applies it there again. A master with fewer online
    /// replicas than asked for (its replica died, or took over and the old master is still
    /// rejoining or copying) needs only those it has, and none means no `WAIT` at all: there is
    /// nowhere else to copy the write, and stalling every view until a replica returns would
    /// turn one lost node into an outage. That is logged (at most every 10 s).
    ///
    /// Never `WAIT` for a replica that cannot answer: `WAIT` blocks the connection it is sent on
    /// for its whole timeout, and that connection is the one every view and reader of the
    /// process shares. A `WAIT` of a second per batch on a master without a replica queued
    /// every other command behind it, faster than they were served, so after a failover every
    /// Redis command of the process timed out for minutes
    /// (`cluster_tests::a_master_killed_and_restarted_under_load_…`).
    pub async fn await_replicas(&self) -> RedisResult<()> {
        if self.1 == 0 {
            return Ok(());
        }
        let nodes = self.key_nodes().await?;
        let confirmations = nodes.into_iter().map(|node| self.confirm_on(node));
        futures::future::try_join_all(confirmations).await?;
        Ok(())
    }

    /// The nodes that hold keys: the one node (`None`), or each master of a cluster.
    pub(super) async fn key_nodes(&self) -> RedisResult<Vec<Node>> {
        Ok(match &self.0 {
            Inner::Single(_) => vec![None],
            Inner::Cluster(_) => masters::of(self).await?.into_iter().map(Some).collect(),
        })
    }

    /// [`Self::await_replicas`] on one node (a cluster's master, or the one node).
    async fn confirm_on(&self, node: Node) -> RedisResult<()> {
        let online = self.online_replicas(node.clone()).await?;
        let needed = i64::from(self.1).min(online);
        let shown = node
            .clone()
            .map_or_else(|| "the node".to_owned(), |(h, p)| format!("{h}:{p}"));
        if online < i64::from(self.1) {
            warn_alone(&shown, online, self.1);
        }
        if needed == 0 {
            return Ok(());
        }
        let wait = redis::cmd("WAIT").arg(needed).arg(WAIT_TIMEOUT_MS).clone();
        let answer = self.on_node(&wait, node).await?;
        let acknowledged: i64 = redis::from_redis_value(&answer)?;
        if acknowledged < needed {
            return Err(RedisError::from((
                redis::ErrorKind::TryAgain,
                "Redis replicas did not confirm the writes in time",
                format!(
                    "{shown}: {acknowledged} of {needed} online replicas within {WAIT_TIMEOUT_MS} ms"
                ),
            )));
        }
        Ok(())
    }

    /// `cmd` on `node` by its address (the one node if `None`).
    pub(super) async fn on_node(&self, cmd: &Cmd, node: Node) -> RedisResult<Value> {
        match (&self.0, node) {
            (Inner::Cluster(cluster), Some((host, port))) => {
                let answer = cluster
                    .get()
                    .route_command(cmd, by_address(host, port))
                    .await;
                cluster.observe(&answer);
                answer
            }
            _ => cmd.query_async(&mut self.clone()).await,
        }
    }

    /// How many times a cluster connection that stopped answering was replaced (0 for a single
    /// node).
    pub fn replacements(&self) -> u64 {
        match &self.0 {
            Inner::Single(_) => 0,
            Inner::Cluster(cluster) => cluster.replacements(),
        }
    }

    /// The replicas of `node` that are online (in sync) by its `INFO replication`.
    async fn online_replicas(&self, node: Node) -> RedisResult<i64> {
        let info = redis::cmd("INFO").arg("replication").clone();
        let text: String = redis::from_redis_value(&self.on_node(&info, node).await?)?;
        Ok(online_replicas(&text))
    }

    /// Every key matching `pattern`, page by page: one node's `SCAN`, or each master's in turn
    /// on a cluster.
    pub fn scan(&self, pattern: impl Into<String>) -> KeyScan {
        KeyScan::new(self.clone(), pattern.into())
    }

    /// Deletes every key matching `pattern`, key by key in one pipeline per page (a multi-key
    /// delete may not span a cluster's slots); the number deleted.
    pub async fn delete_matching(&self, pattern: impl Into<String>) -> RedisResult<u64> {
        let mut deleted = 0;
        let mut scan = self.scan(pattern);
        while let Some(keys) = scan.next_page().await? {
            if keys.is_empty() {
                continue;
            }
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.unlink(key);
            }
            let counts: Vec<u64> = pipe.query_async(&mut self.clone()).await?;
            deleted += counts.into_iter().sum::<u64>();
        }
        Ok(deleted)
    }
}

impl From<ConnectionManager> for RedisConnection {
    fn from(connection: ConnectionManager) -> Self {
        Self(Inner::Single(connection), 0)
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Inner::Single(c) => c.req_packed_command(cmd),
            Inner::Cluster(cluster) => Box::pin(async move {
                let answer = cluster.get().req_packed_command(cmd).await;
                cluster.observe(&answer);
                answer
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Inner::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Inner::Cluster(replaceable) => Box::pin(async move {
                let answers =
                    cluster::pipeline(&mut replaceable.get(), pipeline, offset, count).await;
                replaceable.observe(&answers);
                answers
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Inner::Single(c) => c.get_db(),
            Inner::Cluster(cluster) => cluster.get().get_db(),
        }
    }
}

/// One node of a cluster, by its address.
fn by_address(host: String, port: u16) -> redis::cluster_routing::RoutingInfo {
    redis::cluster_routing::RoutingInfo::SingleNode(
        redis::cluster_routing::SingleNodeRoutingInfo::ByAddress { host, port },
    )
}

/// A node's `(host, port)`; `None` for the one node of a single-node connection.
type Node = Option<(String, u16)>;

/// The `slaveN:…,state=online,…` lines of `INFO replication`: replicas in sync with their
/// master (one still copying the data set, `wait_bgsave` or `send_bulk`, cannot confirm).
fn online_replicas(info: &str) -> i64 {
    info.lines()
        .filter(|line| {
            line.trim_start().starts_with("slave")
                && line.split(',').any(|field| field.trim() == "state=online")
        })
        .count() as i64
}

/// When the last "fewer replicas than asked for" warning was logged (seconds since the epoch).
static LAST_ALONE_WARNING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Logs, at most every 10 s, that a master keeps its writes with fewer replicas than wanted.
fn warn_alone(master: &str, online: i64, wanted: u32) {
    use std::sync::atomic::Ordering;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_ALONE_WARNING.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST_ALONE_WARNING
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            master,
            online,
            wanted,
            "a Redis master has fewer online replicas than WAYBILL_REDIS_WAIT_REPLICAS asks for: \
             its writes are kept by fewer copies until they return (logged at most every 10 s)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_a_single_node_and_several_are_a_cluster() {
        let single = RedisTarget::parse("redis://127.0.0.1:6379", false).expect("parses");
        assert!(!single.is_cluster());
        let cluster = RedisTarget::parse("redis://127.0.0.1:7000, redis://127.0.0.1:7001", false)
            .expect("parses");
        assert!(cluster.is_cluster());
        assert_eq!(cluster.nodes().len(), 2);
        let seeded = RedisTarget::parse("redis://127.0.0.1:7000", true).expect("parses");
        assert!(seeded.is_cluster());
    }

    #[test]
    fn a_bad_url_or_mixed_tls_is_refused_naming_it() {
        let err = RedisTarget::parse("redis://a:1,http//nope", false).expect_err("refused");
        assert!(err.to_string().contains("http//nope"), "{err}");
        assert!(matches!(
            RedisTarget::parse("redis://a:1,rediss://b:2", false),
            Err(TargetError::MixedTls)
        ));
        assert!(matches!(
            RedisTarget::parse(" , ", false),
            Err(TargetError::Empty)
        ));
    }

    #[test]
    fn only_replicas_in_sync_count_as_able_to_confirm() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=127.0.0.1,port=7003,state=online,offset=42,lag=0\r\n\
                    slave1:ip=127.0.0.1,port=7004,state=wait_bgsave,offset=0,lag=0\r\n\
                    master_replid:abc\r\n";
        assert_eq!(online_replicas(info), 1);
        assert_eq!(online_replicas("# Replication\r\nrole:slave\r\n"), 0);
        assert_eq!(
            online_replicas("role:master\r\nconnected_slaves:0\r\nslave_read_only:1\r\n"),
            0,
            "settings named slave… are not replicas"
        );
    }

    #[test]
    fn the_display_shows_hosts_not_passwords() {
        let target = RedisTarget::parse("redis://:s3cret@127.0.0.1:7000", true).expect("parses");
        let shown = target.to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("127.0.0.1:7000"), "{shown}");
    }
}

#[cfg(test)]
mod cluster_tests;
