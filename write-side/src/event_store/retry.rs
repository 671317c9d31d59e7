//! SERIALIZABLE transactions with a bounded retry on SQLSTATE 40001, as CockroachDB requires and
//! Postgres in serializable mode may also ask for. Backoff is exponential with full jitter.
//!
//! An ambiguous commit (SQLSTATE 40003, `statement_completion_unknown`: CockroachDB lost track
//! of whether the COMMIT took effect; or the connection dropping while COMMIT was in flight,
//! which [`commit`] reports the same way) is different: the transaction may have committed.
//! [`serializable`] hands it back to the caller (answered 503 `database-unavailable`, retry
//! with the same `Idempotency-Key`); only [`serializable_idempotent`] runs the attempt again,
//! for writes that recognise their own earlier commit (an idempotency key already stored, an
//! event id already at its stream version, a lease row already ours).

use std::borrow::Cow;
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
/// `pg_terminate_backend` or a restart), or a peer that does not speak the protocol (a proxy or
/// load balancer in front of a database that is down accepts the connection and closes it, which
/// sqlx reports as an unexpected answer to its SSLRequest). The statement did not run on a live
/// session, so an attempt on another connection may succeed.
pub fn is_connection_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(_) => sqlstate(error).is_some_and(|s| {
            s.starts_with("08") || matches!(s.as_str(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// SQLSTATE of an ambiguous commit: the transaction may or may not have committed.
pub const AMBIGUOUS_COMMIT: &str = "40003";

/// True when nobody knows whether the transaction committed ([`AMBIGUOUS_COMMIT`]).
pub fn is_ambiguous_commit(error: &sqlx::Error) -> bool {
    sqlstate(error).as_deref() == Some(AMBIGUOUS_COMMIT)
}

/// True when the database cannot be used right now: a connection failure, no connection to be
/// had within the pool's acquire timeout, too many connections (53300), or a commit whose
/// outcome is unknown (40003). Answered 503 with `Retry-After`, never 500.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    is_connection_failure(error)
        || matches!(error, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
        || matches!(sqlstate(error).as_deref(), Some("53300" | AMBIGUOUS_COMMIT))
}

/// Commits `tx`. A connection failure while COMMIT is in flight leaves its outcome unknown, so
/// it is reported as an ambiguous commit (40003), never as a plain connection failure that
/// [`serializable`] would repeat.
pub async fn commit(tx: Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    match tx.commit().await {
        Err(e) if is_connection_failure(&e) => Err(ambiguous_commit(format!(
            "commit outcome unknown: the connection failed while committing: {e}"
        ))),
        other => other,
    }
}

/// Runs `statement`, one statement outside any transaction: it commits on its own (as its own
/// transaction at the session's default isolation, SERIALIZABLE for Waybill's pools), so a
/// connection failure while it is in flight leaves its outcome unknown, reported as an
/// ambiguous commit (40003) as [`commit`] does.
pub async fn single_statement<T>(
    statement: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    match statement.await {
        Err(e) if is_connection_failure(&e) => Err(ambiguous_commit(format!(
            "outcome unknown: the connection failed while a statement was committing: {e}"
        ))),
        other => other,
    }
}

/// A database error made on the client side with a SQLSTATE of its choosing: an ambiguous
/// commit the client saw (the connection failing during COMMIT) rather than the server reported.
#[derive(Debug)]
pub struct ClientSideError {
    code: &'static str,
    message: String,
}

impl ClientSideError {
    /// A `sqlx::Error` with SQLSTATE `code` and `message`.
    pub fn error(code: &'static str, message: impl Into<String>) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Self {
            code,
            message: message.into(),
        }))
    }
}

/// An ambiguous commit (40003) with `message`.
pub fn ambiguous_commit(message: impl Into<String>) -> sqlx::Error {
    ClientSideError::error(AMBIGUOUS_COMMIT, message)
}

impl std::fmt::Display for ClientSideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ClientSideError {}

impl sqlx::error::DatabaseError for ClientSideError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.code))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}

/// The constraint a unique violation (23505) hit, if `error` is one.
pub fn unique_violation(error: &sqlx::Error) -> Option<String> {
    let db = error.as_database_error()?;
    if db.code().as_deref() != Some("23505") {
        return None;
    }
    Some(db.constraint().unwrap_or_default().to_owned())
}

/// Whether an attempt may be repeated after an ambiguous commit: the one retry policy, chosen
/// per call site by what the write is, not by how often it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAmbiguousCommit {
    /// The write cannot tell its own earlier commit apart: hand the 40003 back.
    Surface,
    /// The write recognises its own earlier commit: repeat it.
    Retry,
}

/// Runs `attempt` until it succeeds, fails with anything but a serialization failure or a
/// connection failure ([`is_connection_failure`]: a pooled connection the server closed is
/// dropped by the pool and the next attempt takes another), or has failed [`MAX_ATTEMPTS`]
/// times. Each attempt must run its own transaction from the start and commit it with
/// [`commit`]. An ambiguous commit is returned to the caller.
pub async fn serializable<T, F, Fut>(attempt: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    with_policy(OnAmbiguousCommit::Surface, attempt).await
}

/// Like [`serializable`], and an ambiguous commit (40003) is retried too: only for writes whose
/// repetition finds their own first commit and answers as it would have (an idempotency key,
/// an event id at an expected version, a row keyed by this caller).
pub async fn serializable_idempotent<T, F, Fut>(attempt: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    with_policy(OnAmbiguousCommit::Retry, attempt).await
}

/// The retry loop behind [`serializable`] and [`serializable_idempotent`].
pub async fn with_policy<T, F, Fut>(
    on_ambiguous: OnAmbiguousCommit,
    mut attempt: F,
) -> Result<T, sqlx::Error>
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
            Err(e)
                if is_ambiguous_commit(&e)
                    && on_ambiguous == OnAmbiguousCommit::Retry
                    && tries < MAX_ATTEMPTS =>
            {
                metrics::counter!("waybill_ambiguous_commit_retries_total").increment(1);
                tracing::warn!(error = %e, "commit outcome unknown; repeating the idempotent write");
                tokio::time::sleep(backoff(tries)).await;
            }
            Err(e) if is_connection_failure(&e) && tries < MAX_ATTEMPTS => {
                metrics::counter!("waybill_db_connection_retries_total").increment(1);
                tracing::info!(error = %e, "database connection failed; retrying on another");
                // One dead pooled connection is retried at once; a server that keeps ending
                // sessions (a restart, a failover) is given a moment, up to ~1 s in all.
                if tries > 1 {
                    tokio::time::sleep(backoff(tries)).await;
                }
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

    /// A database error carrying `code`, as the server would send it.
    fn coded(code: &'static str) -> sqlx::Error {
        ClientSideError::error(code, "injected")
    }

    /// Runs `policy` over an attempt failing with `failures` in turn, then succeeding; returns
    /// the answer and how many attempts ran.
    async fn run(
        policy: OnAmbiguousCommit,
        failures: Vec<sqlx::Error>,
    ) -> (Result<u32, sqlx::Error>, u32) {
        let failures = std::sync::Mutex::new(failures.into_iter());
        let mut calls = 0;
        let answer = with_policy(policy, || {
            calls += 1;
            let next = failures.lock().map(|mut f| f.next()).ok().flatten();
            async move { next.map_or(Ok(42), Err) }
        })
        .await;
        (answer, calls)
    }

    #[tokio::test]
    async fn serialization_failures_are_retried_under_both_policies() {
        for policy in [OnAmbiguousCommit::Surface, OnAmbiguousCommit::Retry] {
            let (answer, calls) = run(policy, vec![coded("40001"), coded("40001")]).await;
            assert_eq!(answer.ok(), Some(42));
            assert_eq!(calls, 3);
        }
    }

    #[tokio::test]
    async fn an_ambiguous_commit_is_surfaced_unless_the_write_is_idempotent() {
        let (answer, calls) = run(OnAmbiguousCommit::Surface, vec![coded("40003")]).await;
        let error = answer.expect_err("surfaced");
        assert!(is_ambiguous_commit(&error) && is_unavailable(&error));
        assert_eq!(calls, 1);

        let (answer, calls) = run(OnAmbiguousCommit::Retry, vec![coded("40003")]).await;
        assert_eq!(answer.ok(), Some(42));
        assert_eq!(calls, 2);
    }

    #[tokio::test]
    async fn a_lost_connection_during_commit_counts_as_ambiguous() {
        let lost = ambiguous_commit("connection reset");
        assert!(is_ambiguous_commit(&lost) && !is_connection_failure(&lost));
        let (answer, calls) = run(OnAmbiguousCommit::Surface, vec![lost]).await;
        assert!(answer.is_err());
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn retries_stop_after_max_attempts_and_other_errors_at_once() {
        let endless = (0..MAX_ATTEMPTS + 3).map(|_| coded("40001")).collect();
        let (answer, calls) = run(OnAmbiguousCommit::Retry, endless).await;
        assert!(answer.is_err_and(|e| is_serialization_failure(&e)));
        assert_eq!(calls, MAX_ATTEMPTS);

        let endless = (0..MAX_ATTEMPTS + 3).map(|_| coded("40003")).collect();
        let (answer, calls) = run(OnAmbiguousCommit::Retry, endless).await;
        assert!(answer.is_err_and(|e| is_ambiguous_commit(&e)));
        assert_eq!(calls, MAX_ATTEMPTS);

        let (answer, calls) = run(OnAmbiguousCommit::Retry, vec![coded("23505")]).await;
        assert!(answer.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_dead_connection_is_retried_and_an_exhausted_pool_is_unavailable() {
        let reset = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_connection_failure(&reset()) && is_unavailable(&reset()));
        assert!(!is_connection_failure(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        // A proxy in front of a database that is down accepts and closes: sqlx's TLS start-up
        // reads no answer to its SSLRequest.
        let closed = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert!(is_connection_failure(&closed) && is_unavailable(&closed));
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
