//! What the desk can find, what it suggests for each, what an agent may do about it, and what
//! resolving with each action does besides recording the decision ([`Effect`]).

use serde::{Deserialize, Serialize};

/// Why an entry is on the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An order has been in one stage longer than that stage usually takes.
    StageOverdue,
    /// The carrier reported an exception on a parcel.
    CarrierException,
    /// A parcel's handoff failed and the automatic retries gave up.
    FailedHandoff,
    /// A card authorization runs out soon and nothing has been captured.
    AuthorizationExpiring,
    /// A stock reservation runs out soon and the order is not confirmed.
    ReservationExpiring,
    /// An order held for fraud review nears its review deadline.
    ReviewDeadline,
    /// A message a projector could not apply sits in a dead-letter stream.
    DeadLetter,
    /// A channel's confirmations dropped, or its declines or fraud holds spiked.
    Anomaly,
}

impl EntryKind {
    pub const ALL: &'static [EntryKind] = &[
        Self::StageOverdue,
        Self::CarrierException,
        Self::FailedHandoff,
        Self::AuthorizationExpiring,
        Self::ReservationExpiring,
        Self::ReviewDeadline,
        Self::DeadLetter,
        Self::Anomaly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StageOverdue => "stage_overdue",
            Self::CarrierException => "carrier_exception",
            Self::FailedHandoff => "failed_handoff",
            Self::AuthorizationExpiring => "authorization_expiring",
            Self::ReservationExpiring => "reservation_expiring",
            Self::ReviewDeadline => "review_deadline",
            Self::DeadLetter => "dead_letter",
            Self::Anomaly => "anomaly",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == raw)
    }

    /// What the desk suggests doing first.
    pub fn suggested(self) -> Action {
        match self {
            Self::StageOverdue => Action::ContactCustomer,
            Self::CarrierException => Action::ContactCustomer,
            Self::FailedHandoff => Action::RetryHandoff,
            Self::AuthorizationExpiring => Action::Extend,
            Self::ReservationExpiring => Action::Extend,
            Self::ReviewDeadline => Action::Extend,
            Self::DeadLetter => Action::Replay,
            Self::Anomaly => Action::Acknowledge,
        }
    }

    /// What an agent may record as done about an entry of this kind.
    pub fn allowed(self) -> &'static [Action] {
        use Action::*;
        match self {
            Self::StageOverdue => &[ContactCustomer, Reroute, Void, Acknowledge],
            Self::CarrierException => &[ContactCustomer, RetryHandoff, Reroute, Acknowledge],
            Self::FailedHandoff => &[RetryHandoff, Reroute, ContactCustomer, Acknowledge],
            Self::AuthorizationExpiring => &[Extend, Void, ContactCustomer, Acknowledge],
            Self::ReservationExpiring => &[Extend, Void, Acknowledge],
            Self::ReviewDeadline => &[Extend, ContactCustomer, Acknowledge],
            Self::DeadLetter => &[Replay, Discard, Acknowledge],
            Self::Anomaly => &[Acknowledge, ContactCustomer],
        }
    }
}

/// What was (or should be) done about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    RetryHandoff,
    Reroute,
    Extend,
    Void,
    ContactCustomer,
    Replay,
    Discard,
    Acknowledge,
    /// The condition went away by itself (the desk resolves the entry automatically).
    Cleared,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Self::RetryHandoff,
        Self::Reroute,
        Self::Extend,
        Self::Void,
        Self::ContactCustomer,
        Self::Replay,
        Self::Discard,
        Self::Acknowledge,
        Self::Cleared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryHandoff => "retry_handoff",
            Self::Reroute => "reroute",
            Self::Extend => "extend",
            Self::Void => "void",
            Self::ContactCustomer => "contact_customer",
            Self::Replay => "replay",
            Self::Discard => "discard",
            Self::Acknowledge => "acknowledge",
            Self::Cleared => "cleared",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == raw)
    }

    /// What resolving an entry with this action does, besides recording the decision as a
    /// `DeskEntryResolved` event. The one place that says which actions act and which only
    /// record, and why: the command, the desk screen's confirmation step and the docs read it.
    pub fn effect(self) -> Effect {
        match self {
            Self::Void => Effect::CancelOrder,
            Self::RetryHandoff => Effect::RetryHandoff,
            Self::Reroute => Effect::Recorded(
                "units a node or a carrier holds are re-routed by the fulfillment flow itself once \
                 they are given back (the node's short-pick report, the carrier's return to \
                 sender); nothing takes them away on an agent's word",
            ),
            Self::Extend => Effect::Recorded(
                "no deadline can be moved yet: the gateway protocol has no authorization \
                 extension, and reservations and reviews have no extension command; extend it \
                 with the gateway or warehouse and record it here",
            ),
            Self::ContactCustomer => Effect::Recorded(
                "Waybill writes to customers only about order events; contact them yourself and \
                 note how",
            ),
            Self::Replay | Self::Discard => Effect::Recorded(
                "dead letters sit in the projectors' JetStream dead-letter streams, which the \
                 command API does not reach; the desk clears the entry when the message ages out",
            ),
            Self::Acknowledge => Effect::Recorded("acknowledging is the decision itself"),
            Self::Cleared => Effect::Recorded("the condition went away by itself"),
        }
    }

    /// A short label for screens.
    pub fn label(self) -> &'static str {
        match self {
            Self::RetryHandoff => "Retry the handoff",
            Self::Reroute => "Re-route to another node",
            Self::Extend => "Extend the deadline",
            Self::Void => "Void and cancel",
            Self::ContactCustomer => "Contact the customer",
            Self::Replay => "Replay the message",
            Self::Discard => "Discard the message",
            Self::Acknowledge => "Acknowledge",
            Self::Cleared => "Cleared by itself",
        }
    }
}

/// What resolving with an action does (see [`Action::effect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Cancels the entry's order with the same decision as `POST /v1/orders/{id}/cancel`; the
    /// checkout flow then voids its authorization and releases its reservation (an order the
    /// aggregate will not cancel any more is refused, and the entry stays open).
    CancelOrder,
    /// Asks the carrier to attempt the parcel's handoff again (the fulfillment worker's own
    /// call, `POST /carrier/v1/parcels/{tracking}/retry`) and records it on the order as
    /// `ShipmentExceptionHandled` (`retry_handoff`).
    RetryHandoff,
    /// Only the decision is recorded, for the reason given.
    Recorded(&'static str),
}

impl Effect {
    /// What the agent is told before confirming.
    pub fn describe(self) -> &'static str {
        match self {
            Self::CancelOrder => {
                "cancels the order: its authorization is voided and its stock released"
            }
            Self::RetryHandoff => "asks the carrier to attempt the parcel's handoff again",
            Self::Recorded(_) => "records the decision only",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_suggestion_is_allowed() {
        for kind in EntryKind::ALL {
            assert_eq!(EntryKind::parse(kind.as_str()), Some(*kind));
            assert!(
                kind.allowed().contains(&kind.suggested()),
                "{kind:?} suggests what it does not allow"
            );
            assert!(
                !kind.allowed().contains(&Action::Cleared),
                "only the desk itself clears"
            );
        }
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(*action));
        }
        // The actions that act: voiding cancels the order, a retry asks the carrier again.
        assert_eq!(Action::Void.effect(), Effect::CancelOrder);
        assert_eq!(Action::RetryHandoff.effect(), Effect::RetryHandoff);
        let acting: Vec<_> = Action::ALL
            .iter()
            .filter(|a| !matches!(a.effect(), Effect::Recorded(_)))
            .collect();
        assert_eq!(acting, [&Action::RetryHandoff, &Action::Void]);
        assert_eq!(EntryKind::parse("stuck"), None);
    }
}
