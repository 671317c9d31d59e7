//! The inventory bounded context: stock per SKU per location (warehouse, store, third-party
//! logistics), soft reservations taken at checkout that expire unless the order is confirmed,
//! hard allocations at confirmation, and restocks and adjustments.
//!
//! Everything that changes stock goes through one writer per process ([`reserver`]): callers'
//! requests are queued, decided in arrival order in memory against the locked stock rows
//! ([`stock_ledger`] is the pure decision over them, [`allocation`] the choice of locations,
//! [`zones`] the distance rule), and committed in one serializable transaction per batch
//! ([`store`] owns the SQL). That keeps a hot SKU in a flash
//! sale at one transaction per batch instead of one retry storm per order, and the table's CHECK
//! still refuses any commit that would oversell. Every operation is idempotent per order (or per
//! idempotency key for stock movements), so the checkout process manager may repeat any step.

pub mod allocation;
mod reserver;
mod stock_ledger;
mod store;

pub use store::forget_ship_postal_codes;
pub mod zones;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use waybill_schemas::events::{BackorderedLine, ReleaseReason, ReservedLine, Shortage};
use waybill_schemas::{OrderId, Quantity, Sku};

use crate::domain::pricing::address;

use reserver::Job;
use stock_ledger::{Answer, Command};

/// Why the inventory could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InventoryError {
    #[error("{field} {detail}")]
    Invalid { field: &'static str, detail: String },
    #[error("location {0} does not exist")]
    UnknownLocation(String),
    #[error(
        "adjusting {} at {location_id} by {delta} would leave {on_hand} on hand, \
         below the {committed} units reserved or allocated", sku.as_str()
    )]
    BelowCommitted {
        sku: Sku,
        location_id: String,
        delta: i64,
        on_hand: i64,
        committed: i64,
    },
    #[error("idempotency key {0} was already used for a different stock movement")]
    KeyReused(String),
    #[error("order {0} has no reservation to allocate")]
    NothingReserved(OrderId),
    #[error("{} at {location_id}: {wanted} wanted, {available} available", sku.as_str())]
    NotEnoughAt {
        sku: Sku,
        location_id: String,
        wanted: u32,
        available: i64,
    },
    #[error("the inventory writer has stopped")]
    Stopped,
    #[error("inventory storage failed: {0}")]
    Database(#[source] Arc<sqlx::Error>),
}

impl From<sqlx::Error> for InventoryError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(Arc::new(error))
    }
}

fn invalid(field: &'static str, detail: impl Into<String>) -> InventoryError {
    InventoryError::Invalid {
        field,
        detail: detail.into(),
    }
}

/// A location's id: 1–64 letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocationId(String);

impl LocationId {
    pub fn parse(raw: &str) -> Result<Self, InventoryError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid(
                "location_id",
                "must be 1-64 letters, digits, '-', '_' or '.'",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for LocationId {
    type Error = InventoryError;
    fn try_from(raw: String) -> Result<Self, InventoryError> {
        Self::parse(&raw)
    }
}
impl From<LocationId> for String {
    fn from(id: LocationId) -> String {
        id.0
    }
}

/// An ISO-3166 alpha-2 country code, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Country(String);

impl Country {
    /// An assigned ISO-3166 alpha-2 code, by the same rule orders' addresses follow.
    pub fn parse(raw: &str) -> Result<Self, InventoryError> {
        address::country(raw)
            .map(Self)
            .map_err(|detail| invalid("country", detail))
    }

    /// A code read back from storage: two letters are enough, so a location stored before
    /// codes were checked against the assigned list is still read (and can be corrected).
    pub(crate) fn from_stored(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        (raw.len() == 2 && raw.chars().all(|c| c.is_ascii_alphabetic()))
            .then(|| Self(raw.to_ascii_uppercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Country {
    type Error = InventoryError;
    fn try_from(raw: String) -> Result<Self, InventoryError> {
        Self::parse(&raw)
    }
}
impl From<Country> for String {
    fn from(country: Country) -> String {
        country.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationKind {
    Warehouse,
    Store,
    ThirdParty,
}

impl LocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warehouse => "warehouse",
            Self::Store => "store",
            Self::ThirdParty => "third_party",
        }
    }
    pub fn parse(raw: &str) -> Result<Self, InventoryError> {
        match raw {
            "warehouse" => Ok(Self::Warehouse),
            "store" => Ok(Self::Store),
            "third_party" => Ok(Self::ThirdParty),
            _ => Err(invalid("kind", "must be warehouse, store or third_party")),
        }
    }
}

/// A place stock is held. Inactive locations keep their stock but give none to new orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub location_id: LocationId,
    pub kind: LocationKind,
    pub name: String,
    pub country: Country,
    /// The location's zone for [`zones::distance`].
    pub zone: i32,
    pub active: bool,
}

/// Where an order ships to, as far as choosing a location is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipTo {
    pub country: Country,
    pub postal_code: String,
}

impl ShipTo {
    pub fn new(country: &str, postal_code: &str) -> Result<Self, InventoryError> {
        Ok(Self {
            country: Country::parse(country)?,
            postal_code: postal_code.trim().to_owned(),
        })
    }
}

/// One order line asking for stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLine {
    pub line_no: u32,
    pub sku: Sku,
    pub quantity: Quantity,
}

/// What happens to units no location has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfStock {
    /// The whole request is refused with per-line shortages.
    #[default]
    Reject,
    /// What can be reserved is; the rest is back-ordered.
    Backorder,
}

#[derive(Debug, Clone)]
pub struct InventoryConfig {
    /// How long a soft reservation holds stock before the sweep releases it.
    pub reservation_ttl: Duration,
    pub out_of_stock: OutOfStock,
    /// Most requests decided in one transaction.
    pub batch_max: usize,
    /// How long the first request of a batch waits for others.
    pub batch_linger: Duration,
}

impl Default for InventoryConfig {
    /// 15-minute reservations, reject when short, batches of up to 500 lingering 1 ms.
    fn default() -> Self {
        Self {
            reservation_ttl: Duration::from_secs(15 * 60),
            out_of_stock: OutOfStock::Reject,
            batch_max: 500,
            batch_linger: Duration::from_millis(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    pub order_id: OrderId,
    pub ship_to: ShipTo,
    pub lines: Vec<RequestedLine>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    Reserved {
        lines: Vec<ReservedLine>,
        backordered: Vec<BackorderedLine>,
        expires_at: DateTime<Utc>,
    },
    Insufficient {
        shortages: Vec<Shortage>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocateOutcome {
    Allocated { lines: Vec<ReservedLine> },
    Insufficient { shortages: Vec<Shortage> },
}

/// Units of an order's holds to give back (a cancellation of some of its units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialRelease {
    pub order_id: OrderId,
    /// Applied once per id (`<order>:cancel:<cancellation id>`).
    pub release_id: String,
    pub lines: Vec<UnitsAt>,
    pub now: DateTime<Utc>,
}

/// Units of one line, and the location they are taken from first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitsAt {
    pub line_no: u32,
    pub sku: Sku,
    pub quantity: u32,
    pub location_id: Option<String>,
}

/// Allocated units of one order line moved from one location to another (a re-route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationTransfer {
    pub order_id: OrderId,
    /// Applied once per id.
    pub transfer_id: String,
    pub line_no: u32,
    pub sku: Sku,
    pub from: String,
    pub to: String,
    pub quantity: u32,
    pub now: DateTime<Utc>,
}

/// Stock of one SKU at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StockLevel {
    pub sku: String,
    pub location_id: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub allocated: i64,
    /// on_hand − reserved − allocated.
    pub available: i64,
}

/// A restock or an adjustment of on-hand stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockMovement {
    pub sku: Sku,
    pub location_id: LocationId,
    /// Positive for a restock; either sign for an adjustment; never zero.
    pub delta: i64,
    pub reason: String,
    /// Derived from the caller's idempotency key: the same id is applied once.
    pub movement_id: String,
    pub now: DateTime<Utc>,
}

/// The result of a movement: the stock after it, and whether it was applied before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementOutcome {
    pub level: StockLevel,
    pub replayed: bool,
}

/// The inventory service of this process. Cheap to clone; the writer stops when the last clone
/// is dropped.
#[derive(Clone)]
pub struct Inventory {
    jobs: mpsc::Sender<Job>,
    pool: PgPool,
}

impl Inventory {
    /// Starts the writer on the current tokio runtime.
    pub fn spawn(pool: PgPool, config: InventoryConfig) -> Self {
        let jobs = reserver::spawn(pool.clone(), config);
        Self { jobs, pool }
    }

    async fn ask(&self, command: Command) -> Result<Answer, InventoryError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { command, reply })
            .await
            .map_err(|_| InventoryError::Stopped)?;
        answer.await.map_err(|_| InventoryError::Stopped)?
    }

    /// Soft-reserves the lines, or answers from the order's existing reservation.
    pub async fn reserve(&self, request: ReserveRequest) -> Result<ReserveOutcome, InventoryError> {
        if request.lines.is_empty() {
            return Err(invalid("lines", "must not be empty"));
        }
        match self.ask(Command::Reserve(request)).await? {
            Answer::Reserved(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    /// Turns the order's reservation into a hard allocation (again: the same lines). If the
    /// reservation was released by expiry, the same lines are taken again from current stock.
    pub async fn allocate(
        &self,
        order_id: OrderId,
        now: DateTime<Utc>,
    ) -> Result<AllocateOutcome, InventoryError> {
        match self.ask(Command::Allocate { order_id, now }).await? {
            Answer::Allocated(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    /// Gives the order's reserved and allocated units back; returns how many (0 the second time).
    pub async fn release(
        &self,
        order_id: OrderId,
        reason: ReleaseReason,
        now: DateTime<Utc>,
    ) -> Result<u32, InventoryError> {
        match self
            .ask(Command::Release {
                order_id,
                reason,
                now,
            })
            .await?
        {
            Answer::Released(units) => Ok(units),
            other => Err(unexpected(other)),
        }
    }

    /// Gives back some units of the order's holds, once per `release_id`; returns how many
    /// (0 when the release was made before or nothing was held).
    pub async fn release_units(&self, release: PartialRelease) -> Result<u32, InventoryError> {
        if release.release_id.is_empty() {
            return Err(invalid("release_id", "must not be empty"));
        }
        match self.ask(Command::ReleaseUnits(release)).await? {
            Answer::Released(units) => Ok(units),
            other => Err(unexpected(other)),
        }
    }

    /// Moves allocated units of an order line to another location, once per `transfer_id`;
    /// returns how many moved. Refused when the target has fewer units available.
    pub async fn transfer(&self, transfer: AllocationTransfer) -> Result<u32, InventoryError> {
        if transfer.transfer_id.is_empty() {
            return Err(invalid("transfer_id", "must not be empty"));
        }
        match self.ask(Command::Transfer(transfer)).await? {
            Answer::Released(units) => Ok(units),
            other => Err(unexpected(other)),
        }
    }

    /// The durable expiry sweep: releases up to `limit` orders whose reservation expired at
    /// `now`, skipping rows another process is working on, and returns them.
    pub async fn release_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OrderId>, InventoryError> {
        match self.ask(Command::ReleaseExpired { now, limit }).await? {
            Answer::Expired(orders) => Ok(orders),
            other => Err(unexpected(other)),
        }
    }

    /// Adds `quantity` units on hand.
    pub async fn restock(
        &self,
        sku: Sku,
        location_id: LocationId,
        quantity: u32,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<MovementOutcome, InventoryError> {
        if quantity == 0 {
            return Err(invalid("quantity", "must be a positive number of units"));
        }
        self.move_stock(StockMovement {
            sku,
            location_id,
            delta: i64::from(quantity),
            reason: "restock".to_owned(),
            movement_id: idempotency_key.to_owned(),
            now,
        })
        .await
    }

    /// Corrects on-hand stock by `delta` (a count, damage, shrinkage); never below what is
    /// reserved or allocated.
    pub async fn adjust(
        &self,
        sku: Sku,
        location_id: LocationId,
        delta: i64,
        reason: &str,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<MovementOutcome, InventoryError> {
        if delta == 0 {
            return Err(invalid("delta", "must not be zero"));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 200 {
            return Err(invalid("reason", "must be 1-200 characters"));
        }
        self.move_stock(StockMovement {
            sku,
            location_id,
            delta,
            reason: reason.to_owned(),
            movement_id: idempotency_key.to_owned(),
            now,
        })
        .await
    }

    async fn move_stock(&self, movement: StockMovement) -> Result<MovementOutcome, InventoryError> {
        if movement.movement_id.is_empty() {
            return Err(invalid("idempotency_key", "must not be empty"));
        }
        match self.ask(Command::Move(movement)).await? {
            Answer::Moved(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    /// Stock of `sku` at every location that has a row for it, by location id.
    pub async fn stock(&self, sku: &Sku) -> Result<Vec<StockLevel>, InventoryError> {
        Ok(store::stock_levels(&self.pool, sku.as_str()).await?)
    }

    /// Creates or replaces a location.
    pub async fn upsert_location(&self, location: &Location) -> Result<(), InventoryError> {
        Ok(store::upsert_location(&self.pool, location).await?)
    }

    /// Every location, by id.
    pub async fn locations(&self) -> Result<Vec<Location>, InventoryError> {
        Ok(store::locations(&self.pool).await?)
    }
}

/// Every location, read without the writer (for fulfillment routing).
pub async fn read_locations(pool: &PgPool) -> Result<Vec<Location>, InventoryError> {
    Ok(store::locations(pool).await?)
}

/// Stock of `sku` at every location, read without the writer (for re-routing a short pick).
pub async fn read_stock(pool: &PgPool, sku: &Sku) -> Result<Vec<StockLevel>, InventoryError> {
    Ok(store::stock_levels(pool, sku.as_str()).await?)
}

/// Stock of each of `skus` at every location, in one read (what routing records as free stock).
pub async fn read_stock_of(pool: &PgPool, skus: &[Sku]) -> Result<Vec<StockLevel>, InventoryError> {
    let skus: Vec<String> = skus.iter().map(|s| s.as_str().to_owned()).collect();
    Ok(store::stock_levels_of(pool, &skus).await?)
}

fn unexpected(answer: Answer) -> InventoryError {
    InventoryError::Database(Arc::new(sqlx::Error::Protocol(format!(
        "the inventory writer answered {answer:?} to another question"
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_country_follows_the_rule_order_addresses_follow() {
        assert_eq!(Country::parse(" gb ").unwrap().as_str(), "GB");
        for refused in ["XX", "ZZ", "USA", "1A", ""] {
            let error = Country::parse(refused).unwrap_err();
            assert!(
                matches!(
                    error,
                    InventoryError::Invalid {
                        field: "country",
                        ..
                    }
                ),
                "{refused}: {error}"
            );
            assert!(
                address::country(refused).is_err(),
                "orders refuse {refused} too"
            );
        }
    }

    #[test]
    fn a_stored_code_outside_the_assigned_list_is_still_read() {
        assert_eq!(Country::from_stored("xx").unwrap().as_str(), "XX");
        assert!(Country::from_stored("X1").is_none());
    }
}
