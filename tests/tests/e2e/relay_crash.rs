//! Crash safety of the outbox relay: kill -9 the relay process while orders keep coming, start it
//! again, and every committed event still reaches JetStream exactly once (the stream holds as
//! many messages as the event store holds events) and the tracking view exactly once (each
//! order's timeline has each of its versions once).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;
use waybill_e2e::{eventually, sample_cancel, sample_order, Api, Role, TestEnv, DEFAULT_DEADLINE};

/// An order the producer placed, and how many events it should end with.
struct Produced {
    order_id: String,
    versions: i64,
}

/// Places orders (every fourth one cancelled straight away) until `stop` is set.
async fn produce(api: Api, worker: usize, stop: Arc<AtomicBool>) -> Vec<Produced> {
    let mut produced = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && n < 2000 {
        n += 1;
        let reference = format!("CRASH-{worker}-{n}");
        let response = api
            .place_order(&format!("{reference}-place"), &sample_order(&reference))
            .await;
        assert_eq!(response.status, 201, "{}", response.describe());
        let order_id = response.json()["order_id"]
            .as_str()
            .expect("order_id")
            .to_owned();
        let mut versions = 1;
        if n % 4 == 0 {
            let cancelled = api
                .cancel_order(
                    &order_id,
                    &format!("{reference}-cancel"),
                    &sample_cancel("out_of_stock"),
                )
                .await;
            assert_eq!(cancelled.status, 200, "{}", cancelled.describe());
            versions = 2;
        }
        produced.push(Produced { order_id, versions });
    }
    produced
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_and_restarted_while_orders_flow_delivers_every_event_exactly_once() {
    let env = TestEnv::new("relay_crash").await;
    let commands = env.start(Role::Commands).await;
    let mut relay = env.start(Role::Relay).await;
    let _projector = env.start(Role::Projector).await;
    let query = env.start(Role::Query).await;
    let api = Api::new(&commands.command_url(), &query.query_url());

    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..2)
        .map(|worker| tokio::spawn(produce(api.clone(), worker, Arc::clone(&stop))))
        .collect();

    // Orders are flowing through the relay...
    eventually(
        "the relay to publish 10 events",
        DEFAULT_DEADLINE,
        || async {
            let published = env.stream_message_count().await;
            if published >= 10 {
                Ok(())
            } else {
                Err(format!("{published} published"))
            }
        },
    )
    .await;
    // ...when it dies without a chance to finish its batch.
    relay.kill_hard();
    eventually(
        "orders to pile up in the outbox",
        DEFAULT_DEADLINE,
        || async {
            let pending = env.count_rows("outbox").await;
            if pending >= 10 {
                Ok(())
            } else {
                Err(format!("{pending} in the outbox"))
            }
        },
    )
    .await;
    let pending_at_kill = env.count_rows("outbox").await;
    relay.restart().await;
    let at_restart = env.stream_message_count().await;
    eventually(
        "the restarted relay to publish",
        DEFAULT_DEADLINE,
        || async {
            let published = env.stream_message_count().await;
            if published >= at_restart + 10 {
                Ok(())
            } else {
                Err(format!("{published} published, {at_restart} at restart"))
            }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut produced = Vec::new();
    for producer in producers {
        produced.extend(producer.await.expect("producer task"));
    }

    // Everything committed is published, once.
    let events = env.count_rows("events").await;
    let expected_events: i64 = produced.iter().map(|p| p.versions).sum();
    eprintln!(
        "relay crash: {} orders, {events} events; {pending_at_kill} waited in the outbox while \
         the relay was down, {at_restart} were published before the restart",
        produced.len()
    );
    assert_eq!(events, expected_events, "event store vs accepted commands");
    eventually(
        "the outbox to drain into JetStream",
        DEFAULT_DEADLINE,
        || async {
            let pending = env.count_rows("outbox").await;
            let published = env.stream_message_count().await;
            if pending == 0 && published == events as u64 {
                Ok(())
            } else {
                Err(format!(
                    "{pending} pending, {published} published of {events}"
                ))
            }
        },
    )
    .await;

    // Every order's view holds each of its events exactly once.
    for order in &produced {
        let view: Value = eventually(
            &format!("view of {} at version {}", order.order_id, order.versions),
            DEFAULT_DEADLINE,
            || async {
                match env.tracking_hash(&order.order_id).await {
                    Some((version, view)) if version >= order.versions => Ok(view),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        assert_eq!(view["version"], order.versions, "{view}");
        let versions: Vec<i64> = view["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .filter_map(|entry| entry["version"].as_i64())
            .collect();
        let expected: Vec<i64> = (1..=order.versions).collect();
        assert_eq!(versions, expected, "timeline of {}: {view}", order.order_id);
        let status = if order.versions == 2 {
            "cancelled"
        } else {
            "placed"
        };
        assert_eq!(view["status"], status, "{view}");
    }
    assert_eq!(
        env.stream_message_count().await,
        events as u64,
        "JetStream holds a duplicate"
    );
}
