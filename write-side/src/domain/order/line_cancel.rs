//! Cancelling units of a confirmed order that have not shipped, and what the order is then
//! worth.
//!
//! The order's **current total** is what the customer pays for the units still in it: each
//! line's paid total (after its discount, with its tax) in proportion to the units left, less
//! the same share of the order-level discounts, plus shipping while anything is left to ship.
//! Every cancellation is worth the drop it causes in that total, so the values of successive
//! cancellations add up to exactly what the order was placed for once nothing is left. The
//! checkout flow turns the difference into money: a capture is never more than the current
//! total, and what was captured above it is refunded (`RefundKind::Cancellation`).
//! Units the fulfillment cancels on its own (`FulfillmentLinesCancelled`: short pick nobody can
//! fill, uncollected pickup) lower the current total the same way.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waybill_schemas::events::{
    CancelReason, CancelledUnits, FulfillmentLine, OrderCancelled, OrderLinesCancelled, RefundKind,
};
use waybill_schemas::{Money, OrderEvent, Quantity};

use super::{OrderError, OrderState, PaymentState};
use crate::domain::fulfillment::{subtract, total};

/// A validated request to cancel units: `lines[i]` of the request is `lines[i]` here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelLines {
    pub lines: Vec<LineQuantity>,
    pub reason: CancelReason,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineQuantity {
    pub line_no: u32,
    pub quantity: Quantity,
}

impl OrderState {
    /// Units of each line still in the order: ordered minus cancelled (by anyone).
    pub fn remaining_units(&self) -> BTreeMap<u32, u32> {
        let ordered: Vec<FulfillmentLine> = self.fulfillment.ordered.values().cloned().collect();
        let left = subtract(&ordered, &self.fulfillment.cancelled_lines);
        self.placed
            .lines
            .iter()
            .map(|l| {
                let units = left
                    .iter()
                    .find(|r| r.line_no == l.line_no)
                    .map_or(0, |r| r.quantity.get());
                (l.line_no, units)
            })
            .collect()
    }

    /// What the customer pays for the units still in the order (see the module doc).
    pub fn current_total(&self) -> Money {
        Money::new(
            self.total_for(&self.remaining_units()),
            self.placed.currency,
        )
    }

    /// The price of the order if only `remaining` units of each line were left.
    fn total_for(&self, remaining: &BTreeMap<u32, u32>) -> i64 {
        if remaining.values().all(|n| *n == 0) {
            return 0;
        }
        let all: BTreeMap<u32, u32> = self
            .placed
            .lines
            .iter()
            .map(|l| (l.line_no, l.quantity.get()))
            .collect();
        let merchandise_all = self.merchandise_for(&all);
        let shipping = self.placed.totals.grand_total.minor - merchandise_all;
        self.merchandise_for(remaining) + shipping
    }

    /// Line totals in proportion to the units left, less that share of order discounts.
    fn merchandise_for(&self, remaining: &BTreeMap<u32, u32>) -> i64 {
        let lines_total: i128 = self
            .placed
            .lines
            .iter()
            .map(|l| i128::from(l.total.minor))
            .sum();
        let kept: i128 = self
            .placed
            .lines
            .iter()
            .map(|l| {
                let left = i128::from(remaining.get(&l.line_no).copied().unwrap_or(0));
                i128::from(l.total.minor) * left / i128::from(l.quantity.get().max(1))
            })
            .sum();
        let order_discounts: i128 = self
            .placed
            .discounts
            .iter()
            .map(|d| i128::from(d.amount.minor))
            .sum::<i128>()
            .clamp(0, lines_total.max(0));
        let discount_share = if lines_total > 0 {
            order_discounts * kept / lines_total
        } else {
            0
        };
        i64::try_from(kept - discount_share).unwrap_or(i64::MAX)
    }

    /// Captured money above the current total that no cancellation refund has asked back yet
    /// (a failed one counts as asked: agents see it and decide; the flow does not loop).
    pub fn cancellation_refund_owed(&self) -> Money {
        let asked: i64 = self
            .ledger
            .refunds()
            .filter(|r| r.kind == RefundKind::Cancellation)
            .map(|r| r.amount.minor)
            .sum();
        // Extra charges (an exchange's price difference) pay for replacements, not for the
        // order's own units, so they are not part of what a cancellation can owe back.
        let own_captures = self.ledger.captured_minor() - self.ledger.charged_minor();
        let above = own_captures - self.current_total().minor;
        let owed = (above - asked).min(self.ledger.refundable_minor()).max(0);
        Money::new(owed, self.placed.currency)
    }

    /// Decides a cancellation of units: each requested line must exist and have that many
    /// units neither shipped, collected, packed nor cancelled.
    pub(super) fn cancel_lines(
        &self,
        cancellation_id: Uuid,
        request: &CancelLines,
        requested_by: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let order_id = self.order_id();
        self.ensure_cancellable_stage("cancel lines")?;
        // (where, line, units not yet taken by an earlier entry of the request)
        let mut available: Vec<(Option<String>, FulfillmentLine, u32)> = self
            .fulfillment
            .cancellable()
            .into_iter()
            .map(|(at, l)| {
                let n = l.quantity.get();
                (at, l, n)
            })
            .collect();
        let mut taken: Vec<CancelledUnits> = Vec::new();
        for (i, asked) in request.lines.iter().enumerate() {
            let Some(line) = self
                .placed
                .lines
                .iter()
                .find(|l| l.line_no == asked.line_no)
            else {
                return Err(OrderError::LinesNotCancellable {
                    order_id,
                    field: format!("lines[{i}].line_no"),
                    detail: format!("order {order_id} has no line {}", asked.line_no),
                });
            };
            let mut wanted = asked.quantity.get();
            let free: u32 = available
                .iter()
                .filter(|(_, l, _)| l.line_no == asked.line_no)
                .map(|(_, _, n)| *n)
                .sum();
            if wanted > free {
                return Err(OrderError::LinesNotCancellable {
                    order_id,
                    field: format!("lines[{i}].quantity"),
                    detail: format!(
                        "only {free} of the {} units of line {} can still be cancelled; the others are cancelled already, packed or shipped",
                        line.quantity.get(),
                        asked.line_no
                    ),
                });
            }
            for (fulfillment_id, _, left) in available
                .iter_mut()
                .filter(|(_, l, _)| l.line_no == asked.line_no)
            {
                let take = wanted.min(*left);
                let Ok(quantity) = Quantity::parse(i64::from(take)) else {
                    continue;
                };
                wanted -= take;
                *left -= take;
                taken.push(CancelledUnits {
                    line_no: line.line_no,
                    sku: line.sku.clone(),
                    quantity,
                    fulfillment_id: fulfillment_id.clone(),
                });
            }
        }
        let cancelled = self.lines_cancelled(
            cancellation_id,
            taken,
            request.reason,
            request.note.clone(),
            requested_by,
            now,
        );
        // The last units left: the order is cancelled with them (one decision, shared with the
        // fulfillment's own cancellations).
        Ok(self
            .fulfillment
            .cancel_when_nothing_left(vec![cancelled], now))
    }

    /// Cancelling a whole confirmed order: every unit left, if none has left a node yet.
    pub(super) fn cancel_confirmed(
        &self,
        cancellation_id: Uuid,
        reason: CancelReason,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let order_id = self.order_id();
        self.ensure_cancellable_stage("be cancelled")?;
        if self.shipped {
            return Err(OrderError::AlreadyShipped { order_id });
        }
        let available = self.fulfillment.cancellable();
        let left = total(&subtract(
            &self
                .fulfillment
                .ordered
                .values()
                .cloned()
                .collect::<Vec<_>>(),
            &self.fulfillment.cancelled_lines,
        ));
        let cancellable: u32 = available.iter().map(|(_, l)| l.quantity.get()).sum();
        if cancellable < left {
            return Err(OrderError::AlreadyShipped { order_id });
        }
        let units = available
            .into_iter()
            .map(|(fulfillment_id, l)| CancelledUnits {
                line_no: l.line_no,
                sku: l.sku,
                quantity: l.quantity,
                fulfillment_id,
            })
            .collect::<Vec<_>>();
        let mut events = Vec::new();
        if !units.is_empty() {
            events.push(self.lines_cancelled(
                cancellation_id,
                units,
                reason,
                note.clone(),
                "order cancellation",
                now,
            ));
        }
        events.push(OrderEvent::OrderCancelled(OrderCancelled {
            order_id,
            reason,
            note,
            cancelled_at: now,
        }));
        Ok(events)
    }

    pub(super) fn ensure_cancellable_stage(&self, action: &'static str) -> Result<(), OrderError> {
        let order_id = self.order_id();
        if self.is_cancelled() {
            return Err(OrderError::AlreadyCancelled(order_id));
        }
        if self.confirmed.is_none() {
            return Err(OrderError::NotConfirmed { order_id, action });
        }
        if self.fulfillment.closed {
            return Err(OrderError::Closed { order_id });
        }
        Ok(())
    }

    fn lines_cancelled(
        &self,
        cancellation_id: Uuid,
        lines: Vec<CancelledUnits>,
        reason: CancelReason,
        note: Option<String>,
        requested_by: &str,
        now: DateTime<Utc>,
    ) -> OrderEvent {
        let before = self.remaining_units();
        let mut after = before.clone();
        for l in &lines {
            if let Some(n) = after.get_mut(&l.line_no) {
                *n = n.saturating_sub(l.quantity.get());
            }
        }
        let value = self.total_for(&before) - self.total_for(&after);
        OrderEvent::OrderLinesCancelled(OrderLinesCancelled {
            order_id: self.order_id(),
            cancellation_id,
            lines,
            reason,
            note,
            value: Money::new(value.max(0), self.placed.currency),
            requested_by: requested_by.to_owned(),
            cancelled_at: now,
        })
    }

    /// What cancelling `units` (of the units left) would take off the current total.
    pub fn cancellation_value(&self, units: &[FulfillmentLine]) -> Money {
        let before = self.remaining_units();
        let mut after = before.clone();
        for l in units {
            if let Some(n) = after.get_mut(&l.line_no) {
                *n = n.saturating_sub(l.quantity.get());
            }
        }
        Money::new(
            (self.total_for(&before) - self.total_for(&after)).max(0),
            self.placed.currency,
        )
    }

    /// What checkout captures now: the current total less what is captured, never more than
    /// the hold has left.
    pub fn amount_to_capture(&self) -> Money {
        let due = self.current_total().minor - self.captured_total().minor;
        Money::new(
            due.min(self.capturable().minor).max(0),
            self.placed.currency,
        )
    }

    /// Every unit was cancelled before anything was captured: the hold is to be voided.
    pub fn nothing_left_to_capture(&self) -> bool {
        self.current_total().minor == 0
            && self.captures.is_empty()
            && matches!(self.payment(), PaymentState::Authorized { .. })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;
    use waybill_schemas::events::{
        CaptureMode, FulfillmentRouted, NodeKind, NodeProgress, RouteCause, ShipmentCreated,
    };
    use waybill_schemas::{OrderId, Sku};

    use super::super::fixtures::*;
    use super::super::*;
    use super::*;

    fn confirmed(mode: CaptureMode) -> Order {
        with(
            ready_to_confirm(),
            &[OrderCommand::Confirm { capture_mode: mode }],
            t0(),
        )
    }

    fn id(order: &Order) -> OrderId {
        order.state().expect("placed").order_id()
    }

    fn cancel(lines: &[(u32, i64)]) -> OrderCommand {
        OrderCommand::CancelLines {
            cancellation_id: Uuid::now_v7(),
            cancel: CancelLines {
                lines: lines
                    .iter()
                    .map(|(line_no, q)| LineQuantity {
                        line_no: *line_no,
                        quantity: Quantity::parse(*q).expect("valid quantity"),
                    })
                    .collect(),
                reason: CancelReason::CustomerRequest,
                note: None,
            },
            requested_by: "agent-7".into(),
        }
    }

    fn value_of(events: &[OrderEvent]) -> i64 {
        events
            .iter()
            .filter_map(|e| match e {
                OrderEvent::OrderLinesCancelled(c) => Some(c.value.minor),
                _ => None,
            })
            .sum()
    }

    fn fline(line_no: u32, sku: &str, quantity: u32) -> FulfillmentLine {
        FulfillmentLine {
            line_no,
            sku: Sku::parse(sku).expect("valid sku"),
            quantity: Quantity::parse(i64::from(quantity)).expect("valid quantity"),
        }
    }

    /// Routes the tee line to F1 and the cap to F2, then ships F1.
    fn route_and_ship_the_tees(order: &mut Order) {
        let order_id = id(order);
        let routed = |n: usize, lines: Vec<FulfillmentLine>| {
            OrderEvent::FulfillmentRouted(FulfillmentRouted {
                order_id,
                fulfillment_id: format!("{order_id}-F{n}"),
                node_id: "wh-1".into(),
                node_kind: NodeKind::Warehouse,
                carrier: "ups".into(),
                zone_distance: 1,
                lines,
                rule: "default".into(),
                score: vec![],
                total_score: 0,
                eta: t0(),
                cause: RouteCause::Confirmation,
                pickup: None,
                routed_at: t0(),
            })
        };
        for event in [
            routed(1, vec![fline(1, "TEE-RED-M", 2)]),
            routed(2, vec![fline(2, "CAP-BLUE", 1)]),
            OrderEvent::ShipmentCreated(ShipmentCreated {
                order_id,
                shipment_id: format!("{order_id}-F1-S1"),
                fulfillment_id: format!("{order_id}-F1"),
                carrier: "ups".into(),
                tracking_number: "1Z".into(),
                tracking_url: "https://example.com/1Z".into(),
                label_url: "https://example.com/1Z.pdf".into(),
                lines: vec![fline(1, "TEE-RED-M", 2)],
                eta: t0(),
                created_at: t0(),
            }),
        ] {
            order.apply(&event);
        }
    }

    #[test]
    fn cancellations_are_worth_their_share_and_add_up_to_the_grand_total() {
        let mut order = confirmed(CaptureMode::OnShipment);
        let first = order.record(&cancel(&[(1, 1)]), t0()).expect("cancelled");
        // 1 of 2 tees: 16.20 of line totals, less its share of the 5.00 code.
        assert_eq!(value_of(&first), 1427);
        let state = order.state().expect("placed");
        assert_eq!(state.current_total(), usd(4212 - 1427));
        assert_eq!(state.amount_to_capture(), usd(4212 - 1427));
        let rest = order
            .record(&cancel(&[(1, 1), (2, 1)]), t0())
            .expect("cancelled");
        assert_eq!(value_of(&first) + value_of(&rest), grand_total().minor);
        let state = order.state().expect("placed");
        assert_eq!(state.current_total(), usd(0));
        assert!(state.nothing_left_to_capture());
    }

    #[test]
    fn the_cancellation_that_takes_the_last_units_cancels_the_order() {
        let mut order = confirmed(CaptureMode::Immediate);
        let some = order.record(&cancel(&[(1, 1)]), t0()).expect("cancelled");
        assert_eq!(kinds(&some), ["OrderLinesCancelled"]);
        assert!(!order.state().expect("placed").is_cancelled());
        let rest = order
            .record(&cancel(&[(1, 1), (2, 1)]), t0())
            .expect("cancelled");
        assert_eq!(kinds(&rest), ["OrderLinesCancelled", "OrderCancelled"]);
        let OrderEvent::OrderCancelled(cancelled) = &rest[1] else {
            panic!("{rest:?}")
        };
        assert_eq!(cancelled.reason, CancelReason::CustomerRequest);
        assert_eq!(cancelled.cancelled_at, t0());
        let state = order.state().expect("placed");
        assert_eq!(state.status(), OrderStatus::Cancelled);
        assert_eq!(
            order.handle(&cancel(&[(1, 1)]), t0()),
            Err(OrderError::AlreadyCancelled(id(&order)))
        );
    }

    #[test]
    fn deciding_twice_on_the_same_input_gives_the_same_events() {
        let order = confirmed(CaptureMode::OnShipment);
        let whole = cancel_command(id(&order), CancelReason::CustomerRequest);
        assert_eq!(order.handle(&whole, t0()), order.handle(&whole, t0()));
        let lines = cancel(&[(1, 2), (2, 1)]);
        assert_eq!(order.handle(&lines, t0()), order.handle(&lines, t0()));
        let events = order.handle(&whole, t0()).expect("cancelled");
        let OrderEvent::OrderLinesCancelled(withdrawn) = &events[0] else {
            panic!("{events:?}")
        };
        let OrderCommand::Cancel {
            cancellation_id, ..
        } = whole
        else {
            unreachable!()
        };
        assert_eq!(
            withdrawn.cancellation_id, cancellation_id,
            "the id is the caller's"
        );
    }

    fn kinds(events: &[OrderEvent]) -> Vec<&'static str> {
        events.iter().map(OrderEvent::event_type).collect()
    }

    #[test]
    fn lines_of_an_unconfirmed_order_are_not_cancelled_one_by_one() {
        let order = ready_to_confirm();
        let err = order.handle(&cancel(&[(1, 1)]), t0()).expect_err("refused");
        assert!(matches!(err, OrderError::NotConfirmed { .. }), "{err}");
    }

    #[test]
    fn an_unknown_line_or_too_many_units_are_refused_naming_the_field() {
        let order = confirmed(CaptureMode::OnShipment);
        let field = |command| match order.handle(&command, t0()) {
            Err(OrderError::LinesNotCancellable { field, .. }) => field,
            other => panic!("expected a field refusal, got {other:?}"),
        };
        assert_eq!(field(cancel(&[(9, 1)])), "lines[0].line_no");
        assert_eq!(field(cancel(&[(2, 1), (1, 3)])), "lines[1].quantity");
        // The same line twice counts both entries.
        assert_eq!(field(cancel(&[(1, 2), (1, 1)])), "lines[1].quantity");
    }

    #[test]
    fn shipped_units_are_refused_and_the_unshipped_line_is_cancelled_from_its_node() {
        let mut order = confirmed(CaptureMode::Immediate);
        route_and_ship_the_tees(&mut order);
        let err = order.handle(&cancel(&[(1, 1)]), t0()).expect_err("shipped");
        match err {
            OrderError::LinesNotCancellable { field, detail, .. } => {
                assert_eq!(field, "lines[0].quantity");
                assert!(
                    detail.contains("only 0 of the 2 units of line 1"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
        let events = order
            .record(&cancel(&[(2, 1)]), t0())
            .expect("cap cancelled");
        let OrderEvent::OrderLinesCancelled(c) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(
            c.lines[0].fulfillment_id.as_deref(),
            Some(format!("{}-F2", id(&order)).as_str())
        );
        // The whole order can no longer be cancelled: a parcel left.
        assert_eq!(
            order.handle(&cancel_command(id(&order), CancelReason::Other), t0()),
            Err(OrderError::AlreadyShipped {
                order_id: id(&order)
            })
        );
    }

    #[test]
    fn a_packed_node_keeps_its_units() {
        let mut order = confirmed(CaptureMode::OnShipment);
        route_and_ship_the_tees(&mut order);
        let order_id = id(&order);
        order.apply(&OrderEvent::FulfillmentProgressed(
            waybill_schemas::events::FulfillmentProgressed {
                order_id,
                fulfillment_id: format!("{order_id}-F2"),
                progress: NodeProgress::Packed,
                reported_at: t0(),
            },
        ));
        assert!(matches!(
            order.handle(&cancel(&[(2, 1)]), t0()),
            Err(OrderError::LinesNotCancellable { .. })
        ));
    }

    #[test]
    fn cancelling_a_captured_order_owes_a_cancellation_refund_once() {
        let order = with(
            confirmed(CaptureMode::Immediate),
            &[OrderCommand::RecordCapture {
                authorization_id: "auth_1".into(),
                capture_id: "cap_1".into(),
                amount: grand_total(),
            }],
            t0(),
        );
        let mut order = with(
            order.clone(),
            &[cancel_command(id(&order), CancelReason::CustomerRequest)],
            t0(),
        );
        let state = order.state().expect("placed");
        assert!(state.is_cancelled());
        assert_eq!(state.current_total(), usd(0));
        assert_eq!(state.cancellation_refund_owed(), grand_total());
        order
            .record(
                &OrderCommand::RequestRefund {
                    refund_id: Uuid::now_v7(),
                    amount: grand_total(),
                    kind: RefundKind::Cancellation,
                    reason: "cancelled".into(),
                    requested_by: "checkout".into(),
                },
                t0() + Duration::seconds(1),
            )
            .expect("refund requested");
        assert_eq!(
            order.state().expect("placed").cancellation_refund_owed(),
            usd(0)
        );
    }

    proptest! {
        /// Whatever units are cancelled in whatever order: each unit is cancelled at most once,
        /// the cancellations' values add up to what the order lost, and what is owed back never
        /// exceeds what was captured.
        #[test]
        fn cancelled_units_and_values_add_up(
            captured in prop::bool::ANY,
            steps in prop::collection::vec((1_u32..=3, 1_i64..=3), 0..8),
        ) {
            let mut order = confirmed(CaptureMode::Immediate);
            if captured {
                order = with(order, &[OrderCommand::RecordCapture {
                    authorization_id: "auth_1".into(),
                    capture_id: "cap_1".into(),
                    amount: grand_total(),
                }], t0());
            }
            let mut value = 0;
            for (line_no, quantity) in steps {
                if let Ok(events) = order.record(&cancel(&[(line_no, quantity)]), t0()) {
                    value += value_of(&events);
                }
                let state = order.state().expect("placed");
                let remaining: u32 = state.remaining_units().values().sum();
                let cancelled = crate::domain::fulfillment::total(
                    &state.fulfillment().cancelled_lines,
                );
                prop_assert_eq!(remaining + cancelled, 3);
                prop_assert_eq!(grand_total().minor - state.current_total().minor, value);
                prop_assert!(value >= 0 && value <= grand_total().minor);
                let owed = state.cancellation_refund_owed().minor;
                prop_assert!(owed <= state.ledger().captured_minor());
                prop_assert_eq!(owed, if captured { value } else { 0 });
                prop_assert!(state.amount_to_capture().minor <= state.current_total().minor);
            }
        }
    }
}
