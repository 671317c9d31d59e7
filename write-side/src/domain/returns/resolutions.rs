//! The resolutions other than a card refund: store credit and exchanges. Pure, like the rest
//! of the returns domain.
//!
//! - **Store credit**: the value of the accepted units minus the fees (as a refund would be,
//!   capped by what the ledger still allows) is credited to the customer's account
//!   (`StoreCreditIssued`, id derived from the return id); the return's `ReturnRefundDecided`
//!   records a card refund of zero. Guest orders cannot choose it.
//! - **Exchange**: the replacements of lines with accepted units are sent (policy: once the
//!   return is received and inspected; quantities capped by the accepted units of the line
//!   they replace). Fees do not apply. Price difference = replacements' value − accepted
//!   units' value: positive is charged to the card (`ExtraChargeRequested`, id derived from the
//!   return id; the replacement is routed once a charge for the return is captured, so a
//!   declined charge waits for an agent, who may charge again naming the return), negative is
//!   refunded (`RefundRequested`, kind return), zero moves no money.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use waybill_schemas::events::{
    ExchangeReplacementRequested, ExtraChargeRequested, RefundKind, RefundRequested,
    ReplacementLine, ReplacementUnit, ReturnRefundDecided, ReturnResolution, StoreCreditIssued,
    FIRST_REPLACEMENT_LINE,
};
use waybill_schemas::{Money, OrderEvent, OrderId, Quantity};

use super::{refund_decision, refund_id_of, Return, ReturnError};
use crate::domain::fulfillment::Fulfillment;

/// An id derived from the return id (UUID v8 from SHA-256), the same on every retry.
fn derived_id(kind: &str, return_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("waybill-return-{kind}:{return_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The store credit id of a return.
pub fn credit_id_of(return_id: &str) -> Uuid {
    derived_id("credit", return_id)
}

/// The extra charge id of an exchange.
pub fn charge_id_of(return_id: &str) -> Uuid {
    derived_id("charge", return_id)
}

impl Fulfillment {
    /// Whether `resolution` may be asked for these return lines.
    pub(super) fn check_resolution(
        &self,
        resolution: &ReturnResolution,
        lines: &[super::RequestedLine],
    ) -> Result<(), ReturnError> {
        match resolution {
            ReturnResolution::Refund => Ok(()),
            ReturnResolution::StoreCredit if self.returns.customer_id.is_none() => {
                Err(ReturnError::NoCustomerAccount)
            }
            ReturnResolution::StoreCredit => Ok(()),
            ReturnResolution::Exchange { replacements } => {
                if replacements.is_empty() {
                    return Err(ReturnError::BadReplacement {
                        index: 0,
                        field: "sku",
                        why: "an exchange needs at least one replacement".into(),
                    });
                }
                let currency = self.returns.currency.ok_or(ReturnError::NotPlaced)?;
                for (index, r) in replacements.iter().enumerate() {
                    let bad =
                        |field, why: String| ReturnError::BadReplacement { index, field, why };
                    if !lines.iter().any(|l| l.line_no == r.for_line_no) {
                        return Err(bad(
                            "for_line_no",
                            format!("line {} is not in this return", r.for_line_no),
                        ));
                    }
                    if r.unit_price.currency != currency {
                        return Err(bad(
                            "unit_price.currency",
                            format!(
                                "the order was paid in {currency}; a price in {} cannot be used",
                                r.unit_price.currency
                            ),
                        ));
                    }
                    if r.unit_price.minor < 0 {
                        return Err(bad("unit_price.minor", "must not be negative".into()));
                    }
                }
                Ok(())
            }
        }
    }

    pub(super) fn resolve_as_store_credit(
        &self,
        order_id: OrderId,
        r: &Return,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, ReturnError> {
        let decision = refund_decision(r, &self.returns.ledger);
        let currency = decision.amount.currency;
        let mut events = vec![OrderEvent::ReturnRefundDecided(ReturnRefundDecided {
            order_id,
            return_id: r.id().to_owned(),
            accepted_value: decision.accepted_value,
            fees: decision.fees,
            amount: Money::new(0, currency),
            refund_id: None,
            decided_at: now,
        })];
        if decision.amount.minor > 0 {
            let customer_id = self
                .returns
                .customer_id
                .clone()
                .ok_or(ReturnError::NoCustomerAccount)?;
            events.push(OrderEvent::StoreCreditIssued(StoreCreditIssued {
                order_id,
                credit_id: credit_id_of(r.id()),
                customer_id,
                amount: decision.amount,
                reason: format!("return {}", r.id()),
                issued_by: "returns".into(),
                return_id: Some(r.id().to_owned()),
                issued_at: now,
            }));
        }
        Ok(events)
    }

    pub(super) fn resolve_as_exchange(
        &self,
        order_id: OrderId,
        r: &Return,
        replacements: &[ReplacementLine],
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, ReturnError> {
        let decision = refund_decision(r, &self.returns.ledger);
        let currency = decision.accepted_value.currency;
        let units = replacement_units(self, r, replacements);
        let replacements_value: i64 = units
            .iter()
            .map(|u| u.unit_price.minor * i64::from(u.quantity.get()))
            .sum();
        let difference = replacements_value - decision.accepted_value.minor;
        // A refund never goes above what the ledger still allows.
        let refund = (-difference).clamp(0, self.returns.ledger.refundable_minor());
        let charge_id = (difference > 0 && !units.is_empty()).then(|| charge_id_of(r.id()));
        let refund_id = (refund > 0).then(|| refund_id_of(r.id()));
        let mut events = vec![OrderEvent::ReturnRefundDecided(ReturnRefundDecided {
            order_id,
            return_id: r.id().to_owned(),
            accepted_value: decision.accepted_value,
            fees: Vec::new(),
            amount: Money::new(refund, currency),
            refund_id,
            decided_at: now,
        })];
        if !units.is_empty() {
            events.push(OrderEvent::ExchangeReplacementRequested(
                ExchangeReplacementRequested {
                    order_id,
                    return_id: r.id().to_owned(),
                    lines: units,
                    replacements_value: Money::new(replacements_value, currency),
                    accepted_value: decision.accepted_value,
                    difference: Money::new(difference, currency),
                    charge_id,
                    refund_id,
                    requested_at: now,
                },
            ));
        }
        if let Some(charge_id) = charge_id {
            events.push(OrderEvent::ExtraChargeRequested(ExtraChargeRequested {
                order_id,
                charge_id,
                amount: Money::new(difference, currency),
                reason: format!("exchange {}", r.id()),
                requested_by: "returns".into(),
                return_id: Some(r.id().to_owned()),
                requested_at: now,
            }));
        }
        if let Some(refund_id) = refund_id {
            events.push(OrderEvent::RefundRequested(RefundRequested {
                order_id,
                refund_id,
                amount: Money::new(refund, currency),
                kind: RefundKind::Return,
                reason: format!("exchange {}: price difference", r.id()),
                requested_by: "returns".into(),
                requested_at: now,
            }));
        }
        Ok(events)
    }
}

/// The replacements of lines with accepted units, each capped by the accepted units of the
/// line it replaces, numbered after the order's earlier replacements.
fn replacement_units(
    state: &Fulfillment,
    r: &Return,
    replacements: &[ReplacementLine],
) -> Vec<ReplacementUnit> {
    let accepted = |line_no: u32| -> u32 {
        r.inspected
            .iter()
            .flat_map(|i| i.lines.iter())
            .filter(|l| l.line_no == line_no)
            .map(|l| l.accepted)
            .sum()
    };
    let earlier = state
        .replacements
        .iter()
        .flat_map(|x| x.lines.iter())
        .count();
    let mut next = FIRST_REPLACEMENT_LINE + u32::try_from(earlier).unwrap_or(0);
    let mut used: std::collections::BTreeMap<u32, u32> = Default::default();
    let mut out = Vec::new();
    for want in replacements {
        let left =
            accepted(want.for_line_no).saturating_sub(*used.get(&want.for_line_no).unwrap_or(&0));
        let n = want.quantity.get().min(left);
        let Ok(quantity) = Quantity::parse(i64::from(n)) else {
            continue;
        };
        *used.entry(want.for_line_no).or_default() += n;
        out.push(ReplacementUnit {
            line_no: next,
            for_line_no: want.for_line_no,
            sku: want.sku.clone(),
            quantity,
            unit_price: want.unit_price,
        });
        next += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use waybill_schemas::events::{
        ExtraChargeCaptured, InspectedLine, ReturnReason, FIRST_REPLACEMENT_LINE,
    };
    use waybill_schemas::{Currency, Sku};

    use super::super::properties::delivered_order;
    use super::super::{RequestedLine, ReturnCommand, ReturnsPolicy};
    use super::*;
    use crate::domain::fulfillment::flow::{next_step, FulfillmentPolicy, FulfillmentStep};
    use crate::domain::fulfillment::total;
    use crate::domain::order::fixtures::{t0, usd};

    fn record(state: &mut Fulfillment, events: &[OrderEvent]) {
        for e in events {
            state.apply(e);
        }
    }

    fn replacement(price: Money) -> ReplacementLine {
        ReplacementLine {
            for_line_no: 1,
            sku: Sku::parse("TEE-RED-L").unwrap(),
            quantity: Quantity::parse(1).unwrap(),
            unit_price: price,
        }
    }

    /// A delivered order with one TEE returned under `resolution`, received and inspected as
    /// accepted (not resellable), then resolved; returns the state and the resolution's events.
    fn resolved(resolution: ReturnResolution) -> (Fulfillment, Vec<OrderEvent>) {
        let (_, events) = delivered_order();
        let mut state = Fulfillment::from_events(&events);
        let policy = ReturnsPolicy::default();
        let now = t0() + chrono::Duration::days(1);
        let request = ReturnCommand::Request {
            lines: vec![RequestedLine {
                line_no: 1,
                quantity: Quantity::parse(1).unwrap(),
                reason: ReturnReason::WrongSize,
                note: None,
            }],
            resolution,
            waive_fees: false,
            requested_by: "c-42".into(),
        };
        let requested = state.handle_return(&request, &policy, now).unwrap();
        record(&mut state, &requested);
        let return_id = state.returns.returns[0].id().to_owned();
        let inspect = ReturnCommand::Inspect {
            return_id: return_id.clone(),
            lines: vec![InspectedLine {
                line_no: 1,
                sku: Sku::parse("TEE-RED-M").unwrap(),
                accepted: 1,
                rejected: 0,
                resellable: 0,
                note: None,
            }],
            inspected_by: String::new(),
        };
        let inspected = state.handle_return(&inspect, &policy, now).unwrap();
        record(&mut state, &inspected);
        let resolution = state
            .handle_return(&ReturnCommand::Resolve { return_id }, &policy, now)
            .unwrap();
        record(&mut state, &resolution);
        (state, resolution)
    }

    fn step(state: &Fulfillment) -> FulfillmentStep {
        next_step(
            state,
            &FulfillmentPolicy::default(),
            &ReturnsPolicy::default(),
            t0() + chrono::Duration::days(1),
        )
    }

    #[test]
    fn an_exchange_for_a_dearer_item_charges_the_difference_then_routes_the_replacement() {
        let (mut state, events) = resolved(ReturnResolution::Exchange {
            replacements: vec![replacement(usd(2500))],
        });
        let asked = events
            .iter()
            .find_map(|e| match e {
                OrderEvent::ExchangeReplacementRequested(x) => Some(x.clone()),
                _ => None,
            })
            .expect("replacement requested");
        assert_eq!(asked.lines[0].line_no, FIRST_REPLACEMENT_LINE);
        let difference = 2500 - asked.accepted_value.minor;
        assert!(difference > 0);
        assert_eq!(asked.difference.minor, difference);
        let charge = events
            .iter()
            .find_map(|e| match e {
                OrderEvent::ExtraChargeRequested(c) => Some(c.clone()),
                _ => None,
            })
            .expect("the difference is charged");
        assert_eq!(charge.amount.minor, difference);
        assert!(!events
            .iter()
            .any(|e| matches!(e, OrderEvent::RefundRequested(_))));
        // The replacement unit is counted and waits, unrouted, for the charge.
        assert_eq!(total(&state.units().unrouted), 1);
        assert!(!state.is_settled(), "auto-close waits for the replacement");
        assert!(!matches!(
            step(&state),
            FulfillmentStep::RouteReplacement { .. }
        ));
        state.apply(&OrderEvent::ExtraChargeCaptured(ExtraChargeCaptured {
            order_id: charge.order_id,
            charge_id: charge.charge_id,
            authorization_id: "auth_2".into(),
            capture_id: "cap_2".into(),
            amount: charge.amount,
            captured_at: t0(),
        }));
        assert!(matches!(
            step(&state),
            FulfillmentStep::RouteReplacement { ref lines, .. } if lines[0].line_no == FIRST_REPLACEMENT_LINE
        ));
    }

    #[test]
    fn an_exchange_for_a_cheaper_item_refunds_the_difference_and_routes_at_once() {
        let (state, events) = resolved(ReturnResolution::Exchange {
            replacements: vec![replacement(usd(500))],
        });
        let refund = events
            .iter()
            .find_map(|e| match e {
                OrderEvent::RefundRequested(r) => Some(r.clone()),
                _ => None,
            })
            .expect("the difference is refunded");
        let decided = state.returns.returns[0].decided.clone().expect("decided");
        assert_eq!(refund.amount.minor, decided.accepted_value.minor - 500);
        assert_eq!(decided.refund_id, Some(refund.refund_id));
        assert!(!events
            .iter()
            .any(|e| matches!(e, OrderEvent::ExtraChargeRequested(_))));
        assert!(matches!(
            step(&state),
            FulfillmentStep::RouteReplacement { .. }
        ));
    }

    #[test]
    fn store_credit_credits_the_refund_amount_to_the_customer() {
        let (state, events) = resolved(ReturnResolution::StoreCredit);
        let credit = events
            .iter()
            .find_map(|e| match e {
                OrderEvent::StoreCreditIssued(c) => Some(c.clone()),
                _ => None,
            })
            .expect("credit issued");
        assert_eq!(credit.customer_id, "c-42");
        let decided = state.returns.returns[0].decided.clone().expect("decided");
        assert_eq!(decided.amount.minor, 0, "nothing goes back to the card");
        let fees: i64 = decided.fees.iter().map(|f| f.amount.minor).sum();
        assert_eq!(credit.amount.minor, decided.accepted_value.minor - fees);
        assert_eq!(credit.credit_id, credit_id_of(&decided.return_id));
        assert!(!events
            .iter()
            .any(|e| matches!(e, OrderEvent::RefundRequested(_))));
        assert_eq!(
            state.returns.ledger.store_credit_minor(),
            credit.amount.minor
        );
    }

    #[test]
    fn replacements_in_another_currency_or_for_lines_not_returned_are_refused_by_field() {
        let (_, events) = delivered_order();
        let state = Fulfillment::from_events(&events);
        let lines = vec![RequestedLine {
            line_no: 1,
            quantity: Quantity::parse(1).unwrap(),
            reason: ReturnReason::WrongSize,
            note: None,
        }];
        let eur = Money::new(2500, Currency::parse("EUR").unwrap());
        let wrong_currency = state
            .check_resolution(
                &ReturnResolution::Exchange {
                    replacements: vec![replacement(eur)],
                },
                &lines,
            )
            .unwrap_err();
        assert_eq!(
            wrong_currency.field().as_deref(),
            Some("resolution.replacements[0].unit_price.currency")
        );
        let mut other_line = replacement(usd(100));
        other_line.for_line_no = 2;
        let not_returned = state
            .check_resolution(
                &ReturnResolution::Exchange {
                    replacements: vec![other_line],
                },
                &lines,
            )
            .unwrap_err();
        assert_eq!(
            not_returned.field().as_deref(),
            Some("resolution.replacements[0].for_line_no")
        );
    }
}
