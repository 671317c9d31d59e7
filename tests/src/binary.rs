//! Where the `waybill` binary under test comes from.
//!
//! `CARGO_BIN_EXE_*` only exists for a package's own binaries, so the harness builds the
//! workspace's binary itself: `cargo build -p waybill` once per test process (a no-op when it is
//! up to date, so an edited service is never tested with a stale binary), then runs
//! `<target dir>/debug/waybill`. `WAYBILL_BIN=<path>` skips the build and uses that file, which
//! is what `infra/scripts/test.sh` does after building it once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of an up-to-date `waybill` binary; builds it on first use in this process.
/// Panics with cargo's output if the build fails: every end-to-end test needs the binary.
pub fn waybill_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(locate_or_build).clone()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn locate_or_build() -> PathBuf {
    if let Some(path) = std::env::var_os("WAYBILL_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "WAYBILL_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let root = workspace_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_relative() {
                root.join(dir)
            } else {
                dir
            }
        })
        .unwrap_or_else(|| root.join("target"));
    let binary = target_dir.join("debug").join("waybill");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "-p", "waybill", "--quiet"])
        .current_dir(&root)
        .output()
        .expect("run cargo build -p waybill");
    assert!(
        output.status.success(),
        "cargo build -p waybill failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        binary.is_file(),
        "cargo build -p waybill succeeded but {} does not exist",
        binary.display()
    );
    binary
}

/// Fails the test with the process's output unless it exited successfully.
pub fn assert_succeeded(output: &std::process::Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
