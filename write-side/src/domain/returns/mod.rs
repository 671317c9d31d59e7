//! Returns (RMA): delivered or collected units go back, are inspected, restocked when
//! resellable, and resolved (a refund of what the accepted units cost, minus the policy's fees).
//!
//! ```text
//! ReturnRequested ─label─▶ ReturnLabelIssued ─node─▶ ReturnReceived ─node/agent─▶ ReturnInspected
//!   ─▶ ReturnRestocked (accepted resellable units) ─▶ ReturnRefundDecided (+ RefundRequested)
//! ```
//!
//! The returns of an order are folded with its fulfillment ([`Fulfillment::returns`]), since
//! what may be returned is what was delivered. [`Fulfillment::handle_return`] decides events
//! from a [`ReturnCommand`] with the [`ReturnsPolicy`] as data; no I/O. The fulfillment process
//! manager drives the steps (`fulfillment::flow::next_step`).

mod policy;
mod refund;
mod resolutions;
mod state;

#[cfg(test)]
mod properties;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use waybill_schemas::events::{
    FulfillmentLine, InspectedLine, RefundKind, RefundRequested, ReturnInspected,
    ReturnLabelIssued, ReturnLine, ReturnReason, ReturnReceived, ReturnRequested, ReturnResolution,
    ReturnRestocked,
};
use waybill_schemas::{Money, OrderEvent, OrderId, Quantity};

use super::fulfillment::Fulfillment;
pub use policy::{glob_matches, RestockTo, ReturnsPolicy, ReturnsPolicyError};
pub use refund::{expected_fees, refund_decision, RefundDecision};
pub use resolutions::{charge_id_of, credit_id_of};
pub use state::{PricedLine, Return, Returns};

/// One line of a return request, as parsed from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLine {
    pub line_no: u32,
    pub quantity: Quantity,
    pub reason: ReturnReason,
    pub note: Option<String>,
}

/// A prepaid return label, as the carrier adapter returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnLabel {
    pub carrier: String,
    pub tracking_number: String,
    pub tracking_url: String,
    pub label_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnCommand {
    Request {
        lines: Vec<RequestedLine>,
        resolution: ReturnResolution,
        /// Agents only (the API checks the role).
        waive_fees: bool,
        requested_by: String,
    },
    IssueLabel {
        return_id: String,
        label: ReturnLabel,
    },
    /// `node_id` empty: the node the return was sent to.
    Receive { return_id: String, node_id: String },
    /// `inspected_by` empty: the node the return was sent to.
    Inspect {
        return_id: String,
        lines: Vec<InspectedLine>,
        inspected_by: String,
    },
    /// Record that the resellable units are back in stock (after the inventory calls).
    Restock { return_id: String },
    /// Decide what the customer gets for the accepted units.
    Resolve { return_id: String },
}

/// Why a return command is refused. Line errors carry the index of the request line, so the
/// API can name the field (`lines[0].quantity`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnError {
    #[error("order is not placed")]
    NotPlaced,
    #[error("no return {0}")]
    UnknownReturn(String),
    #[error("a return needs at least one line")]
    NoLines,
    #[error("the {0} resolution is not offered")]
    ResolutionNotOffered(&'static str),
    #[error("the order was placed as a guest; there is no customer account to credit")]
    NoCustomerAccount,
    #[error("replacement {index}: {why}")]
    BadReplacement {
        index: usize,
        field: &'static str,
        why: String,
    },
    #[error("order {order_id} has no line {line_no}")]
    UnknownLine {
        index: usize,
        order_id: OrderId,
        line_no: u32,
    },
    #[error("line {line_no} appears twice in the return")]
    DuplicateLine { index: usize, line_no: u32 },
    #[error("{reason} is not a reason this shop accepts")]
    ReasonNotAllowed { index: usize, reason: &'static str },
    #[error("line {line_no} ({sku}) cannot be returned: it matches {pattern}")]
    NotReturnable {
        index: usize,
        line_no: u32,
        sku: String,
        pattern: String,
    },
    #[error("line {line_no} has no delivered or collected units")]
    NothingDelivered { index: usize, line_no: u32 },
    #[error("line {line_no} was delivered more than {window} ago")]
    OutsideWindow {
        index: usize,
        line_no: u32,
        /// The window in words ("30 days").
        window: String,
    },
    #[error("line {line_no}: {requested} units asked, at most {returnable} can be returned")]
    MoreThanReturnable {
        index: usize,
        line_no: u32,
        requested: u32,
        returnable: u32,
    },
    #[error("return {return_id} cannot be {action}: {why}")]
    NotAllowed {
        return_id: String,
        action: &'static str,
        why: &'static str,
    },
    #[error("inspection of line {line_no}: {why}")]
    BadInspection {
        index: usize,
        line_no: u32,
        /// The field of `lines[index]` at fault (`line_no`, `sku`, `accepted`, `resellable`).
        field: &'static str,
        why: &'static str,
    },
}

impl ReturnError {
    /// The request field a refusal is about, when it is about one.
    pub fn field(&self) -> Option<String> {
        let at = |i: &usize, f: &str| Some(format!("lines[{i}].{f}"));
        match self {
            Self::NoLines => Some("lines".into()),
            Self::ResolutionNotOffered(_) | Self::NoCustomerAccount => Some("resolution".into()),
            Self::BadReplacement { index, field, .. } => {
                Some(format!("resolution.replacements[{index}].{field}"))
            }
            Self::UnknownLine { index, .. }
            | Self::DuplicateLine { index, .. }
            | Self::NotReturnable { index, .. }
            | Self::OutsideWindow { index, .. } => at(index, "line_no"),
            Self::ReasonNotAllowed { index, .. } => at(index, "reason"),
            Self::NothingDelivered { index, .. } | Self::MoreThanReturnable { index, .. } => {
                at(index, "quantity")
            }
            Self::BadInspection { field: "lines", .. } => Some("lines".into()),
            Self::BadInspection { index, field, .. } => at(index, field),
            Self::NotPlaced | Self::UnknownReturn(_) | Self::NotAllowed { .. } => None,
        }
    }
}

/// Units handed over to the customer: by whom and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub lines: Vec<FulfillmentLine>,
    pub node_id: String,
    pub carrier: String,
    pub at: DateTime<Utc>,
}

/// The refund id of a return: a UUID (v8, from SHA-256 of the return id) that is the same
/// every time, so a retried resolution cannot refund twice.
pub fn refund_id_of(return_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("waybill-return-refund:{return_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

impl Fulfillment {
    /// The id of the `n`-th return of `order_id` (from 1).
    pub fn return_id(order_id: OrderId, n: usize) -> String {
        format!("{order_id}-R{n}")
    }

    /// Every delivery and pickup of the order, oldest first.
    pub fn handovers(&self) -> Vec<Handover> {
        let mut out: Vec<Handover> = Vec::new();
        for o in &self.orders {
            if let Some(at) = o.picked_up_at {
                out.push(Handover {
                    lines: o.effective_lines(),
                    node_id: o.routed.node_id.clone(),
                    carrier: o.routed.carrier.clone(),
                    at,
                });
            }
        }
        for s in &self.shipments {
            if s.current() == Some(waybill_schemas::events::CarrierStatus::Delivered) {
                let node = self.order(&s.created.fulfillment_id);
                out.push(Handover {
                    lines: s.created.lines.clone(),
                    node_id: node.map(|o| o.routed.node_id.clone()).unwrap_or_default(),
                    carrier: s.created.carrier.clone(),
                    at: s.delivered_at.unwrap_or(s.created.created_at),
                });
            }
        }
        out.sort_by_key(|h| h.at);
        out
    }

    /// Units of `line_no` handed over in total, and those still inside the window at `now`.
    fn delivered_units(&self, line_no: u32, window_start: DateTime<Utc>) -> (u32, u32, String) {
        let mut total = 0;
        let mut recent = 0;
        let mut node = String::new();
        for h in self.handovers() {
            for l in h.lines.iter().filter(|l| l.line_no == line_no) {
                total += l.quantity.get();
                if h.at >= window_start {
                    recent += l.quantity.get();
                }
                if node.is_empty() {
                    node = h.node_id.clone();
                }
            }
        }
        (total, recent, node)
    }

    /// Decides the events of a return command at `now`, or why it is refused.
    pub fn handle_return(
        &self,
        command: &ReturnCommand,
        policy: &ReturnsPolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, ReturnError> {
        let order_id = self.order_id.ok_or(ReturnError::NotPlaced)?;
        let find = |id: &str| {
            self.returns
                .get(id)
                .ok_or_else(|| ReturnError::UnknownReturn(id.to_owned()))
        };
        let not_allowed = |id: &str, action, why| ReturnError::NotAllowed {
            return_id: id.to_owned(),
            action,
            why,
        };
        match command {
            ReturnCommand::Request {
                lines,
                resolution,
                waive_fees,
                requested_by,
            } => self.request_return(
                order_id,
                lines,
                resolution,
                *waive_fees,
                requested_by,
                policy,
                now,
            ),
            ReturnCommand::IssueLabel { return_id, label } => {
                let r = find(return_id)?;
                if r.label.is_some() {
                    return Ok(vec![]);
                }
                let to = destination(r, policy);
                let instructions = format!(
                    "{} Return address: {to}.",
                    policy.instructions_for(&label.carrier)
                );
                Ok(vec![OrderEvent::ReturnLabelIssued(ReturnLabelIssued {
                    order_id,
                    return_id: return_id.clone(),
                    carrier: label.carrier.clone(),
                    tracking_number: label.tracking_number.clone(),
                    tracking_url: label.tracking_url.clone(),
                    label_url: label.label_url.clone(),
                    instructions: instructions.trim().to_owned(),
                    issued_at: now,
                })])
            }
            ReturnCommand::Receive { return_id, node_id } => {
                let r = find(return_id)?;
                let node_id = if node_id.is_empty() {
                    destination(r, policy)
                } else {
                    node_id.clone()
                };
                if r.received.is_some() {
                    return Ok(vec![]);
                }
                if !r.is_open() {
                    return Err(not_allowed(return_id, "received", "it is resolved"));
                }
                Ok(vec![OrderEvent::ReturnReceived(ReturnReceived {
                    order_id,
                    return_id: return_id.clone(),
                    node_id,
                    received_at: now,
                })])
            }
            ReturnCommand::Inspect {
                return_id,
                lines,
                inspected_by,
            } => {
                let r = find(return_id)?;
                if let Some(done) = &r.inspected {
                    if done.lines == *lines {
                        return Ok(vec![]);
                    }
                    return Err(not_allowed(
                        return_id,
                        "inspected",
                        "it was inspected with another result",
                    ));
                }
                check_inspection(r, lines)?;
                let inspected_by = if inspected_by.is_empty() {
                    destination(r, policy)
                } else {
                    inspected_by.clone()
                };
                let mut events = Vec::new();
                if r.received.is_none() {
                    // Inspected means received: an agent recording both at once.
                    events.push(OrderEvent::ReturnReceived(ReturnReceived {
                        order_id,
                        return_id: return_id.clone(),
                        node_id: destination(r, policy),
                        received_at: now,
                    }));
                }
                events.push(OrderEvent::ReturnInspected(ReturnInspected {
                    order_id,
                    return_id: return_id.clone(),
                    lines: lines.clone(),
                    inspected_by,
                    inspected_at: now,
                }));
                Ok(events)
            }
            ReturnCommand::Restock { return_id } => {
                let r = find(return_id)?;
                if r.is_restocked() {
                    return Ok(vec![]);
                }
                if r.inspected.is_none() {
                    return Err(not_allowed(return_id, "restocked", "it is not inspected"));
                }
                let resellable = r.resellable_lines();
                if resellable.is_empty() {
                    return Err(not_allowed(return_id, "restocked", "nothing is resellable"));
                }
                Ok(restock_events(order_id, r, &resellable, policy, now))
            }
            ReturnCommand::Resolve { return_id } => {
                let r = find(return_id)?;
                if r.decided.is_some() {
                    return Ok(vec![]);
                }
                if r.inspected.is_none() {
                    return Err(not_allowed(return_id, "resolved", "it is not inspected"));
                }
                if !r.resellable_lines().is_empty() && !r.is_restocked() {
                    return Err(not_allowed(return_id, "resolved", "it is not restocked"));
                }
                self.resolve(order_id, r, now)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn request_return(
        &self,
        order_id: OrderId,
        lines: &[RequestedLine],
        resolution: &ReturnResolution,
        waive_fees: bool,
        requested_by: &str,
        policy: &ReturnsPolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, ReturnError> {
        if lines.is_empty() {
            return Err(ReturnError::NoLines);
        }
        self.check_resolution(resolution, lines)?;
        let window_start = now - policy.window();
        let mut out = Vec::with_capacity(lines.len());
        for (index, asked) in lines.iter().enumerate() {
            let line_no = asked.line_no;
            let priced = self
                .returns
                .lines
                .get(&line_no)
                .ok_or(ReturnError::UnknownLine {
                    index,
                    order_id,
                    line_no,
                })?;
            if lines[..index].iter().any(|l| l.line_no == line_no) {
                return Err(ReturnError::DuplicateLine { index, line_no });
            }
            if !policy.allows_reason(asked.reason) {
                return Err(ReturnError::ReasonNotAllowed {
                    index,
                    reason: asked.reason.as_str(),
                });
            }
            if let Some(pattern) = policy.non_returnable(&priced.sku) {
                return Err(ReturnError::NotReturnable {
                    index,
                    line_no,
                    sku: priced.sku.as_str().to_owned(),
                    pattern: pattern.to_owned(),
                });
            }
            let (delivered, recent, node) = self.delivered_units(line_no, window_start);
            if delivered == 0 {
                return Err(ReturnError::NothingDelivered { index, line_no });
            }
            if recent == 0 {
                return Err(ReturnError::OutsideWindow {
                    index,
                    line_no,
                    window: policy.window_words(),
                });
            }
            let before = self.returns.requested_units(line_no);
            let returnable = recent.min(delivered.saturating_sub(before));
            if asked.quantity.get() > returnable {
                return Err(ReturnError::MoreThanReturnable {
                    index,
                    line_no,
                    requested: asked.quantity.get(),
                    returnable,
                });
            }
            let paid = self
                .returns
                .paid_for(line_no, before, asked.quantity.get())
                .ok_or(ReturnError::NotPlaced)?;
            out.push(ReturnLine {
                line_no,
                sku: priced.sku.clone(),
                quantity: asked.quantity,
                reason: asked.reason,
                note: asked.note.clone(),
                paid,
                origin_node_id: node,
            });
        }
        let currency = self.returns.currency.ok_or(ReturnError::NotPlaced)?;
        let fees = if waive_fees {
            Vec::new()
        } else {
            expected_fees(&out, policy, currency)
        };
        let paid: i64 = out.iter().map(|l| l.paid.minor).sum();
        let fee_total: i64 = fees.iter().map(|f| f.amount.minor).sum();
        Ok(vec![OrderEvent::ReturnRequested(ReturnRequested {
            order_id,
            return_id: Self::return_id(order_id, self.returns.returns.len() + 1),
            lines: out,
            resolution: resolution.clone(),
            fees,
            fees_waived: waive_fees,
            expected_refund: Money::new((paid - fee_total).max(0), currency),
            requested_by: requested_by.to_owned(),
            requested_at: now,
        })])
    }

    /// The resolution step: one arm per resolution kind.
    fn resolve(
        &self,
        order_id: OrderId,
        r: &Return,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, ReturnError> {
        match &r.requested.resolution {
            ReturnResolution::Refund => {
                let decision = refund_decision(r, &self.returns.ledger);
                let refund_id = (decision.amount.minor > 0).then(|| refund_id_of(r.id()));
                let mut events = vec![OrderEvent::ReturnRefundDecided(
                    waybill_schemas::events::ReturnRefundDecided {
                        order_id,
                        return_id: r.id().to_owned(),
                        accepted_value: decision.accepted_value,
                        fees: decision.fees,
                        amount: decision.amount,
                        refund_id,
                        decided_at: now,
                    },
                )];
                if let Some(refund_id) = refund_id {
                    events.push(OrderEvent::RefundRequested(RefundRequested {
                        order_id,
                        refund_id,
                        amount: decision.amount,
                        kind: RefundKind::Return,
                        reason: format!("return {}", r.id()),
                        requested_by: "returns".into(),
                        requested_at: now,
                    }));
                }
                Ok(events)
            }
            ReturnResolution::StoreCredit => self.resolve_as_store_credit(order_id, r, now),
            ReturnResolution::Exchange { replacements } => {
                self.resolve_as_exchange(order_id, r, replacements, now)
            }
        }
    }
}

/// Where a return is sent: the restock location of its first line's origin.
pub fn destination(r: &Return, policy: &ReturnsPolicy) -> String {
    r.requested
        .lines
        .first()
        .map(|l| policy.restock_location(&l.origin_node_id).to_owned())
        .unwrap_or_default()
}

/// Inspection covers each returned line exactly: accepted + rejected = returned, resellable ≤
/// accepted, no other lines.
fn check_inspection(r: &Return, lines: &[InspectedLine]) -> Result<(), ReturnError> {
    for (index, l) in lines.iter().enumerate() {
        let Some(asked) = r.requested.lines.iter().find(|a| a.line_no == l.line_no) else {
            return Err(ReturnError::BadInspection {
                index,
                line_no: l.line_no,
                field: "line_no",
                why: "the line is not in the return",
            });
        };
        if l.sku != asked.sku {
            return Err(ReturnError::BadInspection {
                index,
                line_no: l.line_no,
                field: "sku",
                why: "the SKU is not the returned line's",
            });
        }
        if lines[..index].iter().any(|o| o.line_no == l.line_no) {
            return Err(ReturnError::BadInspection {
                index,
                line_no: l.line_no,
                field: "line_no",
                why: "the line appears twice",
            });
        }
        if u64::from(l.accepted) + u64::from(l.rejected) != u64::from(asked.quantity.get()) {
            return Err(ReturnError::BadInspection {
                index,
                line_no: l.line_no,
                field: "accepted",
                why: "accepted + rejected must equal the returned quantity",
            });
        }
        if l.resellable > l.accepted {
            return Err(ReturnError::BadInspection {
                index,
                line_no: l.line_no,
                field: "resellable",
                why: "resellable units must be accepted units",
            });
        }
    }
    if let Some(missing) = r
        .requested
        .lines
        .iter()
        .find(|a| !lines.iter().any(|l| l.line_no == a.line_no))
    {
        return Err(ReturnError::BadInspection {
            index: lines.len(),
            line_no: missing.line_no,
            field: "lines",
            why: "every returned line must be inspected",
        });
    }
    Ok(())
}

/// One `ReturnRestocked` per restock location.
fn restock_events(
    order_id: OrderId,
    r: &Return,
    resellable: &[FulfillmentLine],
    policy: &ReturnsPolicy,
    now: DateTime<Utc>,
) -> Vec<OrderEvent> {
    let mut by_location: std::collections::BTreeMap<String, Vec<FulfillmentLine>> =
        Default::default();
    for line in resellable {
        let origin = r
            .requested
            .lines
            .iter()
            .find(|l| l.line_no == line.line_no)
            .map(|l| l.origin_node_id.as_str())
            .unwrap_or_default();
        by_location
            .entry(policy.restock_location(origin).to_owned())
            .or_default()
            .push(line.clone());
    }
    by_location
        .into_iter()
        .map(|(location_id, lines)| {
            OrderEvent::ReturnRestocked(ReturnRestocked {
                order_id,
                return_id: r.id().to_owned(),
                location_id,
                lines,
                restocked_at: now,
            })
        })
        .collect()
}
