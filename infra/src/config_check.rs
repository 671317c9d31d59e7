//! `waybill config check --role <role>`: validates one role's configuration without connecting
//! to anything, and names every setting that is missing or malformed.
//!
//! It reads the settings the way the roles do — the same clap definitions in
//! [`crate::config`] (environment variable names, value parsers, defaults) — but parses each
//! variable on its own, so one bad value does not hide the next. On top of the parsers it
//! checks what a multi-process deployment needs: connection URLs that parse, certificate files
//! that exist, and every secret the role uses set explicitly (a secret left unset is generated
//! per process, so two processes of one deployment would disagree).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::str::FromStr;

use clap::CommandFactory;

use crate::config::{Cli, Role};

/// One problem with one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The environment variable.
    pub setting: String,
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

/// What a role reads beyond its parsers' say-so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A Postgres URL (TLS files, if named, must exist).
    Postgres,
    /// A list of NATS servers.
    Nats,
    Redis,
    /// An http(s) URL.
    HttpUrl,
    /// One http(s) URL or a comma-separated list (a cluster's replicas).
    HttpUrls,
    /// A PEM file holding at least one certificate, when set.
    CaFile,
    /// Must be set explicitly, never generated per process.
    Secret,
    /// `key:client_id:role,...`.
    ApiKeys,
    /// Set explicitly like a [`Need::Secret`], and usable as a sealing key (the webhook sealing
    /// key, the master key of personal data): 64 hex digits (32 bytes) or a passphrase of at
    /// least 32 characters.
    SealingKey,
    /// A file that must exist and parse, when set.
    RoutingFile,
    ReturnsFile,
}

/// The settings each role reads, with what each must be. Optional URLs (e.g.
/// `ELASTICSEARCH_URL`) are checked when set.
fn needs(role: Role) -> Vec<(&'static str, Need, bool)> {
    use Need::*;
    // (variable, need, required)
    let database = ("DATABASE_URL", Postgres, true);
    let api_keys = ("WAYBILL_API_KEYS", ApiKeys, true);
    let tracking = ("WAYBILL_TRACKING_SECRET", Secret, true);
    let jwt = ("WAYBILL_JWT_SECRET", Secret, true);
    let gateway = ("WAYBILL_PAYMENT_GATEWAY_URL", HttpUrl, true);
    let payment_key = ("WAYBILL_PAYMENT_API_KEY", Secret, true);
    let payment_hook = ("WAYBILL_PAYMENT_WEBHOOK_SECRET", Secret, true);
    let logistics_hook = ("WAYBILL_LOGISTICS_WEBHOOK_SECRET", Secret, true);
    let clickhouse = ("WAYBILL_CLICKHOUSE_URL", HttpUrls, true);
    let clickhouse_ca = ("WAYBILL_CLICKHOUSE_CA_FILE", CaFile, false);
    let redis = ("REDIS_URL", Redis, true);
    let nats = ("NATS_URL", Nats, true);
    let elastic = ("ELASTICSEARCH_URL", HttpUrl, false);
    let jwks = ("WAYBILL_JWKS_URL", HttpUrl, false);
    let routing = ("WAYBILL_ROUTING_CONFIG", RoutingFile, false);
    let returns = ("WAYBILL_RETURNS_POLICY", ReturnsFile, false);
    let sealing = ("WAYBILL_WEBHOOK_SEALING_KEY", SealingKey, true);
    // Every role that reads or writes events with personal fields (`secrets::serves_personal_data`).
    let pii = ("WAYBILL_PII_MASTER_KEY", SealingKey, true);
    match role {
        Role::Commands => vec![
            database,
            api_keys,
            tracking,
            jwt,
            jwks,
            gateway,
            payment_key,
            payment_hook,
            logistics_hook,
            routing,
            returns,
            sealing,
            pii,
        ],
        Role::Checkout => vec![database, gateway, payment_key, returns, pii],
        Role::Fulfillment => vec![
            database,
            ("WAYBILL_WMS_URL", HttpUrl, true),
            ("WAYBILL_CARRIER_URL", HttpUrl, true),
            logistics_hook,
            routing,
            returns,
            pii,
        ],
        Role::Relay => vec![database, nats],
        Role::Projector => vec![
            database,
            nats,
            redis,
            clickhouse,
            clickhouse_ca,
            elastic,
            tracking,
            ("WAYBILL_PUBLIC_TRACKING_URL", HttpUrl, true),
            pii,
        ],
        Role::Query => vec![
            database,
            redis,
            clickhouse,
            clickhouse_ca,
            elastic,
            api_keys,
            tracking,
            jwt,
            jwks,
            pii,
        ],
        Role::PaymentSandbox => vec![
            payment_key,
            payment_hook,
            ("WAYBILL_PAYMENT_WEBHOOK_URL", HttpUrl, true),
        ],
        Role::SmsSandbox => vec![],
        Role::LogisticsSandbox => vec![
            logistics_hook,
            ("WAYBILL_LOGISTICS_WEBHOOK_BASE", HttpUrl, true),
        ],
        Role::Webhooks => vec![database, sealing, pii],
        Role::All => {
            let mut all: Vec<(&'static str, Need, bool)> = Vec::new();
            for role in [
                Role::Commands,
                Role::Checkout,
                Role::Fulfillment,
                Role::Relay,
                Role::Projector,
                Role::Query,
                Role::Webhooks,
            ] {
                for need in needs(role) {
                    if !all.iter().any(|(name, ..)| *name == need.0) {
                        all.push(need);
                    }
                }
            }
            all
        }
    }
}

/// Every problem with `role`'s configuration in `env` (variable → value), in the order of the
/// CLI's settings then the role's needs; empty when it is valid.
pub fn check(role: Role, env: &HashMap<String, String>) -> Vec<Finding> {
    let command = Cli::command();
    let mut findings = Vec::new();
    let mut defaults: HashMap<String, String> = HashMap::new();
    // Each set variable through its own parser.
    for arg in command.get_arguments() {
        let Some(name) = arg.get_env().and_then(OsStr::to_str) else {
            continue;
        };
        if let Some(default) = arg.get_default_values().first().and_then(|d| d.to_str()) {
            defaults.insert(name.to_owned(), default.to_owned());
        }
        let Some(value) = env.get(name) else {
            continue;
        };
        // The argument alone, fed the variable's value as its flag: clap's own parsing
        // (types, ranges, enums, lists) with nothing else on the line to stop at first.
        let Some(long) = arg.get_long() else {
            continue;
        };
        let mut alone = arg.clone().env(None::<&'static str>).global(false);
        // A switch (`--projector-partitioned`) takes no value on the command line; from the
        // environment clap gives the variable's value to the switch's own parser.
        if !arg.get_action().takes_values() {
            alone = alone.action(clap::ArgAction::Set);
        }
        let single = clap::Command::new("waybill")
            .no_binary_name(true)
            .arg(alone);
        if let Err(e) = single.try_get_matches_from([format!("--{long}={value}")]) {
            findings.push(Finding {
                setting: name.to_owned(),
                problem: parser_message(&e, arg.is_hide_env_values_set(), value),
            });
        }
    }
    // What the role needs of them.
    for (name, need, required) in needs(role) {
        let value = env
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let value = match (value, need) {
            (Some(value), _) => value,
            (None, Need::Secret | Need::SealingKey | Need::ApiKeys) if required => {
                findings.push(Finding {
                    setting: name.to_owned(),
                    problem: "not set: each process would generate its own, so the processes \
                              of one deployment would not agree; set it from your secret store"
                        .to_owned(),
                });
                continue;
            }
            (None, _) => match defaults.get(name) {
                Some(default) => default.clone(),
                None if required => {
                    findings.push(Finding {
                        setting: name.to_owned(),
                        problem: "not set".to_owned(),
                    });
                    continue;
                }
                None => continue,
            },
        };
        if let Err(problem) = validate(need, &value) {
            findings.push(Finding {
                setting: name.to_owned(),
                problem,
            });
        }
    }
    findings.dedup();
    findings
}

/// Clap's message for a refused value, without the value itself when it is a secret.
fn parser_message(error: &clap::Error, secret: bool, value: &str) -> String {
    let rendered = error.render().to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or("invalid value")
        .trim_start_matches("error: ")
        .to_owned();
    if secret {
        first.replace(value, "<hidden>")
    } else {
        first
    }
}

fn validate(need: Need, value: &str) -> Result<(), String> {
    match need {
        Need::Postgres => postgres(value),
        Need::Nats => nats(value),
        Need::Redis => waybill_projectors::RedisTarget::parse(value, false)
            .map(drop)
            .map_err(|e| format!("not a Redis URL: {e}")),
        Need::HttpUrl => http_url(value),
        Need::HttpUrls => value.split(',').map(str::trim).try_for_each(http_url),
        Need::CaFile => waybill_projectors::warehouse::replicas::TlsTrust::ca_file(value)
            .client_config()
            .map(drop),
        Need::Secret => Ok(()),
        Need::SealingKey => waybill_write_side::subscriptions::seal::SealingKey::parse(value)
            .map(drop)
            .map_err(|_| "malformed: expected 64 hex digits or at least 32 characters".to_owned()),
        Need::ApiKeys => waybill_schemas::api_keys::ApiKeys::parse(value)
            .map(drop)
            .map_err(|e| format!("malformed: {e} (expected key:client_id:role,...)")),
        Need::RoutingFile => file(
            value,
            waybill_write_side::domain::fulfillment::RoutingConfig::parse,
        ),
        Need::ReturnsFile => file(
            value,
            waybill_write_side::domain::returns::ReturnsPolicy::parse,
        ),
    }
}

fn postgres(value: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "scheme {} is not postgres:// or postgresql://",
            url.scheme()
        ));
    }
    sqlx::postgres::PgConnectOptions::from_str(value)
        .map_err(|e| format!("not a Postgres URL: {e}"))?;
    if url.path().trim_start_matches('/').is_empty() {
        return Err("names no database (postgres://host:port/<database>)".to_owned());
    }
    for (key, path) in url.query_pairs() {
        if matches!(key.as_ref(), "sslrootcert" | "sslcert" | "sslkey")
            && !std::path::Path::new(path.as_ref()).is_file()
        {
            return Err(format!("{key} file {path} does not exist"));
        }
    }
    Ok(())
}

fn nats(value: &str) -> Result<(), String> {
    let servers: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        return Err("names no server".to_owned());
    }
    for server in servers {
        let with_scheme = if server.contains("://") {
            server.to_owned()
        } else {
            format!("nats://{server}")
        };
        let url = reqwest::Url::parse(&with_scheme)
            .map_err(|e| format!("{server} is not a NATS server address: {e}"))?;
        if !matches!(url.scheme(), "nats" | "tls" | "ws" | "wss") || url.host_str().is_none() {
            return Err(format!(
                "{server} is not a NATS server address (nats://host:port)"
            ));
        }
    }
    Ok(())
}

fn http_url(value: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{value} is not an http(s) URL"));
    }
    Ok(())
}

fn file<T, E: std::fmt::Display>(
    path: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse(&text)
        .map(drop)
        .map_err(|e| format!("{path} does not parse: {e}"))
}

/// Runs the check over this process's environment; prints the findings, or that the
/// configuration is valid. True when valid.
pub fn run(role: Role) -> bool {
    let env: HashMap<String, String> = std::env::vars().collect();
    let findings = check(role, &env);
    let name = role_name(role);
    if findings.is_empty() {
        println!("configuration of role {name} is valid");
        return true;
    }
    eprintln!(
        "configuration of role {name} has {} problem(s):",
        findings.len()
    );
    for finding in &findings {
        eprintln!("  {finding}");
    }
    false
}

/// The role as written on the command line.
pub fn role_name(role: Role) -> String {
    use clap::ValueEnum;
    role.to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// `config check --role <role>` in `args`, for when the whole command line does not parse
/// (a malformed variable makes clap stop at the first one): the check then runs anyway and
/// names all of them.
pub fn requested_role(args: &[String]) -> Option<Role> {
    use clap::ValueEnum;
    let config = args.iter().position(|a| a == "config")?;
    if args.get(config + 1).map(String::as_str) != Some("check") {
        return None;
    }
    let rest = &args[config + 2..];
    let value = rest.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--role=")
            .map(str::to_owned)
            .or_else(|| (a == "--role").then(|| rest.get(i + 1).cloned()).flatten())
    })?;
    Role::from_str(&value, true).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A complete, valid configuration of every role.
    fn valid() -> HashMap<String, String> {
        [
            ("DATABASE_URL", "postgres://waybill:pw@db:5432/waybill"),
            ("NATS_URL", "nats://n1:4222,nats://n2:4222"),
            ("REDIS_URL", "redis://redis:6379"),
            ("WAYBILL_CLICKHOUSE_URL", "http://clickhouse:8123"),
            ("WAYBILL_API_KEYS", "k1:checkout:service,k2:desk:agent"),
            ("WAYBILL_TRACKING_SECRET", "t"),
            ("WAYBILL_JWT_SECRET", "j"),
            ("WAYBILL_PAYMENT_GATEWAY_URL", "https://gateway.example"),
            ("WAYBILL_PAYMENT_API_KEY", "p"),
            ("WAYBILL_PAYMENT_WEBHOOK_SECRET", "w"),
            ("WAYBILL_LOGISTICS_WEBHOOK_SECRET", "l"),
            ("WAYBILL_WMS_URL", "http://logistics:8091"),
            ("WAYBILL_CARRIER_URL", "http://logistics:8091"),
            (
                "WAYBILL_PAYMENT_WEBHOOK_URL",
                "http://commands:8080/v1/webhooks/payments",
            ),
            ("WAYBILL_LOGISTICS_WEBHOOK_BASE", "http://commands:8080"),
            ("WAYBILL_PARTITIONS", "16"),
            (
                "WAYBILL_WEBHOOK_SEALING_KEY",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            ),
            (
                "WAYBILL_PII_MASTER_KEY",
                "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn settings_named(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.setting.as_str()).collect()
    }

    #[test]
    fn a_complete_configuration_is_valid_for_every_role() {
        use clap::ValueEnum;
        for role in Role::value_variants() {
            assert_eq!(check(*role, &valid()), vec![], "{role:?}");
        }
    }

    #[test]
    fn every_malformed_setting_is_named_not_only_the_first() {
        let mut env = valid();
        env.insert("WAYBILL_PARTITIONS".into(), "many".into());
        env.insert("WAYBILL_DB_MAX_CONNECTIONS".into(), "-3".into());
        env.insert("WAYBILL_PROJECTOR_VIEWS".into(), "tracking,colours".into());
        env.insert("DATABASE_URL".into(), "mysql://db/waybill".into());
        env.insert("REDIS_URL".into(), "redis//nope".into());
        env.insert("WAYBILL_API_KEYS".into(), "only-a-key".into());
        env.insert("WAYBILL_WEBHOOK_SEALING_KEY".into(), "short".into());
        let findings = check(Role::All, &env);
        let named = settings_named(&findings);
        for setting in [
            "WAYBILL_PARTITIONS",
            "WAYBILL_DB_MAX_CONNECTIONS",
            "WAYBILL_PROJECTOR_VIEWS",
            "DATABASE_URL",
            "REDIS_URL",
            "WAYBILL_API_KEYS",
            "WAYBILL_WEBHOOK_SEALING_KEY",
        ] {
            assert!(
                named.contains(&setting),
                "{setting} not named in {findings:?}"
            );
        }
        assert_eq!(findings.len(), 7, "{findings:?}");
    }

    #[test]
    fn a_switch_set_from_the_environment_takes_a_boolean_word() {
        let mut env = valid();
        for word in ["true", "false"] {
            env.insert("WAYBILL_PROJECTOR_PARTITIONED".into(), word.into());
            assert_eq!(check(Role::Projector, &env), vec![], "{word}");
        }
        env.insert("WAYBILL_PROJECTOR_PARTITIONED".into(), "treu".into());
        assert_eq!(
            settings_named(&check(Role::Projector, &env)),
            vec!["WAYBILL_PROJECTOR_PARTITIONED"]
        );
    }

    #[test]
    fn missing_secrets_are_named_per_role() {
        let mut env = valid();
        env.remove("WAYBILL_TRACKING_SECRET");
        env.remove("WAYBILL_PAYMENT_API_KEY");
        assert_eq!(
            settings_named(&check(Role::Query, &env)),
            vec!["WAYBILL_TRACKING_SECRET"]
        );
        assert_eq!(
            settings_named(&check(Role::Checkout, &env)),
            vec!["WAYBILL_PAYMENT_API_KEY"]
        );
        // The relay uses neither.
        assert_eq!(check(Role::Relay, &env), vec![]);
    }

    #[test]
    fn the_master_key_of_personal_data_is_named_by_every_role_that_reads_or_writes_events() {
        use clap::ValueEnum;
        let mut env = valid();
        env.remove("WAYBILL_PII_MASTER_KEY");
        for role in Role::value_variants() {
            let named = check(*role, &env)
                .iter()
                .any(|f| f.setting == "WAYBILL_PII_MASTER_KEY");
            assert_eq!(
                named,
                crate::secrets::serves_personal_data(*role),
                "{role:?}"
            );
        }
        env.insert("WAYBILL_PII_MASTER_KEY".into(), "too-short".into());
        let findings = check(Role::Projector, &env);
        assert_eq!(settings_named(&findings), vec!["WAYBILL_PII_MASTER_KEY"]);
        assert!(findings[0].problem.contains("malformed"), "{findings:?}");
        assert!(!findings[0].problem.contains("too-short"), "{findings:?}");
    }

    #[test]
    fn unset_urls_fall_back_to_the_defaults_the_roles_use() {
        let mut env = valid();
        env.remove("NATS_URL");
        env.remove("REDIS_URL");
        env.remove("DATABASE_URL");
        assert_eq!(check(Role::Projector, &env), vec![]);
    }

    #[test]
    fn tls_files_must_exist_and_secrets_are_not_echoed() {
        let mut env = valid();
        env.insert(
            "DATABASE_URL".into(),
            "postgres://db/waybill?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem".into(),
        );
        env.insert("NATS_URL".into(), "http://n1:4222".into());
        let findings = check(Role::Relay, &env);
        assert_eq!(settings_named(&findings), vec!["DATABASE_URL", "NATS_URL"]);
        assert!(findings[0].problem.contains("sslrootcert"), "{findings:?}");

        let mut env = valid();
        env.insert("WAYBILL_QUERY_RATE_LIMIT".into(), "s3cr3t-looking".into());
        let findings = check(Role::Query, &env);
        assert_eq!(settings_named(&findings), vec!["WAYBILL_QUERY_RATE_LIMIT"]);
    }

    #[test]
    fn the_role_is_found_on_a_command_line_that_does_not_parse() {
        let args = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            requested_role(&args("waybill config check --role query")),
            Some(Role::Query)
        );
        assert_eq!(
            requested_role(&args("waybill config check --role=payment-sandbox")),
            Some(Role::PaymentSandbox)
        );
        assert_eq!(requested_role(&args("waybill serve query")), None);
        assert_eq!(
            requested_role(&args("waybill config check --role nope")),
            None
        );
    }
}
