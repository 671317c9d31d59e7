//! One running `waybill serve <role>` process: spawned with a test's environment on free ports,
//! its output appended to `<log dir>/<role>.log`, ready once it answers over HTTP, killed (-9)
//! when dropped. Tests that prove crash safety kill it themselves and start it again on the
//! same ports.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::api::Api;
use crate::binary::waybill_binary;

/// What a process runs: `waybill serve <role>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Command API, relay, projector and query API in one process.
    All,
    Commands,
    Relay,
    Projector,
    Query,
    /// The checkout process manager.
    Checkout,
    /// The simulated payment gateway.
    PaymentSandbox,
    /// The simulated WMS + carrier.
    LogisticsSandbox,
    /// The simulated SMS provider.
    SmsSandbox,
    /// The webhook delivery worker.
    Webhooks,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Commands => "commands",
            Role::Relay => "relay",
            Role::Projector => "projector",
            Role::Query => "query",
            Role::Checkout => "checkout",
            Role::PaymentSandbox => "payment-sandbox",
            Role::LogisticsSandbox => "logistics-sandbox",
            Role::SmsSandbox => "sms-sandbox",
            Role::Webhooks => "webhooks",
        }
    }
}

/// How long a freshly started (debug build) process may take to answer.
const READY_DEADLINE: Duration = Duration::from_secs(60);

pub struct WaybillProcess {
    role: Role,
    env: Vec<(String, String)>,
    log_path: PathBuf,
    child: Option<Child>,
    pub command_addr: SocketAddr,
    pub query_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
}

/// Ports tests pick from: below the kernel's ephemeral range (32768–60999 here), so a port
/// picked now and bound by a child process later cannot meanwhile be handed out by the kernel to
/// some other connection or `bind(0)`; tests running in parallel pick at random, so they
/// rarely try the same one, and a taken port is skipped. Above 26000: the fixed ports of the
/// tests' own clusters are 15000–15999, and a Redis Cluster node binds its bus port 10000
/// above its client port (25000–25999), at start and again after a restart; a port picked
/// there was taken by a restarted Redis node before the NATS node it was picked for restarted.
const TEST_PORTS: std::ops::Range<u16> = 26_000..32_000;

pub(crate) fn free_port() -> SocketAddr {
    use std::hash::{BuildHasher, Hasher};
    loop {
        // A fresh RandomState is randomly keyed: a cheap random number without another crate.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let span = u64::from(TEST_PORTS.end - TEST_PORTS.start);
        let port = TEST_PORTS.start + (hasher.finish() % span) as u16;
        // Never hand the same port out twice in this process: two calls in a row (a role's
        // command, query and metrics listeners) could otherwise draw one free port for both.
        static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if given.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            given.push(port);
            return listener.local_addr().expect("bound port address");
        }
    }
}

impl WaybillProcess {
    /// Starts the process without waiting for it; see [`WaybillProcess::wait_ready`].
    pub fn spawn(role: Role, env: Vec<(String, String)>, log_dir: &Path) -> WaybillProcess {
        let (command_addr, query_addr, metrics_addr) = (free_port(), free_port(), free_port());
        let mut env = env;
        env.push(("WAYBILL_COMMAND_ADDR".into(), command_addr.to_string()));
        env.push(("WAYBILL_QUERY_ADDR".into(), query_addr.to_string()));
        env.push(("WAYBILL_METRICS_ADDR".into(), metrics_addr.to_string()));
        // Links in customer messages open this process's tracking page (`serve all`).
        if !env.iter().any(|(k, _)| k == "WAYBILL_PUBLIC_TRACKING_URL") {
            env.push((
                "WAYBILL_PUBLIC_TRACKING_URL".into(),
                format!("http://{query_addr}"),
            ));
        }
        let mut process = WaybillProcess {
            role,
            env,
            log_path: log_dir.join(format!("{}.log", role.name())),
            child: None,
            command_addr,
            query_addr,
            metrics_addr,
        };
        process.spawn_child();
        process
    }

    fn spawn_child(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open the process log");
        let log_err = log.try_clone().expect("clone the log handle");
        let dir = self.log_path.parent().unwrap_or(Path::new("."));
        let child = Command::new(waybill_binary())
            .args(["serve", self.role.name()])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("spawn waybill");
        self.child = Some(child);
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn command_url(&self) -> String {
        format!("http://{}", self.command_addr)
    }

    pub fn query_url(&self) -> String {
        format!("http://{}", self.query_addr)
    }

    /// The payment sandbox this process runs or talks to (`WAYBILL_PAYMENT_SANDBOX_ADDR`).
    pub fn sandbox_url(&self) -> String {
        let addr = self
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "WAYBILL_PAYMENT_SANDBOX_ADDR")
            .map(|(_, v)| v.as_str())
            .unwrap_or("127.0.0.1:8090");
        format!("http://{addr}")
    }

    /// The logistics sandbox this process runs or talks to (`WAYBILL_LOGISTICS_SANDBOX_ADDR`).
    pub fn logistics_url(&self) -> String {
        let addr = self
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "WAYBILL_LOGISTICS_SANDBOX_ADDR")
            .map(|(_, v)| v.as_str())
            .unwrap_or("127.0.0.1:8092");
        format!("http://{addr}")
    }

    /// The SMS sandbox this process runs or talks to (`WAYBILL_SMS_SANDBOX_ADDR`).
    pub fn sms_url(&self) -> String {
        let addr = self
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "WAYBILL_SMS_SANDBOX_ADDR")
            .map(|(_, v)| v.as_str())
            .unwrap_or("127.0.0.1:8093");
        format!("http://{addr}")
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}", self.metrics_addr)
    }

    /// A client for this process's command and query APIs (for `serve all`).
    pub fn api(&self) -> Api {
        Api::new(&self.command_url(), &self.query_url())
    }

    /// The URLs whose 200 means "up": `/health` of the HTTP services this role runs; workers
    /// (relay, projector) only have their metrics listener, where `/health` or `/metrics` count.
    fn readiness_urls(&self) -> Vec<String> {
        match self.role {
            Role::All => vec![
                format!("{}/health", self.command_url()),
                format!("{}/health", self.query_url()),
            ],
            Role::Commands => vec![format!("{}/health", self.command_url())],
            Role::Query => vec![format!("{}/health", self.query_url())],
            Role::Relay | Role::Projector | Role::Checkout | Role::Webhooks => {
                vec![format!("{}/health", self.metrics_url())]
            }
            Role::PaymentSandbox => vec![format!("{}/health", self.sandbox_url())],
            Role::LogisticsSandbox => vec![format!("{}/health", self.logistics_url())],
            Role::SmsSandbox => vec![format!("{}/health", self.sms_url())],
        }
    }

    /// Waits until every HTTP listener of this role answers 200; panics with the log if the
    /// process exits or the deadline passes.
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let worker = matches!(self.role, Role::Relay | Role::Projector | Role::Webhooks);
        let until = tokio::time::Instant::now() + READY_DEADLINE;
        for url in self.readiness_urls() {
            loop {
                if let Some(status) = self.exit_status() {
                    panic!(
                        "waybill serve {} exited ({status}) before answering {url}\n{}",
                        self.role.name(),
                        self.log_tail()
                    );
                }
                let mut ok =
                    matches!(client.get(&url).send().await, Ok(r) if r.status().is_success());
                if !ok && worker {
                    let metrics = format!("{}/metrics", self.metrics_url());
                    ok = matches!(client.get(&metrics).send().await, Ok(r) if r.status().is_success());
                }
                if ok {
                    break;
                }
                if tokio::time::Instant::now() >= until {
                    panic!(
                        "waybill serve {} did not answer {url} within {READY_DEADLINE:?}\n{}",
                        self.role.name(),
                        self.log_tail()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// How the process ended, if it has (`None` while it runs).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// SIGKILL: the process gets no chance to finish anything (crash tests).
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited after 10 s.
    pub async fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the process again on the same ports and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill_hard();
        self.spawn_child();
        self.wait_ready().await;
    }

    /// Everything this process (and any earlier one of the same role in this test) logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last lines this process wrote, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        format!(
            "--- last lines of {} ---\n{}",
            self.log_path.display(),
            lines[start..].join("\n")
        )
    }
}

impl Drop for WaybillProcess {
    fn drop(&mut self) {
        self.kill_hard();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}
