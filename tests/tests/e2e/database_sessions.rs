//! Pooled Postgres connections the server closed (`pg_terminate_backend`, a restart) never fail
//! a request: a connection that sat idle is checked before use, one that fails its statement is
//! dropped and the statement repeated on another.

use waybill_e2e::{sample_order, Role, TestEnv, ADMIN_KEY};

/// Terminates every session of this test's own database except the one asking.
async fn terminate_sessions(env: &TestEnv) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()) AS terminated",
    )
    .bind(&env.database)
    .fetch_one(env.db())
    .await
    .expect("pg_terminate_backend")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_the_database_terminated_every_session_succeed() {
    let env = TestEnv::new("db_sessions").await;
    let waybill = env.start(Role::Commands).await;
    let api = waybill.api();
    let place = |n: usize| {
        let api = &api;
        async move {
            let key = format!("db-sessions-{n}");
            api.place_order(&key, &sample_order(&format!("DBS-{n}")))
                .await
        }
    };
    // Several orders at once, so the pool holds several connections.
    let warm = futures::future::join_all((0..6).map(place)).await;
    for placed in &warm {
        assert!(placed.status < 300, "{}", placed.describe());
    }

    for round in 0..2 {
        let terminated = terminate_sessions(&env).await;
        assert!(
            terminated > 0,
            "round {round}: the binary's sessions were terminated"
        );
        // Right away (connections that were just in use) …
        for n in 0..4 {
            let placed = place(100 * (round + 1) + n).await;
            assert!(
                placed.status < 300,
                "round {round}, order {n}: {}",
                placed.describe()
            );
        }
        let stock = api
            .command_get("/v1/inventory/stock/TEE-RED-M", ADMIN_KEY)
            .await;
        assert_eq!(stock.status, 200, "{}", stock.describe());
    }
}

/// Issue 13.7: commands in flight while Postgres terminates the command API's sessions over and
/// over. Every answer is the command's outcome or 503 problem+json with `Retry-After`, never a
/// 500; a client that retries a 503 with the same `Idempotency-Key` gets its outcome, and the
/// log holds every order and every cancellation exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_in_flight_while_sessions_are_terminated_answer_503_at_worst_and_apply_once() {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use waybill_e2e::{sample_cancel, HttpResponse};

    const WORKERS: usize = 4;
    const ORDERS: usize = 12;
    let env = TestEnv::new("db_sessions_load").await;
    let waybill = env.start(Role::Commands).await;
    let api = waybill.api();
    let statuses: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let bad: Arc<Mutex<Vec<String>>> = Arc::default();

    // Sends one command until it is answered with something other than 503.
    async fn until_answered(
        what: &str,
        statuses: &Mutex<BTreeMap<u16, u64>>,
        bad: &Mutex<Vec<String>>,
        send: impl Fn() -> futures::future::BoxFuture<'static, HttpResponse>,
    ) -> HttpResponse {
        for _ in 0..100 {
            let response = send().await;
            *statuses
                .lock()
                .expect("statuses")
                .entry(response.status)
                .or_default() += 1;
            if response.status != 503 {
                return response;
            }
            if response.header("retry-after").is_none()
                || response.header("content-type") != Some("application/problem+json")
            {
                bad.lock()
                    .expect("bad")
                    .push(format!("{what}: {}", response.describe()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: still 503 after 100 tries");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let terminator = {
        let stop = stop.clone();
        let database = env.database.clone();
        let pool = env.db().clone();
        tokio::spawn(async move {
            let mut rounds = 0u64;
            let mut terminated = 0i64;
            while !stop.load(Ordering::Relaxed) {
                terminated += sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()) AS terminated",
                )
                .bind(&database)
                .fetch_one(&pool)
                .await
                .expect("pg_terminate_backend");
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            (rounds, terminated)
        })
    };

    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (api, statuses, bad) = (api.clone(), statuses.clone(), bad.clone());
            tokio::spawn(async move {
                let mut placed = Vec::new();
                for n in 0..ORDERS {
                    let reference = format!("DBL-{worker}-{n}");
                    let key = format!("dbl-{worker}-{n}");
                    let body = sample_order(&reference);
                    let response = until_answered(&reference, &statuses, &bad, || {
                        let (api, key, body) = (api.clone(), key.clone(), body.clone());
                        Box::pin(async move { api.place_order(&key, &body).await })
                    })
                    .await;
                    assert_eq!(response.status, 201, "{}", response.describe());
                    let order_id = response.json()["order_id"]
                        .as_str()
                        .expect("order_id")
                        .to_owned();
                    if n % 3 == 0 {
                        let key = format!("dbl-cancel-{worker}-{n}");
                        let cancelled = until_answered(&reference, &statuses, &bad, || {
                            let (api, key, order_id) = (api.clone(), key.clone(), order_id.clone());
                            Box::pin(async move {
                                api.cancel_order(
                                    &order_id,
                                    &key,
                                    &sample_cancel("customer_request"),
                                )
                                .await
                            })
                        })
                        .await;
                        assert_eq!(cancelled.status, 200, "{}", cancelled.describe());
                    }
                    placed.push((key, body, order_id));
                }
                placed
            })
        })
        .collect();
    let mut placed = Vec::new();
    for worker in workers {
        placed.extend(worker.await.expect("worker"));
    }
    stop.store(true, Ordering::Relaxed);
    let (rounds, terminated) = terminator.await.expect("terminator");
    let statuses = statuses.lock().expect("statuses").clone();
    eprintln!(
        "{rounds} termination rounds, {terminated} sessions terminated; answers {statuses:?}"
    );
    assert!(terminated > 0, "sessions were terminated");
    assert_eq!(bad.lock().expect("bad").clone(), Vec::<String>::new());
    assert!(
        statuses
            .keys()
            .all(|status| [200, 201, 503].contains(status)),
        "only outcomes and 503s: {statuses:?}"
    );

    // Each order and each cancellation once in the log; a retry now replays the first answer.
    let orders = WORKERS * ORDERS;
    let cancels = WORKERS * ORDERS.div_ceil(3);
    let db = env.db().clone();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .expect("count")
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'").await,
        orders as i64
    );
    assert_eq!(
        count("SELECT count(DISTINCT stream_id) FROM events WHERE event_type = 'OrderPlaced'")
            .await,
        orders as i64
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE event_type = 'OrderCancelled'").await,
        cancels as i64
    );
    for (key, body, order_id) in placed {
        let again = api.place_order(&key, &body).await;
        assert!(again.status < 300, "{}", again.describe());
        assert_eq!(again.json()["order_id"], order_id.as_str(), "{key}");
    }
}
