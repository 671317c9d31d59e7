//! The fulfillment process manager's decision: given the folded order and the clock, what comes
//! next. The worker executes the step (WMS task, carrier label, re-route, close), records the
//! outcome through [`super::Fulfillment::handle`] and asks again, so it keeps no state of its
//! own and a crash costs nothing but a repeated, idempotent call.

use chrono::{DateTime, Duration, Utc};
use waybill_schemas::events::{CarrierStatus, ExceptionAction, FulfillmentLine};

use super::Fulfillment;
use crate::domain::returns::ReturnsPolicy;

/// The process manager's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FulfillmentPolicy {
    /// How long after the last delivery an order closes (`WAYBILL_AUTO_CLOSE_DAYS`).
    pub auto_close_after: Duration,
    /// Carrier handoff retries after an exception before an agent is alerted.
    pub max_handoff_retries: u32,
    /// How long a confirmed order waits before it is routed (`WAYBILL_FULFILLMENT_HOLD_SECS`).
    pub hold: Duration,
}

impl Default for FulfillmentPolicy {
    /// Close 14 days after the last delivery; retry a failed handoff twice; route at once.
    fn default() -> Self {
        Self {
            auto_close_after: Duration::days(14),
            max_handoff_retries: 2,
            hold: Duration::zero(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FulfillmentStep {
    /// Split the confirmed order over nodes (candidates: where its stock is allocated).
    Route,
    /// Send the pick/pack task to the node's WMS.
    Submit {
        fulfillment_id: String,
    },
    /// Send units a node could not pick to another node (or cancel them).
    Reroute {
        fulfillment_id: String,
        node_id: String,
        missing: Vec<FulfillmentLine>,
    },
    /// Buy a carrier label for a packed fulfillment order.
    Ship {
        fulfillment_id: String,
    },
    /// React to a carrier exception scan.
    HandleException {
        shipment_id: String,
        carrier_event_id: String,
        action: ExceptionAction,
    },
    /// Route an exchange's replacement units as a new fulfillment order linked to the return.
    RouteReplacement {
        return_id: String,
        lines: Vec<FulfillmentLine>,
    },
    /// Buy a prepaid return label for a return.
    IssueReturnLabel {
        return_id: String,
    },
    /// Put a return's accepted resellable units back on hand (one inventory call per line).
    RestockReturn {
        return_id: String,
        /// Location and units, per returned line.
        lines: Vec<(String, FulfillmentLine)>,
    },
    /// Decide what the customer gets for an inspected return (the refund).
    ResolveReturn {
        return_id: String,
    },
    Close,
    /// A BOPIS order was not collected by its `collect_by`: cancel its units (they go back
    /// to the store's stock and are refunded like any cancelled unit).
    ExpirePickup {
        fulfillment_id: String,
    },
    /// Amend the node tasks holding units of a cancellation and give its stock back.
    Withdraw {
        cancellation_id: uuid::Uuid,
    },
    /// The payment could not be captured (`PaymentCaptureFailed`): nothing moves until an
    /// agent resolves it.
    HoldForPayment,
    /// Nothing to do until a webhook wakes the flow, or until `until`.
    Wait {
        until: Option<DateTime<Utc>>,
    },
    Done,
}

impl FulfillmentStep {
    /// The idempotency key of the step's external call.
    pub fn idempotency_key(&self, order_id: &str) -> Option<String> {
        match self {
            Self::Submit { fulfillment_id } => Some(format!("{fulfillment_id}:submit")),
            Self::Ship { fulfillment_id } => Some(format!("{fulfillment_id}:label")),
            Self::HandleException {
                carrier_event_id, ..
            } => Some(format!("{order_id}:{carrier_event_id}:retry")),
            Self::IssueReturnLabel { return_id } => Some(format!("{return_id}:label")),
            _ => None,
        }
    }
}

/// The next step of the first open return that has one (label, restock, resolution); returns
/// waiting for the node's receipt or inspection have none.
fn return_step(state: &Fulfillment, returns: &ReturnsPolicy) -> Option<FulfillmentStep> {
    for r in state.returns.returns.iter().filter(|r| r.is_open()) {
        if r.label.is_none() {
            return Some(FulfillmentStep::IssueReturnLabel {
                return_id: r.id().to_owned(),
            });
        }
        if r.inspected.is_none() {
            continue;
        }
        let resellable = r.resellable_lines();
        if !resellable.is_empty() && !r.is_restocked() {
            let lines = resellable
                .into_iter()
                .map(|line| {
                    let origin = r
                        .requested
                        .lines
                        .iter()
                        .find(|l| l.line_no == line.line_no)
                        .map(|l| l.origin_node_id.as_str())
                        .unwrap_or_default();
                    (returns.restock_location(origin).to_owned(), line)
                })
                .collect();
            return Some(FulfillmentStep::RestockReturn {
                return_id: r.id().to_owned(),
                lines,
            });
        }
        return Some(FulfillmentStep::ResolveReturn {
            return_id: r.id().to_owned(),
        });
    }
    None
}

/// What the fulfillment flow of `state` does next at `now`.
pub fn next_step(
    state: &Fulfillment,
    policy: &FulfillmentPolicy,
    returns: &ReturnsPolicy,
    now: DateTime<Utc>,
) -> FulfillmentStep {
    if state.order_id.is_none() || state.confirmed.is_none() {
        return FulfillmentStep::Done;
    }
    if let Some((c, _)) = state.cancellations.iter().find(|(_, released)| !released) {
        return FulfillmentStep::Withdraw {
            cancellation_id: c.cancellation_id,
        };
    }
    if state.closed || state.cancelled {
        return FulfillmentStep::Done;
    }
    if state.payment_hold.is_some() {
        // The payment cannot be captured: nothing more is routed, packed work is not shipped,
        // and the order does not close. Cancellations (above) still withdraw and release; an
        // agent resolves the rest (cancel, or take payment another way).
        return FulfillmentStep::HoldForPayment;
    }
    if !state.is_routed() {
        if super::total(&state.to_route()) == 0 {
            // Every unit was cancelled before routing.
            return FulfillmentStep::Done;
        }
        if let Some(confirmed_at) = state.confirmed_at {
            let route_at = confirmed_at + policy.hold;
            if now < route_at {
                return FulfillmentStep::Wait {
                    until: Some(route_at),
                };
            }
        }
        return FulfillmentStep::Route;
    }
    if let Some(r) = state.replacement_to_route() {
        return FulfillmentStep::RouteReplacement {
            return_id: r.return_id.clone(),
            lines: r.lines.clone(),
        };
    }
    for o in &state.orders {
        if !o.pending_missing.is_empty() {
            return FulfillmentStep::Reroute {
                fulfillment_id: o.id().to_owned(),
                node_id: o.routed.node_id.clone(),
                missing: o.pending_missing.clone(),
            };
        }
        if o.wms_task_id.is_none() && super::total(&o.effective_lines()) > 0 {
            return FulfillmentStep::Submit {
                fulfillment_id: o.id().to_owned(),
            };
        }
        if o.packed
            && !o.is_pickup()
            && o.shipment_id.is_none()
            && super::total(&o.effective_lines()) > 0
        {
            return FulfillmentStep::Ship {
                fulfillment_id: o.id().to_owned(),
            };
        }
    }
    for s in &state.shipments {
        if let Some((CarrierStatus::Exception, _, event_id)) = &s.status {
            if !s.handled_exceptions.contains(event_id) {
                let action = if s.retries < policy.max_handoff_retries {
                    ExceptionAction::RetryHandoff
                } else {
                    ExceptionAction::Alert
                };
                return FulfillmentStep::HandleException {
                    shipment_id: s.created.shipment_id.clone(),
                    carrier_event_id: event_id.clone(),
                    action,
                };
            }
        }
    }
    // Pickups waiting at a store: cancelled once their collection deadline passes.
    let mut pickup_deadline: Option<DateTime<Utc>> = None;
    for o in &state.orders {
        let (Some(collect_by), None) = (o.collect_by, o.picked_up_at) else {
            continue;
        };
        if super::total(&o.effective_lines()) == 0 {
            continue;
        }
        if collect_by <= now {
            return FulfillmentStep::ExpirePickup {
                fulfillment_id: o.id().to_owned(),
            };
        }
        pickup_deadline = Some(pickup_deadline.map_or(collect_by, |d| d.min(collect_by)));
    }
    if let Some(step) = return_step(state, returns) {
        return step;
    }
    // An open return holds auto-close: the order waits for the node's report.
    if state.returns.any_open() {
        return FulfillmentStep::Wait {
            until: pickup_deadline,
        };
    }
    match state.fully_delivered() {
        Some(last) => {
            // A resolved return restarts the auto-close period.
            let last = state
                .returns
                .returns
                .iter()
                .filter_map(|r| r.resolved_at())
                .fold(last, |a, b| a.max(b));
            let close_at = last + policy.auto_close_after;
            if close_at <= now {
                FulfillmentStep::Close
            } else {
                FulfillmentStep::Wait {
                    until: Some(close_at),
                }
            }
        }
        // Settled without a handover (all cancelled, or returned to sender): nothing to close.
        None if state.is_settled() => FulfillmentStep::Done,
        None => FulfillmentStep::Wait {
            until: pickup_deadline,
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use waybill_schemas::events::{CaptureMode, OrderConfirmed};
    use waybill_schemas::{OrderEvent, OrderId};

    use super::*;

    fn confirmed_at(at: DateTime<Utc>) -> Fulfillment {
        let order_id = OrderId::new_v7();
        let mut placed = crate::domain::order::fixtures::placed_event(order_id, None);
        placed.placed_at = at;
        Fulfillment::from_events(&[
            OrderEvent::OrderPlaced(placed),
            OrderEvent::OrderConfirmed(OrderConfirmed {
                order_id,
                capture_mode: CaptureMode::Immediate,
                confirmed_at: at,
            }),
        ])
    }

    #[test]
    fn a_confirmed_order_waits_out_the_hold_before_it_is_routed() {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
        let state = confirmed_at(at);
        let returns = ReturnsPolicy::bundled().expect("bundled returns policy");
        let policy = FulfillmentPolicy {
            hold: Duration::minutes(5),
            ..FulfillmentPolicy::default()
        };
        assert_eq!(
            next_step(&state, &policy, &returns, at + Duration::minutes(1)),
            FulfillmentStep::Wait {
                until: Some(at + Duration::minutes(5))
            }
        );
        assert_eq!(
            next_step(&state, &policy, &returns, at + Duration::minutes(5)),
            FulfillmentStep::Route
        );
        assert_eq!(
            next_step(&state, &FulfillmentPolicy::default(), &returns, at),
            FulfillmentStep::Route,
            "no hold by default"
        );
    }
}
