//! The single writer of this process's stock changes. Requests arrive on a channel; the writer
//! takes up to `batch_max` of them (waiting at most `batch_linger` for more), and in ONE
//! serializable transaction locks the stock rows of every SKU involved (`FOR UPDATE`, in key
//! order), decides every request in arrival order in memory against the running availability,
//! writes all changed rows with multi-row `UNNEST` statements, commits, and only then answers
//! the callers. A serialization failure (another process touched the rows) re-runs the whole
//! batch from fresh reads, so no answer is ever given for a decision that did not commit.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use waybill_schemas::events::{BackorderedLine, ReleaseReason, ReservedLine};
use waybill_schemas::{OrderId, Quantity, Sku};

use super::allocation::{self, Availability, Plan};
use super::store::{self, MovementRow, ReservationRow, StockRow, ALLOCATED, RELEASED, RESERVED};
use super::{
    AllocateOutcome, AllocationTransfer, InventoryConfig, InventoryError, Location,
    MovementOutcome, OutOfStock, PartialRelease, RequestedLine, ReserveOutcome, ReserveRequest,
    ShipTo, StockMovement,
};
use crate::event_store::retry;

/// Requests queued beyond this wait for room (back-pressure on callers).
const QUEUE: usize = 16_384;

#[derive(Debug)]
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

#[derive(Debug)]
pub(super) enum Answer {
    Reserved(ReserveOutcome),
    Allocated(AllocateOutcome),
    Released(u32),
    Expired(Vec<OrderId>),
    Moved(MovementOutcome),
}

pub(super) struct Job {
    pub command: Command,
    pub reply: oneshot::Sender<Result<Answer, InventoryError>>,
}

/// Starts the writer task; it ends when every sender is dropped.
pub(super) fn spawn(pool: PgPool, config: InventoryConfig) -> mpsc::Sender<Job> {
    let (jobs, queue) = mpsc::channel(QUEUE);
    tokio::spawn(run(pool, config, queue));
    jobs
}

async fn run(pool: PgPool, config: InventoryConfig, mut queue: mpsc::Receiver<Job>) {
    let batch_max = config.batch_max.max(1);
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.batch_linger;
        while batch.len() < batch_max {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, queue.recv()).await {
                        Ok(Some(job)) => batch.push(job),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        let (commands, replies): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|j| (j.command, j.reply)).unzip();
        let started = Instant::now();
        let span = tracing::debug_span!("inventory.batch", size = commands.len());
        let result = {
            let _enter = span.enter();
            retry::serializable(|| decide_and_commit(&pool, &config, &commands)).await
        };
        metrics::histogram!("waybill_inventory_batch_size").record(commands.len() as f64);
        metrics::histogram!("waybill_inventory_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                tracing::error!(error = %error, size = commands.len(), "inventory batch failed");
                let error = InventoryError::from(error);
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// One attempt at the whole batch: read and lock, decide in memory, write, commit.
async fn decide_and_commit(
    pool: &PgPool,
    config: &InventoryConfig,
    commands: &[Command],
) -> Result<Vec<Result<Answer, InventoryError>>, sqlx::Error> {
    let mut tx = retry::begin(pool).await?;

    let mut claimed: Vec<Vec<Uuid>> = Vec::new();
    let mut claimed_once = HashSet::new();
    for command in commands {
        if let Command::ReleaseExpired { now, limit } = command {
            let orders = store::claim_expired(&mut tx, *now, *limit).await?;
            claimed.push(
                orders
                    .into_iter()
                    .filter(|o| claimed_once.insert(*o))
                    .collect(),
            );
        }
    }

    let mut orders: Vec<Uuid> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Reserve(r) => Some(r.order_id.as_uuid()),
            Command::Allocate { order_id, .. } | Command::Release { order_id, .. } => {
                Some(order_id.as_uuid())
            }
            Command::ReleaseUnits(r) => Some(r.order_id.as_uuid()),
            Command::Transfer(t) => Some(t.order_id.as_uuid()),
            _ => None,
        })
        .chain(claimed_once.iter().copied())
        .collect();
    orders.sort_unstable();
    orders.dedup();
    let reservations = store::lock_reservations(&mut tx, &orders).await?;

    let mut skus: Vec<String> = reservations.iter().map(|r| r.sku.clone()).collect();
    let mut movement_ids = Vec::new();
    for command in commands {
        match command {
            Command::Reserve(r) => skus.extend(r.lines.iter().map(|l| l.sku.as_str().to_owned())),
            Command::Move(m) => {
                skus.push(m.sku.as_str().to_owned());
                movement_ids.push(m.movement_id.clone());
            }
            Command::ReleaseUnits(r) => movement_ids.push(r.release_id.clone()),
            Command::Transfer(t) => {
                skus.push(t.sku.as_str().to_owned());
                movement_ids.push(t.transfer_id.clone());
            }
            _ => {}
        }
    }
    skus.sort_unstable();
    skus.dedup();
    let stock = store::lock_stock(&mut tx, &skus).await?;
    let movements = store::movements(&mut tx, &movement_ids).await?;
    let locations = store::locations_in(&mut tx).await?;

    let mut ledger = Ledger::new(config, locations, stock, reservations, movements);
    let mut claimed = claimed.into_iter();
    let answers: Vec<Result<Answer, InventoryError>> = commands
        .iter()
        .map(|command| match command {
            Command::Reserve(request) => Ok(Answer::Reserved(ledger.reserve(request))),
            Command::Allocate { order_id, now } => ledger.allocate(*order_id, *now),
            Command::Release {
                order_id,
                reason,
                now,
            } => {
                tracing::debug!(order_id = %order_id, reason = reason.as_str(), "release");
                Ok(Answer::Released(ledger.release(
                    order_id.as_uuid(),
                    *now,
                    false,
                )))
            }
            Command::ReleaseExpired { now, .. } => {
                let orders = claimed.next().unwrap_or_default();
                Ok(Answer::Expired(ledger.expire(&orders, *now)))
            }
            Command::Move(movement) => ledger.move_stock(movement),
            Command::ReleaseUnits(release) => Ok(Answer::Released(ledger.release_units(release))),
            Command::Transfer(transfer) => ledger.transfer(transfer).map(Answer::Released),
        })
        .collect();

    let (existing, new) = ledger.changed_stock();
    store::write_stock(&mut tx, &existing, &new).await?;
    store::write_reservations(&mut tx, &ledger.changed_reservations()).await?;
    store::insert_movements(&mut tx, &ledger.new_movements).await?;
    tx.commit().await?;
    metrics::counter!("waybill_inventory_decisions_total").increment(commands.len() as u64);
    Ok(answers)
}

type Key = (String, String);

/// The batch's view of the locked rows, changed in memory as requests are decided.
struct Ledger<'a> {
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

impl<'a> Ledger<'a> {
    fn new(
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

    fn active_rows(&self, order: Uuid) -> Vec<usize> {
        self.reservations
            .get(&order)
            .map(|rows| {
                (0..rows.len())
                    .filter(|i| rows[*i].state != RELEASED)
                    .collect()
            })
            .unwrap_or_default()
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
        let lines: Vec<ReservedLine> = active.iter().filter_map(|i| line_of(&rows[*i])).collect();
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
            let lines = active.iter().filter_map(|i| line_of(&rows[*i])).collect();
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
    fn changed_stock(&self) -> (Vec<&StockRow>, Vec<&StockRow>) {
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

    fn changed_reservations(&self) -> Vec<&ReservationRow> {
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

fn line_of(row: &ReservationRow) -> Option<ReservedLine> {
    Some(ReservedLine {
        line_no: u32::try_from(row.line_no).ok()?,
        sku: Sku::parse(&row.sku).ok()?,
        location_id: row.location_id.clone(),
        quantity: Quantity::parse(row.quantity).ok()?,
    })
}
