//! The order aggregate: `none → placed → cancelled`.
//!
//! [`Order::handle`] decides which events a command produces (or why it is refused) without
//! changing anything; [`Order::apply`] folds an event into the state and never fails. An order's
//! state is the fold of its stream, so `version` is the number of events applied.

use chrono::{DateTime, Utc};
use waybill_schemas::events::{CancelReason, OrderCancelled, OrderPlaced, Totals};
use waybill_schemas::{Channel, OrderEvent, OrderId};

use super::cancel::CancelOrder;
use super::place::PlaceOrder;

/// Where an order is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Placed,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a caller asks of an order. Ids are chosen by the caller, not the aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderCommand {
    Place {
        order_id: OrderId,
        order: Box<PlaceOrder>,
    },
    Cancel {
        order_id: OrderId,
        cancel: CancelOrder,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order {0} does not exist")]
    NotFound(OrderId),
    #[error("order {0} already exists")]
    AlreadyPlaced(OrderId),
    #[error("order {0} is already cancelled")]
    AlreadyCancelled(OrderId),
}

/// What the aggregate remembers about a placed order.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedOrder {
    pub order_id: OrderId,
    pub channel: Channel,
    pub status: OrderStatus,
    pub totals: Totals,
    pub cancel_reason: Option<CancelReason>,
}

/// An order's state: `None` until its `OrderPlaced` is applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Order {
    state: Option<PlacedOrder>,
    version: i64,
}

impl Order {
    /// The state after applying `events` in order.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a OrderEvent>) -> Self {
        let mut order = Self::default();
        for event in events {
            order.apply(event);
        }
        order
    }

    /// Number of events applied: the stream version the next event must follow.
    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn state(&self) -> Option<&PlacedOrder> {
        self.state.as_ref()
    }

    /// Decides the events `command` produces at time `now`, or why it is refused.
    pub fn handle(
        &self,
        command: &OrderCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        match (command, &self.state) {
            (OrderCommand::Place { order_id, .. }, Some(_)) => {
                Err(OrderError::AlreadyPlaced(*order_id))
            }
            (OrderCommand::Place { order_id, order }, None) => {
                let order = order.as_ref().clone();
                Ok(vec![OrderEvent::OrderPlaced(OrderPlaced {
                    order_id: *order_id,
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
                    placed_at: now,
                })])
            }
            (OrderCommand::Cancel { order_id, .. }, None) => Err(OrderError::NotFound(*order_id)),
            (OrderCommand::Cancel { order_id, .. }, Some(placed))
                if placed.status == OrderStatus::Cancelled =>
            {
                Err(OrderError::AlreadyCancelled(*order_id))
            }
            (OrderCommand::Cancel { order_id, cancel }, Some(_)) => {
                Ok(vec![OrderEvent::OrderCancelled(OrderCancelled {
                    order_id: *order_id,
                    reason: cancel.reason,
                    note: cancel.note.clone(),
                    cancelled_at: now,
                })])
            }
        }
    }

    /// Folds one event into the state. Never fails: events are facts.
    pub fn apply(&mut self, event: &OrderEvent) {
        self.version += 1;
        match event {
            OrderEvent::OrderPlaced(placed) => {
                self.state = Some(PlacedOrder {
                    order_id: placed.order_id,
                    channel: placed.channel,
                    status: OrderStatus::Placed,
                    totals: placed.totals.clone(),
                    cancel_reason: None,
                });
            }
            OrderEvent::OrderCancelled(cancelled) => {
                if let Some(state) = &mut self.state {
                    state.status = OrderStatus::Cancelled;
                    state.cancel_reason = Some(cancelled.reason);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::place::parse_place_order;
    use proptest::prelude::*;
    use serde_json::json;

    fn place_order() -> PlaceOrder {
        parse_place_order(&json!({"channel":"app","channel_order_ref":"A-1","currency":"EUR",
            "customer":{"name":"Ada","email":"ada@example.com"},
            "lines":[{"sku":"S","name":"s","quantity":3,"unit_price_minor":999,"discount_minor":99,"tax_minor":180}],
            "discounts":[{"code":"X","amount_minor":100}],
            "shipping_address":{"name":"Ada","line1":"1","city":"c","postal_code":"10115","country":"DE"},
            "shipping":{"method":"std","price_minor":450,"tax_minor":50},
            "payment":{"method":"prepaid","reference":"R-1"}}))
        .expect("valid sample")
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid time")
    }

    fn place(id: OrderId) -> OrderCommand {
        OrderCommand::Place {
            order_id: id,
            order: Box::new(place_order()),
        }
    }

    fn cancel(id: OrderId) -> OrderCommand {
        OrderCommand::Cancel {
            order_id: id,
            cancel: CancelOrder {
                reason: CancelReason::CustomerRequest,
                note: None,
            },
        }
    }

    #[test]
    fn cancelling_an_unknown_order_says_it_does_not_exist() {
        let id = OrderId::new_v7();
        assert_eq!(
            Order::default().handle(&cancel(id), now()),
            Err(OrderError::NotFound(id))
        );
    }

    #[test]
    fn a_placed_order_cancels_once_and_then_says_why_not() {
        let id = OrderId::new_v7();
        let mut order = Order::default();
        for event in order.handle(&place(id), now()).expect("placed") {
            order.apply(&event);
        }
        assert_eq!(order.state().map(|s| s.status), Some(OrderStatus::Placed));
        for event in order.handle(&cancel(id), now()).expect("cancelled") {
            order.apply(&event);
        }
        assert_eq!(order.version(), 2);
        assert_eq!(
            order.handle(&cancel(id), now()),
            Err(OrderError::AlreadyCancelled(id))
        );
        assert_eq!(
            order.handle(&place(id), now()),
            Err(OrderError::AlreadyPlaced(id))
        );
    }

    proptest! {
        #[test]
        fn random_command_sequences_keep_the_invariants(commands in prop::collection::vec(any::<bool>(), 0..30)) {
            let id = OrderId::new_v7();
            let mut order = Order::default();
            let mut was_cancelled = false;
            for is_place in commands {
                let command = if is_place { place(id) } else { cancel(id) };
                let before = order.version();
                match order.handle(&command, now()) {
                    Ok(events) => {
                        for event in &events {
                            if was_cancelled {
                                prop_assert!(!matches!(event, OrderEvent::OrderPlaced(_)), "placed after cancel");
                            }
                            order.apply(event);
                        }
                        prop_assert_eq!(order.version(), before + events.len() as i64);
                    }
                    Err(_) => prop_assert_eq!(order.version(), before),
                }
                if let Some(state) = order.state() {
                    was_cancelled |= state.status == OrderStatus::Cancelled;
                    if was_cancelled {
                        prop_assert_eq!(state.status, OrderStatus::Cancelled);
                    }
                    let t = &state.totals;
                    prop_assert_eq!(t.grand_total.minor,
                        t.subtotal.minor - t.discount_total.minor + t.tax_total.minor + t.shipping_total.minor);
                }
                prop_assert!(order.version() <= 2);
            }
        }
    }
}
