//! Payloads this process opened a moment ago, so that the other readers of the same event (every
//! view of a `serve all` or `serve projector` process opens each placement for itself) reuse the
//! opened text instead of parsing and decrypting it again.
//!
//! An entry is only used when the key-store read of the batch at hand says that every data key it
//! was opened with is still live: exactly when decrypting the sealed fields again would give the
//! same text. A key read as erased makes the reader open the payload as stand-ins (as before) and
//! drops the entry. Entries are used for [`RECENT_FOR`] at most and the newest [`CAPACITY`] are
//! kept, so opened personal data stays in memory no longer than the readers are busy with it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use uuid::Uuid;
use waybill_schemas::Payload;

use crate::subscriptions::seal::SealingKey;

/// How many opened payloads are kept.
pub const CAPACITY: usize = 8_192;
/// How long an opened payload may be reused.
pub const RECENT_FOR: Duration = Duration::from_secs(30);

/// True when every one of `key_ids` is live in `keys` (a batch's key-store read): what a
/// payload opened with them must meet to be kept or reused.
pub fn all_live(key_ids: &[Uuid], keys: &HashMap<Uuid, Option<SealingKey>>) -> bool {
    key_ids
        .iter()
        .all(|id| matches!(keys.get(id), Some(Some(_))))
}

/// One opened payload: the length of the sealed text it was opened from (a cheap check that the
/// text is the one opened), the data keys of its sealed fields, and the opened text.
#[derive(Debug)]
struct Entry {
    sealed_len: usize,
    key_ids: Vec<Uuid>,
    opened: Payload,
    at: Instant,
}

/// The recently opened payloads, by event id.
#[derive(Debug)]
pub struct Recent {
    entries: HashMap<Uuid, Entry>,
    order: VecDeque<Uuid>,
    capacity: usize,
    recent_for: Duration,
}

impl Default for Recent {
    fn default() -> Self {
        Self::new(CAPACITY, RECENT_FOR)
    }
}

impl Recent {
    pub fn new(capacity: usize, recent_for: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            recent_for,
        }
    }

    fn entry(&self, event_id: Uuid, sealed_len: usize, now: Instant) -> Option<&Entry> {
        self.entries.get(&event_id).filter(|entry| {
            entry.sealed_len == sealed_len && now.duration_since(entry.at) < self.recent_for
        })
    }

    /// The data keys of the sealed fields of event `event_id`, when its payload (of
    /// `sealed_len` bytes) was opened a moment ago.
    pub fn key_ids(&self, event_id: Uuid, sealed_len: usize, now: Instant) -> Option<Vec<Uuid>> {
        self.entry(event_id, sealed_len, now)
            .map(|entry| entry.key_ids.clone())
    }

    /// The opened payload of event `event_id`, when it was opened a moment ago and every key it
    /// was opened with is live in `keys` (this batch's key-store read). An entry with a key that
    /// is erased or unknown there is dropped.
    pub fn opened(
        &mut self,
        event_id: Uuid,
        sealed_len: usize,
        keys: &HashMap<Uuid, Option<SealingKey>>,
        now: Instant,
    ) -> Option<Payload> {
        let entry = self.entry(event_id, sealed_len, now)?;
        if all_live(&entry.key_ids, keys) {
            return Some(entry.opened.clone());
        }
        self.entries.remove(&event_id);
        None
    }

    /// Keeps `opened`, the payload of event `event_id` opened from `sealed_len` bytes with the
    /// live keys `key_ids`, dropping the oldest entries beyond the capacity.
    pub fn insert(
        &mut self,
        event_id: Uuid,
        sealed_len: usize,
        key_ids: Vec<Uuid>,
        opened: Payload,
        now: Instant,
    ) {
        let entry = Entry {
            sealed_len,
            key_ids,
            opened,
            at: now,
        };
        if self.entries.insert(event_id, entry).is_none() {
            self.order.push_back(event_id);
        }
        self.purge(now);
    }

    /// Drops the entries beyond the capacity (the oldest first) and those too old to be used.
    pub fn purge(&mut self, now: Instant) {
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
        // The order is by first insertion: the front is the oldest entry (or one dropped
        // already, for an erased key).
        while let Some(front) = self.order.front() {
            match self.entries.get(front) {
                Some(entry) if now.duration_since(entry.at) < self.recent_for => break,
                _ => {
                    if let Some(gone) = self.order.pop_front() {
                        self.entries.remove(&gone);
                    }
                }
            }
        }
    }

    /// How many payloads are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> SealingKey {
        SealingKey::parse(&"ab".repeat(32)).unwrap()
    }

    fn opened() -> Payload {
        Payload::from_value(&json!({"customer": {"name": "Ada Lovelace"}}))
    }

    #[test]
    fn an_opened_payload_is_reused_only_while_every_key_it_was_opened_with_is_live() {
        let (event, k1, k2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let now = Instant::now();
        let mut recent = Recent::default();
        recent.insert(event, 900, vec![k1, k2], opened(), now);
        assert_eq!(recent.key_ids(event, 900, now), Some(vec![k1, k2]));
        let live = HashMap::from([(k1, Some(key())), (k2, Some(key()))]);
        assert_eq!(recent.opened(event, 900, &live, now), Some(opened()));
        // Another text of that length difference is not the payload that was opened.
        assert_eq!(recent.key_ids(event, 901, now), None);
        assert_eq!(recent.opened(event, 901, &live, now), None);
        // One key erased since: not reused, and forgotten.
        let erased = HashMap::from([(k1, Some(key())), (k2, None)]);
        assert_eq!(recent.opened(event, 900, &erased, now), None);
        assert_eq!(recent.opened(event, 900, &live, now), None, "dropped");
        assert!(recent.is_empty());
    }

    #[test]
    fn a_key_the_batch_did_not_read_is_not_taken_as_live() {
        let (event, k1) = (Uuid::now_v7(), Uuid::now_v7());
        let now = Instant::now();
        let mut recent = Recent::default();
        recent.insert(event, 10, vec![k1], opened(), now);
        assert_eq!(recent.opened(event, 10, &HashMap::new(), now), None);
    }

    #[test]
    fn entries_expire_and_the_oldest_make_room_for_the_newest() {
        let now = Instant::now();
        let mut recent = Recent::new(2, Duration::from_secs(30));
        let events: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        for event in &events {
            recent.insert(*event, 10, vec![], opened(), now);
        }
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.key_ids(events[0], 10, now), None, "the oldest went");
        assert!(recent.key_ids(events[2], 10, now).is_some());
        let later = now + Duration::from_secs(31);
        assert_eq!(recent.key_ids(events[2], 10, later), None, "too old to use");
        assert_eq!(
            recent.opened(events[2], 10, &HashMap::new(), later),
            None,
            "too old to use"
        );
        recent.purge(later);
        assert!(recent.is_empty(), "dropped at the next read");
    }
}
