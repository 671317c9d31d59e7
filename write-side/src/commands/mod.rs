//! The command handlers behind the HTTP API: each takes a parsed request and the caller's
//! context, asks the pure domain for a decision, renders the response, and commits everything
//! through the [`CommitBatcher`], whose transaction also checks the idempotency key (a cancel
//! additionally looks its key up first, since its decision depends on the order's state). They return either a
//! response to send (fresh or replayed) or a typed [`CommandError`]; HTTP mapping is the API's.

mod cancel;
mod cancel_lines;
mod charge;
mod decide;
mod desk;
mod dispute;
mod edit;
mod erasure;
mod notifications;
mod place;
mod refund;
mod resolution;
mod responses;
mod returns;
mod review;
mod settlement;

pub use cancel::cancel_order;
pub use cancel_lines::{cancel_lines, CancelLinesResponse, CancelledLineResponse};
pub use charge::{charge_order, parse_charge, ChargeBody, ChargeResponse};
pub use decide::{decide_and_commit, refusal};
pub use desk::{parse_resolution, resolve_desk_entry, OrderEventRef, ResolveBody, ResolveResponse};
pub use dispute::{submit_evidence, EvidenceResponse};
pub use edit::{edit_order, preview_edit, AddedStockResponse, EditResponse, EditedLineResponse};
pub use erasure::{erase_customer, erase_guest, ErasureResponse, GuestErasureResponse};
pub use notifications::{
    parse_resend, resend_notification, set_notification_preferences, PreferencesResponse,
    ResendBody, ResendResponse,
};
pub use place::{place_order, place_parsed_order};
pub use refund::{parse_refund, refund_order, RefundBody, RefundDestination};
pub use responses::{
    CancelOrderResponse, PlaceOrderResponse, RefundResponse, ReviewOrderResponse, TotalsResponse,
};
pub use returns::{
    parse_inspection, parse_return, record_inspection, request_return, FeeResponse, ReturnBody,
    ReturnLabelResponse, ReturnLineResponse, ReturnResponse,
};
pub use review::review_order;
pub use settlement::{import_settlement, parse_import, ImportBody, ImportResponse, PayoutResponse};

use std::sync::Arc;

use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;
use waybill_schemas::api_keys::Role;
use waybill_schemas::{Actor, Channel, OrderId};

use crate::commit_batcher::{CommitBatcher, CommitOutcome, CommitRequest};
use crate::domain::{Order, ValidationErrors};
use crate::event_store::{EventMeta, EventStore, EventStoreError};
use crate::idempotency::{self, IdempotencyRecord, StoredResponse};
use crate::trace_context;

/// How many times a cancel re-reads the order and decides again after losing a race.
pub const CONFLICT_RETRIES: usize = 3;

/// What the command handlers need.
#[derive(Clone)]
pub struct CommandServices {
    pub pool: PgPool,
    pub store: EventStore,
    pub batcher: CommitBatcher,
    pub tracking: waybill_schemas::access::TrackingKeys,
    pub returns_policy: Arc<crate::domain::returns::ReturnsPolicy>,
    /// Which shipping methods are collected at a store, and which stores offer pickup.
    pub routing: Arc<crate::domain::fulfillment::RoutingConfig>,
    /// The carrier (and WMS) an exceptions-desk resolution acts through (`None`: actions that
    /// need it answer 502).
    pub logistics: Option<crate::fulfillment::logistics::LogisticsClient>,
}

/// Who is asking, under which idempotency key, for which exact request.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// The client id from the API key: the idempotency scope and the events' actor id.
    pub client_id: String,
    /// The caller's role (from its API key).
    pub role: Role,
    pub actor: Actor,
    pub idempotency_key: String,
    pub request_hash: Vec<u8>,
    pub correlation_id: Uuid,
}

/// A response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Produced by this request (and stored under its key).
    Fresh(StoredResponse),
    /// Stored by an earlier request with the same key and body.
    Replayed(StoredResponse),
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Validation(#[from] ValidationErrors),
    #[error("idempotency key {0} was used for a different request")]
    KeyReused(String),
    #[error("order {0} not found")]
    NotFound(String),
    #[error("order {0} is already cancelled")]
    AlreadyCancelled(OrderId),
    #[error("{0}")]
    Refused(String),
    /// The order is past the point where it can be edited (routed, cancelled, ...).
    #[error("{0}")]
    NotEditable(String),
    #[error("this role may not do that")]
    Forbidden,
    #[error("dispute {0} not found")]
    DisputeNotFound(String),
    #[error("return {0} not found")]
    ReturnNotFound(String),
    #[error("desk entry {0} not found")]
    EntryNotFound(String),
    #[error("customer {0} has no orders to erase")]
    CustomerNotFound(String),
    /// No guest checkout was placed with the email of a guest's erasure (the email is not
    /// repeated: it is personal data).
    #[error("no guest checkout was placed with this email")]
    GuestNotFound,
    /// A system Waybill depends on (the payment gateway) failed; retrying may work.
    #[error("upstream failure: {0}")]
    Upstream(String),
    #[error("order {0} kept changing; gave up after {CONFLICT_RETRIES} attempts")]
    Conflict(OrderId),
    /// The database cannot be used right now (connections failing, none to be had); retrying
    /// later may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<EventStoreError> for CommandError {
    fn from(e: EventStoreError) -> Self {
        match e {
            EventStoreError::Database(e) => e.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// A commit outcome the caller has no answer of its own for: the database being unavailable
/// is 503, anything else a failure on our side.
impl From<CommitOutcome> for CommandError {
    fn from(outcome: CommitOutcome) -> Self {
        match outcome {
            CommitOutcome::Unavailable(detail) => Self::Unavailable(detail),
            CommitOutcome::Failed(detail) => Self::Internal(detail),
            other => Self::Internal(format!("{other:?}")),
        }
    }
}

impl From<sqlx::Error> for CommandError {
    fn from(e: sqlx::Error) -> Self {
        if crate::event_store::retry::is_unavailable(&e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl CommandContext {
    fn meta(&self, channel: Option<Channel>) -> EventMeta {
        EventMeta {
            correlation_id: self.correlation_id,
            causation_id: None,
            traceparent: trace_context::current_traceparent(),
            actor: self.actor.clone(),
            channel,
        }
    }

    fn record(&self, response: &StoredResponse) -> IdempotencyRecord {
        IdempotencyRecord {
            scope: self.client_id.clone(),
            key: self.idempotency_key.clone(),
            request_hash: self.request_hash.clone(),
            response: response.clone(),
        }
    }

    /// The stored record answers this request: replay it, or refuse a different request.
    fn answer_from(&self, record: IdempotencyRecord) -> Result<Reply, CommandError> {
        if record.request_hash == self.request_hash {
            Ok(Reply::Replayed(record.response))
        } else {
            Err(CommandError::KeyReused(self.idempotency_key.clone()))
        }
    }
}

impl CommandServices {
    /// The order's current state, folded from its stream.
    async fn load(&self, order_id: OrderId) -> Result<Order, CommandError> {
        let envelopes = self
            .store
            .read_stream(&order_id.stream_id(), 1, None)
            .await?;
        let events = envelopes
            .iter()
            .map(|e| e.decode())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        Ok(Order::from_events(&events))
    }

    /// Commits through the batcher inside an `event_store.append` span.
    async fn commit(
        &self,
        ctx: &CommandContext,
        order_id: OrderId,
        request: CommitRequest,
    ) -> CommitOutcome {
        let span = tracing::info_span!(
            "event_store.append",
            order_id = %order_id,
            correlation_id = %ctx.correlation_id,
            events = request.events.len()
        );
        self.batcher.commit(request).instrument(span).await
    }

    /// Another request committed under this key first: answer from its record.
    async fn answer_from_stored(&self, ctx: &CommandContext) -> Result<Reply, CommandError> {
        match idempotency::find(&self.pool, &ctx.client_id, &ctx.idempotency_key).await? {
            Some(record) => ctx.answer_from(record),
            None => Err(CommandError::Internal(
                "idempotency key taken but no record found".to_owned(),
            )),
        }
    }

    /// Stores `response` under the request's key alone (no events) and answers with it.
    async fn store_response_only(
        &self,
        ctx: &CommandContext,
        order_id: OrderId,
        response: StoredResponse,
    ) -> Result<Reply, CommandError> {
        let request = CommitRequest {
            idempotency: ctx.record(&response),
            channel_order: None,
            events: Vec::new(),
            wake_flow: None,
        };
        match self.commit(ctx, order_id, request).await {
            CommitOutcome::Committed => Ok(Reply::Fresh(response)),
            CommitOutcome::IdempotencyKeyTaken => self.answer_from_stored(ctx).await,
            other => Err(other.into()),
        }
    }
}

/// The fields a validation error names (tests of the body parsers).
#[cfg(test)]
pub(crate) fn invalid_fields(error: CommandError) -> Vec<String> {
    match error {
        CommandError::Validation(e) => e.0.into_iter().map(|f| f.field).collect(),
        other => panic!("expected a validation error, got {other}"),
    }
}
