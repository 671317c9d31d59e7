//! Test fixtures for the order aggregate and the checkout flow, built from the event types
//! directly so they do not depend on the request format.

use chrono::{DateTime, Duration, Utc};
use waybill_schemas::events::{
    Address, BackorderedLine, CancelReason, Customer, Discount, OrderLine, OrderPlaced,
    PaymentMethod, ReservedLine, RiskDecision, Shipping, Totals,
};
use waybill_schemas::{Channel, Currency, Email, Money, OrderEvent, OrderId, Quantity, Sku};

use super::{Order, OrderCommand, OrderError};
use crate::domain::cancel::CancelOrder;
use crate::domain::place::PlaceOrder;

pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("valid time")
}

pub fn minutes(n: i64) -> Duration {
    Duration::minutes(n)
}

pub fn usd_currency() -> Currency {
    Currency::parse("USD").expect("known currency")
}

pub fn usd(minor: i64) -> Money {
    Money::new(minor, usd_currency())
}

pub fn card() -> Option<PaymentMethod> {
    Some(PaymentMethod::Card {
        token: "tok_4242424242424242".into(),
    })
}

pub fn prepaid() -> Option<PaymentMethod> {
    Some(PaymentMethod::Prepaid {
        reference: "mkt-991".into(),
    })
}

fn line(line_no: u32, sku: &str, quantity: u32, unit: i64, discount: i64, tax: i64) -> OrderLine {
    OrderLine {
        line_no,
        sku: Sku::parse(sku).expect("valid sku"),
        name: sku.to_lowercase(),
        quantity: Quantity::parse(i64::from(quantity)).expect("valid quantity"),
        unit_price: usd(unit),
        discount: usd(discount),
        tax: usd(tax),
        total: usd(i64::from(quantity) * unit - discount + tax),
    }
}

/// Two lines (2 × TEE 15.00 with 2.40 tax; 1 × CAP 10.00 − 1.00 with 0.72 tax), a 5.00 code
/// and 5.00 shipping: grand total 42.12 USD.
pub fn placed_event(order_id: OrderId, payment: Option<PaymentMethod>) -> OrderPlaced {
    let address = Address {
        name: "Ada".into(),
        line1: "1 Main St".into(),
        line2: None,
        city: "Springfield".into(),
        region: Some("IL".into()),
        postal_code: "62701".into(),
        country: "US".into(),
    };
    OrderPlaced {
        order_id,
        channel: Channel::parse("web").expect("valid channel"),
        channel_order_ref: format!("W-{order_id}"),
        customer: Customer {
            customer_id: Some("c-42".into()),
            name: "Ada".into(),
            email: Email::parse("ada@example.com").expect("valid email"),
            phone: None,
        },
        currency: usd_currency(),
        lines: vec![
            line(1, "TEE-RED-M", 2, 1500, 0, 240),
            line(2, "CAP-BLUE", 1, 1000, 100, 72),
        ],
        discounts: vec![Discount {
            code: "WELCOME5".into(),
            amount: usd(500),
        }],
        shipping_address: address,
        billing_address: None,
        shipping: Shipping {
            method: "standard".into(),
            price: usd(500),
            tax: usd(0),
        },
        totals: Totals {
            subtotal: usd(4000),
            discount_total: usd(600),
            tax_total: usd(312),
            shipping_total: usd(500),
            grand_total: usd(4212),
        },
        payment,
        risk_context: None,
        pickup_store: None,
        placed_at: t0(),
    }
}

pub fn grand_total() -> Money {
    usd(4212)
}

/// The `Place` command that yields [`placed_event`] (at the `now` it is handled with).
pub fn place_command(order_id: OrderId, payment: Option<PaymentMethod>) -> OrderCommand {
    let p = placed_event(order_id, payment);
    OrderCommand::Place {
        order_id,
        order: Box::new(PlaceOrder {
            channel: p.channel,
            channel_order_ref: p.channel_order_ref,
            currency: p.currency,
            customer: p.customer,
            lines: p.lines,
            discounts: p.discounts,
            shipping_address: p.shipping_address,
            billing_address: p.billing_address,
            shipping: p.shipping,
            totals: p.totals,
            payment: p.payment,
            risk_context: p.risk_context,
            pickup_location: None,
            pickup_store: p.pickup_store,
        }),
    }
}

pub fn cancel_command(order_id: OrderId, reason: CancelReason) -> OrderCommand {
    OrderCommand::Cancel {
        order_id,
        cancellation_id: uuid::Uuid::from_u128(0xCA9CE1),
        cancel: CancelOrder { reason, note: None },
    }
}

/// Every unit of the fixture order reserved at `wh-1`.
pub fn full_lines() -> Vec<ReservedLine> {
    vec![
        reserved_line(1, "TEE-RED-M", 2),
        reserved_line(2, "CAP-BLUE", 1),
    ]
}

pub fn reserved_line(line_no: u32, sku: &str, quantity: u32) -> ReservedLine {
    ReservedLine {
        line_no,
        sku: Sku::parse(sku).expect("valid sku"),
        location_id: "wh-1".into(),
        quantity: Quantity::parse(i64::from(quantity)).expect("valid quantity"),
    }
}

pub fn backordered_line(line_no: u32, sku: &str, quantity: u32) -> BackorderedLine {
    BackorderedLine {
        line_no,
        sku: Sku::parse(sku).expect("valid sku"),
        quantity: Quantity::parse(i64::from(quantity)).expect("valid quantity"),
    }
}

pub fn reserve_all(expires_at: DateTime<Utc>) -> OrderCommand {
    OrderCommand::RecordReservation {
        lines: full_lines(),
        backordered: vec![],
        expires_at,
    }
}

pub fn accept_risk() -> OrderCommand {
    OrderCommand::RecordRisk {
        decision: RiskDecision::Accept,
        score: 0,
        reasons: vec![],
    }
}

pub fn authorize(authorization_id: &str, expires_at: DateTime<Utc>) -> OrderCommand {
    OrderCommand::RecordAuthorization {
        authorization_id: authorization_id.into(),
        amount: grand_total(),
        three_ds: false,
        expires_at,
    }
}

/// Handles and applies in one go, as the process manager does.
pub trait Record {
    fn record(
        &mut self,
        command: &OrderCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError>;
}

impl Record for Order {
    fn record(
        &mut self,
        command: &OrderCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let events = self.handle(command, now)?;
        for event in &events {
            self.apply(event);
        }
        Ok(events)
    }
}

/// A placed order (at [`t0`]).
pub fn placed_order(payment: Option<PaymentMethod>) -> Order {
    let order_id = OrderId::new_v7();
    Order::from_events(&[OrderEvent::OrderPlaced(placed_event(order_id, payment))])
}

/// Records `commands` in order at `now`, panicking on any refusal.
pub fn with(mut order: Order, commands: &[OrderCommand], now: DateTime<Utc>) -> Order {
    for command in commands {
        order
            .record(command, now)
            .unwrap_or_else(|e| panic!("{command:?} refused: {e}"));
    }
    order
}

/// A card order with risk accepted, every unit reserved (15 min), authorized as `auth_1`
/// (7 days) and allocated: ready to confirm.
pub fn ready_to_confirm() -> Order {
    with(
        placed_order(card()),
        &[
            accept_risk(),
            reserve_all(t0() + minutes(15)),
            authorize("auth_1", t0() + Duration::days(7)),
            OrderCommand::RecordAllocation {
                lines: full_lines(),
            },
        ],
        t0(),
    )
}
