//! One pass of the checkout process manager over a batch of due orders.
//!
//! The orders advance in lock-step rounds: each round asks the pure [`next_step`] what every
//! order needs, runs the steps of one kind together (one risk-signal transaction for all, the
//! inventory's batching writer for reservations, concurrent gateway calls), records each outcome
//! with the aggregate's commands, and stores the round's events of all orders in one
//! transaction. An order leaves the rounds when it must wait (review, 3-D Secure, capture on
//! shipment) or is done. Every external call carries a deterministic idempotency key
//! (`<order_id>:<step>`), so rerunning a pass after a crash repeats nothing.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use sqlx::PgPool;
use waybill_schemas::events::{OrderPlaced, PaymentMethod, ReleaseReason};

use crate::domain::risk::{self, RiskRules, RiskSignals};
use crate::domain::{next_step, FlowPolicy, Step};
use crate::domain::{CancelOrder, OrderCommand, OrderState, OrderStatus};
use crate::event_store::EventStore;
use crate::inventory::{
    AllocateOutcome, Inventory, InventoryError, RequestedLine, ReserveOutcome, ReserveRequest,
    ShipTo,
};
use crate::payment::{
    AuthorizeOutcome, AuthorizeRequest, CaptureOutcome, CaptureRequest, GatewayError,
    PaymentGateway, RefundOutcome, RefundRequest, VoidOutcome, VoidRequest,
};
use crate::risk_signals;

use super::append::{self, FlowOrder};
use super::flows::{self, Claimed, Release};
use super::CheckoutError;

/// Most rounds one pass runs before handing the rest back (a safety net: a flow needs ~8).
const MAX_ROUNDS: usize = 16;

/// What the process manager works with.
#[derive(Clone)]
pub struct CheckoutServices {
    pub pool: PgPool,
    pub store: EventStore,
    pub inventory: Inventory,
    pub gateway: Arc<dyn PaymentGateway>,
    pub risk_rules: Arc<RiskRules>,
    pub policy: FlowPolicy,
    /// Velocity window for the risk signals.
    pub risk_window: chrono::Duration,
    /// How long a claimed flow stays invisible to other workers.
    pub lease: chrono::Duration,
    /// Most orders claimed per pass.
    pub batch: i64,
    /// Passes of this process record risk signals one at a time: concurrent batches counting
    /// the same hot identifier would only abort each other under SERIALIZABLE.
    pub risk_lock: Arc<tokio::sync::Mutex<()>>,
}

/// An order in a pass, with where it stands.
struct InFlight {
    claimed: Claimed,
    flow: FlowOrder,
    /// `Some` once the order leaves the rounds.
    release: Option<Release>,
}

/// Claims due flows and advances them as far as they go. Returns how many were claimed.
pub async fn run_pass(
    services: &CheckoutServices,
    now: DateTime<Utc>,
) -> Result<usize, CheckoutError> {
    let claimed = flows::claim(&services.pool, now, services.lease, services.batch).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    flows::run_claimed(&services.pool, claimed, |claimed| {
        advance_claimed(services, claimed, now)
    })
    .await
}

/// Advances the claimed orders round by round and releases them; an error leaves the release
/// to [`flows::run_claimed`].
async fn advance_claimed(
    services: &CheckoutServices,
    claimed: Vec<Claimed>,
    now: DateTime<Utc>,
) -> Result<usize, CheckoutError> {
    let count = claimed.len();
    let stream_ids: Vec<String> = claimed.iter().map(|c| c.order_id.stream_id()).collect();
    let mut streams = services.store.read_streams(&stream_ids).await?;
    let mut orders: Vec<InFlight> = Vec::with_capacity(count);
    let mut broken: Vec<(Claimed, Release)> = Vec::new();
    for claimed in claimed {
        let envelopes = streams
            .remove(&claimed.order_id.stream_id())
            .unwrap_or_default();
        match FlowOrder::from_stream(claimed.order_id, &envelopes) {
            Ok(flow) => orders.push(InFlight {
                claimed,
                flow,
                release: None,
            }),
            Err(error) => {
                tracing::error!(order_id = %claimed.order_id, %error, "order stream unreadable; flow parked");
                broken.push((
                    claimed,
                    Release::Retry {
                        due_at: now + chrono::Duration::minutes(5),
                        error: error.to_string(),
                    },
                ));
            }
        }
    }

    for _ in 0..MAX_ROUNDS {
        let now = Utc::now();
        let mut groups: HashMap<&'static str, Vec<(usize, Step)>> = HashMap::new();
        for (i, order) in orders.iter_mut().enumerate() {
            if order.release.is_some() {
                continue;
            }
            let step = next_step(&order.flow.order, &services.policy, now);
            match step {
                Step::Done => order.release = Some(Release::Finish),
                Step::Wait { until } => {
                    order.release = Some(Release::Park {
                        due_at: until.unwrap_or(now + chrono::Duration::hours(24)),
                        stage: waiting_stage(&order.flow),
                    });
                }
                Step::Confirm
                | Step::Cancel { .. }
                | Step::ExpireAuthorization
                | Step::RefundCancelled { .. } => {
                    let command = pure_command(&order.flow, step, services);
                    decide(order, command, now);
                }
                other => groups.entry(other.name()).or_default().push((i, other)),
            }
        }
        for (_, steps) in groups {
            run_group(services, &mut orders, steps, now).await;
        }
        let mut dirty: Vec<&mut FlowOrder> = orders.iter_mut().map(|o| &mut o.flow).collect();
        append::store_all(&services.pool, &services.store, &mut dirty, Utc::now()).await?;
        if orders.iter().all(|o| o.release.is_some()) {
            break;
        }
    }

    let now = Utc::now();
    let mut releases = broken;
    for order in orders {
        let release = if !order.flow.unsaved.is_empty() {
            Release::Retry {
                due_at: now + chrono::Duration::seconds(1),
                error: "events not stored".into(),
            }
        } else {
            order.release.unwrap_or(Release::Retry {
                due_at: now + chrono::Duration::seconds(30),
                error: format!("flow did not settle in {MAX_ROUNDS} rounds"),
            })
        };
        releases.push((order.claimed, release));
    }
    flows::release(&services.pool, &releases, now).await?;
    Ok(count)
}

fn decide(order: &mut InFlight, command: OrderCommand, now: DateTime<Utc>) {
    if let Err(refused) = order.flow.decide(command, now) {
        tracing::warn!(order_id = %order.flow.order_id, %refused, "flow decision refused");
        order.release = Some(Release::Retry {
            due_at: now + chrono::Duration::seconds(30),
            error: refused,
        });
    }
}

/// The stage a waiting order is parked in (the review queue lists `review`).
fn waiting_stage(flow: &FlowOrder) -> &'static str {
    match flow.order.state().map(OrderState::status) {
        Some(OrderStatus::InReview) => flows::REVIEW_STAGE,
        Some(OrderStatus::AwaitingPayment) => "payment_challenge",
        Some(OrderStatus::Confirmed) => "awaiting_capture",
        _ => "waiting",
    }
}

fn pure_command(flow: &FlowOrder, step: Step, services: &CheckoutServices) -> OrderCommand {
    let order_id = flow.order_id;
    match step {
        Step::Confirm => OrderCommand::Confirm {
            capture_mode: services.policy.capture_mode,
        },
        Step::Cancel { reason } => OrderCommand::Cancel {
            order_id,
            cancellation_id: uuid::Uuid::now_v7(),
            cancel: CancelOrder { reason, note: None },
        },
        Step::RefundCancelled { amount } => OrderCommand::RequestRefund {
            refund_id: uuid::Uuid::now_v7(),
            amount,
            kind: waybill_schemas::events::RefundKind::Cancellation,
            reason: "units cancelled after capture".into(),
            requested_by: "checkout".into(),
        },
        _ => OrderCommand::ExpireAuthorization,
    }
}

async fn run_group(
    services: &CheckoutServices,
    orders: &mut [InFlight],
    steps: Vec<(usize, Step)>,
    now: DateTime<Utc>,
) {
    let Some((_, first)) = steps.first() else {
        return;
    };
    match first {
        Step::AssessRisk => assess_risk(services, orders, &steps, now).await,
        _ => {
            let calls = steps.iter().map(|(i, step)| {
                let flow = &orders[*i].flow;
                run_external(services, flow, step.clone(), now)
            });
            let results = join_all(calls).await;
            for ((i, _), result) in steps.iter().zip(results) {
                let order = &mut orders[*i];
                match result {
                    Ok(Some(command)) => decide(order, command, now),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(order_id = %order.flow.order_id, %error, "flow step failed; will retry");
                        order.release = Some(Release::Retry {
                            due_at: now + backoff(order.claimed),
                            error,
                        });
                    }
                }
            }
        }
    }
}

/// Retry delay after a failed step: 1 s doubling per consecutive failure, at most 5 minutes.
fn backoff(claimed: Claimed) -> chrono::Duration {
    let exponent = claimed.attempts.clamp(1, 9) - 1;
    chrono::Duration::seconds((1_i64 << exponent).min(300))
}

async fn assess_risk(
    services: &CheckoutServices,
    orders: &mut [InFlight],
    steps: &[(usize, Step)],
    now: DateTime<Utc>,
) {
    let placed: Vec<&OrderPlaced> = steps
        .iter()
        .filter_map(|(i, _)| orders[*i].flow.order.state().map(OrderState::placed))
        .collect();
    let counts =
        match risk_signals::record_orders(&services.pool, &placed, services.risk_window, now).await
        {
            Ok(counts) => counts,
            Err(e) => {
                for (i, _) in steps {
                    orders[*i].release = Some(Release::Retry {
                        due_at: now + chrono::Duration::seconds(2),
                        error: format!("risk signals: {e}"),
                    });
                }
                return;
            }
        };
    for (i, _) in steps {
        let order = &mut orders[*i];
        let Some(state) = order.flow.order.state() else {
            continue;
        };
        let placed = state.placed();
        let signals: RiskSignals = counts
            .get(&order.flow.order_id)
            .cloned()
            .unwrap_or_default();
        let assessment = risk::assess(placed, &signals, &services.risk_rules);
        let command = OrderCommand::RecordRisk {
            decision: assessment.decision,
            score: assessment.score,
            reasons: assessment.reasons,
        };
        decide(order, command, now);
    }
}

/// Runs one external step; `Ok(None)` when there is nothing to record, `Err` to retry later.
async fn run_external(
    services: &CheckoutServices,
    flow: &FlowOrder,
    step: Step,
    now: DateTime<Utc>,
) -> Result<Option<OrderCommand>, String> {
    let order_id = flow.order_id;
    let state = flow
        .order
        .state()
        .ok_or_else(|| "order has no OrderPlaced".to_owned())?;
    let placed = state.placed();
    match step {
        Step::Reserve => {
            let request = ReserveRequest {
                order_id,
                ship_to: ShipTo::new(
                    &placed.shipping_address.country,
                    &placed.shipping_address.postal_code,
                )
                .map_err(|e| e.to_string())?,
                lines: placed
                    .lines
                    .iter()
                    .map(|l| RequestedLine {
                        line_no: l.line_no,
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                    })
                    .collect(),
                now,
            };
            match services
                .inventory
                .reserve(request)
                .await
                .map_err(|e| e.to_string())?
            {
                ReserveOutcome::Reserved {
                    lines,
                    backordered,
                    expires_at,
                } => Ok(Some(OrderCommand::RecordReservation {
                    lines,
                    backordered,
                    expires_at,
                })),
                ReserveOutcome::Insufficient { shortages } => {
                    Ok(Some(OrderCommand::RecordReservationFailure { shortages }))
                }
            }
        }
        Step::Authorize => {
            let idempotency_key = step.idempotency_key(order_id);
            let token = match &placed.payment {
                Some(PaymentMethod::Card { token }) => token.clone(),
                _ => return Err("authorize asked for an order without a card".into()),
            };
            let request = AuthorizeRequest {
                idempotency_key,
                order_id,
                amount: placed.totals.grand_total,
                token,
            };
            match services.gateway.authorize(request).await {
                Ok(AuthorizeOutcome::Authorized {
                    authorization_id,
                    amount,
                    expires_at,
                }) => Ok(Some(OrderCommand::RecordAuthorization {
                    authorization_id,
                    amount,
                    three_ds: false,
                    expires_at,
                })),
                Ok(AuthorizeOutcome::ChallengeRequired {
                    authorization_id,
                    challenge_url,
                    expires_at,
                }) => Ok(Some(OrderCommand::RecordChallenge {
                    authorization_id,
                    challenge_url,
                    expires_at,
                })),
                Ok(AuthorizeOutcome::Declined {
                    authorization_id,
                    code,
                    message,
                }) => Ok(Some(OrderCommand::RecordDecline {
                    authorization_id,
                    code,
                    message,
                })),
                Err(e) => Err(gateway_error("authorize", &e)),
            }
        }
        Step::Allocate => match services.inventory.allocate(order_id, now).await {
            // Every unit was back-ordered: there is nothing to allocate now.
            Err(InventoryError::NothingReserved(_)) => {
                Ok(Some(OrderCommand::RecordAllocation { lines: Vec::new() }))
            }
            Err(e) => Err(e.to_string()),
            Ok(AllocateOutcome::Allocated { lines }) => {
                Ok(Some(OrderCommand::RecordAllocation { lines }))
            }
            Ok(AllocateOutcome::Insufficient { .. }) => {
                services
                    .inventory
                    .release(order_id, ReleaseReason::AllocationFailed, now)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Some(OrderCommand::RecordRelease {
                    reason: ReleaseReason::AllocationFailed,
                }))
            }
        },
        Step::Capture { amount } => {
            let idempotency_key = Step::Capture { amount }.idempotency_key(order_id);
            let authorization_id = state
                .authorization()
                .map(|a| a.authorization_id.clone())
                .ok_or_else(|| "capture asked for an order without an authorization".to_owned())?;
            let request = CaptureRequest {
                idempotency_key,
                authorization_id: authorization_id.clone(),
                amount,
            };
            match services.gateway.capture(request).await {
                Ok(CaptureOutcome::Captured { capture_id, amount }) => {
                    Ok(Some(OrderCommand::RecordCapture {
                        authorization_id,
                        capture_id,
                        amount,
                    }))
                }
                Ok(CaptureOutcome::Refused { code, message })
                    if crate::payment::is_permanent_capture_refusal(&code) =>
                {
                    metrics::counter!("waybill_payment_capture_failures_total", "code" => code.clone())
                        .increment(1);
                    tracing::error!(
                        %order_id,
                        %authorization_id,
                        %code,
                        %message,
                        %amount,
                        "the gateway refused for good to capture; fulfillment held for an agent"
                    );
                    Ok(Some(OrderCommand::RecordCaptureFailure {
                        authorization_id,
                        amount,
                        code,
                        message,
                    }))
                }
                Ok(CaptureOutcome::Refused { code, message }) => {
                    Err(format!("capture refused (will retry): {code}: {message}"))
                }
                Err(e) => Err(gateway_error("capture", &e)),
            }
        }
        Step::Release { reason } => {
            services
                .inventory
                .release(order_id, reason, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Some(OrderCommand::RecordRelease { reason }))
        }
        Step::Void {
            authorization_id,
            reason,
        } => {
            let request = VoidRequest {
                idempotency_key: format!("{order_id}:void"),
                authorization_id: authorization_id.clone(),
            };
            match services.gateway.void(request).await {
                Ok(VoidOutcome::Voided) => Ok(Some(OrderCommand::RecordVoid {
                    authorization_id,
                    reason,
                })),
                // The hold lapsed at the gateway: nothing left to release.
                Ok(VoidOutcome::Refused { code, .. }) if code == "authorization_expired" => {
                    Ok(Some(OrderCommand::ExpireAuthorization))
                }
                Ok(VoidOutcome::Refused { code, message }) => {
                    Err(format!("void refused: {code}: {message}"))
                }
                Err(e) => Err(gateway_error("void", &e)),
            }
        }
        Step::Refund {
            refund_id,
            amount,
            capture_id,
        } => {
            let Some(capture_id) = capture_id else {
                return Ok(Some(OrderCommand::RecordRefundFailure {
                    refund_id,
                    code: "no_capture_covers_amount".into(),
                    message: format!("no single capture has {amount} left to refund"),
                }));
            };
            let request = RefundRequest {
                idempotency_key: format!("{order_id}:refund:{refund_id}"),
                capture_id: capture_id.clone(),
                amount,
            };
            match services.gateway.refund(request).await {
                Ok(RefundOutcome::Refunded {
                    refund_id: gateway_refund_id,
                    amount,
                }) => Ok(Some(OrderCommand::RecordRefund {
                    refund_id,
                    capture_id,
                    gateway_refund_id,
                    amount,
                })),
                Ok(RefundOutcome::Refused { code, message }) => {
                    Ok(Some(OrderCommand::RecordRefundFailure {
                        refund_id,
                        code,
                        message,
                    }))
                }
                Err(e) => Err(gateway_error("refund", &e)),
            }
        }
        Step::Charge { charge_id, amount } => {
            let token = match &placed.payment {
                Some(PaymentMethod::Card { token }) => token.clone(),
                _ => return Err("an extra charge asked for an order without a card".into()),
            };
            let key = Step::Charge { charge_id, amount }.idempotency_key(order_id);
            extra_charge(services, order_id, charge_id, amount, token, key).await
        }
        _ => Ok(None),
    }
}

/// An extra charge: a new authorization on the order's card, then its capture in full. The
/// customer is not present, so a 3-D Secure challenge counts as a decline.
async fn extra_charge(
    services: &CheckoutServices,
    order_id: waybill_schemas::OrderId,
    charge_id: uuid::Uuid,
    amount: waybill_schemas::Money,
    token: String,
    key: String,
) -> Result<Option<OrderCommand>, String> {
    let declined = |code: String, message: String| {
        Ok(Some(OrderCommand::RecordChargeDecline {
            charge_id,
            code,
            message,
        }))
    };
    let authorize = AuthorizeRequest {
        idempotency_key: key.clone(),
        order_id,
        amount,
        token,
    };
    let authorization_id = match services.gateway.authorize(authorize).await {
        Ok(AuthorizeOutcome::Authorized {
            authorization_id, ..
        }) => authorization_id,
        Ok(AuthorizeOutcome::ChallengeRequired { .. }) => {
            return declined(
                "authentication_required".into(),
                "the bank asked for 3-D Secure, which needs the customer present".into(),
            )
        }
        Ok(AuthorizeOutcome::Declined { code, message, .. }) => return declined(code, message),
        Err(e) => return Err(gateway_error("charge authorize", &e)),
    };
    let capture = CaptureRequest {
        idempotency_key: format!("{key}:capture"),
        authorization_id: authorization_id.clone(),
        amount,
    };
    match services.gateway.capture(capture).await {
        Ok(CaptureOutcome::Captured { capture_id, amount }) => {
            Ok(Some(OrderCommand::RecordCharge {
                charge_id,
                authorization_id,
                capture_id,
                amount,
            }))
        }
        Ok(CaptureOutcome::Refused { code, message }) => declined(code, message),
        Err(e) => Err(gateway_error("charge capture", &e)),
    }
}

fn gateway_error(call: &str, error: &GatewayError) -> String {
    format!("gateway {call}: {error}")
}
