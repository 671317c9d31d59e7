//! Waybill against a NATS server that wants TLS (a CA of the operator's own) and a password:
//! with `NATS_TLS_CA_FILE`, `NATS_USER` and `NATS_PASSWORD` the relay publishes and the projector
//! consumes; with a wrong password, or without the CA, the relay refuses to start and says why.

use waybill_e2e::{eventually, sample_order, Api, Role, SecureNats, TestEnv, WaybillProcess};

/// Starts `serve relay` with `extra` and waits for it to exit; returns its log.
async fn refused_relay(env: &TestEnv, extra: &[(&str, &str)], label: &str) -> String {
    let log_dir = env.log_dir.join(label);
    std::fs::create_dir_all(&log_dir).expect("log directory");
    let mut relay = WaybillProcess::spawn(Role::Relay, env.process_env(extra), &log_dir);
    let status = eventually(
        &format!("the relay ({label}) to give up"),
        std::time::Duration::from_secs(60),
        || {
            let status = relay.exit_status();
            async move { status.ok_or_else(|| "still running".to_owned()) }
        },
    )
    .await;
    assert!(
        !status.success(),
        "the relay ({label}) exited with {status}"
    );
    relay.log_tail()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_projector_reach_nats_over_tls_with_a_password_and_refuse_a_wrong_one() {
    let mut env = TestEnv::new("nats_secured").await;
    let Some(nats) = SecureNats::start(&env.log_dir.join("nats")).await else {
        return;
    };
    env.nats_url = nats.url();
    let ca = nats.ca_file.display().to_string();
    let secured = [
        ("NATS_USER", nats.user.as_str()),
        ("NATS_PASSWORD", nats.password.as_str()),
        ("NATS_TLS_CA_FILE", ca.as_str()),
        ("WAYBILL_PROJECTOR_VIEWS", "tracking"),
    ];
    let commands = env.start(Role::Commands).await;
    let _relay = env.start_with(Role::Relay, &secured).await;
    let _projector = env.start_with(Role::Projector, &secured).await;
    let query = env.start(Role::Query).await;
    let api = Api::new(&commands.command_url(), &query.query_url());

    let placed = api.place_order("TLS-1-place", &sample_order("TLS-1")).await;
    assert_eq!(placed.status, 201, "{}", placed.describe());
    let order_id = placed.json()["order_id"]
        .as_str()
        .expect("order_id")
        .to_owned();
    eventually(
        "the order's tracking view, through the secured NATS",
        waybill_e2e::DEFAULT_DEADLINE,
        || async {
            match env.tracking_hash(&order_id).await {
                Some((1, view)) => Ok(view),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    let wrong_password = refused_relay(
        &env,
        &[
            ("NATS_USER", nats.user.as_str()),
            ("NATS_PASSWORD", "not-the-password"),
            ("NATS_TLS_CA_FILE", ca.as_str()),
        ],
        "wrong-password",
    )
    .await;
    assert!(
        wrong_password.to_lowercase().contains("authorization"),
        "{wrong_password}"
    );
    let no_ca = refused_relay(
        &env,
        &[
            ("NATS_USER", nats.user.as_str()),
            ("NATS_PASSWORD", nats.password.as_str()),
        ],
        "unknown-ca",
    )
    .await;
    assert!(no_ca.contains("connecting to NATS"), "{no_ca}");
}
