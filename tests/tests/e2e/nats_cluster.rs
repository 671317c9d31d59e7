//! Waybill on a 3-node JetStream cluster (nats-server 2.15) with R3 streams: orders keep flowing
//! while the event stream's leader is killed with -9 and started again, and afterwards every
//! order's events are in the stream exactly once and the tracking view equals the event log.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use waybill_e2e::{
    assert_views_equal_the_log, eventually, produce, Api, Flow, NatsCluster, Role, TestEnv,
    WaybillProcess,
};
use waybill_write_side::event_store::retry;

/// An election takes seconds, and redelivery of what a dead leader never confirmed waits for
/// the consumer's ack wait (30 s): give the pipeline that long and more.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(120);

/// Waits until the stream holds at least `count` messages.
async fn published_at_least(env: &TestEnv, count: u64, what: &str) -> u64 {
    eventually(what, FAILOVER_DEADLINE, || async {
        let published = env.stream_message_count().await;
        if published >= count {
            Ok(published)
        } else {
            Err(format!("{published} of {count} published"))
        }
    })
    .await
}

fn still_running(process: &mut WaybillProcess) {
    assert!(
        process.exit_status().is_none(),
        "the {} process exited during the election: {:?}\n{}",
        process.role().name(),
        process.exit_status(),
        process.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_leader_killed_mid_flow_loses_and_duplicates_nothing_on_an_r3_cluster() {
    let mut env = TestEnv::new("nats_cluster").await;
    let Some(mut cluster) = NatsCluster::start(&env.log_dir.join("nats-cluster")).await else {
        return;
    };
    env.nats_url = cluster.url();
    let cluster_settings = [
        ("WAYBILL_NATS_REPLICAS", "3"),
        ("WAYBILL_PROJECTOR_VIEWS", "tracking"),
    ];
    let commands = env.start_with(Role::Commands, &cluster_settings).await;
    let mut relay = env.start_with(Role::Relay, &cluster_settings).await;
    let mut projector = env.start_with(Role::Projector, &cluster_settings).await;
    let query = env.start_with(Role::Query, &cluster_settings).await;
    let api = Api::new(&commands.command_url(), &query.query_url());

    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..2)
        .map(|worker| {
            // A steady flow rather than a flood: the point is orders in flight at the kill.
            let flow = Flow {
                label: "NATS-R3",
                cancel_every: 3,
                pause: Duration::from_millis(20),
            };
            tokio::spawn(produce(api.clone(), flow, worker, Arc::clone(&stop)))
        })
        .collect();
    published_at_least(&env, 20, "the relay to publish 20 events").await;

    // The relay created the stream and the projector the dead letters, both R3 as configured.
    let js = env.jetstream().await;
    let week = Duration::from_secs(7 * 24 * 3600);
    for (name, max_age) in [
        (env.stream.clone(), week),
        (format!("{}_DLQ", env.stream), 2 * week),
    ] {
        let mut stream = js.get_stream(&name).await.expect("stream exists");
        let info = stream.info().await.expect("stream info");
        assert_eq!(info.config.num_replicas, 3, "replicas of {name}");
        assert_eq!(info.config.max_age, max_age, "default retention of {name}");
    }

    // Kill the stream's leader mid-flow; the other two elect a new one.
    let leader = cluster.stream_leader(&env.stream).await;
    let before_kill = env.stream_message_count().await;
    cluster.kill_hard(&leader);
    let new_leader = cluster.stream_leader(&env.stream).await;
    assert_ne!(new_leader, leader, "a surviving node leads the stream");
    let after_election = published_at_least(
        &env,
        before_kill + 20,
        "events to flow again on the new leader",
    )
    .await;
    cluster.restart(&leader).await;
    published_at_least(
        &env,
        after_election + 20,
        "events to keep flowing after the old leader is back",
    )
    .await;

    stop.store(true, Ordering::Relaxed);
    let mut produced = Vec::new();
    for producer in producers {
        produced.extend(producer.await.expect("producer task"));
    }
    let expected_events: i64 = produced.iter().map(|order| order.versions).sum();
    assert_eq!(
        env.count_rows("events").await,
        expected_events,
        "event store vs accepted commands"
    );

    // Every committed event reaches the stream, exactly once.
    env.wait_outbox_drained_into_stream(expected_events, FAILOVER_DEADLINE)
        .await;
    let ids = env.stream_message_ids().await;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events in the stream twice: {twice:?}");
    let logged: HashSet<String> = retry::serializable(|| {
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT event_id FROM events").fetch_all(env.db())
    })
    .await
    .expect("read the event ids")
    .into_iter()
    .map(|id| id.to_string())
    .collect();
    let streamed: HashSet<String> = ids.into_iter().collect();
    assert_eq!(streamed, logged, "the stream holds exactly the event log");

    // The view equals the event log: every order at its last version, each version once.
    assert_views_equal_the_log(&env, &produced, FAILOVER_DEADLINE).await;

    // The relay and the projector rode the election out instead of exiting.
    still_running(&mut relay);
    still_running(&mut projector);
    eprintln!(
        "nats cluster: {} orders, {expected_events} events; leader {leader} killed at \
         {before_kill} messages, {new_leader} took over, {after_election} after the election",
        produced.len()
    );
}
