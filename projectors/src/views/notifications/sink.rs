//! Where notifications go. [`NotificationSink`] is the seam a mail or SMS provider plugs into;
//! [`FileSink`] is the development sink: it sends nothing, it writes every message as a text
//! file a person can read (an email also as the HTML part a mail client would show), and keeps
//! an `index.html` listing them newest first.
//!
//! Delivery is at least once (the projector may hand the same message over again after a crash
//! or a lost compare-and-set), so a sink must treat [`Notification::id`] as an idempotency key.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use maud::{html, DOCTYPE};
use uuid::Uuid;
use waybill_schemas::OrderId;

use super::email_html::email_html;
use super::render::{Medium, Notification, NotificationKind};

/// Newest messages listed in `index.html`; older ones stay in the directory.
const INDEX_LIMIT: usize = 500;

/// `index.html` is written again at most this often (see [`FileSink`]).
pub const INDEX_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("notification file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("notification sink task failed: {0}")]
    Task(String),
    #[error("notification refused: {0}")]
    Refused(String),
    /// A provider, the ledger or the preferences cannot be used right now; the batch is tried
    /// again.
    #[error("notifications cannot be delivered right now: {0}")]
    Unavailable(String),
}

/// Takes messages for delivery. Idempotent per [`Notification::id`]: handing over a message
/// again must not send it twice.
pub trait NotificationSink: Send + Sync + 'static {
    fn deliver(
        &self,
        messages: Vec<Notification>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Removes whatever the sink keeps of the messages of `orders` (an erasure). Providers
    /// that only send keep nothing.
    fn forget(&self, orders: Vec<OrderId>) -> impl Future<Output = Result<(), SinkError>> + Send {
        let _ = orders;
        async { Ok(()) }
    }
}

/// Development sink: `<dir>/<occurred_at>-<order_id>-<kind>-<event_id>.<medium>.txt` per
/// message (To, Subject, body) and `<dir>/index.html`. A new message's file is created and
/// written in place (one file creation per file: creating a temporary file and renaming it as
/// well cost about as much as the rest of the view). A redelivered event replaces its own file
/// through a temporary file and a rename instead of adding one; a crash in the middle of a
/// first write can leave a cut file, which that redelivery then replaces whole (the ledger
/// records a message as sent only once its files are written).
///
/// The index lists the newest [`INDEX_LIMIT`] messages and is written again at most every
/// [`INDEX_INTERVAL`]: a burst of messages costs one index, not one per message, and a message
/// is listed at most that long after its file was written. The sink reads the directory once,
/// on its first delivery, and then keeps the listing itself, so a delivery costs the same
/// however many messages the directory holds. (A second process writing the same directory is
/// only seen after a restart.)
#[derive(Debug, Clone)]
pub struct FileSink {
    dir: PathBuf,
    listing: Arc<Mutex<Option<Listing>>>,
}

/// What the index shows: the newest file names, and how many message files there are; and
/// when the index was last written, and whether a write of it is scheduled.
#[derive(Debug, Default)]
struct Listing {
    newest: BTreeSet<String>,
    total: usize,
    written_at: Option<Instant>,
    scheduled: bool,
}

impl Listing {
    fn add(&mut self, file: String) {
        self.newest.insert(file);
        if self.newest.len() > INDEX_LIMIT {
            self.newest.pop_first();
        }
    }
}

impl FileSink {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            listing: Arc::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a message is written to.
    pub fn file_name(message: &Notification) -> String {
        format!(
            "{}-{}-{}-{}.{}.txt",
            message.occurred_at.format("%Y%m%dT%H%M%S%.3fZ"),
            message.order_id,
            message.kind.as_str(),
            message.event_id,
            message.medium.as_str()
        )
    }

    /// Writes one message and the index (what [`super::channel::Channel`] does for a file).
    pub fn write_one(&self, message: &Notification) -> Result<(), SinkError> {
        self.write_all(std::slice::from_ref(message))
    }

    fn write_all(&self, messages: &[Notification]) -> Result<(), SinkError> {
        let io = |source| SinkError::Io {
            path: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let mut guard = self.lock()?;
        let listing = match guard.as_mut() {
            Some(listing) => listing,
            None => guard.insert(self.read_listing()?),
        };
        for message in messages {
            let name = Self::file_name(message);
            let created = write_file(&self.dir.join(&name), file_text(message).as_bytes())?;
            if message.medium == Medium::Email {
                write_file(
                    &self.dir.join(html_twin(&name)),
                    email_html(message).as_bytes(),
                )?;
            }
            if created {
                listing.total += 1;
            }
            listing.add(name);
        }
        let now = Instant::now();
        let wait = listing
            .written_at
            .map_or(Duration::ZERO, |at| INDEX_INTERVAL.saturating_sub(now - at));
        if listing.scheduled {
            return Ok(());
        }
        // Outside a runtime (nothing could write it later) the index is written at once.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !wait.is_zero() => {
                listing.scheduled = true;
                let sink = self.clone();
                runtime.spawn(async move {
                    tokio::time::sleep(wait).await;
                    let written = tokio::task::spawn_blocking(move || sink.flush_index()).await;
                    match written {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::warn!(%error, "notification index not written"),
                        Err(error) => tracing::warn!(%error, "notification index task failed"),
                    }
                });
                Ok(())
            }
            _ => self.write_index(listing),
        }
    }

    /// Writes the index now if a write of it is scheduled (what the scheduled write does; a
    /// caller that must see every message listed at once calls it too). A directory removed in
    /// the meantime (a finished bench's) is left removed: the next message creates it again.
    pub fn flush_index(&self) -> Result<(), SinkError> {
        let mut guard = self.lock()?;
        match guard.as_mut() {
            Some(listing) if listing.scheduled && self.dir.is_dir() => self.write_index(listing),
            Some(listing) => {
                listing.scheduled = false;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn write_index(&self, listing: &mut Listing) -> Result<(), SinkError> {
        listing.scheduled = false;
        listing.written_at = Some(Instant::now());
        write_replacing(&self.dir.join("index.html"), index_html(listing).as_bytes())
    }

    fn lock(&self) -> Result<MutexGuard<'_, Option<Listing>>, SinkError> {
        self.listing
            .lock()
            .map_err(|_| SinkError::Task("file sink listing poisoned".to_owned()))
    }

    /// Deletes the message files of `orders` (and their HTML twins) and writes the index again.
    pub fn forget_orders(&self, orders: &[OrderId]) -> Result<(), SinkError> {
        let io = |source| SinkError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut guard = self.lock()?;
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        let marks: Vec<String> = orders.iter().map(|o| format!("-{o}-")).collect();
        for entry in entries {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            if name
                .to_str()
                .is_some_and(|n| marks.iter().any(|m| n.contains(m.as_str())))
            {
                std::fs::remove_file(entry.path()).map_err(io)?;
            }
        }
        let listing = guard.insert(self.read_listing()?);
        self.write_index(listing)
    }

    /// The message files already in the directory.
    fn read_listing(&self) -> Result<Listing, SinkError> {
        let io = |source| SinkError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut listing = Listing::default();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            if let Some(name) = name.to_str().filter(|n| IndexEntry::parse(n).is_some()) {
                listing.total += 1;
                listing.add(name.to_owned());
            }
        }
        Ok(listing)
    }
}

impl NotificationSink for FileSink {
    async fn deliver(&self, messages: Vec<Notification>) -> Result<(), SinkError> {
        if messages.is_empty() {
            return Ok(());
        }
        let sink = self.clone();
        tokio::task::spawn_blocking(move || sink.write_all(&messages))
            .await
            .map_err(|err| SinkError::Task(err.to_string()))?
    }

    async fn forget(&self, orders: Vec<OrderId>) -> Result<(), SinkError> {
        let sink = self.clone();
        tokio::task::spawn_blocking(move || sink.forget_orders(&orders))
            .await
            .map_err(|err| SinkError::Task(err.to_string()))?
    }
}

fn file_text(message: &Notification) -> String {
    let mut text = format!("To: {}\n", message.to);
    if let Some(subject) = &message.subject {
        text.push_str(&format!("Subject: {subject}\n"));
    }
    text.push_str(&format!(
        "Date: {}\nMedium: {}\nOrder: {}\nEvent: {}\n\n{}\n",
        message.occurred_at.to_rfc3339(),
        message.medium.as_str(),
        message.order_id,
        message.event_id,
        message.body.trim_end()
    ));
    text
}

/// Writes `bytes` to `path`: in place when there is no such file yet (answers true), else
/// through [`write_replacing`] (false).
fn write_file(path: &Path, bytes: &[u8]) -> Result<bool, SinkError> {
    let io = |source| SinkError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => file.write_all(bytes).map(|()| true).map_err(io),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            write_replacing(path, bytes).map(|()| false)
        }
        Err(error) => Err(io(error)),
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), SinkError> {
    let temp = path.with_file_name(format!(".{}.tmp", Uuid::now_v7().simple()));
    let io = |source| SinkError::Io {
        path: path.to_owned(),
        source,
    };
    let written = std::fs::File::create(&temp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io(err));
    }
    Ok(())
}

/// A message file as the index lists it, read back from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexEntry {
    file: String,
    time: String,
    order_id: String,
    kind: NotificationKind,
    medium: Medium,
}

impl IndexEntry {
    /// `<time>-<order uuid>-<kind>-<event uuid>.<medium>.txt`; anything else is not ours.
    fn parse(file: &str) -> Option<Self> {
        let stem = file.strip_suffix(".txt")?;
        let (rest, medium) = stem.rsplit_once('.')?;
        let (time, rest) = rest.split_once('-')?;
        let order_id = rest.get(..36)?;
        let rest = rest.get(36..)?.strip_prefix('-')?;
        let (kind, event_id) = rest.split_once('-')?;
        Uuid::parse_str(order_id).ok()?;
        Uuid::parse_str(event_id).ok()?;
        Some(Self {
            file: file.to_owned(),
            time: time.to_owned(),
            order_id: order_id.to_owned(),
            kind: NotificationKind::from_name(kind)?,
            medium: Medium::from_name(medium)?,
        })
    }
}

fn index_html(listing: &Listing) -> String {
    // The file names start with the time, so the newest sort last.
    let entries: Vec<IndexEntry> = listing
        .newest
        .iter()
        .rev()
        .filter_map(|file| IndexEntry::parse(file))
        .collect();
    let older = listing.total.saturating_sub(listing.newest.len());
    html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { "Waybill notifications" }
                style {
                    "body{font-family:sans-serif;margin:2em}td,th{padding:.2em .8em;text-align:left}\
                     tr:nth-child(even){background:#f4f4f4}"
                }
            }
            body {
                h1 { "Waybill notifications" }
                p {
                    "Messages the development sink received, newest first. Nothing was sent: each \
                     message is the text file it links to (emails also as HTML)."
                }
                table {
                    tr { th { "time (UTC)" } th { "order" } th { "message" } th { "medium" } }
                    @for entry in &entries {
                        tr {
                            td { (readable_time(&entry.time)) }
                            td { (entry.order_id) }
                            td {
                                a href=(entry.file) { (entry.kind.title()) }
                                @if entry.medium == Medium::Email {
                                    " (" a href=(html_twin(&entry.file)) { "HTML" } ")"
                                }
                            }
                            td { (entry.medium.as_str()) }
                        }
                    }
                }
                @if older > 0 {
                    p { (older.to_string()) " older messages are in this directory." }
                }
            }
        }
    }
    .into_string()
}

/// The HTML part of an email written beside its text file: `<name>.txt` → `<name>.html`.
fn html_twin(text_file: &str) -> String {
    format!(
        "{}.html",
        text_file.strip_suffix(".txt").unwrap_or(text_file)
    )
}

/// `20251124T160006.000Z` as `2025-11-24 16:00:06`; anything else as it is.
fn readable_time(stamp: &str) -> String {
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ")
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| stamp.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::at;
    use waybill_schemas::OrderId;

    fn scratch_dir() -> PathBuf {
        std::env::temp_dir().join(format!("waybill-sink-{}", Uuid::now_v7().simple()))
    }

    fn message(seconds: i64, kind: NotificationKind, medium: Medium) -> Notification {
        Notification {
            event_id: Uuid::now_v7(),
            order_id: OrderId::new_v7(),
            kind,
            medium,
            to: "ada@example.com".into(),
            subject: Some("Your order WEB-1 is confirmed".into()),
            body: "Hello Ada,\n\nIt is confirmed.\n".into(),
            occurred_at: at(seconds),
            locale: crate::views::notifications::render::Locale::En,
            requested: false,
            draft: crate::views::notifications::render::test_draft(OrderId::new_v7()),
        }
    }

    fn txt_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".txt"))
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn an_email_gets_its_html_part_beside_it_and_the_index_links_both() {
        let dir = scratch_dir();
        let sink = FileSink::new(&dir);
        let mut email = message(1, NotificationKind::OrderReceived, Medium::Email);
        email.body = "Hello <script>alert(1)</script>,\n\nThanks.\n".into();
        let sms = message(2, NotificationKind::OrderReceived, Medium::Sms);
        sink.deliver(vec![email.clone(), sms.clone()])
            .await
            .expect("deliver");
        let text_name = FileSink::file_name(&email);
        let html = std::fs::read_to_string(dir.join(html_twin(&text_name))).expect("html part");
        assert!(
            html.contains("Hello &lt;script&gt;alert(1)&lt;/script&gt;,"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(
            !dir.join(html_twin(&FileSink::file_name(&sms))).exists(),
            "a text message has no HTML part"
        );
        let index = std::fs::read_to_string(dir.join("index.html")).expect("index");
        assert!(
            index.contains(&format!("href=\"{}\"", html_twin(&text_name))),
            "{index}"
        );
        assert_eq!(
            txt_files(&dir).len(),
            2,
            "the HTML part is not a message of its own"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn each_message_becomes_a_readable_file_named_by_time_order_kind_and_event() {
        let dir = scratch_dir();
        let sink = FileSink::new(&dir);
        let msg = message(6, NotificationKind::OrderConfirmed, Medium::Email);
        sink.deliver(vec![msg.clone()]).await.expect("deliver");

        let name = format!(
            "20251124T160006.000Z-{}-order_confirmed-{}.email.txt",
            msg.order_id, msg.event_id
        );
        assert_eq!(txt_files(&dir), std::slice::from_ref(&name));
        let text = std::fs::read_to_string(dir.join(&name)).expect("read message");
        assert!(text.starts_with(
            "To: ada@example.com\nSubject: Your order WEB-1 is confirmed\nDate: 2025-11-24T16:00:06+00:00\n"
        ));
        assert!(text.ends_with("\n\nHello Ada,\n\nIt is confirmed.\n"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[tokio::test]
    async fn a_redelivered_message_replaces_its_file_instead_of_adding_one() {
        let dir = scratch_dir();
        let sink = FileSink::new(&dir);
        let first = message(1, NotificationKind::OrderReceived, Medium::Email);
        let sms = Notification {
            medium: Medium::Sms,
            subject: None,
            to: "+1 217 555 0142".into(),
            ..first.clone()
        };
        sink.deliver(vec![first.clone(), sms.clone()])
            .await
            .expect("deliver");
        sink.deliver(vec![first.clone()]).await.expect("redeliver");
        sink.deliver(vec![sms, first])
            .await
            .expect("redeliver both");

        let files = txt_files(&dir);
        assert_eq!(files.len(), 2, "{files:?}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("read dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
        let index = std::fs::read_to_string(dir.join("index.html")).expect("index");
        assert_eq!(index.matches("<tr><td>").count(), 2);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[tokio::test]
    async fn the_index_lists_messages_newest_first_with_links_to_their_files() {
        let dir = scratch_dir();
        let sink = FileSink::new(&dir);
        let old = message(1, NotificationKind::OrderReceived, Medium::Email);
        let new = message(9, NotificationKind::OrderCancelled, Medium::Sms);
        sink.deliver(vec![old.clone()]).await.expect("deliver");
        sink.deliver(vec![new.clone()]).await.expect("deliver");
        std::fs::write(dir.join("notes.txt"), "not a message").expect("stray file");
        sink.deliver(vec![old.clone()]).await.expect("redeliver");
        sink.flush_index().expect("index");

        let index = std::fs::read_to_string(dir.join("index.html")).expect("index");
        let new_at = index.find(&FileSink::file_name(&new)).expect("new listed");
        let old_at = index.find(&FileSink::file_name(&old)).expect("old listed");
        assert!(new_at < old_at, "newest first");
        assert!(index.contains(">Order cancelled</a>"));
        assert!(!index.contains("notes.txt"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[tokio::test]
    async fn a_burst_of_messages_rewrites_the_index_once_and_lists_every_message_soon_after() {
        let dir = scratch_dir();
        let sink = FileSink::new(&dir);
        let first = message(1, NotificationKind::OrderReceived, Medium::Email);
        let started = Instant::now();
        sink.deliver(vec![first.clone()]).await.expect("deliver");
        let index = || std::fs::read_to_string(dir.join("index.html")).expect("index");
        assert!(
            index().contains(&FileSink::file_name(&first)),
            "the first message is listed at once"
        );

        let burst: Vec<Notification> = (2..12)
            .map(|n| message(n, NotificationKind::OrderConfirmed, Medium::Sms))
            .collect();
        for m in &burst {
            sink.deliver(vec![m.clone()]).await.expect("deliver");
            assert!(
                dir.join(FileSink::file_name(m)).exists(),
                "its file at once"
            );
        }
        // Within the interval the index was not written again for each message.
        let listed_now = index().matches("<tr><td>").count();
        if started.elapsed() < INDEX_INTERVAL / 2 {
            assert_eq!(listed_now, 1, "the burst waits for the scheduled write");
        }
        // The scheduled write lists them all.
        let deadline = Instant::now() + INDEX_INTERVAL + Duration::from_secs(5);
        while index().matches("<tr><td>").count() < 11 {
            assert!(Instant::now() < deadline, "never listed: {}", index());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for m in &burst {
            assert!(index().contains(&FileSink::file_name(m)));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_restarted_sink_keeps_listing_the_messages_already_written() {
        let dir = scratch_dir();
        let before = message(1, NotificationKind::OrderReceived, Medium::Email);
        FileSink::new(&dir)
            .deliver(vec![before.clone()])
            .await
            .expect("deliver");

        let restarted = FileSink::new(&dir);
        let after = message(2, NotificationKind::OrderConfirmed, Medium::Email);
        restarted
            .deliver(vec![after.clone(), before.clone()])
            .await
            .expect("deliver");

        let index = std::fs::read_to_string(dir.join("index.html")).expect("index");
        assert_eq!(index.matches("<tr><td>").count(), 2);
        assert!(index.contains(&FileSink::file_name(&before)));
        assert!(index.contains(&FileSink::file_name(&after)));
        assert!(!index.contains("older messages"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn the_listing_keeps_the_newest_names_and_counts_the_rest() {
        let mut listing = Listing::default();
        for i in 0..INDEX_LIMIT + 3 {
            listing.total += 1;
            listing.add(format!("{i:06}"));
        }
        assert_eq!(listing.newest.len(), INDEX_LIMIT);
        assert_eq!(listing.newest.first().map(String::as_str), Some("000003"));
        assert!(index_html(&listing).contains("<p>3 older messages are in this directory.</p>"));
    }

    #[test]
    fn index_entries_parse_only_our_file_names() {
        let msg = message(3, NotificationKind::PaymentFailed, Medium::Sms);
        let entry = IndexEntry::parse(&FileSink::file_name(&msg)).expect("ours");
        assert_eq!(entry.order_id, msg.order_id.to_string());
        assert_eq!(entry.kind, NotificationKind::PaymentFailed);
        assert_eq!(entry.medium, Medium::Sms);
        assert_eq!(entry.time, "20251124T160003.000Z");
        assert_eq!(readable_time(&entry.time), "2025-11-24 16:00:03");
        assert_eq!(IndexEntry::parse("index.html"), None);
        assert_eq!(IndexEntry::parse("x-y-z.email.txt"), None);
    }
}
