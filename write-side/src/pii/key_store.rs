//! Where the per-customer data keys live: [`KeyStore`], and its default, the `pii_keys` table
//! of the event store's database ([`PgKeyStore`]), each key wrapped (sealed) under the master
//! key. The key store's writes run in the caller's transaction, so a new customer's key
//! commits with the events sealed under it, or not at all.

use std::collections::HashMap;

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

/// Data keys in the `pii_keys` table, wrapped under the master key.
#[derive(Debug, Clone)]
pub struct PgKeyStore {
    master: SealingKey,
}

impl PgKeyStore {
    pub fn new(master: SealingKey) -> Self {
        Self { master }
    }

    fn unwrap_key(&self, key_id: Uuid, wrapped: &[u8]) -> Result<SealingKey, PiiError> {
        let hex = self
            .master
            .open(key_id, wrapped)
            .map_err(|_| PiiError::MasterKeyMismatch(key_id))?;
        SealingKey::parse(&hex).map_err(|_| PiiError::MasterKeyMismatch(key_id))
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
            if let Some(wrapped) = wrapped {
                keys.insert(key_id, Some(self.unwrap_key(key_id, &wrapped)?));
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
        Ok(destroyed)
    }
}
