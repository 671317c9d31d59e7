//! Reading and writing tracking views in Redis, in the layout of [`super::keys`] (hashes kept by
//! [`crate::views::order_hashes`]), plus the rebuild's replace-unless-newer write, and
//! the two indexes customers reach their orders through:
//! - `<prefix>:customer-orders:<customer digest>`: sorted set of order ids scored by placement
//!   time in milliseconds (`GET /v1/me/orders`);
//! - `<prefix>:tracking-lookup:<lookup digest>`: the order id found by order number + email or
//!   postcode (the `/track` form);
//! - `<prefix>:store-credit:<customer digest>`: hash of credit id → store credit entry, one per
//!   `StoreCreditIssued` of the customer's orders (`GET /v1/me/store-credit`).
//!
//! Keys hold only SHA-256 digests (`waybill_schemas::access`), never an email or postcode. Index
//! writes are idempotent (SET / ZADD of the same member), so they are written before the view's
//! compare-and-set and simply repeated on redelivery.

use redis::Script;
use waybill_schemas::views::{StoreCreditEntry, TrackingView};

use super::keys::{customer_orders_key, lookup_key, store_credit_key, VIEW_SEGMENT};
use super::TrackingError;
use crate::redis_connection::{KeyScan, RedisConnection};
use crate::views::order_hashes::{encode, HashError, OrderHashes};

/// Writes `view` unless the stored one is newer: used by a rebuild to replace views it
/// recomputed at the same or a later version.
const REPLACE_UNLESS_NEWER: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if current == false or tonumber(current) <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'view', ARGV[2])
  return 1
end
return 0
";

/// A view to write if the stored one is still at `expected_version`.
#[derive(Debug, Clone)]
pub struct TrackingWrite {
    pub expected_version: i64,
    pub view: TrackingView,
}

/// The tracking views under one key prefix.
#[derive(Clone)]
pub struct TrackingStore {
    hashes: OrderHashes,
    replace: Script,
}

impl From<HashError> for TrackingError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::NotAnOrder { stream_id } => TrackingError::NotAnOrder { stream_id },
            HashError::Corrupt { key, source } => TrackingError::CorruptView { key, source },
            HashError::Redis(error) => TrackingError::Redis(error),
        }
    }
}

impl TrackingStore {
    pub fn new(redis: RedisConnection, prefix: impl Into<String>) -> Self {
        Self {
            hashes: OrderHashes::new(redis, prefix.into(), VIEW_SEGMENT),
            replace: Script::new(REPLACE_UNLESS_NEWER),
        }
    }

    /// The Redis connection this store uses.
    pub fn connection(&self) -> RedisConnection {
        self.hashes.connection()
    }

    pub fn prefix(&self) -> &str {
        self.hashes.prefix()
    }

    /// `<prefix>:tracking:{<order uuid>}`.
    pub fn key(&self, order_id: &str) -> String {
        self.hashes.key(order_id)
    }

    /// The match pattern for every tracking key under this prefix.
    pub fn key_pattern(&self) -> String {
        self.hashes.key_pattern()
    }

    /// One order's view, if it has one.
    pub async fn get(&self, order_id: &str) -> Result<Option<TrackingView>, TrackingError> {
        let mut found = self.load_keys(vec![self.key(order_id)]).await?;
        Ok(found.pop().flatten())
    }

    /// The views of these order streams (`order-<uuid>`), in order, with one round trip.
    pub async fn load_streams(
        &self,
        stream_ids: &[String],
    ) -> Result<Vec<Option<TrackingView>>, TrackingError> {
        Ok(self.hashes.load_streams(stream_ids).await?)
    }

    /// The stored versions of these order streams (0: none), in order, with one round trip.
    pub async fn versions(&self, stream_ids: &[String]) -> Result<Vec<i64>, TrackingError> {
        Ok(self.hashes.versions(stream_ids).await?)
    }

    /// The views at these keys, with one round trip.
    pub async fn load_keys(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<Option<TrackingView>>, TrackingError> {
        Ok(self.hashes.load_keys(keys).await?)
    }

    /// Compare-and-set writes, one round trip; `true` where the write happened, `false` where
    /// the stored version had moved on.
    pub async fn compare_and_set(
        &self,
        writes: &[TrackingWrite],
    ) -> Result<Vec<bool>, TrackingError> {
        let writes = writes.iter().map(|write| {
            let view = &write.view;
            (&view.order_id, write.expected_version, view.version, view)
        });
        Ok(self.hashes.compare_and_set(writes).await?)
    }

    /// Writes views unless the stored one is newer, one round trip; `true` where written.
    pub async fn replace_unless_newer(
        &self,
        views: &[TrackingView],
    ) -> Result<Vec<bool>, TrackingError> {
        if views.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.load_script(&self.replace).ignore();
        for view in views {
            let key = self.key(&view.order_id);
            let json = encode(&key, view)?;
            pipe.invoke_script(self.replace.key(key).arg(view.version).arg(json));
        }
        let written: Vec<i64> = pipe.query_async(&mut self.connection()).await?;
        self.connection().await_replicas().await?;
        Ok(written.into_iter().map(|w| w == 1).collect())
    }

    /// `<prefix>:customer-orders:<customer digest>`.
    pub fn customer_orders_key(&self, customer_digest: &str) -> String {
        customer_orders_key(self.prefix(), customer_digest)
    }

    /// Writes the index entries of these views (idempotent: SET, ZADD, HSET of the same member),
    /// one round trip.
    pub async fn index(&self, views: &[&TrackingView]) -> Result<(), TrackingError> {
        let mut pipe = redis::pipe();
        let mut any = false;
        for view in views {
            if let Some(customer) = &view.access.customer {
                pipe.zadd(
                    self.customer_orders_key(customer),
                    &view.order_id,
                    view.placed_at.timestamp_millis(),
                )
                .ignore();
                any = true;
                for credit in &view.payment.store_credits {
                    let entry = StoreCreditEntry {
                        credit_id: credit.credit_id.clone(),
                        order_id: view.order_id.clone(),
                        order_number: view.channel_order_ref.clone(),
                        amount_minor: credit.amount_minor,
                        currency: credit.currency.clone(),
                        return_id: credit.return_id.clone(),
                        issued_at: credit.issued_at,
                    };
                    let json = serde_json::to_string(&entry).map_err(|source| {
                        TrackingError::CorruptView {
                            key: store_credit_key(self.prefix(), customer),
                            source,
                        }
                    })?;
                    pipe.hset(
                        store_credit_key(self.prefix(), customer),
                        &credit.credit_id,
                        json,
                    )
                    .ignore();
                }
            }
            for digest in &view.access.lookup {
                pipe.set(lookup_key(self.prefix(), digest), &view.order_id)
                    .ignore();
                any = true;
            }
        }
        if any {
            pipe.query_async::<()>(&mut self.connection()).await?;
        }
        Ok(())
    }

    /// Deletes the `/track` lookup keys of `views` (an erased customer's orders: their digests
    /// were made from the email and postcodes the erasure removed).
    pub async fn forget_lookups(&self, views: &[TrackingView]) -> Result<(), TrackingError> {
        let mut pipe = redis::pipe();
        let mut any = false;
        for digest in views.iter().flat_map(|v| &v.access.lookup) {
            pipe.del(lookup_key(self.prefix(), digest)).ignore();
            any = true;
        }
        if any {
            pipe.query_async::<()>(&mut self.connection()).await?;
        }
        Ok(())
    }

    /// Deletes every tracking key under this prefix (used to drop a rebuild's staging copy).
    pub async fn delete_all(&self) -> Result<u64, TrackingError> {
        Ok(self.hashes.delete_all().await?)
    }

    /// Every tracking key under this prefix, page by page (each master's on a cluster).
    pub fn scan(&self) -> KeyScan {
        self.hashes.scan()
    }
}
