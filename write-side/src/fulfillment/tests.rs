//! The batched appends against a real Postgres: a worker round whose order another writer moved
//! meanwhile, and a batch of webhooks holding the same webhook twice.

use chrono::{DateTime, Utc};
use waybill_schemas::events::{CaptureMode, FulfillmentLine, NodeProgress, OrderConfirmed};
use waybill_schemas::{Actor, OrderEvent, OrderId};

use crate::domain::fulfillment::routing::{
    Candidate, LocationType, RouteRequest, RoutingConfig, TransitHistory,
};
use crate::domain::fulfillment::{Fulfillment, FulfillmentCommand};
use crate::domain::order::fixtures::{card, placed_event};
use crate::event_store::{self, EventMeta, EventStore};
use crate::testing::TestDatabase;

use super::append::{self, OrderRows};
use super::rounds::{store_round, InFlight};
use super::webhook_batcher::{apply_batch, WebhookRequest};
use super::webhooks::{WebhookOutcome, CARRIER, WMS};

fn meta() -> EventMeta {
    EventMeta {
        correlation_id: uuid::Uuid::now_v7(),
        causation_id: None,
        traceparent: None,
        actor: Actor::system("test"),
        channel: None,
    }
}

/// Stores a placed and confirmed order, routed to one warehouse, and returns its fold.
async fn routed_order(db: &TestDatabase, store: &EventStore, now: DateTime<Utc>) -> InFlight {
    let order_id = OrderId::new_v7();
    let events = vec![
        OrderEvent::OrderPlaced(placed_event(order_id, card())),
        OrderEvent::OrderConfirmed(OrderConfirmed {
            order_id,
            capture_mode: CaptureMode::Immediate,
            confirmed_at: now,
        }),
    ];
    let rows = OrderRows {
        order_id,
        envelopes: event_store::stamp(
            &order_id.stream_id(),
            0,
            event_store::new_events(events, now),
            &meta(),
            now,
        ),
        receipts: Vec::new(),
        samples: Vec::new(),
    };
    assert!(append::write_all(&db.pool, &[rows], now)
        .await
        .expect("order stored"));
    let mut flow = load(store, order_id).await;
    let lines: Vec<FulfillmentLine> = flow.state.ordered.values().cloned().collect();
    let candidates = [Candidate {
        node_id: "wh-east".into(),
        location: LocationType::Warehouse,
        distance: 1,
        units: lines
            .iter()
            .map(|l| (l.line_no, l.quantity.get()))
            .collect(),
    }];
    let plan = RoutingConfig::bundled()
        .expect("bundled routing rules")
        .route(&RouteRequest {
            shipping_method: &flow.state.shipping_method,
            pickup_location: None,
            lines: &lines,
            candidates: &candidates,
            history: &TransitHistory::default(),
            now,
        });
    assert!(plan.unroutable.is_empty(), "one warehouse holds everything");
    let route = FulfillmentCommand::Route {
        plan,
        cause: waybill_schemas::events::RouteCause::Confirmation,
        decided: None,
    };
    assert!(matches!(flow.decide(route, now), Ok(true)));
    store_round(&db.pool, store, &mut [&mut flow], now)
        .await
        .expect("route stored");
    flow
}

async fn load(store: &EventStore, order_id: OrderId) -> InFlight {
    let envelopes = store
        .read_stream(&order_id.stream_id(), 1, None)
        .await
        .expect("stream read");
    InFlight::from_stream(
        order_id,
        &envelopes,
        std::sync::Arc::new(
            crate::domain::returns::ReturnsPolicy::bundled().expect("bundled policy"),
        ),
    )
    .expect("stream folds")
}

async fn event_types(store: &EventStore, order_id: OrderId) -> Vec<String> {
    store
        .read_stream(&order_id.stream_id(), 1, None)
        .await
        .expect("stream read")
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

fn first_fulfillment(flow: &InFlight) -> String {
    flow.state.orders[0].id().to_owned()
}

fn submission(flow: &InFlight) -> FulfillmentCommand {
    FulfillmentCommand::RecordSubmission {
        fulfillment_id: first_fulfillment(flow),
        wms_task_id: format!("task-{}", flow.order_id),
    }
}

fn packed(flow: &InFlight) -> FulfillmentCommand {
    FulfillmentCommand::RecordProgress {
        fulfillment_id: first_fulfillment(flow),
        progress: NodeProgress::Packed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_with_a_moved_stream_commits_the_others_and_decides_the_moved_one_again() {
    let db = TestDatabase::create("fulfillment_round").await;
    let store = EventStore::new(db.pool.clone());
    let now = Utc::now();
    let mut calm = routed_order(&db, &store, now).await;
    let mut moved = routed_order(&db, &store, now).await;
    let calm_version = calm.stored_version;
    let moved_version = moved.stored_version;

    // The round decides both orders' submissions...
    assert!(matches!(calm.decide(submission(&calm), now), Ok(true)));
    assert!(matches!(moved.decide(submission(&moved), now), Ok(true)));
    // ...while a node's webhook lands on one of them first.
    let other = load(&store, moved.order_id).await;
    let stored = append::store(
        &db.pool,
        &other.state,
        moved.order_id,
        other
            .state
            .handle(&packed(&other), now)
            .expect("packing is allowed"),
        &meta(),
        None,
        now,
    )
    .await
    .expect("webhook stored");
    assert_eq!(stored, append::Stored::Written);

    store_round(&db.pool, &store, &mut [&mut calm, &mut moved], now)
        .await
        .expect("round stored");

    assert!(calm.unsaved.is_empty() && moved.unsaved.is_empty());
    let calm_types = event_types(&store, calm.order_id).await;
    assert_eq!(calm_types.len() as i64, calm_version + 1);
    assert_eq!(
        calm_types.last().map(String::as_str),
        Some("FulfillmentSubmitted")
    );
    let moved_types = event_types(&store, moved.order_id).await;
    assert_eq!(
        moved_types[usize::try_from(moved_version).expect("small")..],
        ["FulfillmentProgressed", "FulfillmentSubmitted"],
        "the moved order keeps the webhook's event and gets its submission decided again after it"
    );
    assert_eq!(moved.stored_version, moved_version + 2);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_repeated_inside_one_batch_is_applied_once() {
    let db = TestDatabase::create("fulfillment_webhook_batch").await;
    let store = EventStore::new(db.pool.clone());
    let now = Utc::now();
    let mut first = routed_order(&db, &store, now).await;
    let mut second = routed_order(&db, &store, now).await;
    for flow in [&mut first, &mut second] {
        assert!(matches!(flow.decide(submission(flow), now), Ok(true)));
    }
    store_round(&db.pool, &store, &mut [&mut first, &mut second], now)
        .await
        .expect("submissions stored");

    let request = |flow: &InFlight, id: &str| WebhookRequest {
        provider: WMS,
        webhook_id: id.to_owned(),
        order_id: flow.order_id,
        command: packed(flow).into(),
    };
    let packed_first = request(&first, "wms-1");
    let packed_again = request(&first, "wms-1");
    let packed_second = request(&second, "wms-2");
    let unknown_parcel = WebhookRequest {
        provider: CARRIER,
        webhook_id: "scan-1".into(),
        order_id: second.order_id,
        command: FulfillmentCommand::RecordScan {
            shipment_id: "no-such-parcel".into(),
            scan: crate::domain::fulfillment::Scan {
                carrier_event_id: "scan-1".into(),
                status: waybill_schemas::events::CarrierStatus::Delivered,
                carrier_time: now,
                description: "delivered".into(),
                location: None,
                proof: None,
            },
        }
        .into(),
    };
    let returns = crate::domain::returns::ReturnsPolicy::bundled().expect("bundled policy");
    let answers = apply_batch(
        &db.pool,
        &store,
        &returns,
        &[
            &packed_first,
            &packed_again,
            &packed_second,
            &unknown_parcel,
        ],
        now,
    )
    .await;
    let answers: Vec<WebhookOutcome> = answers
        .into_iter()
        .map(|a| a.expect("batch applied"))
        .collect();
    assert_eq!(answers[0], WebhookOutcome::Applied);
    assert_eq!(answers[1], WebhookOutcome::Duplicate);
    assert_eq!(answers[2], WebhookOutcome::Applied);
    assert!(matches!(answers[3], WebhookOutcome::NotYetKnown(_)));

    for flow in [&first, &second] {
        let progressed = event_types(&store, flow.order_id)
            .await
            .into_iter()
            .filter(|t| t == "FulfillmentProgressed")
            .count();
        assert_eq!(progressed, 1, "order {} packed once", flow.order_id);
    }
    assert_eq!(
        db.count("webhook_receipts").await,
        2,
        "one receipt per webhook id; none for the parcel not known yet"
    );
    let state = Fulfillment::from_events(
        &append::decode(
            &store
                .read_stream(&first.order_id.stream_id(), 1, None)
                .await
                .expect("stream read"),
        )
        .expect("decodes"),
    );
    assert!(state.orders[0].packed);

    // Redelivered in a later batch, it is a duplicate too, and nothing is written.
    let again = apply_batch(&db.pool, &store, &returns, &[&packed_first], Utc::now()).await;
    assert_eq!(
        again
            .into_iter()
            .map(|a| a.expect("applied"))
            .collect::<Vec<_>>(),
        [WebhookOutcome::Duplicate]
    );
    assert_eq!(
        event_types(&store, first.order_id).await.len(),
        state.version as usize
    );
    db.drop().await;
}
