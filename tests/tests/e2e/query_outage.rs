//! The query API through a Redis outage and a Postgres outage: while the store a read needs is
//! down it is answered 503 `application/problem+json` with `Retry-After` (never 500), and when the
//! store is back the same process serves again by itself, without a restart.

use waybill_e2e::{
    eventually, HttpResponse, RedisServer, Role, TestEnv, DEFAULT_DEADLINE, SERVICE_KEY,
};

/// A port of this test's own for its private redis-server.
const REDIS_PORT: u16 = 15110;

fn assert_unavailable(response: &HttpResponse, what: &str) {
    response.assert_problem(503, "unavailable", what);
    response.retry_after_secs(what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_api_answers_503_while_redis_is_down_and_recovers_by_itself() {
    let mut redis = RedisServer::start(REDIS_PORT).await;
    let env = TestEnv::new("query_redis_outage").await;
    let redis_url = redis.url();
    let waybill = env
        .start_with(
            Role::Query,
            &[
                ("REDIS_URL", redis_url.as_str()),
                ("WAYBILL_QUERY_RATE_LIMIT", "1000"),
            ],
        )
        .await;
    let api = waybill.api();
    let customer = env.jwt("cust-outage", "customer");
    let missing = "01a214fd-0000-7000-8000-0000000000ab";
    let reads = || async {
        (
            api.query_get("/v1/me/orders", &[], Some(&customer)).await,
            api.query_get("/v1/me/store-credit", &[], Some(&customer))
                .await,
            api.query_get(
                &format!("/v1/orders/{missing}/tracking"),
                &[],
                Some(SERVICE_KEY),
            )
            .await,
        )
    };
    let (orders, credit, tracking) = reads().await;
    assert_eq!(orders.status, 200, "{}", orders.describe());
    assert_eq!(credit.status, 200, "{}", credit.describe());
    assert_eq!(tracking.status, 404, "{}", tracking.describe());

    redis.kill_hard();
    // The first request after the crash may be the one that finds the connection dead; from
    // then on each read is 503 with Retry-After. None is ever a 500.
    let seen = std::sync::Mutex::new(Vec::new());
    eventually("503 from every Redis read", DEFAULT_DEADLINE, || async {
        let (orders, credit, tracking) = reads().await;
        let statuses = [orders.status, credit.status, tracking.status];
        seen.lock().expect("statuses").extend(statuses);
        if statuses == [503, 503, 503] {
            Ok(())
        } else {
            Err(format!(
                "{} / {} / {}",
                orders.describe(),
                credit.describe(),
                tracking.describe()
            ))
        }
    })
    .await;
    let (orders, credit, tracking) = reads().await;
    assert_unavailable(&orders, "my orders while Redis is down");
    assert_unavailable(&credit, "store credit while Redis is down");
    assert_unavailable(&tracking, "tracking while Redis is down");
    let health = api.get(&format!("{}/health", waybill.query_url())).await;
    assert_eq!(health.status, 503, "{}", health.describe());

    redis.start_again().await;
    eventually(
        "the same process reads Redis again",
        DEFAULT_DEADLINE,
        || async {
            let (orders, credit, tracking) = reads().await;
            match (orders.status, credit.status, tracking.status) {
                (200, 200, 404) => Ok(()),
                _ => Err(format!(
                    "{} / {} / {}",
                    orders.describe(),
                    credit.describe(),
                    tracking.describe()
                )),
            }
        },
    )
    .await;
    let seen = seen.into_inner().expect("statuses");
    assert!(
        !seen.iter().any(|status| *status >= 500 && *status != 503),
        "only 503s while Redis was down, saw {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_detail_answers_503_while_postgres_is_unreachable_and_recovers_by_itself() {
    let env = TestEnv::new("query_pg_outage").await;
    let all = env.start(Role::All).await;
    let placed = crate::place(
        &all.api(),
        "pg-outage-1",
        &waybill_e2e::sample_order("PG-OUT-1"),
    )
    .await;
    crate::tracking_at(&all.api(), &placed.order_id, &placed.tracking_token, 1).await;
    // A query API of its own whose Postgres connections go through a proxy the test can cut.
    let proxy = waybill_e2e::TcpProxy::start("127.0.0.1:5432".parse().expect("address")).await;
    let database_url = env
        .database_url
        .replace("127.0.0.1:5432", &proxy.addr().to_string());
    assert_ne!(
        database_url, env.database_url,
        "the test database is on 127.0.0.1:5432"
    );
    let query = env
        .start_with(Role::Query, &[("DATABASE_URL", database_url.as_str())])
        .await;
    let api = query.api();
    let detail = || async {
        api.query_get(
            &format!("/v1/agent/orders/{}", placed.order_id),
            &[],
            Some(waybill_e2e::AGENT_KEY),
        )
        .await
    };
    eventually(
        "the agent detail through the proxy",
        DEFAULT_DEADLINE,
        || async {
            let response = detail().await;
            match response.status {
                200 => Ok(()),
                _ => Err(response.describe()),
            }
        },
    )
    .await;

    proxy.cut();
    let seen = std::sync::Mutex::new(Vec::new());
    let down = eventually(
        "503 while Postgres is unreachable",
        DEFAULT_DEADLINE,
        || async {
            let response = detail().await;
            seen.lock().expect("statuses").push(response.status);
            match response.status {
                503 => Ok(response),
                _ => Err(response.describe()),
            }
        },
    )
    .await;
    assert_eq!(
        down.header("content-type"),
        Some("application/problem+json")
    );
    down.retry_after_secs("the agent detail while Postgres is unreachable");

    proxy.restore();
    eventually(
        "the same process reads Postgres again",
        DEFAULT_DEADLINE,
        || async {
            let response = detail().await;
            seen.lock().expect("statuses").push(response.status);
            match response.status {
                200 => Ok(()),
                _ => Err(response.describe()),
            }
        },
    )
    .await;
    let seen = seen.into_inner().expect("statuses");
    assert!(
        !seen.iter().any(|status| *status >= 500 && *status != 503),
        "only 503s while Postgres was unreachable, saw {seen:?}"
    );
}
