//! The inventory bounded context against a real, SERIALIZABLE Postgres: the flash sale, the
//! location rules, expiry, idempotency of every operation, and the HTTP endpoints.

mod support;

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use support::{post_with, TestDb, FINANCE_KEY, KEY};
use waybill_schemas::events::ReleaseReason;
use waybill_schemas::{OrderId, Quantity, Sku};
use waybill_write_side::command_api::{self, ApiKeys, CommandApiConfig};
use waybill_write_side::inventory::{
    AllocateOutcome, AllocationTransfer, Country, Inventory, InventoryConfig, InventoryError,
    Location, LocationId, LocationKind, OutOfStock, PartialRelease, RequestedLine, ReserveOutcome,
    ReserveRequest, ShipTo, UnitsAt,
};

const ADMIN_KEY: &str = "test-admin-key";
const AGENT_KEY: &str = "test-agent-key";

fn config(out_of_stock: OutOfStock) -> InventoryConfig {
    InventoryConfig {
        out_of_stock,
        ..InventoryConfig::default()
    }
}

async fn location(inventory: &Inventory, id: &str, zone: i32) {
    inventory
        .upsert_location(&Location {
            location_id: LocationId::parse(id).expect("id"),
            kind: LocationKind::Warehouse,
            name: id.to_owned(),
            country: Country::parse("US").expect("country"),
            zone,
            active: true,
        })
        .await
        .expect("location");
}

async fn restock(inventory: &Inventory, sku: &str, location: &str, units: u32) {
    inventory
        .restock(
            sku_of(sku),
            LocationId::parse(location).expect("id"),
            units,
            &format!("seed:{sku}:{location}"),
            Utc::now(),
        )
        .await
        .expect("restock");
}

fn sku_of(sku: &str) -> Sku {
    Sku::parse(sku).expect("sku")
}

fn request(order_id: OrderId, postal_code: &str, lines: &[(&str, i64)]) -> ReserveRequest {
    ReserveRequest {
        order_id,
        ship_to: ShipTo::new("US", postal_code).expect("ship-to"),
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, (sku, quantity))| RequestedLine {
                line_no: i as u32 + 1,
                sku: sku_of(sku),
                quantity: Quantity::parse(*quantity).expect("quantity"),
            })
            .collect(),
        now: Utc::now(),
    }
}

/// (on_hand, reserved, allocated) of `sku` at `location`.
async fn level(db: &TestDb, sku: &str, location: &str) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT on_hand, reserved, allocated FROM inventory_stock \
         WHERE sku = $1 AND location_id = $2",
    )
    .bind(sku)
    .bind(location)
    .fetch_one(&db.pool)
    .await
    .expect("stock row")
}

/// Held units per the reservation rows equal the stock table's reserved and allocated columns.
async fn assert_rows_match_stock(db: &TestDb) {
    let mismatches: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM inventory_stock s LEFT JOIN ( \
             SELECT sku, location_id, \
                    sum(quantity) FILTER (WHERE state = 'reserved') AS reserved, \
                    sum(quantity) FILTER (WHERE state = 'allocated') AS allocated \
             FROM inventory_reservations GROUP BY sku, location_id) r \
           ON r.sku = s.sku AND r.location_id = s.location_id \
         WHERE s.reserved <> COALESCE(r.reserved, 0) OR s.allocated <> COALESCE(r.allocated, 0)",
    )
    .fetch_one(&db.pool)
    .await
    .expect("compare");
    assert_eq!(mismatches, 0, "reservation rows and stock columns disagree");
}

async fn flash_sale(policy: OutOfStock) -> (usize, usize, u32, TestDb) {
    let db = TestDb::create("inventory").await;
    let inventory = Inventory::spawn(db.pool.clone(), config(policy));
    location(&inventory, "HOT", 5).await;
    location(&inventory, "OTHER", 1).await;
    restock(&inventory, "FLASH-1", "HOT", 100).await;
    restock(&inventory, "CALM-1", "OTHER", 50).await;

    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let inventory = inventory.clone();
            tokio::spawn(async move {
                inventory
                    .reserve(request(OrderId::new_v7(), "50000", &[("FLASH-1", 1)]))
                    .await
            })
        })
        .collect();
    let (mut reserved, mut insufficient, mut backordered) = (0, 0, 0);
    for task in tasks {
        match task.await.expect("task").expect("reserve") {
            ReserveOutcome::Reserved {
                lines,
                backordered: back,
                ..
            } => {
                reserved += lines.iter().map(|l| l.quantity.get()).sum::<u32>() as usize;
                backordered += back.iter().map(|l| l.quantity.get()).sum::<u32>();
            }
            ReserveOutcome::Insufficient { .. } => insufficient += 1,
        }
    }
    assert_eq!(level(&db, "FLASH-1", "HOT").await, (100, 100, 0));
    assert_eq!(level(&db, "CALM-1", "OTHER").await, (50, 0, 0));
    assert_rows_match_stock(&db).await;
    (reserved, insufficient, backordered, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_sale_of_1000_orders_on_100_units_reserves_exactly_100_and_rejects_900() {
    let (reserved, insufficient, backordered, db) = flash_sale(OutOfStock::Reject).await;
    assert_eq!((reserved, insufficient, backordered), (100, 900, 0));
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_sale_under_backorder_reserves_100_and_back_orders_900() {
    let (reserved, insufficient, backordered, db) = flash_sale(OutOfStock::Backorder).await;
    assert_eq!((reserved, insufficient, backordered), (100, 0, 900));
    db.drop().await;
}

/// Two inventory services, each with its own connection pool and its own batching writer (what
/// two `serve checkout` processes run), reserve one hot SKU at once: together they sell exactly
/// the stock, and the rows agree with the stock columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_for_one_sku_sell_exactly_the_stock() {
    let db = TestDb::create("inventory").await;
    let second_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(waybill_write_side::testing::server_options().database(&db.name))
        .await
        .expect("second pool");
    // Small batches, so the two writers' transactions interleave on the stock row many times
    // (with whole batches the first commit could sell everything before the other writes).
    let small_batches = || InventoryConfig {
        batch_max: 8,
        ..config(OutOfStock::Reject)
    };
    let writers = [
        Inventory::spawn(db.pool.clone(), small_batches()),
        Inventory::spawn(second_pool.clone(), small_batches()),
    ];
    location(&writers[0], "HOT", 5).await;
    restock(&writers[0], "FLASH-2", "HOT", 150).await;
    // One sale through each writer first: both are connected and have written the row before
    // the race (otherwise the first to connect can sell everything on its own).
    for writer in &writers {
        let first = writer
            .reserve(request(OrderId::new_v7(), "50000", &[("FLASH-2", 1)]))
            .await
            .expect("first sale");
        assert!(
            matches!(first, ReserveOutcome::Reserved { .. }),
            "{first:?}"
        );
    }

    let tasks: Vec<_> = (0..1_000)
        .map(|n| {
            let inventory = writers[n % 2].clone();
            tokio::spawn(async move {
                inventory
                    .reserve(request(OrderId::new_v7(), "50000", &[("FLASH-2", 1)]))
                    .await
            })
        })
        .collect();
    let (mut reserved, mut insufficient) = (0, 0);
    for task in tasks {
        match task.await.expect("task").expect("reserve") {
            ReserveOutcome::Reserved { .. } => reserved += 1,
            ReserveOutcome::Insufficient { .. } => insufficient += 1,
        }
    }
    assert_eq!((reserved, insufficient), (148, 852));
    assert_eq!(level(&db, "FLASH-2", "HOT").await, (150, 150, 0));
    assert_rows_match_stock(&db).await;
    second_pool.close().await;
    db.drop().await;
}

fn taken(outcome: &ReserveOutcome) -> Vec<(u32, String, u32)> {
    match outcome {
        ReserveOutcome::Reserved { lines, .. } => lines
            .iter()
            .map(|l| (l.line_no, l.location_id.clone(), l.quantity.get()))
            .collect(),
        ReserveOutcome::Insufficient { .. } => Vec::new(),
    }
}

#[tokio::test]
async fn nearest_location_wins_then_lines_split_and_whole_orders_stay_together() {
    let db = TestDb::create("inventory").await;
    let inventory = Inventory::spawn(db.pool.clone(), config(OutOfStock::Reject));
    location(&inventory, "EAST", 1).await;
    location(&inventory, "WEST", 9).await;
    restock(&inventory, "A", "EAST", 3).await;
    restock(&inventory, "A", "WEST", 3).await;
    restock(&inventory, "B", "WEST", 1).await;

    let near_west = inventory
        .reserve(request(OrderId::new_v7(), "94103", &[("A", 1)]))
        .await
        .expect("reserve");
    assert_eq!(taken(&near_west), vec![(1, "WEST".to_owned(), 1)]);

    let whole = inventory
        .reserve(request(OrderId::new_v7(), "10001", &[("A", 1), ("B", 1)]))
        .await
        .expect("reserve");
    assert_eq!(
        taken(&whole),
        vec![(1, "WEST".to_owned(), 1), (2, "WEST".to_owned(), 1)],
        "WEST holds the whole order although EAST is nearer for A"
    );

    let split = inventory
        .reserve(request(OrderId::new_v7(), "10001", &[("A", 4)]))
        .await
        .expect("reserve");
    assert_eq!(
        taken(&split),
        vec![(1, "EAST".to_owned(), 3), (1, "WEST".to_owned(), 1)]
    );
    assert_eq!(level(&db, "A", "EAST").await, (3, 3, 0));
    assert_eq!(level(&db, "A", "WEST").await, (3, 3, 0));
    assert_rows_match_stock(&db).await;
    db.drop().await;
}

#[tokio::test]
async fn reserve_allocate_and_release_are_idempotent_by_order() {
    let db = TestDb::create("inventory").await;
    let inventory = Inventory::spawn(db.pool.clone(), config(OutOfStock::Reject));
    location(&inventory, "W1", 5).await;
    restock(&inventory, "A", "W1", 10).await;
    let order = OrderId::new_v7();
    let first = inventory
        .reserve(request(order, "50000", &[("A", 2)]))
        .await
        .expect("reserve");
    let again = inventory
        .reserve(request(order, "50000", &[("A", 2)]))
        .await
        .expect("reserve again");
    assert_eq!(first, again);
    assert_eq!(level(&db, "A", "W1").await, (10, 2, 0));

    let allocated = inventory
        .allocate(order, Utc::now())
        .await
        .expect("allocate");
    let reallocated = inventory.allocate(order, Utc::now()).await.expect("again");
    assert_eq!(allocated, reallocated);
    assert!(matches!(allocated, AllocateOutcome::Allocated { ref lines } if lines.len() == 1));
    assert_eq!(level(&db, "A", "W1").await, (10, 0, 2));

    let released = inventory
        .release(order, ReleaseReason::OrderCancelled, Utc::now())
        .await
        .expect("release");
    let twice = inventory
        .release(order, ReleaseReason::OrderCancelled, Utc::now())
        .await
        .expect("release again");
    assert_eq!((released, twice), (2, 0));
    assert_eq!(level(&db, "A", "W1").await, (10, 0, 0));
    assert_rows_match_stock(&db).await;
    db.drop().await;
}

#[tokio::test]
async fn a_partial_release_gives_back_only_those_units_once_per_key() {
    let db = TestDb::create("inventory").await;
    let inventory = Inventory::spawn(db.pool.clone(), config(OutOfStock::Reject));
    location(&inventory, "W1", 5).await;
    restock(&inventory, "A", "W1", 10).await;
    restock(&inventory, "B", "W1", 10).await;
    let order = OrderId::new_v7();
    inventory
        .reserve(request(order, "50000", &[("A", 3), ("B", 1)]))
        .await
        .expect("reserve");
    inventory
        .allocate(order, Utc::now())
        .await
        .expect("allocate");
    let release = |key: &str, units: u32| PartialRelease {
        order_id: order,
        release_id: key.to_owned(),
        lines: vec![UnitsAt {
            line_no: 1,
            sku: sku_of("A"),
            quantity: units,
            location_id: Some("W1".into()),
        }],
        now: Utc::now(),
    };
    let first = inventory
        .release_units(release("c1", 2))
        .await
        .expect("release");
    let again = inventory
        .release_units(release("c1", 2))
        .await
        .expect("replay");
    assert_eq!(
        (first, again),
        (2, 2),
        "the replay answers the first release"
    );
    assert_eq!(level(&db, "A", "W1").await, (10, 0, 1), "one A still held");
    assert_eq!(level(&db, "B", "W1").await, (10, 0, 1), "B untouched");
    // Another cancellation of more than is held gives back what there is.
    let rest = inventory
        .release_units(release("c2", 5))
        .await
        .expect("release the rest");
    assert_eq!(rest, 1);
    assert_eq!(level(&db, "A", "W1").await, (10, 0, 0));
    // The whole-order release then finds only B.
    let whole = inventory
        .release(order, ReleaseReason::OrderCancelled, Utc::now())
        .await
        .expect("release");
    assert_eq!(whole, 1);
    assert_rows_match_stock(&db).await;
    db.drop().await;
}

#[tokio::test]
async fn an_allocation_transfer_moves_units_once_and_is_refused_where_stock_is_short() {
    let db = TestDb::create("inventory").await;
    let inventory = Inventory::spawn(db.pool.clone(), config(OutOfStock::Reject));
    location(&inventory, "W1", 5).await;
    location(&inventory, "W2", 1).await;
    restock(&inventory, "A", "W1", 10).await;
    restock(&inventory, "A", "W2", 1).await;
    let order = OrderId::new_v7();
    inventory
        .reserve(request(order, "50000", &[("A", 2)]))
        .await
        .expect("reserve");
    inventory
        .allocate(order, Utc::now())
        .await
        .expect("allocate");
    assert_eq!(level(&db, "A", "W1").await, (10, 0, 2));
    let transfer = |key: &str, units: u32| AllocationTransfer {
        order_id: order,
        transfer_id: key.to_owned(),
        line_no: 1,
        sku: sku_of("A"),
        from: "W1".into(),
        to: "W2".into(),
        quantity: units,
        now: Utc::now(),
    };
    // W2 has one unit: two are refused, one moves (once, however often it is asked).
    let refused = inventory.transfer(transfer("t0", 2)).await;
    assert!(
        matches!(
            refused,
            Err(InventoryError::NotEnoughAt { available: 1, .. })
        ),
        "{refused:?}"
    );
    let moved = inventory
        .transfer(transfer("t1", 1))
        .await
        .expect("transfer");
    let again = inventory.transfer(transfer("t1", 1)).await.expect("replay");
    assert_eq!((moved, again), (1, 1));
    assert_eq!(level(&db, "A", "W1").await, (10, 0, 1));
    assert_eq!(level(&db, "A", "W2").await, (1, 0, 1));
    // Releasing the order gives back both holds.
    let released = inventory
        .release(order, ReleaseReason::OrderCancelled, Utc::now())
        .await
        .expect("release");
    assert_eq!(released, 2);
    assert_rows_match_stock(&db).await;
    db.drop().await;
}

#[tokio::test]
async fn restock_with_the_same_key_is_applied_once_and_another_movement_under_it_is_refused() {
    let db = TestDb::create("inventory").await;
    let inventory = Inventory::spawn(db.pool.clone(), config(OutOfStock::Reject));
    location(&inventory, "W1", 5).await;
    let restock = || {
        inventory.restock(
            sku_of("A"),
            LocationId::parse("W1").expect("id"),
            7,
            "delivery-1",
            Utc::now(),
        )
    };
    let first = restock().await.expect("restock");
    let again = restock().await.expect("replay");
    assert!(!first.replayed && again.replayed);
    assert_eq!(again.level.on_hand, 7);
    assert_eq!(level(&db, "A", "W1").await, (7, 0, 0));
    let other = inventory
        .restock(
            sku_of("A"),
            LocationId::parse("W1").expect("id"),
            8,
            "delivery-1",
            Utc::now(),
        )
        .await;
    assert!(other.is_err());
    assert_eq!(db.count("inventory_movements").await, 1);
    db.drop().await;
}

#[tokio::test]
async fn an_unpaid_reservation_expires_and_its_stock_returns() {
    let db = TestDb::create("inventory").await;
    let inventory = Inventory::spawn(
        db.pool.clone(),
        InventoryConfig {
            reservation_ttl: Duration::from_secs(1),
            ..InventoryConfig::default()
        },
    );
    location(&inventory, "W1", 5).await;
    restock(&inventory, "A", "W1", 5).await;
    let order = OrderId::new_v7();
    inventory
        .reserve(request(order, "50000", &[("A", 5)]))
        .await
        .expect("reserve");
    assert!(inventory
        .release_expired(Utc::now(), 100)
        .await
        .expect("sweep")
        .is_empty());

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let released = loop {
        let released = inventory
            .release_expired(Utc::now(), 100)
            .await
            .expect("sweep");
        if !released.is_empty() || std::time::Instant::now() > deadline {
            break released;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(released, vec![order]);
    assert_eq!(level(&db, "A", "W1").await, (5, 0, 0));
    assert!(inventory
        .release_expired(Utc::now(), 100)
        .await
        .expect("sweep")
        .is_empty());

    // Confirming after expiry takes the stock again while there is some...
    let allocated = inventory
        .allocate(order, Utc::now())
        .await
        .expect("allocate");
    assert!(
        matches!(allocated, AllocateOutcome::Allocated { ref lines } if lines[0].quantity.get() == 5)
    );
    assert_eq!(level(&db, "A", "W1").await, (5, 0, 5));
    assert_rows_match_stock(&db).await;
    db.drop().await;
}

#[tokio::test]
async fn allocating_after_expiry_reports_insufficient_when_the_stock_was_sold() {
    let db = TestDb::create("inventory").await;
    let inventory = Inventory::spawn(db.pool.clone(), config(OutOfStock::Reject));
    location(&inventory, "W1", 5).await;
    restock(&inventory, "A", "W1", 2).await;
    let late = OrderId::new_v7();
    let mut expired = request(late, "50000", &[("A", 2)]);
    expired.now = Utc::now() - chrono::Duration::hours(1);
    inventory.reserve(expired).await.expect("reserve");
    assert_eq!(
        inventory
            .release_expired(Utc::now(), 10)
            .await
            .expect("sweep"),
        vec![late]
    );
    inventory
        .reserve(request(OrderId::new_v7(), "50000", &[("A", 2)]))
        .await
        .expect("another order takes the units");
    let outcome = inventory
        .allocate(late, Utc::now())
        .await
        .expect("allocate");
    assert!(
        matches!(outcome, AllocateOutcome::Insufficient { ref shortages } if shortages[0].available == 0),
        "{outcome:?}"
    );
    assert_eq!(level(&db, "A", "W1").await, (2, 2, 0));
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reserve_and_release_of_one_order_leave_rows_and_stock_consistent() {
    let db = TestDb::create("inventory").await;
    let inventory = Inventory::spawn(db.pool.clone(), config(OutOfStock::Reject));
    location(&inventory, "W1", 5).await;
    restock(&inventory, "A", "W1", 50).await;
    for _ in 0..20 {
        let order = OrderId::new_v7();
        let (a, b) = tokio::join!(
            inventory.reserve(request(order, "50000", &[("A", 1)])),
            inventory.release(order, ReleaseReason::PaymentDeclined, Utc::now()),
        );
        a.expect("reserve");
        b.expect("release");
    }
    assert_rows_match_stock(&db).await;
    db.drop().await;
}

// ---- HTTP ----

fn app(db: &TestDb) -> axum::Router {
    let mut keys = ApiKeys::parse(&format!(
        "{KEY}:shop-1:service,{FINANCE_KEY}:fin:finance,{ADMIN_KEY}:ops:admin,{AGENT_KEY}:desk:agent"
    ))
    .expect("keys");
    keys.add("other-client-key", "shop-2", command_api::Role::Service);
    let config = CommandApiConfig::new(keys, b"secret".to_vec());
    command_api::router(config, db.pool.clone()).0
}

async fn send(
    app: &axum::Router,
    method: &str,
    path: &str,
    key: Option<&str>,
    api_key: &str,
    body: serde_json::Value,
) -> support::Reply {
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {api_key}"));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = app
        .clone()
        .oneshot(
            request
                .body(axum::body::Body::from(body.to_string()))
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    support::Reply {
        status,
        headers,
        body,
    }
}

fn warehouse() -> serde_json::Value {
    json!({"kind": "warehouse", "name": "Main", "country": "US", "zone": 6})
}

#[tokio::test]
async fn http_locations_restocks_adjustments_and_stock_reads_work_for_admin_and_service_keys() {
    let db = TestDb::create("inventory").await;
    let app = app(&db);
    let put = send(
        &app,
        "PUT",
        "/v1/inventory/locations/CHI",
        Some("l-1"),
        ADMIN_KEY,
        warehouse(),
    )
    .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!(put.json()["location_id"], "CHI");

    let path = "/v1/inventory/stock/TEE-RED-M/CHI/restock";
    let first = send(
        &app,
        "POST",
        path,
        Some("r-1"),
        KEY,
        json!({"quantity": 10}),
    )
    .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.json()["on_hand"], 10);
    let replay = send(
        &app,
        "POST",
        path,
        Some("r-1"),
        KEY,
        json!({"quantity": 10}),
    )
    .await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json()["on_hand"], 10);
    let reused = send(
        &app,
        "POST",
        path,
        Some("r-1"),
        KEY,
        json!({"quantity": 11}),
    )
    .await;
    assert_eq!(reused.status, 422);
    assert_eq!(
        reused.json()["type"],
        "https://waybill.dev/problems/idempotency-key-reused"
    );

    let adjust = "/v1/inventory/stock/TEE-RED-M/CHI/adjust";
    let damaged = send(
        &app,
        "POST",
        adjust,
        Some("a-1"),
        ADMIN_KEY,
        json!({"delta": -3, "reason": "damaged in transit"}),
    )
    .await;
    assert_eq!(damaged.status, 200, "{:?}", damaged.body);
    assert_eq!(damaged.json()["available"], 7);

    let read = send(
        &app,
        "GET",
        "/v1/inventory/stock/TEE-RED-M",
        None,
        KEY,
        json!({}),
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["levels"][0]["on_hand"], 7);
    assert_eq!(level(&db, "TEE-RED-M", "CHI").await, (7, 0, 0));
    db.drop().await;
}

#[tokio::test]
async fn http_refuses_bad_input_naming_the_field_and_other_roles_and_unkeyed_mutations() {
    let db = TestDb::create("inventory").await;
    let app = app(&db);
    send(
        &app,
        "PUT",
        "/v1/inventory/locations/CHI",
        Some("l-1"),
        ADMIN_KEY,
        warehouse(),
    )
    .await;
    let restock = "/v1/inventory/stock/A/CHI/restock";

    for api_key in [AGENT_KEY, FINANCE_KEY] {
        let refused = send(
            &app,
            "POST",
            restock,
            Some("k"),
            api_key,
            json!({"quantity": 1}),
        )
        .await;
        assert_eq!(refused.status, 403, "{api_key}");
        let read = send(
            &app,
            "GET",
            "/v1/inventory/stock/A",
            None,
            api_key,
            json!({}),
        )
        .await;
        assert_eq!(read.status, 403, "{api_key}");
    }
    let unkeyed = post_with(
        &app,
        restock,
        None,
        Some(KEY),
        "application/json",
        r#"{"quantity":1}"#,
    )
    .await;
    assert_eq!(unkeyed.status, 400);
    assert_eq!(
        unkeyed.json()["type"],
        "https://waybill.dev/problems/missing-idempotency-key"
    );

    let cases = [
        (restock.to_owned(), json!({"quantity": -5}), "quantity"),
        (
            "/v1/inventory/stock/A/CHI/adjust".to_owned(),
            json!({"delta": -1, "reason": "count"}),
            "delta",
        ),
        (
            "/v1/inventory/stock/A/CHI/adjust".to_owned(),
            json!({"delta": 2}),
            "reason",
        ),
        (
            "/v1/inventory/locations/X1".to_owned(),
            json!({"kind": "shed", "name": "x", "country": "US", "zone": 1}),
            "kind",
        ),
    ];
    for (i, (path, body, field)) in cases.into_iter().enumerate() {
        let method = if path.contains("/locations/") {
            "PUT"
        } else {
            "POST"
        };
        let reply = send(&app, method, &path, Some(&format!("bad-{i}")), KEY, body).await;
        assert_eq!(reply.status, 422, "{path}: {:?}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(reply.json()["field"], field, "{path}");
    }
    // A location in the path that was never created is an unknown resource: 404, like any.
    let unknown = send(
        &app,
        "POST",
        "/v1/inventory/stock/A/NOWHERE/restock",
        Some("bad-unknown-location"),
        KEY,
        json!({"quantity": 5}),
    )
    .await;
    assert_eq!(unknown.status, 404, "{:?}", unknown.body);
    assert_eq!(
        unknown.json()["type"],
        "https://waybill.dev/problems/not-found"
    );
    assert_eq!(unknown.json()["field"], "location");
    assert_eq!(db.count("inventory_movements").await, 0);
    db.drop().await;
}
