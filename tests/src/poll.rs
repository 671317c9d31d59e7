//! Waiting for an outcome without sleeping "long enough": poll with a deadline.

use std::future::Future;
use std::time::Duration;

/// How long a test waits for something the pipeline does asynchronously.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Calls `probe` every 50 ms until it returns `Some`, and returns that value; panics after
/// `deadline` with `what` and the last state `probe` described through `Err`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(state) => state,
        };
        if tokio::time::Instant::now() >= until {
            panic!("timed out after {deadline:?} waiting for {what}; last state: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
