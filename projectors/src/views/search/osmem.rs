//! Test helper: an osmem-server of the test's own (an in-memory server speaking the OpenSearch
//! API, PyPI `osmem-server==0.1.6`, installed by `infra/scripts/ensure-search.sh`), started on a
//! free port and killed by pid on drop.
//!
//! Where it is missing the OpenSearch run of the suite is skipped with a message on a developer
//! machine, and fails under CI (`CI=true`), so CI always runs both backends.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Osmem {
    child: Child,
    pub url: String,
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("WAYBILL_OSMEM_BIN") {
        return PathBuf::from(path);
    }
    let venv = std::env::var("WAYBILL_OSMEM_VENV").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.waybill/venv-osmem"),
        PathBuf::from,
    );
    venv.join("bin/osmem-server")
}

impl Osmem {
    /// Starts a server, or `None` (with a note) outside CI when it is not installed.
    pub fn start() -> Option<Self> {
        let bin = binary();
        if !bin.exists() {
            let hint = format!(
                "osmem-server not found at {} (run infra/scripts/ensure-search.sh)",
                bin.display()
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{hint}");
            eprintln!("SKIPPING the OpenSearch-API run: {hint}");
            return None;
        }
        let mut child = Command::new(&bin)
            .args(["-addr", "127.0.0.1:0", "-no-stdin-watch"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("osmem-server starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("osmem-server prints its address");
        let info: serde_json::Value =
            serde_json::from_str(first.trim()).expect("osmem-server start line is JSON");
        let url = info["url"].as_str().expect("start line has url").to_owned();
        Some(Self { child, url })
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
