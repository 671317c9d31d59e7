//! The stock decision, pure: a batch's locked rows (stock per SKU and location, the orders'
//! reservation rows, the stock movements already recorded under the batch's ids) held in
//! memory, every request decided against them in arrival order, and the rows that changed
//! handed back for the writer ([`super::reserver`]) to store. No I/O, no clock: time comes in
//! on each request, so unit and property tests run the same decisions the writer commits.
//!
//! Which rows a batch must lock is decided here too ([`orders_to_lock`], [`skus_to_lock`],
//! [`movements_to_read`], [`claimed_once`]), so the tests read exactly what the writer reads.
//! What the decisions keep true (the tests state it): no stock row ever has more reserved plus
//! allocated units than on hand; a row's reserved and allocated counts are the sums of the
//! reservation rows held in those states; a release, a partial release (per id), an expiry and
//! a transfer (per id) give units back exactly once; and a batch decides as its requests would
//! one at a time.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;
use waybill_schemas::events::{BackorderedLine, ReleaseReason, ReservedLine};
use waybill_schemas::{OrderId, Quantity, Sku};

use super::allocation::{self, Availability, Plan};
use super::store::{MovementRow, ReservationRow, StockRow, ALLOCATED, RELEASED, RESERVED};
use super::{
    AllocateOutcome, AllocationTransfer, InventoryConfig, InventoryError, Location,
    MovementOutcome, OutOfStock, PartialRelease, RequestedLine, ReserveOutcome, ReserveRequest,
    ShipTo, StockMovement,
};

/// A request to the inventory writer.
#[derive(Debug, Clone)]
pub(super) enum Command {
    Reserve(ReserveRequest),
    Allocate {
        order_id: OrderId,
        now: DateTime<Utc>,
    },
    Release {
        order_id: OrderId,
        reason: ReleaseReason,
        now: DateTime<Utc>,
    },
    ReleaseExpired {
        now: DateTime<Utc>,
        limit: u32,
    },
    Move(StockMovement),
    ReleaseUnits(PartialRelease),
    Transfer(AllocationTransfer),
}

/// The writer's answer to one [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    Reserved(ReserveOutcome),
    Allocated(AllocateOutcome),
    Released(u32),
    Expired(Vec<OrderId>),
    Moved(MovementOutcome),
}

/// The expired orders each sweep of a batch claimed (in the sweeps' order), each order given
/// to the first sweep that claimed it only.
pub(super) fn claimed_once(claims: Vec<Vec<Uuid>>) -> Vec<Vec<Uuid>> {
    let mut seen = HashSet::new();
    claims
        .into_iter()
        .map(|orders| orders.into_iter().filter(|o| seen.insert(*o)).collect())
        .collect()
}

/// The orders whose reservation rows the batch reads and locks: every order a request names,
/// and every order its sweeps claimed; sorted, so writers lock in one order.
pub(super) fn orders_to_lock(commands: &[Command], claimed: &[Vec<Uuid>]) -> Vec<Uuid> {
    let mut orders: Vec<Uuid> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Reserve(r) => Some(r.order_id.as_uuid()),
            Command::Allocate { order_id, .. } | Command::Release { order_id, .. } => {
                Some(order_id.as_uuid())
            }
            Command::ReleaseUnits(r) => Some(r.order_id.as_uuid()),
            Command::Transfer(t) => Some(t.order_id.as_uuid()),
            Command::ReleaseExpired { .. } | Command::Move(_) => None,
        })
        .chain(claimed.iter().flatten().copied())
        .collect();
    orders.sort_unstable();
    orders.dedup();
    orders
}

/// The SKUs whose stock rows the batch reads and locks: those of the locked reservations and
/// those the requests name; sorted.
pub(super) fn skus_to_lock(commands: &[Command], reservations: &[ReservationRow]) -> Vec<String> {
    let mut skus: Vec<String> = reservations.iter().map(|r| r.sku.clone()).collect();
    for command in commands {
        match command {
            Command::Reserve(r) => skus.extend(r.lines.iter().map(|l| l.sku.as_str().to_owned())),
            Command::Move(m) => skus.push(m.sku.as_str().to_owned()),
            Command::Transfer(t) => skus.push(t.sku.as_str().to_owned()),
            _ => {}
        }
    }
    skus.sort_unstable();
    skus.dedup();
    skus
}

/// The movement ids the batch must know about (each applied once): stock movements, partial
/// releases and transfers.
pub(super) fn movements_to_read(commands: &[Command]) -> Vec<String> {
    commands
        .iter()
        .filter_map(|command| match command {
            Command::Move(m) => Some(m.movement_id.clone()),
            Command::ReleaseUnits(r) => Some(r.release_id.clone()),
            Command::Transfer(t) => Some(t.transfer_id.clone()),
            _ => None,
        })
        .collect()
}

type Key = (String, String);

/// The batch's view of the locked rows, changed in memory as requests are decided.
pub(super) struct StockLedger<'a> {
    config: &'a InventoryConfig,
    locations: Vec<Location>,
    stock: HashMap<Key, StockRow>,
    /// Stock keys that had no row before this batch.
    new_stock: HashSet<Key>,
    changed_stock: Vec<Key>,
    available: Availability,
    reservations: HashMap<Uuid, Vec<ReservationRow>>,
    /// (order, index into its rows) changed by this batch.
    changed_reservations: Vec<(Uuid, usize)>,
    movements: HashMap<String, MovementRow>,
    new_movements: Vec<MovementRow>,
}

impl<'a> StockLedger<'a> {
    pub(super) fn new(
        config: &'a InventoryConfig,
        locations: Vec<Location>,
        stock: Vec<StockRow>,
        reservations: Vec<ReservationRow>,
        movements: Vec<MovementRow>,
    ) -> Self {
        let mut available = Availability::default();
        for row in &stock {
            available.set(&row.sku, &row.location_id, units(row.available()));
        }
        let mut by_order: HashMap<Uuid, Vec<ReservationRow>> = HashMap::new();
        for row in reservations {
            by_order.entry(row.order_id).or_default().push(row);
        }
        Self {
            config,
            locations,
            stock: stock
                .into_iter()
                .map(|r| ((r.sku.clone(), r.location_id.clone()), r))
                .collect(),
            new_stock: HashSet::new(),
            changed_stock: Vec::new(),
            available,
            reservations: by_order,
            changed_reservations: Vec::new(),
            movements: movements
                .into_iter()
                .map(|m| (m.movement_id.clone(), m))
                .collect(),
            new_movements: Vec::new(),
        }
    }

    /// Decides every request of the batch in order; `claimed` holds, per sweep in the batch,
    /// the orders it claimed ([`claimed_once`]).
    pub(super) fn decide(
        &mut self,
        commands: &[Command],
        claimed: Vec<Vec<Uuid>>,
    ) -> Vec<Result<Answer, InventoryError>> {
        let mut claimed = claimed.into_iter();
        commands
            .iter()
            .map(|command| match command {
                Command::Reserve(request) => Ok(Answer::Reserved(self.reserve(request))),
                Command::Allocate { order_id, now } => self.allocate(*order_id, *now),
                Command::Release {
                    order_id,
                    reason,
                    now,
                } => {
                    tracing::debug!(order_id = %order_id, reason = reason.as_str(), "release");
                    Ok(Answer::Released(self.release(
                        order_id.as_uuid(),
                        *now,
                        false,
                    )))
                }
                Command::ReleaseExpired { now, .. } => {
                    let orders = claimed.next().unwrap_or_default();
                    Ok(Answer::Expired(self.expire(&orders, *now)))
                }
                Command::Move(movement) => self.move_stock(movement),
                Command::ReleaseUnits(release) => Ok(Answer::Released(self.release_units(release))),
                Command::Transfer(transfer) => self.transfer(transfer).map(Answer::Released),
            })
            .collect()
    }

    /// Movements this batch recorded (restocks, adjustments, and the markers of partial
    /// releases and transfers).
    pub(super) fn new_movements(&self) -> &[MovementRow] {
        &self.new_movements
    }

    /// Applies `change` to the stock row of (`sku`, `location_id`), creating it if needed.
    fn change_stock(&mut self, sku: &str, location_id: &str, change: impl FnOnce(&mut StockRow)) {
        let key = (sku.to_owned(), location_id.to_owned());
        let row = self.stock.entry(key.clone()).or_insert_with(|| {
            self.new_stock.insert(key.clone());
            StockRow {
                sku: sku.to_owned(),
                location_id: location_id.to_owned(),
                on_hand: 0,
                reserved: 0,
                allocated: 0,
            }
        });
        change(row);
        self.available.set(sku, location_id, units(row.available()));
        self.changed_stock.push(key);
    }

    /// An order's rows that still hold units, in the table's key order (line, location):
    /// rows held earlier in the same batch come in the plan's order, rows read back from the
    /// table in key order, and every decision over them (which hold a cancellation releases
    /// first) must not depend on which it was.
    fn active_rows(&self, order: Uuid) -> Vec<usize> {
        let Some(rows) = self.reservations.get(&order) else {
            return Vec::new();
        };
        let mut active: Vec<usize> = (0..rows.len())
            .filter(|i| rows[*i].state != RELEASED)
            .collect();
        active.sort_by(|a, b| {
            (rows[*a].line_no, &rows[*a].location_id)
                .cmp(&(rows[*b].line_no, &rows[*b].location_id))
        });
        active
    }

    fn reserve(&mut self, request: &ReserveRequest) -> ReserveOutcome {
        let order = request.order_id.as_uuid();
        let _span =
            tracing::debug_span!("inventory.reserve", order_id = %request.order_id).entered();
        let active = self.active_rows(order);
        if !active.is_empty() {
            return self.existing_reservation(order, &active, &request.lines);
        }
        let plan = allocation::plan(
            &request.lines,
            &request.ship_to,
            &self.locations,
            &self.available,
            self.config.out_of_stock,
        );
        // Postgres keeps microseconds: answer with the instant that is stored.
        let expires_at = (request.now + ttl(self.config)).trunc_subsecs(6);
        match plan {
            Plan::Insufficient { shortages } => ReserveOutcome::Insufficient { shortages },
            Plan::Reserved { lines, backordered } => {
                self.hold(
                    order,
                    &request.ship_to,
                    &lines,
                    RESERVED,
                    expires_at,
                    request.now,
                );
                ReserveOutcome::Reserved {
                    lines,
                    backordered,
                    expires_at,
                }
            }
        }
    }

    /// The answer to a repeated reserve: the rows already held, and what the request asks
    /// beyond them as back-ordered.
    fn existing_reservation(
        &self,
        order: Uuid,
        active: &[usize],
        requested: &[RequestedLine],
    ) -> ReserveOutcome {
        let rows = &self.reservations[&order];
        let lines = held_lines(rows, active);
        let backordered = requested
            .iter()
            .filter_map(|line| {
                let held: u32 = lines
                    .iter()
                    .filter(|l| l.line_no == line.line_no)
                    .map(|l| l.quantity.get())
                    .sum();
                Some(BackorderedLine {
                    line_no: line.line_no,
                    sku: line.sku.clone(),
                    quantity: Quantity::parse(i64::from(line.quantity.get().checked_sub(held)?))
                        .ok()?,
                })
            })
            .collect();
        let expires_at = active
            .iter()
            .map(|i| rows[*i].expires_at)
            .max()
            .unwrap_or_default();
        ReserveOutcome::Reserved {
            lines,
            backordered,
            expires_at,
        }
    }

    /// Records `lines` as held for `order` in `state`, taking the units from stock.
    fn hold(
        &mut self,
        order: Uuid,
        ship_to: &ShipTo,
        lines: &[ReservedLine],
        state: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        for line in lines {
            let units = i64::from(line.quantity.get());
            self.change_stock(line.sku.as_str(), &line.location_id, |row| {
                if state == ALLOCATED {
                    row.allocated += units;
                } else {
                    row.reserved += units;
                }
            });
            let row = ReservationRow {
                order_id: order,
                line_no: i32::try_from(line.line_no).unwrap_or(i32::MAX),
                sku: line.sku.as_str().to_owned(),
                location_id: line.location_id.clone(),
                quantity: units,
                state: state.to_owned(),
                ship_country: ship_to.country.as_str().to_owned(),
                ship_postal_code: ship_to.postal_code.clone(),
                expires_at,
                created_at: now,
                updated_at: now,
            };
            let rows = self.reservations.entry(order).or_default();
            let index = match rows
                .iter()
                .position(|r| r.line_no == row.line_no && r.location_id == row.location_id)
            {
                Some(index) => {
                    let created_at = rows[index].created_at;
                    rows[index] = ReservationRow { created_at, ..row };
                    index
                }
                None => {
                    rows.push(row);
                    rows.len() - 1
                }
            };
            self.changed_reservations.push((order, index));
        }
    }

    fn allocate(
        &mut self,
        order_id: OrderId,
        now: DateTime<Utc>,
    ) -> Result<Answer, InventoryError> {
        let order = order_id.as_uuid();
        let _span = tracing::debug_span!("inventory.allocate", order_id = %order_id).entered();
        let active = self.active_rows(order);
        if !active.is_empty() {
            for index in &active {
                let row = &self.reservations[&order][*index];
                if row.state != RESERVED {
                    continue;
                }
                let (sku, location, units) =
                    (row.sku.clone(), row.location_id.clone(), row.quantity);
                self.change_stock(&sku, &location, |stock| {
                    stock.reserved -= units;
                    stock.allocated += units;
                });
                self.set_state(order, *index, ALLOCATED, now);
            }
            let rows = &self.reservations[&order];
            let lines = held_lines(rows, &active);
            return Ok(Answer::Allocated(AllocateOutcome::Allocated { lines }));
        }
        let Some((ship_to, lines)) = self.last_released(order) else {
            return Err(InventoryError::NothingReserved(order_id));
        };
        let plan = allocation::plan(
            &lines,
            &ship_to,
            &self.locations,
            &self.available,
            OutOfStock::Reject,
        );
        Ok(Answer::Allocated(match plan {
            Plan::Insufficient { shortages } => AllocateOutcome::Insufficient { shortages },
            Plan::Reserved { lines, .. } => {
                self.hold(order, &ship_to, &lines, ALLOCATED, now, now);
                AllocateOutcome::Allocated { lines }
            }
        }))
    }

    /// The lines of the order's most recently released reservation (released together, so they
    /// share `updated_at`), and where it shipped to.
    fn last_released(&self, order: Uuid) -> Option<(ShipTo, Vec<RequestedLine>)> {
        let rows = self.reservations.get(&order)?;
        let last = rows.iter().map(|r| r.updated_at).max()?;
        let released: Vec<&ReservationRow> = rows.iter().filter(|r| r.updated_at == last).collect();
        let first = released.first()?;
        let ship_to = ShipTo::new(&first.ship_country, &first.ship_postal_code).ok()?;
        let mut lines: Vec<RequestedLine> = Vec::new();
        for row in released {
            let line_no = u32::try_from(row.line_no).ok()?;
            let units = u32::try_from(row.quantity).ok()?;
            match lines.iter_mut().find(|l| l.line_no == line_no) {
                Some(line) => {
                    line.quantity = Quantity::parse(i64::from(line.quantity.get() + units)).ok()?
                }
                None => lines.push(RequestedLine {
                    line_no,
                    sku: Sku::parse(&row.sku).ok()?,
                    quantity: Quantity::parse(i64::from(units)).ok()?,
                }),
            }
        }
        lines.sort_by_key(|l| l.line_no);
        Some((ship_to, lines))
    }

    fn set_state(&mut self, order: Uuid, index: usize, state: &str, now: DateTime<Utc>) {
        if let Some(row) = self
            .reservations
            .get_mut(&order)
            .and_then(|rows| rows.get_mut(index))
        {
            row.state = state.to_owned();
            row.updated_at = now;
            self.changed_reservations.push((order, index));
        }
    }

    /// Releases the order's held units (only expired soft reservations when `expired_only`).
    fn release(&mut self, order: Uuid, now: DateTime<Utc>, expired_only: bool) -> u32 {
        let _span = tracing::debug_span!("inventory.release", order_id = %order).entered();
        let mut released = 0_u32;
        for index in self.active_rows(order) {
            let row = &self.reservations[&order][index];
            let expired = row.state == RESERVED && row.expires_at <= now;
            if expired_only && !expired {
                continue;
            }
            let (sku, location, units, state) = (
                row.sku.clone(),
                row.location_id.clone(),
                row.quantity,
                row.state.clone(),
            );
            self.change_stock(&sku, &location, |stock| {
                if state == ALLOCATED {
                    stock.allocated -= units;
                } else {
                    stock.reserved -= units;
                }
            });
            self.set_state(order, index, RELEASED, now);
            released += u32::try_from(units).unwrap_or(u32::MAX);
        }
        released
    }

    /// Gives back some units of an order's holds (a cancellation), once per `release_id`:
    /// from the named location first, then from any other hold of the line.
    fn release_units(&mut self, release: &PartialRelease) -> u32 {
        let order = release.order_id.as_uuid();
        let _span =
            tracing::debug_span!("inventory.release_units", order_id = %release.order_id).entered();
        let seen = self.movements.get(&release.release_id).or_else(|| {
            self.new_movements
                .iter()
                .find(|m| m.movement_id == release.release_id)
        });
        if let Some(marker) = seen {
            // A repeated release answers what the first one gave back.
            return released_by(marker);
        }
        let mut released = 0_u32;
        let mut marker_at: Option<(String, String)> = None;
        for units in &release.lines {
            let mut wanted = i64::from(units.quantity);
            let mut rows = self.active_rows(order);
            rows.retain(|i| {
                i64::from(self.reservations[&order][*i].line_no) == i64::from(units.line_no)
            });
            rows.sort_by_key(|i| {
                Some(&self.reservations[&order][*i].location_id) != units.location_id.as_ref()
            });
            for index in rows {
                if wanted == 0 {
                    break;
                }
                let row = &self.reservations[&order][index];
                let take = wanted.min(row.quantity);
                let (sku, location, state, left) = (
                    row.sku.clone(),
                    row.location_id.clone(),
                    row.state.clone(),
                    row.quantity - take,
                );
                self.change_stock(&sku, &location, |stock| {
                    if state == ALLOCATED {
                        stock.allocated -= take;
                    } else {
                        stock.reserved -= take;
                    }
                });
                if left == 0 {
                    self.set_state(order, index, RELEASED, release.now);
                } else if let Some(row) = self
                    .reservations
                    .get_mut(&order)
                    .and_then(|rows| rows.get_mut(index))
                {
                    row.quantity = left;
                    row.updated_at = release.now;
                    self.changed_reservations.push((order, index));
                }
                marker_at.get_or_insert((sku, location));
                wanted -= take;
                released += u32::try_from(take).unwrap_or(u32::MAX);
            }
        }
        let (sku, location_id) = marker_at.unwrap_or_else(|| {
            let sku = release
                .lines
                .first()
                .map(|l| l.sku.as_str().to_owned())
                .unwrap_or_default();
            (sku, String::new())
        });
        // A zero-delta movement records that this release happened (its idempotency).
        self.new_movements.push(MovementRow {
            movement_id: release.release_id.clone(),
            sku,
            location_id,
            delta_on_hand: 0,
            reason: format!("{RELEASE_REASON_PREFIX}{released}"),
            order_id: Some(order),
            at: release.now,
        });
        released
    }

    /// Moves allocated units of one order line to another location (a re-route), once per
    /// `transfer_id`; refused when the target location has fewer units available.
    fn transfer(&mut self, t: &AllocationTransfer) -> Result<u32, InventoryError> {
        let order = t.order_id.as_uuid();
        let known = self.movements.get(&t.transfer_id).or_else(|| {
            self.new_movements
                .iter()
                .find(|m| m.movement_id == t.transfer_id)
        });
        if let Some(marker) = known {
            return Ok(released_by(marker));
        }
        let sku = t.sku.as_str();
        let available = self.level(sku, &t.to).available;
        if available < i64::from(t.quantity) {
            return Err(InventoryError::NotEnoughAt {
                sku: t.sku.clone(),
                location_id: t.to.clone(),
                wanted: t.quantity,
                available,
            });
        }
        // Give the units back where they were held (the named location first)...
        let template = self
            .active_rows(order)
            .into_iter()
            .map(|i| self.reservations[&order][i].clone())
            .find(|r| i64::from(r.line_no) == i64::from(t.line_no));
        let Some(template) = template else {
            return Ok(0);
        };
        let moved = self.release_units(&PartialRelease {
            order_id: t.order_id,
            release_id: format!("{}:from", t.transfer_id),
            lines: vec![super::UnitsAt {
                line_no: t.line_no,
                sku: t.sku.clone(),
                quantity: t.quantity,
                location_id: Some(t.from.clone()),
            }],
            now: t.now,
        });
        // ...and hold them at the new location, added to a hold the line may have there.
        let units = i64::from(moved);
        let existing = self.reservations.get(&order).and_then(|rows| {
            rows.iter().position(|r| {
                i64::from(r.line_no) == i64::from(t.line_no)
                    && r.location_id == t.to
                    && r.state != RELEASED
            })
        });
        match existing {
            Some(index) if units > 0 => {
                let state = self.reservations[&order][index].state.clone();
                self.change_stock(sku, &t.to, |stock| {
                    if state == ALLOCATED {
                        stock.allocated += units;
                    } else {
                        stock.reserved += units;
                    }
                });
                if let Some(row) = self
                    .reservations
                    .get_mut(&order)
                    .and_then(|rows| rows.get_mut(index))
                {
                    row.quantity += units;
                    row.updated_at = t.now;
                }
                self.changed_reservations.push((order, index));
            }
            _ if units > 0 => {
                if let (Ok(ship_to), Ok(quantity)) = (
                    ShipTo::new(&template.ship_country, &template.ship_postal_code),
                    Quantity::parse(units),
                ) {
                    let line = ReservedLine {
                        line_no: t.line_no,
                        sku: t.sku.clone(),
                        location_id: t.to.clone(),
                        quantity,
                    };
                    self.hold(
                        order,
                        &ship_to,
                        &[line],
                        ALLOCATED,
                        template.expires_at,
                        t.now,
                    );
                }
            }
            _ => {}
        }
        self.new_movements.push(MovementRow {
            movement_id: t.transfer_id.clone(),
            sku: sku.to_owned(),
            location_id: t.to.clone(),
            delta_on_hand: 0,
            reason: format!("{RELEASE_REASON_PREFIX}{moved}"),
            order_id: Some(order),
            at: t.now,
        });
        Ok(moved)
    }

    fn expire(&mut self, orders: &[Uuid], now: DateTime<Utc>) -> Vec<OrderId> {
        orders
            .iter()
            .filter(|order| self.release(**order, now, true) > 0)
            .map(|order| OrderId::from_uuid(*order))
            .collect()
    }

    fn move_stock(&mut self, movement: &StockMovement) -> Result<Answer, InventoryError> {
        let sku = movement.sku.as_str();
        let location = movement.location_id.as_str();
        let known = self.movements.get(&movement.movement_id).or_else(|| {
            self.new_movements
                .iter()
                .find(|m| m.movement_id == movement.movement_id)
        });
        if let Some(known) = known {
            let same = known.sku == sku
                && known.location_id == location
                && known.delta_on_hand == movement.delta
                && known.reason == movement.reason;
            if !same {
                return Err(InventoryError::KeyReused(movement.movement_id.clone()));
            }
            return Ok(Answer::Moved(MovementOutcome {
                level: self.level(sku, location),
                replayed: true,
            }));
        }
        if !self
            .locations
            .iter()
            .any(|l| l.location_id == movement.location_id)
        {
            return Err(InventoryError::UnknownLocation(location.to_owned()));
        }
        let current = self.level(sku, location);
        let on_hand = current.on_hand + movement.delta;
        let committed = current.reserved + current.allocated;
        if on_hand < committed || on_hand < 0 {
            return Err(InventoryError::BelowCommitted {
                sku: movement.sku.clone(),
                location_id: location.to_owned(),
                delta: movement.delta,
                on_hand,
                committed,
            });
        }
        self.change_stock(sku, location, |row| row.on_hand = on_hand);
        self.new_movements.push(MovementRow {
            movement_id: movement.movement_id.clone(),
            sku: sku.to_owned(),
            location_id: location.to_owned(),
            delta_on_hand: movement.delta,
            reason: movement.reason.clone(),
            order_id: None,
            at: movement.now,
        });
        Ok(Answer::Moved(MovementOutcome {
            level: self.level(sku, location),
            replayed: false,
        }))
    }

    fn level(&self, sku: &str, location: &str) -> super::StockLevel {
        self.stock
            .get(&(sku.to_owned(), location.to_owned()))
            .cloned()
            .unwrap_or(StockRow {
                sku: sku.to_owned(),
                location_id: location.to_owned(),
                on_hand: 0,
                reserved: 0,
                allocated: 0,
            })
            .level()
    }

    /// Changed stock rows: those that existed (locked), and new ones.
    pub(super) fn changed_stock(&self) -> (Vec<&StockRow>, Vec<&StockRow>) {
        let mut seen = HashSet::new();
        let (mut existing, mut new) = (Vec::new(), Vec::new());
        for key in &self.changed_stock {
            if !seen.insert(key) {
                continue;
            }
            if let Some(row) = self.stock.get(key) {
                if self.new_stock.contains(key) {
                    new.push(row);
                } else {
                    existing.push(row);
                }
            }
        }
        (existing, new)
    }

    pub(super) fn changed_reservations(&self) -> Vec<&ReservationRow> {
        let mut seen = HashSet::new();
        self.changed_reservations
            .iter()
            .filter(|key| seen.insert(**key))
            .filter_map(|(order, index)| self.reservations.get(order)?.get(*index))
            .collect()
    }
}

/// The reason of a partial release's marker movement: the prefix, then the units released.
const RELEASE_REASON_PREFIX: &str = "units cancelled, released: ";

fn released_by(marker: &MovementRow) -> u32 {
    marker
        .reason
        .strip_prefix(RELEASE_REASON_PREFIX)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn ttl(config: &InventoryConfig) -> chrono::Duration {
    chrono::Duration::from_std(config.reservation_ttl).unwrap_or(chrono::Duration::minutes(15))
}

/// A stock row's available units as a count (a row never has fewer than zero).
fn units(available: i64) -> u32 {
    u32::try_from(available.max(0)).unwrap_or(u32::MAX)
}

/// The lines an order holds in `active` rows, by line and location: the same answer whether the
/// rows were read back from the table (in key order) or held earlier in the same batch (in the
/// plan's order), which the batching property test caught.
fn held_lines(rows: &[ReservationRow], active: &[usize]) -> Vec<ReservedLine> {
    let mut lines: Vec<ReservedLine> = active.iter().filter_map(|i| line_of(&rows[*i])).collect();
    lines.sort_by(|a, b| (a.line_no, &a.location_id).cmp(&(b.line_no, &b.location_id)));
    lines
}

fn line_of(row: &ReservationRow) -> Option<ReservedLine> {
    Some(ReservedLine {
        line_no: u32::try_from(row.line_no).ok()?,
        sku: Sku::parse(&row.sku).ok()?,
        location_id: row.location_id.clone(),
        quantity: Quantity::parse(row.quantity).ok()?,
    })
}

#[cfg(test)]
mod tests;
