//! A Redis Cluster of the test's own: 3 masters and 3 replicas of Debian's redis-server 7,
//! started by `infra/scripts/ensure-redis-cluster.sh` on six client ports from the one the test
//! names (cluster bus ports 10000 above), with its files under the test's log directory. A
//! master can be killed with -9 and started again (it rejoins as a replica); every node is
//! stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::poll::eventually;

pub struct RedisCluster {
    dir: PathBuf,
    base: u16,
    url: String,
}

/// A node as `CLUSTER NODES` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    /// Hash slot ranges it serves (masters).
    pub slots: Vec<(u16, u16)>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/scripts/ensure-redis-cluster.sh")
}

fn run_script(args: &[&str]) -> String {
    let output = Command::new(script())
        .args(args)
        .output()
        .expect("run ensure-redis-cluster.sh");
    assert!(
        output.status.success(),
        "ensure-redis-cluster.sh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl RedisCluster {
    /// Starts (or finds running) the six nodes on `base..base + 6` and waits until every slot
    /// is served.
    pub fn start(dir: &Path, base: u16) -> RedisCluster {
        std::fs::create_dir_all(dir).expect("cluster dir");
        let dir_arg = dir.to_string_lossy().into_owned();
        let stdout = run_script(&["start", &dir_arg, &base.to_string()]);
        let url = stdout
            .lines()
            .find_map(|line| line.strip_prefix("REDIS_URL="))
            .expect("ensure-redis-cluster.sh prints REDIS_URL")
            .to_owned();
        RedisCluster {
            dir: dir.to_owned(),
            base,
            url,
        }
    }

    /// `REDIS_URL` for the binary: the masters at start, comma-separated.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The ports of the six nodes.
    pub fn ports(&self) -> Vec<u16> {
        (0..6).map(|i| self.base + i).collect()
    }

    /// The cluster as one surviving node sees it.
    pub async fn nodes(&self) -> Vec<ClusterNode> {
        for port in self.ports() {
            let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
                continue;
            };
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                continue;
            };
            if let Ok(text) = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async::<String>(&mut conn)
                .await
            {
                return parse_nodes(&text);
            }
        }
        panic!("no node of the cluster answers CLUSTER NODES");
    }

    /// The master serving `slot` now.
    pub async fn master_of(&self, slot: u16) -> u16 {
        self.nodes()
            .await
            .into_iter()
            .find(|n| {
                n.master && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .map(|n| n.port)
            .expect("a master serves the slot")
    }

    /// kill -9 of the node on `port`.
    pub fn kill_hard(&self, port: u16) {
        let index = port - self.base + 1;
        let pidfile = self.dir.join(format!("n{index}/redis.pid"));
        let pid = std::fs::read_to_string(&pidfile)
            .expect("the node's pid file")
            .trim()
            .to_owned();
        let status = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill -9");
        assert!(status.success(), "kill -9 {pid}");
        let _ = std::fs::remove_file(pidfile);
    }

    /// Waits until `slot` is served by a master other than `old` (its replica took over) and
    /// the cluster serves every slot again.
    pub async fn await_failover(&self, slot: u16, old: u16, deadline: Duration) -> u16 {
        eventually(
            &format!("a replica to take over slot {slot} from {old}"),
            deadline,
            || async {
                let nodes = self.nodes().await;
                let serving = nodes
                    .iter()
                    .find(|n| {
                        n.master
                            && !n.failed
                            && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
                    })
                    .map(|n| n.port);
                let covered: u32 = nodes
                    .iter()
                    .filter(|n| n.master && !n.failed)
                    .flat_map(|n| n.slots.iter())
                    .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
                    .sum();
                match serving {
                    Some(port) if port != old && covered == 16384 => Ok(port),
                    other => Err(format!("slot {slot} on {other:?}, {covered} slots covered")),
                }
            },
        )
        .await
    }

    /// Starts stopped nodes again (a killed master rejoins as a replica).
    pub fn restart_stopped(&self) {
        let dir_arg = self.dir.to_string_lossy().into_owned();
        run_script(&["start", &dir_arg, &self.base.to_string()]);
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).output();
    }
}

fn parse_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let address = fields.get(1)?;
            let flags: Vec<&str> = fields.get(2)?.split(',').collect();
            let port = address.split(['@', ',']).next()?.rsplit_once(':')?.1;
            let slots = fields
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|range| match range.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => range.parse().ok().map(|s| (s, s)),
                })
                .collect();
            Some(ClusterNode {
                port: port.parse().ok()?,
                master: flags.contains(&"master"),
                failed: flags.iter().any(|f| f.starts_with("fail")),
                slots,
            })
        })
        .collect()
}
