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

/// Keys to their requests and answers. Kept for the sandbox's lifetime.
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
    fn an_abandoned_key_runs_again() {
        let mut store = IdempotencyStore::default();
        let print = fingerprint("A", b"1");
        assert_eq!(store.begin("k", print), Begin::New);
        store.abandon("k");
        assert_eq!(store.begin("k", print), Begin::New);
    }
}
