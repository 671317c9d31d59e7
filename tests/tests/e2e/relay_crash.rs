//! Crash safety of the outbox relay: kill -9 the relay process while orders keep coming, start it
//! again, and every committed event still reaches JetStream exactly once (the stream holds as
//! many messages as the event store holds events) and the tracking view exactly once (each
//! order's timeline has each of its versions once).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use waybill_e2e::{
    assert_views_equal_the_log, eventually, produce, Api, Flow, Role, TestEnv, DEFAULT_DEADLINE,
};

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
        .map(|worker| {
            let flow = Flow {
                label: "CRASH",
                cancel_every: 4,
                pause: std::time::Duration::ZERO,
            };
            tokio::spawn(produce(api.clone(), flow, worker, Arc::clone(&stop)))
        })
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
    env.wait_outbox_drained_into_stream(events, DEFAULT_DEADLINE)
        .await;

    // Every order's view holds each of its events exactly once.
    assert_views_equal_the_log(&env, &produced, DEFAULT_DEADLINE).await;
    assert_eq!(
        env.stream_message_count().await,
        events as u64,
        "JetStream holds a duplicate"
    );
}
