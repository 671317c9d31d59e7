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
}

impl Default for FulfillmentPolicy {
    /// Close 14 days after the last delivery; retry a failed handoff twice.
    fn default() -> Self {
        Self {
            auto_close_after: Duration::days(14),
            max_handoff_retries: 2,
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
    if state.closed || state.order_id.is_none() || state.confirmed.is_none() {
        return FulfillmentStep::Done;
    }
    if !state.is_routed() {
        if state.cancelled {
            return FulfillmentStep::Done;
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
        if o.packed && !o.is_pickup() && o.shipment_id.is_none() {
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
    if let Some(step) = return_step(state, returns) {
        return step;
    }
    // An open return holds auto-close: the order waits for the node's report.
    if state.returns.any_open() {
        return FulfillmentStep::Wait { until: None };
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
        None => FulfillmentStep::Wait { until: None },
    }
}
