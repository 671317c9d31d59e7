//! Recording what the payment gateway did: 3-D Secure challenge, authorization, decline,
//! capture, void and the hold's expiry. Card orders only; prepaid orders take none of these.

use chrono::{DateTime, Utc};
use waybill_schemas::events::{
    PaymentAuthorizationExpired, PaymentAuthorized, PaymentCaptureFailed, PaymentCaptured,
    PaymentChallengeRequired, PaymentDeclined, PaymentVoided,
};
use waybill_schemas::{Money, OrderEvent};

use super::{OrderError, OrderState, PaymentState};

impl OrderState {
    fn ensure_card(&self, action: &'static str) -> Result<(), OrderError> {
        if self.is_prepaid() {
            return Err(OrderError::PaymentNotRequired {
                order_id: self.order_id(),
                action,
            });
        }
        Ok(())
    }

    fn blocked_by_payment(&self, action: &'static str) -> OrderError {
        OrderError::BlockedByPayment {
            order_id: self.order_id(),
            action,
            payment: self.payment(),
        }
    }

    pub(super) fn ensure_currency(&self, amount: Money) -> Result<(), OrderError> {
        if amount.currency != self.placed.currency {
            return Err(OrderError::CurrencyMismatch {
                order_id: self.order_id(),
                expected: self.placed.currency,
                found: amount.currency,
            });
        }
        Ok(())
    }

    pub(super) fn record_challenge(
        &self,
        authorization_id: &str,
        challenge_url: &str,
        expires_at: DateTime<Utc>,
        action: &'static str,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        self.ensure_card(action)?;
        if let Some(recorded) = &self.challenge {
            if recorded.authorization_id == authorization_id {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format_args!("a 3-D Secure challenge on {}", recorded.authorization_id),
                format_args!("a challenge on {authorization_id}"),
            ));
        }
        // A hold taken at the gateway is a fact even on an order cancelled meanwhile (the
        // flow's call raced the cancel): recorded, so the flow voids it.
        if self.payment() != PaymentState::None {
            return Err(self.blocked_by_payment(action));
        }
        Ok(vec![OrderEvent::PaymentChallengeRequired(
            PaymentChallengeRequired {
                order_id: self.order_id(),
                authorization_id: authorization_id.to_owned(),
                challenge_url: challenge_url.to_owned(),
                expires_at,
            },
        )])
    }

    /// Exactly the order's grand total, once; after a challenge, only for that challenge's id.
    pub(super) fn record_authorization(
        &self,
        authorization_id: &str,
        amount: Money,
        three_ds: bool,
        expires_at: DateTime<Utc>,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        self.ensure_card(action)?;
        if let Some(recorded) = &self.authorization {
            if recorded.authorization_id == authorization_id && recorded.amount == amount {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format_args!(
                    "authorization {} of {}",
                    recorded.authorization_id, recorded.amount
                ),
                format_args!("authorization {authorization_id} of {amount}"),
            ));
        }
        if let Some(decline) = &self.decline {
            return Err(self.conflict(
                format_args!("a decline ({})", decline.code),
                format_args!("authorization {authorization_id}"),
            ));
        }
        // A hold taken at the gateway is a fact even on an order cancelled meanwhile (the
        // flow's call raced the cancel): recorded, so the flow voids it.
        match self.payment() {
            PaymentState::None => {}
            PaymentState::Challenge {
                authorization_id: pending,
                ..
            } if pending != authorization_id => {
                return Err(self.conflict(
                    format_args!("a 3-D Secure challenge on {pending}"),
                    format_args!("authorization {authorization_id}"),
                ))
            }
            PaymentState::Challenge { .. } => {}
            _ => return Err(self.blocked_by_payment(action)),
        }
        self.ensure_currency(amount)?;
        let expected = self.placed.totals.grand_total;
        if amount != expected {
            return Err(OrderError::AmountMismatch {
                order_id: self.order_id(),
                expected,
                found: amount,
            });
        }
        Ok(vec![OrderEvent::PaymentAuthorized(PaymentAuthorized {
            order_id: self.order_id(),
            authorization_id: authorization_id.to_owned(),
            amount,
            three_ds,
            expires_at,
            authorized_at: now,
        })])
    }

    /// Refused once an authorization is recorded. After a cancellation only the decline of a
    /// pending challenge is accepted: it tells us that hold never came to be.
    pub(super) fn record_decline(
        &self,
        authorization_id: &Option<String>,
        code: &str,
        message: &str,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        self.ensure_card(action)?;
        if let Some(recorded) = &self.decline {
            if recorded.authorization_id == *authorization_id && recorded.code == code {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format_args!("a decline ({})", recorded.code),
                format_args!("a decline ({code})"),
            ));
        }
        if let Some(recorded) = &self.authorization {
            return Err(self.conflict(
                format_args!("authorization {}", recorded.authorization_id),
                format_args!("a decline ({code})"),
            ));
        }
        match self.payment() {
            PaymentState::Challenge {
                authorization_id: pending,
                ..
            } => {
                if authorization_id.as_ref().is_some_and(|id| *id != pending) {
                    return Err(OrderError::UnknownAuthorization {
                        order_id: self.order_id(),
                        authorization_id: authorization_id.clone().unwrap_or_default(),
                    });
                }
            }
            PaymentState::None => self.ensure_not_cancelled(action)?,
            _ => return Err(self.blocked_by_payment(action)),
        }
        Ok(vec![OrderEvent::PaymentDeclined(PaymentDeclined {
            order_id: self.order_id(),
            authorization_id: authorization_id.clone(),
            code: code.to_owned(),
            message: message.to_owned(),
            declined_at: now,
        })])
    }

    /// Only on a confirmed, uncancelled order, and never more than is left on the authorization.
    pub(super) fn record_capture(
        &self,
        authorization_id: &str,
        capture_id: &str,
        amount: Money,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        self.ensure_card(action)?;
        if let Some(recorded) = self.captures.iter().find(|c| c.capture_id == capture_id) {
            if recorded.amount == amount
                && self
                    .authorization
                    .as_ref()
                    .is_some_and(|a| a.authorization_id == authorization_id)
            {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format_args!("capture {capture_id} of {}", recorded.amount),
                format_args!("capture {capture_id} of {amount} on {authorization_id}"),
            ));
        }
        self.ensure_not_cancelled(action)?;
        let order_id = self.order_id();
        if self.confirmed.is_none() {
            return Err(OrderError::NotConfirmed { order_id, action });
        }
        let Some(authorization) = &self.authorization else {
            return Err(self.blocked_by_payment(action));
        };
        if authorization.authorization_id != authorization_id {
            return Err(OrderError::UnknownAuthorization {
                order_id,
                authorization_id: authorization_id.to_owned(),
            });
        }
        if self.void.is_some() || self.authorization_expired || self.capture_failure.is_some() {
            return Err(self.blocked_by_payment(action));
        }
        self.ensure_currency(amount)?;
        if amount.minor <= 0 {
            return Err(OrderError::NonPositiveCapture { order_id, amount });
        }
        let remaining = self.capturable();
        if amount.minor > remaining.minor {
            return Err(OrderError::CaptureExceedsAuthorization {
                authorization_id: authorization_id.to_owned(),
                amount,
                remaining,
            });
        }
        Ok(vec![OrderEvent::PaymentCaptured(PaymentCaptured {
            order_id,
            authorization_id: authorization_id.to_owned(),
            capture_id: capture_id.to_owned(),
            amount,
            captured_at: now,
        })])
    }

    /// A compensation: releases a live hold (authorized, or a challenge still pending) that
    /// nothing was captured from. A confirmed order keeps its hold unless it is cancelled.
    pub(super) fn record_void(
        &self,
        authorization_id: &str,
        reason: &str,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        self.ensure_card(action)?;
        if let Some(recorded) = &self.void {
            if recorded.authorization_id == authorization_id {
                return Ok(vec![]);
            }
        }
        let payment = self.payment();
        let Some(live) = payment.live_authorization_id() else {
            return Err(self.blocked_by_payment(action));
        };
        if live != authorization_id {
            return Err(OrderError::UnknownAuthorization {
                order_id: self.order_id(),
                authorization_id: authorization_id.to_owned(),
            });
        }
        if self.confirmed.is_some() && !self.is_cancelled() {
            return Err(OrderError::ConfirmedNotCancelled {
                order_id: self.order_id(),
                action,
            });
        }
        Ok(vec![OrderEvent::PaymentVoided(PaymentVoided {
            order_id: self.order_id(),
            authorization_id: authorization_id.to_owned(),
            reason: reason.to_owned(),
            voided_at: now,
        })])
    }

    /// The gateway refused for good to capture from the order's live authorization: recorded
    /// once (a repeat for the same authorization changes nothing); only while it is authorized
    /// and nothing was captured from it.
    pub(super) fn record_capture_failure(
        &self,
        authorization_id: &str,
        amount: Money,
        code: &str,
        message: &str,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        self.ensure_card(action)?;
        if self
            .capture_failure
            .as_ref()
            .is_some_and(|f| f.authorization_id == authorization_id)
        {
            return Ok(vec![]);
        }
        let PaymentState::Authorized {
            authorization_id: live,
            ..
        } = self.payment()
        else {
            return Err(self.blocked_by_payment(action));
        };
        if live != authorization_id {
            return Err(OrderError::UnknownAuthorization {
                order_id: self.order_id(),
                authorization_id: authorization_id.to_owned(),
            });
        }
        Ok(vec![OrderEvent::PaymentCaptureFailed(
            PaymentCaptureFailed {
                order_id: self.order_id(),
                authorization_id: authorization_id.to_owned(),
                amount,
                code: code.to_owned(),
                message: message.to_owned(),
                failed_at: now,
            },
        )])
    }

    /// The hold lapsed: only an authorized, uncaptured hold whose `expires_at` has passed.
    pub(super) fn expire_authorization(
        &self,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        self.ensure_card(action)?;
        if self.authorization_expired {
            return Ok(vec![]);
        }
        let PaymentState::Authorized {
            authorization_id,
            expires_at,
            ..
        } = self.payment()
        else {
            return Err(self.blocked_by_payment(action));
        };
        if now < expires_at {
            return Err(OrderError::AuthorizationNotExpired {
                order_id: self.order_id(),
                authorization_id,
                expires_at,
            });
        }
        Ok(vec![OrderEvent::PaymentAuthorizationExpired(
            PaymentAuthorizationExpired {
                order_id: self.order_id(),
                authorization_id,
                expired_at: now,
            },
        )])
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use waybill_schemas::events::{CancelReason, CaptureMode};
    use waybill_schemas::{Currency, Money};

    use super::super::fixtures::*;
    use super::super::*;

    fn week() -> chrono::DateTime<chrono::Utc> {
        t0() + Duration::days(7)
    }

    fn reserved(payment: Option<waybill_schemas::events::PaymentMethod>) -> Order {
        with(
            placed_order(payment),
            &[accept_risk(), reserve_all(t0() + minutes(15))],
            t0(),
        )
    }

    fn authorized() -> Order {
        with(reserved(card()), &[authorize("auth_1", week())], t0())
    }

    /// Confirmed for capture on shipment, so it can still be cancelled before the capture.
    fn confirmed() -> Order {
        with(
            ready_to_confirm(),
            &[OrderCommand::Confirm {
                capture_mode: CaptureMode::OnShipment,
            }],
            t0(),
        )
    }

    fn challenge(id: &str) -> OrderCommand {
        OrderCommand::RecordChallenge {
            authorization_id: id.into(),
            challenge_url: format!("https://pay.example/3ds/{id}"),
            expires_at: t0() + minutes(10),
        }
    }

    fn decline(id: Option<&str>) -> OrderCommand {
        OrderCommand::RecordDecline {
            authorization_id: id.map(str::to_owned),
            code: "card_declined".into(),
            message: "The card was declined".into(),
        }
    }

    fn capture(capture_id: &str, minor: i64) -> OrderCommand {
        OrderCommand::RecordCapture {
            authorization_id: "auth_1".into(),
            capture_id: capture_id.into(),
            amount: usd(minor),
        }
    }

    fn void(id: &str) -> OrderCommand {
        OrderCommand::RecordVoid {
            authorization_id: id.into(),
            reason: "order cancelled".into(),
        }
    }

    fn cancelled(mut order: Order) -> Order {
        let id = order.state().expect("placed").order_id();
        order
            .record(&cancel_command(id, CancelReason::CustomerRequest), t0())
            .expect("cancelled");
        order
    }

    fn payment(order: &Order) -> PaymentState {
        order.state().expect("placed").payment()
    }

    #[test]
    fn an_authorization_of_the_grand_total_is_recorded_once() {
        let order = authorized();
        assert_eq!(
            payment(&order),
            PaymentState::Authorized {
                authorization_id: "auth_1".into(),
                amount: grand_total(),
                expires_at: week()
            }
        );
        assert_eq!(order.handle(&authorize("auth_1", week()), t0()), Ok(vec![]));
        let err = order
            .handle(&authorize("auth_2", week()), t0())
            .expect_err("second authorization");
        assert!(
            err.to_string()
                .ends_with("already recorded authorization auth_1 of 42.12 USD; authorization auth_2 of 42.12 USD conflicts with it"),
            "{err}"
        );
    }

    #[test]
    fn an_authorization_must_match_the_order_total_and_currency() {
        let order = reserved(card());
        let id = order.state().expect("placed").order_id();
        let eur = Currency::parse("EUR").expect("known currency");
        let wrong_currency = OrderCommand::RecordAuthorization {
            authorization_id: "auth_1".into(),
            amount: Money::new(4212, eur),
            three_ds: false,
            expires_at: week(),
        };
        assert_eq!(
            order.handle(&wrong_currency, t0()),
            Err(OrderError::CurrencyMismatch {
                order_id: id,
                expected: usd_currency(),
                found: eur
            })
        );
        let short = OrderCommand::RecordAuthorization {
            authorization_id: "auth_1".into(),
            amount: usd(4000),
            three_ds: false,
            expires_at: week(),
        };
        let err = order.handle(&short, t0()).expect_err("wrong amount");
        assert_eq!(
            err,
            OrderError::AmountMismatch {
                order_id: id,
                expected: grand_total(),
                found: usd(4000)
            }
        );
        assert_eq!(
            err.to_string(),
            format!("authorization of 40.00 USD does not match the 42.12 USD total of order {id}")
        );
    }

    #[test]
    fn prepaid_and_legacy_orders_take_no_card_outcomes() {
        for payment in [prepaid(), None] {
            let order = reserved(payment);
            for command in [
                authorize("auth_1", week()),
                challenge("auth_1"),
                decline(None),
                capture("cap_1", 100),
                void("auth_1"),
                OrderCommand::ExpireAuthorization,
            ] {
                let err = order.handle(&command, t0()).expect_err("prepaid");
                assert!(
                    matches!(err, OrderError::PaymentNotRequired { .. }),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn a_hold_taken_while_the_order_was_cancelled_is_recorded_and_then_voidable() {
        let order = with(
            cancelled(reserved(card())),
            &[authorize("auth_1", week())],
            t0(),
        );
        let state = order.state().expect("placed");
        assert_eq!(
            state.status(),
            OrderStatus::Cancelled,
            "a fact does not un-cancel"
        );
        assert!(order
            .handle(&void("auth_1"), t0())
            .is_ok_and(|e| e.len() == 1));
        let pending = with(cancelled(reserved(card())), &[challenge("auth_2")], t0());
        assert!(pending
            .handle(&void("auth_2"), t0())
            .is_ok_and(|e| e.len() == 1));
    }

    #[test]
    fn a_challenge_waits_for_the_customer_and_completes_under_its_own_id() {
        let order = with(reserved(card()), &[challenge("auth_3ds")], t0());
        let state = order.state().expect("placed");
        assert_eq!(state.status(), OrderStatus::AwaitingPayment);
        assert_eq!(state.status().as_str(), "awaiting_payment");
        assert_eq!(
            state.challenge().map(|c| c.challenge_url.as_str()),
            Some("https://pay.example/3ds/auth_3ds")
        );
        assert_eq!(order.handle(&challenge("auth_3ds"), t0()), Ok(vec![]));
        let err = order
            .handle(&challenge("auth_x"), t0())
            .expect_err("second challenge");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
        let err = order
            .handle(&authorize("auth_x", week()), t0())
            .expect_err("other id");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
        let passed = with(
            order,
            &[OrderCommand::RecordAuthorization {
                authorization_id: "auth_3ds".into(),
                amount: grand_total(),
                three_ds: true,
                expires_at: week(),
            }],
            t0(),
        );
        assert_eq!(
            passed
                .state()
                .and_then(|s| s.authorization())
                .map(|a| a.three_ds),
            Some(true)
        );
        let err = passed
            .handle(&challenge("auth_y"), t0())
            .expect_err("authorized");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
        let err = authorized()
            .handle(&challenge("auth_y"), t0())
            .expect_err("authorized");
        assert!(matches!(err, OrderError::BlockedByPayment { .. }), "{err}");
    }

    #[test]
    fn a_decline_is_recorded_once_and_never_follows_an_authorization() {
        let declined = with(reserved(card()), &[decline(None)], t0());
        assert_eq!(payment(&declined), PaymentState::Declined);
        assert_eq!(declined.handle(&decline(None), t0()), Ok(vec![]));
        let err = declined
            .handle(&decline(Some("auth_9")), t0())
            .expect_err("other");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
        let err = declined
            .handle(&authorize("auth_1", week()), t0())
            .expect_err("after decline");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
        let err = authorized()
            .handle(&decline(Some("auth_1")), t0())
            .expect_err("authorized");
        assert!(
            err.to_string().ends_with("already recorded authorization auth_1; a decline (card_declined) conflicts with it"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_challenge_declines_only_its_own_authorization() {
        let pending = with(reserved(card()), &[challenge("auth_3ds")], t0());
        let err = pending
            .handle(&decline(Some("auth_x")), t0())
            .expect_err("other id");
        assert!(
            matches!(err, OrderError::UnknownAuthorization { .. }),
            "{err}"
        );
        assert!(pending.handle(&decline(Some("auth_3ds")), t0()).is_ok());
    }

    #[test]
    fn after_cancellation_only_a_pending_challenges_decline_is_accepted() {
        let pending = cancelled(with(reserved(card()), &[challenge("auth_3ds")], t0()));
        assert!(pending.handle(&decline(Some("auth_3ds")), t0()).is_ok());
        let err = cancelled(reserved(card()))
            .handle(&decline(None), t0())
            .expect_err("nothing pending");
        assert!(matches!(err, OrderError::Cancelled { .. }), "{err}");
    }

    #[test]
    fn captures_add_up_to_at_most_the_authorized_amount() {
        let mut order = confirmed();
        order
            .record(&capture("cap_1", 2212), t0())
            .expect("partial");
        assert_eq!(order.handle(&capture("cap_1", 2212), t0()), Ok(vec![]));
        let err = order
            .handle(&capture("cap_1", 100), t0())
            .expect_err("same id, other amount");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
        let err = order
            .handle(&capture("cap_2", 5000), t0())
            .expect_err("too much");
        assert_eq!(
            err.to_string(),
            "capture of 50.00 USD exceeds the 20.00 USD left on authorization auth_1"
        );
        order
            .record(&capture("cap_2", 2000), t0())
            .expect("the rest");
        let state = order.state().expect("placed");
        assert_eq!(state.captured_total(), grand_total());
        assert_eq!(state.captures().len(), 2);
        assert_eq!(
            state.payment(),
            PaymentState::Captured {
                authorization_id: "auth_1".into(),
                total: grand_total()
            }
        );
        let err = order
            .handle(&capture("cap_3", 1), t0())
            .expect_err("nothing left");
        assert!(
            matches!(err, OrderError::CaptureExceedsAuthorization { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_capture_needs_a_confirmed_live_authorization() {
        let err = authorized()
            .handle(&capture("cap_1", 100), t0())
            .expect_err("unconfirmed");
        assert!(matches!(err, OrderError::NotConfirmed { .. }), "{err}");
        let err = cancelled(confirmed())
            .handle(&capture("cap_1", 100), t0())
            .expect_err("cancelled");
        assert!(
            matches!(
                err,
                OrderError::Cancelled {
                    action: "capture payment",
                    ..
                }
            ),
            "{err}"
        );
        let other = OrderCommand::RecordCapture {
            authorization_id: "auth_9".into(),
            capture_id: "cap_1".into(),
            amount: usd(100),
        };
        let err = confirmed().handle(&other, t0()).expect_err("unknown");
        assert!(
            matches!(err, OrderError::UnknownAuthorization { .. }),
            "{err}"
        );
        let err = confirmed()
            .handle(&capture("cap_1", 0), t0())
            .expect_err("zero");
        assert!(
            matches!(err, OrderError::NonPositiveCapture { .. }),
            "{err}"
        );
        let eur = OrderCommand::RecordCapture {
            authorization_id: "auth_1".into(),
            capture_id: "cap_1".into(),
            amount: Money::new(100, Currency::parse("EUR").expect("known")),
        };
        let err = confirmed().handle(&eur, t0()).expect_err("currency");
        assert!(matches!(err, OrderError::CurrencyMismatch { .. }), "{err}");
        let lapsed = with(confirmed(), &[OrderCommand::ExpireAuthorization], week());
        let err = lapsed
            .handle(&capture("cap_1", 100), week())
            .expect_err("lapsed");
        assert!(
            matches!(
                err,
                OrderError::BlockedByPayment {
                    payment: PaymentState::Expired,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_void_releases_a_live_hold_once() {
        let order = with(authorized(), &[void("auth_1")], t0());
        assert_eq!(payment(&order), PaymentState::Voided);
        assert_eq!(order.handle(&void("auth_1"), t0()), Ok(vec![]));
        let err = order.handle(&void("auth_2"), t0()).expect_err("voided");
        assert!(matches!(err, OrderError::BlockedByPayment { .. }), "{err}");
        let err = authorized()
            .handle(&void("auth_2"), t0())
            .expect_err("unknown");
        assert!(
            matches!(err, OrderError::UnknownAuthorization { .. }),
            "{err}"
        );
        let err = reserved(card())
            .handle(&void("auth_1"), t0())
            .expect_err("nothing held");
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
    }

    #[test]
    fn a_pending_challenge_of_a_cancelled_order_can_be_voided() {
        let order = with(
            cancelled(with(reserved(card()), &[challenge("auth_3ds")], t0())),
            &[void("auth_3ds")],
            t0(),
        );
        assert_eq!(payment(&order), PaymentState::Voided);
        assert_eq!(payment(&order).live_authorization_id(), None);
    }

    #[test]
    fn a_confirmed_order_keeps_its_hold_until_cancelled_and_a_captured_one_keeps_it() {
        let err = confirmed()
            .handle(&void("auth_1"), t0())
            .expect_err("confirmed");
        assert!(
            matches!(err, OrderError::ConfirmedNotCancelled { .. }),
            "{err}"
        );
        assert!(cancelled(confirmed()).handle(&void("auth_1"), t0()).is_ok());
        let captured = with(confirmed(), &[capture("cap_1", 100)], t0());
        let err = captured
            .handle(&void("auth_1"), t0())
            .expect_err("captured");
        assert!(matches!(err, OrderError::BlockedByPayment { .. }), "{err}");
    }

    #[test]
    fn an_authorization_expires_only_at_its_deadline() {
        let order = authorized();
        let id = order.state().expect("placed").order_id();
        let early = week() - Duration::seconds(1);
        assert_eq!(
            order.handle(&OrderCommand::ExpireAuthorization, early),
            Err(OrderError::AuthorizationNotExpired {
                order_id: id,
                authorization_id: "auth_1".into(),
                expires_at: week()
            })
        );
        let expired = with(order, &[OrderCommand::ExpireAuthorization], week());
        assert_eq!(payment(&expired), PaymentState::Expired);
        assert_eq!(
            expired.handle(&OrderCommand::ExpireAuthorization, week()),
            Ok(vec![])
        );
        let err = expired.handle(&void("auth_1"), week()).expect_err("lapsed");
        assert!(matches!(err, OrderError::BlockedByPayment { .. }), "{err}");
        let err = reserved(card())
            .handle(&OrderCommand::ExpireAuthorization, week())
            .expect_err("no hold");
        assert!(matches!(err, OrderError::BlockedByPayment { .. }), "{err}");
        let captured = with(confirmed(), &[capture("cap_1", 100)], t0());
        let err = captured
            .handle(&OrderCommand::ExpireAuthorization, week())
            .expect_err("captured");
        assert!(matches!(err, OrderError::BlockedByPayment { .. }), "{err}");
        assert!(cancelled(authorized())
            .handle(&OrderCommand::ExpireAuthorization, week())
            .is_ok());
    }

    fn capture_refused(id: &str) -> OrderCommand {
        OrderCommand::RecordCaptureFailure {
            authorization_id: id.into(),
            amount: grand_total(),
            code: "authorization_voided".into(),
            message: "the authorization was voided".into(),
        }
    }

    #[test]
    fn a_capture_refused_for_good_is_recorded_once_and_ends_the_checkout_flow() {
        let order = confirmed();
        assert!(
            order.handle(&capture_refused("auth_2"), t0()).is_err(),
            "another authorization"
        );
        let failed = with(order, &[capture_refused("auth_1")], t0());
        assert_eq!(
            payment(&failed),
            PaymentState::CaptureFailed {
                authorization_id: "auth_1".into(),
                code: "authorization_voided".into()
            }
        );
        assert_eq!(
            failed.handle(&capture_refused("auth_1"), t0()),
            Ok(vec![]),
            "once"
        );
        assert!(
            failed.handle(&capture("cap_1", 100), t0()).is_err(),
            "nothing is captured after"
        );
        // Shipped or not, the flow neither retries the capture nor tries to void a hold the
        // gateway no longer has.
        let policy = crate::domain::FlowPolicy::default();
        assert_eq!(
            crate::domain::next_step(&failed, &policy, t0()),
            crate::domain::Step::Done
        );
        let cancelled = cancelled(failed);
        let step = crate::domain::next_step(&cancelled, &policy, t0());
        assert!(
            !matches!(
                step,
                crate::domain::Step::Void { .. } | crate::domain::Step::Capture { .. }
            ),
            "a cancelled order releases its stock but asks nothing of the gateway: {step:?}"
        );
    }
}
