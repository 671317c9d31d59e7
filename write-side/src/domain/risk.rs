//! Fraud and risk scoring: explainable rules that add points to an order, and the decision the
//! points lead to. Pure: the velocity counts come in as [`RiskSignals`] (the I/O side is
//! [`crate::risk_signals`]), the rules as [`RiskRules`].
//!
//! Each rule that fires becomes a [`RiskReason`] with a stable name, its points and a sentence
//! an agent can read. The score is the sum of the points; score ≥ `review_at` → review,
//! ≥ `reject_at` → reject, else accept. A blocklist hit always rejects. An allowlisted email
//! accepts the order whatever its score, unless a blocklist rule fired.
//!
//! Defaults ([`RiskRules::default`]), chosen so the demo can trigger every outcome:
//!
//! | rule | fires when | points |
//! |---|---|---|
//! | `velocity_email` | more than 3 orders from the email in the window (1 hour), this one included | 30 |
//! | `velocity_card` | more than 3 orders with the card token in the window | 30 |
//! | `velocity_ip` | more than 5 orders from the IP in the window | 30 |
//! | `amount_review` | grand total ≥ 2,000 major units (JPY, KRW: ≥ 300,000) | 50 |
//! | `amount_reject` | grand total ≥ 20,000 major units (JPY, KRW: ≥ 3,000,000); replaces `amount_review` | 100 |
//! | `address_mismatch` | billing country ≠ shipping country | 30 |
//! | `blocklist_email` | email `blocked@example.com` | 100 |
//! | `blocklist_card` | card token `tok_4100000000000019` | 100 |
//! | `blocklist_ip` | IP `198.51.100.66` | 100 |
//! | `allowlist_email` | email `trusted@example.com` (0 points; accepts) | 0 |
//!
//! Review at 50, reject at 100. So one order of 2,000 USD is reviewed, 20,000 USD rejected,
//! a fourth order from one email in an hour alone is accepted (30) but reviewed together with
//! an address mismatch (60).

use std::net::IpAddr;
use std::time::Duration;

use waybill_schemas::events::{OrderPlaced, PaymentMethod, RiskDecision, RiskReason};
use waybill_schemas::Currency;

/// Velocity counts stop here: every limit is far below, and counting further would only cost
/// index scans on hot identifiers.
pub const MAX_COUNTED: u32 = 1_000;

/// How often this order's identifiers were seen in the velocity window, this order included
/// (at most [`MAX_COUNTED`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RiskSignals {
    pub orders_by_email: u32,
    /// 0 when the order has no card.
    pub orders_by_card: u32,
    /// 0 when the order has no IP.
    pub orders_by_ip: u32,
}

/// Amount thresholds in major units of one currency, overriding the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountThresholds {
    pub currency: Currency,
    pub review_major: i64,
    pub reject_major: i64,
}

/// The rules and their weights. See the module doc for the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskRules {
    /// The window the velocity counts cover (the I/O side counts over it).
    pub velocity_window: Duration,
    pub email_limit: u32,
    pub card_limit: u32,
    pub ip_limit: u32,
    pub velocity_points: u32,
    /// Grand total (major units) from which an order is reviewed / rejected.
    pub review_amount_major: i64,
    pub reject_amount_major: i64,
    /// Per-currency thresholds for currencies whose major unit is small.
    pub amount_overrides: Vec<AmountThresholds>,
    pub review_amount_points: u32,
    pub reject_amount_points: u32,
    pub address_mismatch_points: u32,
    pub blocklist_points: u32,
    /// Lower-case emails.
    pub blocked_emails: Vec<String>,
    pub blocked_card_tokens: Vec<String>,
    pub blocked_ips: Vec<IpAddr>,
    /// Lower-case emails.
    pub allowed_emails: Vec<String>,
    pub review_at: u32,
    pub reject_at: u32,
}

impl Default for RiskRules {
    fn default() -> Self {
        let thresholds = |code: &str| {
            Currency::parse(code).ok().map(|currency| AmountThresholds {
                currency,
                review_major: 300_000,
                reject_major: 3_000_000,
            })
        };
        Self {
            velocity_window: Duration::from_secs(3600),
            email_limit: 3,
            card_limit: 3,
            ip_limit: 5,
            velocity_points: 30,
            review_amount_major: 2_000,
            reject_amount_major: 20_000,
            amount_overrides: ["JPY", "KRW"].into_iter().filter_map(thresholds).collect(),
            review_amount_points: 50,
            reject_amount_points: 100,
            address_mismatch_points: 30,
            blocklist_points: 100,
            blocked_emails: vec!["blocked@example.com".to_owned()],
            blocked_card_tokens: vec!["tok_4100000000000019".to_owned()],
            blocked_ips: vec![IpAddr::from([198, 51, 100, 66])],
            allowed_emails: vec!["trusted@example.com".to_owned()],
            review_at: 50,
            reject_at: 100,
        }
    }
}

/// The outcome: the decision, the score and every rule that fired, in the table's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskAssessment {
    pub decision: RiskDecision,
    pub score: u32,
    pub reasons: Vec<RiskReason>,
}

/// Scores `order` under `rules`, given how often its identifiers were seen (`signals`).
pub fn assess(order: &OrderPlaced, signals: &RiskSignals, rules: &RiskRules) -> RiskAssessment {
    let mut reasons = Vec::new();
    let mut fire = |rule: &str, points: u32, detail: String| {
        reasons.push(RiskReason {
            rule: rule.to_owned(),
            points,
            detail,
        });
    };
    let window = window_text(rules.velocity_window);
    let velocity = [
        (
            "velocity_email",
            "this email",
            signals.orders_by_email,
            rules.email_limit,
        ),
        (
            "velocity_card",
            "this card",
            signals.orders_by_card,
            rules.card_limit,
        ),
        (
            "velocity_ip",
            "this IP address",
            signals.orders_by_ip,
            rules.ip_limit,
        ),
    ];
    for (rule, what, count, limit) in velocity {
        if count > limit {
            let at_least = if count >= MAX_COUNTED {
                "at least "
            } else {
                ""
            };
            fire(
                rule,
                rules.velocity_points,
                format!(
                    "{at_least}{count} orders from {what} in the last {window} (limit {limit})"
                ),
            );
        }
    }

    let (review_major, reject_major) = rules
        .amount_overrides
        .iter()
        .find(|t| t.currency == order.currency)
        .map_or(
            (rules.review_amount_major, rules.reject_amount_major),
            |t| (t.review_major, t.reject_major),
        );
    let total = order.totals.grand_total;
    let scale = 10_i64.saturating_pow(u32::from(order.currency.exponent()));
    if total.minor >= reject_major.saturating_mul(scale) {
        fire(
            "amount_reject",
            rules.reject_amount_points,
            format!(
                "order total {total} is at least {reject_major} {}",
                order.currency
            ),
        );
    } else if total.minor >= review_major.saturating_mul(scale) {
        fire(
            "amount_review",
            rules.review_amount_points,
            format!(
                "order total {total} is at least {review_major} {}",
                order.currency
            ),
        );
    }

    if let Some(billing) = &order.billing_address {
        if billing.country != order.shipping_address.country {
            fire(
                "address_mismatch",
                rules.address_mismatch_points,
                format!(
                    "billing country {} differs from shipping country {}",
                    billing.country, order.shipping_address.country
                ),
            );
        }
    }

    let email = order.customer.email.as_str();
    let mut blocked = false;
    if rules
        .blocked_emails
        .iter()
        .any(|e| e.eq_ignore_ascii_case(email))
    {
        blocked = true;
        fire(
            "blocklist_email",
            rules.blocklist_points,
            format!("email {email} is on the blocklist"),
        );
    }
    if let Some(PaymentMethod::Card { token }) = &order.payment {
        if rules.blocked_card_tokens.contains(token) {
            blocked = true;
            fire(
                "blocklist_card",
                rules.blocklist_points,
                format!("card token {token} is on the blocklist"),
            );
        }
    }
    let ip = order
        .risk_context
        .as_ref()
        .and_then(|ctx| ctx.ip.as_deref())
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    if let Some(ip) = ip.filter(|ip| rules.blocked_ips.contains(ip)) {
        blocked = true;
        fire(
            "blocklist_ip",
            rules.blocklist_points,
            format!("IP address {ip} is on the blocklist"),
        );
    }
    let allowed = rules
        .allowed_emails
        .iter()
        .any(|e| e.eq_ignore_ascii_case(email));
    if allowed {
        fire(
            "allowlist_email",
            0,
            format!("email {email} is on the allowlist"),
        );
    }

    let score = reasons
        .iter()
        .fold(0u32, |sum, r| sum.saturating_add(r.points));
    let decision = if blocked || (!allowed && score >= rules.reject_at) {
        RiskDecision::Reject
    } else if allowed || score < rules.review_at {
        RiskDecision::Accept
    } else {
        RiskDecision::Review
    };
    RiskAssessment {
        decision,
        score,
        reasons,
    }
}

/// "hour", "15 minutes", "90 seconds": what follows "in the last".
fn window_text(window: Duration) -> String {
    let secs = window.as_secs();
    let (n, unit) = if secs.is_multiple_of(3600) && secs > 0 {
        (secs / 3600, "hour")
    } else if secs.is_multiple_of(60) && secs > 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    if n == 1 {
        unit.to_owned()
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// The test fixture order (32.40 USD, card, IP 203.0.113.7), edited.
    fn placed(edit: impl FnOnce(&mut Value)) -> OrderPlaced {
        let mut body = crate::testing::order_body("RISK-1");
        edit(&mut body);
        crate::testing::order_placed(&body)
    }

    fn quiet() -> RiskSignals {
        RiskSignals {
            orders_by_email: 1,
            orders_by_card: 1,
            orders_by_ip: 1,
        }
    }

    fn rules_fired(a: &RiskAssessment) -> Vec<&str> {
        a.reasons.iter().map(|r| r.rule.as_str()).collect()
    }

    fn priced_at(unit_price_minor: i64) -> OrderPlaced {
        placed(|b| {
            b["lines"][0]["unit_price_minor"] = json!(unit_price_minor);
            b["lines"][0]["quantity"] = json!(1);
        })
    }

    #[test]
    fn an_ordinary_order_is_accepted_with_no_reasons() {
        let a = assess(&placed(|_| {}), &quiet(), &RiskRules::default());
        assert_eq!(
            a,
            RiskAssessment {
                decision: RiskDecision::Accept,
                score: 0,
                reasons: vec![]
            }
        );
    }

    #[test]
    fn velocity_over_a_limit_adds_points_and_says_how_many() {
        let signals = RiskSignals {
            orders_by_email: 4,
            orders_by_card: 3,
            orders_by_ip: 6,
        };
        let a = assess(&placed(|_| {}), &signals, &RiskRules::default());
        assert_eq!(rules_fired(&a), vec!["velocity_email", "velocity_ip"]);
        assert_eq!(
            a.reasons[0].detail,
            "4 orders from this email in the last hour (limit 3)"
        );
        assert_eq!(
            a.reasons[1].detail,
            "6 orders from this IP address in the last hour (limit 5)"
        );
        assert_eq!((a.score, a.decision), (60, RiskDecision::Review));
        let one = RiskSignals {
            orders_by_card: 4,
            ..quiet()
        };
        let a = assess(&placed(|_| {}), &one, &RiskRules::default());
        assert_eq!(
            (rules_fired(&a), a.score, a.decision),
            (vec!["velocity_card"], 30, RiskDecision::Accept)
        );
    }

    #[test]
    fn a_count_at_the_cap_is_reported_as_at_least() {
        let signals = RiskSignals {
            orders_by_card: MAX_COUNTED,
            ..quiet()
        };
        let a = assess(&placed(|_| {}), &signals, &RiskRules::default());
        assert_eq!(
            a.reasons[0].detail,
            "at least 1000 orders from this card in the last hour (limit 3)"
        );
    }

    #[test]
    fn large_totals_are_reviewed_and_very_large_ones_rejected() {
        let rules = RiskRules::default();
        // Grand total = unit price − 5.00 promotion + 2.40 tax + 5.00 shipping.
        let just_under = assess(&priced_at(199_760 - 1), &quiet(), &rules);
        assert_eq!(just_under.decision, RiskDecision::Accept);
        let review = assess(&priced_at(199_760), &quiet(), &rules);
        assert_eq!(
            (rules_fired(&review), review.decision),
            (vec!["amount_review"], RiskDecision::Review)
        );
        assert_eq!(
            review.reasons[0].detail,
            "order total 2000.00 USD is at least 2000 USD"
        );
        let reject = assess(&priced_at(1_999_760), &quiet(), &rules);
        assert_eq!(
            (rules_fired(&reject), reject.decision),
            (vec!["amount_reject"], RiskDecision::Reject)
        );
    }

    #[test]
    fn small_unit_currencies_use_their_own_thresholds() {
        let yen = |amount: i64| {
            placed(|b| {
                b["currency"] = json!("JPY");
                b["promo_codes"] = json!([]);
                b["lines"][0]["quantity"] = json!(1);
                b["lines"][0]["unit_price_minor"] = json!(amount);
                b["lines"][0]["tax_minor"] = json!(0);
                b["shipping"]["price_minor"] = json!(0);
            })
        };
        let rules = RiskRules::default();
        assert_eq!(
            assess(&yen(250_000), &quiet(), &rules).decision,
            RiskDecision::Accept
        );
        assert_eq!(
            assess(&yen(300_000), &quiet(), &rules).decision,
            RiskDecision::Review
        );
    }

    #[test]
    fn a_billing_country_other_than_the_shipping_country_adds_points() {
        let order = placed(|b| {
            b["billing_address"] = json!({"name": "Ada", "line1": "1 Rue", "city": "Paris",
                "postal_code": "75001", "country": "FR"});
        });
        let a = assess(&order, &quiet(), &RiskRules::default());
        assert_eq!(
            (rules_fired(&a), a.score, a.decision),
            (vec!["address_mismatch"], 30, RiskDecision::Accept)
        );
        assert_eq!(
            a.reasons[0].detail,
            "billing country FR differs from shipping country US"
        );
        let with_velocity = RiskSignals {
            orders_by_email: 4,
            ..quiet()
        };
        assert_eq!(
            assess(&order, &with_velocity, &RiskRules::default()).decision,
            RiskDecision::Review
        );
    }

    #[test]
    fn each_blocklist_rejects() {
        let rules = RiskRules::default();
        let cases = [
            (
                "blocklist_email",
                placed(|b| b["customer"]["email"] = json!("Blocked@Example.com")),
            ),
            (
                "blocklist_card",
                placed(|b| b["payment"]["token"] = json!("tok_4100000000000019")),
            ),
            (
                "blocklist_ip",
                placed(|b| b["risk_context"]["ip"] = json!("198.51.100.66")),
            ),
        ];
        for (rule, order) in cases {
            let a = assess(&order, &quiet(), &rules);
            assert_eq!(
                (rules_fired(&a), a.decision),
                (vec![rule], RiskDecision::Reject),
                "{rule}"
            );
        }
    }

    #[test]
    fn an_allowlisted_email_is_accepted_unless_a_blocklist_fired() {
        let rules = RiskRules::default();
        let busy = RiskSignals {
            orders_by_email: 10,
            orders_by_card: 10,
            orders_by_ip: 10,
        };
        let trusted = priced_at(1_999_760);
        let trusted = OrderPlaced {
            customer: waybill_schemas::events::Customer {
                email: waybill_schemas::Email::parse("trusted@example.com").expect("email"),
                ..trusted.customer
            },
            ..trusted
        };
        let a = assess(&trusted, &busy, &rules);
        assert_eq!(a.decision, RiskDecision::Accept);
        assert!(rules_fired(&a).contains(&"allowlist_email"));
        assert!(a.score >= 100, "the reasons still show what fired");
        let blocked_card = OrderPlaced {
            payment: Some(PaymentMethod::Card {
                token: "tok_4100000000000019".to_owned(),
            }),
            ..trusted
        };
        assert_eq!(
            assess(&blocked_card, &quiet(), &rules).decision,
            RiskDecision::Reject
        );
    }

    proptest! {
        #[test]
        fn the_decision_follows_the_score(email in 0u32..10, card in 0u32..10, ip in 0u32..10,
                                           price in 0i64..3_000_000, mismatch: bool) {
            let order = placed(|b| {
                b["lines"][0]["unit_price_minor"] = json!(price);
                b["promo_codes"] = json!([]);
                if mismatch {
                    b["billing_address"] = json!({"name": "A", "line1": "1", "city": "Berlin",
                        "postal_code": "10115", "country": "DE"});
                }
            });
            let rules = RiskRules::default();
            let a = assess(&order, &RiskSignals { orders_by_email: email, orders_by_card: card, orders_by_ip: ip }, &rules);
            prop_assert_eq!(a.score, a.reasons.iter().map(|r| r.points).sum::<u32>());
            let expected = if a.score >= rules.reject_at { RiskDecision::Reject }
                else if a.score >= rules.review_at { RiskDecision::Review } else { RiskDecision::Accept };
            prop_assert_eq!(a.decision, expected);
            prop_assert!(a.reasons.iter().all(|r| !r.detail.is_empty() && r.points > 0));
        }
    }
}
