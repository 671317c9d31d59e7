//! SERIALIZABLE transactions with a bounded retry on SQLSTATE 40001, as CockroachDB requires and
//! Postgres in serializable mode may also ask for. Backoff is exponential with full jitter.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use sqlx::{PgPool, Postgres, Transaction};

/// Attempts before a serialization failure is given up on.
pub const MAX_ATTEMPTS: u32 = 8;
const BASE_DELAY: Duration = Duration::from_millis(2);
const MAX_DELAY: Duration = Duration::from_millis(250);

/// Begins a SERIALIZABLE transaction in one round trip.
pub async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN ISOLATION LEVEL SERIALIZABLE").await
}

/// SQLSTATE of a database error, if `error` is one.
pub fn sqlstate(error: &sqlx::Error) -> Option<String> {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

/// True when the database asks for the transaction to be retried.
pub fn is_serialization_failure(error: &sqlx::Error) -> bool {
    matches!(sqlstate(error).as_deref(), Some("40001") | Some("40P01"))
}

/// True when `error` says the connection (or the server behind it) failed, not the statement:
/// a socket error, or the server ending the session (SQLSTATE class 08, 57P01–57P03 after
/// `pg_terminate_backend` or a restart). The statement did not run on a live session, so an
/// attempt on another connection may succeed.
pub fn is_connection_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(_) => sqlstate(error).is_some_and(|s| {
            s.starts_with("08") || matches!(s.as_str(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// True when the database cannot be used right now: a connection failure, no connection to be
/// had within the pool's acquire timeout, or too many connections (53300). Answered 503 with
/// `Retry-After`, never 500.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    is_connection_failure(error)
        || matches!(error, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
        || sqlstate(error).as_deref() == Some("53300")
}

/// The constraint a unique violation (23505) hit, if `error` is one.
pub fn unique_violation(error: &sqlx::Error) -> Option<String> {
    let db = error.as_database_error()?;
    if db.code().as_deref() != Some("23505") {
        return None;
    }
    Some(db.constraint().unwrap_or_default().to_owned())
}

/// Runs `attempt` until it succeeds, fails with anything but a serialization failure or a
/// connection failure ([`is_connection_failure`]: a pooled connection the server closed is
/// dropped by the pool and the next attempt takes another), or has failed [`MAX_ATTEMPTS`]
/// times. Each attempt must run its own transaction from the start.
pub async fn serializable<T, F, Fut>(mut attempt: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(e) if is_serialization_failure(&e) && tries < MAX_ATTEMPTS => {
                metrics::counter!("waybill_serialization_retries_total").increment(1);
                tokio::time::sleep(backoff(tries)).await;
            }
            Err(e) if is_connection_failure(&e) && tries < MAX_ATTEMPTS => {
                metrics::counter!("waybill_db_connection_retries_total").increment(1);
                tracing::info!(error = %e, "database connection failed; retrying on another");
            }
            result => return result,
        }
    }
}

/// Full-jitter exponential backoff for the `tries`-th failure.
pub fn backoff(tries: u32) -> Duration {
    let ceiling = BASE_DELAY.saturating_mul(1 << tries.min(16)).min(MAX_DELAY);
    let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::rng().random_range(0..=micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_connection_is_retried_and_an_exhausted_pool_is_unavailable() {
        let reset = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_connection_failure(&reset()) && is_unavailable(&reset()));
        assert!(!is_connection_failure(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
    }

    #[tokio::test]
    async fn a_connection_failure_is_retried_on_another_connection() {
        let mut calls = 0;
        let answer = serializable(|| {
            calls += 1;
            let first = calls == 1;
            async move {
                if first {
                    Err(sqlx::Error::Io(std::io::Error::from(
                        std::io::ErrorKind::BrokenPipe,
                    )))
                } else {
                    Ok(7)
                }
            }
        })
        .await;
        assert_eq!(answer.ok(), Some(7));
        assert_eq!(calls, 2);
    }

    #[test]
    fn backoff_stays_under_its_cap() {
        for tries in 1..40 {
            assert!(backoff(tries) <= MAX_DELAY);
        }
    }
}
