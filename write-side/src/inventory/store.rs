//! The inventory tables' SQL (`migrations/0002_inventory.sql`): the writer's locking reads and
//! multi-row `UNNEST` writes, the expiry claim (`FOR UPDATE SKIP LOCKED`), and the plain reads
//! and location upserts the HTTP API needs. Nothing else touches these tables.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Country, Location, LocationId, LocationKind, StockLevel};
use crate::event_store::retry;

/// One `inventory_stock` row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct StockRow {
    pub sku: String,
    pub location_id: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub allocated: i64,
}

impl StockRow {
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved - self.allocated
    }

    pub fn level(&self) -> StockLevel {
        StockLevel {
            sku: self.sku.clone(),
            location_id: self.location_id.clone(),
            on_hand: self.on_hand,
            reserved: self.reserved,
            allocated: self.allocated,
            available: self.available(),
        }
    }
}

/// One `inventory_reservations` row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct ReservationRow {
    pub order_id: Uuid,
    pub line_no: i32,
    pub sku: String,
    pub location_id: String,
    pub quantity: i64,
    pub state: String,
    pub ship_country: String,
    pub ship_postal_code: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(super) const RESERVED: &str = "reserved";
pub(super) const ALLOCATED: &str = "allocated";
pub(super) const RELEASED: &str = "released";

/// One `inventory_movements` row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct MovementRow {
    pub movement_id: String,
    pub sku: String,
    pub location_id: String,
    pub delta_on_hand: i64,
    pub reason: String,
    pub order_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

type LocationRow = (String, String, String, String, i32, bool);

fn location_from(row: LocationRow) -> Option<Location> {
    let (id, kind, name, country, zone, active) = row;
    Some(Location {
        location_id: LocationId::parse(&id).ok()?,
        kind: LocationKind::parse(&kind).ok()?,
        name,
        country: Country::from_stored(&country)?,
        zone,
        active,
    })
}

const SELECT_LOCATIONS: &str =
    "SELECT location_id, kind, name, country, zone, active FROM inventory_locations \
     ORDER BY location_id";

/// Every location, inside the writer's transaction.
pub(super) async fn locations_in(conn: &mut PgConnection) -> Result<Vec<Location>, sqlx::Error> {
    let rows: Vec<LocationRow> = sqlx::query_as(SELECT_LOCATIONS).fetch_all(conn).await?;
    Ok(rows.into_iter().filter_map(location_from).collect())
}

/// Every location.
pub(super) async fn locations(pool: &PgPool) -> Result<Vec<Location>, sqlx::Error> {
    let rows: Vec<LocationRow> =
        retry::serializable(|| async { sqlx::query_as(SELECT_LOCATIONS).fetch_all(pool).await })
            .await?;
    Ok(rows.into_iter().filter_map(location_from).collect())
}

pub(super) async fn upsert_location(pool: &PgPool, location: &Location) -> Result<(), sqlx::Error> {
    retry::serializable(|| async {
        sqlx::query(
            "INSERT INTO inventory_locations (location_id, kind, name, country, zone, active) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (location_id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, \
                 country = EXCLUDED.country, zone = EXCLUDED.zone, active = EXCLUDED.active",
        )
        .bind(location.location_id.as_str())
        .bind(location.kind.as_str())
        .bind(&location.name)
        .bind(location.country.as_str())
        .bind(location.zone)
        .bind(location.active)
        .execute(pool)
        .await
    })
    .await?;
    Ok(())
}

/// Stock of `sku` at every location that has a row for it.
pub(super) async fn stock_levels(pool: &PgPool, sku: &str) -> Result<Vec<StockLevel>, sqlx::Error> {
    let rows: Vec<StockRow> = retry::serializable(|| async {
        sqlx::query_as(
            "SELECT sku, location_id, on_hand, reserved, allocated FROM inventory_stock \
             WHERE sku = $1 ORDER BY location_id",
        )
        .bind(sku)
        .fetch_all(pool)
        .await
    })
    .await?;
    Ok(rows.iter().map(StockRow::level).collect())
}

/// Stock of every sku of `skus` at every location (no locks).
pub(super) async fn stock_levels_of(
    pool: &PgPool,
    skus: &[String],
) -> Result<Vec<StockLevel>, sqlx::Error> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<StockRow> = retry::serializable(|| async {
        sqlx::query_as(
            "SELECT sku, location_id, on_hand, reserved, allocated FROM inventory_stock \
             WHERE sku = ANY($1) ORDER BY sku, location_id",
        )
        .bind(skus)
        .fetch_all(pool)
        .await
    })
    .await?;
    Ok(rows.iter().map(StockRow::level).collect())
}

/// Locks and returns the stock rows of `skus` (in key order, so writers never deadlock).
pub(super) async fn lock_stock(
    conn: &mut PgConnection,
    skus: &[String],
) -> Result<Vec<StockRow>, sqlx::Error> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT sku, location_id, on_hand, reserved, allocated FROM inventory_stock \
         WHERE sku = ANY($1) ORDER BY sku, location_id FOR UPDATE",
    )
    .bind(skus)
    .fetch_all(conn)
    .await
}

/// Locks and returns every reservation row of `orders`.
pub(super) async fn lock_reservations(
    conn: &mut PgConnection,
    orders: &[Uuid],
) -> Result<Vec<ReservationRow>, sqlx::Error> {
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT order_id, line_no, sku, location_id, quantity, state, ship_country, \
                ship_postal_code, expires_at, created_at, updated_at \
         FROM inventory_reservations WHERE order_id = ANY($1) \
         ORDER BY order_id, line_no, location_id FOR UPDATE",
    )
    .bind(orders)
    .fetch_all(conn)
    .await
}

/// Orders with a soft reservation expired at `now`, at most `limit` rows' worth, skipping rows
/// another transaction holds (another process's sweep or writer).
pub(super) async fn claim_expired(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT order_id FROM inventory_reservations \
         WHERE state = 'reserved' AND expires_at <= $1 \
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    let mut orders: Vec<Uuid> = Vec::with_capacity(rows.len());
    for (order,) in rows {
        if !orders.contains(&order) {
            orders.push(order);
        }
    }
    Ok(orders)
}

/// The movements already recorded under `ids`.
pub(super) async fn movements(
    conn: &mut PgConnection,
    ids: &[String],
) -> Result<Vec<MovementRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT movement_id, sku, location_id, delta_on_hand, reason, order_id, at \
         FROM inventory_movements WHERE movement_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Writes the new values of existing (locked) stock rows, and inserts new ones.
pub(super) async fn write_stock(
    conn: &mut PgConnection,
    existing: &[&StockRow],
    new: &[&StockRow],
) -> Result<(), sqlx::Error> {
    for (rows, sql) in [
        (
            existing,
            "UPDATE inventory_stock s SET on_hand = x.on_hand, reserved = x.reserved, \
                 allocated = x.allocated \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) \
                 AS x(sku, location_id, on_hand, reserved, allocated) \
             WHERE s.sku = x.sku AND s.location_id = x.location_id",
        ),
        (
            new,
            "INSERT INTO inventory_stock (sku, location_id, on_hand, reserved, allocated) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], \
                                  $5::bigint[])",
        ),
    ] {
        if rows.is_empty() {
            continue;
        }
        sqlx::query(sql)
            .bind(rows.iter().map(|r| r.sku.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.location_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.on_hand).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.reserved).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.allocated).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Inserts or overwrites reservation rows (the writer holds their locks).
pub(super) async fn write_reservations(
    conn: &mut PgConnection,
    rows: &[&ReservationRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO inventory_reservations (order_id, line_no, sku, location_id, quantity, state, \
             ship_country, ship_postal_code, expires_at, created_at, updated_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::text[], $4::text[], $5::bigint[], \
             $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], \
             $11::timestamptz[]) \
         ON CONFLICT (order_id, line_no, location_id) DO UPDATE SET sku = EXCLUDED.sku, \
             quantity = EXCLUDED.quantity, state = EXCLUDED.state, \
             ship_country = EXCLUDED.ship_country, ship_postal_code = EXCLUDED.ship_postal_code, \
             expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at",
    )
    .bind(rows.iter().map(|r| r.order_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.line_no).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.sku.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.location_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.quantity).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.ship_country.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.ship_postal_code.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.expires_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn insert_movements(
    conn: &mut PgConnection,
    rows: &[MovementRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO inventory_movements (movement_id, sku, location_id, delta_on_hand, reason, \
             order_id, at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
             $6::uuid[], $7::timestamptz[])",
    )
    .bind(
        rows.iter()
            .map(|r| r.movement_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.sku.as_str()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.location_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.delta_on_hand).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.order_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the postal code the reservations of `orders` were routed for with `erased` (an
/// erasure), in the caller's transaction; the country stays, for reports and routing.
pub async fn forget_ship_postal_codes(
    conn: &mut PgConnection,
    orders: &[Uuid],
    erased: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE inventory_reservations SET ship_postal_code = $2 WHERE order_id = ANY($1)",
    )
    .bind(orders)
    .bind(erased)
    .execute(conn)
    .await?
    .rows_affected())
}
