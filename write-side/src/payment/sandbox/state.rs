//! The sandbox gateway's ledger: authorizations, captures and refunds, and the rules that move
//! them. No I/O and no clock: `now` is a parameter, and each change returns the webhook events it
//! causes for the shell to deliver.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use waybill_schemas::{Money, OrderId};

use crate::payment::webhook::{
    AuthorizationFailed, AuthorizationSucceeded, AuthorizationVoided, CaptureSucceeded,
    GatewayEventKind, RefundSucceeded,
};
use crate::payment::wire::{self, AuthorizationStatus, ChallengeResult};

/// What a test card does, chosen by the token `tok_<card number>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardBehaviour {
    Approve,
    ThreeDSecure,
    Decline {
        code: &'static str,
        message: &'static str,
    },
    /// The gateway fails (HTTP 502) and nothing is recorded.
    ProcessingError,
    /// Approves, but answers only after the configured `slow_response`.
    Slow,
    /// Approves an order's first authorization and declines any later one (`card_declined`):
    /// an extra charge after the order's own payment fails.
    FirstOnly,
}

/// The test cards. Anything else is declined as `invalid_token`.
pub const TEST_CARDS: &[(&str, CardBehaviour)] = &[
    ("4242424242424242", CardBehaviour::Approve),
    ("4000000000003220", CardBehaviour::ThreeDSecure),
    (
        "4000000000000002",
        CardBehaviour::Decline {
            code: "card_declined",
            message: "the card was declined",
        },
    ),
    (
        "4000000000009995",
        CardBehaviour::Decline {
            code: "insufficient_funds",
            message: "the card has insufficient funds",
        },
    ),
    (
        "4000000000000069",
        CardBehaviour::Decline {
            code: "expired_card",
            message: "the card has expired",
        },
    ),
    ("4000000000000119", CardBehaviour::ProcessingError),
    ("4000000000006975", CardBehaviour::Slow),
    ("4000000000000341", CardBehaviour::FirstOnly),
];

const AUTHENTICATION_FAILED: &str = "authentication_failed";
const CHALLENGE_EXPIRED: &str = "challenge_expired";
const CHALLENGE_EXPIRED_MESSAGE: &str = "the 3-D Secure challenge was not completed in time";

const INVALID_TOKEN: CardBehaviour = CardBehaviour::Decline {
    code: "invalid_token",
    message: "the token is not a sandbox test card",
};

/// The behaviour of `token`.
pub fn card_behaviour(token: &str) -> CardBehaviour {
    token
        .strip_prefix("tok_")
        .and_then(|number| TEST_CARDS.iter().find(|(card, _)| *card == number))
        .map(|(_, behaviour)| *behaviour)
        .unwrap_or(INVALID_TOKEN)
}

/// Why the ledger refused a request; the shell turns it into problem+json.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// HTTP 404.
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },
    /// HTTP 402: the request is valid but the money cannot move.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// HTTP 409: a challenge already settled the other way.
    #[error("challenge {id} was already completed as {status:?}")]
    AlreadySettled {
        id: String,
        status: AuthorizationStatus,
    },
    /// HTTP 422.
    #[error("{field} {detail}")]
    Invalid { field: &'static str, detail: String },
    /// HTTP 502: the simulated processor failed; nothing was recorded.
    #[error("the card processor failed; nothing was recorded, retry later")]
    ProcessingError,
}

impl Refusal {
    pub(super) fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Refusal::Refused {
            code,
            message: message.into(),
        }
    }
}

/// How long holds and challenges last, and where challenge pages live.
#[derive(Debug, Clone)]
pub struct Policy {
    pub public_url: String,
    pub auth_validity: Duration,
    pub challenge_validity: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Stage {
    Challenge { until: DateTime<Utc> },
    Authorized { until: DateTime<Utc> },
    Declined { code: String, message: String },
    Voided,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AuthorizationRecord {
    id: String,
    order_id: OrderId,
    amount: Money,
    captured: Money,
    three_ds: bool,
    /// True when the card asked for 3-D Secure.
    challenged: bool,
    stage: Stage,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CaptureRecord {
    pub(super) id: String,
    pub(super) authorization_id: String,
    pub(super) order_id: OrderId,
    pub(super) amount: Money,
    pub(super) refunded: Money,
    pub(super) created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RefundRecord {
    pub(super) id: String,
    pub(super) order_id: OrderId,
    pub(super) amount: Money,
    pub(super) created_at: DateTime<Utc>,
}

/// The in-memory ledger.
#[derive(Debug)]
pub struct Ledger {
    policy: Policy,
    authorizations: HashMap<String, AuthorizationRecord>,
    pub(super) captures: HashMap<String, CaptureRecord>,
    /// Every refund, in the order they were made.
    pub(super) refunds: Vec<RefundRecord>,
    pub(super) disputes: HashMap<String, super::disputes::DisputeRecord>,
    pending_challenges: HashSet<String>,
}

/// Everything the ledger holds but its policy: what the sandbox saves and restores
/// ([`super::persisted`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LedgerSnapshot {
    authorizations: HashMap<String, AuthorizationRecord>,
    captures: HashMap<String, CaptureRecord>,
    refunds: Vec<RefundRecord>,
    disputes: HashMap<String, super::disputes::DisputeRecord>,
    pending_challenges: HashSet<String>,
}

pub(super) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

impl Ledger {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            authorizations: HashMap::new(),
            captures: HashMap::new(),
            refunds: Vec::new(),
            disputes: HashMap::new(),
            pending_challenges: HashSet::new(),
        }
    }

    /// A ledger holding what `snapshot` held, under `policy`.
    pub fn restore(policy: Policy, snapshot: LedgerSnapshot) -> Self {
        Self {
            policy,
            authorizations: snapshot.authorizations,
            captures: snapshot.captures,
            refunds: snapshot.refunds,
            disputes: snapshot.disputes,
            pending_challenges: snapshot.pending_challenges,
        }
    }

    /// A copy of everything the ledger holds (for saving).
    pub fn snapshot(&self) -> LedgerSnapshot {
        LedgerSnapshot {
            authorizations: self.authorizations.clone(),
            captures: self.captures.clone(),
            refunds: self.refunds.clone(),
            disputes: self.disputes.clone(),
            pending_challenges: self.pending_challenges.clone(),
        }
    }

    /// Decides an authorization by the card behind `token`.
    pub fn authorize(
        &mut self,
        order_id: OrderId,
        amount: Money,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<wire::Authorization, Refusal> {
        if amount.minor <= 0 {
            return Err(Refusal::Invalid {
                field: "amount.minor",
                detail: format!("must be positive, got {}", amount.minor),
            });
        }
        let behaviour = match card_behaviour(token) {
            CardBehaviour::FirstOnly
                if self.authorizations.values().any(|a| a.order_id == order_id) =>
            {
                CardBehaviour::Decline {
                    code: "card_declined",
                    message: "the card was declined",
                }
            }
            CardBehaviour::FirstOnly => CardBehaviour::Approve,
            other => other,
        };
        let stage = match behaviour {
            CardBehaviour::Approve | CardBehaviour::Slow | CardBehaviour::FirstOnly => {
                Stage::Authorized {
                    until: now + self.policy.auth_validity,
                }
            }
            CardBehaviour::ThreeDSecure => Stage::Challenge {
                until: now + self.policy.challenge_validity,
            },
            CardBehaviour::Decline { code, message } => Stage::Declined {
                code: code.to_owned(),
                message: message.to_owned(),
            },
            CardBehaviour::ProcessingError => return Err(Refusal::ProcessingError),
        };
        let record = AuthorizationRecord {
            id: new_id("auth"),
            order_id,
            amount,
            captured: Money::zero(amount.currency),
            three_ds: false,
            challenged: matches!(stage, Stage::Challenge { .. }),
            stage,
            created_at: now,
        };
        if matches!(record.stage, Stage::Challenge { .. }) {
            self.pending_challenges.insert(record.id.clone());
        }
        let view = self.view(&record, now);
        self.authorizations.insert(record.id.clone(), record);
        Ok(view)
    }

    /// The authorization as it stands at `now`.
    pub fn authorization(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<wire::Authorization, Refusal> {
        self.authorizations
            .get(id)
            .map(|record| self.view(record, now))
            .ok_or_else(|| Refusal::NotFound {
                what: "authorization",
                id: id.to_owned(),
            })
    }

    /// Captures `amount` of what is still uncaptured.
    pub fn capture(
        &mut self,
        authorization_id: &str,
        amount: Money,
        now: DateTime<Utc>,
    ) -> Result<(wire::Capture, GatewayEventKind), Refusal> {
        let record = self.authorization_mut(authorization_id)?;
        check_amount(amount, record.amount)?;
        match record.stage {
            Stage::Authorized { until } if now >= until => {
                return Err(Refusal::refused(
                    "authorization_expired",
                    format!("authorization {authorization_id} expired at {until}"),
                ))
            }
            Stage::Authorized { .. } => {}
            Stage::Challenge { .. } => {
                return Err(Refusal::refused(
                    "authorization_pending",
                    "the 3-D Secure challenge is not completed",
                ))
            }
            Stage::Declined { .. } => {
                return Err(Refusal::refused(
                    "authorization_declined",
                    "a declined authorization cannot be captured",
                ))
            }
            Stage::Voided => {
                return Err(Refusal::refused(
                    "authorization_voided",
                    "a voided authorization cannot be captured",
                ))
            }
        }
        let remaining = record.amount.minor - record.captured.minor;
        if amount.minor > remaining {
            return Err(Refusal::refused(
                "amount_exceeds_authorized",
                format!(
                    "capturing {amount} would exceed the authorized {}; {} remains",
                    record.amount,
                    Money::new(remaining, amount.currency)
                ),
            ));
        }
        record.captured.minor += amount.minor;
        let capture = CaptureRecord {
            id: new_id("cap"),
            authorization_id: record.id.clone(),
            order_id: record.order_id,
            amount,
            refunded: Money::zero(amount.currency),
            created_at: now,
        };
        let event = GatewayEventKind::CaptureSucceeded(CaptureSucceeded {
            capture_id: capture.id.clone(),
            authorization_id: capture.authorization_id.clone(),
            order_id: capture.order_id,
            amount,
        });
        let view = capture_view(&capture);
        self.captures.insert(capture.id.clone(), capture);
        Ok((view, event))
    }

    /// Releases an authorization. Voiding a voided one answers the same without a new event.
    pub fn void(
        &mut self,
        authorization_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(wire::Authorization, Option<GatewayEventKind>), Refusal> {
        let record = self.authorization_mut(authorization_id)?;
        let event = match record.stage {
            Stage::Voided => None,
            Stage::Declined { .. } => {
                return Err(Refusal::refused(
                    "authorization_declined",
                    "a declined authorization holds nothing to void",
                ))
            }
            Stage::Authorized { until } if now >= until => {
                return Err(Refusal::refused(
                    "authorization_expired",
                    format!("authorization {authorization_id} expired at {until}; nothing is held"),
                ))
            }
            Stage::Authorized { .. } if record.captured.minor > 0 => {
                return Err(Refusal::refused(
                    "authorization_captured",
                    "an authorization with captures cannot be voided; refund instead",
                ))
            }
            Stage::Authorized { .. } | Stage::Challenge { .. } => {
                record.stage = Stage::Voided;
                Some(GatewayEventKind::AuthorizationVoided(AuthorizationVoided {
                    authorization_id: record.id.clone(),
                    order_id: record.order_id,
                }))
            }
        };
        self.pending_challenges.remove(authorization_id);
        let view = self.authorization(authorization_id, now)?;
        Ok((view, event))
    }

    /// Refunds `amount` of a capture, never more than captured minus refunded.
    pub fn refund(
        &mut self,
        capture_id: &str,
        amount: Money,
        now: DateTime<Utc>,
    ) -> Result<(wire::Refund, GatewayEventKind), Refusal> {
        let capture = self
            .captures
            .get_mut(capture_id)
            .ok_or_else(|| Refusal::NotFound {
                what: "capture",
                id: capture_id.to_owned(),
            })?;
        check_amount(amount, capture.amount)?;
        let refundable = capture.amount.minor - capture.refunded.minor;
        if amount.minor > refundable {
            return Err(Refusal::refused(
                "amount_exceeds_refundable",
                format!(
                    "refunding {amount} would exceed what is left to refund, {}",
                    Money::new(refundable, amount.currency)
                ),
            ));
        }
        capture.refunded.minor += amount.minor;
        let refund = wire::Refund {
            id: new_id("re"),
            capture_id: capture.id.clone(),
            amount,
            created_at: now,
        };
        let event = GatewayEventKind::RefundSucceeded(RefundSucceeded {
            refund_id: refund.id.clone(),
            capture_id: capture.id.clone(),
            authorization_id: capture.authorization_id.clone(),
            order_id: capture.order_id,
            amount,
        });
        self.refunds.push(RefundRecord {
            id: refund.id.clone(),
            order_id: capture.order_id,
            amount,
            created_at: now,
        });
        Ok((refund, event))
    }

    /// Settles a pending 3-D Secure challenge. Settling it again the same way answers the same
    /// without a new event; the other way is refused. Past its deadline it has failed (the
    /// `authorization.failed` event comes from [`Ledger::expire_challenges`]).
    pub fn complete_challenge(
        &mut self,
        authorization_id: &str,
        result: ChallengeResult,
        now: DateTime<Utc>,
    ) -> Result<(wire::Authorization, Option<GatewayEventKind>), Refusal> {
        let auth_validity = self.policy.auth_validity;
        let record = self.authorization_mut(authorization_id)?;
        if !record.challenged {
            return Err(Refusal::NotFound {
                what: "challenge",
                id: authorization_id.to_owned(),
            });
        }
        let event = match (&record.stage, result) {
            (Stage::Challenge { until }, ChallengeResult::Pass) if now < *until => {
                let until = now + auth_validity;
                record.stage = Stage::Authorized { until };
                record.three_ds = true;
                Some(GatewayEventKind::AuthorizationSucceeded(
                    AuthorizationSucceeded {
                        authorization_id: record.id.clone(),
                        order_id: record.order_id,
                        amount: record.amount,
                        three_ds: true,
                        expires_at: until,
                    },
                ))
            }
            (Stage::Challenge { until }, ChallengeResult::Fail) if now < *until => {
                let (stage, event) = challenge_failed(
                    record,
                    AUTHENTICATION_FAILED,
                    "the customer failed 3-D Secure authentication",
                );
                record.stage = stage;
                Some(event)
            }
            (Stage::Authorized { .. }, ChallengeResult::Pass) => None,
            (Stage::Declined { code, .. }, ChallengeResult::Fail)
                if code == AUTHENTICATION_FAILED =>
            {
                None
            }
            _ => {
                let status = self.authorization(authorization_id, now)?.status;
                return Err(Refusal::AlreadySettled {
                    id: authorization_id.to_owned(),
                    status,
                });
            }
        };
        if event.is_some() {
            self.pending_challenges.remove(authorization_id);
        }
        Ok((self.authorization(authorization_id, now)?, event))
    }

    /// Fails every challenge whose deadline has passed; returns their `authorization.failed`
    /// events.
    pub fn expire_challenges(&mut self, now: DateTime<Utc>) -> Vec<GatewayEventKind> {
        let due: Vec<String> = self
            .pending_challenges
            .iter()
            .filter(|id| {
                self.authorizations
                    .get(*id)
                    .is_some_and(|r| matches!(r.stage, Stage::Challenge { until } if now >= until))
            })
            .cloned()
            .collect();
        due.iter()
            .filter_map(|id| self.expire_challenge(id, now))
            .collect()
    }

    fn expire_challenge(&mut self, id: &str, now: DateTime<Utc>) -> Option<GatewayEventKind> {
        let record = self.authorizations.get_mut(id)?;
        match record.stage {
            Stage::Challenge { until } if now >= until => {
                let (stage, event) =
                    challenge_failed(record, CHALLENGE_EXPIRED, CHALLENGE_EXPIRED_MESSAGE);
                record.stage = stage;
                self.pending_challenges.remove(id);
                Some(event)
            }
            _ => None,
        }
    }

    fn authorization_mut(&mut self, id: &str) -> Result<&mut AuthorizationRecord, Refusal> {
        self.authorizations
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound {
                what: "authorization",
                id: id.to_owned(),
            })
    }

    fn view(&self, record: &AuthorizationRecord, now: DateTime<Utc>) -> wire::Authorization {
        let (status, expires_at, decline) = match &record.stage {
            Stage::Challenge { until } if now >= *until => (
                AuthorizationStatus::Declined,
                None,
                Some((
                    CHALLENGE_EXPIRED.to_owned(),
                    CHALLENGE_EXPIRED_MESSAGE.to_owned(),
                )),
            ),
            Stage::Challenge { until } => {
                (AuthorizationStatus::ChallengeRequired, Some(*until), None)
            }
            Stage::Authorized { until } if now >= *until => {
                (AuthorizationStatus::Expired, Some(*until), None)
            }
            Stage::Authorized { until } => (AuthorizationStatus::Authorized, Some(*until), None),
            Stage::Declined { code, message } => (
                AuthorizationStatus::Declined,
                None,
                Some((code.clone(), message.clone())),
            ),
            Stage::Voided => (AuthorizationStatus::Voided, None, None),
        };
        let challenge_url = matches!(status, AuthorizationStatus::ChallengeRequired)
            .then(|| format!("{}/challenge/{}", self.policy.public_url, record.id));
        let (decline_code, decline_message) = decline.unzip();
        wire::Authorization {
            id: record.id.clone(),
            order_id: record.order_id,
            status,
            amount: record.amount,
            captured: record.captured,
            three_ds: record.three_ds,
            expires_at,
            challenge_url,
            decline_code,
            decline_message,
            created_at: record.created_at,
        }
    }
}

fn challenge_failed(
    record: &AuthorizationRecord,
    code: &str,
    message: &str,
) -> (Stage, GatewayEventKind) {
    (
        Stage::Declined {
            code: code.to_owned(),
            message: message.to_owned(),
        },
        GatewayEventKind::AuthorizationFailed(AuthorizationFailed {
            authorization_id: record.id.clone(),
            order_id: record.order_id,
            code: code.to_owned(),
            message: message.to_owned(),
        }),
    )
}

fn check_amount(amount: Money, of: Money) -> Result<(), Refusal> {
    if amount.currency != of.currency {
        return Err(Refusal::Invalid {
            field: "amount.currency",
            detail: format!("must be {}, got {}", of.currency, amount.currency),
        });
    }
    if amount.minor <= 0 {
        return Err(Refusal::Invalid {
            field: "amount.minor",
            detail: format!("must be positive, got {}", amount.minor),
        });
    }
    Ok(())
}

fn capture_view(capture: &CaptureRecord) -> wire::Capture {
    wire::Capture {
        id: capture.id.clone(),
        authorization_id: capture.authorization_id.clone(),
        amount: capture.amount,
        refunded: capture.refunded,
        created_at: capture.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use waybill_schemas::Currency;

    const APPROVE: &str = "tok_4242424242424242";
    const THREE_DS: &str = "tok_4000000000003220";

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").expect("EUR"))
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
            .single()
            .expect("valid time")
    }

    fn ledger() -> Ledger {
        Ledger::new(Policy {
            public_url: "http://gw.test".into(),
            auth_validity: Duration::days(7),
            challenge_validity: Duration::minutes(10),
        })
    }

    fn authorized(ledger: &mut Ledger, minor: i64) -> String {
        let auth = ledger
            .authorize(OrderId::new_v7(), eur(minor), APPROVE, t0())
            .expect("authorizes");
        assert_eq!(auth.status, AuthorizationStatus::Authorized);
        auth.id
    }

    fn refused_code<T: std::fmt::Debug>(result: Result<T, Refusal>) -> &'static str {
        match result {
            Err(Refusal::Refused { code, .. }) => code,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn each_test_card_behaves_as_documented() {
        assert_eq!(card_behaviour(APPROVE), CardBehaviour::Approve);
        assert_eq!(card_behaviour(THREE_DS), CardBehaviour::ThreeDSecure);
        assert_eq!(
            card_behaviour("tok_4000000000000119"),
            CardBehaviour::ProcessingError
        );
        assert_eq!(card_behaviour("tok_4000000000006975"), CardBehaviour::Slow);
        assert!(matches!(
            card_behaviour("4242424242424242"),
            CardBehaviour::Decline {
                code: "invalid_token",
                ..
            }
        ));
    }

    #[test]
    fn the_first_only_card_declines_an_orders_later_authorizations() {
        let card = "tok_4000000000000341";
        let mut ledger = ledger();
        let order = OrderId::new_v7();
        let first = ledger
            .authorize(order, eur(1000), card, t0())
            .expect("first");
        assert_eq!(first.status, AuthorizationStatus::Authorized);
        let extra = ledger
            .authorize(order, eur(300), card, t0())
            .expect("answered");
        assert_eq!(extra.status, AuthorizationStatus::Declined);
        let other_order = ledger
            .authorize(OrderId::new_v7(), eur(300), card, t0())
            .expect("another order");
        assert_eq!(other_order.status, AuthorizationStatus::Authorized);
    }

    #[test]
    fn partial_captures_never_add_up_past_the_authorized_amount() {
        let mut ledger = ledger();
        let id = authorized(&mut ledger, 1000);
        ledger.capture(&id, eur(600), t0()).expect("first part");
        let over = ledger.capture(&id, eur(401), t0());
        assert_eq!(refused_code(over), "amount_exceeds_authorized");
        ledger.capture(&id, eur(400), t0()).expect("the rest");
        let view = ledger.authorization(&id, t0()).expect("exists");
        assert_eq!(view.captured, eur(1000));
    }

    #[test]
    fn an_expired_authorization_cannot_be_captured() {
        let mut ledger = ledger();
        let id = authorized(&mut ledger, 1000);
        let later = t0() + Duration::days(7);
        assert_eq!(
            refused_code(ledger.capture(&id, eur(1000), later)),
            "authorization_expired"
        );
        assert_eq!(
            ledger.authorization(&id, later).expect("exists").status,
            AuthorizationStatus::Expired
        );
    }

    #[test]
    fn voiding_twice_answers_voided_with_one_event() {
        let mut ledger = ledger();
        let id = authorized(&mut ledger, 1000);
        let (first, event) = ledger.void(&id, t0()).expect("voids");
        assert_eq!(first.status, AuthorizationStatus::Voided);
        assert!(event.is_some());
        let (again, event) = ledger.void(&id, t0()).expect("still voided");
        assert_eq!(again.status, AuthorizationStatus::Voided);
        assert!(event.is_none());
        assert_eq!(
            refused_code(ledger.capture(&id, eur(1), t0())),
            "authorization_voided"
        );
    }

    #[test]
    fn refunds_never_exceed_captured_minus_refunded() {
        let mut ledger = ledger();
        let id = authorized(&mut ledger, 1000);
        let (capture, _) = ledger.capture(&id, eur(700), t0()).expect("captures");
        ledger.refund(&capture.id, eur(500), t0()).expect("refunds");
        assert_eq!(
            refused_code(ledger.refund(&capture.id, eur(201), t0())),
            "amount_exceeds_refundable"
        );
        ledger
            .refund(&capture.id, eur(200), t0())
            .expect("the rest");
    }

    #[test]
    fn a_capture_in_another_currency_names_the_field() {
        let mut ledger = ledger();
        let id = authorized(&mut ledger, 1000);
        let usd = Money::new(100, Currency::parse("USD").expect("USD"));
        assert!(matches!(
            ledger.capture(&id, usd, t0()),
            Err(Refusal::Invalid {
                field: "amount.currency",
                ..
            })
        ));
    }

    #[test]
    fn a_passed_challenge_authorizes_once_and_cannot_then_fail() {
        let mut ledger = ledger();
        let auth = ledger
            .authorize(OrderId::new_v7(), eur(900), THREE_DS, t0())
            .expect("answers");
        assert_eq!(auth.status, AuthorizationStatus::ChallengeRequired);
        assert_eq!(
            auth.challenge_url.as_deref(),
            Some(format!("http://gw.test/challenge/{}", auth.id).as_str())
        );
        let (view, event) = ledger
            .complete_challenge(&auth.id, ChallengeResult::Pass, t0())
            .expect("passes");
        assert_eq!(view.status, AuthorizationStatus::Authorized);
        assert!(view.three_ds);
        assert!(matches!(
            event,
            Some(GatewayEventKind::AuthorizationSucceeded(_))
        ));
        let (_, again) = ledger
            .complete_challenge(&auth.id, ChallengeResult::Pass, t0())
            .expect("same answer");
        assert!(again.is_none());
        assert!(matches!(
            ledger.complete_challenge(&auth.id, ChallengeResult::Fail, t0()),
            Err(Refusal::AlreadySettled { .. })
        ));
    }

    #[test]
    fn an_unanswered_challenge_fails_at_its_deadline() {
        let mut ledger = ledger();
        let auth = ledger
            .authorize(OrderId::new_v7(), eur(900), THREE_DS, t0())
            .expect("answers");
        assert!(ledger
            .expire_challenges(t0() + Duration::minutes(9))
            .is_empty());
        let deadline = t0() + Duration::minutes(10);
        let events = ledger.expire_challenges(deadline);
        assert!(matches!(
            events.as_slice(),
            [GatewayEventKind::AuthorizationFailed(AuthorizationFailed { code, .. })]
                if code == CHALLENGE_EXPIRED
        ));
        assert!(ledger.expire_challenges(deadline).is_empty());
        assert!(matches!(
            ledger.complete_challenge(&auth.id, ChallengeResult::Pass, deadline),
            Err(Refusal::AlreadySettled {
                status: AuthorizationStatus::Declined,
                ..
            })
        ));
    }

    #[test]
    fn a_frictionless_authorization_has_no_challenge() {
        let mut ledger = ledger();
        let id = authorized(&mut ledger, 1000);
        assert!(matches!(
            ledger.complete_challenge(&id, ChallengeResult::Pass, t0()),
            Err(Refusal::NotFound {
                what: "challenge",
                ..
            })
        ));
    }
}
