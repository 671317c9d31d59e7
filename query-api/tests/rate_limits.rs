//! The shared rate limits against a real Redis (`REDIS_URL`): instances count together, the
//! window lets clients back in, and with Redis unreachable each process limits on its own.

use std::time::Duration;

use waybill_query_api::rate_limit::{Limiter, Quota};

/// Redis as the binary reaches it: `REDIS_URL` may name one node or a cluster's seeds.
async fn redis() -> waybill_projectors::RedisConnection {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    waybill_projectors::RedisTarget::parse(&url, false)
        .expect("REDIS_URL")
        .connect()
        .await
        .expect("Redis answers")
}

#[tokio::test]
async fn two_instances_count_against_one_limit_per_subject() {
    let prefix = format!("test-limits-{}", uuid::Uuid::now_v7());
    let quota = Quota::new(4, Duration::from_secs(60));
    // Two query API instances: separate connections, same Redis and prefix.
    let first = Limiter::new("ip", quota, redis().await, &prefix);
    let second = Limiter::new("ip", quota, redis().await, &prefix);
    for n in 0..4 {
        let limiter = if n % 2 == 0 { &first } else { &second };
        assert!(limiter.take("203.0.113.5").await.is_ok(), "hit {n}");
    }
    let wait = second.take("203.0.113.5").await.expect_err("fifth hit");
    assert!(
        wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    assert!(first.take("203.0.113.5").await.is_err());
    assert!(first.take("203.0.113.6").await.is_ok(), "per subject");
    // `check` reads without counting.
    assert!(second.check("203.0.113.5").await.is_err());
    assert!(second.check("203.0.113.7").await.is_ok());
    assert!(second.check("203.0.113.7").await.is_ok());
    // Another scope is another counter.
    let other = Limiter::new("lookup-order", quota, redis().await, &prefix);
    assert!(other.take("203.0.113.5").await.is_ok());
}

#[tokio::test]
async fn a_window_ends_and_lets_the_client_back_in() {
    let prefix = format!("test-limits-{}", uuid::Uuid::now_v7());
    let limiter = Limiter::new(
        "ip",
        Quota::new(2, Duration::from_millis(1200)),
        redis().await,
        &prefix,
    );
    assert!(limiter.take("a").await.is_ok());
    assert!(limiter.take("a").await.is_ok());
    assert!(limiter.take("a").await.is_err());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while limiter.take("a").await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "window never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn with_redis_unreachable_each_process_limits_on_its_own() {
    // A connection to a Redis that then goes away: a private server on a port of our own.
    let port = 15_120;
    let dir = std::env::temp_dir().join(format!("security-limits-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = std::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server");
    let url = format!("redis://127.0.0.1:{port}");
    let mut connection = None;
    for _ in 0..100 {
        // Configured as the binary connects (infra/src/services.rs): bounded connection
        // attempts and answers, so a dead server fails a command instead of stalling it.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(1))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        if let Ok(c) = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection_manager_with_config(config)
            .await
        {
            connection = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let limiter = Limiter::new(
        "ip",
        Quota::new(3, Duration::from_secs(60)),
        connection.expect("private redis-server answers").into(),
        "fallback",
    );
    assert!(limiter.take("c").await.is_ok(), "counted in Redis");
    server.kill().unwrap();
    server.wait().unwrap();
    // Fail open to the per-process bucket: the quota again, then refused; never an error.
    let mut allowed = 0;
    for _ in 0..10 {
        if limiter.take("c").await.is_ok() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3, "the per-process bucket holds the same quota");
    assert!(
        limiter.check("c").await.is_ok(),
        "a read-only check fails open"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
