//! Waybill on a Redis Cluster (3 masters, 3 replicas of Debian's redis-server 7): the tracking
//! projector and the query API run on it while orders flow, the master holding a tracked order's
//! slot is killed with -9 and its replica takes over; afterwards every tracking view equals the
//! fold of the event log, and tracking reads answered 200 or 503 with `Retry-After` throughout,
//! never a 500.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use waybill_e2e::{
    assert_views_equal_the_log, eventually, produce, sample_order, Api, Flow, RedisCluster, Role,
    TestEnv, SERVICE_KEY,
};
use waybill_projectors::redis_connection::slot;
use waybill_projectors::views::tracking::keys::view_key;

/// Client port of the first of the cluster's six nodes (bus ports 10000 above).
const BASE_PORT: u16 = 15120;
/// Failure detection (2 s node timeout) plus the replica's election, with room for a busy machine.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(60);

/// Tracking reads of a customer-facing client, repeated until told to stop: every answer's
/// status, and whether each 503 carried `Retry-After`.
async fn read_tracking(
    api: Api,
    order_id: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(u16, bool)>>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let response = api.tracking(&order_id, &[], Some(SERVICE_KEY)).await;
        let retry_after = response.header("retry-after").is_some();
        seen.lock()
            .expect("statuses")
            .push((response.status, retry_after));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_flow_fails_over_and_tracking_stays_equal_to_the_log() {
    let mut env = TestEnv::new("redis_cluster").await;
    let cluster = RedisCluster::start(&env.log_dir.join("redis-cluster"), BASE_PORT);
    env.redis_url = cluster.url();
    let settings = [
        ("WAYBILL_PROJECTOR_VIEWS", "tracking"),
        ("WAYBILL_QUERY_RATE_LIMIT", "0"),
        ("WAYBILL_REDIS_WAIT_REPLICAS", "1"),
    ];
    let commands = env.start_with(Role::Commands, &settings).await;
    let _relay = env.start_with(Role::Relay, &settings).await;
    let mut projector = env.start_with(Role::Projector, &settings).await;
    let query = env.start_with(Role::Query, &settings).await;
    let api = Api::new(&commands.command_url(), &query.query_url());

    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..2)
        .map(|worker| {
            let flow = Flow {
                label: "REDIS-CLUSTER",
                cancel_every: 3,
                pause: Duration::from_millis(20),
            };
            tokio::spawn(produce(api.clone(), flow, worker, Arc::clone(&stop)))
        })
        .collect();

    // A first order, tracked on the cluster: its slot's master is the one to kill.
    let first = crate::place(&api, "rc-first", &sample_order("REDIS-CLUSTER-first"))
        .await
        .order_id;
    eventually(
        "the first order's tracking view",
        FAILOVER_DEADLINE,
        || async {
            match api.tracking(&first, &[], Some(SERVICE_KEY)).await.status {
                200 => Ok(()),
                other => Err(format!("status {other}")),
            }
        },
    )
    .await;
    let key = view_key(&env.redis_prefix, &first);
    let order_slot = slot(key.as_bytes());
    let victim = cluster.master_of(order_slot).await;

    let reading = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = tokio::spawn(read_tracking(
        api.clone(),
        first.clone(),
        Arc::clone(&reading),
        Arc::clone(&seen),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    cluster.kill_hard(victim);
    let promoted = cluster
        .await_failover(order_slot, victim, FAILOVER_DEADLINE)
        .await;
    // Reads of the order come back from the promoted replica.
    eventually(
        "tracking reads served by the new master",
        FAILOVER_DEADLINE,
        || async {
            match api.tracking(&first, &[], Some(SERVICE_KEY)).await.status {
                200 => Ok(()),
                other => Err(format!("status {other}")),
            }
        },
    )
    .await;
    // Orders keep flowing into views on the changed cluster, then the old master rejoins.
    let later = crate::place(&api, "rc-after", &sample_order("REDIS-CLUSTER-after"))
        .await
        .order_id;
    eventually(
        "an order placed after the failover is tracked",
        FAILOVER_DEADLINE,
        || async {
            match api.tracking(&later, &[], Some(SERVICE_KEY)).await.status {
                200 => Ok(()),
                other => Err(format!("status {other}")),
            }
        },
    )
    .await;
    cluster.restart_stopped();

    stop.store(true, Ordering::Relaxed);
    let mut produced = Vec::new();
    for producer in producers {
        produced.extend(producer.await.expect("producer task"));
    }
    assert!(produced.len() >= 10, "orders flowed: {}", produced.len());
    assert_views_equal_the_log(&env, &produced, FAILOVER_DEADLINE).await;

    reading.store(true, Ordering::Relaxed);
    reader.await.expect("reader task");
    let seen = seen.lock().expect("statuses").clone();
    let unexpected: Vec<_> = seen
        .iter()
        .filter(|(status, retry_after)| !(*status == 200 || (*status == 503 && *retry_after)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "tracking reads during the failover were 200, or 503 with Retry-After; saw {unexpected:?}"
    );
    let unavailable = seen.iter().filter(|(status, _)| *status == 503).count();
    assert!(
        projector.exit_status().is_none(),
        "the projector rode the failover out: {}",
        projector.log_tail()
    );
    eprintln!(
        "redis cluster: {} orders; master {victim} killed, {promoted} took over slot \
         {order_slot}; {} tracking reads, {unavailable} of them 503",
        produced.len(),
        seen.len()
    );
}
