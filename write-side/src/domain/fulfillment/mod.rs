//! Fulfillment (issue 4): from a confirmed order to parcels delivered or collected.
//!
//! ```text
//! OrderConfirmed ─route─▶ FulfillmentRouted (one per node, score + rule) ─▶ FulfillmentSubmitted (WMS)
//!   node: picked ─▶ packed ─▶ ShipmentCreated (carrier label) ─▶ ShipmentTracked … delivered
//!         short-picked ─▶ FulfillmentRouted (remainder, another node) | FulfillmentLinesCancelled
//!   BOPIS: PickupReady (code hash + hint) ─▶ PickupCompleted (right code)
//! every unit delivered, collected or cancelled ─(auto-close period)─▶ OrderClosed
//! ```
//!
//! Same split as the order aggregate: [`Fulfillment::handle`] decides events from a command
//! and the folded state, refusing with a typed [`FulfillmentError`]; `apply` (in `state`)
//! folds. No I/O: routing inputs, carrier labels, codes and the clock come in as data.
//! [`flow::next_step`] is the fulfillment process manager's decision.

pub mod carrier;
pub mod decision;
pub mod flow;
pub mod routing;
pub mod simulation;
mod state;

#[cfg(test)]
mod properties;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use waybill_schemas::events::{
    effective_scan_time, CancelReason, CarrierStatus, ExceptionAction, FulfillmentLine,
    FulfillmentLinesCancelled, FulfillmentProgressed, FulfillmentRouted, FulfillmentShortPicked,
    FulfillmentSubmitted, NodeProgress, OrderCancelled, OrderClosed, PickupCompleted, PickupReady,
    ProofOfDelivery, RouteCause, ShipmentCreated, ShipmentExceptionHandled, ShipmentTracked,
};
use waybill_schemas::{OrderEvent, OrderId};

pub use routing::{RoutePlan, RoutingConfig};
pub use state::{
    add, contains, subtract, total, Fulfillment, FulfillmentOrder, Replacement, Shipment,
    UnitBuckets,
};

/// A carrier label, as the carrier adapter returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub tracking_number: String,
    pub tracking_url: String,
    pub label_url: String,
    pub eta: DateTime<Utc>,
}

/// A carrier scan, already mapped to the normalized statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub carrier_event_id: String,
    pub status: CarrierStatus,
    pub carrier_time: DateTime<Utc>,
    pub description: String,
    pub location: Option<String>,
    pub proof: Option<ProofOfDelivery>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FulfillmentCommand {
    Route {
        plan: RoutePlan,
        cause: RouteCause,
        /// The decision's inputs and outcome (`RoutingDecided`), recorded ahead of the routes
        /// when the plan is recorded.
        decided: Option<Box<waybill_schemas::events::RoutingDecided>>,
    },
    RecordSubmission {
        fulfillment_id: String,
        wms_task_id: String,
    },
    RecordProgress {
        fulfillment_id: String,
        progress: NodeProgress,
    },
    RecordShortPick {
        fulfillment_id: String,
        missing: Vec<FulfillmentLine>,
    },
    ReadyForPickup {
        fulfillment_id: String,
        code: String,
        collect_by: DateTime<Utc>,
    },
    CompletePickup {
        fulfillment_id: String,
        code: String,
    },
    CreateShipment {
        fulfillment_id: String,
        label: Label,
    },
    RecordScan {
        shipment_id: String,
        scan: Scan,
    },
    HandleException {
        shipment_id: String,
        carrier_event_id: String,
        action: ExceptionAction,
        detail: String,
    },
    /// An agent asks the carrier to attempt a parcel's handoff once more (from the exceptions
    /// desk, after the automatic retries gave up): allowed while the parcel's latest scan is an
    /// exception, recorded as a retry answering that scan.
    RetryHandoffByAgent {
        shipment_id: String,
        detail: String,
    },
    Close,
    /// A pickup was not collected in time: its units are cancelled, worth `value` (the order
    /// aggregate's price of them, see `OrderState::cancellation_value`).
    CancelUncollected {
        /// The cancellation's id, chosen by the caller (ids come in as data, like time).
        cancellation_id: uuid::Uuid,
        fulfillment_id: String,
        value: waybill_schemas::Money,
    },
    /// The node work and stock release of a cancellation are done.
    RecordWithdrawal {
        cancellation_id: uuid::Uuid,
        nodes_amended: Vec<String>,
        released_units: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FulfillmentError {
    #[error("order is not placed")]
    NotPlaced,
    #[error("order {0} is not confirmed")]
    NotConfirmed(OrderId),
    #[error("order {0} is cancelled")]
    Cancelled(OrderId),
    #[error("order {0} is closed")]
    Closed(OrderId),
    #[error("order {0} is already routed")]
    AlreadyRouted(OrderId),
    #[error("no fulfillment order {0}")]
    UnknownFulfillment(String),
    #[error("no shipment {0}")]
    UnknownShipment(String),
    #[error("fulfillment order {id} cannot be {action}: {why}")]
    NotAllowed {
        id: String,
        action: &'static str,
        why: &'static str,
    },
    #[error("the pickup code does not match")]
    WrongPickupCode,
    #[error("order {0} still has units on their way")]
    NotDelivered(OrderId),
}

/// Hex SHA-256 of a pickup code.
pub fn pickup_code_sha256(code: &str) -> String {
    hex::encode(Sha256::digest(code.trim().as_bytes()))
}

impl Fulfillment {
    /// The id of the `n`-th fulfillment order of `order_id` (from 1).
    pub fn fulfillment_id(order_id: OrderId, n: usize) -> String {
        format!("{order_id}-F{n}")
    }

    /// Decides the events of `command` at `now`, or why it is refused. Recording what is
    /// already recorded gives no events. A decision that cancels the last units of the order
    /// cancels the order too (see [`Fulfillment::cancel_when_nothing_left`]).
    pub fn handle(
        &self,
        command: &FulfillmentCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, FulfillmentError> {
        let events = self.decide(command, now)?;
        Ok(self.cancel_when_nothing_left(events, now))
    }

    /// The one place that decides an order whose every unit is cancelled is cancelled:
    /// `events` (decided on this fold) followed by an `OrderCancelled` when they cancel the
    /// last units left. The order aggregate's line cancellations and this fold's own
    /// (uncollected pickups, short picks nobody can fill) both end here, so every view reads
    /// the same fact, `OrderCancelled`, whichever way the units went. Its reason is the last
    /// cancellation's (`out_of_stock` for units no node had).
    pub fn cancel_when_nothing_left(
        &self,
        mut events: Vec<OrderEvent>,
        now: DateTime<Utc>,
    ) -> Vec<OrderEvent> {
        let Some(order_id) = self.order_id else {
            return events;
        };
        if self.cancelled
            || events
                .iter()
                .any(|e| matches!(e, OrderEvent::OrderCancelled(_)))
        {
            return events;
        }
        let Some(reason) = events.iter().rev().find_map(|e| match e {
            OrderEvent::OrderLinesCancelled(c) => Some(c.reason),
            OrderEvent::FulfillmentLinesCancelled(_) => Some(CancelReason::OutOfStock),
            _ => None,
        }) else {
            return events;
        };
        let mut after = self.clone();
        for event in &events {
            after.apply(event);
        }
        if after.nothing_left() {
            events.push(OrderEvent::OrderCancelled(OrderCancelled {
                order_id,
                reason,
                note: Some("every unit of the order was cancelled".into()),
                cancelled_at: now,
            }));
        }
        events
    }

    fn decide(
        &self,
        command: &FulfillmentCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, FulfillmentError> {
        use FulfillmentCommand as C;
        let order_id = self.order_id.ok_or(FulfillmentError::NotPlaced)?;
        if let C::RecordWithdrawal {
            cancellation_id,
            nodes_amended,
            released_units,
        } = command
        {
            // Compensation of a recorded fact: allowed whatever the order's stage.
            return Ok(self.record_withdrawal(
                order_id,
                *cancellation_id,
                nodes_amended,
                *released_units,
                now,
            ));
        }
        if self.closed {
            return Err(FulfillmentError::Closed(order_id));
        }
        if self.confirmed.is_none() {
            return Err(FulfillmentError::NotConfirmed(order_id));
        }
        if self.cancelled && self.orders.is_empty() {
            return Err(FulfillmentError::Cancelled(order_id));
        }
        let not_allowed = |id: &str, action, why| FulfillmentError::NotAllowed {
            id: id.to_owned(),
            action,
            why,
        };
        let find = |id: &str| {
            self.order(id)
                .ok_or_else(|| FulfillmentError::UnknownFulfillment(id.to_owned()))
        };
        match command {
            C::CancelUncollected {
                cancellation_id,
                fulfillment_id,
                value,
            } => {
                let o = find(fulfillment_id)?;
                let lines = o.effective_lines();
                let Some(collect_by) = o.collect_by else {
                    return Err(not_allowed(
                        fulfillment_id,
                        "expired",
                        "it is not ready for pickup",
                    ));
                };
                if o.picked_up_at.is_some() || total(&lines) == 0 {
                    return Ok(vec![]);
                }
                if collect_by > now {
                    return Err(not_allowed(
                        fulfillment_id,
                        "expired",
                        "its collection deadline has not passed",
                    ));
                }
                Ok(vec![OrderEvent::OrderLinesCancelled(
                    waybill_schemas::events::OrderLinesCancelled {
                        order_id,
                        cancellation_id: *cancellation_id,
                        lines: lines
                            .into_iter()
                            .map(|l| waybill_schemas::events::CancelledUnits {
                                line_no: l.line_no,
                                sku: l.sku,
                                quantity: l.quantity,
                                fulfillment_id: Some(fulfillment_id.clone()),
                            })
                            .collect(),
                        reason: waybill_schemas::events::CancelReason::Timeout,
                        note: Some(format!(
                            "not collected by {}",
                            collect_by.format("%Y-%m-%d %H:%M UTC")
                        )),
                        value: *value,
                        requested_by: "fulfillment".into(),
                        cancelled_at: now,
                    },
                )])
            }
            // Decided before the stage checks above.
            C::RecordWithdrawal { .. } => Ok(vec![]),
            C::Route {
                plan,
                cause,
                decided,
            } => self.route(order_id, plan, cause, decided.as_deref(), now),
            C::RecordSubmission {
                fulfillment_id,
                wms_task_id,
            } => {
                let o = find(fulfillment_id)?;
                if o.wms_task_id.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![OrderEvent::FulfillmentSubmitted(
                    FulfillmentSubmitted {
                        order_id,
                        fulfillment_id: fulfillment_id.clone(),
                        wms_task_id: wms_task_id.clone(),
                        submitted_at: now,
                    },
                )])
            }
            C::RecordProgress {
                fulfillment_id,
                progress,
            } => {
                let o = find(fulfillment_id)?;
                let done = match progress {
                    NodeProgress::Picked => o.picked,
                    NodeProgress::Packed => o.packed,
                };
                if done {
                    return Ok(vec![]);
                }
                if total(&o.effective_lines()) == 0 {
                    return Err(not_allowed(
                        fulfillment_id,
                        "packed",
                        "it has no units left",
                    ));
                }
                Ok(vec![OrderEvent::FulfillmentProgressed(
                    FulfillmentProgressed {
                        order_id,
                        fulfillment_id: fulfillment_id.clone(),
                        progress: *progress,
                        reported_at: now,
                    },
                )])
            }
            C::RecordShortPick {
                fulfillment_id,
                missing,
            } => {
                let o = find(fulfillment_id)?;
                if o.packed {
                    return Err(not_allowed(fulfillment_id, "short-picked", "it is packed"));
                }
                if missing.is_empty() || !contains(&o.effective_lines(), missing) {
                    return Err(not_allowed(
                        fulfillment_id,
                        "short-picked",
                        "the missing units are not in it",
                    ));
                }
                Ok(vec![OrderEvent::FulfillmentShortPicked(
                    FulfillmentShortPicked {
                        order_id,
                        fulfillment_id: fulfillment_id.clone(),
                        missing: missing.clone(),
                        reported_at: now,
                    },
                )])
            }
            C::ReadyForPickup {
                fulfillment_id,
                code,
                collect_by,
            } => {
                let o = find(fulfillment_id)?;
                if !o.is_pickup() {
                    return Err(not_allowed(fulfillment_id, "ready for pickup", "it ships"));
                }
                if o.pickup_code_sha256.is_some() {
                    return Ok(vec![]);
                }
                if total(&o.effective_lines()) == 0 {
                    return Err(not_allowed(
                        fulfillment_id,
                        "ready for pickup",
                        "it has no units left",
                    ));
                }
                let hint: String = code
                    .trim()
                    .chars()
                    .rev()
                    .take(2)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                Ok(vec![OrderEvent::PickupReady(PickupReady {
                    order_id,
                    fulfillment_id: fulfillment_id.clone(),
                    code_sha256: pickup_code_sha256(code),
                    code_hint: hint,
                    collect_by: *collect_by,
                    ready_at: now,
                })])
            }
            C::CompletePickup {
                fulfillment_id,
                code,
            } => {
                let o = find(fulfillment_id)?;
                let Some(expected) = &o.pickup_code_sha256 else {
                    return Err(not_allowed(fulfillment_id, "picked up", "it is not ready"));
                };
                if *expected != pickup_code_sha256(code) {
                    return Err(FulfillmentError::WrongPickupCode);
                }
                if o.picked_up_at.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![OrderEvent::PickupCompleted(PickupCompleted {
                    order_id,
                    fulfillment_id: fulfillment_id.clone(),
                    picked_up_at: now,
                })])
            }
            C::CreateShipment {
                fulfillment_id,
                label,
            } => {
                let o = find(fulfillment_id)?;
                if o.shipment_id.is_some() {
                    return Ok(vec![]);
                }
                if o.is_pickup() || !o.packed {
                    return Err(not_allowed(
                        fulfillment_id,
                        "shipped",
                        "it is not a packed parcel",
                    ));
                }
                Ok(vec![OrderEvent::ShipmentCreated(ShipmentCreated {
                    order_id,
                    shipment_id: format!("{fulfillment_id}-S1"),
                    fulfillment_id: fulfillment_id.clone(),
                    carrier: o.routed.carrier.clone(),
                    tracking_number: label.tracking_number.clone(),
                    tracking_url: label.tracking_url.clone(),
                    label_url: label.label_url.clone(),
                    lines: o.effective_lines(),
                    eta: label.eta,
                    created_at: now,
                })])
            }
            C::RecordScan { shipment_id, scan } => {
                let s = self
                    .shipment(shipment_id)
                    .ok_or_else(|| FulfillmentError::UnknownShipment(shipment_id.clone()))?;
                let duplicate = s.seen.contains(&scan.carrier_event_id);
                // Scans are ordered by carrier time capped at receipt (`now`): a scan dated
                // ahead of its arrival never outranks one that happened after it arrived.
                let at = effective_scan_time(scan.carrier_time, now);
                let stale = s.status.as_ref().is_some_and(|(_, last, _)| *last >= at);
                if duplicate || stale {
                    return Ok(vec![]);
                }
                Ok(vec![OrderEvent::ShipmentTracked(ShipmentTracked {
                    order_id,
                    shipment_id: shipment_id.clone(),
                    carrier_event_id: scan.carrier_event_id.clone(),
                    status: scan.status,
                    carrier_time: scan.carrier_time,
                    description: scan.description.clone(),
                    location: scan.location.clone(),
                    proof: scan.proof.clone(),
                    recorded_at: now,
                })])
            }
            C::HandleException {
                shipment_id,
                carrier_event_id,
                action,
                detail,
            } => {
                let s = self
                    .shipment(shipment_id)
                    .ok_or_else(|| FulfillmentError::UnknownShipment(shipment_id.clone()))?;
                if s.handled_exceptions.contains(carrier_event_id) {
                    return Ok(vec![]);
                }
                Ok(vec![OrderEvent::ShipmentExceptionHandled(
                    ShipmentExceptionHandled {
                        order_id,
                        shipment_id: shipment_id.clone(),
                        action: *action,
                        carrier_event_id: carrier_event_id.clone(),
                        detail: detail.clone(),
                        handled_at: now,
                    },
                )])
            }
            C::RetryHandoffByAgent {
                shipment_id,
                detail,
            } => {
                let s = self
                    .shipment(shipment_id)
                    .ok_or_else(|| FulfillmentError::UnknownShipment(shipment_id.clone()))?;
                let Some((CarrierStatus::Exception, _, carrier_event_id)) = &s.status else {
                    return Err(FulfillmentError::NotAllowed {
                        id: shipment_id.clone(),
                        action: "handed over again",
                        why: "its latest scan is not an exception",
                    });
                };
                Ok(vec![OrderEvent::ShipmentExceptionHandled(
                    ShipmentExceptionHandled {
                        order_id,
                        shipment_id: shipment_id.clone(),
                        action: ExceptionAction::RetryHandoff,
                        carrier_event_id: carrier_event_id.clone(),
                        detail: detail.clone(),
                        handled_at: now,
                    },
                )])
            }
            C::Close => {
                let last = self
                    .fully_delivered()
                    .ok_or(FulfillmentError::NotDelivered(order_id))?;
                Ok(vec![OrderEvent::OrderClosed(OrderClosed {
                    order_id,
                    last_delivery_at: last,
                    closed_at: now,
                })])
            }
        }
    }

    fn record_withdrawal(
        &self,
        order_id: OrderId,
        cancellation_id: uuid::Uuid,
        nodes_amended: &[String],
        released_units: u32,
        now: DateTime<Utc>,
    ) -> Vec<OrderEvent> {
        let pending = self
            .cancellations
            .iter()
            .any(|(c, released)| c.cancellation_id == cancellation_id && !released);
        if !pending {
            return vec![];
        }
        vec![OrderEvent::CancelledUnitsReleased(
            waybill_schemas::events::CancelledUnitsReleased {
                order_id,
                cancellation_id,
                nodes_amended: nodes_amended.to_vec(),
                released_units,
                released_at: now,
            },
        )]
    }

    fn route(
        &self,
        order_id: OrderId,
        plan: &RoutePlan,
        cause: &RouteCause,
        decided: Option<&waybill_schemas::events::RoutingDecided>,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, FulfillmentError> {
        let from = match cause {
            RouteCause::Confirmation => {
                if self.is_routed() {
                    return Err(FulfillmentError::AlreadyRouted(order_id));
                }
                let asked: Vec<FulfillmentLine> = self.to_route();
                let planned = plan
                    .routes
                    .iter()
                    .fold(plan.unroutable.clone(), |acc, r| add(&acc, &r.lines));
                if planned != asked {
                    return Err(FulfillmentError::NotAllowed {
                        id: order_id.to_string(),
                        action: "routed",
                        why: "the plan does not cover exactly the ordered units",
                    });
                }
                None
            }
            RouteCause::ShortPick {
                from_fulfillment_id,
            } => {
                let o = self.order(from_fulfillment_id).ok_or_else(|| {
                    FulfillmentError::UnknownFulfillment(from_fulfillment_id.clone())
                })?;
                if o.pending_missing.is_empty() {
                    return Ok(vec![]);
                }
                let planned = plan
                    .routes
                    .iter()
                    .fold(plan.unroutable.clone(), |acc, r| add(&acc, &r.lines));
                if planned != o.pending_missing {
                    return Err(FulfillmentError::NotAllowed {
                        id: from_fulfillment_id.clone(),
                        action: "re-routed",
                        why: "the plan does not cover exactly the missing units",
                    });
                }
                Some(from_fulfillment_id.clone())
            }
            RouteCause::Exchange { return_id } => {
                let Some(r) = self.replacements.iter().find(|r| r.return_id == *return_id) else {
                    return Err(FulfillmentError::NotAllowed {
                        id: return_id.clone(),
                        action: "routed",
                        why: "the return has no replacement",
                    });
                };
                if self.replacement_to_route().map(|p| &p.return_id) != Some(return_id) {
                    return Ok(vec![]);
                }
                let planned = plan
                    .routes
                    .iter()
                    .fold(plan.unroutable.clone(), |acc, r| add(&acc, &r.lines));
                if planned != add(&[], &r.lines) {
                    return Err(FulfillmentError::NotAllowed {
                        id: return_id.clone(),
                        action: "routed",
                        why: "the plan does not cover exactly the replacement units",
                    });
                }
                Some(format!("{return_id}-X"))
            }
        };
        let mut events: Vec<OrderEvent> = decided
            .map(|d| OrderEvent::RoutingDecided(d.clone()))
            .into_iter()
            .collect();
        events.extend(plan.routes.iter().enumerate().map(|(i, r)| {
            OrderEvent::FulfillmentRouted(FulfillmentRouted {
                order_id,
                fulfillment_id: Self::fulfillment_id(order_id, self.orders.len() + i + 1),
                node_id: r.node_id.clone(),
                node_kind: r.node_kind,
                carrier: r.carrier.clone(),
                zone_distance: r.zone_distance,
                lines: r.lines.clone(),
                rule: r.rule.clone(),
                score: r.score.clone(),
                total_score: r.total_score,
                eta: r.eta,
                cause: cause.clone(),
                pickup: r.pickup.clone(),
                routed_at: now,
            })
        }));
        if !plan.unroutable.is_empty() {
            events.push(OrderEvent::FulfillmentLinesCancelled(
                FulfillmentLinesCancelled {
                    order_id,
                    fulfillment_id: from.unwrap_or_else(|| format!("{order_id}-F0")),
                    lines: plan.unroutable.clone(),
                    reason: "no node can fulfil these units".into(),
                    cancelled_at: now,
                },
            ));
        }
        Ok(events)
    }
}
