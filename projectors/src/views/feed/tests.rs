//! The feed against the real Postgres: compare-and-set per stream, positions in order, and
//! concurrent writers never leaving a reader a gap it could step over.

#![allow(clippy::unwrap_used)]

use waybill_schemas::OrderId;
use waybill_write_side::subscriptions::feed;
use waybill_write_side::testing::TestDatabase;

use super::*;
use crate::testing::placed_event;

fn entry(stream: &str, version: i64) -> FeedEntry {
    FeedEntry {
        stream_id: stream.to_owned(),
        stream_version: version,
        event_type: "OrderPlaced".to_owned(),
    }
}

#[test]
fn apply_collects_a_streams_entries_in_order() {
    let order = OrderId::new_v7();
    let one = apply(None, &placed_event(order, 1));
    let two = apply(Some(&one), &placed_event(order, 2));
    assert_eq!(two.version, 2);
    assert_eq!(
        two.pending,
        vec![entry(&order.stream_id(), 1), entry(&order.stream_id(), 2)]
    );
}

#[tokio::test]
async fn appends_are_compare_and_set_per_stream_and_positions_follow_the_order_given() {
    let db = TestDatabase::create("feed_cas").await;
    let view = FeedProjection::new(db.pool.clone());
    let written = view
        .store(vec![
            ViewWrite {
                stream_id: "a".into(),
                expected_version: 0,
                state: FeedState {
                    version: 2,
                    pending: vec![entry("a", 1), entry("a", 2)],
                },
            },
            ViewWrite {
                stream_id: "b".into(),
                expected_version: 0,
                state: FeedState {
                    version: 1,
                    pending: vec![entry("b", 1)],
                },
            },
        ])
        .await
        .unwrap();
    assert_eq!(written, vec![true, true]);
    // A redelivered batch (the stream moved on) appends nothing.
    let again = view
        .store(vec![ViewWrite {
            stream_id: "a".into(),
            expected_version: 0,
            state: FeedState {
                version: 1,
                pending: vec![entry("a", 1)],
            },
        }])
        .await
        .unwrap();
    assert_eq!(again, vec![false]);
    let loaded = view
        .load(&["a".into(), "b".into(), "c".into()])
        .await
        .unwrap();
    assert_eq!(loaded[0].as_ref().map(|s| s.version), Some(2));
    assert_eq!(loaded[1].as_ref().map(|s| s.version), Some(1));
    assert_eq!(loaded[2], None);
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT position, stream_id, stream_version FROM event_feed ORDER BY position",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![(1, "a".into(), 1), (2, "a".into(), 2), (3, "b".into(), 1)]
    );
    assert_eq!(feed::head(&db.pool).await.unwrap(), 3);
    db.drop().await;
}

#[tokio::test]
async fn concurrent_writers_hand_out_every_position_once_and_in_commit_order() {
    let db = TestDatabase::create("feed_concurrent").await;
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..10 {
                let stream = format!("s{writer}-{round}");
                let append = feed::StreamAppend {
                    stream_id: stream.clone(),
                    expected_version: 0,
                    version: 3,
                    entries: (1..=3).map(|v| entry(&stream, v)).collect(),
                };
                // Four writers on the one head row: after its own retries an append may still
                // lose to the others (40001 on a loaded machine); its caller, the view runtime,
                // then tries the batch again, and so does this writer.
                let appended = loop {
                    match feed::append(&pool, std::slice::from_ref(&append)).await {
                        Err(e)
                            if waybill_write_side::event_store::retry::is_serialization_failure(
                                &e,
                            ) =>
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                        other => break other.unwrap(),
                    }
                };
                assert_eq!(appended, vec![true]);
            }
        }));
    }
    // A reader paging meanwhile sees positions 1..n with no hole at any moment.
    let reader = {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                let positions: Vec<i64> =
                    sqlx::query_scalar("SELECT position FROM event_feed ORDER BY position")
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                let expected: Vec<i64> = (1..=positions.len() as i64).collect();
                assert_eq!(positions, expected, "a reader saw a hole in the feed");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    for task in tasks {
        task.await.unwrap();
    }
    reader.await.unwrap();
    assert_eq!(db.count("event_feed").await, 120);
    assert_eq!(feed::head(&db.pool).await.unwrap(), 120);
    // Each stream's versions got increasing positions.
    let inversions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_feed a JOIN event_feed b \
         ON a.stream_id = b.stream_id AND a.stream_version < b.stream_version \
         AND a.position > b.position",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(inversions, 0);
    db.drop().await;
}
