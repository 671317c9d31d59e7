//! An osmem-server of the test's own (in-memory OpenSearch-API server, PyPI
//! `osmem-server==0.1.6`, installed by `infra/scripts/ensure-search.sh`): started on a free port,
//! killed by pid on drop. Missing, it fails the test under CI (`CI=true`) and skips it elsewhere.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Osmem {
    child: Child,
    pub url: String,
}

impl Osmem {
    /// Starts a server, or `None` (with a note) outside CI when it is not installed.
    pub fn start() -> Option<Osmem> {
        let bin = binary()?;
        let (child, url) = spawn(&bin, "127.0.0.1:0");
        Some(Osmem { child, url })
    }

    /// Kills the server with -9 and starts a new, empty one on the same address: what a
    /// search store that keeps its documents in memory looks like after a crash.
    pub fn restart_empty(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let bin = binary().expect("osmem-server ran before, so it is installed");
        let addr = self.url.trim_start_matches("http://").to_owned();
        let (child, url) = spawn(&bin, &addr);
        assert_eq!(url, self.url, "osmem-server came back on its address");
        self.child = child;
    }
}

/// The installed server binary, or `None` (with a note) outside CI when it is missing.
fn binary() -> Option<PathBuf> {
    let bin = std::env::var("WAYBILL_OSMEM_BIN").map_or_else(
        |_| {
            std::env::var("WAYBILL_OSMEM_VENV")
                .map_or_else(
                    |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.waybill/venv-osmem"),
                    PathBuf::from,
                )
                .join("bin/osmem-server")
        },
        PathBuf::from,
    );
    if !bin.exists() {
        let hint = format!(
            "osmem-server not found at {} (run infra/scripts/ensure-search.sh)",
            bin.display()
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{hint}");
        eprintln!("SKIPPING the OpenSearch-API run: {hint}");
        return None;
    }
    Some(bin)
}

/// Starts the server on `addr` (port 0: any free port) and reads the URL it prints.
fn spawn(bin: &Path, addr: &str) -> (Child, String) {
    let mut child = Command::new(bin)
        .args(["-addr", addr, "-no-stdin-watch"])
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
    (child, url)
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
