//! The returns of an order, folded from its stream: what each order line cost the customer,
//! every return and how far it got, and the order's ledger (the refund cap).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use waybill_schemas::events::{
    FulfillmentLine, InspectedLine, OrderPlaced, ReturnInspected, ReturnLabelIssued,
    ReturnReceived, ReturnRefundDecided, ReturnRequested, ReturnRestocked,
};
use waybill_schemas::{Currency, Money, OrderEvent, Quantity, Sku};

use crate::domain::ledger::Ledger;

/// What one order line cost the customer, all units together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub sku: Sku,
    pub quantity: u32,
    /// Line price after its discount and its share of the order discounts, plus its tax.
    pub paid_minor: i64,
}

/// One return and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Return {
    pub requested: ReturnRequested,
    pub label: Option<ReturnLabelIssued>,
    pub received: Option<ReturnReceived>,
    pub inspected: Option<ReturnInspected>,
    pub restocked: Vec<ReturnRestocked>,
    pub decided: Option<ReturnRefundDecided>,
}

impl Return {
    pub fn id(&self) -> &str {
        &self.requested.return_id
    }
    /// Open until its resolution is recorded.
    pub fn is_open(&self) -> bool {
        self.decided.is_none()
    }
    pub fn requested_lines(&self) -> Vec<FulfillmentLine> {
        self.requested
            .lines
            .iter()
            .map(|l| FulfillmentLine {
                line_no: l.line_no,
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect()
    }
    /// Accepted units that go back into stock, per line.
    pub fn resellable_lines(&self) -> Vec<FulfillmentLine> {
        self.inspected
            .iter()
            .flat_map(|i| i.lines.iter())
            .filter_map(|l| line_of(l, l.resellable))
            .collect()
    }
    pub fn is_restocked(&self) -> bool {
        !self.restocked.is_empty()
    }
    /// When the return was resolved (its refund decided).
    pub fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.decided.as_ref().map(|d| d.decided_at)
    }
}

fn line_of(l: &InspectedLine, n: u32) -> Option<FulfillmentLine> {
    Quantity::parse(i64::from(n))
        .ok()
        .map(|quantity| FulfillmentLine {
            line_no: l.line_no,
            sku: l.sku.clone(),
            quantity,
        })
}

/// The returns side of one order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Returns {
    pub currency: Option<Currency>,
    /// The order's customer account (none for guest checkouts): where store credit goes.
    pub customer_id: Option<String>,
    pub lines: BTreeMap<u32, PricedLine>,
    pub returns: Vec<Return>,
    pub ledger: Ledger,
}

impl Returns {
    /// Folds one event; never fails.
    pub fn apply(&mut self, event: &OrderEvent) {
        self.ledger.apply(event);
        match event {
            OrderEvent::OrderPlaced(placed) => {
                self.currency = Some(placed.currency);
                self.customer_id = placed.customer.customer_id.clone();
                self.lines = priced_lines(placed);
            }
            OrderEvent::ReturnRequested(e) => self.returns.push(Return {
                requested: e.clone(),
                label: None,
                received: None,
                inspected: None,
                restocked: Vec::new(),
                decided: None,
            }),
            OrderEvent::ReturnLabelIssued(e) => {
                if let Some(r) = self.get_mut(&e.return_id) {
                    r.label = Some(e.clone());
                }
            }
            OrderEvent::ReturnReceived(e) => {
                if let Some(r) = self.get_mut(&e.return_id) {
                    r.received = Some(e.clone());
                }
            }
            OrderEvent::ReturnInspected(e) => {
                if let Some(r) = self.get_mut(&e.return_id) {
                    r.inspected = Some(e.clone());
                }
            }
            OrderEvent::ReturnRestocked(e) => {
                if let Some(r) = self.get_mut(&e.return_id) {
                    r.restocked.push(e.clone());
                }
            }
            OrderEvent::ReturnRefundDecided(e) => {
                if let Some(r) = self.get_mut(&e.return_id) {
                    r.decided = Some(e.clone());
                }
            }
            _ => {}
        }
    }

    pub fn get(&self, return_id: &str) -> Option<&Return> {
        self.returns.iter().find(|r| r.id() == return_id)
    }
    fn get_mut(&mut self, return_id: &str) -> Option<&mut Return> {
        self.returns.iter_mut().find(|r| r.id() == return_id)
    }

    pub fn any_open(&self) -> bool {
        self.returns.iter().any(Return::is_open)
    }

    /// Units of `line_no` asked back by any return so far.
    pub fn requested_units(&self, line_no: u32) -> u32 {
        self.returns
            .iter()
            .flat_map(|r| r.requested.lines.iter())
            .filter(|l| l.line_no == line_no)
            .map(|l| l.quantity.get())
            .sum()
    }

    /// What the customer paid for `units` more units of `line_no`, after `before` units of it
    /// were already valued: the line's amount is spread over its units so that valuing all of
    /// them, in any number of steps, adds up to exactly what was paid.
    pub fn paid_for(&self, line_no: u32, before: u32, units: u32) -> Option<Money> {
        let line = self.lines.get(&line_no)?;
        let currency = self.currency?;
        let q = i64::from(line.quantity.max(1));
        let upto = |n: u32| line.paid_minor * i64::from(n.min(line.quantity)) / q;
        Some(Money::new(upto(before + units) - upto(before), currency))
    }
}

/// Each line's price after its own discount and its share of the order discounts (spread in
/// proportion to the lines' discounted prices, the last line taking the rounding), plus its tax.
fn priced_lines(placed: &OrderPlaced) -> BTreeMap<u32, PricedLine> {
    let nets: Vec<i64> = placed
        .lines
        .iter()
        .map(|l| i64::from(l.quantity.get()) * l.unit_price.minor - l.discount.minor)
        .collect();
    let net_total: i64 = nets.iter().sum();
    let order_discount: i64 = placed.discounts.iter().map(|d| d.amount.minor).sum();
    let mut spread = 0;
    placed
        .lines
        .iter()
        .zip(&nets)
        .enumerate()
        .map(|(i, (l, net))| {
            let share = if net_total <= 0 {
                0
            } else if i + 1 == placed.lines.len() {
                order_discount - spread
            } else {
                ((i128::from(order_discount) * i128::from(*net)) / i128::from(net_total)) as i64
            };
            spread += share;
            (
                l.line_no,
                PricedLine {
                    sku: l.sku.clone(),
                    quantity: l.quantity.get(),
                    paid_minor: (net - share + l.tax.minor).max(0),
                },
            )
        })
        .collect()
}
