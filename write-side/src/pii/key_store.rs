//! Where the per-customer data keys live: [`KeyStore`], and its default, the `pii_keys` table
//! of the event store's database ([`PgKeyStore`]), each key wrapped (sealed) under the master
//! key. The key store's writes run in the caller's transaction, so a new customer's key
//! commits with the events sealed under it, or not at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::Utc;
use sqlx::PgConnection;
use uuid::Uuid;
use waybill_schemas::Email;

use super::{fields, PiiError};
use crate::subscriptions::seal::SealingKey;

/// A data key: the key personal fields are sealed under, and its id (bound into every
/// ciphertext as associated data).
#[derive(Debug, Clone)]
pub struct DataKey {
    pub key_id: Uuid,
    pub key: SealingKey,
}

/// Per-subject data keys that can be created, fetched and destroyed.
#[allow(async_fn_in_trait)]
pub trait KeyStore {
    /// The live key of each of `subjects`, created for those that have none.
    async fn live_keys(
        &self,
        conn: &mut PgConnection,
        subjects: &[String],
    ) -> Result<HashMap<String, DataKey>, PiiError>;

    /// The keys `key_ids`: `Some` when live, `None` when erased (or never known).
    async fn keys(
        &self,
        conn: &mut PgConnection,
        key_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Option<SealingKey>>, PiiError>;

    /// Destroys every key of `subject`; returns their ids (empty: it had none).
    async fn destroy(&self, conn: &mut PgConnection, subject: &str) -> Result<Vec<Uuid>, PiiError>;

    /// The subject of every guest checkout with `email`: a keyed digest of the normalised
    /// email, so the store can find a guest's keys by email without ever holding it.
    fn guest_subject(&self, email: &Email) -> String;
}

/// How many unwrapped data keys a process keeps ([`Unwrapped`]).
const UNWRAPPED_CAPACITY: usize = 16_384;

/// Data keys this process unwrapped, by id, each with the wrapped bytes it was unwrapped from.
/// Every reader of a batch holding an order's personal fields reads that order's key row (so a
/// destroyed key shows at once) and used to unwrap it again: one decryption under the master
/// key and a key derivation per key, per batch, per view. A key is reused only when the row
/// still holds the very bytes it came from; a destroyed key's row holds none and never reaches
/// this cache.
#[derive(Debug, Default)]
struct Unwrapped {
    keys: HashMap<Uuid, (Vec<u8>, SealingKey)>,
}

impl Unwrapped {
    fn get(&self, key_id: Uuid, wrapped: &[u8]) -> Option<SealingKey> {
        self.keys
            .get(&key_id)
            .filter(|(from, _)| from.as_slice() == wrapped)
            .map(|(_, key)| key.clone())
    }

    /// Drops a destroyed key: it would never be used (its row holds no bytes to match), and
    /// need not stay in memory either.
    fn forget(&mut self, key_id: Uuid) {
        self.keys.remove(&key_id);
    }

    fn insert(&mut self, key_id: Uuid, wrapped: &[u8], key: SealingKey) {
        if self.keys.len() >= UNWRAPPED_CAPACITY {
            // Keys are cheap to unwrap again; starting over keeps this simple and bounded.
            self.keys.clear();
        }
        self.keys.insert(key_id, (wrapped.to_vec(), key));
    }
}

/// Data keys in the `pii_keys` table, wrapped under the master key.
#[derive(Debug, Clone)]
pub struct PgKeyStore {
    master: SealingKey,
    unwrapped: Arc<Mutex<Unwrapped>>,
}

impl PgKeyStore {
    pub fn new(master: SealingKey) -> Self {
        Self {
            master,
            unwrapped: Arc::default(),
        }
    }

    fn unwrapped(&self) -> MutexGuard<'_, Unwrapped> {
        // A panic while holding it leaves whole entries behind: still usable.
        self.unwrapped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn unwrap_key(&self, key_id: Uuid, wrapped: &[u8]) -> Result<SealingKey, PiiError> {
        if let Some(key) = self.unwrapped().get(key_id, wrapped) {
            return Ok(key);
        }
        let hex = self
            .master
            .open(key_id, wrapped)
            .map_err(|_| PiiError::MasterKeyMismatch(key_id))?;
        let key = SealingKey::parse(&hex).map_err(|_| PiiError::MasterKeyMismatch(key_id))?;
        self.unwrapped().insert(key_id, wrapped, key.clone());
        Ok(key)
    }
}

impl KeyStore for PgKeyStore {
    async fn live_keys(
        &self,
        conn: &mut PgConnection,
        subjects: &[String],
    ) -> Result<HashMap<String, DataKey>, PiiError> {
        if subjects.is_empty() {
            return Ok(HashMap::new());
        }
        let mut ids = Vec::with_capacity(subjects.len());
        let mut wrapped = Vec::with_capacity(subjects.len());
        for _ in subjects {
            let key_id = Uuid::now_v7();
            let raw: [u8; 32] = rand::random();
            wrapped.push(self.master.seal(key_id, &hex::encode(raw)));
            ids.push(key_id);
        }
        sqlx::query(
            "INSERT INTO pii_keys (key_id, subject, wrapped, created_at) \
             SELECT id, s, w, $4 FROM UNNEST($1::uuid[], $2::text[], $3::bytea[]) AS x(id, s, w) \
             ON CONFLICT (subject) WHERE erased_at IS NULL DO NOTHING",
        )
        .bind(&ids)
        .bind(subjects)
        .bind(&wrapped)
        .bind(Utc::now())
        .execute(&mut *conn)
        .await?;
        let rows: Vec<(String, Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT subject, key_id, wrapped FROM pii_keys \
             WHERE subject = ANY($1) AND erased_at IS NULL",
        )
        .bind(subjects)
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter()
            .map(|(subject, key_id, wrapped)| {
                let key = self.unwrap_key(key_id, &wrapped)?;
                Ok((subject, DataKey { key_id, key }))
            })
            .collect()
    }

    async fn keys(
        &self,
        conn: &mut PgConnection,
        key_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Option<SealingKey>>, PiiError> {
        let rows: Vec<(Uuid, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT key_id, wrapped FROM pii_keys WHERE key_id = ANY($1)")
                .bind(key_ids)
                .fetch_all(&mut *conn)
                .await?;
        let mut keys: HashMap<Uuid, Option<SealingKey>> =
            key_ids.iter().map(|id| (*id, None)).collect();
        for (key_id, wrapped) in rows {
            match wrapped {
                Some(wrapped) => {
                    keys.insert(key_id, Some(self.unwrap_key(key_id, &wrapped)?));
                }
                None => self.unwrapped().forget(key_id),
            }
        }
        Ok(keys)
    }

    fn guest_subject(&self, email: &Email) -> String {
        fields::guest_subject(&self.master.keyed_digest("guest-email", email.as_str()))
    }

    async fn destroy(&self, conn: &mut PgConnection, subject: &str) -> Result<Vec<Uuid>, PiiError> {
        let destroyed: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE pii_keys SET wrapped = NULL, erased_at = $2 \
             WHERE subject = $1 AND erased_at IS NULL RETURNING key_id",
        )
        .bind(subject)
        .bind(Utc::now())
        .fetch_all(&mut *conn)
        .await?;
        let mut unwrapped = self.unwrapped();
        for key_id in &destroyed {
            unwrapped.forget(*key_id);
        }
        Ok(destroyed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn master() -> SealingKey {
        SealingKey::parse(&"0f".repeat(32)).unwrap()
    }

    /// A new data key of id `key_id`, wrapped under `master`.
    fn wrapped(master: &SealingKey, key_id: Uuid, raw: [u8; 32]) -> Vec<u8> {
        master.seal(key_id, &hex::encode(raw))
    }

    /// True when `a` opens what `b` sealed: the same key.
    fn same(a: &SealingKey, b: &SealingKey) -> bool {
        let id = Uuid::now_v7();
        a.open(id, &b.seal(id, "probe")).is_ok()
    }

    #[test]
    fn a_key_unwrapped_once_is_reused_only_for_the_same_wrapped_bytes() {
        let store = PgKeyStore::new(master());
        let key_id = Uuid::now_v7();
        let first = wrapped(&master(), key_id, [1; 32]);
        let key = store.unwrap_key(key_id, &first).unwrap();
        assert_eq!(store.unwrapped().keys.len(), 1);
        assert!(same(&store.unwrap_key(key_id, &first).unwrap(), &key));
        // The same id wrapping another key (a database restored or recreated): unwrapped anew.
        let second = wrapped(&master(), key_id, [2; 32]);
        let other = store.unwrap_key(key_id, &second).unwrap();
        assert!(!same(&other, &key));
        assert!(same(&store.unwrap_key(key_id, &second).unwrap(), &other));
        // Bytes that do not open under the master key are refused, cached or not.
        let mut bad = second.clone();
        bad[20] ^= 1;
        assert!(matches!(
            store.unwrap_key(key_id, &bad),
            Err(PiiError::MasterKeyMismatch(id)) if id == key_id
        ));
    }

    #[test]
    fn the_unwrapped_keys_stay_within_their_capacity() {
        let mut unwrapped = Unwrapped::default();
        for n in 0..=UNWRAPPED_CAPACITY {
            unwrapped.insert(Uuid::from_u128(n as u128), &[0], master());
        }
        assert!(unwrapped.keys.len() <= UNWRAPPED_CAPACITY);
        let last = Uuid::from_u128(UNWRAPPED_CAPACITY as u128);
        assert!(unwrapped.get(last, &[0]).is_some());
        assert!(unwrapped.get(last, &[1]).is_none());
        unwrapped.forget(last);
        assert!(unwrapped.get(last, &[0]).is_none());
    }
}
