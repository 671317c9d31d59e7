//! Several instances of one view share its partitions: three `serve projector --view tracking`
//! processes with `WAYBILL_PROJECTOR_PARTITIONED` split the eight partitions by lease, one is
//! killed with -9 while orders flow, the two survivors take its partitions over, and afterwards
//! every order's tracking view is exactly the fold of its events in the log (nothing lost,
//! nothing applied twice: an event applied twice would leave a timeline entry too many).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use waybill_e2e::{
    eventually, produce, Api, Flow, Role, TestEnv, WaybillProcess, DEFAULT_DEADLINE,
};
use waybill_projectors::views::tracking::fold;
use waybill_write_side::event_store::EventStore;

const PARTITIONS: u32 = 8;

/// `waybill_projector_partitions_owned{view="tracking"}` of one process (`None`: no answer).
async fn owned(process: &WaybillProcess) -> Option<u32> {
    let text = reqwest::get(format!("{}/metrics", process.metrics_url()))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix("waybill_projector_partitions_owned{view=\"tracking\"} ")
        })
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u32)
}

/// Waits until `processes` own every partition between them, each at least one.
async fn split_among(processes: &[&WaybillProcess]) {
    eventually(
        "the partitions split among the running instances",
        Duration::from_secs(60),
        || async {
            let mut shares = Vec::new();
            for process in processes {
                shares.push(owned(process).await.unwrap_or(0));
            }
            if shares.iter().sum::<u32>() == PARTITIONS && shares.iter().all(|s| *s > 0) {
                Ok(())
            } else {
                Err(format!("owned per instance: {shares:?}"))
            }
        },
    )
    .await;
}

/// The tracking view of `order_id` equals the fold of its events in the log.
async fn view_is_the_fold(env: &TestEnv, store: &EventStore, order_id: &str) -> Result<(), String> {
    let events = store
        .read_stream(&format!("order-{order_id}"), 1, None)
        .await
        .map_err(|e| e.to_string())?;
    let folded = fold(&events).map_err(|e| e.to_string())?;
    let folded = serde_json::to_value(folded.ok_or("no events")?).map_err(|e| e.to_string())?;
    match env.tracking_hash(order_id).await {
        Some((version, view)) if version == events.len() as i64 && view == folded => Ok(()),
        Some((version, _)) => Err(format!(
            "view at v{version}, log at v{} (or the view differs from the fold)",
            events.len()
        )),
        None => Err("no tracking view".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_a_view_and_a_killed_ones_partitions_pass_to_the_others() {
    let env = TestEnv::new("projector_sharing").await;
    let commands = env.start(Role::Commands).await;
    let _relay = env.start(Role::Relay).await;
    let partitions = PARTITIONS.to_string();
    let sharing = [
        ("WAYBILL_PROJECTOR_VIEWS", "tracking"),
        ("WAYBILL_PROJECTOR_PARTITIONED", "true"),
        ("WAYBILL_PROJECTOR_LEASE_MS", "1500"),
        ("WAYBILL_PARTITIONS", partitions.as_str()),
    ];
    let mut victim = env.start_with(Role::Projector, &sharing).await;
    let second = env.start_with(Role::Projector, &sharing).await;
    let third = env.start_with(Role::Projector, &sharing).await;
    split_among(&[&victim, &second, &third]).await;

    let api = Api::new(&commands.command_url(), &commands.command_url());
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..2)
        .map(|worker| {
            let flow = Flow {
                label: "SHARE",
                cancel_every: 3,
                pause: Duration::ZERO,
            };
            tokio::spawn(produce(api.clone(), flow, worker, Arc::clone(&stop)))
        })
        .collect();
    let store = EventStore::new(env.db().clone());
    eventually(
        "orders flowing into the views",
        DEFAULT_DEADLINE,
        || async {
            let events = env.count_rows("events").await;
            if events >= 40 {
                Ok(())
            } else {
                Err(format!("{events} events"))
            }
        },
    )
    .await;

    let victim_pid = victim.pid().expect("victim runs");
    victim.kill_hard();
    let killed_at = Instant::now();
    split_among(&[&second, &third]).await;
    eprintln!(
        "the survivors own all {PARTITIONS} partitions {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    // No live lease is left with the killed instance (its name starts with its pid).
    let dead_leases: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM projector_leases WHERE view = 'tracking' \
         AND owner LIKE $1 AND expires_at > now()",
    )
    .bind(format!("{victim_pid}-%"))
    .fetch_one(env.db())
    .await
    .expect("leases");
    assert_eq!(dead_leases, 0, "the killed instance holds no live lease");

    // Orders keep coming after the takeover, then stop.
    let before = env.count_rows("events").await;
    eventually("more orders after the kill", DEFAULT_DEADLINE, || async {
        let events = env.count_rows("events").await;
        if events >= before + 40 {
            Ok(())
        } else {
            Err(format!("{events} events"))
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut orders = Vec::new();
    for producer in producers {
        orders.extend(
            producer
                .await
                .expect("producer")
                .into_iter()
                .map(|p| p.order_id),
        );
    }
    assert!(orders.len() >= 20, "{} orders placed", orders.len());

    for order_id in &orders {
        eventually(
            "every order's view equal to the fold of its log",
            Duration::from_secs(90),
            || view_is_the_fold(&env, &store, order_id),
        )
        .await;
    }
}
