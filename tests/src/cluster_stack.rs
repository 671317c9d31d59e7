//! The cluster stack of `infra/scripts/cluster.sh` for one test (so the test also proves the
//! script): a 3-node NATS JetStream cluster, a Redis Cluster of 3 masters and 3 replicas, two
//! ClickHouse replicas with ZooKeeper, osmem-server, the two sandboxes, two processes of every
//! role and the balancers in front of the APIs, on the script's ports from
//! `WAYBILL_E2E_CLUSTER_PORT_BASE` (default 15520, the script's own default: do not run the
//! script by hand on the same ports meanwhile), with the test's database, stream, Redis prefix,
//! ClickHouse database and secrets. Any process or node can be killed with -9; running the
//! script again ([`ClusterStack::start_missing`]) starts whatever is not running, as an operator
//! would. Everything is stopped on drop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::binary::waybill_binary;
use crate::clickhouse_cluster::ClickHouseCluster;
use crate::env::TestEnv;
use crate::redis_cluster::RedisCluster;

const DEFAULT_BASE: u16 = 15520;

/// The Waybill processes the script runs, by the names of their pid files.
pub const INSTANCES: [&str; 12] = [
    "commands-1",
    "commands-2",
    "query-1",
    "query-2",
    "checkout-1",
    "checkout-2",
    "fulfillment-1",
    "fulfillment-2",
    "relay-1",
    "relay-2",
    "projector-1",
    "projector-2",
];

pub struct ClusterStack {
    dir: PathBuf,
    env: Vec<(String, String)>,
    settings: HashMap<String, String>,
    /// The stack's Redis Cluster (masters can be killed and come back as replicas).
    pub redis: RedisCluster,
    /// The stack's ClickHouse replicas.
    pub clickhouse: ClickHouseCluster,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/scripts/cluster.sh")
}

impl ClusterStack {
    /// Starts the stack for `env` (plus `extra` settings for every process) with its files under
    /// `dir`; `None` (with a note) outside CI when nats-server 2.15 is not installed.
    pub fn start(env: &TestEnv, dir: &Path, extra: &[(&str, &str)]) -> Option<ClusterStack> {
        crate::nats_cluster::binary()?;
        std::fs::create_dir_all(dir).expect("the stack's directory");
        let base = std::env::var("WAYBILL_E2E_CLUSTER_PORT_BASE")
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(DEFAULT_BASE);
        let mut vars = env.process_env(extra);
        vars.push(("WAYBILL_BIN".into(), waybill_binary().display().to_string()));
        vars.push(("WAYBILL_CLUSTER_DIR".into(), dir.display().to_string()));
        vars.push(("WAYBILL_CLUSTER_PORT_BASE".into(), base.to_string()));
        // The processes' notifications and sandbox state stay in the stack's directory.
        vars.push((
            "WAYBILL_SANDBOX_STATE_DIR".into(),
            dir.join("sandbox-state").display().to_string(),
        ));
        let settings = run(&vars, &["start", "--no-demo"]);
        let redis = RedisCluster::start(&dir.join("redis"), base + 3);
        let clickhouse_base: u16 = settings["CLICKHOUSE_BASE_PORT"].parse().expect("a port");
        let clickhouse = ClickHouseCluster::start_at(&dir.join("clickhouse"), clickhouse_base);
        Some(ClusterStack {
            dir: dir.to_owned(),
            env: vars,
            settings,
            redis,
            clickhouse,
        })
    }

    /// Runs the script again: whatever is not running (a killed process, node or replica) is
    /// started, the rest left alone.
    pub fn start_missing(&self) {
        run(&self.env, &["start", "--no-demo"]);
    }

    /// A value the script printed (`COMMAND_URL`, `NATS_URL`, `REDIS_URL`, ...).
    pub fn setting(&self, name: &str) -> &str {
        self.settings
            .get(name)
            .unwrap_or_else(|| panic!("cluster.sh printed no {name}"))
    }

    /// The command APIs' balancer.
    pub fn command_url(&self) -> String {
        self.setting("COMMAND_URL").to_owned()
    }

    /// The query APIs' balancer.
    pub fn query_url(&self) -> String {
        self.setting("QUERY_URL").to_owned()
    }

    /// Where the sandboxes' state files are.
    pub fn sandbox_state_dir(&self) -> PathBuf {
        self.dir.join("sandbox-state")
    }

    /// The log of one process the script started (`commands-1`, `payment-sandbox`, ...).
    pub fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("roles/{name}.log"))).unwrap_or_default()
    }

    /// kill -9 of the Waybill process `name` (an entry of [`INSTANCES`], `payment-sandbox` or
    /// `logistics-sandbox`); its pid.
    pub fn kill_process(&self, name: &str) -> u32 {
        kill_pidfile(&self.dir.join(format!("roles/{name}.pid")))
    }

    /// The node (`n1`..`n3`) leading `stream` now, as the running nodes' monitoring says.
    pub async fn nats_stream_leader(&self, stream: &str) -> Option<String> {
        for port in self.setting("NATS_MONITOR_PORTS").split(',') {
            let url = format!("http://127.0.0.1:{port}/jsz?streams=1");
            let Ok(response) = reqwest::Client::new()
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            else {
                continue;
            };
            let Ok(jsz) = response.json::<serde_json::Value>().await else {
                continue;
            };
            if let Some(leader) = crate::nats_cluster::stream_leader_in(&jsz, stream) {
                return Some(leader);
            }
        }
        None
    }

    /// kill -9 of NATS node `name` (`n1`..`n3`); its pid.
    pub fn kill_nats(&self, name: &str) -> u32 {
        kill_pidfile(&self.dir.join(format!("nats/{name}.pid")))
    }
}

/// Runs cluster.sh with exactly `vars` as its environment; the `NAME=value` lines it printed.
fn run(vars: &[(String, String)], args: &[&str]) -> HashMap<String, String> {
    let output = Command::new(script())
        .args(args)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run cluster.sh");
    assert!(
        output.status.success(),
        "cluster.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn kill_pidfile(pidfile: &Path) -> u32 {
    let pid: u32 = std::fs::read_to_string(pidfile)
        .unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()))
        .trim()
        .parse()
        .expect("a pid");
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill -9");
    assert!(status.success(), "kill -9 {pid}");
    pid
}

impl Drop for ClusterStack {
    fn drop(&mut self) {
        if std::env::var_os("WAYBILL_E2E_KEEP").is_some() {
            eprintln!(
                "WAYBILL_E2E_KEEP: the cluster stack keeps running from {}",
                self.dir.display()
            );
            return;
        }
        let _ = Command::new(script())
            .arg("stop")
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
