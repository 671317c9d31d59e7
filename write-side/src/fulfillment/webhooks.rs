//! Applying node (WMS) and carrier webhooks: each verified webhook id is applied once (its
//! receipt is stored in the transaction of the events it causes, with a wake-up of the
//! fulfillment flow); a redelivery changes nothing; a carrier scan older (by carrier time) than
//! the one recorded is acknowledged and dropped, so the latest scan wins whatever the order of
//! delivery; a report that does not fit (wrong pickup code, unknown parcel) is acknowledged as
//! ignored, with why.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use waybill_schemas::events::{NodeProgress, ProofOfDelivery};
use waybill_schemas::{Actor, OrderEvent, OrderId};

use crate::domain::fulfillment::{
    carrier, Fulfillment, FulfillmentCommand, FulfillmentError, Scan,
};
use crate::domain::returns::{ReturnCommand, ReturnError, ReturnsPolicy};
use crate::event_store::{EventStore, EventStoreError};

use super::append::{self, Receipt, Stored};
use super::logistics::{CarrierWebhook, NodeReport, NodeWebhook};

/// Receipt providers.
pub const WMS: &str = "wms";
pub const CARRIER: &str = "carrier";

/// What became of one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    Applied,
    Duplicate,
    Ignored(String),
    /// The parcel or fulfillment order is not recorded (yet): nothing stored, so the sender's
    /// redelivery is applied once it is (a scan can race the label's append).
    NotYetKnown(String),
}

/// Why a webhook body is refused before anything is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct BadWebhook {
    pub field: &'static str,
    pub detail: String,
}

/// How far ahead of its receipt a webhook's own time may be before it is refused: clock skew
/// between a carrier's or node's clock and ours (5 minutes unless configured).
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::minutes(5);

/// Refuses a webhook whose time `at` (its field `field`) is more than `skew` ahead of
/// `received`, the moment it arrived. Such a time is a broken clock or a forgery, not a fact:
/// it is refused, never clamped, so nothing false is recorded and the sender's redelivery with a
/// sane time is applied. Times within the skew are kept as sent; scans are ordered by their
/// time capped at receipt (`ShipmentTracked::effective_time`), so even those cannot outrank a
/// scan that happened later.
pub fn check_clock(
    field: &'static str,
    at: DateTime<Utc>,
    received: DateTime<Utc>,
    skew: Duration,
) -> Result<(), BadWebhook> {
    if at > received + skew {
        return Err(BadWebhook {
            field,
            detail: format!(
                "{at} is more than {} s ahead of the time the webhook was received ({received})",
                skew.num_seconds()
            ),
        });
    }
    Ok(())
}

/// What a webhook asks of the order: a fulfillment or a return command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookCommand {
    Fulfillment(FulfillmentCommand),
    Return(ReturnCommand),
}

impl From<FulfillmentCommand> for WebhookCommand {
    fn from(command: FulfillmentCommand) -> Self {
        Self::Fulfillment(command)
    }
}

/// The command a node report asks for.
pub fn node_command(webhook: &NodeWebhook) -> WebhookCommand {
    let fulfillment_id = webhook.fulfillment_id.clone();
    let command = match &webhook.report {
        NodeReport::Picked => FulfillmentCommand::RecordProgress {
            fulfillment_id,
            progress: NodeProgress::Picked,
        },
        NodeReport::Packed => FulfillmentCommand::RecordProgress {
            fulfillment_id,
            progress: NodeProgress::Packed,
        },
        NodeReport::ShortPicked { missing } => FulfillmentCommand::RecordShortPick {
            fulfillment_id,
            missing: missing.clone(),
        },
        NodeReport::ReadyForPickup {
            pickup_code,
            collect_by,
        } => FulfillmentCommand::ReadyForPickup {
            fulfillment_id,
            code: pickup_code.clone(),
            collect_by: *collect_by,
        },
        NodeReport::PickedUp { pickup_code } => FulfillmentCommand::CompletePickup {
            fulfillment_id,
            code: pickup_code.clone(),
        },
        NodeReport::ReturnReceived => {
            return WebhookCommand::Return(ReturnCommand::Receive {
                return_id: fulfillment_id,
                node_id: String::new(),
            })
        }
        NodeReport::ReturnInspected { lines } => {
            return WebhookCommand::Return(ReturnCommand::Inspect {
                return_id: fulfillment_id,
                lines: lines.clone(),
                inspected_by: String::new(),
            })
        }
    };
    command.into()
}

/// The command a carrier scan asks for; an unknown status code is refused.
pub fn carrier_command(webhook: &CarrierWebhook) -> Result<FulfillmentCommand, BadWebhook> {
    let status = carrier::normalize(&webhook.status_code).ok_or_else(|| BadWebhook {
        field: "status_code",
        detail: format!("unknown carrier status code {:?}", webhook.status_code),
    })?;
    Ok(FulfillmentCommand::RecordScan {
        shipment_id: webhook.shipment_id.clone(),
        scan: Scan {
            carrier_event_id: webhook.id.clone(),
            status,
            carrier_time: webhook.carrier_time,
            description: webhook.description.clone(),
            location: webhook.location.clone(),
            proof: webhook.received_by.as_ref().map(|by| ProofOfDelivery {
                received_by: by.clone(),
                photo_url: webhook.photo_url.clone(),
            }),
        },
    })
}

/// What a webhook's command comes to on an order's current state.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Its parcel, fulfillment order or return is not recorded yet: store nothing, not even the
    /// receipt.
    NotYetKnown(String),
    /// Store the receipt (labelled `label`) with `events` (none when it changes nothing).
    Record {
        events: Vec<OrderEvent>,
        outcome: WebhookOutcome,
        label: String,
    },
}

/// Decides a webhook's command on `state` (pure; shared by the one-by-one and batched paths).
/// `returns` is the return policy a return report is decided under.
pub fn decide(
    state: &Fulfillment,
    command: &WebhookCommand,
    returns: &ReturnsPolicy,
    now: DateTime<Utc>,
) -> Decision {
    let decided = match command {
        WebhookCommand::Fulfillment(c) => state.handle(c, now).map_err(Refusal::Fulfillment),
        WebhookCommand::Return(c) => state
            .handle_return(c, returns, now)
            .map_err(Refusal::Return),
    };
    match decided {
        Err(Refusal::Fulfillment(
            unknown @ (FulfillmentError::UnknownShipment(_)
            | FulfillmentError::UnknownFulfillment(_)),
        )) => Decision::NotYetKnown(unknown.to_string()),
        Err(Refusal::Return(unknown @ ReturnError::UnknownReturn(_))) => {
            Decision::NotYetKnown(unknown.to_string())
        }
        Ok(events) if events.is_empty() => Decision::Record {
            events,
            outcome: WebhookOutcome::Ignored(
                "already recorded or older than the recorded scan".into(),
            ),
            label: "already_recorded".to_owned(),
        },
        Ok(events) => Decision::Record {
            events,
            outcome: WebhookOutcome::Applied,
            label: "applied".to_owned(),
        },
        Err(refused) => Decision::Record {
            events: Vec::new(),
            outcome: WebhookOutcome::Ignored(refused.to_string()),
            label: format!("ignored: {refused}"),
        },
    }
}

/// Applies `command` for a webhook of `provider` with id `webhook_id`, once, in a transaction
/// of its own.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    pool: &PgPool,
    store: &EventStore,
    provider: &'static str,
    webhook_id: &str,
    order_id: OrderId,
    command: &WebhookCommand,
    returns: &ReturnsPolicy,
    now: DateTime<Utc>,
) -> Result<WebhookOutcome, EventStoreError> {
    for _ in 0..5 {
        let envelopes = store.read_stream(&order_id.stream_id(), 1, None).await?;
        if envelopes.is_empty() {
            return Ok(WebhookOutcome::Ignored(format!(
                "order {order_id} is unknown"
            )));
        }
        let state = Fulfillment::from_events(&append::decode(&envelopes)?);
        let (events, outcome, label) = match decide(&state, command, returns, now) {
            Decision::NotYetKnown(why) => return Ok(WebhookOutcome::NotYetKnown(why)),
            Decision::Record {
                events,
                outcome,
                label,
            } => (events, outcome, label),
        };
        let meta = append::meta_of(&envelopes, Actor::service(provider));
        let receipt = Receipt {
            provider,
            event_id: webhook_id,
            outcome: &label,
        };
        match append::store(pool, &state, order_id, events, &meta, Some(receipt), now).await? {
            Stored::Written => return Ok(outcome),
            Stored::Duplicate => return Ok(WebhookOutcome::Duplicate),
            Stored::Conflict => continue,
        }
    }
    Err(EventStoreError::Conflict {
        stream_id: order_id.stream_id(),
        expected: 0,
        actual: None,
    })
}

/// Why the order refused a webhook's command.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Fulfillment(FulfillmentError),
    #[error(transparent)]
    Return(ReturnError),
}
