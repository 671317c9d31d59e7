//! The demo's mix of orders. Each scenario says how its order is shaped (channel, card, lines,
//! pricing), what the demo does for it after placing it (cancel at once, complete 3-D Secure as
//! the customer, decide a fraud review as an agent) and how it must end in the tracking view.
//! Pure: no I/O.

use waybill_schemas::views::{PaymentState, TrackingStatus};

use crate::orders::{OrderShape, Payment, Pricing, APPROVED_CARD};

/// Sandbox test cards (write-side/PAYMENT-SANDBOX.md).
pub mod cards {
    pub const THREE_DS: &str = "tok_4000000000003220";
    pub const CARD_DECLINED: &str = "tok_4000000000000002";
    pub const INSUFFICIENT_FUNDS: &str = "tok_4000000000009995";
}

/// Over the risk rules' review amount (2,000 USD): the fraud-review orders buy one.
pub const REVIEW_SKU: &str = "WATCH-GOLD";
/// Stocked with exactly one unit; the out-of-stock order asks for two.
pub const SCARCE_SKU: &str = "PRINT-LTD";
/// On the risk rules' blocklist.
pub const BLOCKED_EMAIL: &str = "blocked@example.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    ApprovedCard,
    PrepaidMarketplace,
    PrepaidPos,
    ThreeDsPassed,
    ThreeDsFailed,
    InsufficientFunds,
    CardDeclined,
    ReviewApproved,
    ReviewRejected,
    Blocklisted,
    OutOfStock,
    CustomerCancel,
    PromoCode,
    PricedByRules,
}

/// What the demo does for an order once it is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// The customer cancels right after placing it.
    CancelAtOnce,
    /// The customer completes the 3-D Secure challenge (passes or fails it).
    Challenge {
        pass: bool,
    },
    /// An agent decides the fraud review.
    Review {
        approve: bool,
    },
}

/// How an order must end, as its tracking view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub status: TrackingStatus,
    /// Any of these payment states.
    pub payment: &'static [PaymentState],
    /// The cancellation reason, for cancelled orders.
    pub reason: Option<&'static str>,
}

impl Expected {
    pub fn met_by(
        &self,
        status: TrackingStatus,
        payment: PaymentState,
        reason: Option<&str>,
    ) -> bool {
        status == self.status && self.payment.contains(&payment) && reason == self.reason
    }
}

/// Every outcome besides the plain approved card, in the order the demo places them.
pub const OUTCOMES: [Scenario; 13] = [
    Scenario::PrepaidMarketplace,
    Scenario::ThreeDsPassed,
    Scenario::InsufficientFunds,
    Scenario::ReviewApproved,
    Scenario::OutOfStock,
    Scenario::PromoCode,
    Scenario::ThreeDsFailed,
    Scenario::Blocklisted,
    Scenario::CustomerCancel,
    Scenario::PrepaidPos,
    Scenario::ReviewRejected,
    Scenario::CardDeclined,
    Scenario::PricedByRules,
];

/// The mix for `count` orders: an approved card first (the replay showcase re-sends it), then
/// every other outcome once, the rest approved cards. Fewer than 14 orders keep the first ones.
pub fn plan(count: usize) -> Vec<Scenario> {
    std::iter::once(Scenario::ApprovedCard)
        .chain(OUTCOMES)
        .chain(std::iter::repeat(Scenario::ApprovedCard))
        .take(count)
        .collect()
}

impl Scenario {
    pub fn label(self) -> &'static str {
        match self {
            Scenario::ApprovedCard => "card approved",
            Scenario::PrepaidMarketplace => "prepaid marketplace order",
            Scenario::PrepaidPos => "prepaid till (POS) order",
            Scenario::ThreeDsPassed => "3-D Secure passed",
            Scenario::ThreeDsFailed => "3-D Secure failed",
            Scenario::InsufficientFunds => "declined: insufficient funds",
            Scenario::CardDeclined => "declined: card declined",
            Scenario::ReviewApproved => "fraud review, agent approves",
            Scenario::ReviewRejected => "fraud review, agent rejects",
            Scenario::Blocklisted => "blocklisted customer",
            Scenario::OutOfStock => "out of stock (1 unit, 2 ordered)",
            Scenario::CustomerCancel => "customer cancels at once",
            Scenario::PromoCode => "promo code SAVE10",
            Scenario::PricedByRules => "tax + shipping by the rules",
        }
    }

    /// The order's shape. Card orders other than the ones about amounts or stock draw their
    /// lines from the catalogue.
    pub fn shape(self) -> OrderShape {
        let card = |token| OrderShape::web(Payment::Card(token));
        let usd = |lines: Vec<(&'static str, u32)>, token| OrderShape {
            lines,
            currency: Some("USD"),
            ..card(token)
        };
        match self {
            Scenario::ApprovedCard => OrderShape {
                channel: "app",
                ..card(APPROVED_CARD)
            },
            Scenario::PrepaidMarketplace => OrderShape {
                channel: "marketplace",
                ..OrderShape::web(Payment::Prepaid)
            },
            Scenario::PrepaidPos => OrderShape {
                channel: "pos",
                ..OrderShape::web(Payment::Prepaid)
            },
            Scenario::ThreeDsPassed | Scenario::ThreeDsFailed => card(cards::THREE_DS),
            Scenario::InsufficientFunds => card(cards::INSUFFICIENT_FUNDS),
            Scenario::CardDeclined => card(cards::CARD_DECLINED),
            Scenario::ReviewApproved | Scenario::ReviewRejected => {
                usd(vec![(REVIEW_SKU, 1)], APPROVED_CARD)
            }
            Scenario::Blocklisted => OrderShape {
                email: Some(BLOCKED_EMAIL.to_owned()),
                ..card(APPROVED_CARD)
            },
            Scenario::OutOfStock => usd(vec![(SCARCE_SKU, 2)], APPROVED_CARD),
            // A challenge keeps the flow waiting, so the cancel always lands before payment.
            Scenario::CustomerCancel => card(cards::THREE_DS),
            Scenario::PromoCode => OrderShape {
                promo_codes: vec!["SAVE10"],
                ..usd(vec![("HOODIE-GRY-M", 2), ("CAP-NAVY", 1)], APPROVED_CARD)
            },
            Scenario::PricedByRules => OrderShape {
                pricing: Pricing::ByRules,
                currency: Some("EUR"),
                ..card(APPROVED_CARD)
            },
        }
    }

    pub fn action(self) -> Action {
        match self {
            Scenario::ThreeDsPassed => Action::Challenge { pass: true },
            Scenario::ThreeDsFailed => Action::Challenge { pass: false },
            Scenario::ReviewApproved => Action::Review { approve: true },
            Scenario::ReviewRejected => Action::Review { approve: false },
            Scenario::CustomerCancel => Action::CancelAtOnce,
            _ => Action::Nothing,
        }
    }

    /// How the order ends; `immediate_capture` is the flow's capture mode.
    pub fn expected(self, immediate_capture: bool) -> Expected {
        const CAPTURED: &[PaymentState] = &[PaymentState::Captured];
        const AUTHORIZED: &[PaymentState] = &[PaymentState::Authorized];
        const NONE: &[PaymentState] = &[PaymentState::None];
        const DECLINED: &[PaymentState] = &[PaymentState::Declined];
        let confirmed = |payment| Expected {
            status: TrackingStatus::Confirmed,
            payment,
            reason: None,
        };
        let cancelled = |reason, payment| Expected {
            status: TrackingStatus::Cancelled,
            payment,
            reason: Some(reason),
        };
        let paid = if immediate_capture {
            CAPTURED
        } else {
            AUTHORIZED
        };
        match self {
            Scenario::ApprovedCard
            | Scenario::ThreeDsPassed
            | Scenario::ReviewApproved
            | Scenario::PromoCode
            | Scenario::PricedByRules => confirmed(paid),
            Scenario::PrepaidMarketplace | Scenario::PrepaidPos => confirmed(NONE),
            Scenario::ThreeDsFailed | Scenario::InsufficientFunds | Scenario::CardDeclined => {
                cancelled("payment_failed", DECLINED)
            }
            Scenario::ReviewRejected | Scenario::Blocklisted => cancelled("fraud", NONE),
            Scenario::OutOfStock => cancelled("out_of_stock", NONE),
            // Cancelled before the challenge was asked for, or after (its hold then voided).
            Scenario::CustomerCancel => cancelled(
                "customer_request",
                &[PaymentState::None, PaymentState::Voided],
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::orders::OrderFactory;

    #[test]
    fn twenty_orders_show_every_outcome_and_mostly_approved_cards() {
        let mix = plan(20);
        assert_eq!(mix.len(), 20);
        assert_eq!(
            mix[0],
            Scenario::ApprovedCard,
            "the replay showcase re-sends a card order"
        );
        for outcome in OUTCOMES {
            assert_eq!(
                mix.iter().filter(|s| **s == outcome).count(),
                1,
                "{outcome:?}"
            );
        }
        let approved = mix.iter().filter(|s| **s == Scenario::ApprovedCard).count();
        assert_eq!(approved, 7, "the largest group");
    }

    #[test]
    fn a_small_run_keeps_the_first_outcomes() {
        assert_eq!(
            plan(3),
            vec![
                Scenario::ApprovedCard,
                Scenario::PrepaidMarketplace,
                Scenario::ThreeDsPassed
            ]
        );
        assert!(plan(0).is_empty());
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<&str> = OUTCOMES.iter().map(|s| s.label()).collect();
        labels.push(Scenario::ApprovedCard.label());
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), OUTCOMES.len() + 1);
    }

    #[test]
    fn expectations_follow_the_capture_mode_and_the_compensations() {
        let approved = Scenario::ApprovedCard.expected(true);
        assert!(approved.met_by(TrackingStatus::Confirmed, PaymentState::Captured, None));
        assert!(!approved.met_by(TrackingStatus::Confirmed, PaymentState::Authorized, None));
        let on_shipment = Scenario::ApprovedCard.expected(false);
        assert!(on_shipment.met_by(TrackingStatus::Confirmed, PaymentState::Authorized, None));

        let declined = Scenario::InsufficientFunds.expected(true);
        assert!(declined.met_by(
            TrackingStatus::Cancelled,
            PaymentState::Declined,
            Some("payment_failed")
        ));
        assert!(!declined.met_by(
            TrackingStatus::Cancelled,
            PaymentState::Declined,
            Some("fraud")
        ));

        let cancel = Scenario::CustomerCancel.expected(true);
        for payment in [PaymentState::None, PaymentState::Voided] {
            assert!(cancel.met_by(TrackingStatus::Cancelled, payment, Some("customer_request")));
        }
        assert!(!cancel.met_by(
            TrackingStatus::Cancelled,
            PaymentState::ActionRequired,
            Some("customer_request")
        ));
    }

    #[test]
    fn every_scenario_builds_an_order_the_command_api_accepts() {
        let mut factory = OrderFactory::new(9, "t");
        for (n, scenario) in plan(20).into_iter().enumerate() {
            let order = factory.shaped(n, &scenario.shape());
            waybill_write_side::domain::parse_place_order(&order)
                .unwrap_or_else(|e| panic!("{scenario:?} refused: {e}"));
        }
        let review = factory.shaped(99, &Scenario::ReviewApproved.shape());
        assert_eq!(review["lines"][0]["sku"], REVIEW_SKU);
        let scarce = factory.shaped(98, &Scenario::OutOfStock.shape());
        assert_eq!(scarce["lines"][0]["quantity"], 2);
    }
}
