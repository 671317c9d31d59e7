//! Editing a confirmed order while it waits in the fulfillment hold: new quantities, removed
//! and added lines, a new shipping address. The edited order is priced by
//! [`crate::domain::pricing::price_order`], the function placement uses, so an edit cannot price
//! differently from a new order with the same lines. The same decision serves the preview
//! ([`OrderState::preview_edit`], no events) and the edit itself (`OrderCommand::Edit`).
//!
//! Money (see `write-side/EDITS.md`): nothing captured yet, a lower total simply captures less
//! and a higher one must fit the card authorization; captured already, a higher total charges
//! the difference (`ExtraChargeRequested`) and a lower one refunds it (`RefundRequested`, kind
//! `cancellation`), both in the same commit with ids derived from the edit id, so a retried
//! edit never moves money twice.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waybill_schemas::events::{
    Address, Discount, EditMoneyAction, OrderEdited, PaymentMethod, RefundKind,
};
use waybill_schemas::{Money, OrderEvent, Quantity, Sku};

use super::{OrderError, OrderState};
use crate::domain::pricing::{self, line_net, promotions, shipping, LineDraft, ShippingDraft};

/// Line numbers from here on belong to exchanges' replacement units.
const FIRST_REPLACEMENT_LINE: u32 = waybill_schemas::events::FIRST_REPLACEMENT_LINE;

/// A validated edit request: `changes[i]` and `add[i]` of the request are the same index here.
#[derive(Debug, Clone, PartialEq)]
pub struct EditOrder {
    pub changes: Vec<LineChange>,
    pub add: Vec<NewLine>,
    pub shipping_address: Option<Address>,
}

/// A line's new quantity; 0 removes the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineChange {
    pub line_no: u32,
    pub quantity: u32,
}

/// A line to add (its tax is computed as at placement).
#[derive(Debug, Clone, PartialEq)]
pub struct NewLine {
    pub sku: Sku,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
}

impl OrderState {
    /// The edit `request` would make, as the `OrderEdited` it would record, or why it is
    /// refused. Records nothing.
    pub fn preview_edit(
        &self,
        edit_id: Uuid,
        request: &EditOrder,
        requested_by: &str,
        now: DateTime<Utc>,
    ) -> Result<OrderEdited, OrderError> {
        let order_id = self.order_id();
        self.ensure_editable()?;
        let currency = self.placed.currency;
        let refuse = |field: String, detail: String| OrderError::EditRefused {
            order_id,
            field,
            detail,
        };
        for (i, change) in request.changes.iter().enumerate() {
            if !self
                .placed
                .lines
                .iter()
                .any(|l| l.line_no == change.line_no)
            {
                return Err(refuse(
                    format!("changes[{i}].line_no"),
                    format!("order {order_id} has no line {}", change.line_no),
                ));
            }
            if request.changes[..i]
                .iter()
                .any(|c| c.line_no == change.line_no)
            {
                return Err(refuse(
                    format!("changes[{i}].line_no"),
                    format!("line {} is changed twice", change.line_no),
                ));
            }
        }
        for (i, line) in request.add.iter().enumerate() {
            if line.unit_price.currency != currency {
                return Err(refuse(
                    format!("add[{i}].unit_price.currency"),
                    format!(
                        "order {order_id} is in {currency}; {} cannot be used for it",
                        line.unit_price.currency
                    ),
                ));
            }
        }
        let new_address = request
            .shipping_address
            .as_ref()
            .filter(|a| **a != self.placed.shipping_address);
        let ship_to = new_address.unwrap_or(&self.placed.shipping_address);

        let mut drafts = Vec::new();
        for line in &self.placed.lines {
            let quantity = request
                .changes
                .iter()
                .find(|c| c.line_no == line.line_no)
                .map_or(line.quantity.get(), |c| c.quantity);
            let Ok(quantity) = Quantity::parse(i64::from(quantity)) else {
                continue; // 0: the line is removed
            };
            let same = quantity == line.quantity;
            let discount = if same {
                line.discount
            } else {
                let scaled = i128::from(line.discount.minor) * i128::from(quantity.get())
                    / i128::from(line.quantity.get().max(1));
                Money::new(i64::try_from(scaled).unwrap_or(0), currency)
            };
            let net = line_net(quantity, line.unit_price, discount).map_err(|(_, detail)| {
                refuse(
                    "changes".to_owned(),
                    format!("line {}: {detail}", line.line_no),
                )
            })?;
            drafts.push(LineDraft {
                line_no: line.line_no,
                sku: line.sku.clone(),
                name: line.name.clone(),
                quantity,
                unit_price: line.unit_price,
                discount,
                net,
                // A line left as it was keeps its tax unless the destination changed.
                tax: (same && new_address.is_none()).then_some(line.tax),
            });
        }
        for (next_line_no, (i, line)) in (self.next_line_no..).zip(request.add.iter().enumerate()) {
            let net = line_net(line.quantity, line.unit_price, Money::zero(currency))
                .map_err(|(_, detail)| refuse(format!("add[{i}]"), detail))?;
            if next_line_no >= FIRST_REPLACEMENT_LINE {
                return Err(refuse(
                    format!("add[{i}]"),
                    "the order has no line numbers left".to_owned(),
                ));
            }
            drafts.push(LineDraft {
                line_no: next_line_no,
                sku: line.sku.clone(),
                name: line.name.clone(),
                quantity: line.quantity,
                unit_price: line.unit_price,
                discount: Money::zero(currency),
                net,
                tax: None,
            });
        }
        if drafts.is_empty() {
            return Err(refuse(
                "changes".to_owned(),
                "an edit cannot remove every line; cancel the order instead".to_owned(),
            ));
        }

        // The order's discounts: promotion codes are applied again (their conditions checked
        // against the new merchandise), the channel's own discounts are kept as they were.
        let mut channel_discounts: Vec<Discount> = Vec::new();
        let mut codes = Vec::new();
        for d in &self.placed.discounts {
            match promotions::lookup(&d.code) {
                Some(promotion) => codes.push((codes.len(), promotion)),
                None => channel_discounts.push(d.clone()),
            }
        }
        let method = &self.placed.shipping.method;
        let rated = shipping::Method::parse(method).is_some_and(|m| {
            shipping::rate(m, shipping::Zone::of(&ship_to.country), currency, 0).is_some()
        });
        let priced = pricing::price_order(&pricing::OrderDraft {
            currency,
            lines: drafts,
            discounts: channel_discounts,
            promotions: codes,
            shipping: ShippingDraft {
                method: method.clone(),
                price: (!rated).then_some(self.placed.shipping.price),
                tax: None,
            },
            ship_to,
        })
        .map_err(|errors| {
            let detail = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.detail))
                .collect::<Vec<_>>()
                .join("; ");
            refuse(
                "changes".to_owned(),
                format!("the edited order cannot be priced ({detail})"),
            )
        })?;

        let previous_total = self.current_total();
        let difference = priced.totals.grand_total.minor - previous_total.minor;
        let money_action = self.edit_money_action(difference, priced.totals.grand_total)?;
        Ok(OrderEdited {
            order_id,
            edit_id,
            lines: priced.lines,
            discounts: priced.discounts,
            shipping: priced.shipping,
            totals: priced.totals,
            shipping_address: new_address.cloned(),
            previous_total,
            difference: Money::new(difference, currency),
            money_action,
            requested_by: requested_by.to_owned(),
            edited_at: now,
        })
    }

    /// Decides an edit: `OrderEdited`, then the charge or refund of the difference when the
    /// order was captured already. Repeating an edit id already recorded is a no-op.
    pub(super) fn edit(
        &self,
        edit_id: Uuid,
        request: &EditOrder,
        requested_by: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if self.edit_recorded(edit_id).is_some() {
            return Ok(vec![]);
        }
        let edited = self.preview_edit(edit_id, request, requested_by, now)?;
        let reason = format!("order edit {edit_id}");
        let money = match edited.money_action {
            EditMoneyAction::ExtraCharge => self.request_charge(
                edit_charge_id(edit_id),
                edited.difference,
                &reason,
                requested_by,
                &None,
                now,
            )?,
            EditMoneyAction::Refund => self.request_refund(
                edit_refund_id(edit_id),
                Money::new(-edited.difference.minor, edited.difference.currency),
                RefundKind::Cancellation,
                &reason,
                requested_by,
                now,
            )?,
            _ => vec![],
        };
        let mut events = vec![OrderEvent::OrderEdited(edited)];
        events.extend(money);
        Ok(events)
    }

    /// Folds an `OrderEdited`: its lines, discounts, shipping and totals replace the order's.
    pub(super) fn apply_edit(&mut self, e: &OrderEdited) {
        self.placed.lines = e.lines.clone();
        self.placed.discounts = e.discounts.clone();
        self.placed.shipping = e.shipping.clone();
        self.placed.totals = e.totals.clone();
        if let Some(address) = &e.shipping_address {
            self.placed.shipping_address = address.clone();
        }
        let top = e.lines.iter().map(|l| l.line_no).max().unwrap_or(0);
        self.next_line_no = self.next_line_no.max(top + 1);
        self.edits.push(e.clone());
    }

    /// Only a confirmed order still in the hold (nothing routed, cancelled or shipped) can be
    /// edited; a partly cancelled one cannot (cancel more units instead).
    fn ensure_editable(&self) -> Result<(), OrderError> {
        let order_id = self.order_id();
        let not = |reason: &str| {
            Err(OrderError::NotEditable {
                order_id,
                reason: reason.to_owned(),
            })
        };
        if self.is_cancelled() {
            return not("it is cancelled");
        }
        if self.confirmed.is_none() {
            return not("it is not confirmed yet");
        }
        if !self.fulfillment.orders.is_empty() || self.shipped || self.fulfillment.closed {
            return not("it has been routed to fulfillment");
        }
        if !self.fulfillment.cancelled_lines.is_empty() {
            return not("units of it were cancelled");
        }
        if self.capture_under_way() {
            return not("its payment is being captured; try again in a moment");
        }
        Ok(())
    }

    fn edit_money_action(
        &self,
        difference: i64,
        new_total: Money,
    ) -> Result<EditMoneyAction, OrderError> {
        if difference == 0 || !matches!(self.placed.payment, Some(PaymentMethod::Card { .. })) {
            return Ok(EditMoneyAction::None);
        }
        if self.ledger.captured_minor() > 0 {
            return Ok(if difference > 0 {
                EditMoneyAction::ExtraCharge
            } else {
                EditMoneyAction::Refund
            });
        }
        if difference < 0 {
            return Ok(EditMoneyAction::CaptureLess);
        }
        let held = self.authorization.as_ref().map_or(0, |a| a.amount.minor);
        if new_total.minor > held {
            return Err(OrderError::NotEditable {
                order_id: self.order_id(),
                reason: format!(
                    "the new total {new_total} is more than the {held} minor units authorized on the card and nothing is captured yet"
                ),
            });
        }
        Ok(EditMoneyAction::WithinAuthorization)
    }
}

/// The extra charge of an edit: the edit id with its top bit flipped (stable across retries).
pub fn edit_charge_id(edit_id: Uuid) -> Uuid {
    Uuid::from_u128(edit_id.as_u128() ^ (1 << 127))
}

/// The refund of an edit: the edit id with its second bit flipped.
pub fn edit_refund_id(edit_id: Uuid) -> Uuid {
    Uuid::from_u128(edit_id.as_u128() ^ (1 << 126))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use waybill_schemas::events::{CaptureMode, FulfillmentRouted, NodeKind, RouteCause};
    use waybill_schemas::{Currency, OrderId};

    use super::super::fixtures::*;
    use super::super::{Order, OrderCommand};
    use super::*;

    fn confirmed(mode: CaptureMode) -> Order {
        with(
            ready_to_confirm(),
            &[OrderCommand::Confirm { capture_mode: mode }],
            t0(),
        )
    }

    fn state(order: &Order) -> &OrderState {
        order.state().expect("placed")
    }

    fn edit(changes: &[(u32, u32)], add: Vec<NewLine>) -> EditOrder {
        EditOrder {
            changes: changes
                .iter()
                .map(|(line_no, quantity)| LineChange {
                    line_no: *line_no,
                    quantity: *quantity,
                })
                .collect(),
            add,
            shipping_address: None,
        }
    }

    fn command(edit_id: Uuid, request: EditOrder) -> OrderCommand {
        OrderCommand::Edit {
            edit_id,
            edit: request,
            requested_by: "web-shop".into(),
        }
    }

    fn socks(quantity: i64, currency: Currency) -> NewLine {
        NewLine {
            sku: Sku::parse("SOCKS-3").expect("valid sku"),
            name: "Socks".into(),
            quantity: Quantity::parse(quantity).expect("valid quantity"),
            unit_price: Money::new(400, currency),
        }
    }

    fn units_to_route(order: &Order) -> Vec<(u32, u32)> {
        state(order)
            .fulfillment
            .ordered
            .values()
            .map(|l| (l.line_no, l.quantity.get()))
            .collect()
    }

    #[test]
    fn a_prepaid_order_confirmed_for_immediate_capture_is_editable_and_moves_no_money() {
        let prepaid_confirmed = with(
            placed_order(prepaid()),
            &[
                accept_risk(),
                reserve_all(t0() + minutes(15)),
                OrderCommand::RecordAllocation {
                    lines: full_lines(),
                },
                OrderCommand::Confirm {
                    capture_mode: CaptureMode::Immediate,
                },
            ],
            t0(),
        );
        assert!(!state(&prepaid_confirmed).capture_under_way());
        let events = prepaid_confirmed
            .handle(&command(Uuid::from_u128(1), edit(&[(1, 1)], vec![])), t0())
            .expect("nothing is being captured for a prepaid order");
        let [OrderEvent::OrderEdited(edited)] = events.as_slice() else {
            panic!("one OrderEdited, got {events:?}");
        };
        assert_eq!(edited.money_action, EditMoneyAction::None);
        // A card order confirmed for immediate capture still waits for its capture.
        let card = confirmed(CaptureMode::Immediate);
        assert!(state(&card).capture_under_way());
        assert!(matches!(
            card.handle(&command(Uuid::from_u128(2), edit(&[(1, 1)], vec![])), t0()),
            Err(OrderError::NotEditable { .. })
        ));
    }

    #[test]
    fn a_smaller_edit_reprices_the_order_and_captures_less() {
        let mut order = confirmed(CaptureMode::OnShipment);
        let events = order
            .handle(&command(Uuid::now_v7(), edit(&[(1, 1)], vec![])), t0())
            .expect("editable in the hold");
        let [OrderEvent::OrderEdited(edited)] = events.as_slice() else {
            panic!("one OrderEdited, got {events:?}");
        };
        assert_eq!(edited.money_action, EditMoneyAction::CaptureLess);
        assert!(edited.difference.minor < 0);
        assert_eq!(edited.lines[0].quantity.get(), 1);
        for e in &events {
            order.apply(e);
        }
        assert_eq!(state(&order).current_total(), edited.totals.grand_total);
        assert_eq!(units_to_route(&order), vec![(1, 1), (2, 1)]);
    }

    #[test]
    fn an_added_line_gets_the_next_line_number_and_fits_the_authorization_or_is_refused() {
        let order = confirmed(CaptureMode::OnShipment);
        // Dropping the tees (30.00) and adding one pair of socks fits the 42.12 held.
        let events = order
            .handle(
                &command(
                    Uuid::now_v7(),
                    edit(&[(1, 0)], vec![socks(1, usd_currency())]),
                ),
                t0(),
            )
            .expect("fits the authorization");
        let OrderEvent::OrderEdited(edited) = &events[0] else {
            panic!("an OrderEdited first");
        };
        assert_eq!(
            edited.lines.iter().map(|l| l.line_no).collect::<Vec<_>>(),
            vec![2, 3]
        );
        // Ten more pairs do not fit what the card holds, and nothing is captured yet.
        let refused = order
            .handle(
                &command(Uuid::now_v7(), edit(&[], vec![socks(10, usd_currency())])),
                t0(),
            )
            .expect_err("above the authorization");
        assert!(
            matches!(refused, OrderError::NotEditable { .. }),
            "{refused}"
        );
    }

    #[test]
    fn bad_input_is_refused_naming_the_field() {
        let order = confirmed(CaptureMode::OnShipment);
        let field = |request: EditOrder| match order.handle(&command(Uuid::now_v7(), request), t0())
        {
            Err(OrderError::EditRefused { field, .. }) => field,
            other => panic!("expected a refused field, got {other:?}"),
        };
        assert_eq!(field(edit(&[(9, 1)], vec![])), "changes[0].line_no");
        let eur = Currency::parse("EUR").expect("valid currency");
        assert_eq!(
            field(edit(&[], vec![socks(1, usd_currency()), socks(1, eur)])),
            "add[1].unit_price.currency"
        );
        assert_eq!(field(edit(&[(1, 0), (2, 0)], vec![])), "changes");
    }

    #[test]
    fn an_order_routed_or_not_confirmed_cannot_be_edited() {
        let request = edit(&[(1, 1)], vec![]);
        let refused = ready_to_confirm()
            .handle(&command(Uuid::now_v7(), request.clone()), t0())
            .expect_err("not confirmed");
        assert!(matches!(refused, OrderError::NotEditable { .. }));
        let mut order = confirmed(CaptureMode::OnShipment);
        let order_id: OrderId = state(&order).order_id();
        order.apply(&OrderEvent::FulfillmentRouted(FulfillmentRouted {
            order_id,
            fulfillment_id: format!("{order_id}-F1"),
            node_id: "wh-1".into(),
            node_kind: NodeKind::Warehouse,
            carrier: "ups".into(),
            zone_distance: 1,
            lines: state(&order)
                .fulfillment
                .ordered
                .values()
                .cloned()
                .collect(),
            rule: "default".into(),
            score: vec![],
            total_score: 0,
            eta: t0(),
            cause: RouteCause::Confirmation,
            pickup: None,
            routed_at: t0(),
        }));
        let refused = order
            .handle(&command(Uuid::now_v7(), request), t0())
            .expect_err("routed");
        assert!(
            matches!(refused, OrderError::NotEditable { .. }),
            "{refused}"
        );
    }

    #[test]
    fn after_capture_a_dearer_edit_charges_the_difference_once() {
        let mut order = confirmed(CaptureMode::Immediate);
        for e in order
            .handle(
                &OrderCommand::RecordCapture {
                    authorization_id: "auth_1".into(),
                    capture_id: "cap_1".into(),
                    amount: grand_total(),
                },
                t0(),
            )
            .expect("capture")
        {
            order.apply(&e);
        }
        let edit_id = Uuid::now_v7();
        let cmd = command(edit_id, edit(&[], vec![socks(2, usd_currency())]));
        let events = order.handle(&cmd, t0()).expect("editable");
        let (OrderEvent::OrderEdited(edited), OrderEvent::ExtraChargeRequested(charge)) =
            (&events[0], &events[1])
        else {
            panic!("an edit and a charge, got {events:?}");
        };
        assert_eq!(edited.money_action, EditMoneyAction::ExtraCharge);
        assert_eq!(charge.amount, edited.difference);
        assert_eq!(charge.charge_id, edit_charge_id(edit_id));
        for e in &events {
            order.apply(e);
        }
        assert_eq!(order.handle(&cmd, t0()).expect("repeat"), vec![]);
    }

    #[test]
    fn a_new_address_is_carried_and_becomes_the_orders_and_the_same_one_is_no_change() {
        let mut order = confirmed(CaptureMode::OnShipment);
        let mut moved = state(&order).placed().shipping_address.clone();
        let same = EditOrder {
            shipping_address: Some(moved.clone()),
            ..edit(&[], vec![])
        };
        let edited = state(&order)
            .preview_edit(Uuid::now_v7(), &same, "web-shop", t0())
            .expect("editable");
        assert_eq!(edited.shipping_address, None);
        moved.line1 = "2 Elm St".into();
        moved.city = "Chicago".into();
        moved.postal_code = "60601".into();
        let request = EditOrder {
            shipping_address: Some(moved.clone()),
            ..edit(&[], vec![])
        };
        let events = order
            .handle(&command(Uuid::now_v7(), request), t0())
            .expect("editable");
        let OrderEvent::OrderEdited(edited) = &events[0] else {
            panic!("an OrderEdited first");
        };
        assert_eq!(edited.shipping_address.as_ref(), Some(&moved));
        for e in &events {
            order.apply(e);
        }
        assert_eq!(state(&order).placed().shipping_address, moved);
        assert_eq!(state(&order).current_total(), edited.totals.grand_total);
    }

    proptest! {
        /// After any sequence of quantity edits the order is worth what the last edit priced,
        /// and routing would send exactly the edited quantities.
        #[test]
        fn current_total_and_units_follow_every_edit(
            edits in proptest::collection::vec((0u32..4, 0u32..4), 1..6)
        ) {
            let mut order = confirmed(CaptureMode::OnShipment);
            for (tees, caps) in edits {
                // Kept within the authorization (at most the placed quantities, 2 and 1).
                let request = edit(&[(1, tees.min(2)), (2, caps.min(1))], vec![]);
                let Ok(events) = order.handle(&command(Uuid::now_v7(), request), t0()) else {
                    continue; // every line removed: refused
                };
                let OrderEvent::OrderEdited(edited) = &events[0] else {
                    panic!("an OrderEdited first");
                };
                let expected: Vec<(u32, u32)> =
                    edited.lines.iter().map(|l| (l.line_no, l.quantity.get())).collect();
                let total = edited.totals.grand_total;
                for e in &events {
                    order.apply(e);
                }
                prop_assert_eq!(state(&order).current_total(), total);
                prop_assert_eq!(units_to_route(&order), expected);
            }
        }
    }
}
