//! The checkout work list (`checkout_flows`) against a real, serializable Postgres: claims are
//! exclusive and leased, a wake-up that lands while a worker holds the row is never lost, and a
//! finished flow is deleted only if nothing woke it meanwhile.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use waybill_schemas::OrderId;
use waybill_write_side::checkout::flows::{self, Release};
use waybill_write_side::testing::TestDatabase;

async fn wake(db: &TestDatabase, orders: &[OrderId], now: chrono::DateTime<Utc>) {
    let mut conn = db.pool.acquire().await.expect("connection");
    flows::wake(&mut conn, orders, now).await.expect("wake");
}

#[tokio::test]
async fn a_claimed_flow_is_leased_and_comes_due_again_when_the_lease_runs_out() {
    let db = TestDatabase::create("flows").await;
    let now = Utc::now();
    let order = OrderId::new_v7();
    wake(&db, &[order], now).await;

    let claimed = flows::claim(&db.pool, now, Duration::seconds(30), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].order_id, order);
    assert_eq!(claimed[0].attempts, 1);
    let again = flows::claim(&db.pool, now, Duration::seconds(30), 10)
        .await
        .expect("claim again");
    assert!(again.is_empty(), "a leased flow is not handed out twice");

    // The worker died: after the lease the flow is due again.
    let later = flows::claim(
        &db.pool,
        now + Duration::seconds(31),
        Duration::seconds(30),
        10,
    )
    .await
    .expect("claim after lease");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].attempts, 2);
    db.drop().await;
}

#[tokio::test]
async fn concurrent_workers_never_claim_the_same_flow() {
    let db = TestDatabase::create("flows").await;
    let now = Utc::now();
    let orders: Vec<OrderId> = (0..200).map(|_| OrderId::new_v7()).collect();
    wake(&db, &orders, now).await;

    let claims = (0..6).map(|_| {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = flows::claim(&pool, now, Duration::seconds(60), 17)
                    .await
                    .expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.order_id));
            }
        })
    });
    let mut seen = HashSet::new();
    let mut total = 0;
    for claim in claims {
        for order in claim.await.expect("worker") {
            total += 1;
            seen.insert(order);
        }
    }
    assert_eq!(total, 200, "every flow claimed exactly once");
    assert_eq!(seen.len(), 200);
    db.drop().await;
}

#[tokio::test]
async fn a_wake_up_during_a_pass_overrides_the_park_and_the_finish() {
    let db = TestDatabase::create("flows").await;
    let now = Utc::now();
    let parked = OrderId::new_v7();
    let finished = OrderId::new_v7();
    let quiet = OrderId::new_v7();
    wake(&db, &[parked, finished, quiet], now).await;
    let claimed = flows::claim(&db.pool, now, Duration::seconds(30), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);

    // A webhook wakes two of them while the worker still holds them.
    wake(&db, &[parked, finished], now).await;
    let by_id = |id| *claimed.iter().find(|c| c.order_id == id).expect("claimed");
    let deadline = now + Duration::minutes(15);
    flows::release(
        &db.pool,
        &[
            (
                by_id(parked),
                Release::Park {
                    due_at: deadline,
                    stage: "payment_challenge",
                },
            ),
            (by_id(finished), Release::Finish),
            (by_id(quiet), Release::Finish),
        ],
        now,
    )
    .await
    .expect("release");

    let due = flows::claim(&db.pool, now, Duration::seconds(30), 10)
        .await
        .expect("claim woken");
    let due: HashSet<OrderId> = due.into_iter().map(|c| c.order_id).collect();
    assert_eq!(
        due,
        HashSet::from([parked, finished]),
        "woken flows run again now"
    );
    assert_eq!(
        db.count("checkout_flows").await,
        2,
        "the quiet one was finished"
    );
    db.drop().await;
}

#[tokio::test]
async fn a_parked_flow_waits_for_its_deadline_and_lists_in_its_stage() {
    let db = TestDatabase::create("flows").await;
    let now = Utc::now();
    let order = OrderId::new_v7();
    wake(&db, &[order], now).await;
    let claimed = flows::claim(&db.pool, now, Duration::seconds(30), 10)
        .await
        .expect("claim");
    let deadline = now + Duration::hours(48);
    flows::release(
        &db.pool,
        &[(
            claimed[0],
            Release::Park {
                due_at: deadline,
                stage: "review",
            },
        )],
        now,
    )
    .await
    .expect("park");

    let before = flows::claim(
        &db.pool,
        deadline - Duration::seconds(1),
        Duration::seconds(30),
        10,
    )
    .await
    .expect("claim before");
    assert!(before.is_empty());
    let queue = flows::waiting_in(&db.pool, "review", None, 10)
        .await
        .expect("review queue");
    assert_eq!(
        queue.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![order]
    );
    let at = flows::claim(&db.pool, deadline, Duration::seconds(30), 10)
        .await
        .expect("claim at deadline");
    assert_eq!(at.len(), 1, "due at its deadline");
    db.drop().await;
}

#[tokio::test]
async fn a_pass_that_fails_on_the_database_hands_its_claims_back_instead_of_leasing_them() {
    use std::sync::Arc;
    use waybill_write_side::checkout::{run_pass, CheckoutServices};
    use waybill_write_side::domain::risk::RiskRules;
    use waybill_write_side::domain::FlowPolicy;
    use waybill_write_side::event_store::EventStore;
    use waybill_write_side::inventory::{Inventory, InventoryConfig};
    use waybill_write_side::payment::HttpGateway;

    let db = TestDatabase::create("flows").await;
    let orders: Vec<OrderId> = (0..3).map(|_| OrderId::new_v7()).collect();
    wake(&db, &orders, Utc::now() - Duration::seconds(1)).await;
    let lease = Duration::seconds(30);
    let services = CheckoutServices {
        pool: db.pool.clone(),
        store: EventStore::new(db.pool.clone()),
        inventory: Inventory::spawn(db.pool.clone(), InventoryConfig::default()),
        // Never reached: the pass fails before any step.
        gateway: Arc::new(
            HttpGateway::new(
                "http://127.0.0.1:9",
                "unused",
                std::time::Duration::from_secs(1),
            )
            .expect("gateway"),
        ),
        risk_rules: Arc::new(RiskRules::default()),
        policy: FlowPolicy::default(),
        risk_window: Duration::minutes(60),
        lease,
        batch: 10,
        risk_lock: Arc::default(),
    };
    // The pass claims its rows, then the database refuses it: the event log cannot be read.
    sqlx::query("ALTER TABLE events RENAME TO events_unavailable")
        .execute(&db.pool)
        .await
        .expect("rename");
    let started = Utc::now();
    let failed = run_pass(&services, started).await;
    assert!(failed.is_err(), "the pass failed: {failed:?}");

    let rows: Vec<(chrono::DateTime<Utc>, String, Option<String>)> =
        sqlx::query_as("SELECT due_at, stage, last_error FROM checkout_flows")
            .fetch_all(&db.pool)
            .await
            .expect("rows");
    assert_eq!(rows.len(), 3);
    for (due_at, stage, last_error) in &rows {
        assert!(
            *due_at < started + Duration::seconds(5),
            "due again within seconds, not after the {lease} lease: {due_at} (pass at {started})"
        );
        assert_eq!(stage, "retry");
        assert!(
            last_error.as_deref().is_some_and(|e| e.contains("events")),
            "the error is kept: {last_error:?}"
        );
    }

    // The database is back: the next pass takes them up without waiting out the lease.
    sqlx::query("ALTER TABLE events_unavailable RENAME TO events")
        .execute(&db.pool)
        .await
        .expect("rename back");
    let again = flows::claim(&db.pool, started + Duration::seconds(5), lease, 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 3);
    db.drop().await;
}
