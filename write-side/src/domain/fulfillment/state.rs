//! The fulfillment side of an order, folded from its stream: what was ordered and allocated,
//! the fulfillment orders and their progress, the parcels and their latest carrier scan.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use waybill_schemas::events::{
    CaptureMode, CarrierStatus, FulfillmentLine, FulfillmentRouted, NodeKind, OrderLinesCancelled,
    ProofOfDelivery, ReservedLine, RouteCause, ShipmentCreated,
};
use waybill_schemas::{OrderEvent, OrderId};

use crate::domain::returns::Returns;

/// One fulfillment order: what one node does for the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulfillmentOrder {
    pub routed: FulfillmentRouted,
    pub wms_task_id: Option<String>,
    pub picked: bool,
    pub packed: bool,
    /// Units the node reported it could not find.
    pub missing: Vec<FulfillmentLine>,
    /// Missing units neither re-routed nor cancelled yet.
    pub pending_missing: Vec<FulfillmentLine>,
    /// BOPIS: the SHA-256 of the pickup code, once ready.
    pub pickup_code_sha256: Option<String>,
    pub collect_by: Option<DateTime<Utc>>,
    pub picked_up_at: Option<DateTime<Utc>>,
    pub shipment_id: Option<String>,
    /// Units cancelled out of this fulfillment order after it was routed.
    pub withdrawn: Vec<FulfillmentLine>,
}

impl FulfillmentOrder {
    pub fn id(&self) -> &str {
        &self.routed.fulfillment_id
    }
    pub fn is_pickup(&self) -> bool {
        self.routed.node_kind == NodeKind::PickupStore
    }
    /// Units this node is to hand over: routed minus missing minus cancelled.
    pub fn effective_lines(&self) -> Vec<FulfillmentLine> {
        subtract(
            &subtract(&self.routed.lines, &self.missing),
            &self.withdrawn,
        )
    }
    /// Whether the node may still give units back: nothing packed, shipped or collected.
    pub fn accepts_withdrawal(&self) -> bool {
        !self.packed && self.shipment_id.is_none() && self.picked_up_at.is_none()
    }
}

/// One parcel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    pub created: ShipmentCreated,
    /// The latest scan by its effective time (carrier time capped at receipt, see
    /// `ShipmentTracked::effective_time`), with its id.
    pub status: Option<(CarrierStatus, DateTime<Utc>, String)>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub proof: Option<ProofOfDelivery>,
    /// Exception scans already answered (retry or alert), by carrier event id.
    pub handled_exceptions: Vec<String>,
    pub retries: u32,
    /// Carrier event ids recorded.
    pub seen: Vec<String>,
}

impl Shipment {
    pub fn current(&self) -> Option<CarrierStatus> {
        self.status.as_ref().map(|(s, _, _)| *s)
    }
}

/// The fulfillment state of one order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fulfillment {
    pub order_id: Option<OrderId>,
    pub shipping_method: String,
    /// The store the customer chose to collect a pickup order at (`OrderPlaced.pickup_store`).
    pub pickup_location: Option<String>,
    /// Units ordered, by line number, with the SKU.
    pub ordered: BTreeMap<u32, FulfillmentLine>,
    pub allocated: Vec<ReservedLine>,
    pub confirmed: Option<CaptureMode>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub cancelled: bool,
    pub orders: Vec<FulfillmentOrder>,
    pub shipments: Vec<Shipment>,
    pub cancelled_lines: Vec<FulfillmentLine>,
    /// Routing ended with units no node had (`FulfillmentLinesCancelled`).
    pub route_cancelled: bool,
    /// Cancellations of units (`OrderLinesCancelled`), and whether their node and stock work
    /// is recorded (`CancelledUnitsReleased`).
    pub cancellations: Vec<(OrderLinesCancelled, bool)>,
    /// Closed and not reopened by a return since.
    pub closed: bool,
    /// The order's returns (they reopen a closed order until they are resolved).
    pub returns: Returns,
    /// Exchanges' replacement units by return id (their lines are also in `ordered`, with
    /// line numbers from 1001), with the charge that pays their price difference, if any.
    pub replacements: Vec<Replacement>,
    /// Units each edit took out of the order (`OrderEdited`, by edit id): their stock is
    /// released when the order is routed (key `<order>:edit:<edit id>`).
    pub edit_removals: Vec<(uuid::Uuid, Vec<FulfillmentLine>)>,
    /// The gateway refused for good to capture the order's payment (its refusal code): the
    /// fulfillment is held until an agent resolves it (see write-side/FULFILLMENT.md).
    pub payment_hold: Option<String>,
    pub version: i64,
}

impl Fulfillment {
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a OrderEvent>) -> Self {
        let mut state = Self::default();
        for event in events {
            state.apply(event);
        }
        state
    }

    pub fn order(&self, fulfillment_id: &str) -> Option<&FulfillmentOrder> {
        self.orders.iter().find(|o| o.id() == fulfillment_id)
    }
    fn order_mut(&mut self, fulfillment_id: &str) -> Option<&mut FulfillmentOrder> {
        self.orders.iter_mut().find(|o| o.id() == fulfillment_id)
    }
    pub fn shipment(&self, shipment_id: &str) -> Option<&Shipment> {
        self.shipments
            .iter()
            .find(|s| s.created.shipment_id == shipment_id)
    }
    fn shipment_mut(&mut self, shipment_id: &str) -> Option<&mut Shipment> {
        self.shipments
            .iter_mut()
            .find(|s| s.created.shipment_id == shipment_id)
    }

    /// Folds one event. Never fails; events that are not about fulfillment only count.
    pub fn apply(&mut self, event: &OrderEvent) {
        self.version += 1;
        self.returns.apply(event);
        match event {
            OrderEvent::OrderPlaced(placed) => {
                self.order_id = Some(placed.order_id);
                self.shipping_method = placed.shipping.method.trim().to_ascii_lowercase();
                self.pickup_location = placed.pickup_store.as_ref().map(|s| s.location_id.clone());
                self.ordered = placed
                    .lines
                    .iter()
                    .map(|l| {
                        (
                            l.line_no,
                            FulfillmentLine {
                                line_no: l.line_no,
                                sku: l.sku.clone(),
                                quantity: l.quantity,
                            },
                        )
                    })
                    .collect();
            }
            OrderEvent::OrderCancelled(_) => self.cancelled = true,
            // An edit in the hold replaces the order's lines: routing covers the edited ones.
            OrderEvent::OrderEdited(e) => {
                let before: Vec<FulfillmentLine> = self.ordered.values().cloned().collect();
                let replacements: Vec<FulfillmentLine> = self
                    .ordered
                    .values()
                    .filter(|l| l.line_no >= waybill_schemas::events::FIRST_REPLACEMENT_LINE)
                    .cloned()
                    .collect();
                self.ordered = e
                    .lines
                    .iter()
                    .map(|l| FulfillmentLine {
                        line_no: l.line_no,
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                    })
                    .chain(replacements)
                    .map(|l| (l.line_no, l))
                    .collect();
                let after: Vec<FulfillmentLine> = self.ordered.values().cloned().collect();
                let removed = subtract(&before, &after);
                if !removed.is_empty() {
                    self.edit_removals.push((e.edit_id, removed));
                }
            }
            OrderEvent::InventoryAllocated(e) => self.allocated = e.lines.clone(),
            OrderEvent::OrderConfirmed(e) => {
                self.confirmed = Some(e.capture_mode);
                self.confirmed_at = Some(e.confirmed_at);
            }
            OrderEvent::PaymentCaptureFailed(e) => self.payment_hold = Some(e.code.clone()),
            OrderEvent::FulfillmentRouted(e) => {
                if let RouteCause::ShortPick {
                    from_fulfillment_id,
                } = &e.cause
                {
                    if let Some(from) = self.order_mut(from_fulfillment_id) {
                        from.pending_missing = subtract(&from.pending_missing, &e.lines);
                    }
                }
                self.orders.push(FulfillmentOrder {
                    routed: e.clone(),
                    wms_task_id: None,
                    picked: false,
                    packed: false,
                    missing: Vec::new(),
                    pending_missing: Vec::new(),
                    pickup_code_sha256: None,
                    collect_by: None,
                    picked_up_at: None,
                    shipment_id: None,
                    withdrawn: Vec::new(),
                })
            }
            OrderEvent::FulfillmentSubmitted(e) => {
                if let Some(o) = self.order_mut(&e.fulfillment_id) {
                    o.wms_task_id = Some(e.wms_task_id.clone());
                }
            }
            OrderEvent::FulfillmentProgressed(e) => {
                if let Some(o) = self.order_mut(&e.fulfillment_id) {
                    o.picked = true;
                    o.packed |= e.progress == waybill_schemas::events::NodeProgress::Packed;
                }
            }
            OrderEvent::FulfillmentShortPicked(e) => {
                if let Some(o) = self.order_mut(&e.fulfillment_id) {
                    o.missing = add(&o.missing, &e.missing);
                    o.pending_missing = add(&o.pending_missing, &e.missing);
                }
            }
            OrderEvent::FulfillmentLinesCancelled(e) => {
                self.route_cancelled = true;
                self.cancelled_lines = add(&self.cancelled_lines, &e.lines);
                if let Some(o) = self.order_mut(&e.fulfillment_id) {
                    o.pending_missing = subtract(&o.pending_missing, &e.lines);
                }
            }
            OrderEvent::PickupReady(e) => {
                if let Some(o) = self.order_mut(&e.fulfillment_id) {
                    o.picked = true;
                    o.packed = true;
                    o.pickup_code_sha256 = Some(e.code_sha256.clone());
                    o.collect_by = Some(e.collect_by);
                }
            }
            OrderEvent::PickupCompleted(e) => {
                if let Some(o) = self.order_mut(&e.fulfillment_id) {
                    o.picked_up_at = Some(e.picked_up_at);
                }
            }
            OrderEvent::ShipmentCreated(e) => {
                if let Some(o) = self.order_mut(&e.fulfillment_id) {
                    o.shipment_id = Some(e.shipment_id.clone());
                }
                self.shipments.push(Shipment {
                    created: e.clone(),
                    status: None,
                    delivered_at: None,
                    proof: None,
                    handled_exceptions: Vec::new(),
                    retries: 0,
                    seen: Vec::new(),
                });
            }
            OrderEvent::ShipmentTracked(e) => {
                if let Some(s) = self.shipment_mut(&e.shipment_id) {
                    s.seen.push(e.carrier_event_id.clone());
                    s.status = Some((e.status, e.effective_time(), e.carrier_event_id.clone()));
                    if e.status == CarrierStatus::Delivered {
                        // Never before its label existed: a scan dated in the distant past
                        // would otherwise close the order (and its return window) at once.
                        s.delivered_at = Some(e.effective_time().max(s.created.created_at));
                        s.proof = e.proof.clone();
                    }
                }
            }
            OrderEvent::ShipmentExceptionHandled(e) => {
                if let Some(s) = self.shipment_mut(&e.shipment_id) {
                    s.handled_exceptions.push(e.carrier_event_id.clone());
                    if e.action == waybill_schemas::events::ExceptionAction::RetryHandoff {
                        s.retries += 1;
                    }
                }
            }
            OrderEvent::OrderClosed(_) => self.closed = true,
            OrderEvent::ReturnRequested(_) => self.closed = false,
            OrderEvent::OrderLinesCancelled(e) => self.apply_line_cancellation(e),
            OrderEvent::CancelledUnitsReleased(e) => {
                for (c, released) in &mut self.cancellations {
                    if c.cancellation_id == e.cancellation_id {
                        *released = true;
                    }
                }
            }
            OrderEvent::ExchangeReplacementRequested(e) => {
                if self.replacements.iter().any(|r| r.return_id == e.return_id) {
                    return;
                }
                let lines: Vec<FulfillmentLine> = e
                    .lines
                    .iter()
                    .map(|l| FulfillmentLine {
                        line_no: l.line_no,
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                    })
                    .collect();
                for line in &lines {
                    self.ordered.insert(line.line_no, line.clone());
                }
                self.closed = false;
                self.replacements.push(Replacement {
                    return_id: e.return_id.clone(),
                    lines,
                    charge_id: e.charge_id,
                });
            }
            _ => {}
        }
    }

    /// Units of each line in each place. Every ordered unit of a routed order is in exactly
    /// one bucket (the property tests check it).
    pub fn units(&self) -> UnitBuckets {
        let mut b = UnitBuckets::default();
        for o in &self.orders {
            let effective = o.effective_lines();
            if o.picked_up_at.is_some() {
                b.collected = add(&b.collected, &effective);
            } else if let Some(s) = o.shipment_id.as_deref().and_then(|id| self.shipment(id)) {
                match s.current() {
                    Some(CarrierStatus::Delivered) => b.delivered = add(&b.delivered, &effective),
                    Some(CarrierStatus::ReturnedToSender) => {
                        b.returned_to_sender = add(&b.returned_to_sender, &effective)
                    }
                    _ => b.shipped = add(&b.shipped, &effective),
                }
            } else {
                b.at_node = add(&b.at_node, &effective);
            }
            b.awaiting_reroute = add(&b.awaiting_reroute, &o.pending_missing);
        }
        b.cancelled = self.cancelled_lines.clone();
        self.place_returned_units(&mut b);
        let placed: Vec<FulfillmentLine> = self.ordered.values().cloned().collect();
        let routed: Vec<FulfillmentLine> = [
            &b.at_node,
            &b.shipped,
            &b.delivered,
            &b.collected,
            &b.returned_to_sender,
            &b.awaiting_reroute,
            &b.cancelled,
            &b.return_requested,
            &b.returned,
            &b.restocked,
        ]
        .into_iter()
        .fold(Vec::new(), |acc, l| add(&acc, l));
        b.unrouted = subtract(&placed, &routed);
        b
    }

    /// Moves returned units out of delivered (then collected) into the return buckets: asked
    /// back, received (awaiting inspection, rejected, or accepted and not resellable or not yet
    /// restocked), restocked.
    fn place_returned_units(&self, b: &mut UnitBuckets) {
        for r in &self.returns.returns {
            let asked = r.requested_lines();
            match (&r.received, r.is_restocked()) {
                (None, _) if r.inspected.is_none() => {
                    b.return_requested = add(&b.return_requested, &asked)
                }
                (_, true) => {
                    let back: Vec<FulfillmentLine> = r
                        .restocked
                        .iter()
                        .fold(Vec::new(), |acc, e| add(&acc, &e.lines));
                    b.restocked = add(&b.restocked, &back);
                    b.returned = add(&b.returned, &subtract(&asked, &back));
                }
                _ => b.returned = add(&b.returned, &asked),
            }
            // The units come out of delivered, then collected; should a later carrier scan
            // have moved their parcel out of delivered, out of wherever it now counts them.
            let mut rest = asked;
            for bucket in [
                &mut b.delivered,
                &mut b.collected,
                &mut b.shipped,
                &mut b.returned_to_sender,
            ] {
                let taken = intersect(bucket, &rest);
                *bucket = subtract(bucket, &taken);
                rest = subtract(&rest, &taken);
            }
        }
    }

    /// Whether the order was routed (to nodes, or cancelled because no node had it).
    pub fn is_routed(&self) -> bool {
        !self.orders.is_empty() || self.route_cancelled
    }

    /// The units the first routing covers: ordered minus those cancelled before it.
    pub fn to_route(&self) -> Vec<FulfillmentLine> {
        let ordered: Vec<FulfillmentLine> = self.ordered.values().cloned().collect();
        subtract(&ordered, &self.cancelled_lines)
    }

    /// Every unit ordered was cancelled (by the customer or an agent, an uncollected pickup, a
    /// short pick nobody could fill): nothing of the order is left to hand over.
    pub fn nothing_left(&self) -> bool {
        !self.ordered.is_empty() && total(&self.to_route()) == 0
    }

    fn apply_line_cancellation(&mut self, e: &OrderLinesCancelled) {
        for units in &e.lines {
            let line = FulfillmentLine {
                line_no: units.line_no,
                sku: units.sku.clone(),
                quantity: units.quantity,
            };
            self.cancelled_lines = add(&self.cancelled_lines, std::slice::from_ref(&line));
            if let Some(o) = units
                .fulfillment_id
                .as_deref()
                .and_then(|id| self.order_mut(id))
            {
                o.withdrawn = add(&o.withdrawn, &[line]);
            }
        }
        self.cancellations.push((e.clone(), false));
    }

    /// Units of each line that may still be cancelled, and where they are: not routed yet
    /// (`None`) or at a node that has packed nothing of them yet.
    pub fn cancellable(&self) -> Vec<(Option<String>, FulfillmentLine)> {
        let mut out: Vec<(Option<String>, FulfillmentLine)> = Vec::new();
        if !self.is_routed() {
            out.extend(self.to_route().into_iter().map(|l| (None, l)));
        }
        for o in self.orders.iter().filter(|o| o.accepts_withdrawal()) {
            out.extend(
                o.effective_lines()
                    .into_iter()
                    .map(|l| (Some(o.id().to_owned()), l)),
            );
        }
        out
    }

    /// Whether every unit is delivered, collected, returned to sender or cancelled.
    pub fn is_settled(&self) -> bool {
        let b = self.units();
        let open = [&b.unrouted, &b.at_node, &b.shipped, &b.awaiting_reroute];
        self.is_routed() && open.iter().all(|l| total(l) == 0)
    }

    /// When every unit is delivered, collected or cancelled and at least one was handed over:
    /// the time of the last handover.
    pub fn fully_delivered(&self) -> Option<DateTime<Utc>> {
        let b = self.units();
        if !self.is_settled() || total(&b.returned_to_sender) > 0 {
            return None;
        }
        let pickups = self.orders.iter().filter_map(|o| o.picked_up_at);
        let deliveries = self.shipments.iter().filter_map(|s| s.delivered_at);
        pickups.chain(deliveries).max()
    }
}

/// An exchange's replacement units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub return_id: String,
    pub lines: Vec<FulfillmentLine>,
    /// The extra charge for the price difference; the replacement waits until a charge for
    /// this return is captured.
    pub charge_id: Option<uuid::Uuid>,
}

impl Fulfillment {
    /// The next replacement to route: not routed yet, and its price difference (if any) paid
    /// by a captured charge for its return (the original, or an agent's new attempt).
    pub fn replacement_to_route(&self) -> Option<&Replacement> {
        self.replacements.iter().find(|r| {
            let routed = self.orders.iter().any(|o| {
                matches!(&o.routed.cause, RouteCause::Exchange { return_id } if *return_id == r.return_id)
            }) || self.cancelled_lines.iter().any(|c| r.lines.iter().any(|l| l.line_no == c.line_no));
            let paid = r.charge_id.is_none()
                || self.returns.ledger.charges().any(|c| {
                    c.return_id.as_deref() == Some(r.return_id.as_str())
                        && matches!(c.status, crate::domain::ledger::ChargeStatus::Captured { .. })
                });
            !routed && paid
        })
    }
}

/// Where the units of an order are, line by line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitBuckets {
    /// Confirmed but not yet given to a node.
    pub unrouted: Vec<FulfillmentLine>,
    /// Allocated at a node: waiting, picked or packed.
    pub at_node: Vec<FulfillmentLine>,
    /// In a parcel on its way.
    pub shipped: Vec<FulfillmentLine>,
    pub delivered: Vec<FulfillmentLine>,
    /// BOPIS units collected in store.
    pub collected: Vec<FulfillmentLine>,
    pub returned_to_sender: Vec<FulfillmentLine>,
    /// Short-picked, neither re-routed nor cancelled yet.
    pub awaiting_reroute: Vec<FulfillmentLine>,
    pub cancelled: Vec<FulfillmentLine>,
    /// Delivered or collected, asked back by a return not yet received.
    pub return_requested: Vec<FulfillmentLine>,
    /// Back with us: awaiting inspection, rejected, or accepted but not (yet) restocked.
    pub returned: Vec<FulfillmentLine>,
    /// Accepted, resellable and on hand again.
    pub restocked: Vec<FulfillmentLine>,
}

/// Total units in `lines`.
pub fn total(lines: &[FulfillmentLine]) -> u32 {
    lines.iter().map(|l| l.quantity.get()).sum()
}

fn per_line(lines: &[FulfillmentLine]) -> BTreeMap<u32, (FulfillmentLine, i64)> {
    let mut map: BTreeMap<u32, (FulfillmentLine, i64)> = BTreeMap::new();
    for l in lines {
        map.entry(l.line_no)
            .and_modify(|(_, n)| *n += i64::from(l.quantity.get()))
            .or_insert((l.clone(), i64::from(l.quantity.get())));
    }
    map
}

fn from_map(map: BTreeMap<u32, (FulfillmentLine, i64)>) -> Vec<FulfillmentLine> {
    map.into_values()
        .filter_map(|(line, n)| {
            waybill_schemas::Quantity::parse(n)
                .ok()
                .map(|quantity| FulfillmentLine { quantity, ..line })
        })
        .collect()
}

/// `a + b`, merged by line number.
pub fn add(a: &[FulfillmentLine], b: &[FulfillmentLine]) -> Vec<FulfillmentLine> {
    from_map(per_line(&[a, b].concat()))
}

/// `a − b` by line number, never below zero per line.
pub fn subtract(a: &[FulfillmentLine], b: &[FulfillmentLine]) -> Vec<FulfillmentLine> {
    let mut map = per_line(a);
    for (no, (_, n)) in per_line(b) {
        if let Some((_, have)) = map.get_mut(&no) {
            *have -= n;
        }
    }
    from_map(map)
}

/// Per line, the smaller of `a` and `b`.
pub fn intersect(a: &[FulfillmentLine], b: &[FulfillmentLine]) -> Vec<FulfillmentLine> {
    subtract(a, &subtract(a, b))
}

/// Whether `part` fits in `whole` line by line.
pub fn contains(whole: &[FulfillmentLine], part: &[FulfillmentLine]) -> bool {
    let whole = per_line(whole);
    per_line(part)
        .iter()
        .all(|(no, (_, n))| whole.get(no).is_some_and(|(_, have)| have >= n))
}
