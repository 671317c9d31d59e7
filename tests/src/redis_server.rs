//! A redis-server of the test's own (Debian's, the one the machine runs on 6379), on a port the
//! test names, with no persistence and its files under a temporary directory: a test can kill -9
//! it and start it again on the same port to see how Waybill lives through a Redis outage.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` on 127.0.0.1:`port` and waits until it answers PING.
    pub async fn start(port: u16) -> RedisServer {
        let dir =
            std::env::temp_dir().join(format!("security-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis data dir");
        let mut server = RedisServer {
            port,
            dir,
            child: None,
        };
        server.start_again().await;
        server
    }

    /// `REDIS_URL` of this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server again (after [`kill_hard`](Self::kill_hard)) on the same port.
    pub async fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "redis-server {} already runs",
            self.port
        );
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (Debian's redis-server package)");
        self.child = Some(child);
        let url = self.url();
        crate::eventually(
            &format!("redis-server on {url} answers"),
            Duration::from_secs(10),
            || async {
                let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
                let mut connection = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?;
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .map_err(|e| e.to_string())
            },
        )
        .await;
    }

    /// kill -9, as a crash or an OOM killer would.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill_hard();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
