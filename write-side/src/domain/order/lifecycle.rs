//! The order's own milestones: placement, confirmation (once risk, payment and stock allow it)
//! and cancellation (of the whole order until something ships; see `line_cancel`).

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waybill_schemas::events::{CaptureMode, OrderCancelled, OrderConfirmed, OrderPlaced};
use waybill_schemas::{OrderEvent, OrderId};

use super::{OrderError, OrderState, PaymentState, ReservationState};
use crate::domain::cancel::CancelOrder;
use crate::domain::place::PlaceOrder;

pub(super) fn place(order_id: OrderId, order: &PlaceOrder, now: DateTime<Utc>) -> Vec<OrderEvent> {
    let order = order.clone();
    vec![OrderEvent::OrderPlaced(OrderPlaced {
        order_id,
        channel: order.channel,
        channel_order_ref: order.channel_order_ref,
        customer: order.customer,
        currency: order.currency,
        lines: order.lines,
        discounts: order.discounts,
        shipping_address: order.shipping_address,
        billing_address: order.billing_address,
        shipping: order.shipping,
        totals: order.totals,
        payment: order.payment,
        risk_context: order.risk_context,
        pickup_store: order.pickup_store,
        placed_at: now,
    })]
}

impl OrderState {
    /// Allowed until the first capture; after that, money comes back through returns.
    pub(super) fn cancel(
        &self,
        cancellation_id: Uuid,
        cancel: &CancelOrder,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let order_id = self.order_id();
        if self.is_cancelled() {
            return Err(OrderError::AlreadyCancelled(order_id));
        }
        if self.confirmed.is_some() && self.shipped {
            return Err(OrderError::AlreadyShipped { order_id });
        }
        if self.capture_under_way() {
            // The capture may be at the gateway right now; a moment later it is a refund.
            return Err(OrderError::CaptureUnderWay { order_id });
        }
        if self.confirmed.is_some() {
            // After confirmation: every unit is withdrawn and what was captured refunded.
            return self.cancel_confirmed(cancellation_id, cancel.reason, cancel.note.clone(), now);
        }
        Ok(vec![OrderEvent::OrderCancelled(OrderCancelled {
            order_id,
            reason: cancel.reason,
            note: cancel.note.clone(),
            cancelled_at: now,
        })])
    }

    /// Needs: risk cleared, payment authorized and not lapsed (or prepaid), stock allocated (or
    /// every unit back-ordered), and no cancellation.
    pub(super) fn confirm(
        &self,
        capture_mode: CaptureMode,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        const ACTION: &str = "be confirmed";
        let order_id = self.order_id();
        if let Some(recorded) = self.confirmed {
            if recorded == capture_mode {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format_args!("a confirmation with capture {}", recorded.as_str()),
                format_args!("a confirmation with capture {}", capture_mode.as_str()),
            ));
        }
        self.ensure_not_cancelled(ACTION)?;
        let risk = self.risk();
        if !risk.is_cleared() {
            return Err(OrderError::BlockedByRisk {
                order_id,
                action: ACTION,
                risk,
            });
        }
        let payment = match self.payment() {
            // A hold that lapsed by the clock counts as expired even before that is recorded.
            PaymentState::Authorized { expires_at, .. } if expires_at <= now => {
                PaymentState::Expired
            }
            payment => payment,
        };
        if !matches!(
            payment,
            PaymentState::Prepaid | PaymentState::Authorized { .. }
        ) {
            return Err(OrderError::BlockedByPayment {
                order_id,
                action: ACTION,
                payment,
            });
        }
        let reservation = self.reservation();
        let all_backordered = matches!(reservation, ReservationState::Reserved { .. })
            && self.reserved.as_ref().is_some_and(|r| r.lines.is_empty());
        if reservation != ReservationState::Allocated && !all_backordered {
            return Err(OrderError::BlockedByStock {
                order_id,
                action: ACTION,
                reservation,
            });
        }
        Ok(vec![OrderEvent::OrderConfirmed(OrderConfirmed {
            order_id,
            capture_mode,
            confirmed_at: now,
        })])
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use waybill_schemas::events::{CancelReason, CaptureMode, ReviewDecision, RiskDecision};
    use waybill_schemas::{OrderEvent, OrderId};

    use super::super::fixtures::*;
    use super::super::*;

    const IMMEDIATE: OrderCommand = OrderCommand::Confirm {
        capture_mode: CaptureMode::Immediate,
    };

    fn order_id(order: &Order) -> OrderId {
        order.state().expect("placed").order_id()
    }

    #[test]
    fn placing_keeps_the_whole_order_and_refuses_a_second_placement() {
        let id = OrderId::new_v7();
        let mut order = Order::default();
        let events = order
            .record(&place_command(id, card()), t0())
            .expect("placed");
        assert_eq!(
            events,
            vec![OrderEvent::OrderPlaced(placed_event(id, card()))]
        );
        let state = order.state().expect("placed");
        assert_eq!(state.placed(), &placed_event(id, card()));
        assert_eq!(state.status(), OrderStatus::Placed);
        assert_eq!(state.status().as_str(), "placed");
        assert_eq!(
            order.handle(&place_command(id, card()), t0()),
            Err(OrderError::AlreadyPlaced(id))
        );
    }

    #[test]
    fn commands_on_an_empty_stream_say_there_is_no_order() {
        let id = OrderId::new_v7();
        let empty = Order::default();
        assert_eq!(
            empty.handle(&cancel_command(id, CancelReason::CustomerRequest), t0()),
            Err(OrderError::NotFound(id))
        );
        let err = empty.handle(&IMMEDIATE, t0()).expect_err("nothing placed");
        assert_eq!(
            err,
            OrderError::NotPlaced {
                action: "be confirmed"
            }
        );
        assert_eq!(
            err.to_string(),
            "no order has been placed in this stream; it cannot be confirmed"
        );
    }

    #[test]
    fn an_order_cancels_once_and_then_says_it_already_is() {
        let mut order = placed_order(card());
        let id = order_id(&order);
        order
            .record(&cancel_command(id, CancelReason::CustomerRequest), t0())
            .expect("cancelled");
        let state = order.state().expect("placed");
        assert_eq!(state.status(), OrderStatus::Cancelled);
        assert_eq!(state.cancel_reason(), Some(CancelReason::CustomerRequest));
        assert_eq!(order.version(), 2);
        assert_eq!(
            order.handle(&cancel_command(id, CancelReason::Other), t0()),
            Err(OrderError::AlreadyCancelled(id))
        );
    }

    #[test]
    fn an_order_confirmed_for_capture_on_shipment_can_still_be_cancelled_before_capture() {
        let on_shipment = OrderCommand::Confirm {
            capture_mode: CaptureMode::OnShipment,
        };
        let mut order = with(ready_to_confirm(), &[on_shipment], t0());
        let id = order_id(&order);
        order
            .record(&cancel_command(id, CancelReason::CustomerRequest), t0())
            .expect("cancel before capture");
        assert_eq!(
            order.state().map(OrderState::status),
            Some(OrderStatus::Cancelled)
        );
    }

    #[test]
    fn cancelling_an_order_confirmed_for_immediate_capture_is_refused() {
        let order = with(ready_to_confirm(), &[IMMEDIATE], t0());
        let id = order_id(&order);
        let err = order
            .handle(&cancel_command(id, CancelReason::CustomerRequest), t0())
            .expect_err("capture under way");
        assert_eq!(err, OrderError::CaptureUnderWay { order_id: id });
    }

    #[test]
    fn cancelling_after_a_capture_withdraws_every_unit_before_the_order_is_cancelled() {
        let order = with(
            ready_to_confirm(),
            &[
                IMMEDIATE,
                OrderCommand::RecordCapture {
                    authorization_id: "auth_1".into(),
                    capture_id: "cap_1".into(),
                    amount: usd(1000),
                },
            ],
            t0(),
        );
        let id = order_id(&order);
        let events = order
            .handle(&cancel_command(id, CancelReason::CustomerRequest), t0())
            .expect("nothing shipped yet");
        let kinds: Vec<&str> = events.iter().map(OrderEvent::event_type).collect();
        assert_eq!(kinds, ["OrderLinesCancelled", "OrderCancelled"]);
        let OrderEvent::OrderLinesCancelled(withdrawn) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(withdrawn.value, grand_total(), "every unit, shipping too");
        let units: u32 = withdrawn.lines.iter().map(|l| l.quantity.get()).sum();
        assert_eq!(units, 3);
    }

    #[test]
    fn confirming_a_ready_order_records_the_capture_mode_once() {
        let mut order = ready_to_confirm();
        let events = order.record(&IMMEDIATE, t0()).expect("confirmed");
        assert_eq!(events.len(), 1);
        let state = order.state().expect("placed");
        assert_eq!(state.status(), OrderStatus::Confirmed);
        assert_eq!(state.confirmed(), Some(CaptureMode::Immediate));
        assert_eq!(order.handle(&IMMEDIATE, t0()), Ok(vec![]));
        let err = order
            .handle(
                &OrderCommand::Confirm {
                    capture_mode: CaptureMode::OnShipment,
                },
                t0(),
            )
            .expect_err("other mode");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_cancelled_order_is_never_confirmed() {
        let mut order = ready_to_confirm();
        let id = order_id(&order);
        order
            .record(&cancel_command(id, CancelReason::CustomerRequest), t0())
            .expect("cancelled");
        let err = order.handle(&IMMEDIATE, t0()).expect_err("cancelled");
        assert_eq!(
            err.to_string(),
            format!("order {id} is cancelled; it cannot be confirmed")
        );
    }

    #[test]
    fn confirmation_waits_for_risk_clearance() {
        let order = with(
            placed_order(card()),
            &[OrderCommand::RecordRisk {
                decision: RiskDecision::Review,
                score: 60,
                reasons: vec![],
            }],
            t0(),
        );
        assert_eq!(
            order.state().map(OrderState::status),
            Some(OrderStatus::InReview)
        );
        assert_eq!(OrderStatus::InReview.as_str(), "in_review");
        let err = order.handle(&IMMEDIATE, t0()).expect_err("in review");
        assert!(
            matches!(
                err,
                OrderError::BlockedByRisk {
                    risk: RiskState::InReview,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err
            .to_string()
            .ends_with("cannot be confirmed while its risk is in review"));
        let approved = with(
            order,
            &[
                OrderCommand::ResolveReview {
                    decision: ReviewDecision::Approve,
                    reviewer: "agent-7".into(),
                    note: None,
                },
                reserve_all(t0() + minutes(15)),
                authorize("auth_1", t0() + Duration::days(7)),
                OrderCommand::RecordAllocation {
                    lines: full_lines(),
                },
            ],
            t0(),
        );
        assert!(approved.handle(&IMMEDIATE, t0()).is_ok());
    }

    #[test]
    fn confirmation_waits_for_an_authorization_that_has_not_lapsed() {
        let unpaid = with(
            placed_order(card()),
            &[
                accept_risk(),
                reserve_all(t0() + minutes(15)),
                OrderCommand::RecordAllocation {
                    lines: full_lines(),
                },
            ],
            t0(),
        );
        let err = unpaid.handle(&IMMEDIATE, t0()).expect_err("unpaid");
        assert!(
            matches!(
                err,
                OrderError::BlockedByPayment {
                    payment: PaymentState::None,
                    ..
                }
            ),
            "{err}"
        );
        let lapsed = ready_to_confirm()
            .handle(&IMMEDIATE, t0() + Duration::days(7))
            .expect_err("hold lapsed");
        assert!(
            matches!(
                lapsed,
                OrderError::BlockedByPayment {
                    payment: PaymentState::Expired,
                    ..
                }
            ),
            "{lapsed}"
        );
    }

    #[test]
    fn confirmation_waits_for_allocated_stock() {
        let order = with(
            placed_order(card()),
            &[
                accept_risk(),
                reserve_all(t0() + minutes(15)),
                authorize("auth_1", t0() + Duration::days(7)),
            ],
            t0(),
        );
        let err = order.handle(&IMMEDIATE, t0()).expect_err("not allocated");
        assert!(matches!(err, OrderError::BlockedByStock { .. }), "{err}");
    }

    #[test]
    fn a_fully_backordered_order_confirms_without_allocation() {
        let order = with(
            placed_order(card()),
            &[
                accept_risk(),
                OrderCommand::RecordReservation {
                    lines: vec![],
                    backordered: vec![
                        backordered_line(1, "TEE-RED-M", 2),
                        backordered_line(2, "CAP-BLUE", 1),
                    ],
                    expires_at: t0() + minutes(15),
                },
                authorize("auth_1", t0() + Duration::days(7)),
            ],
            t0(),
        );
        assert!(order.handle(&IMMEDIATE, t0()).is_ok());
    }

    #[test]
    fn prepaid_and_legacy_orders_confirm_without_an_authorization() {
        for payment in [prepaid(), None] {
            let order = with(
                placed_order(payment),
                &[
                    accept_risk(),
                    reserve_all(t0() + minutes(15)),
                    OrderCommand::RecordAllocation {
                        lines: full_lines(),
                    },
                    IMMEDIATE,
                ],
                t0(),
            );
            let state = order.state().expect("placed");
            assert_eq!(state.payment(), PaymentState::Prepaid);
            assert_eq!(state.status(), OrderStatus::Confirmed);
        }
    }
}
