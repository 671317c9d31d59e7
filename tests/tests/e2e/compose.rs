//! infra/docker-compose.yml checked against the code, since no Docker engine runs here: every
//! role of `waybill serve` (and every projector view) is deployed, every Waybill service's
//! merged environment (compose.env.example, then the service's `environment`, YAML merge keys
//! applied) passes `waybill config check --role <its role>`, and what the services refer to
//! (dependencies, volumes, profiles, the NATS cluster) exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;
use waybill_e2e::waybill_binary;

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra")
}

/// The compose file with its merge keys (`<<: *anchor`) applied, as Compose reads it.
fn compose() -> Value {
    let text = std::fs::read_to_string(infra().join("docker-compose.yml")).expect("read compose");
    let mut value: Value = serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    value.apply_merge().expect("merge keys apply");
    value
}

/// Compose's interpolation of one string: `$$` is a dollar, `${X:-default}` / `${X-default}`
/// take the default (the file must start with no variables from the shell), anything else
/// (`${X}`, `${X:?message}`) needs the shell and is refused.
fn interpolate(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text}"))?;
            let expr = &body[..end];
            let default = expr
                .split_once(":-")
                .or_else(|| expr.split_once('-'))
                .map(|(_, d)| d)
                .ok_or_else(|| format!("{text}: ${{{expr}}} needs a shell variable"))?;
            out.push_str(default);
            rest = &body[end + 1..];
        } else {
            return Err(format!("{text}: bare $ needs a shell variable"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// `KEY=VALUE` lines of an env file (comments and blanks skipped).
fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The environment a service's container gets: its env files (compose.env, read from the
/// example that is in the repository), then its own `environment` on top.
fn service_env(service: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if let Some(files) = service.get("env_file").and_then(Value::as_sequence) {
        for file in files {
            let name = scalar(file);
            assert_eq!(name, "compose.env", "services read the one secrets file");
            env.extend(env_file(&infra().join("compose.env.example")));
        }
    }
    if let Some(vars) = service.get("environment").and_then(Value::as_mapping) {
        for (k, v) in vars {
            let value = interpolate(&scalar(v)).unwrap_or_else(|e| panic!("{e}"));
            env.insert(scalar(k), value);
        }
    }
    env
}

/// The `Possible values:` listed under `marker` in a help text.
fn possible_values(help: &str, marker: &str) -> BTreeSet<String> {
    let start = help
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in help"));
    let block = &help[start..];
    let block = &block[block.find("Possible values:").expect("possible values")..];
    block
        .lines()
        .skip(1)
        .map(str::trim)
        .take_while(|l| l.starts_with("- "))
        .filter_map(|l| l.strip_prefix("- ")?.split(':').next())
        .map(str::to_owned)
        .collect()
}

/// Runs `waybill config check --role <role>` in exactly `env`.
fn config_check(role: &str, env: &BTreeMap<String, String>) -> std::process::Output {
    std::process::Command::new(waybill_binary())
        .args(["config", "check", "--role", role])
        .env_clear()
        .envs(env)
        .output()
        .expect("run waybill config check")
}

#[test]
fn every_compose_service_runs_a_real_role_with_a_valid_configuration() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<String> = services.keys().map(scalar).collect();
    let declared_volumes: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .map(|m| m.keys().map(scalar).collect())
        .unwrap_or_default();

    let help = std::process::Command::new(waybill_binary())
        .args(["serve", "--help"])
        .output()
        .expect("waybill serve --help");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let mut roles_to_deploy = possible_values(&help, "[ROLE]");
    roles_to_deploy.remove("all");
    let mut views_to_deploy = possible_values(&help, "--view");
    assert!(roles_to_deploy.len() >= 8 && views_to_deploy.len() >= 4);

    let mut checked = 0;
    for (name, service) in services {
        let name = scalar(name);
        for dependency in match &service["depends_on"] {
            Value::Mapping(m) => m.keys().map(scalar).collect::<Vec<_>>(),
            Value::Sequence(s) => s.iter().map(scalar).collect(),
            _ => Vec::new(),
        } {
            assert!(
                names.contains(&dependency),
                "{name} depends on unknown {dependency}"
            );
        }
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let volume = scalar(volume);
            let source = volume.split(':').next().unwrap_or_default();
            if source.starts_with("./") {
                // A file of the repository, relative to the compose file.
                assert!(
                    infra().join(source).is_file(),
                    "{name} mounts {source}, which is not in infra/"
                );
                continue;
            }
            assert!(
                declared_volumes.contains(source),
                "{name} mounts undeclared volume {source}"
            );
        }
        let image = interpolate(&scalar(&service["image"])).expect("image");
        if !image.starts_with("waybill:") {
            continue;
        }
        let command: Vec<String> = service["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} has a command list"))
            .iter()
            .map(scalar)
            .collect();
        let role = match command.as_slice() {
            [migrate] if migrate == "migrate" => "all".to_owned(),
            [serve, role] if serve == "serve" => role.clone(),
            other => panic!("{name} runs {other:?}, not `serve <role>` or `migrate`"),
        };
        let env = service_env(service);
        for needed in [
            "DATABASE_URL",
            "NATS_URL",
            "REDIS_URL",
            "WAYBILL_API_KEYS",
            "WAYBILL_TRACKING_SECRET",
        ] {
            assert!(env.contains_key(needed), "{name} lost {needed}");
        }
        let output = config_check(&role, &env);
        assert!(
            output.status.success(),
            "{name}: waybill config check --role {role} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        roles_to_deploy.remove(&role);
        if role == "projector" {
            let views = env
                .get("WAYBILL_PROJECTOR_VIEWS")
                .unwrap_or_else(|| panic!("{name} names its views"));
            for view in views.split(',') {
                views_to_deploy.remove(view.trim());
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} Waybill services");
    assert!(
        roles_to_deploy.is_empty(),
        "roles with no service: {roles_to_deploy:?}"
    );
    assert!(
        views_to_deploy.is_empty(),
        "views with no projector: {views_to_deploy:?}"
    );

    // The engines: a 3-node NATS cluster every client knows all of, and the rest.
    let nats: Vec<&str> = ["nats1", "nats2", "nats3"]
        .into_iter()
        .filter(|n| names.contains(*n))
        .collect();
    assert_eq!(nats.len(), 3, "a 3-node NATS cluster");
    for node in &nats {
        let command: Vec<String> = services[*node]["command"]
            .as_sequence()
            .expect("nats command")
            .iter()
            .map(scalar)
            .collect();
        assert!(
            command.contains(&"--cluster_name".to_owned()) && command.contains(&"-js".to_owned())
        );
    }
    let nats_url = &service_env(&services["commands"])["NATS_URL"];
    for node in &nats {
        assert!(
            nats_url.contains(&format!("{node}:4222")),
            "NATS_URL lacks {node}"
        );
    }
    for engine in ["postgres", "redis", "clickhouse", "opensearch"] {
        assert!(names.contains(engine), "no {engine} service");
    }
    let cockroach: Vec<&String> = names
        .iter()
        .filter(|n| {
            services[n.as_str()]["profiles"]
                .as_sequence()
                .is_some_and(|p| p.iter().any(|p| scalar(p) == "cockroach"))
        })
        .collect();
    assert!(
        cockroach.len() >= 3,
        "a cockroach profile with a cluster: {cockroach:?}"
    );

    // The ClickHouse cluster profile: ZooKeeper and two replicas whose configuration names the
    // cluster, ZooKeeper and both replicas; Waybill's settings for it pass the config check.
    let in_profile = |profile: &str| -> Vec<String> {
        names
            .iter()
            .filter(|n| {
                services[n.as_str()]["profiles"]
                    .as_sequence()
                    .is_some_and(|p| p.iter().any(|p| scalar(p) == profile))
            })
            .cloned()
            .collect()
    };
    let clickhouse_cluster = in_profile("clickhouse-cluster");
    assert!(
        clickhouse_cluster.contains(&"zookeeper".to_owned()),
        "{clickhouse_cluster:?}"
    );
    let replicas: Vec<&String> = clickhouse_cluster
        .iter()
        .filter(|n| {
            interpolate(&scalar(&services[n.as_str()]["image"]))
                .is_ok_and(|i| i.starts_with("clickhouse/"))
        })
        .collect();
    assert_eq!(
        replicas.len(),
        2,
        "two ClickHouse replicas: {clickhouse_cluster:?}"
    );
    for replica in &replicas {
        let config = services[replica.as_str()]["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(scalar)
            .find(|v| v.contains("config.d/"))
            .unwrap_or_else(|| panic!("{replica} mounts a config.d file"));
        let file = infra().join(config.split(':').next().unwrap_or_default());
        let xml = std::fs::read_to_string(&file).expect("the replica's configuration");
        for needed in [
            "<waybill>",
            "<host>zookeeper</host>",
            "clickhouse-r1",
            "clickhouse-r2",
            "from_env=\"CLICKHOUSE_REPLICA\"",
        ] {
            assert!(xml.contains(needed), "{} lacks {needed}", file.display());
        }
        let env = service_env(&services[replica.as_str()]);
        assert_eq!(env.get("CLICKHOUSE_REPLICA"), Some(*replica));
    }
    let mut clustered = service_env(&services["projector-analytics"]);
    clustered.insert(
        "WAYBILL_CLICKHOUSE_URL".into(),
        replicas
            .iter()
            .map(|r| format!("http://{r}:8123"))
            .collect::<Vec<_>>()
            .join(","),
    );
    clustered.insert("WAYBILL_CLICKHOUSE_CLUSTER".into(), "waybill".into());
    let output = config_check("projector", &clustered);
    assert!(
        output.status.success(),
        "the analytics projector on the ClickHouse cluster profile:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The secrets file itself is never in the repository; its example is, with placeholders.
#[test]
fn compose_secrets_come_from_an_ignored_file_with_an_example() {
    let root = infra().join("..");
    let ignored = std::fs::read_to_string(root.join(".gitignore")).expect(".gitignore");
    assert!(ignored.lines().any(|l| l.trim() == "/infra/compose.env"));
    let example = env_file(&infra().join("compose.env.example"));
    for secret in [
        "WAYBILL_API_KEYS",
        "WAYBILL_TRACKING_SECRET",
        "WAYBILL_JWT_SECRET",
        "WAYBILL_PII_MASTER_KEY",
        "POSTGRES_PASSWORD",
        "CLICKHOUSE_PASSWORD",
    ] {
        let value = example
            .get(secret)
            .unwrap_or_else(|| panic!("{secret} in the example"));
        assert!(value.contains("change-me"), "{secret} is a placeholder");
    }
}

/// The check the compose test relies on does refuse: a service that lost its secrets or has a
/// malformed setting fails, naming each one.
#[test]
fn config_check_names_what_a_service_lost() {
    let compose = compose();
    let mut env = service_env(&compose["services"]["query"]);
    env.remove("WAYBILL_API_KEYS");
    env.insert("WAYBILL_PARTITIONS".into(), "eight".into());
    env.insert("REDIS_URL".into(), "not a url".into());
    let output = config_check("query", &env);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for named in ["WAYBILL_API_KEYS", "WAYBILL_PARTITIONS", "REDIS_URL"] {
        assert!(stderr.contains(named), "{named} not named in:\n{stderr}");
    }
}

/// A served role that reads or writes events does not start without the master key of
/// personal data (a key generated per process would not be shared, and would be lost with its
/// directory): it exits at once naming the setting and the developer switch, and generates
/// nothing. `config check` names it too.
#[tokio::test]
async fn serve_refuses_a_role_without_the_master_key_of_personal_data() {
    let compose = compose();
    let mut env = service_env(&compose["services"]["projector-tracking"]);
    env.remove("WAYBILL_PII_MASTER_KEY");
    let secrets = std::env::temp_dir().join(format!("waybill-pii-{}", uuid::Uuid::now_v7()));
    env.insert("WAYBILL_SECRETS_DIR".into(), secrets.display().to_string());
    let check = config_check("projector", &env);
    assert!(!check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("WAYBILL_PII_MASTER_KEY"), "{stderr}");

    let child = tokio::process::Command::new(waybill_binary())
        .args(["serve", "projector"])
        .env_clear()
        .envs(&env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start waybill serve projector");
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("serve projector exits instead of starting without the master key")
        .expect("its output");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for named in ["WAYBILL_PII_MASTER_KEY", "WAYBILL_ALLOW_GENERATED_PII_KEY"] {
        assert!(stderr.contains(named), "{named} not named in:\n{stderr}");
    }
    assert!(
        !secrets.join("pii-master-key").exists(),
        "a master key was generated"
    );
}

#[test]
fn interpolation_follows_compose() {
    assert_eq!(interpolate("${RUST_LOG:-info}").as_deref(), Ok("info"));
    assert_eq!(interpolate("a$$b").as_deref(), Ok("a$b"));
    assert!(interpolate("${SECRET:?set it}").is_err());
    assert!(interpolate("${SECRET}").is_err());
}
