//! `GET /console/orders/{id}`: one order for an agent — status, lines, payments, shipments with
//! carrier tracking, returns, refunds, risk reasons, disputes and the full event timeline (from
//! the event store, like `GET /v1/agent/orders/{id}`), with the actions an agent may take.
//!
//! `POST /console/orders/{id}/actions/{action}`: the first POST (`step=review`) shows what
//! will be done and asks for confirmation; the second (`step=confirm`) sends the command to the
//! command API with the idempotency key minted when the order page was rendered, then goes to
//! the order page with the answer's consistency token, which waits (bounded) until the views
//! show the change.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use waybill_schemas::views::{ConsistencyToken, TrackingStatus, TrackingView};
use waybill_schemas::OrderId;
use waybill_write_side::command_api::problem::Path;
use waybill_write_side::domain::order::{Offers, Order};

use super::actions::{prepare, Action, Fields, Prepared};
use super::search_page::money;
use super::ROLES;
use crate::http::AppState;
use crate::problem::Problem;
use crate::screens::csrf::PostedForm;
use crate::screens::layout::{csrf_field, page};
use crate::screens::plural::count;
use crate::screens::table::{stacked, Column};
use crate::screens::{command_client, require_role, url_encode, ScreenError, Session};
use crate::search::{load_agent_order_with_events, AgentOrderResponse, InternalTimelineEntry};
use waybill_projectors::views::notifications::Notification;

#[derive(Debug, Default, Deserialize)]
pub struct OrderParams {
    pub consistency_token: Option<String>,
    /// The action just done (its slug), to say so on the page.
    pub done: Option<String>,
}

fn order_id(raw: &str) -> Result<OrderId, ScreenError> {
    OrderId::parse(raw).map_err(|_| ScreenError::NotFound)
}

fn problem(error: Problem) -> ScreenError {
    match error {
        Problem::OrderNotFound | Problem::NotFound => ScreenError::NotFound,
        Problem::BadParameter { field, detail } => ScreenError::BadInput { field, detail },
        Problem::Unavailable { .. } | Problem::Timeout => ScreenError::Unavailable,
        _ => ScreenError::Internal,
    }
}

struct Loaded {
    order: AgentOrderResponse,
    view: TrackingView,
    notifications: Vec<Notification>,
    /// What the order's state admits, by the command side's own rules.
    offers: Offers,
}

/// The order's offers: its stream folded into the write side's order state, asked
/// [`OrderState::offers`](waybill_write_side::domain::order::OrderState::offers).
fn offers(events: &[waybill_schemas::EventEnvelope]) -> Result<Offers, ScreenError> {
    let decoded = waybill_write_side::fulfillment::append::decode(events).map_err(|error| {
        tracing::error!(%error, "an order stream does not decode");
        ScreenError::Internal
    })?;
    Order::from_events(&decoded)
        .state()
        .map(|state| state.offers())
        .ok_or(ScreenError::NotFound)
}

async fn load(
    state: &AppState,
    order: OrderId,
    wanted: Option<i64>,
) -> Result<Loaded, ScreenError> {
    let (loaded, events) = load_agent_order_with_events(state, order, wanted)
        .await
        .map_err(problem)?;
    let view = loaded.tracking.clone().ok_or(ScreenError::NotFound)?;
    Ok(Loaded {
        offers: offers(&events)?,
        notifications: super::notifications::sent(&events, &state.config.tracking),
        order: loaded,
        view,
    })
}

fn notifications(sent: &[Notification]) -> Markup {
    html! {
        section aria-labelledby="h-notifications" {
            h2 id="h-notifications" { "Notifications sent" }
            @if sent.is_empty() { p class="muted" { "None." } } @else {
                ul id="notifications" {
                    @for n in sent {
                        li {
                            time { (n.occurred_at.format("%Y-%m-%d %H:%M UTC")) } " · "
                            (n.kind.title()) " · " (n.medium.as_str()) " to " (n.to)
                            @if let Some(subject) = &n.subject { " · “" (subject) "”" }
                        }
                    }
                }
            }
        }
    }
}

fn events<'a>(
    loaded: &'a AgentOrderResponse,
    kind: &'a str,
) -> impl Iterator<Item = &'a InternalTimelineEntry> + 'a {
    loaded.timeline.iter().filter(move |e| e.event_type == kind)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn amount(value: &Value) -> String {
    match (value["minor"].as_i64(), value["currency"].as_str()) {
        (Some(minor), Some(currency)) => money(minor, currency),
        _ => text(value),
    }
}

fn status_badge(status: TrackingStatus) -> Markup {
    let word = serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let class = match status {
        TrackingStatus::Cancelled => "badge bad",
        TrackingStatus::InReview | TrackingStatus::AwaitingPayment => "badge warn",
        TrackingStatus::Placed => "badge",
        _ => "badge ok",
    };
    html! { span class=(class) id="order-status" data-status=(word) { (word.replace('_', " ")) } }
}

fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
}

fn overview(loaded: &AgentOrderResponse, view: &TrackingView) -> Markup {
    let m = |minor| money(minor, &view.currency);
    let customer = loaded.document.as_ref().map(|d| &d.customer);
    html! {
        div class="grid" {
            section class="card" aria-labelledby="h-summary" {
                h2 id="h-summary" { "Summary" }
                dl class="facts" {
                    dt { "Status" } dd { (status_badge(view.status)) }
                    dt { "Channel" } dd { (view.channel.as_str()) " · " (view.channel_order_ref) }
                    dt { "Placed" } dd { (view.placed_at.format("%Y-%m-%d %H:%M UTC")) }
                    dt { "Shipping" } dd { (view.shipping_method) }
                    @if let Some(reason) = &view.cancellation_reason { dt { "Cancelled" } dd { (reason) } }
                    @if let Some(c) = customer {
                        dt { "Customer" } dd { (c.name) br; (c.email) @if let Some(p) = &c.phone { br; (p) } }
                    }
                }
            }
            section class="card" aria-labelledby="h-payment" {
                h2 id="h-payment" { "Payment" }
                dl class="facts" {
                    dt { "State" } dd { (word(&view.payment.state)) }
                    dt { "Total" } dd { (m(view.totals.grand_total_minor)) }
                    dt { "Authorized" } dd { (m(view.payment.authorized_minor)) }
                    dt { "Captured" } dd { (m(view.payment.captured_minor)) }
                    dt { "Refunded" } dd id="refunded-total" { (m(view.payment.refunded_minor)) }
                    dt { "Charged back" } dd { (m(view.payment.reversed_minor)) }
                    dt { "Extra charges" } dd { (m(view.payment.extra_charged_minor)) }
                    dt { "Store credit" } dd { (m(view.payment.store_credit_minor)) }
                }
            }
        }
    }
}

fn lines(view: &TrackingView) -> Markup {
    let m = |minor| money(minor, &view.currency);
    html! {
        section aria-labelledby="h-lines" {
            h2 id="h-lines" { "Lines" }
            (stacked(
                Some("lines"),
                None,
                &[Column::text("#"), Column::text("SKU"), Column::text("Item"), Column::num("Qty"), Column::num("Cancelled"), Column::num("Unit price"), Column::num("Total")],
                view.lines.iter().map(|line| vec![
                    html! { (line.line_no) },
                    html! { (line.sku) },
                    html! { (line.name) },
                    html! { (line.quantity) },
                    html! { (line.cancelled_quantity) },
                    html! { (m(line.unit_price_minor)) },
                    html! { (m(line.total_minor)) },
                ]),
            ))
            dl class="facts" {
                dt { "Subtotal" } dd { (m(view.totals.subtotal_minor)) }
                dt { "Discounts" } dd { (m(view.totals.discount_minor)) }
                dt { "Tax" } dd { (m(view.totals.tax_minor)) }
                dt { "Shipping" } dd { (m(view.totals.shipping_minor)) }
                dt { "Grand total" } dd { strong { (m(view.totals.grand_total_minor)) } }
            }
        }
    }
}

fn shipments(view: &TrackingView) -> Markup {
    html! {
        section aria-labelledby="h-shipments" {
            h2 id="h-shipments" { "Shipments" }
            @if view.shipments.is_empty() { p class="muted" { "No shipment yet." } }
            @for s in &view.shipments {
                div class="card" {
                    p {
                        strong { (s.carrier) } " · " (word(&s.status))
                        @if let Some(number) = &s.tracking_number {
                            " · tracking "
                            @if let Some(url) = &s.tracking_url { a href=(url) rel="noopener noreferrer" { (number) } } @else { (number) }
                        }
                        @if let Some(eta) = s.eta { " · ETA " (eta.format("%Y-%m-%d")) }
                    }
                    p class="muted" { "Lines: " @for l in &s.lines { "#" (l.line_no) " × " (l.quantity) " " } }
                    @if !s.progress.is_empty() {
                        ol class="timeline" {
                            @for p in &s.progress {
                                li { time { (p.at.format("%Y-%m-%d %H:%M UTC")) } (p.description) @if let Some(at) = &p.location { " — " (at) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn returns_and_refunds(loaded: &AgentOrderResponse, view: &TrackingView) -> Markup {
    let m = |minor| money(minor, &view.currency);
    html! {
        section aria-labelledby="h-returns" {
            h2 id="h-returns" { "Returns" }
            @if view.returns.is_empty() { p class="muted" { "No return." } }
            @for r in &view.returns {
                div class="card" {
                    p { strong { (r.rma) } " · " (word(&r.status)) " · refunded " (m(r.refunded_minor)) " · fees " (m(r.fees_minor)) " · expected refund " (m(r.expected_refund_minor)) }
                    p class="muted" { "Lines: " @for l in &r.lines { "#" (l.line_no) " × " (l.quantity) " " } }
                }
            }
        }
        section aria-labelledby="h-refunds" {
            h2 id="h-refunds" { "Refunds" }
            @let requested: Vec<_> = events(loaded, "RefundRequested").collect();
            @if requested.is_empty() { p class="muted" { "No refund." } } @else {
                (stacked(
                    Some("refunds"),
                    None,
                    &[Column::day("Requested (UTC)"), Column::num("Amount"), Column::text("Kind"), Column::text("Reason"), Column::text("By"), Column::text("Outcome")],
                    requested.iter().map(|e| {
                        let id = &e.payload["refund_id"];
                        let refunded = events(loaded, "PaymentRefunded").any(|r| &r.payload["refund_id"] == id);
                        let failed = events(loaded, "RefundFailed").find(|r| &r.payload["refund_id"] == id);
                        vec![
                            html! { (e.occurred_at.format("%Y-%m-%d %H:%M")) },
                            html! { (amount(&e.payload["amount"])) },
                            html! { (text(&e.payload["kind"])) },
                            html! { (text(&e.payload["reason"])) },
                            html! { (text(&e.payload["requested_by"])) },
                            html! {
                                @if refunded { span class="badge ok" { "refunded" } }
                                @else if let Some(f) = failed { span class="badge bad" { "failed: " (text(&f.payload["message"])) } }
                                @else { span class="badge warn" { "pending" } }
                            },
                        ]
                    }),
                ))
            }
            @for e in events(loaded, "StoreCreditIssued") {
                p { "Store credit " (amount(&e.payload["amount"])) " to " (text(&e.payload["customer_id"])) ": " (text(&e.payload["reason"])) }
            }
        }
    }
}

fn risk_and_disputes(loaded: &AgentOrderResponse) -> Markup {
    html! {
        section aria-labelledby="h-risk" {
            h2 id="h-risk" { "Risk" }
            @let assessed: Vec<_> = events(loaded, "RiskAssessed").collect();
            @if assessed.is_empty() { p class="muted" { "Not assessed yet." } }
            @for e in assessed {
                p { "Decision " strong { (text(&e.payload["decision"])) } ", score " (text(&e.payload["score"])) }
                ul id="risk-reasons" {
                    @for r in e.payload["reasons"].as_array().into_iter().flatten() {
                        li { code { (text(&r["rule"])) } " (+" (text(&r["points"])) "): " (text(&r["detail"])) }
                    }
                }
            }
            @for e in events(loaded, "RiskReviewResolved") {
                p { "Review resolved: " (text(&e.payload["decision"])) " by " (e.actor) }
            }
        }
        section aria-labelledby="h-disputes" {
            h2 id="h-disputes" { "Disputes" }
            @let opened: Vec<_> = events(loaded, "ChargebackOpened").collect();
            @if opened.is_empty() { p class="muted" { "No dispute." } }
            @for e in opened {
                @let id = &e.payload["dispute_id"];
                p {
                    strong { (text(id)) } " · " (amount(&e.payload["amount"])) " · reason " (text(&e.payload["reason_code"]))
                    " · evidence due " (text(&e.payload["evidence_due_by"]))
                    @if events(loaded, "ChargebackWon").any(|w| &w.payload["dispute_id"] == id) { " · " span class="badge ok" { "won" } }
                    @if events(loaded, "ChargebackLost").any(|w| &w.payload["dispute_id"] == id) { " · " span class="badge bad" { "lost" } }
                    @if events(loaded, "ChargebackEvidenceSubmitted").any(|w| &w.payload["dispute_id"] == id) { " · evidence submitted" }
                }
            }
        }
    }
}

pub(crate) fn timeline(loaded: &AgentOrderResponse) -> Markup {
    html! {
        section aria-labelledby="h-timeline" {
            h2 id="h-timeline" { "Timeline (" (count(loaded.timeline.len() as u64, "event", "events")) ")" }
            ol class="timeline" id="timeline" {
                @for e in loaded.timeline.iter().rev() {
                    @let desk = e.stream_id.starts_with(waybill_schemas::events::desk::DESK_STREAM_PREFIX);
                    li data-event=(e.event_type) class=[desk.then_some("desk")] {
                        time datetime=(e.occurred_at.to_rfc3339()) { (e.occurred_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                        @if desk { " · exceptions desk" } @else { " · v" (e.version) }
                        " · " (e.actor)
                        details {
                            summary {
                                (e.event_type)
                                @if desk { ": " (desk_summary(&e.payload)) }
                            }
                            pre { (serde_json::to_string_pretty(&e.payload).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

/// What a `DeskEntryResolved` says, in words: the action (its label) and the note.
fn desk_summary(payload: &Value) -> String {
    let action = payload["action"]
        .as_str()
        .and_then(waybill_write_side::desk::Action::parse)
        .map_or_else(|| text(&payload["action"]), |a| a.label().to_owned());
    match payload["note"].as_str() {
        Some(note) => format!("{action} ({}) — {note}", text(&payload["kind"])),
        None => format!("{action} ({})", text(&payload["kind"])),
    }
}

/// One action form: its fields, the idempotency key minted now, and the CSRF token.
fn action_form(
    session: &Session,
    order: &str,
    action: Action,
    title: &str,
    fields: Markup,
) -> Markup {
    let id = format!("action-{}", action.slug());
    html! {
        form method="post" action={ "/console/orders/" (order) "/actions/" (action.slug()) } class="card" id=(id) aria-labelledby={ (id) "-h" } {
            h3 id={ (id) "-h" } { (title) }
            (csrf_field(session))
            input type="hidden" name="idempotency_key" value=(uuid::Uuid::now_v7().to_string());
            input type="hidden" name="step" value="review";
            (fields)
            p { button type="submit" { "Continue…" } }
        }
    }
}

fn input(id: &str, name: &str, label: &str, kind: &str, extra_hint: Option<&str>) -> Markup {
    let field_id = format!("{id}-{name}");
    html! {
        label for=(field_id) { (label) }
        @if let Some(hint) = extra_hint { p class="hint" id={ (field_id) "-hint" } { (hint) } }
        input id=(field_id) name=(name) type=(kind) required aria-describedby=[extra_hint.map(|_| format!("{field_id}-hint"))];
    }
}

/// The action forms the order's state admits ([`Offers`]): a form is shown only when the
/// command API would accept its command for this order now.
fn actions(
    session: &Session,
    loaded: &AgentOrderResponse,
    view: &TrackingView,
    sent: &[Notification],
    offers: &Offers,
) -> Markup {
    let mut kinds: Vec<_> = sent.iter().map(|n| n.kind).collect();
    kinds.sort();
    kinds.dedup();
    let order = view.order_id.as_str();
    let currency = view.currency.as_str();
    let m = |minor| money(minor, currency);
    let returns: Vec<String> = events(loaded, "ReturnRequested")
        .map(|e| text(&e.payload["return_id"]))
        .collect();
    let line_options = html! { @for l in &view.lines { option value=(l.line_no) { "#" (l.line_no) " " (l.name) " (" (l.sku) ")" } } };
    let cancellable = html! {
        @for l in view.lines.iter().filter(|l| offers.cancel_lines.contains_key(&l.line_no)) {
            option value=(l.line_no) { "#" (l.line_no) " " (l.name) " (" (l.sku) "), up to " (offers.cancel_lines[&l.line_no]) }
        }
    };
    let nothing = !offers.review
        && offers.refund.is_none()
        && offers.store_credit.is_none()
        && offers.cancel_lines.is_empty()
        && returns.is_empty()
        && offers.evidence.is_empty()
        && kinds.is_empty();
    html! {
        section aria-labelledby="h-actions" class="actions" {
            h2 id="h-actions" { "Actions" }
            @if nothing {
                p id="no-actions" { "Nothing can be done to this order in its present state." }
            } @else {
                p class="hint" { "Each action asks for confirmation before it is sent. Only what this order's state admits is offered." }
            }
            div class="grid" {
                @if offers.review {
                    (action_form(session, order, Action::Review, "Decide the review", html! {
                        label for="review-decision" { "Decision" }
                        select id="review-decision" name="decision" { option value="approve" { "Approve" } option value="reject" { "Reject" } }
                        label for="review-note" { "Note (optional)" }
                        input id="review-note" name="note" type="text";
                    }))
                }
                @if let Some(refundable) = offers.refund {
                    (action_form(session, order, Action::Refund, "Refund part of the order", html! {
                        (input("refund", "amount", &format!("Amount ({currency})"), "text", Some(format!("Back to the original payment, up to {}", m(refundable.minor)).as_str())))
                        (input("refund", "reason", "Reason", "text", None))
                    }))
                }
                @if let Some(creditable) = offers.store_credit {
                    (action_form(session, order, Action::StoreCredit, "Goodwill store credit", html! {
                        (input("credit", "amount", &format!("Amount ({currency})"), "text", Some(format!("Credited to the customer's account, up to {}", m(creditable.minor)).as_str())))
                        (input("credit", "reason", "Reason", "text", None))
                    }))
                }
                @if !offers.cancel_lines.is_empty() {
                    (action_form(session, order, Action::CancelLines, "Cancel units of a line", html! {
                        label for="cancel-line_no" { "Line" }
                        select id="cancel-line_no" name="line_no" { (cancellable) }
                        (input("cancel", "quantity", "Units", "number", None))
                        label for="cancel-reason" { "Reason" }
                        select id="cancel-reason" name="reason" { option value="customer_request" { "Customer request" } option value="out_of_stock" { "Out of stock" } option value="fraud" { "Fraud" } option value="other" { "Other" } }
                    }))
                }
                @if !returns.is_empty() {
                    (action_form(session, order, Action::Inspection, "Record a return inspection", html! {
                        label for="inspect-return_id" { "Return" }
                        select id="inspect-return_id" name="return_id" { @for r in &returns { option value=(r) { (r) } } }
                        label for="inspect-line_no" { "Line" }
                        select id="inspect-line_no" name="line_no" { (line_options) }
                        (input("inspect", "accepted", "Accepted units", "number", None))
                        (input("inspect", "rejected", "Rejected units", "number", None))
                        (input("inspect", "resellable", "Back to stock (of accepted)", "number", None))
                    }))
                }
                @if !offers.evidence.is_empty() {
                    (action_form(session, order, Action::Evidence, "Answer a dispute", html! {
                        label for="evidence-dispute_id" { "Dispute" }
                        select id="evidence-dispute_id" name="dispute_id" { @for d in &offers.evidence { option value=(d) { (d) } } }
                        label for="evidence-text" { "Evidence" }
                        textarea id="evidence-text" name="text" required {}
                    }))
                }
                @if !kinds.is_empty() {
                    (action_form(session, order, Action::ResendNotification, "Resend a notification", html! {
                        label for="resend-kind" { "Message" }
                        select id="resend-kind" name="kind" { @for k in &kinds { option value=(k.as_str()) { (k.title()) } } }
                        label for="resend-medium" { "By" }
                        select id="resend-medium" name="medium" {
                            option value="any" { "the customer's chosen media" }
                            option value="email" { "email only" }
                            option value="sms" { "text message only" }
                        }
                        label for="resend-note" { "Reason (optional)" }
                        input id="resend-note" name="note" type="text";
                    }))
                }
            }
        }
    }
}

/// `GET /console/orders/{id}`.
pub async fn order_page(
    State(state): State<AppState>,
    session: Session,
    Path(raw_id): Path<String>,
    params: Result<Query<OrderParams>, QueryRejection>,
) -> Result<Response, ScreenError> {
    require_role(&session, ROLES)?;
    let Query(params) = params.map_err(|_| ScreenError::bad_query())?;
    let order = order_id(&raw_id)?;
    let wanted = match params
        .consistency_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(raw) => match ConsistencyToken::parse(raw) {
            Some(token) if token.order_id == order => Some(token.version),
            _ => {
                return Err(ScreenError::BadInput {
                    field: "consistency_token",
                    detail: "is not a token of this order".to_owned(),
                })
            }
        },
    };
    let Loaded {
        order: loaded,
        view,
        notifications: sent,
        offers,
    } = load(&state, order, wanted).await?;
    let done = params.done.as_deref().and_then(Action::parse);
    let main = html! {
        p { a href="/console" { "← Orders" } }
        h1 { "Order " (view.channel_order_ref) " " (status_badge(view.status)) }
        @if let Some(done) = done {
            @if loaded.consistency.stale {
                p class="notice warn" role="status" { (done.done()) " The views have not caught up yet: reload in a moment." }
            } @else {
                p class="notice" role="status" id="done" { (done.done()) " The page shows the order with it." }
            }
        }
        (overview(&loaded, &view))
        (lines(&view))
        (shipments(&view))
        (returns_and_refunds(&loaded, &view))
        (risk_and_disputes(&loaded))
        (notifications(&sent))
        (actions(&session, &loaded, &view, &sent, &offers))
        (timeline(&loaded))
    };
    Ok(page(
        &session,
        &format!("Order {}", view.channel_order_ref),
        "/console",
        main,
    ))
}

fn confirm_page(
    session: &Session,
    view: &TrackingView,
    action: Action,
    prepared: &Prepared,
    fields: &Fields,
    error: Option<&command_client::Refused>,
) -> Response {
    let order = view.order_id.as_str();
    let mut kept: Vec<(&String, &String)> = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "csrf" | "step"))
        .collect();
    kept.sort();
    let main = html! {
        p { a href={ "/console/orders/" (order) } { "← Order " (view.channel_order_ref) } }
        h1 { "Confirm" }
        @if let Some(error) = error {
            div class="error" role="alert" id="action-error" {
                p { "The command API refused this (" (error.status) "): " (error.detail) }
                @if let Some(field) = &error.field { p { "Field: " (field) } }
            }
        }
        p id="confirm-summary" { (prepared.summary) }
        form method="post" action={ "/console/orders/" (order) "/actions/" (action.slug()) } class="card" {
            (csrf_field(session))
            input type="hidden" name="step" value="confirm";
            @for (name, value) in kept { input type="hidden" name=(name) value=(value); }
            p {
                button type="submit" id="confirm" { "Confirm" } " "
                a class="button secondary" href={ "/console/orders/" (order) } { "Cancel" }
            }
        }
    };
    let mut response = page(session, "Confirm", "/console", main);
    if let Some(error) = error {
        *response.status_mut() = StatusCode::from_u16(error.status)
            .ok()
            .filter(|s| s.is_client_error())
            .unwrap_or(StatusCode::BAD_GATEWAY);
    }
    response
}

/// `POST /console/orders/{id}/actions/{action}`.
pub async fn order_action(
    State(state): State<AppState>,
    Path((raw_id, slug)): Path<(String, String)>,
    posted: PostedForm<Fields>,
) -> Result<Response, ScreenError> {
    let PostedForm { session, form } = posted;
    require_role(&session, ROLES)?;
    let order = order_id(&raw_id)?;
    let action = Action::parse(&slug).ok_or(ScreenError::NotFound)?;
    let view = load(&state, order, None).await?.view;
    let prepared = prepare(action, &view, &form)?;
    if form.get("step").map(String::as_str) != Some("confirm") {
        return Ok(confirm_page(
            &session, &view, action, &prepared, &form, None,
        ));
    }
    match command_client::post(
        &state,
        &session,
        &prepared.path,
        &prepared.idempotency_key,
        &prepared.body,
    )
    .await?
    {
        Ok(accepted) => {
            let mut to = format!("/console/orders/{order}?done={}", action.slug());
            if let Some(token) = accepted.consistency_token {
                to.push_str(&format!("&consistency_token={}", url_encode(&token)));
            }
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(value) = axum::http::HeaderValue::from_str(&to) {
                response
                    .headers_mut()
                    .insert(axum::http::header::LOCATION, value);
            }
            Ok(response)
        }
        Err(refused) => Ok(confirm_page(
            &session,
            &view,
            action,
            &prepared,
            &form,
            Some(&refused),
        )),
    }
}
