//! The stock decision against an in-memory copy of the inventory tables that reads what the
//! writer reads ([`orders_to_lock`], [`skus_to_lock`], [`movements_to_read`], the expiry claim)
//! and refuses what Postgres would refuse (an update of a row that is not there, a second
//! insert of a key, the `inventory_stock_never_oversold` CHECK, a reservation of no units).
//! Unit tests walk the named cases; property tests throw random interleavings of restock,
//! adjust, reserve, allocate, release, partial release, transfer and expiry sweeps at it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::inventory::{Country, LocationId, LocationKind, UnitsAt};

const SKUS: [&str; 3] = ["SKU-A", "SKU-B", "SKU-C"];
/// Locations and their zones (the ship-to postal code `<zone>0000` is in zone `<zone>`).
const LOCATIONS: [(&str, i32); 3] = [("EAST", 1), ("MID", 5), ("WEST", 9)];
const TTL_MINUTES: i64 = 15;

fn config(out_of_stock: OutOfStock) -> InventoryConfig {
    InventoryConfig {
        reservation_ttl: Duration::from_secs(TTL_MINUTES as u64 * 60),
        out_of_stock,
        ..InventoryConfig::default()
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid instant")
}

fn minutes(n: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(n)
}

fn sku(raw: &str) -> Sku {
    Sku::parse(raw).expect("sku")
}

fn order(n: u128) -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(n + 1))
}

type ReservationKey = (Uuid, i32, String);

/// The four inventory tables, as the writer's transaction sees them.
#[derive(Debug, Clone, PartialEq)]
struct Tables {
    locations: Vec<Location>,
    stock: BTreeMap<Key, StockRow>,
    reservations: BTreeMap<ReservationKey, ReservationRow>,
    movements: BTreeMap<String, MovementRow>,
}

impl Tables {
    fn new() -> Self {
        let locations = LOCATIONS
            .iter()
            .map(|(id, zone)| Location {
                location_id: LocationId::parse(id).expect("id"),
                kind: LocationKind::Warehouse,
                name: (*id).to_owned(),
                country: Country::parse("US").expect("country"),
                zone: *zone,
                active: true,
            })
            .collect();
        Self {
            locations,
            stock: BTreeMap::new(),
            reservations: BTreeMap::new(),
            movements: BTreeMap::new(),
        }
    }

    /// `store::claim_expired`: soft reservations expired at `now`, oldest first, at most
    /// `limit` rows' worth, each order once.
    fn claim_expired(&self, now: DateTime<Utc>, limit: u32) -> Vec<Uuid> {
        let mut rows: Vec<&ReservationRow> = self
            .reservations
            .values()
            .filter(|r| r.state == RESERVED && r.expires_at <= now)
            .collect();
        rows.sort_by_key(|r| r.expires_at);
        let mut orders = Vec::new();
        for row in rows.into_iter().take(limit as usize) {
            if !orders.contains(&row.order_id) {
                orders.push(row.order_id);
            }
        }
        orders
    }

    /// One batch, as `reserver::decide_and_commit` runs it; panics where Postgres would refuse
    /// the writes (the real batch would then fail and answer nobody).
    fn run(
        &mut self,
        config: &InventoryConfig,
        commands: &[Command],
    ) -> Vec<Result<Answer, InventoryError>> {
        let claims = commands
            .iter()
            .filter_map(|c| match c {
                Command::ReleaseExpired { now, limit } => Some(self.claim_expired(*now, *limit)),
                _ => None,
            })
            .collect();
        let claimed = claimed_once(claims);
        let orders = orders_to_lock(commands, &claimed);
        let reservations: Vec<ReservationRow> = self
            .reservations
            .values()
            .filter(|r| orders.contains(&r.order_id))
            .cloned()
            .collect();
        let skus = skus_to_lock(commands, &reservations);
        let stock: Vec<StockRow> = self
            .stock
            .values()
            .filter(|r| skus.contains(&r.sku))
            .cloned()
            .collect();
        let ids = movements_to_read(commands);
        let movements: Vec<MovementRow> = self
            .movements
            .values()
            .filter(|m| ids.contains(&m.movement_id))
            .cloned()
            .collect();

        let mut ledger = StockLedger::new(
            config,
            self.locations.clone(),
            stock,
            reservations,
            movements,
        );
        let answers = ledger.decide(commands, claimed);

        let (existing, new) = ledger.changed_stock();
        for row in existing {
            let key = (row.sku.clone(), row.location_id.clone());
            assert!(
                self.stock.contains_key(&key),
                "UPDATE of a missing row {key:?}"
            );
            self.stock.insert(key, row.clone());
        }
        for row in new {
            let key = (row.sku.clone(), row.location_id.clone());
            assert!(
                self.stock.insert(key.clone(), row.clone()).is_none(),
                "INSERT of an existing stock row {key:?}: the batch did not lock it"
            );
        }
        for row in ledger.changed_reservations() {
            assert!(row.quantity > 0, "a reservation row of no units: {row:?}");
            let key = (row.order_id, row.line_no, row.location_id.clone());
            let created_at = self.reservations.get(&key).map(|r| r.created_at);
            let mut row = row.clone();
            // ON CONFLICT DO UPDATE keeps the stored created_at.
            if let Some(created_at) = created_at {
                row.created_at = created_at;
            }
            self.reservations.insert(key, row);
        }
        for row in ledger.new_movements() {
            assert!(
                self.movements
                    .insert(row.movement_id.clone(), row.clone())
                    .is_none(),
                "INSERT of movement {} twice",
                row.movement_id
            );
        }
        for row in self.stock.values() {
            assert!(
                row.on_hand >= 0
                    && row.reserved >= 0
                    && row.allocated >= 0
                    && row.reserved + row.allocated <= row.on_hand,
                "inventory_stock_never_oversold refuses {row:?}"
            );
        }
        answers
    }

    fn one(
        &mut self,
        config: &InventoryConfig,
        command: Command,
    ) -> Result<Answer, InventoryError> {
        self.run(config, std::slice::from_ref(&command))
            .pop()
            .expect("one answer per command")
    }

    fn level(&self, sku: &str, location: &str) -> (i64, i64, i64) {
        self.stock
            .get(&(sku.to_owned(), location.to_owned()))
            .map_or((0, 0, 0), |r| (r.on_hand, r.reserved, r.allocated))
    }

    /// Units held (reserved + allocated) over every stock row.
    fn committed(&self) -> i64 {
        self.stock.values().map(|r| r.reserved + r.allocated).sum()
    }

    /// Units an order's rows hold in `state`.
    fn held(&self, order: Uuid, state: &str) -> i64 {
        self.reservations
            .values()
            .filter(|r| r.order_id == order && r.state == state)
            .map(|r| r.quantity)
            .sum()
    }

    fn has_active_rows(&self, order: Uuid) -> bool {
        self.reservations
            .values()
            .any(|r| r.order_id == order && r.state != RELEASED)
    }

    /// Every stock row's reserved and allocated counts are the sums of the reservation rows
    /// held in that state there, and its on-hand count is the sum of its movements.
    fn assert_rows_add_up(&self) {
        let mut keys: Vec<Key> = self.stock.keys().cloned().collect();
        keys.extend(
            self.reservations
                .values()
                .map(|r| (r.sku.clone(), r.location_id.clone())),
        );
        keys.sort();
        keys.dedup();
        for (sku, location) in keys {
            let rows = self
                .reservations
                .values()
                .filter(|r| r.sku == sku && r.location_id == location);
            let (mut reserved, mut allocated) = (0, 0);
            for row in rows {
                match row.state.as_str() {
                    RESERVED => reserved += row.quantity,
                    ALLOCATED => allocated += row.quantity,
                    _ => {}
                }
            }
            let on_hand: i64 = self
                .movements
                .values()
                .filter(|m| m.sku == sku && m.location_id == location)
                .map(|m| m.delta_on_hand)
                .sum();
            assert_eq!(
                self.level(&sku, &location),
                (on_hand, reserved, allocated),
                "{sku} at {location}: (on hand, reserved, allocated) against movements and rows"
            );
        }
    }
}

fn restock(sku_: &str, location: &str, units: i64, id: &str, now: DateTime<Utc>) -> Command {
    Command::Move(StockMovement {
        sku: sku(sku_),
        location_id: LocationId::parse(location).expect("id"),
        delta: units,
        reason: if units > 0 { "restock" } else { "count" }.to_owned(),
        movement_id: id.to_owned(),
        now,
    })
}

fn reserve(order_id: OrderId, zone: i32, lines: &[(&str, i64)], now: DateTime<Utc>) -> Command {
    Command::Reserve(ReserveRequest {
        order_id,
        ship_to: ShipTo::new("US", &format!("{zone}0000")).expect("ship-to"),
        lines: lines
            .iter()
            .zip(1..)
            .map(|((sku_, units), line_no)| RequestedLine {
                line_no,
                sku: sku(sku_),
                quantity: Quantity::parse(*units).expect("quantity"),
            })
            .collect(),
        now,
    })
}

fn allocate(order_id: OrderId, now: DateTime<Utc>) -> Command {
    Command::Allocate { order_id, now }
}

fn release(order_id: OrderId, now: DateTime<Utc>) -> Command {
    Command::Release {
        order_id,
        reason: ReleaseReason::OrderCancelled,
        now,
    }
}

fn sweep(now: DateTime<Utc>, limit: u32) -> Command {
    Command::ReleaseExpired { now, limit }
}

fn release_units(
    order_id: OrderId,
    id: &str,
    line_no: u32,
    sku_: &str,
    units: u32,
    now: DateTime<Utc>,
) -> Command {
    Command::ReleaseUnits(PartialRelease {
        order_id,
        release_id: id.to_owned(),
        lines: vec![UnitsAt {
            line_no,
            sku: sku(sku_),
            quantity: units,
            location_id: None,
        }],
        now,
    })
}

fn transfer(
    order_id: OrderId,
    id: &str,
    (line_no, sku_): (u32, &str),
    from: &str,
    to: &str,
    units: u32,
    now: DateTime<Utc>,
) -> Command {
    Command::Transfer(AllocationTransfer {
        order_id,
        transfer_id: id.to_owned(),
        line_no,
        sku: sku(sku_),
        from: from.to_owned(),
        to: to.to_owned(),
        quantity: units,
        now,
    })
}

fn reserved_units(answer: &Result<Answer, InventoryError>) -> Option<i64> {
    match answer {
        Ok(Answer::Reserved(ReserveOutcome::Reserved { lines, .. }))
        | Ok(Answer::Allocated(AllocateOutcome::Allocated { lines })) => {
            Some(lines.iter().map(|l| i64::from(l.quantity.get())).sum())
        }
        _ => None,
    }
}

fn released(answer: &Result<Answer, InventoryError>) -> u32 {
    match answer {
        Ok(Answer::Released(units)) => *units,
        other => panic!("expected a release count, got {other:?}"),
    }
}

// ---------------------------------------------------------------- named cases

#[test]
fn a_reservation_takes_units_and_a_repeated_reserve_answers_the_same_rows_without_taking_more() {
    let config = config(OutOfStock::Reject);
    let mut db = Tables::new();
    db.one(&config, restock("SKU-A", "EAST", 5, "r1", t0()))
        .expect("restock");
    let first = db.one(&config, reserve(order(1), 1, &[("SKU-A", 3)], t0()));
    assert_eq!(reserved_units(&first), Some(3));
    let again = db.one(&config, reserve(order(1), 1, &[("SKU-A", 3)], minutes(1)));
    assert_eq!(format!("{first:?}"), format!("{again:?}"));
    assert_eq!(db.level("SKU-A", "EAST"), (5, 3, 0));
    db.assert_rows_add_up();
}

#[test]
fn two_orders_in_one_batch_for_the_last_units_the_first_in_line_gets_them() {
    let config = config(OutOfStock::Reject);
    let mut db = Tables::new();
    db.one(&config, restock("SKU-A", "EAST", 2, "r1", t0()))
        .expect("restock");
    let answers = db.run(
        &config,
        &[
            reserve(order(1), 1, &[("SKU-A", 2)], t0()),
            reserve(order(2), 1, &[("SKU-A", 1)], t0()),
        ],
    );
    assert_eq!(reserved_units(&answers[0]), Some(2));
    match &answers[1] {
        Ok(Answer::Reserved(ReserveOutcome::Insufficient { shortages })) => {
            assert_eq!(shortages.len(), 1);
            assert_eq!((shortages[0].requested, shortages[0].available), (1, 0));
        }
        other => panic!("the second order must be refused, got {other:?}"),
    }
    assert_eq!(db.level("SKU-A", "EAST"), (2, 2, 0));
    db.assert_rows_add_up();
}

#[test]
fn under_backorder_the_missing_units_are_back_ordered_and_only_what_exists_is_held() {
    let config = config(OutOfStock::Backorder);
    let mut db = Tables::new();
    db.one(&config, restock("SKU-A", "EAST", 2, "r1", t0()))
        .expect("restock");
    match db.one(&config, reserve(order(1), 1, &[("SKU-A", 5)], t0())) {
        Ok(Answer::Reserved(ReserveOutcome::Reserved {
            lines, backordered, ..
        })) => {
            assert_eq!(lines.iter().map(|l| l.quantity.get()).sum::<u32>(), 2);
            assert_eq!(backordered.len(), 1);
            assert_eq!(backordered[0].quantity.get(), 3);
        }
        other => panic!("expected a partial reservation, got {other:?}"),
    }
    assert_eq!(db.level("SKU-A", "EAST"), (2, 2, 0));
}

#[test]
fn allocation_turns_reserved_units_into_allocated_ones_and_never_expires() {
    let config = config(OutOfStock::Reject);
    let mut db = Tables::new();
    db.one(&config, restock("SKU-A", "EAST", 5, "r1", t0()))
        .expect("restock");
    db.one(&config, reserve(order(1), 1, &[("SKU-A", 3)], t0()))
        .expect("reserve");
    let allocated = db.one(&config, allocate(order(1), minutes(1)));
    assert_eq!(reserved_units(&allocated), Some(3));
    assert_eq!(db.level("SKU-A", "EAST"), (5, 0, 3));
    let expired = db.one(&config, sweep(minutes(60), 100));
    assert!(
        matches!(expired, Ok(Answer::Expired(ref o)) if o.is_empty()),
        "{expired:?}"
    );
    assert_eq!(db.level("SKU-A", "EAST"), (5, 0, 3));
    db.assert_rows_add_up();
}

#[test]
fn a_release_gives_the_units_back_once() {
    let config = config(OutOfStock::Reject);
    let mut db = Tables::new();
    db.one(&config, restock("SKU-A", "EAST", 5, "r1", t0()))
        .expect("restock");
    db.one(&config, reserve(order(1), 1, &[("SKU-A", 3)], t0()))
        .expect("reserve");
    db.one(&config, allocate(order(1), t0())).expect("allocate");
    assert_eq!(released(&db.one(&config, release(order(1), minutes(1)))), 3);
    assert_eq!(released(&db.one(&config, release(order(1), minutes(2)))), 0);
    assert_eq!(db.level("SKU-A", "EAST"), (5, 0, 0));
    db.assert_rows_add_up();
}

#[test]
fn the_sweep_releases_an_expired_soft_reservation_once_and_not_one_still_running() {
    let config = config(OutOfStock::Reject);
    let mut db = Tables::new();
    db.one(&config, restock("SKU-A", "EAST", 5, "r1", t0()))
        .expect("restock");
    db.one(&config, reserve(order(1), 1, &[("SKU-A", 2)], t0()))
        .expect("reserve");
    db.one(&config, reserve(order(2), 1, &[("SKU-A", 1)], minutes(10)))
        .expect("reserve");
    let at = minutes(TTL_MINUTES);
    let first = db.one(&config, sweep(at, 100));
    assert!(
        matches!(first, Ok(Answer::Expired(ref o)) if o == &[order(1)]),
        "{first:?}"
    );
    assert_eq!(db.level("SKU-A", "EAST"), (5, 1, 0));
    let second = db.one(&config, sweep(at, 100));
    assert!(
        matches!(second, Ok(Answer::Expired(ref o)) if o.is_empty()),
        "{second:?}"
    );
    // Two sweeps in one batch (two workers' sweeps queued together) release it once too.
    let both = db.run(&config, &[sweep(minutes(30), 100), sweep(minutes(30), 100)]);
    let listed: Vec<OrderId> = both
        .iter()
        .flat_map(|a| match a {
            Ok(Answer::Expired(orders)) => orders.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(listed, vec![order(2)]);
    assert_eq!(db.level("SKU-A", "EAST"), (5, 0, 0));
    db.assert_rows_add_up();
}

#[test]
fn a_small_sweep_limit_leaves_the_rest_for_the_next_sweep_and_each_order_expires_once() {
    let config = config(OutOfStock::Reject);
    let mut db = Tables::new();
    db.one(&config, restock("SKU-A", "EAST", 50, "r1", t0()))
        .expect("restock");
    for n in 0..7 {
        db.one(
            &config,
            reserve(order(n), 1, &[("SKU-A", 2)], minutes(n as i64)),
        )
        .expect("reserve");
    }
    let mut expired = Vec::new();
    loop {
        match db.one(&config, sweep(minutes(60), 3)) {
            Ok(Answer::Expired(orders)) if orders.is_empty() => break,
            Ok(Answer::Expired(orders)) => {
                assert!(orders.len() <= 3);
                expired.extend(orders);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        expired,
        (0..7).map(order).collect::<Vec<_>>(),
        "oldest first, once each"
    );
    assert_eq!(db.level("SKU-A", "EAST"), (50, 0, 0));
}

#[test]
fn allocating_after_expiry_takes_the_same_lines_again_or_reports_the_shortage() {
    let config = config(OutOfStock::Reject);
    let mut db = Tables::new();
    db.one(&config, restock("SKU-A", "EAST", 3, "r1", t0()))
        .expect("restock");
    db.one(&config, reserve(order(1), 1, &[("SKU-A", 2)], t0()))
        .expect("reserve");
    db.one(&config, sweep(minutes(20), 100)).expect("sweep");
    let again = db.one(&config, allocate(order(1), minutes(21)));
    assert_eq!(reserved_units(&again), Some(2));
    assert_eq!(db.level("SKU-A", "EAST"), (3, 0, 2));

    db.one(&config, reserve(order(2), 1, &[("SKU-A", 1)], minutes(21)))
        .expect("reserve");
    db.one(&config, sweep(minutes(40), 100)).expect("sweep");
    db.one(&config, reserve(order(3), 1, &[("SKU-A", 1)], minutes(41)))
        .expect("the freed unit is sold to another order");
    match db.one(&config, allocate(order(2), minutes(42))) {
        Ok(Answer::Allocated(AllocateOutcome::Insufficient { shortages })) => {
            assert_eq!(shortages[0].available, 0)
        }
        other => panic!("expected a shortage, got {other:?}"),
    }
    assert_eq!(db.level("SKU-A", "EAST"), (3, 1, 2));
    db.assert_rows_add_up();
}

#[test]
fn allocating_an_order_that_never_reserved_is_refused() {
    let config = config(OutOfStock::Reject);
    let mut db = Tables::new();
    let answer = db.one(&config, allocate(order(9), t0()));
    assert!(
        matches!(answer, Err(InventoryError::NothingReserved(_))),
        "{answer:?}"
    );
    assert!(db.reservations.is_empty() && db.stock.is_empty());
}

#[test]
fn a_partial_release_gives_back_its_units_once_per_id_and_a_repeat_answers_the_same_count() {
    let config = config(OutOfStock::Reject);
    let mut db = Tables::new();
    db.one(&config, restock("SKU-A", "EAST", 5, "r1", t0()))
        .expect("restock");
    db.one(&config, reserve(order(1), 1, &[("SKU-A", 4)], t0()))
        .expect("reserve");
    db.one(&config, allocate(order(1), t0())).expect("allocate");
    let cancel = release_units(order(1), "o1:cancel:1", 1, "SKU-A", 3, minutes(1));
    assert_eq!(released(&db.one(&config, cancel.clone())), 3);
    assert_eq!(
        released(&db.one(&config, cancel.clone())),
        3,
        "a repeat answers alike"
    );
    assert_eq!(
        db.level("SKU-A", "EAST"),
        (5, 0, 1),
        "...and gives back nothing more"
    );
    // Asking for more than is held gives back what is held, once.
    let rest = release_units(order(1), "o1:cancel:2", 1, "SKU-A", 9, minutes(2));
    assert_eq!(released(&db.run(&config, &[rest.clone(), rest])[1]), 1);
    assert_eq!(db.level("SKU-A", "EAST"), (5, 0, 0));
    db.assert_rows_add_up();
}

#[test]
fn a_transfer_moves_allocated_units_once_and_is_refused_where_stock_is_short() {
    let config = config(OutOfStock::Reject);
    let mut db = Tables::new();
    db.one(&config, restock("SKU-A", "EAST", 3, "r1", t0()))
        .expect("restock");
    db.one(&config, restock("SKU-A", "WEST", 1, "r2", t0()))
        .expect("restock");
    db.one(&config, reserve(order(1), 1, &[("SKU-A", 2)], t0()))
        .expect("reserve");
    db.one(&config, allocate(order(1), t0())).expect("allocate");
    let short = db.one(
        &config,
        transfer(order(1), "t1", (1, "SKU-A"), "EAST", "WEST", 2, t0()),
    );
    assert!(
        matches!(short, Err(InventoryError::NotEnoughAt { .. })),
        "{short:?}"
    );
    let moved = transfer(order(1), "t2", (1, "SKU-A"), "EAST", "WEST", 1, minutes(1));
    assert_eq!(released(&db.one(&config, moved.clone())), 1);
    assert_eq!(
        released(&db.one(&config, moved)),
        1,
        "a repeat answers alike"
    );
    assert_eq!(db.level("SKU-A", "EAST"), (3, 0, 1));
    assert_eq!(db.level("SKU-A", "WEST"), (1, 0, 1));
    assert_eq!(db.held(order(1).as_uuid(), ALLOCATED), 2);
    db.assert_rows_add_up();
}

#[test]
fn stock_never_goes_below_what_is_held_and_a_movement_id_is_applied_once() {
    let config = config(OutOfStock::Reject);
    let mut db = Tables::new();
    db.one(&config, restock("SKU-A", "EAST", 5, "r1", t0()))
        .expect("restock");
    db.one(&config, reserve(order(1), 1, &[("SKU-A", 4)], t0()))
        .expect("reserve");
    let below = db.one(&config, restock("SKU-A", "EAST", -2, "count-1", t0()));
    assert!(
        matches!(
            below,
            Err(InventoryError::BelowCommitted { committed: 4, .. })
        ),
        "{below:?}"
    );
    match db.one(&config, restock("SKU-A", "EAST", 5, "r1", t0())) {
        Ok(Answer::Moved(MovementOutcome {
            replayed: true,
            level,
        })) => {
            assert_eq!(level.on_hand, 5)
        }
        other => panic!("a repeated restock is a replay, got {other:?}"),
    }
    let reused = db.one(&config, restock("SKU-A", "EAST", 7, "r1", t0()));
    assert!(
        matches!(reused, Err(InventoryError::KeyReused(_))),
        "{reused:?}"
    );
    let unknown = db.one(&config, restock("SKU-A", "NOWHERE", 1, "r9", t0()));
    assert!(
        matches!(unknown, Err(InventoryError::UnknownLocation(_))),
        "{unknown:?}"
    );
    assert_eq!(db.level("SKU-A", "EAST"), (5, 4, 0));
    db.assert_rows_add_up();
}

// ---------------------------------------------------------------- random interleavings

/// One step of a random history, over 3 SKUs, 3 locations and a handful of orders whose lines
/// are fixed up front (an order asks for the same lines every time, as checkout does).
#[derive(Debug, Clone)]
enum Step {
    Restock {
        sku: usize,
        location: usize,
        units: i64,
        key: u8,
    },
    Adjust {
        sku: usize,
        location: usize,
        delta: i64,
        key: u8,
    },
    Reserve {
        order: usize,
    },
    Allocate {
        order: usize,
    },
    Release {
        order: usize,
    },
    Cancel {
        order: usize,
        line: usize,
        units: u32,
        key: u8,
    },
    Transfer {
        order: usize,
        line: usize,
        from: usize,
        to: usize,
        units: u32,
        key: u8,
    },
    Sweep,
    /// The clock moves on by this many minutes (a reservation lives 15).
    Wait(i64),
}

const ORDERS: usize = 6;

fn step() -> impl Strategy<Value = Step> {
    let order = 0..ORDERS;
    prop_oneof![
        (0..3_usize, 0..3_usize, 1..8_i64, 0..6_u8).prop_map(|(sku, location, units, key)| {
            Step::Restock {
                sku,
                location,
                units,
                key,
            }
        }),
        (0..3_usize, 0..3_usize, -4..=4_i64, 0..6_u8)
            .prop_filter("a zero adjustment is refused before the writer", |s| s.2
                != 0)
            .prop_map(|(sku, location, delta, key)| Step::Adjust {
                sku,
                location,
                delta,
                key
            }),
        order.clone().prop_map(|order| Step::Reserve { order }),
        order.clone().prop_map(|order| Step::Reserve { order }),
        order.clone().prop_map(|order| Step::Allocate { order }),
        order.clone().prop_map(|order| Step::Release { order }),
        (order.clone(), 0..3_usize, 1..5_u32, 0..3_u8).prop_map(|(order, line, units, key)| {
            Step::Cancel {
                order,
                line,
                units,
                key,
            }
        }),
        (order, 0..3_usize, 0..3_usize, 0..3_usize, 1..4_u32, 0..3_u8).prop_map(
            |(order, line, from, to, units, key)| Step::Transfer {
                order,
                line,
                from,
                to,
                units,
                key
            }
        ),
        Just(Step::Sweep),
        (1..20_i64).prop_map(Step::Wait),
    ]
}

/// Each order's lines: (SKU index, units), 1–3 lines.
fn catalogue() -> impl Strategy<Value = Vec<Vec<(usize, i64)>>> {
    proptest::collection::vec(
        proptest::collection::vec((0..3_usize, 1..5_i64), 1..=3),
        ORDERS,
    )
}

/// Turns the steps into commands; `Wait` only moves the clock, and starts a new instant.
/// Returns the commands grouped by instant.
fn commands(steps: &[Step], orders: &[Vec<(usize, i64)>]) -> Vec<Vec<Command>> {
    let mut now = t0();
    let mut instants = vec![Vec::new()];
    for step in steps {
        let command = match step.clone() {
            Step::Wait(m) => {
                now += chrono::Duration::minutes(m);
                instants.push(Vec::new());
                continue;
            }
            Step::Restock {
                sku,
                location,
                units,
                key,
            } => restock(
                SKUS[sku],
                LOCATIONS[location].0,
                units,
                &format!("m{key}"),
                now,
            ),
            Step::Adjust {
                sku,
                location,
                delta,
                key,
            } => restock(
                SKUS[sku],
                LOCATIONS[location].0,
                delta,
                &format!("m{key}"),
                now,
            ),
            Step::Reserve { order: n } => {
                let lines: Vec<(&str, i64)> = orders[n]
                    .iter()
                    .map(|(s, units)| (SKUS[*s], *units))
                    .collect();
                // Orders ship to different zones, so different locations are nearest.
                reserve(order(n as u128), (n as i32 * 2) % 10, &lines, now)
            }
            Step::Allocate { order: n } => allocate(order(n as u128), now),
            Step::Release { order: n } => release(order(n as u128), now),
            Step::Cancel {
                order: n,
                line,
                units,
                key,
            } => {
                let line = line % orders[n].len();
                let id = format!("{n}:cancel:{key}");
                release_units(
                    order(n as u128),
                    &id,
                    line as u32 + 1,
                    SKUS[orders[n][line].0],
                    units,
                    now,
                )
            }
            Step::Transfer {
                order: n,
                line,
                from,
                to,
                units,
                key,
            } => {
                let line = line % orders[n].len();
                let id = format!("{n}:transfer:{key}");
                transfer(
                    order(n as u128),
                    &id,
                    (line as u32 + 1, SKUS[orders[n][line].0]),
                    LOCATIONS[from].0,
                    LOCATIONS[to].0,
                    units,
                    now,
                )
            }
            Step::Sweep => sweep(now, 1_000),
        };
        instants.last_mut().expect("an instant").push(command);
    }
    instants
}

fn ledger_of(db: &Tables) -> (i64, BTreeMap<Key, (i64, i64, i64)>) {
    let levels = db
        .stock
        .iter()
        .map(|(k, r)| (k.clone(), (r.on_hand, r.reserved, r.allocated)))
        .collect();
    (db.committed(), levels)
}

/// Checks what one command did to the tables, given the tables before it.
fn check_step(
    before: &Tables,
    after: &Tables,
    command: &Command,
    answer: &Result<Answer, InventoryError>,
) {
    let committed = after.committed() - before.committed();
    match command {
        Command::Reserve(request) => {
            let order = request.order_id.as_uuid();
            if before.has_active_rows(order) {
                assert_eq!(committed, 0, "a repeated reserve takes nothing: {answer:?}");
            } else {
                assert_eq!(committed, reserved_units(answer).unwrap_or(0), "{answer:?}");
                assert_eq!(after.held(order, RESERVED), committed);
            }
        }
        Command::Allocate { order_id, .. } => {
            let order = order_id.as_uuid();
            if before.has_active_rows(order) {
                assert_eq!(committed, 0, "allocation converts, it takes nothing more");
                assert_eq!(after.held(order, RESERVED), 0);
                assert_eq!(
                    after.held(order, ALLOCATED),
                    before.held(order, RESERVED) + before.held(order, ALLOCATED)
                );
            } else {
                assert_eq!(committed, reserved_units(answer).unwrap_or(0), "{answer:?}");
            }
        }
        Command::Release { order_id, .. } => {
            let order = order_id.as_uuid();
            let held = before.held(order, RESERVED) + before.held(order, ALLOCATED);
            assert_eq!(
                i64::from(released(answer)),
                held,
                "a release gives back what was held"
            );
            assert_eq!(committed, -held);
            assert!(!after.has_active_rows(order));
        }
        Command::ReleaseUnits(r) => {
            let units = i64::from(released(answer));
            match before.movements.get(&r.release_id) {
                Some(marker) => {
                    assert_eq!(
                        units,
                        i64::from(released_by(marker)),
                        "a repeat answers alike"
                    );
                    assert_eq!(committed, 0, "a repeat gives back nothing");
                }
                None => {
                    let asked: i64 = r.lines.iter().map(|l| i64::from(l.quantity)).sum();
                    assert!(units <= asked, "gave back {units}, asked {asked}");
                    assert_eq!(committed, -units);
                }
            }
        }
        Command::Transfer(t) => {
            assert_eq!(
                committed, 0,
                "a transfer moves units, it neither takes nor frees"
            );
            let order = t.order_id.as_uuid();
            assert_eq!(
                after.held(order, RESERVED) + after.held(order, ALLOCATED),
                before.held(order, RESERVED) + before.held(order, ALLOCATED)
            );
            if let (Some(marker), Ok(Answer::Released(units))) =
                (before.movements.get(&t.transfer_id), answer)
            {
                assert_eq!(*units, released_by(marker), "a repeat answers alike");
                assert_eq!(
                    ledger_of(before),
                    ledger_of(after),
                    "a repeat moves nothing"
                );
            }
        }
        Command::ReleaseExpired { now, .. } => {
            let Ok(Answer::Expired(orders)) = answer else {
                panic!("a sweep answers the orders it expired: {answer:?}");
            };
            let expired: i64 = before
                .reservations
                .values()
                .filter(|r| r.state == RESERVED && r.expires_at <= *now)
                .map(|r| r.quantity)
                .sum();
            assert_eq!(
                committed, -expired,
                "the sweep frees exactly the expired holds"
            );
            for row in after.reservations.values() {
                assert!(
                    !(row.state == RESERVED && row.expires_at <= *now),
                    "an expired hold survived the sweep: {row:?}"
                );
            }
            for order in orders {
                let order = order.as_uuid();
                assert!(before
                    .reservations
                    .values()
                    .any(|r| r.order_id == order && r.state == RESERVED && r.expires_at <= *now));
            }
        }
        Command::Move(m) => {
            assert_eq!(committed, 0);
            let (on_hand_before, ..) = before.level(m.sku.as_str(), m.location_id.as_str());
            let (on_hand_after, ..) = after.level(m.sku.as_str(), m.location_id.as_str());
            let applied = matches!(
                answer,
                Ok(Answer::Moved(MovementOutcome {
                    replayed: false,
                    ..
                }))
            );
            let expected = if applied { m.delta } else { 0 };
            assert_eq!(on_hand_after - on_hand_before, expected, "{answer:?}");
        }
    }
}

/// Splits each instant's commands into batches at the given cut points.
fn batches(instants: &[Vec<Command>], cuts: &[bool]) -> Vec<Vec<Command>> {
    let mut cuts = cuts.iter().cycle();
    let mut out = Vec::new();
    for instant in instants {
        let mut batch = Vec::new();
        for command in instant {
            batch.push(command.clone());
            if *cuts.next().unwrap_or(&false) {
                out.push(std::mem::take(&mut batch));
            }
        }
        if !batch.is_empty() {
            out.push(batch);
        }
    }
    out
}

fn answers_text(answers: &[Result<Answer, InventoryError>]) -> Vec<String> {
    answers.iter().map(|a| format!("{a:?}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// One request at a time: stock is never oversold, every row's counts are the sums of its
    /// holds and movements, and each request changes the held units by exactly what it
    /// answered (a reserve takes what it lists once, a release, a partial release or an expiry
    /// gives back what was held once, a repeat of an id gives back nothing).
    #[test]
    fn no_interleaving_oversells_loses_or_doubles_a_unit(
        orders in catalogue(),
        steps in proptest::collection::vec(step(), 1..60),
        backorder in any::<bool>(),
    ) {
        let config = config(if backorder { OutOfStock::Backorder } else { OutOfStock::Reject });
        let mut db = Tables::new();
        for command in commands(&steps, &orders).into_iter().flatten() {
            let before = db.clone();
            let answer = db.one(&config, command.clone());
            check_step(&before, &db, &command, &answer);
            db.assert_rows_add_up();
        }
    }

    /// The writer's batching is invisible: the same requests decided in batches (split
    /// anywhere within an instant, as the writer's linger groups them) give the same answers
    /// and leave the same rows as one at a time.
    #[test]
    fn a_batch_decides_as_its_requests_would_one_at_a_time(
        orders in catalogue(),
        steps in proptest::collection::vec(step(), 1..60),
        cuts in proptest::collection::vec(any::<bool>(), 1..16),
        backorder in any::<bool>(),
    ) {
        let config = config(if backorder { OutOfStock::Backorder } else { OutOfStock::Reject });
        let instants = commands(&steps, &orders);
        let mut alone = Tables::new();
        let mut one_at_a_time = Vec::new();
        for command in instants.iter().flatten() {
            one_at_a_time.push(alone.one(&config, command.clone()));
        }
        let mut batched = Tables::new();
        let mut in_batches = Vec::new();
        for batch in batches(&instants, &cuts) {
            in_batches.extend(batched.run(&config, &batch));
        }
        prop_assert_eq!(answers_text(&one_at_a_time), answers_text(&in_batches));
        prop_assert_eq!(alone, batched);
    }
}
