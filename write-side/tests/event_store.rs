//! The event store and the commit batcher against a real, serializable Postgres.

mod support;

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use serde_json::json;
use support::{order_body, TestDb};
use uuid::Uuid;
use waybill_schemas::events::CancelReason;
use waybill_schemas::{Actor, EventEnvelope, NewEvent, OrderId};
use waybill_write_side::channel_orders::ChannelOrder;
use waybill_write_side::commit_batcher::{
    CommitBatcher, CommitBatcherConfig, CommitOutcome, CommitRequest,
};
use waybill_write_side::domain::{parse_cancel_order, parse_place_order, Order, OrderCommand};
use waybill_write_side::event_store::{stamp, EventMeta, EventStore, EventStoreError};
use waybill_write_side::idempotency::{IdempotencyRecord, StoredResponse};

fn meta() -> EventMeta {
    EventMeta {
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        actor: Actor::service("test"),
        channel: None,
    }
}

fn placed(order_id: OrderId, channel_ref: &str) -> Vec<NewEvent> {
    let order = parse_place_order(&order_body(channel_ref)).expect("valid order");
    let now = Utc::now();
    Order::default()
        .handle(
            &OrderCommand::Place {
                order_id,
                order: Box::new(order),
            },
            now,
        )
        .expect("placed")
        .into_iter()
        .map(|event| NewEvent {
            event_id: Uuid::now_v7(),
            event,
            occurred_at: now,
        })
        .collect()
}

fn cancelled(order_id: OrderId) -> Vec<NewEvent> {
    let cancel = parse_cancel_order(&json!({"reason":"fraud"})).expect("valid");
    let mut order = Order::default();
    for e in placed(order_id, "X") {
        order.apply(&e.event);
    }
    order
        .handle(
            &OrderCommand::Cancel {
                order_id,
                cancellation_id: uuid::Uuid::now_v7(),
                cancel,
            },
            Utc::now(),
        )
        .expect("cancellable")
        .into_iter()
        .map(|event| NewEvent {
            event_id: Uuid::now_v7(),
            event,
            occurred_at: Utc::now(),
        })
        .collect()
}

#[tokio::test]
async fn two_concurrent_appends_at_one_expected_version_one_wins_one_conflicts() {
    let db = TestDb::create("write").await;
    let store = EventStore::new(db.pool.clone());
    let id = OrderId::new_v7();
    let stream = id.stream_id();
    store
        .append(&stream, 0, placed(id, "A-1"), &meta())
        .await
        .expect("placed");
    let (meta_a, meta_b) = (meta(), meta());
    let (a, b) = tokio::join!(
        store.append(&stream, 1, cancelled(id), &meta_a),
        store.append(&stream, 1, cancelled(id), &meta_b),
    );
    let (wins, conflicts): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(Result::is_ok);
    assert_eq!(wins.len(), 1);
    match conflicts.into_iter().next().expect("one loser") {
        Err(EventStoreError::Conflict {
            stream_id,
            expected,
            actual,
        }) => {
            assert_eq!((stream_id, expected, actual), (stream.clone(), 1, Some(2)));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let events = store.read_stream(&stream, 1, None).await.expect("read");
    assert_eq!(
        events.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(db.count("outbox").await, 2);
    let decoded = events[1].decode().expect("decodes");
    assert!(
        matches!(decoded, waybill_schemas::OrderEvent::OrderCancelled(c) if c.reason == CancelReason::Fraud)
    );
    db.drop().await;
}

#[tokio::test]
async fn read_stream_and_read_all_page_return_what_was_appended_in_order() {
    let db = TestDb::create("write").await;
    let store = EventStore::new(db.pool.clone());
    let mut appended: Vec<EventEnvelope> = Vec::new();
    for i in 0..5 {
        let id = OrderId::new_v7();
        appended.extend(
            store
                .append(&id.stream_id(), 0, placed(id, &format!("R-{i}")), &meta())
                .await
                .expect("append"),
        );
    }
    let one = store
        .read_stream(&appended[2].stream_id, 1, Some(1))
        .await
        .expect("read");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].event_id, appended[2].event_id);
    assert_eq!(one[0].traceparent, appended[2].traceparent);
    assert_eq!(one[0].payload, appended[2].payload);
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = store.read_all_page(cursor, 2).await.expect("page");
        seen.extend(page.into_iter().map(|e| e.event_id));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<Uuid> = appended.iter().map(|e| e.event_id).collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
    db.drop().await;
}

/// Events appended in one commit share `recorded_at`: paging with a page boundary inside such
/// a run must neither skip nor repeat, and pages come in log order.
#[tokio::test]
async fn read_all_page_pages_through_equal_recorded_at_in_log_order() {
    let db = TestDb::create("write").await;
    let store = EventStore::new(db.pool.clone());
    let mut appended: Vec<EventEnvelope> = Vec::new();
    for i in 0..7 {
        let id = OrderId::new_v7();
        appended.extend(
            store
                .append(&id.stream_id(), 0, placed(id, &format!("T-{i}")), &meta())
                .await
                .expect("append"),
        );
    }
    // As one commit batch would have stamped them.
    sqlx::query("UPDATE events SET recorded_at = '2026-01-01T00:00:00Z'")
        .execute(&db.pool)
        .await
        .expect("same recorded_at");

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = store.read_all_page(cursor, 3).await.expect("page");
        assert!(page.len() <= 3);
        seen.extend(page.into_iter().map(|e| (e.stream_id, e.stream_version)));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<(String, i64)> = appended
        .iter()
        .map(|e| (e.stream_id.clone(), e.stream_version))
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "every event once, by stream then version");
    assert_eq!(store.count().await.expect("count"), expected.len() as i64);
    db.drop().await;
}

/// Pages read ahead ([`EventStore::log_pages`]) come in log order, each event once, whatever
/// how far ahead the reader runs; a horizon ends the read after the first page past it; and a
/// caller that stops early leaves nothing running.
#[tokio::test]
async fn log_pages_read_ahead_in_log_order_up_to_a_horizon() {
    let db = TestDb::create("write").await;
    let store = EventStore::new(db.pool.clone());
    let mut appended: Vec<(String, i64)> = Vec::new();
    for i in 0..9 {
        let id = OrderId::new_v7();
        let events = store
            .append(&id.stream_id(), 0, placed(id, &format!("P-{i}")), &meta())
            .await
            .expect("append");
        appended.extend(events.into_iter().map(|e| (e.stream_id, e.stream_version)));
    }
    // Three runs of equal recorded_at, so page boundaries fall inside them.
    sqlx::query(
        "UPDATE events SET recorded_at = timestamptz '2026-01-01T00:00:00Z' \
                + (SELECT count(*) FROM events e2 WHERE e2.stream_id < events.stream_id) / 3 \
                  * interval '1 second'",
    )
    .execute(&db.pool)
    .await
    .expect("recorded_at in runs");
    let (in_order, _) = store.read_all_page(None, 1_000).await.expect("whole log");
    let in_order: Vec<(String, i64)> = in_order
        .into_iter()
        .map(|e| (e.stream_id, e.stream_version))
        .collect();
    let mut sorted = appended.clone();
    sorted.sort();
    let mut by_key = in_order.clone();
    by_key.sort();
    assert_eq!(by_key, sorted, "the reference read has every event");

    for (page, ahead) in [(1, 1), (2, 4), (4, 2), (100, 2)] {
        let mut pages = store.log_pages(None, page, ahead, None);
        let mut seen = Vec::new();
        while let Some(batch) = pages.next().await {
            let batch = batch.expect("page");
            assert!(!batch.is_empty() && batch.len() <= page as usize);
            seen.extend(batch.into_iter().map(|e| (e.stream_id, e.stream_version)));
        }
        assert_eq!(
            seen, in_order,
            "page {page}, ahead {ahead}: log order, each once"
        );
    }

    // The horizon at the first run's time: the read ends with the page that passes it.
    let horizon = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let mut pages = store.log_pages(None, 2, 2, Some(horizon));
    let mut seen = 0;
    while let Some(batch) = pages.next().await {
        seen += batch.expect("page").len();
    }
    let first_run = in_order.len().min(
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM events WHERE recorded_at <= '2026-01-01T00:00:00Z'",
        )
        .fetch_one(&db.pool)
        .await
        .expect("count") as usize,
    );
    assert!(
        seen > first_run && seen <= first_run + 2,
        "read {seen} events: the {first_run} up to the horizon and the rest of the page that passed it"
    );

    // Stopping after one page: the reader task is stopped with the pages.
    let mut pages = store.log_pages(None, 1, 2, None);
    assert!(pages.next().await.is_some());
    drop(pages);
    db.drop().await;
}

/// A page deep into a large log is an index range scan after the cursor, not a sort of the
/// whole table (what made every rebuild page cost more than the one before).
#[tokio::test]
async fn read_all_page_after_a_cursor_is_an_index_range_scan() {
    let db = TestDb::create("write").await;
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, \
         occurred_at, recorded_at, correlation_id, actor_kind, actor_id, payload) \
         SELECT 'order-' || md5(i::text), 1, gen_random_uuid(), 'OrderPlaced', 1, now(), \
                now() - make_interval(secs => i), gen_random_uuid(), 'service', 'test', '{}'::jsonb \
         FROM generate_series(1, 50000) AS i",
    )
    .execute(&db.pool)
    .await
    .expect("fill the log");
    sqlx::query("ANALYZE events")
        .execute(&db.pool)
        .await
        .expect("analyze");
    let recorded_at: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT now() - interval '10 hours'")
            .fetch_one(&db.pool)
            .await
            .expect("time");
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN {}",
        waybill_write_side::event_store::read_all_after_sql()
    ))
    .bind(recorded_at)
    .bind("order-")
    .bind(0_i64)
    .bind(1_000_i64)
    .fetch_all(&db.pool)
    .await
    .expect("explain");
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using events_log_order") && !plan.contains("Sort"),
        "plan:\n{plan}"
    );
    db.drop().await;
}

fn request(key: &str, channel_ref: Option<&str>, events: Vec<EventEnvelope>) -> CommitRequest {
    let order_id = events
        .first()
        .and_then(|e| OrderId::from_stream_id(&e.stream_id))
        .unwrap_or_else(OrderId::new_v7);
    CommitRequest {
        idempotency: IdempotencyRecord {
            scope: "shop".into(),
            key: key.into(),
            request_hash: vec![1, 2, 3],
            response: StoredResponse {
                status: 201,
                headers: vec![("content-type".into(), "application/json".into())],
                body: Bytes::from_static(b"{}"),
            },
        },
        channel_order: channel_ref.map(|r| ChannelOrder {
            channel: waybill_schemas::Channel::Web,
            channel_order_ref: r.into(),
            order_id,
        }),
        events,
        wake_flow: None,
    }
}

#[tokio::test]
async fn a_refused_batch_falls_back_to_per_command_outcomes() {
    let db = TestDb::create("write").await;
    let store = EventStore::new(db.pool.clone());
    let (batcher, workers) = CommitBatcher::spawn(
        db.pool.clone(),
        CommitBatcherConfig {
            max_batch: 5,
            linger: Duration::from_secs(2),
            workers: 1,
            queue_capacity: 16,
        },
    );
    // Already stored: an order (its channel ref WEB-TAKEN) under key "taken".
    let existing = OrderId::new_v7();
    let first = stamp(
        &existing.stream_id(),
        0,
        placed(existing, "WEB-TAKEN"),
        &meta(),
        Utc::now(),
    );
    assert_eq!(
        batcher
            .commit(request("taken", Some("WEB-TAKEN"), first))
            .await,
        CommitOutcome::Committed
    );

    let good = OrderId::new_v7();
    let fresh = OrderId::new_v7();
    let outcomes = futures::future::join_all(
        [
            // good
            request(
                "k-good",
                Some("WEB-GOOD"),
                stamp(
                    &good.stream_id(),
                    0,
                    placed(good, "WEB-GOOD"),
                    &meta(),
                    Utc::now(),
                ),
            ),
            // conflicting: version 1 of the existing stream is taken
            request(
                "k-conflict",
                None,
                stamp(
                    &existing.stream_id(),
                    0,
                    cancelled(existing),
                    &meta(),
                    Utc::now(),
                ),
            ),
            // idempotency key already used
            request("taken", None, Vec::new()),
            // channel reference already captured
            request(
                "k-channel",
                Some("WEB-TAKEN"),
                stamp(
                    &fresh.stream_id(),
                    0,
                    placed(fresh, "WEB-TAKEN"),
                    &meta(),
                    Utc::now(),
                ),
            ),
            // good, after the failures
            request(
                "k-good-2",
                None,
                stamp(
                    &existing.stream_id(),
                    1,
                    cancelled(existing),
                    &meta(),
                    Utc::now(),
                ),
            ),
        ]
        .map(|r| batcher.commit(r)),
    )
    .await;
    assert_eq!(
        outcomes,
        vec![
            CommitOutcome::Committed,
            CommitOutcome::StreamConflict {
                stream_id: existing.stream_id()
            },
            CommitOutcome::IdempotencyKeyTaken,
            CommitOutcome::ChannelRefTaken { order_id: existing },
            CommitOutcome::Committed,
        ]
    );
    assert_eq!(
        store
            .read_stream(&good.stream_id(), 1, None)
            .await
            .expect("read")
            .len(),
        1
    );
    assert_eq!(
        store
            .read_stream(&existing.stream_id(), 1, None)
            .await
            .expect("read")
            .len(),
        2
    );
    assert!(store
        .read_stream(&fresh.stream_id(), 1, None)
        .await
        .expect("read")
        .is_empty());
    assert_eq!(db.count("idempotency_records").await, 3);
    assert_eq!(db.count("outbox").await, 3);
    drop(batcher);
    for worker in workers {
        worker
            .await
            .expect("worker stops when the batcher is dropped");
    }
    db.drop().await;
}

#[tokio::test]
async fn a_clean_batch_commits_all_its_commands_in_one_transaction() {
    let db = TestDb::create("write").await;
    let (batcher, _workers) = CommitBatcher::spawn(
        db.pool.clone(),
        CommitBatcherConfig {
            max_batch: 50,
            linger: Duration::from_millis(50),
            workers: 1,
            queue_capacity: 64,
        },
    );
    let requests: Vec<CommitRequest> = (0..50)
        .map(|i| {
            let id = OrderId::new_v7();
            let r = format!("B-{i}");
            request(
                &format!("k-{i}"),
                Some(&r),
                stamp(&id.stream_id(), 0, placed(id, &r), &meta(), Utc::now()),
            )
        })
        .collect();
    let outcomes = futures::future::join_all(requests.into_iter().map(|r| batcher.commit(r))).await;
    assert!(outcomes.iter().all(|o| *o == CommitOutcome::Committed));
    // One transaction: every row carries the same created_at.
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT created_at) FROM outbox")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(distinct, 1);
    assert_eq!(db.count("events").await, 50);
    db.drop().await;
}

#[tokio::test]
async fn a_batch_repeating_a_key_or_a_channel_reference_commits_only_the_first_of_each() {
    let db = TestDb::create("write").await;
    let store = EventStore::new(db.pool.clone());
    let (batcher, _workers) = CommitBatcher::spawn(
        db.pool.clone(),
        CommitBatcherConfig {
            max_batch: 4,
            linger: Duration::from_secs(2),
            workers: 1,
            queue_capacity: 16,
        },
    );
    let [first, same_key, same_ref, other] = [(); 4].map(|()| OrderId::new_v7());
    let placing = |key: &str, id: OrderId, channel_ref: &str| {
        request(
            key,
            Some(channel_ref),
            stamp(
                &id.stream_id(),
                0,
                placed(id, channel_ref),
                &meta(),
                Utc::now(),
            ),
        )
    };
    let outcomes = futures::future::join_all(
        [
            placing("k-1", first, "WEB-1"),
            // the same key again, for another reference: the key is taken
            placing("k-1", same_key, "WEB-2"),
            // another key for the first command's reference: answered with the first order
            placing("k-3", same_ref, "WEB-1"),
            placing("k-4", other, "WEB-4"),
        ]
        .map(|r| batcher.commit(r)),
    )
    .await;
    assert_eq!(
        outcomes,
        vec![
            CommitOutcome::Committed,
            CommitOutcome::IdempotencyKeyTaken,
            CommitOutcome::ChannelRefTaken { order_id: first },
            CommitOutcome::Committed,
        ]
    );
    for (id, events) in [(first, 1), (same_key, 0), (same_ref, 0), (other, 1)] {
        assert_eq!(
            store
                .read_stream(&id.stream_id(), 1, None)
                .await
                .expect("read")
                .len(),
            events
        );
    }
    // The refused commands left nothing behind: no record under "k-3", no "WEB-2" capture.
    assert_eq!(db.count("idempotency_records").await, 2);
    assert_eq!(db.count("channel_orders").await, 2);
    assert_eq!(db.count("outbox").await, 2);
    db.drop().await;
}

/// An append whose COMMIT took effect but whose answer was lost (40003, or the connection
/// dropping mid-COMMIT) is repeated; the repeat meets its own rows as a stream conflict, and
/// `already_stored` recognises them by event id, so the caller is answered as if the first
/// attempt had answered — and a stranger's append at that version is still a conflict.
#[tokio::test]
async fn an_append_repeated_after_an_ambiguous_commit_recognises_its_own_commit() {
    use waybill_write_side::event_store::{already_stored, is_stream_conflict, retry, rows};
    let db = TestDb::create("write").await;
    let order_id = OrderId::new_v7();
    let envelopes = stamp(
        &order_id.stream_id(),
        0,
        placed(order_id, "AMB-1"),
        &meta(),
        Utc::now(),
    );
    let refs: Vec<&EventEnvelope> = envelopes.iter().collect();
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let written = retry::serializable_idempotent(|| async {
        let attempt = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let mut tx = retry::begin(&db.pool).await?;
        rows::insert_events_and_outbox(&mut tx, &refs, Utc::now()).await?;
        retry::commit(tx).await?;
        if attempt == 1 {
            // Committed, but the client never heard so.
            return Err(retry::ambiguous_commit("injected: answer lost"));
        }
        Ok(())
    })
    .await;
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    let error = written.expect_err("the repeat hits the rows the first attempt committed");
    assert!(is_stream_conflict(&error), "{error}");
    assert!(already_stored(&db.pool, &refs).await.expect("read"));
    assert_eq!(db.count("events").await, refs.len() as i64, "written once");

    // Someone else's events for the same versions are not ours.
    let stranger = stamp(
        &order_id.stream_id(),
        0,
        placed(order_id, "AMB-2"),
        &meta(),
        Utc::now(),
    );
    let stranger: Vec<&EventEnvelope> = stranger.iter().collect();
    assert!(!already_stored(&db.pool, &stranger).await.expect("read"));
    assert!(!already_stored(&db.pool, &[]).await.expect("read"));
    db.drop().await;
}

/// Two SERIALIZABLE transactions read the same row, then both write it: Postgres refuses one
/// with a real 40001, `retry::serializable` runs it again, and both increments land.
#[tokio::test]
async fn a_real_serialization_failure_is_retried_and_the_retry_wins() {
    use waybill_write_side::event_store::retry;
    let db = TestDb::create("write").await;
    sqlx::query("CREATE TABLE counter (id INT PRIMARY KEY, n INT NOT NULL)")
        .execute(&db.pool)
        .await
        .expect("create");
    sqlx::query("INSERT INTO counter VALUES (1, 0)")
        .execute(&db.pool)
        .await
        .expect("seed");
    let both_read = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let failures_seen = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let increment = || {
        let pool = db.pool.clone();
        let both_read = both_read.clone();
        let attempts = attempts.clone();
        let failures_seen = failures_seen.clone();
        async move {
            let mut first = true;
            retry::serializable(|| {
                let pool = pool.clone();
                let both_read = both_read.clone();
                let failures_seen = failures_seen.clone();
                attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let wait = std::mem::take(&mut first);
                async move {
                    let result = async {
                        let mut tx = retry::begin(&pool).await?;
                        let n: i32 = sqlx::query_scalar("SELECT n FROM counter WHERE id = 1")
                            .fetch_one(&mut *tx)
                            .await?;
                        if wait {
                            both_read.wait().await;
                        }
                        sqlx::query("UPDATE counter SET n = $1 WHERE id = 1")
                            .bind(n + 1)
                            .execute(&mut *tx)
                            .await?;
                        retry::commit(tx).await
                    }
                    .await;
                    if result.as_ref().is_err_and(retry::is_serialization_failure) {
                        failures_seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    result
                }
            })
            .await
        }
    };
    let (a, b) = tokio::join!(increment(), increment());
    a.expect("first increment");
    b.expect("second increment");
    let n: i32 = sqlx::query_scalar("SELECT n FROM counter WHERE id = 1")
        .fetch_one(&db.pool)
        .await
        .expect("read");
    assert!(
        failures_seen.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "Postgres refused neither transaction"
    );
    assert!(attempts.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    assert_eq!(n, 2, "both increments applied, none lost");
    db.drop().await;
}

/// Destroys the data key the personal fields of `stream` are sealed under, as an erasure does.
async fn destroy_key_of(pool: &sqlx::PgPool, stream: &str) {
    let subject: String = sqlx::query_scalar(
        "SELECT k.subject FROM pii_keys k JOIN pii_streams s ON s.key_id = k.key_id \
         WHERE s.stream_id = $1",
    )
    .bind(stream)
    .fetch_one(pool)
    .await
    .expect("the stream's key");
    let mut tx = pool.begin().await.expect("begin");
    waybill_write_side::pii::destroy_subject(&mut tx, &subject)
        .await
        .expect("destroy the key");
    tx.commit().await.expect("commit");
}

/// A payload the readers of this process opened a moment ago is reused only while its data key
/// is live: once the key is destroyed, the very next read opens the customer's fields as their
/// stand-ins, never the text opened before.
#[tokio::test]
async fn a_destroyed_key_shows_at_the_next_read_even_for_a_payload_opened_a_moment_ago() {
    use waybill_write_side::pii::fields;
    let db = TestDb::create("write").await;
    let store = EventStore::new(db.pool.clone());
    let id = OrderId::new_v7();
    let appended = store
        .append(&id.stream_id(), 0, placed(id, "ERASE-1"), &meta())
        .await
        .expect("append");
    let stored: String = sqlx::query_scalar("SELECT payload::text FROM events WHERE event_id = $1")
        .bind(appended[0].event_id)
        .fetch_one(&db.pool)
        .await
        .expect("stored payload");
    assert!(stored.contains("\"$pii\""), "stored sealed: {stored}");
    let name = |events: &[EventEnvelope]| events[0].payload.to_value()["customer"]["name"].clone();
    let original = appended[0].payload.to_value()["customer"]["name"].clone();
    assert!(original.is_string() && original != json!(fields::ERASED_TEXT));
    for _ in 0..2 {
        let read = store
            .read_stream(&id.stream_id(), 1, None)
            .await
            .expect("read");
        assert_eq!(name(&read), original, "opened while the key is live");
    }
    destroy_key_of(&db.pool, &id.stream_id()).await;
    let read = store
        .read_stream(&id.stream_id(), 1, None)
        .await
        .expect("read");
    assert_eq!(name(&read), json!(fields::ERASED_TEXT), "erased at once");
    db.drop().await;
}

/// `read_streams` keeps what it read and fetches only newer events next time: events another
/// process appended since still show, in order and once, and the cached placement's personal
/// fields are opened at every read, so destroying the customer's key shows at the next read.
#[tokio::test]
async fn read_streams_adds_what_was_appended_since_its_last_read_and_opens_it_every_time() {
    use waybill_write_side::pii::fields;
    let db = TestDb::create("write").await;
    let reader = EventStore::new(db.pool.clone());
    let writer = EventStore::new(db.pool.clone());
    let (a, b) = (OrderId::new_v7(), OrderId::new_v7());
    writer
        .append(&a.stream_id(), 0, placed(a, "CACHE-A"), &meta())
        .await
        .expect("append a");
    let name = |events: &[EventEnvelope]| events[0].payload.to_value()["customer"]["name"].clone();

    let first = reader
        .read_streams(&[a.stream_id(), b.stream_id()])
        .await
        .expect("first read");
    assert_eq!(first.len(), 1, "b has no events yet: {:?}", first.keys());
    let original = name(&first[&a.stream_id()]);
    assert!(original.is_string() && original != json!(fields::ERASED_TEXT));

    writer
        .append(&a.stream_id(), 1, cancelled(a), &meta())
        .await
        .expect("append a's cancel");
    writer
        .append(&b.stream_id(), 0, placed(b, "CACHE-B"), &meta())
        .await
        .expect("append b");
    // The same stream twice in one call reads it once.
    let second = reader
        .read_streams(&[a.stream_id(), b.stream_id(), a.stream_id()])
        .await
        .expect("second read");
    let versions = |events: &[EventEnvelope]| -> Vec<i64> {
        events.iter().map(|e| e.stream_version).collect()
    };
    assert_eq!(versions(&second[&a.stream_id()]), vec![1, 2]);
    assert_eq!(second[&a.stream_id()][1].event_type, "OrderCancelled");
    assert_eq!(versions(&second[&b.stream_id()]), vec![1]);
    assert_eq!(
        name(&second[&a.stream_id()]),
        original,
        "the cached placement opened"
    );
    assert_eq!(
        second[&a.stream_id()],
        writer
            .read_stream(&a.stream_id(), 1, None)
            .await
            .expect("a read of the whole stream"),
        "the cached prefix and the new events are the stream as stored"
    );

    destroy_key_of(&db.pool, &a.stream_id()).await;
    let third = reader
        .read_streams(&[a.stream_id()])
        .await
        .expect("third read");
    assert_eq!(versions(&third[&a.stream_id()]), vec![1, 2]);
    assert_eq!(
        name(&third[&a.stream_id()]),
        json!(fields::ERASED_TEXT),
        "erased at once, though the placement came from the cache"
    );
    db.drop().await;
}

/// Stores of one process on one database share what they read, and a cached prefix is checked
/// against the stored events at every read: a stream whose stored events are no longer the
/// cached ones (a database restored or recreated under the same name) is read whole again.
#[tokio::test]
async fn read_streams_never_answers_from_a_cache_the_database_no_longer_matches() {
    let db = TestDb::create("write").await;
    let first_reader = EventStore::new(db.pool.clone());
    let other_reader = EventStore::new(db.pool.clone());
    let id = OrderId::new_v7();
    let stream = id.stream_id();
    first_reader
        .append(&stream, 0, placed(id, "CACHE-OLD"), &meta())
        .await
        .expect("append");
    first_reader
        .append(&stream, 1, cancelled(id), &meta())
        .await
        .expect("append the cancel");
    let before = first_reader
        .read_streams(std::slice::from_ref(&stream))
        .await
        .expect("read");
    assert_eq!(before[&stream].len(), 2);

    // The stream's rows are replaced behind the process's back by other events at the same
    // versions (what a restore of another backup looks like to a running process).
    sqlx::query("DELETE FROM outbox WHERE stream_id = $1")
        .bind(&stream)
        .execute(&db.pool)
        .await
        .expect("clear the outbox rows");
    sqlx::query("DELETE FROM events WHERE stream_id = $1")
        .bind(&stream)
        .execute(&db.pool)
        .await
        .expect("clear the stream");
    first_reader
        .append(&stream, 0, placed(id, "CACHE-NEW"), &meta())
        .await
        .expect("append again");
    first_reader
        .append(&stream, 1, cancelled(id), &meta())
        .await
        .expect("append the cancel again");
    first_reader
        .append(&stream, 2, cancelled(id), &meta())
        .await
        .expect("a third event");

    // The other store shares the first one's cache; both read what is stored now.
    for reader in [&other_reader, &first_reader] {
        let after = reader
            .read_streams(std::slice::from_ref(&stream))
            .await
            .expect("read again");
        let stored = reader
            .read_stream(&stream, 1, None)
            .await
            .expect("the stream as stored");
        assert_eq!(after[&stream], stored);
        assert_eq!(after[&stream].len(), 3);
        assert_eq!(
            after[&stream][0].payload.to_value()["channel_order_ref"],
            json!("CACHE-NEW")
        );
    }
    db.drop().await;
}
