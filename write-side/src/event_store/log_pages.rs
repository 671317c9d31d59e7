//! The whole log, page after page in log order, with the next pages already being read while
//! the caller works on the current one, so a rebuild's view writes and the log's reads overlap
//! instead of taking turns. Reading a page is two halves: fetching its rows (a keyset range
//! scan, payloads as their stored text) and decoding them (payloads parsed, personal fields
//! opened), which costs the most. A reader task fetches page after page and hands each page's
//! decoding to a task of its own, so up to `ahead` pages decode at once, on as many cores, while
//! the next rows are fetched; the caller gets the pages in log order. Memory stays bounded by
//! about `ahead` + 1 pages. Dropping [`LogPages`] stops the reader.
//!
//! A horizon bounds the read: it ends after the first page that reaches an event recorded
//! later than the horizon, so a read started while orders arrive ends (one chasing the head
//! might never end while orders arrive faster than it reads).

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use waybill_schemas::EventEnvelope;

use super::{EventStore, EventStoreError, ReadAllCursor};

/// Pages read ahead of the caller by rebuilds and `bench log-read`: two keep the next read
/// under way while a page is applied, without holding much of the log in memory.
pub const READ_AHEAD: usize = 2;

/// Pages of the log in log order, read ahead; see the module doc.
pub struct LogPages {
    pages: mpsc::Receiver<Result<Decoding, EventStoreError>>,
    reader: JoinHandle<()>,
}

/// A page being decoded by a task of its own.
type Decoding = JoinHandle<Result<Vec<EventEnvelope>, EventStoreError>>;

impl LogPages {
    /// The next page, `None` once the log (or the horizon) was reached. A failed read is
    /// answered once; the pages after it are not read.
    pub async fn next(&mut self) -> Option<Result<Vec<EventEnvelope>, EventStoreError>> {
        let decoding = match self.pages.recv().await? {
            Ok(decoding) => decoding,
            Err(error) => return Some(Err(error)),
        };
        Some(match decoding.await {
            Ok(decoded) => decoded,
            // A decoding task panicked (or the runtime is shutting down): nothing to go on with.
            Err(error) => std::panic::resume_unwind(match error.try_into_panic() {
                Ok(panic) => panic,
                Err(error) => Box::new(error.to_string()),
            }),
        })
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
                let (rows, next) = match events.fetch_log_rows(cursor.take(), page).await {
                    Ok(fetched) => fetched,
                    Err(error) => {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                };
                if rows.is_empty() {
                    return;
                }
                let decoder = events.clone();
                let decoding = tokio::spawn(async move { decoder.decode_log_rows(rows).await });
                if sender.send(Ok(decoding)).await.is_err() {
                    return;
                }
                // `next` is the page's last row: past the horizon, this page was the last.
                match next {
                    Some(next) if horizon.is_none_or(|horizon| next.recorded_at <= horizon) => {
                        cursor = Some(next)
                    }
                    _ => return,
                }
            }
        });
        LogPages { pages, reader }
    }
}
