//! The relay against the real Postgres and NATS: each test has its own database, stream and
//! subject root.

use std::time::Duration;

use async_nats::jetstream;
use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::EventEnvelope;

use super::*;

const DEADLINE: Duration = Duration::from_secs(20);

/// A fresh database with the migrations applied and SERIALIZABLE as its default.
async fn fresh_database() -> PgPool {
    crate::testing::TestDatabase::create("relay").await.pool
}

struct Nats {
    js: jetstream::Context,
    config: RelayConfig,
}

async fn fresh_stream() -> Nats {
    let client = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("nats up");
    let tag = Uuid::now_v7().simple().to_string();
    let config = RelayConfig {
        batch_size: 50,
        ..RelayConfig::new(format!("RELAY_{tag}"), format!("relay{tag}"))
    };
    Nats {
        js: relay_jetstream(client),
        config,
    }
}

impl Nats {
    async fn message_count(&self) -> u64 {
        let mut stream = self
            .js
            .get_stream(&self.config.stream_name)
            .await
            .expect("stream exists");
        stream.info().await.expect("stream info").state.messages
    }
    async fn cleanup(self) {
        let _ = self.js.delete_stream(&self.config.stream_name).await;
    }
}

/// Commits `versions` events of one new order stream with their outbox rows, as the event
/// store's append does.
async fn seed_stream(pool: &PgPool, versions: i64) -> (String, Vec<Uuid>) {
    let stream_id = format!("order-{}", Uuid::now_v7());
    let mut ids = Vec::new();
    let mut tx = pool.begin().await.expect("begin");
    for version in 1..=versions {
        let event_id = Uuid::now_v7();
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, \
             occurred_at, recorded_at, correlation_id, causation_id, traceparent, actor_kind, \
             actor_id, channel, payload) \
             VALUES ($1, $2, $3, $4, 1, $5, $5, $6, NULL, $7, 'service', 'test', 'web', $8)",
        )
        .bind(&stream_id)
        .bind(version)
        .bind(event_id)
        .bind(if version == 1 {
            "OrderPlaced"
        } else {
            "OrderCancelled"
        })
        .bind(now)
        .bind(Uuid::now_v7())
        .bind("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .bind(serde_json::json!({ "seeded": version }))
        .execute(&mut *tx)
        .await
        .expect("insert event");
        sqlx::query(
            "INSERT INTO outbox (event_id, stream_id, stream_version, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(event_id)
        .bind(&stream_id)
        .bind(version)
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("insert outbox");
        ids.push(event_id);
    }
    tx.commit().await.expect("commit");
    (stream_id, ids)
}

async fn outbox_depth(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await
        .expect("count outbox")
}

async fn wait_until_outbox_empty(pool: &PgPool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while outbox_depth(pool).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox not drained in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn relay_publishes_every_event_once_with_headers_and_empties_the_outbox() {
    let pool = fresh_database().await;
    let nats = fresh_stream().await;
    let mut seeded = Vec::new();
    for _ in 0..40 {
        seeded.push(seed_stream(&pool, 3).await);
    }

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(run_relay(
        nats.config.clone(),
        pool.clone(),
        nats.js.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    wait_until_outbox_empty(&pool).await;
    assert_eq!(nats.message_count().await, 120);

    // Every message names its event, and one stream's versions arrive in order.
    let stream = nats
        .js
        .get_stream(&nats.config.stream_name)
        .await
        .expect("stream");
    let (stream_id, ids) = &seeded[7];
    let mut seen = Vec::new();
    for seq in 1..=120 {
        let message = stream.get_raw_message(seq).await.expect("message");
        let headers = message.headers;
        if headers.get(HEADER_STREAM_ID).map(|v| v.as_str()) == Some(stream_id.as_str()) {
            let envelope: EventEnvelope =
                serde_json::from_slice(&message.payload).expect("envelope body");
            assert_eq!(
                headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|v| v.to_string()),
                Some(envelope.event_id.to_string())
            );
            assert_eq!(
                headers.get(HEADER_STREAM_VERSION).map(|v| v.to_string()),
                Some(envelope.stream_version.to_string())
            );
            assert!(headers
                .get(TRACEPARENT)
                .is_some_and(|v| v.as_str().contains("4bf92f3577b34da6a3ce929d0e0e4736")));
            assert!(message
                .subject
                .starts_with(&format!("{}.v1.", nats.config.subject_root)));
            seen.push(envelope.event_id);
        }
    }
    assert_eq!(&seen, ids);

    stop.send(()).expect("relay still running");
    relay.await.expect("relay task").expect("relay result");
    nats.cleanup().await;
}

#[tokio::test]
async fn relay_killed_between_publish_and_delete_republishes_and_jetstream_drops_the_copies() {
    let pool = fresh_database().await;
    let nats = fresh_stream().await;
    for _ in 0..5 {
        seed_stream(&pool, 2).await;
    }
    ensure_stream(
        &nats.js,
        &nats.config.stream_name,
        &nats.config.subject_root,
    )
    .await
    .expect("stream");

    let crashed = relay_round(&nats.config, &pool, &nats.js, AfterPublish::Abandon)
        .await
        .expect("publish");
    assert_eq!((crashed.acked, crashed.duplicates), (10, 0));
    assert_eq!(outbox_depth(&pool).await, 10, "rows survive the crash");
    assert_eq!(nats.message_count().await, 10);

    let restarted = relay_round(&nats.config, &pool, &nats.js, AfterPublish::DeleteAndCommit)
        .await
        .expect("republish");
    assert_eq!(restarted.acked, 10);
    assert_eq!(restarted.duplicates, 10, "JetStream recognised every copy");
    assert_eq!(restarted.deleted, 10);
    assert_eq!(outbox_depth(&pool).await, 0);
    assert_eq!(
        nats.message_count().await,
        10,
        "each event is in the stream once"
    );
    nats.cleanup().await;
}

#[tokio::test]
async fn two_relays_share_the_outbox_without_losing_or_doubling_events() {
    let pool = fresh_database().await;
    let nats = fresh_stream().await;
    for _ in 0..150 {
        seed_stream(&pool, 2).await;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let mut stopped = stopped.clone();
            tokio::spawn(run_relay(
                nats.config.clone(),
                pool.clone(),
                nats.js.clone(),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            ))
        })
        .collect();
    wait_until_outbox_empty(&pool).await;
    assert_eq!(nats.message_count().await, 300);
    stop.send(true).expect("relays running");
    for relay in relays {
        relay.await.expect("relay task").expect("relay result");
    }
    nats.cleanup().await;
}
