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
