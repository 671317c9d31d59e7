//! The OpenAPI contract, checked from outside with schemathesis (PyPI, pinned by
//! `infra/scripts/ensure-schemathesis.sh`) against the live command and query APIs of the real
//! binary: every check (`--checks all`: no 5xx, status codes, content types, headers and bodies
//! as documented, schema-valid requests accepted, schema-violating ones refused, auth enforced),
//! as a staff role (the admin API key) on both APIs and as a signed-in customer (JWT) on the query
//! API. Bounded and reproducible: `--max-examples` per operation, `--generation-deterministic`,
//! one worker. A finding fails the test unless it is listed in the run's baseline under
//! `infra/contract/` (known gaps between a document and its server, each one a debt to pay
//! down, see infra/contract/README.md); a new finding, an error or a 5xx always fails.
//! `infra/contract/hooks.py` gives every request generated as valid a fresh `Idempotency-Key`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use waybill_e2e::{Role, TestEnv, ADMIN_KEY};

/// Test cases per operation and phase: enough to reach every documented constraint, few enough
/// to keep the three runs around a minute on a shared 2-core machine.
const MAX_EXAMPLES: &str = "10";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `st` from `$WAYBILL_SCHEMATHESIS_VENV` (default `<repo>/.waybill/venv-schemathesis`).
fn schemathesis() -> PathBuf {
    let venv = std::env::var_os("WAYBILL_SCHEMATHESIS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".waybill").join("venv-schemathesis"));
    let st = venv.join("bin").join("st");
    assert!(
        st.is_file(),
        "{} is missing: run infra/scripts/ensure-schemathesis.sh (test.sh does)",
        st.display()
    );
    st
}

/// Runs schemathesis against `base`'s `/openapi.json` as `bearer`; its report unless it exits 0
/// (no finding beyond `baseline`, no error).
async fn run(name: &str, base: &str, bearer: &str, log_dir: &Path) -> Option<String> {
    let baseline = repo_root()
        .join("infra")
        .join("contract")
        .join(format!("{name}.baseline.json"));
    let contract_dir = repo_root().join("infra").join("contract");
    let mut command = tokio::process::Command::new(schemathesis());
    command
        // infra/contract/hooks.py: a fresh Idempotency-Key per valid request, as clients send.
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", &contract_dir)
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--checks", "all"])
        .args(["--header", &format!("Authorization: Bearer {bearer}")])
        .args(["--max-examples", MAX_EXAMPLES])
        .arg("--generation-deterministic")
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        // A generation health check, not a finding: the form of POST /track is tight enough
        // that Hypothesis discards many drafts.
        .args(["--suppress-health-check", "filter_too_much"])
        .arg("--no-color")
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(log_dir.join(format!("schemathesis-{name}")))
        .current_dir(log_dir)
        .stdin(Stdio::null());
    if baseline.is_file() {
        command.arg("--baseline").arg(&baseline);
    }
    let output = command.output().await.expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::write(log_dir.join(format!("schemathesis-{name}.txt")), &report);
    (!output.status.success()).then(|| {
        format!(
            "schemathesis found {name} answering otherwise than its OpenAPI document says \
             (exit {}):\n{report}",
            output.status
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_apis_answer_exactly_what_their_openapi_documents_say() {
    let env = TestEnv::new("contract").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();
    // Settlement imports fetch reports from the gateway: the sandbox answers them.
    let _sandbox = env.start_sandbox(&api.command_url, &[]).await;
    let log_dir = repo_root().join("target").join("e2e-logs").join("contract");
    std::fs::create_dir_all(&log_dir).expect("create the contract log directory");
    let customer = env.jwt("contract-customer", "customer");

    // All three runs, then every report that failed (one broken document must not hide another).
    let failures: Vec<String> = [
        run("command-api-staff", &api.command_url, ADMIN_KEY, &log_dir).await,
        run("query-api-staff", &api.query_url, ADMIN_KEY, &log_dir).await,
        run("query-api-customer", &api.query_url, &customer, &log_dir).await,
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
