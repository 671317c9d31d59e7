//! The streams an [`super::EventStore`] read lately, as stored (personal fields still sealed), so
//! that reading one again fetches only the events appended since.
//!
//! The workers read an order's whole stream at every wake-up (checkout, each fulfillment step,
//! each logistics webhook): a lifecycle of 16 events read its stream about six times, about 90
//! rows. Stored events never change (the log is append-only; erasure destroys data keys and
//! leaves the rows alone), so the prefix read last time is still the stream's prefix, and the
//! rest is the events whose version is higher. Personal fields are cached sealed and opened at
//! every read, so an erasure shows at the next read as it did before.
//!
//! Each reader takes a snapshot of the cached prefix and stores back what it read when that is
//! longer than what is cached, so concurrent readers of one stream never mix their answers. The
//! least recently read streams are dropped once the cache holds more than its capacity in events.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use sqlx::PgPool;
use waybill_schemas::EventEnvelope;

/// How many stored events one store keeps, over all its streams.
pub const CAPACITY: usize = 16_384;

/// The cache of each database this process reads, by server and database name.
type Registry = HashMap<(String, u16, String), Arc<Mutex<StreamCache>>>;

static CACHES: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

/// The cache shared by every event store of this process on `pool`'s database, so the checkout
/// worker, the fulfillment worker, the logistics webhooks and the commands each find what the
/// others read. Keyed by name: the reader checks the cached prefix against the stored events,
/// so a database recreated under the same name is read afresh.
pub fn of_database(pool: &PgPool) -> Arc<Mutex<StreamCache>> {
    let options = pool.connect_options();
    let key = (
        options.get_host().to_owned(),
        options.get_port(),
        options.get_database().unwrap_or_default().to_owned(),
    );
    CACHES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_default()
        .clone()
}

/// One cached stream: its events in version order, and when it was last read.
struct Cached {
    events: Arc<[EventEnvelope]>,
    used: u64,
}

/// The cached streams of one event store.
pub struct StreamCache {
    streams: HashMap<String, Cached>,
    /// Events held over all streams.
    events: usize,
    capacity: usize,
    /// Counts reads, to tell which streams were read least recently.
    tick: u64,
}

impl std::fmt::Debug for StreamCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCache")
            .field("streams", &self.streams.len())
            .field("events", &self.events)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for StreamCache {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl StreamCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            streams: HashMap::new(),
            events: 0,
            capacity,
            tick: 0,
        }
    }

    /// The cached prefix of `stream_id` (empty when it is not cached): the stream is the prefix
    /// followed by the stored events whose version is above the prefix's last.
    pub fn prefix(&mut self, stream_id: &str) -> Arc<[EventEnvelope]> {
        self.tick += 1;
        match self.streams.get_mut(stream_id) {
            Some(cached) => {
                cached.used = self.tick;
                cached.events.clone()
            }
            None => Arc::from(Vec::new()),
        }
    }

    /// Keeps `events`, the whole stream as just read, unless the cache already holds as much of
    /// it (another reader stored a longer read meanwhile).
    pub fn store(&mut self, stream_id: &str, events: &[EventEnvelope]) {
        if events.is_empty() || events.len() > self.capacity {
            return;
        }
        self.tick += 1;
        let held = self.streams.get(stream_id).map_or(0, |c| c.events.len());
        if held >= events.len() {
            return;
        }
        self.events = self.events - held + events.len();
        self.streams.insert(
            stream_id.to_owned(),
            Cached {
                events: Arc::from(events),
                used: self.tick,
            },
        );
        if self.events > self.capacity {
            self.evict(stream_id);
        }
    }

    /// Drops `stream_id`: what is cached of it is not what is stored.
    pub fn forget(&mut self, stream_id: &str) {
        if let Some(dropped) = self.streams.remove(stream_id) {
            self.events -= dropped.events.len();
        }
    }

    /// Drops the least recently read streams (never `keep`, just stored) until a quarter of the
    /// capacity is free, so eviction runs once per many stores.
    fn evict(&mut self, keep: &str) {
        let target = self.capacity - self.capacity / 4;
        let mut by_use: Vec<(u64, String)> = self
            .streams
            .iter()
            .filter(|(id, _)| id.as_str() != keep)
            .map(|(id, c)| (c.used, id.clone()))
            .collect();
        by_use.sort_unstable();
        for (_, id) in by_use {
            if self.events <= target {
                break;
            }
            if let Some(dropped) = self.streams.remove(&id) {
                self.events -= dropped.events.len();
            }
        }
    }

    /// Streams held.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Events held over all streams.
    pub fn events(&self) -> usize {
        self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;
    use waybill_schemas::{Actor, Payload};

    fn event(stream: &str, version: i64) -> EventEnvelope {
        EventEnvelope {
            event_id: Uuid::now_v7(),
            stream_id: stream.to_owned(),
            stream_version: version,
            event_type: "OrderNoted".to_owned(),
            schema_version: 1,
            occurred_at: Utc::now(),
            recorded_at: Utc::now(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            traceparent: None,
            actor: Actor::service("test"),
            channel: None,
            payload: Payload::from_text(format!("{{\"n\":{version}}}")).unwrap(),
        }
    }

    fn stream(id: &str, len: i64) -> Vec<EventEnvelope> {
        (1..=len).map(|v| event(id, v)).collect()
    }

    #[test]
    fn a_stored_stream_is_the_next_reads_prefix() {
        let mut cache = StreamCache::new(100);
        assert!(cache.prefix("order-a").is_empty());
        let read = stream("order-a", 3);
        cache.store("order-a", &read);
        let prefix = cache.prefix("order-a");
        assert_eq!(prefix.len(), 3);
        assert_eq!(prefix.last().unwrap().stream_version, 3);
        assert_eq!(prefix[0].event_id, read[0].event_id);
        assert_eq!(cache.events(), 3);
    }

    #[test]
    fn a_shorter_read_never_replaces_a_longer_one() {
        let mut cache = StreamCache::new(100);
        let long = stream("order-a", 5);
        cache.store("order-a", &long);
        // A reader that took its snapshot earlier stores its shorter read afterwards.
        cache.store("order-a", &long[..3]);
        assert_eq!(cache.prefix("order-a").len(), 5);
        cache.store("order-a", &stream("order-a", 6));
        assert_eq!(cache.prefix("order-a").len(), 6);
        assert_eq!(cache.events(), 6);
    }

    #[test]
    fn a_forgotten_stream_is_read_whole_next_time() {
        let mut cache = StreamCache::new(100);
        cache.store("order-a", &stream("order-a", 3));
        cache.store("order-b", &stream("order-b", 2));
        cache.forget("order-a");
        cache.forget("order-unknown");
        assert!(cache.prefix("order-a").is_empty());
        assert_eq!(cache.events(), 2);
    }

    #[test]
    fn an_empty_read_is_not_kept() {
        let mut cache = StreamCache::new(100);
        cache.store("order-unknown", &[]);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_least_recently_read_streams_go_first_when_full() {
        let mut cache = StreamCache::new(12);
        cache.store("order-a", &stream("order-a", 4));
        cache.store("order-b", &stream("order-b", 4));
        cache.store("order-c", &stream("order-c", 4));
        // Read a and c again: b is the least recently read.
        cache.prefix("order-a");
        cache.prefix("order-c");
        cache.store("order-d", &stream("order-d", 4));
        assert!(
            cache.prefix("order-b").is_empty(),
            "b was read least lately"
        );
        assert_eq!(cache.prefix("order-c").len(), 4, "c was read after a");
        assert_eq!(
            cache.prefix("order-d").len(),
            4,
            "the stream just stored stays"
        );
        assert!(cache.events() <= 9, "a quarter of the capacity is freed");
        let held: usize = ["order-a", "order-c", "order-d"]
            .iter()
            .map(|id| cache.prefix(id).len())
            .sum();
        assert_eq!(held, cache.events());
    }

    #[test]
    fn a_stream_longer_than_the_capacity_is_not_kept() {
        let mut cache = StreamCache::new(4);
        cache.store("order-a", &stream("order-a", 5));
        assert!(cache.is_empty());
        assert_eq!(cache.events(), 0);
    }
}
