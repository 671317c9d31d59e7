//! The whole log, page after page in log order, with the next pages already being read while
//! the caller works on the current one: a task reads up to `ahead` pages ahead of the caller
//! (each with [`EventStore::read_all_page`]: a keyset range scan, decoded and with personal
//! fields opened), so a rebuild's view writes and the log's reads overlap instead of taking
//! turns. Memory stays bounded by `ahead` pages. Dropping [`LogPages`] stops the task.
//!
//! A horizon bounds the read: it ends after the first page that reaches an event recorded
//! later than the horizon, so a read started while orders arrive ends (one chasing the head
//! might never end while orders arrive faster than it reads).

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use waybill_schemas::EventEnvelope;

use super::{EventStore, EventStoreError, ReadAllCursor};

/// Pages read ahead of the caller by rebuilds and `bench log-read`: two keep the next read
/// under way while a page is applied, without holding much of the log in memory.
pub const READ_AHEAD: usize = 2;

/// Pages of the log in log order, read ahead; see the module doc.
pub struct LogPages {
    pages: mpsc::Receiver<Result<Vec<EventEnvelope>, EventStoreError>>,
    reader: tokio::task::JoinHandle<()>,
}

impl LogPages {
    /// The next page, `None` once the log (or the horizon) was reached. A failed read is
    /// answered once; the pages after it are not read.
    pub async fn next(&mut self) -> Option<Result<Vec<EventEnvelope>, EventStoreError>> {
        self.pages.recv().await
    }
}

impl Drop for LogPages {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl EventStore {
    /// Every event after `from` (`None`: the whole log) in pages of `page` events, up to
    /// `ahead` pages read before the caller asks for them (at least one), ending after the
    /// first page past `horizon` when one is given.
    pub fn log_pages(
        &self,
        from: Option<ReadAllCursor>,
        page: i64,
        ahead: usize,
        horizon: Option<DateTime<Utc>>,
    ) -> LogPages {
        let (sender, pages) = mpsc::channel(ahead.max(1));
        let events = self.clone();
        let reader = tokio::spawn(async move {
            let mut cursor = from;
            loop {
                let read = events.read_all_page(cursor.take(), page).await;
                let (batch, next) = match read {
                    Ok(read) => read,
                    Err(error) => {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                };
                let past_horizon = horizon.is_some_and(|horizon| {
                    batch.last().is_some_and(|last| last.recorded_at > horizon)
                });
                if batch.is_empty() || sender.send(Ok(batch)).await.is_err() {
                    return;
                }
                match next {
                    Some(next) if !past_horizon => cursor = Some(next),
                    _ => return,
                }
            }
        });
        LogPages { pages, reader }
    }
}
