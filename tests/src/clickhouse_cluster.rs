//! A replicated ClickHouse of the test's own: ZooKeeper and two clickhouse-server replicas started
//! by `infra/scripts/ensure-clickhouse-cluster.sh start DIR BASE` (so the test also proves the
//! script), reached over HTTPS with the CA, user and password the script made. A replica can be
//! killed with -9 and started again by the same script; everything is stopped on drop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::poll::eventually;

/// The script's ports: ZooKeeper BASE+1, replica N HTTP BASE+4N-2 … HTTPS BASE+4N+1.
const DEFAULT_BASE: u16 = 15200;

pub struct ClickHouseCluster {
    script: PathBuf,
    dir: PathBuf,
    base: u16,
    settings: HashMap<String, String>,
    http: reqwest::Client,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/scripts/ensure-clickhouse-cluster.sh")
}

impl ClickHouseCluster {
    /// Starts the cluster with its files under `dir` (ports from `WAYBILL_E2E_CLICKHOUSE_CLUSTER_PORT`,
    /// default 15200).
    pub fn start(dir: &Path) -> ClickHouseCluster {
        let base = std::env::var("WAYBILL_E2E_CLICKHOUSE_CLUSTER_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(DEFAULT_BASE);
        Self::start_at(dir, base)
    }

    /// Starts (or finds running) the cluster of `dir` on the script's ports from `base`.
    pub fn start_at(dir: &Path, base: u16) -> ClickHouseCluster {
        let mut cluster = ClickHouseCluster {
            script: script(),
            dir: dir.to_owned(),
            base,
            settings: HashMap::new(),
            http: reqwest::Client::new(),
        };
        cluster.settings = cluster.run_start();
        let ca = std::fs::read(&cluster.settings["WAYBILL_CLICKHOUSE_CA_FILE"]).expect("the CA");
        cluster.http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("a PEM CA"))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        cluster
    }

    fn run_start(&self) -> HashMap<String, String> {
        let output = Command::new(&self.script)
            .arg("start")
            .arg(&self.dir)
            .arg(self.base.to_string())
            .output()
            .expect("run ensure-clickhouse-cluster.sh");
        assert!(
            output.status.success(),
            "ensure-clickhouse-cluster.sh start failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// A setting the script printed (`WAYBILL_CLICKHOUSE_…`).
    pub fn setting(&self, name: &str) -> &str {
        self.settings
            .get(name)
            .unwrap_or_else(|| panic!("the script printed no {name}"))
    }

    /// The replicas' HTTPS URLs, replica 1 first.
    pub fn https_urls(&self) -> Vec<String> {
        self.setting("WAYBILL_CLICKHOUSE_HTTPS_URL")
            .split(',')
            .map(str::to_owned)
            .collect()
    }

    /// Waybill's settings for the cluster over HTTPS with the CA, user and password, replicas
    /// in `urls` (all of them, or one to read from that replica alone).
    pub fn waybill_settings(&self, urls: &[String]) -> Vec<(String, String)> {
        let mut settings = vec![("WAYBILL_CLICKHOUSE_URL".to_owned(), urls.join(","))];
        for name in [
            "WAYBILL_CLICKHOUSE_CLUSTER",
            "WAYBILL_CLICKHOUSE_USER",
            "WAYBILL_CLICKHOUSE_PASSWORD",
            "WAYBILL_CLICKHOUSE_CA_FILE",
        ] {
            settings.push((name.to_owned(), self.setting(name).to_owned()));
        }
        settings
    }

    /// Runs `sql` on replica `n` (1 or 2) over HTTPS as the script's user; the answer's text.
    pub async fn query(&self, n: usize, sql: &str) -> Result<String, String> {
        let url = &self.https_urls()[n - 1];
        let response = self
            .http
            .post(format!("{url}/"))
            .header("X-ClickHouse-User", self.setting("WAYBILL_CLICKHOUSE_USER"))
            .header(
                "X-ClickHouse-Key",
                self.setting("WAYBILL_CLICKHOUSE_PASSWORD"),
            )
            .body(sql.to_owned())
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(text.trim().to_owned())
        } else {
            Err(format!("{url}: {status} {text}"))
        }
    }

    fn pid(&self, n: usize) -> Option<String> {
        std::fs::read_to_string(self.dir.join(format!("r{n}/ch.pid")))
            .ok()
            .map(|p| p.trim().to_owned())
    }

    /// Kills replica `n` with SIGKILL: no goodbye to ZooKeeper, the other replica or clients.
    pub fn kill_hard(&self, n: usize) {
        let pid = self.pid(n).expect("the replica's pid file");
        let status = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -9 {pid}");
    }

    /// Starts what is not running again (the script is idempotent) and waits until replica `n`
    /// answers.
    pub async fn restart(&self, n: usize) {
        self.run_start();
        eventually(
            &format!("replica {n} answers"),
            Duration::from_secs(60),
            || async { self.query(n, "SELECT 1").await },
        )
        .await;
    }
}

impl Drop for ClickHouseCluster {
    fn drop(&mut self) {
        if std::env::var("WAYBILL_E2E_KEEP").is_ok() {
            return;
        }
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
