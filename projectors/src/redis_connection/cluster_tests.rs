//! The connection layer against real Redis Clusters: 3 masters and 3 replicas of Debian's
//! redis-server started by `infra/scripts/ensure-redis-cluster.sh`, one cluster per test (ports
//! 15130–15135, 15140–15145 and 15150–15155, bus ports 10000 above), stopped again at the end.

use std::path::PathBuf;
use std::process::Command;

use super::RedisTarget;

struct Cluster {
    dir: PathBuf,
    url: String,
}

impl Cluster {
    /// Node N serves clients on `base` + N - 1.
    fn start(base: u16) -> Cluster {
        let dir = std::env::temp_dir().join(format!("waybill-redis-cluster-{base}"));
        let stdout = run_script(&["start", &dir.to_string_lossy(), &base.to_string()]);
        let url = stdout
            .lines()
            .find_map(|line| line.strip_prefix("REDIS_URL="))
            .expect("the script prints REDIS_URL")
            .to_owned();
        Cluster { dir, url }
    }

    /// Starts the stopped nodes again (the script waits for a stopped master's replica to take
    /// over first, and for every replica to be in sync).
    fn restart_stopped(&self, base: u16) {
        run_script(&["start", &self.dir.to_string_lossy(), &base.to_string()]);
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/scripts/ensure-redis-cluster.sh")
}

/// Runs `ensure-redis-cluster.sh` with `args`; answers what it printed, failing on an error.
fn run_script(args: &[&str]) -> String {
    let output = Command::new(script())
        .args(args)
        .output()
        .expect("run ensure-redis-cluster.sh");
    assert!(
        output.status.success(),
        "ensure-redis-cluster.sh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Not run_script: a failure here must not panic while a test unwinds.
        let _ = Command::new(script()).arg("stop").arg(&self.dir).output();
    }
}

#[tokio::test]
async fn pipelines_spanning_slots_answer_in_order_and_scans_reach_every_master() {
    let cluster = Cluster::start(15130);
    let target = RedisTarget::parse(&cluster.url, false).expect("REDIS_URL");
    assert!(target.is_cluster(), "{}", cluster.url);
    assert_eq!(
        target.nodes().len(),
        3,
        "the script lists the three masters"
    );
    let connection = target.connect().await.expect("connect to the cluster");
    assert!(connection.is_cluster());
    let prefix = format!("cluster-test-{}", uuid::Uuid::now_v7().simple());

    // One pipeline over 300 keys in many slots, with a script loaded once and run per key.
    let script =
        redis::Script::new("redis.call('SET', KEYS[1], ARGV[1]) return tonumber(ARGV[1]) * 2");
    let mut pipe = redis::pipe();
    pipe.load_script(&script).ignore();
    for i in 0..300 {
        pipe.invoke_script(script.key(format!("{prefix}:{{k{i}}}")).arg(i));
        pipe.get(format!("{prefix}:{{k{i}}}"));
    }
    let answers: Vec<(i64, i64)> = pipe
        .query_async::<Vec<i64>>(&mut connection.clone())
        .await
        .expect("pipeline over the cluster")
        .chunks(2)
        .map(|pair| (pair[0], pair[1]))
        .collect();
    let expected: Vec<(i64, i64)> = (0..300).map(|i| (i * 2, i)).collect();
    assert_eq!(
        answers, expected,
        "answers come back in the pipeline's order"
    );

    // The keys live on all three masters; the scan walks each of them.
    let mut per_master = Vec::new();
    for node in target.nodes() {
        let mut direct = redis::Client::open(node.as_str())
            .expect("node url")
            .get_multiplexed_async_connection()
            .await
            .expect("node answers");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut direct)
            .await
            .expect("KEYS on one node");
        per_master.push(keys.len());
    }
    assert!(
        per_master.iter().all(|n| *n > 0),
        "keys on every master: {per_master:?}"
    );
    let mut scanned = connection
        .scan(format!("{prefix}:*"))
        .collect_all()
        .await
        .expect("scan");
    scanned.sort();
    scanned.dedup();
    assert_eq!(scanned.len(), 300, "the scan saw every master's keys");

    assert_eq!(
        connection
            .delete_matching(format!("{prefix}:*"))
            .await
            .expect("delete"),
        300
    );
    assert!(connection
        .scan(format!("{prefix}:*"))
        .collect_all()
        .await
        .expect("scan")
        .is_empty());
}

/// The pid of the node serving clients on `port`.
fn pid_of(cluster: &Cluster, base: u16, port: u16) -> String {
    let pidfile = cluster.dir.join(format!("n{}/redis.pid", port - base + 1));
    std::fs::read_to_string(pidfile)
        .expect("the node's pid file")
        .trim()
        .to_owned()
}

fn signal(pid: &str, signal: &str) {
    let status = Command::new("kill")
        .args([signal, pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// The port of a replica of the master on `master_port`.
async fn replica_of(master_port: u16) -> u16 {
    let mut direct = redis::Client::open(format!("redis://127.0.0.1:{master_port}"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("master answers");
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut direct)
        .await
        .expect("INFO replication");
    info.lines()
        .find_map(|line| line.strip_prefix("slave0:"))
        .and_then(|fields| fields.split(',').find_map(|f| f.strip_prefix("port=")))
        .and_then(|port| port.parse().ok())
        .expect("the master has a replica")
}

#[tokio::test]
async fn writes_count_as_durable_only_when_the_connected_replicas_confirm_them() {
    const BASE: u16 = 15140;
    let cluster = Cluster::start(BASE);
    let prefix = format!("wait-test-{}", uuid::Uuid::now_v7().simple());
    let target = RedisTarget::parse(&cluster.url, false)
        .expect("REDIS_URL")
        .with_wait_replicas(1);
    let connection = target.connect().await.expect("connect");
    let write = || {
        let connection = connection.clone();
        let prefix = prefix.clone();
        async move {
            let mut pipe = redis::pipe();
            for i in 0..30 {
                pipe.set(format!("{prefix}:{{k{i}}}"), i).ignore();
            }
            pipe.query_async::<()>(&mut connection.clone())
                .await
                .expect("writes over the cluster");
            connection.await_replicas().await
        }
    };

    // Each master has one replica, which confirms.
    write().await.expect("one replica per master confirms");

    // A replica that is connected but does not answer (stopped): the writes are not durable.
    let master: u16 = cluster
        .url
        .split(',')
        .next()
        .expect("a master")
        .rsplit(':')
        .next()
        .expect("port")
        .parse()
        .expect("port number");
    let replica = replica_of(master).await;
    let replica_pid = pid_of(&cluster, BASE, replica);
    signal(&replica_pid, "-STOP");
    let refused = write().await;
    signal(&replica_pid, "-CONT");
    let error = refused.expect_err("a write its connected replica did not confirm is not durable");
    assert_eq!(error.kind(), redis::ErrorKind::TryAgain, "{error}");
    assert!(
        error.to_string().contains(&format!(":{master}: 0 of 1")),
        "{error}"
    );
    write()
        .await
        .expect("confirmed once the replica runs again");

    // A master whose replica is gone keeps its writes alone, and the view goes on.
    signal(&replica_pid, "-9");
    let alone = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match write().await {
            Ok(()) => break,
            // Until the master sees the replica's connection closed.
            Err(error) if tokio::time::Instant::now() < alone => {
                assert_eq!(error.kind(), redis::ErrorKind::TryAgain, "{error}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(error) => panic!("a master without replicas still refused: {error}"),
        }
    }

    connection
        .delete_matching(format!("{prefix}:*"))
        .await
        .expect("delete");
}

/// When each write finished, and whether it went through (with the error if not).
type Outcomes = Vec<(std::time::Instant, Result<(), String>)>;

/// Writes of 16 tasks on one shared connection, each a pipeline over 8 slots, a Lua
/// compare-and-set and `await_replicas` (as a view's batch does), while a master is killed
/// with -9, its replica takes over, and it is started again. Before, the cluster client's
/// driver got stuck in about half the tries and every command timed out from then on; and a
/// `WAIT` of a second on the master left without a replica held up every command of the
/// process behind it. Now the writes answer again within 30 s of the restart, every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_killed_and_restarted_under_load_leaves_every_command_answering() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    const BASE: u16 = 15150;
    let cluster = Arc::new(Cluster::start(BASE));
    let target = RedisTarget::parse(&cluster.url, false)
        .expect("REDIS_URL")
        .with_wait_replicas(1);
    let connection = target.connect().await.expect("connect");
    let prefix = format!("failover-{}", uuid::Uuid::now_v7().simple());
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
    let script = redis::Script::new(
        "local v = redis.call('GET', KEYS[1]) or '0'; redis.call('SET', KEYS[1], v + 1); return 1",
    );
    let mut writers = Vec::new();
    for task in 0..16 {
        let (connection, stop, outcomes, script, prefix) = (
            connection.clone(),
            stop.clone(),
            outcomes.clone(),
            script.clone(),
            prefix.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let mut pipe = redis::pipe();
                for k in 0..8 {
                    pipe.set(format!("{prefix}:{{{task}-{round}-{k}}}"), round)
                        .ignore();
                }
                let outcome = async {
                    pipe.query_async::<()>(&mut connection.clone()).await?;
                    script
                        .key(format!("{prefix}:{{c{task}-{}}}", round % 50))
                        .invoke_async::<i64>(&mut connection.clone())
                        .await?;
                    connection.await_replicas().await
                }
                .await
                .map_err(|error| error.to_string());
                outcomes.lock().unwrap().push((Instant::now(), outcome));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let master: u16 = cluster
        .url
        .split(',')
        .next()
        .and_then(|url| url.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .expect("a master's port");
    signal(&pid_of(&cluster, BASE, master), "-9");
    // The script starts the killed node again once its replica took over, and waits until it
    // is in sync as that replica's replica.
    let restarting = cluster.clone();
    tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_secs(5));
        restarting.restart_stopped(BASE);
    })
    .await
    .expect("restart");
    let restarted = Instant::now();

    // A 5 s window in which every write went through, and plenty did, within 30 s.
    let window = Duration::from_secs(5);
    let answering = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Instant::now();
        let recent: Vec<bool> = outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= restarted && now.duration_since(*at) <= window)
            .map(|(_, outcome)| outcome.is_ok())
            .collect();
        let whole_window = now.duration_since(restarted) >= window;
        if whole_window && recent.len() >= 100 && recent.iter().all(|ok| *ok) {
            break true;
        }
        if now.duration_since(restarted) > Duration::from_secs(30) {
            break false;
        }
    };
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let failed: Vec<&String> = outcomes
        .iter()
        .filter(|(at, _)| *at >= restarted)
        .filter_map(|(_, outcome)| outcome.as_ref().err())
        .collect();
    assert!(
        answering,
        "30 s after the restart the writes still fail: {} of {} since the restart, last {:?}; \
         connection replaced {} times",
        failed.len(),
        outcomes.iter().filter(|(at, _)| *at >= restarted).count(),
        failed.last(),
        connection.replacements()
    );
    eprintln!(
        "{} writes, {} failed since the restart; the connection was replaced {} times",
        outcomes.len(),
        failed.len(),
        connection.replacements()
    );
    assert!(
        outcomes.iter().any(|(_, outcome)| outcome.is_err()),
        "the kill was felt (errors while the master was down)"
    );
    connection
        .delete_matching(format!("{prefix}:*"))
        .await
        .expect("delete");
}
