//! The fulfillment process manager's worker: claims due `fulfillment_flows` rows, and for each
//! order asks `next_step` (pure) what to do, does it (route, WMS task, carrier label, handoff
//! retry, close), records the outcome through the fulfillment aggregate and asks again, until
//! the flow waits for a node or carrier (parked; their webhooks wake it), waits for the
//! auto-close deadline (parked until then: a durable deadline row), or is done (row deleted).
//! Returns ride the same flow: a return label (key `<return id>:label`), restocking the accepted
//! resellable units (key `<return id>:restock:<line>`) and the refund decision (its
//! `RefundRequested` wakes the checkout flow, which pays it out). Cancelled units are withdrawn
//! from their node and their stock released; an uncollected pickup is cancelled at its deadline.
//! Every external call carries the step's idempotency key, so a crash between the call and the
//! append repeats the call harmlessly.
//!
//! [`take_step`] is the one place that maps a step to its external call and its command. Two
//! ways of storing the outcomes share it ([`CommitMode`]): by rounds (`rounds.rs`: every claimed
//! order's step at once, one transaction per round) or step by step (one transaction per step
//! and per release, kept for comparison in `waybill bench lifecycle`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::OnceCell;
use tracing::Instrument;
use waybill_schemas::events::{ExceptionAction, FulfillmentLine, RouteCause, RoutingShipTo};
use waybill_schemas::{Actor, OrderId};

use crate::domain::fulfillment::decision::RoutingInputs;
use crate::domain::fulfillment::flow::{next_step, FulfillmentPolicy, FulfillmentStep};
use crate::domain::fulfillment::routing::{
    Candidate, LocationType, RoutePlan, RoutingConfig, TransitHistory,
};
use crate::domain::fulfillment::{Fulfillment, FulfillmentCommand, Label};
use crate::domain::returns::{ReturnCommand, ReturnLabel, ReturnsPolicy};
use crate::domain::Order;
use crate::event_store::EventStore;
use crate::idle_backoff::IdleBackoff;
use crate::inventory::{self, zones, Inventory, Location, LocationId, LocationKind, ShipTo};

use super::append::{self, Stored};
use super::flows::{self, Claimed, Release};
use super::logistics::{LabelRequest, LogisticsClient, ReturnLabelRequest, TaskRequest};
use super::FulfillmentError;

/// The work-list stage of a flow held because its payment could not be captured.
pub const PAYMENT_HOLD_STAGE: &str = "payment_hold";

/// How the worker stores what its steps decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// All claimed orders advance in lock-step rounds; one transaction per round.
    #[default]
    Rounds,
    /// Each order alone; one transaction per step and per release.
    PerStep,
}

/// What the worker needs.
#[derive(Clone)]
pub struct FulfillmentServices {
    pub pool: PgPool,
    pub store: EventStore,
    pub logistics: LogisticsClient,
    pub routing: Arc<RoutingConfig>,
    pub policy: FulfillmentPolicy,
    pub returns: Arc<ReturnsPolicy>,
    /// Gives back the stock of cancelled units and restocks returned ones.
    pub inventory: Inventory,
    /// How long a claimed row is leased.
    pub lease: chrono::Duration,
    /// Rows claimed per pass.
    pub batch: i64,
    /// External calls (or, per step, orders) in flight at once within a pass.
    pub concurrency: usize,
    /// How long to sleep after the first empty pass; later ones sleep longer, up to
    /// [`crate::idle_backoff::IDLE_CEILING`].
    pub idle_poll: Duration,
    pub commit: CommitMode,
}

/// Runs passes until `stop` resolves.
pub async fn run_worker(services: FulfillmentServices, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    // A fixed working pace; idle loops slow down.
    let mut pace = IdleBackoff::new(services.idle_poll, services.idle_poll);
    loop {
        let found = match run_pass(&services).await {
            Ok(n) => n,
            Err(error) => {
                tracing::warn!(%error, "fulfillment pass failed; retrying");
                0
            }
        };
        let pause = pace.after_poll(found, std::time::Instant::now());
        if found == 0 {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
        } else if futures::FutureExt::now_or_never(&mut stop).is_some() {
            return;
        }
    }
}

/// One pass: claims due rows and moves each order as far as it goes. Returns rows claimed.
pub async fn run_pass(services: &FulfillmentServices) -> Result<usize, FulfillmentError> {
    let claimed = flows::claim(&services.pool, Utc::now(), services.lease, services.batch).await?;
    let n = claimed.len();
    if n == 0 {
        return Ok(0);
    }
    metrics::counter!("waybill_fulfillment_flows_claimed_total").increment(n as u64);
    match services.commit {
        CommitMode::Rounds => {
            flows::run_claimed(&services.pool, claimed, |claimed| {
                super::rounds::run(services, claimed)
            })
            .await?
        }
        // Each order is released on its own, failure or not.
        CommitMode::PerStep => run_per_step(services, claimed).await,
    }
    Ok(n)
}

/// Retry delay after a failed step: a second per consecutive failure, at most 30.
pub(super) fn backoff(claimed: Claimed) -> chrono::Duration {
    chrono::Duration::seconds(i64::from(claimed.attempts.clamp(1, 30)))
}

async fn run_per_step(services: &FulfillmentServices, claimed: Vec<Claimed>) {
    futures::stream::iter(claimed)
        .for_each_concurrent(services.concurrency.max(1), |row| async move {
            let span = tracing::info_span!("fulfillment.flow", order_id = %row.order_id);
            let release = match advance(services, row.order_id).instrument(span).await {
                Ok(release) => release,
                Err(error) => {
                    tracing::warn!(order_id = %row.order_id, %error, "fulfillment step failed; retrying");
                    Release::Retry {
                        due_at: Utc::now() + backoff(row),
                        error: error.to_string(),
                    }
                }
            };
            if let Err(error) = flows::release(&services.pool, &[(row, release)], Utc::now()).await
            {
                // The lease runs out and the row comes due again by itself.
                tracing::warn!(order_id = %row.order_id, %error, "could not release fulfillment flow");
            }
        })
        .await;
}

/// Moves one order until it waits or is done, one transaction per step.
async fn advance(
    services: &FulfillmentServices,
    order_id: OrderId,
) -> Result<Release, FulfillmentError> {
    for _ in 0..32 {
        let envelopes = services
            .store
            .read_stream(&order_id.stream_id(), 1, None)
            .await?;
        let events = append::decode(&envelopes)?;
        let order = Order::from_events(&events);
        let state = Fulfillment::from_events(&events);
        let now = Utc::now();
        let step = next_step(&state, &services.policy, &services.returns, now);
        let shared = SharedReads::default();
        let command =
            match take_step(services, &shared, order_id, &order, &state, step, now).await? {
                Taken::Release(release) => return Ok(release),
                Taken::Record(command) => command,
            };
        let events = command.decide(&state, &services.returns, now)?;
        if events.is_empty() {
            return Ok(changed_nothing(&command, now));
        }
        let meta = append::meta_of(&envelopes, Actor::system("fulfillment"));
        match append::store(&services.pool, &state, order_id, events, &meta, None, now).await? {
            Stored::Written | Stored::Conflict | Stored::Duplicate => {}
        }
    }
    Ok(Release::Park {
        due_at: Utc::now(),
        stage: "run",
    })
}

/// The release of an order whose step recorded nothing (it is looked at again shortly).
pub(super) fn changed_nothing(command: &Decided, now: DateTime<Utc>) -> Release {
    Release::Retry {
        due_at: now + chrono::Duration::seconds(1),
        error: format!("step {command:?} changed nothing"),
    }
}

/// Reads the steps of one round share, made once when the first step needs them.
#[derive(Default)]
pub(super) struct SharedReads {
    locations: OnceCell<Vec<Location>>,
    history: OnceCell<TransitHistory>,
}

impl SharedReads {
    async fn locations(&self, pool: &PgPool) -> Result<&[Location], FulfillmentError> {
        let locations = self
            .locations
            .get_or_try_init(|| inventory::read_locations(pool))
            .await?;
        Ok(locations)
    }

    async fn history(&self, pool: &PgPool) -> Result<&TransitHistory, FulfillmentError> {
        let history = self
            .history
            .get_or_try_init(|| append::transit_history(pool))
            .await?;
        Ok(history)
    }
}

/// What taking a step led to.
#[derive(Debug)]
pub(super) enum Taken {
    /// Record this outcome through the aggregate.
    Record(Decided),
    /// Leave the order for now.
    Release(Release),
}

/// Takes `step` for one order: the external call it needs (with the step's idempotency key) and
/// the command recording its outcome, or how the flow is released when it waits or is done.
/// The one place a step becomes a command: a new step is one more arm here.
pub(super) async fn take_step(
    services: &FulfillmentServices,
    shared: &SharedReads,
    order_id: OrderId,
    order: &Order,
    state: &Fulfillment,
    step: FulfillmentStep,
    now: DateTime<Utc>,
) -> Result<Taken, FulfillmentError> {
    let key = step.idempotency_key(&order_id.to_string());
    let command = match step {
        FulfillmentStep::Done => return Ok(Taken::Release(Release::Finish)),
        FulfillmentStep::Wait {
            until: Some(due_at),
        } => {
            return Ok(Taken::Release(Release::Park {
                due_at,
                stage: if state.is_routed() {
                    "auto_close"
                } else {
                    "hold"
                },
            }))
        }
        FulfillmentStep::HoldForPayment => {
            // Held for an agent (the capture failure is in the order's events and views);
            // a cancellation wakes the flow, the hourly look is a safety net.
            return Ok(Taken::Release(Release::Park {
                due_at: now + chrono::Duration::hours(1),
                stage: PAYMENT_HOLD_STAGE,
            }));
        }
        FulfillmentStep::Wait { until: None } => {
            // Node and carrier webhooks wake the flow; the hourly look is a safety net.
            return Ok(Taken::Release(Release::Park {
                due_at: now + chrono::Duration::hours(1),
                stage: "node",
            }));
        }
        FulfillmentStep::Route => {
            super::withdraw::release_edited_units(services, order_id, state, now).await?;
            let lines: Vec<FulfillmentLine> = state.to_route();
            let inputs = routing_inputs(services, shared, order, state, lines, None).await?;
            decide_route(services, order_id, &inputs, RouteCause::Confirmation).into()
        }
        FulfillmentStep::Reroute {
            fulfillment_id,
            node_id,
            missing,
        } => {
            let inputs =
                routing_inputs(services, shared, order, state, missing, Some(&node_id)).await?;
            let command = decide_route(
                services,
                order_id,
                &inputs,
                RouteCause::ShortPick {
                    from_fulfillment_id: fulfillment_id.clone(),
                },
            );
            if let FulfillmentCommand::Route { plan, .. } = &command {
                move_allocation(services, order_id, state, &fulfillment_id, &node_id, plan).await?;
            }
            command.into()
        }
        FulfillmentStep::RouteReplacement { return_id, lines } => {
            // Replacement units hold no allocation: route them over nodes with free stock
            // (no node excluded).
            let inputs = routing_inputs(services, shared, order, state, lines, Some("")).await?;
            decide_route(
                services,
                order_id,
                &inputs,
                RouteCause::Exchange { return_id },
            )
            .into()
        }
        FulfillmentStep::Submit { fulfillment_id } => {
            let o = state
                .order(&fulfillment_id)
                .ok_or_else(|| FulfillmentError::Inconsistent(fulfillment_id.clone()))?;
            let request = TaskRequest {
                order_id,
                fulfillment_id: fulfillment_id.clone(),
                node_id: o.routed.node_id.clone(),
                lines: o.effective_lines(),
                pickup: o.is_pickup(),
            };
            let accepted = services
                .logistics
                .submit_task(key.as_deref().unwrap_or_default(), &request)
                .await?;
            FulfillmentCommand::RecordSubmission {
                fulfillment_id,
                wms_task_id: accepted.task_id,
            }
            .into()
        }
        FulfillmentStep::Ship { fulfillment_id } => {
            let o = state
                .order(&fulfillment_id)
                .ok_or_else(|| FulfillmentError::Inconsistent(fulfillment_id.clone()))?;
            let request = LabelRequest {
                order_id,
                shipment_id: format!("{fulfillment_id}-S1"),
                carrier: o.routed.carrier.clone(),
                from_node: o.routed.node_id.clone(),
                zone_distance: o.routed.zone_distance,
                promised_eta: o.routed.eta,
            };
            let label = services
                .logistics
                .create_label(key.as_deref().unwrap_or_default(), &request)
                .await?;
            FulfillmentCommand::CreateShipment {
                fulfillment_id,
                label: Label {
                    tracking_number: label.tracking_number,
                    tracking_url: label.tracking_url,
                    label_url: label.label_url,
                    eta: label.eta,
                },
            }
            .into()
        }
        FulfillmentStep::HandleException {
            shipment_id,
            carrier_event_id,
            action,
        } => {
            let detail = match action {
                ExceptionAction::RetryHandoff => {
                    let tracking = state
                        .shipment(&shipment_id)
                        .map(|s| s.created.tracking_number.clone())
                        .ok_or_else(|| FulfillmentError::Inconsistent(shipment_id.clone()))?;
                    services
                        .logistics
                        .retry_handoff(key.as_deref().unwrap_or_default(), &tracking)
                        .await?;
                    format!("asked the carrier to attempt parcel {tracking} again")
                }
                ExceptionAction::Alert => {
                    tracing::warn!(%order_id, %shipment_id, "carrier exception after all retries: alerting an agent");
                    format!(
                        "handoff failed after {} retries: an agent must step in",
                        services.policy.max_handoff_retries
                    )
                }
            };
            FulfillmentCommand::HandleException {
                shipment_id,
                carrier_event_id,
                action,
                detail,
            }
            .into()
        }
        FulfillmentStep::IssueReturnLabel { return_id } => {
            let r = state
                .returns
                .get(&return_id)
                .ok_or_else(|| FulfillmentError::Inconsistent(return_id.clone()))?;
            let origin = r
                .requested
                .lines
                .first()
                .map(|l| l.origin_node_id.clone())
                .unwrap_or_default();
            let carrier = state
                .handovers()
                .into_iter()
                .find(|h| h.node_id == origin)
                .map(|h| h.carrier)
                .unwrap_or_default();
            let request = ReturnLabelRequest {
                order_id,
                return_id: return_id.clone(),
                carrier,
                to_node: services.returns.restock_location(&origin).to_owned(),
            };
            let label = services
                .logistics
                .create_return_label(key.as_deref().unwrap_or_default(), &request)
                .await?;
            Decided::Return(ReturnCommand::IssueLabel {
                return_id,
                label: ReturnLabel {
                    carrier: label.carrier,
                    tracking_number: label.tracking_number,
                    tracking_url: label.tracking_url,
                    label_url: label.label_url,
                },
            })
        }
        FulfillmentStep::RestockReturn { return_id, lines } => {
            for (location, line) in &lines {
                let location = LocationId::parse(location)?;
                services
                    .inventory
                    .restock(
                        line.sku.clone(),
                        location,
                        line.quantity.get(),
                        &format!("{return_id}:restock:{}", line.line_no),
                        now,
                    )
                    .await?;
            }
            Decided::Return(ReturnCommand::Restock { return_id })
        }
        FulfillmentStep::ResolveReturn { return_id } => {
            Decided::Return(ReturnCommand::Resolve { return_id })
        }
        FulfillmentStep::Close => FulfillmentCommand::Close.into(),
        FulfillmentStep::ExpirePickup { fulfillment_id } => {
            let lines = state
                .order(&fulfillment_id)
                .map(|o| o.effective_lines())
                .unwrap_or_default();
            let value = order
                .state()
                .map(|s| s.cancellation_value(&lines))
                .ok_or_else(|| FulfillmentError::Inconsistent("order not placed".into()))?;
            FulfillmentCommand::CancelUncollected {
                cancellation_id: uuid::Uuid::now_v7(),
                fulfillment_id,
                value,
            }
            .into()
        }
        FulfillmentStep::Withdraw { cancellation_id } => {
            super::withdraw::withdraw(services, order_id, state, cancellation_id, now)
                .await?
                .into()
        }
    };
    Ok(Taken::Record(command))
}

/// A re-route takes its units' allocation along: from the node that came up short to each
/// node of the plan (key `<fulfillment id>:transfer:<units missing>:<node>:<line>`, so a rerun
/// of the same re-route moves nothing twice). A node that sold the units meanwhile refuses, and
/// the step is retried with a fresh plan.
async fn move_allocation(
    services: &FulfillmentServices,
    order_id: OrderId,
    state: &Fulfillment,
    fulfillment_id: &str,
    from: &str,
    plan: &RoutePlan,
) -> Result<(), FulfillmentError> {
    let missing = state
        .order(fulfillment_id)
        .map_or(0, |o| crate::domain::fulfillment::total(&o.missing));
    for route in &plan.routes {
        for line in &route.lines {
            services
                .inventory
                .transfer(inventory::AllocationTransfer {
                    order_id,
                    transfer_id: format!(
                        "{fulfillment_id}:transfer:{missing}:{}:{}",
                        route.node_id, line.line_no
                    ),
                    line_no: line.line_no,
                    sku: line.sku.clone(),
                    from: from.to_owned(),
                    to: route.node_id.clone(),
                    quantity: line.quantity.get(),
                    now: Utc::now(),
                })
                .await?;
        }
    }
    Ok(())
}

/// A step's outcome, to record through the fulfillment or the returns side of the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    Fulfillment(FulfillmentCommand),
    Return(ReturnCommand),
}

impl From<FulfillmentCommand> for Decided {
    fn from(command: FulfillmentCommand) -> Self {
        Self::Fulfillment(command)
    }
}

impl Decided {
    /// The events recording this outcome on `state` (none when it is already recorded).
    pub fn decide(
        &self,
        state: &Fulfillment,
        returns: &ReturnsPolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<waybill_schemas::OrderEvent>, FulfillmentError> {
        Ok(match self {
            Self::Fulfillment(c) => state.handle(c, now)?,
            Self::Return(c) => state.handle_return(c, returns, now)?,
        })
    }
}

/// Plans the route from `inputs` with the live config: the command recording the plan and the
/// decision (`RoutingDecided`, what the routing simulator replays).
fn decide_route(
    services: &FulfillmentServices,
    order_id: OrderId,
    inputs: &RoutingInputs,
    cause: RouteCause,
) -> FulfillmentCommand {
    let plan = inputs.plan(&services.routing);
    let decided = inputs.record(order_id, cause.clone(), &services.routing.version, &plan);
    FulfillmentCommand::Route {
        plan,
        cause,
        decided: Some(Box::new(decided)),
    }
}

/// What routing `lines` reads: the nodes holding the order's allocation (unless `exclude` is
/// set: a node that just came up short, or `""` for replacement units, which hold none), the
/// free stock of the lines' SKUs elsewhere (one read, kept whole so a replay with another
/// config finds the stock this one did not need), transit history and the clock.
async fn routing_inputs(
    services: &FulfillmentServices,
    shared: &SharedReads,
    order: &Order,
    state: &Fulfillment,
    lines: Vec<FulfillmentLine>,
    exclude: Option<&str>,
) -> Result<RoutingInputs, FulfillmentError> {
    let placed = order
        .state()
        .ok_or_else(|| FulfillmentError::Inconsistent("order not placed".into()))?
        .placed();
    let ship_to = ShipTo::new(
        &placed.shipping_address.country,
        &placed.shipping_address.postal_code,
    )
    .map_err(|e| FulfillmentError::Inconsistent(e.to_string()))?;
    let locations = shared.locations(&services.pool).await?;
    let history = shared.history(&services.pool).await?.clone();
    let allocated = exclude.is_none().then(|| {
        let mut allocated: BTreeMap<String, BTreeMap<u32, u32>> = BTreeMap::new();
        for line in &state.allocated {
            *allocated
                .entry(line.location_id.clone())
                .or_default()
                .entry(line.line_no)
                .or_default() += line.quantity.get();
        }
        candidates(locations, &ship_to, allocated)
    });
    let skus: Vec<_> = lines.iter().map(|l| l.sku.clone()).collect();
    let levels = inventory::read_stock_of(&services.pool, &skus).await?;
    let mut free: BTreeMap<String, BTreeMap<u32, u32>> = BTreeMap::new();
    for line in &lines {
        for level in levels.iter().filter(|l| l.sku == line.sku.as_str()) {
            // A node already holding allocated units may have free units of the rest too (an
            // edit's added units, a replacement beside the allocation): they join its route.
            if Some(level.location_id.as_str()) == exclude || level.available <= 0 {
                continue;
            }
            let units = u32::try_from(level.available).unwrap_or(u32::MAX);
            *free
                .entry(level.location_id.clone())
                .or_default()
                .entry(line.line_no)
                .or_default() += units;
        }
    }
    Ok(RoutingInputs {
        shipping_method: state.shipping_method.clone(),
        pickup_location: state.pickup_location.clone(),
        ship_to: RoutingShipTo {
            country: ship_to.country.as_str().to_owned(),
            postal_zone: zones::postal_zone(&ship_to.postal_code),
        },
        lines,
        allocated,
        free_stock: candidates(locations, &ship_to, free),
        history,
        now: Utc::now(),
    })
}

fn candidates(
    locations: &[Location],
    ship_to: &ShipTo,
    units: BTreeMap<String, BTreeMap<u32, u32>>,
) -> Vec<Candidate> {
    units
        .into_iter()
        .filter_map(|(node_id, units)| {
            let location = locations
                .iter()
                .find(|l| l.location_id.as_str() == node_id && l.active)?;
            Some(Candidate {
                node_id,
                location: match location.kind {
                    LocationKind::Warehouse => LocationType::Warehouse,
                    LocationKind::Store => LocationType::Store,
                    LocationKind::ThirdParty => LocationType::ThirdParty,
                },
                distance: zones::distance(location, ship_to),
                units,
            })
        })
        .collect()
}
