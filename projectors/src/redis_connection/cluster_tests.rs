//! The connection layer against a real Redis Cluster: 3 masters and 3 replicas of Debian's
//! redis-server started by `infra/scripts/ensure-redis-cluster.sh` on ports 15130–15135 (bus
//! 25130–25135), stopped again at the end.

use std::path::PathBuf;
use std::process::Command;

use super::RedisTarget;

/// Client port of the first node of this test's cluster.
const BASE_PORT: u16 = 15130;

struct Cluster {
    dir: PathBuf,
    url: String,
}

impl Cluster {
    fn start() -> Cluster {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../infra/scripts/ensure-redis-cluster.sh");
        let dir = std::env::temp_dir().join(format!("waybill-redis-cluster-{BASE_PORT}"));
        let output = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .arg(BASE_PORT.to_string())
            .output()
            .expect("run ensure-redis-cluster.sh");
        assert!(
            output.status.success(),
            "ensure-redis-cluster.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let url = stdout
            .lines()
            .find_map(|line| line.strip_prefix("REDIS_URL="))
            .expect("the script prints REDIS_URL")
            .to_owned();
        Cluster { dir, url }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../infra/scripts/ensure-redis-cluster.sh");
        let _ = Command::new(script).arg("stop").arg(&self.dir).output();
    }
}

#[tokio::test]
async fn pipelines_spanning_slots_answer_in_order_and_scans_reach_every_master() {
    let cluster = Cluster::start();
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
