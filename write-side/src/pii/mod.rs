//! Personal data in events, and its erasure by crypto-shredding.
//!
//! The personal fields of an event (a customer's name, email, phone, addresses, IP; who signed
//! for a parcel; the free-text notes and reasons people write about an order: [`fields`]) are
//! sealed in the event JSON when the event is stored, under a data key of the customer, or of
//! the guest's email for a guest checkout ([`key_store`], ChaCha20-Poly1305 through the same
//! [`SealingKey`] that seals subscription secrets). The data key is stored wrapped under the
//! master key (`WAYBILL_PII_MASTER_KEY`, never in the database). Every reader of the log opens
//! the fields on read ([`open_envelopes`]: the event store's reads, the projectors' messages,
//! the pull feed), so events keep their typed shape everywhere.
//!
//! Erasing a customer destroys their data key ([`destroy_subject`]): the sealed fields stay in
//! the log and in every copy of it (outbox, NATS, dead letters) and from then on open as typed
//! stand-ins (`"[erased]"`, `null`, `erased@erased.invalid`), in folds, projections and rebuilds
//! alike. The views that held the opened values are scrubbed by re-projecting the customer's
//! orders (see `waybill_projectors::erasure`).

pub mod fields;
pub mod key_store;
pub mod recent;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use waybill_schemas::{EventEnvelope, Payload};

use crate::event_store::{retry, EventStoreError};
use crate::subscriptions::seal::SealingKey;
pub use key_store::{DataKey, KeyStore, PgKeyStore};

/// Why personal fields could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("data key {0} does not open under the configured master key (WAYBILL_PII_MASTER_KEY)")]
    MasterKeyMismatch(Uuid),
    #[error("a personal field sealed under data key {0} does not open")]
    DoesNotOpen(Uuid),
    #[error("a personal field is sealed under data key {0}, which the key store does not know")]
    UnknownKey(Uuid),
    #[error("personal fields are sealed but this process has no master key")]
    NoMasterKey,
    #[error("key store database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl PiiError {
    /// As the `sqlx::Error` of a write: a database error stays itself (so 40001 is retried),
    /// anything else is an encoding failure of the event.
    pub fn into_sqlx(self) -> sqlx::Error {
        match self {
            Self::Database(e) => e,
            other => sqlx::Error::Encode(Box::new(other)),
        }
    }
}

static KEY_STORE: OnceLock<PgKeyStore> = OnceLock::new();

/// Makes `master` the key this process wraps and unwraps data keys with. Every process that
/// writes or reads events installs it at start (the first call wins). A process without one
/// refuses to store events holding personal fields and to read sealed ones.
pub fn install(master: SealingKey) {
    let _ = KEY_STORE.set(PgKeyStore::new(master));
}

/// The installed key store.
pub fn key_store() -> Option<&'static PgKeyStore> {
    KEY_STORE.get()
}

/// The payloads `events` are stored with: `Some` for each event whose personal fields were
/// sealed (or, for an erased customer, replaced by their stand-ins), `None` to store as is.
/// Runs in the append's transaction: a first order's data key commits with it. Without an
/// installed master key, storing an event that holds personal fields is refused
/// ([`PiiError::NoMasterKey`]): nothing personal is ever written in the clear.
pub async fn seal_for_insert(
    conn: &mut PgConnection,
    events: &[&EventEnvelope],
) -> Result<Vec<Option<Payload>>, PiiError> {
    let mut out = vec![None; events.len()];
    if !events.iter().any(|e| fields::is_personal(&e.event_type)) {
        return Ok(out);
    }
    // The personal events' payloads as trees, each parsed once for reading and sealing.
    let trees: Vec<Option<Value>> = events
        .iter()
        .map(|e| fields::is_personal(&e.event_type).then(|| e.payload.to_value()))
        .collect();
    let store = key_store().ok_or(PiiError::NoMasterKey)?;
    // Subjects of the orders placed here; the key of every other order from `pii_streams`.
    let mut placed: Vec<(String, String)> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for (e, payload) in events.iter().zip(&trees) {
        let Some(payload) = payload else { continue };
        if e.event_type == "OrderPlaced" {
            let subject = match fields::placed_by(&e.stream_id, payload) {
                fields::PlacedBy::Customer(id) => fields::customer_subject(&id),
                fields::PlacedBy::Guest(email) => store.guest_subject(&email),
                fields::PlacedBy::Order(subject) => subject,
            };
            placed.push((e.stream_id.clone(), subject));
        } else if let Some(stream) = fields::key_stream(&e.event_type, &e.stream_id, payload) {
            if !others.contains(&stream) {
                others.push(stream);
            }
        }
    }
    let mut subjects: Vec<String> = placed.iter().map(|(_, s)| s.clone()).collect();
    subjects.sort();
    subjects.dedup();
    let live = store.live_keys(conn, &subjects).await?;
    // Stream → its key, `None` when that key was erased.
    let mut by_stream: HashMap<String, (Uuid, Option<SealingKey>)> = HashMap::new();
    let (mut streams, mut key_ids) = (Vec::new(), Vec::new());
    for (stream, subject) in &placed {
        if let Some(key) = live.get(subject) {
            streams.push(stream.clone());
            key_ids.push(key.key_id);
            by_stream.insert(stream.clone(), (key.key_id, Some(key.key.clone())));
        }
    }
    if !streams.is_empty() {
        sqlx::query(
            "INSERT INTO pii_streams (stream_id, key_id) \
             SELECT s, k FROM UNNEST($1::text[], $2::uuid[]) AS x(s, k) \
             ON CONFLICT (stream_id) DO NOTHING",
        )
        .bind(&streams)
        .bind(&key_ids)
        .execute(&mut *conn)
        .await?;
    }
    others.retain(|s| !by_stream.contains_key(s));
    if !others.is_empty() {
        let rows: Vec<(String, Uuid)> =
            sqlx::query_as("SELECT stream_id, key_id FROM pii_streams WHERE stream_id = ANY($1)")
                .bind(&others)
                .fetch_all(&mut *conn)
                .await?;
        let ids: Vec<Uuid> = rows.iter().map(|(_, k)| *k).collect();
        let keys = store.keys(conn, &ids).await?;
        for (stream, key_id) in rows {
            let key = keys.get(&key_id).cloned().flatten();
            by_stream.insert(stream, (key_id, key));
        }
    }
    for ((slot, e), payload) in out.iter_mut().zip(events).zip(trees) {
        let Some(mut payload) = payload else { continue };
        // An order from before sealing began has no key: its events stay as they were.
        let Some((key_id, key)) = fields::key_stream(&e.event_type, &e.stream_id, &payload)
            .and_then(|stream| by_stream.get(&stream))
        else {
            continue;
        };
        match key {
            Some(key) => fields::seal(&e.event_type, &mut payload, *key_id, key),
            None => fields::erase(&e.event_type, &mut payload),
        }
        *slot = Some(Payload::from_value(&payload));
    }
    Ok(out)
}

/// Payloads opened a moment ago in this process ([`recent`]).
static RECENT: LazyLock<Mutex<recent::Recent>> = LazyLock::new(Mutex::default);

fn recently_opened() -> MutexGuard<'static, recent::Recent> {
    // A reader that panicked while holding it left whole entries behind: still usable.
    RECENT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a payload of a batch holds to open.
enum Found<'a> {
    /// Nothing sealed.
    Clear,
    /// Opened a moment ago by another reader: the data keys it was opened with.
    Recent(Vec<Uuid>),
    /// Its sealed fields, found in its text.
    Sealed(fields::SealedPayload<'a>),
}

/// Opens the personal fields of `events` in place (one key-store read for all of them). A
/// payload another reader of this process opened a moment ago is taken from [`recent`] when the
/// key-store read says its keys are all still live; the others are opened in their text.
pub async fn open_envelopes(
    pool: &PgPool,
    events: &mut [EventEnvelope],
) -> Result<(), EventStoreError> {
    let Some(first) = events.iter().find(|e| fields::is_personal(&e.event_type)) else {
        return Ok(());
    };
    let now = Instant::now();
    // Payloads opened a moment ago by another reader of this process need no parse; only
    // payloads with a marker in their text have anything to open.
    let marked: Vec<bool> = events
        .iter()
        .map(|e| fields::may_hold_markers(&e.event_type, e.payload.as_str()))
        .collect();
    let recents: Vec<Option<Vec<Uuid>>> = {
        let mut recent = recently_opened();
        recent.purge(now);
        events
            .iter()
            .zip(&marked)
            .map(|(e, marked)| {
                let len = e.payload.as_str().len();
                marked
                    .then(|| recent.key_ids(e.event_id, len, now))
                    .flatten()
            })
            .collect()
    };
    // Only the objects on the personal paths are parsed (no tree of the whole payload), outside
    // the lock.
    let found: Vec<Found<'_>> = events
        .iter()
        .zip(marked)
        .zip(recents)
        .map(|((e, marked), recent)| match recent {
            _ if !marked => Found::Clear,
            Some(key_ids) => Found::Recent(key_ids),
            None => Found::Sealed(fields::sealed_fields(&e.event_type, &e.payload)),
        })
        .collect();
    let mut ids: Vec<Uuid> = Vec::new();
    for found in &found {
        match found {
            Found::Clear => {}
            Found::Recent(key_ids) => ids.extend(key_ids),
            Found::Sealed(sealed) => ids.extend(sealed.key_ids()),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let corrupt = |e: &EventEnvelope, err: PiiError| EventStoreError::Corrupt {
        stream_id: e.stream_id.clone(),
        stream_version: e.stream_version,
        detail: err.to_string(),
    };
    let Some(store) = key_store() else {
        return Err(corrupt(first, PiiError::NoMasterKey));
    };
    let keys = retry::serializable(|| async {
        let mut conn = pool.acquire().await?;
        match store.keys(&mut conn, &ids).await {
            Err(PiiError::Database(e)) => Err(e),
            other => Ok(other),
        }
    })
    .await?;
    let keys = keys.map_err(|err| corrupt(first, err))?;
    let mut opened: Vec<Option<Payload>> = {
        let mut recent = recently_opened();
        events
            .iter()
            .zip(&found)
            .map(|(e, found)| match found {
                Found::Recent(_) => recent.opened(e.event_id, e.payload.as_str().len(), &keys, now),
                _ => None,
            })
            .collect()
    };
    let mut newly_opened = Vec::new();
    for ((e, found), slot) in events.iter().zip(&found).zip(opened.iter_mut()) {
        let found_again;
        let sealed = match found {
            _ if slot.is_some() => continue,
            Found::Clear => continue,
            Found::Sealed(sealed) => sealed,
            // Its entry went (an erased key, or too old): opened from its text after all.
            Found::Recent(_) => {
                found_again = fields::sealed_fields(&e.event_type, &e.payload);
                &found_again
            }
        };
        if sealed.is_empty() {
            continue;
        }
        let payload = sealed.open(&keys).map_err(|err| corrupt(e, err))?;
        let key_ids = sealed.key_ids();
        if recent::all_live(&key_ids, &keys) {
            let sealed_len = e.payload.as_str().len();
            newly_opened.push((e.event_id, sealed_len, key_ids, payload.clone()));
        }
        *slot = Some(payload);
    }
    if !newly_opened.is_empty() {
        let mut recent = recently_opened();
        for (event_id, sealed_len, key_ids, payload) in newly_opened {
            recent.insert(event_id, sealed_len, key_ids, payload, now);
        }
    }
    drop(found);
    for (e, payload) in events.iter_mut().zip(opened) {
        if let Some(payload) = payload {
            e.payload = payload;
        }
    }
    Ok(())
}

/// The erasure's part in the event store's database, in the caller's transaction: destroys
/// every live data key of `subject`; returns their ids.
pub async fn destroy_subject(
    conn: &mut PgConnection,
    subject: &str,
) -> Result<Vec<Uuid>, PiiError> {
    let store = key_store().ok_or(PiiError::NoMasterKey)?;
    store.destroy(conn, subject).await
}

/// The key-store subject of every guest checkout with `email` (see [`KeyStore::guest_subject`]).
pub fn guest_subject(email: &waybill_schemas::Email) -> Result<String, PiiError> {
    Ok(key_store()
        .ok_or(PiiError::NoMasterKey)?
        .guest_subject(email))
}

/// The order streams sealed under any key (live or erased) of `subject`.
pub async fn streams_of_subject(pool: &PgPool, subject: &str) -> Result<Vec<String>, sqlx::Error> {
    retry::serializable(|| {
        sqlx::query_scalar(
            "SELECT s.stream_id FROM pii_streams s JOIN pii_keys k ON k.key_id = s.key_id \
             WHERE k.subject = $1 ORDER BY s.stream_id",
        )
        .bind(subject)
        .fetch_all(pool)
    })
    .await
}
