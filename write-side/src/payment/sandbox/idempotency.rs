//! The sandbox's idempotency store: each `Idempotency-Key` remembers a fingerprint of its request
//! (route and raw body) and, once answered, the exact response. No I/O, no clock.

use std::collections::HashMap;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// A stored answer, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
}

/// What to do with a request that carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First time: the caller now owns the key and must `finish` or `abandon` it.
    New,
    /// Answered before: send this again.
    Replay(StoredResponse),
    /// The first request with this key is still being processed.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

#[derive(Debug)]
enum Entry {
    InFlight([u8; 32]),
    Done([u8; 32], StoredResponse),
}

/// One answered key as it is saved.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SavedAnswer {
    key: String,
    fingerprint: String,
    status: u16,
    content_type: String,
    body: String,
}

/// The content types answers are stored with.
const KNOWN_CONTENT_TYPES: [&str; 2] = ["application/json", crate::payment::wire::PROBLEM_JSON];

/// Keys to their requests and answers. Kept for the sandbox's lifetime (and across restarts
/// when the sandbox has a state directory).
#[derive(Debug, Default)]
pub struct IdempotencyStore {
    entries: HashMap<String, Entry>,
}

/// The fingerprint of a request: what makes "the same request".
pub fn fingerprint(route: &str, body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hasher.finalize().into()
}

impl IdempotencyStore {
    pub fn begin(&mut self, key: &str, fingerprint: [u8; 32]) -> Begin {
        match self.entries.get(key) {
            None => {
                self.entries
                    .insert(key.to_owned(), Entry::InFlight(fingerprint));
                Begin::New
            }
            Some(Entry::InFlight(seen) | Entry::Done(seen, _)) if *seen != fingerprint => {
                Begin::Mismatch
            }
            Some(Entry::InFlight(_)) => Begin::InFlight,
            Some(Entry::Done(_, response)) => Begin::Replay(response.clone()),
        }
    }

    /// Stores the answer for a key begun with [`Begin::New`].
    pub fn finish(&mut self, key: &str, response: StoredResponse) {
        if let Some(entry) = self.entries.get_mut(key) {
            if let Entry::InFlight(fingerprint) = *entry {
                *entry = Entry::Done(fingerprint, response);
            }
        }
    }

    /// The answered keys (for saving; keys still in flight are not: their request never
    /// answered, so after a restart its retry runs again).
    pub fn snapshot(&self) -> Vec<SavedAnswer> {
        self.entries
            .iter()
            .filter_map(|(key, entry)| match entry {
                Entry::Done(fingerprint, response) => Some(SavedAnswer {
                    key: key.clone(),
                    fingerprint: hex::encode(fingerprint),
                    status: response.status,
                    content_type: response.content_type.to_owned(),
                    body: String::from_utf8_lossy(&response.body).into_owned(),
                }),
                Entry::InFlight(_) => None,
            })
            .collect()
    }

    /// A store answering the saved keys as before.
    pub fn restore(saved: Vec<SavedAnswer>) -> Self {
        let entries = saved
            .into_iter()
            .filter_map(|answer| {
                let mut fingerprint = [0u8; 32];
                hex::decode_to_slice(&answer.fingerprint, &mut fingerprint).ok()?;
                let content_type = KNOWN_CONTENT_TYPES
                    .iter()
                    .find(|known| **known == answer.content_type)
                    .copied()
                    .unwrap_or("application/json");
                let response = StoredResponse {
                    status: answer.status,
                    content_type,
                    body: Bytes::from(answer.body),
                };
                Some((answer.key, Entry::Done(fingerprint, response)))
            })
            .collect();
        Self { entries }
    }

    /// Forgets a key whose request failed without effect, so a retry runs again.
    pub fn abandon(&mut self, key: &str) {
        if matches!(self.entries.get(key), Some(Entry::InFlight(_))) {
            self.entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &'static str) -> StoredResponse {
        StoredResponse {
            status: 201,
            content_type: "application/json",
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn a_finished_key_replays_its_answer() {
        let mut store = IdempotencyStore::default();
        let print = fingerprint("POST /v1/authorizations", b"{}");
        assert_eq!(store.begin("k", print), Begin::New);
        store.finish("k", answer("{\"id\":1}"));
        assert_eq!(store.begin("k", print), Begin::Replay(answer("{\"id\":1}")));
    }

    #[test]
    fn a_key_still_in_flight_is_reported_as_such() {
        let mut store = IdempotencyStore::default();
        let print = fingerprint("POST /v1/authorizations", b"{}");
        assert_eq!(store.begin("k", print), Begin::New);
        assert_eq!(store.begin("k", print), Begin::InFlight);
    }

    #[test]
    fn the_same_key_on_another_body_or_route_is_a_mismatch() {
        let mut store = IdempotencyStore::default();
        assert_eq!(store.begin("k", fingerprint("A", b"1")), Begin::New);
        assert_eq!(store.begin("k", fingerprint("A", b"2")), Begin::Mismatch);
        store.finish("k", answer("{}"));
        assert_eq!(store.begin("k", fingerprint("B", b"1")), Begin::Mismatch);
    }

    #[test]
    fn a_restored_store_replays_what_was_answered_and_forgets_what_was_in_flight() {
        let mut store = IdempotencyStore::default();
        let print = fingerprint("A", b"1");
        assert_eq!(store.begin("done", print), Begin::New);
        store.finish("done", answer("{\"id\":7}"));
        assert_eq!(store.begin("running", print), Begin::New);
        let saved = serde_json::to_vec(&store.snapshot()).expect("json");
        let mut restored = IdempotencyStore::restore(serde_json::from_slice(&saved).expect("back"));
        assert_eq!(
            restored.begin("done", print),
            Begin::Replay(answer("{\"id\":7}"))
        );
        assert_eq!(
            restored.begin("done", fingerprint("A", b"2")),
            Begin::Mismatch
        );
        assert_eq!(restored.begin("running", print), Begin::New);
    }

    #[test]
    fn an_abandoned_key_runs_again() {
        let mut store = IdempotencyStore::default();
        let print = fingerprint("A", b"1");
        assert_eq!(store.begin("k", print), Begin::New);
        store.abandon("k");
        assert_eq!(store.begin("k", print), Begin::New);
    }
}
