//! The logistics sandbox: a SIMULATED warehouse management system and carrier in one process
//! (`waybill serve logistics-sandbox`), for development, tests and the demo. It moves no parcels
//! and, with a state directory ([`LogisticsSandboxConfig::state_dir`]), keeps its tasks, parcels
//! and answered idempotency keys in a file replaced atomically ([`crate::state_file`]) after
//! every request that changes something and before that request is answered, so a restarted
//! sandbox still knows every parcel it labelled (a driver endpoint's webhook goes out before the
//! save; a crash in between forgets that one report, which the driver can repeat). Without
//! one it keeps everything in memory. It answers the adapter's calls (`/wms/v1/tasks`,
//! `/wms/v1/tasks/{task_id}/cancel` (refused once the task is packed), `/carrier/v1/labels`, `/carrier/v1/parcels/{tracking}/retry`, idempotent per
//! `Idempotency-Key`), and offers driver endpoints that act like a node or a carrier would:
//! `POST /sandbox/nodes/{fulfillment_id}/report`, `POST /sandbox/parcels/{tracking}/scan` and
//! `POST /sandbox/returns/{return_id}/report` (the receiving node: `received`, or `inspected`
//! with lines) send the corresponding signed webhook to Waybill and answer with what Waybill
//! said. Return labels (`/carrier/v1/return-labels`) are parcels too.
//! `GET /sandbox/tasks?order_id=&after=` and `GET /sandbox/parcels?order_id=&after=` list what
//! it was asked (`after`: skip the first n, oldest first).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use waybill_schemas::events::{FulfillmentLine, InspectedLine};
use waybill_schemas::OrderId;

use super::logistics::{
    CarrierWebhook, LabelCreated, LabelRequest, NodeReport, NodeWebhook, ReturnLabelCreated,
    ReturnLabelRequest, TaskAccepted, TaskCancel, TaskRequest, SIGNATURE_HEADER,
};
use crate::payment::webhook::sign;
use crate::state_file::{StateFile, StateFileError};

#[derive(Debug, Clone)]
pub struct LogisticsSandboxConfig {
    /// HMAC key of the webhooks' signature.
    pub webhook_secret: Vec<u8>,
    /// Waybill's `/v1/webhooks/wms` and `/v1/webhooks/carrier`.
    pub wms_webhook_url: String,
    pub carrier_webhook_url: String,
    /// Base URL of this sandbox (tracking and label links start with it).
    pub public_url: String,
    /// Simulated transit hours per zone of distance (+1) for label ETAs.
    pub transit_hours_per_zone: i64,
    /// Where the state is saved (`logistics-sandbox.json`); `None`: in memory only.
    pub state_dir: Option<std::path::PathBuf>,
}

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "logistics-sandbox";

/// What the sandbox saves.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    seq: u64,
    tasks: Vec<Task>,
    parcels: Vec<Parcel>,
    answers: HashMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Task {
    task_id: String,
    order_id: OrderId,
    fulfillment_id: String,
    node_id: String,
    lines: Vec<FulfillmentLine>,
    pickup: bool,
    /// The node reported it packed (or made ready for pickup): it takes no cancellation now.
    packed: bool,
    /// Units Waybill cancelled out of the task.
    cancelled: Vec<FulfillmentLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Parcel {
    tracking_number: String,
    order_id: OrderId,
    shipment_id: String,
    carrier: String,
    handoff_retries: u32,
    scans: Vec<CarrierWebhook>,
}

struct Inner {
    /// Random per process, in every id this sandbox makes, so a restarted sandbox never reuses
    /// an event id or tracking number Waybill has already seen (real carriers' ids are unique).
    run: String,
    seq: u64,
    tasks: Vec<Task>,
    parcels: Vec<Parcel>,
    answers: HashMap<String, serde_json::Value>,
}

#[derive(Clone)]
struct Sandbox {
    config: Arc<LogisticsSandboxConfig>,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
    state_file: Option<Arc<StateFile>>,
}

impl Inner {
    /// The saved state under a new run id (ids made from now on differ from every earlier
    /// process's, saved or not).
    fn restore(saved: Persisted) -> Self {
        let random = uuid::Uuid::now_v7().simple().to_string();
        Self {
            run: random[random.len() - 6..].to_ascii_uppercase(),
            seq: saved.seq,
            tasks: saved.tasks,
            parcels: saved.parcels,
            answers: saved.answers,
        }
    }
}

impl Sandbox {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn save(&self) -> Result<(), StateFileError> {
        let Some(file) = &self.state_file else {
            return Ok(());
        };
        file.save(|| {
            let inner = self.inner();
            let persisted = Persisted {
                seq: inner.seq,
                tasks: inner.tasks.clone(),
                parcels: inner.parcels.clone(),
                answers: inner.answers.clone(),
            };
            serde_json::to_vec(&persisted).unwrap_or_default()
        })
        .await
    }
}

/// Saves the state after every request that may change it, before its answer leaves.
async fn save_after_change(
    State(sandbox): State<Sandbox>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    let response = next.run(request).await;
    if changes {
        if let Err(error) = sandbox.save().await {
            tracing::error!(%error, "logistics sandbox state not saved");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the sandbox could not save its state: {error}"),
            );
        }
    }
    response
}

/// The sandbox's routes, its state loaded from the state directory when it has one.
pub fn router(config: LogisticsSandboxConfig) -> Result<Router, StateFileError> {
    let state_file = match &config.state_dir {
        Some(dir) => Some(Arc::new(StateFile::open(dir, STATE_FILE)?)),
        None => None,
    };
    let saved: Persisted = match &state_file {
        Some(file) => file.load()?.unwrap_or_default(),
        None => Persisted::default(),
    };
    if let Some(file) = &state_file {
        tracing::info!(
            path = %file.path().display(),
            tasks = saved.tasks.len(),
            parcels = saved.parcels.len(),
            "logistics sandbox state loaded"
        );
    }
    let sandbox = Sandbox {
        config: Arc::new(config),
        inner: Arc::new(Mutex::new(Inner::restore(saved))),
        http: reqwest::Client::new(),
        state_file,
    };
    Ok(Router::new()
        .route("/wms/v1/tasks", post(create_task))
        .route("/wms/v1/tasks/{task_id}/cancel", post(cancel_task_lines))
        .route("/carrier/v1/labels", post(create_label))
        .route("/carrier/v1/return-labels", post(create_return_label))
        .route("/carrier/v1/parcels/{tracking}/retry", post(retry_handoff))
        .route("/carrier/track/{tracking}", get(track_page))
        .route("/carrier/labels/{tracking}", get(label_page))
        .route("/sandbox/tasks", get(list_tasks))
        .route("/sandbox/parcels", get(list_parcels))
        .route("/sandbox/nodes/{fulfillment_id}/report", post(node_report))
        .route("/sandbox/parcels/{tracking}/scan", post(carrier_scan))
        .route("/sandbox/returns/{return_id}/report", post(return_report))
        .route("/health", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn_with_state(
            sandbox.clone(),
            save_after_change,
        ))
        .with_state(sandbox))
}

pub async fn serve(
    listener: TcpListener,
    config: LogisticsSandboxConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), state_dir = ?config.state_dir, "logistics sandbox (simulated WMS + carrier) listening");
    let router = router(config).map_err(std::io::Error::other)?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

fn key_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn problem(status: StatusCode, detail: String) -> Response {
    (status, Json(serde_json::json!({ "detail": detail }))).into_response()
}

async fn create_task(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Json(request): Json<TaskRequest>,
) -> Response {
    let key = key_of(&headers).unwrap_or_else(|| request.fulfillment_id.clone());
    let mut inner = sandbox.inner();
    if let Some(answer) = inner.answers.get(&format!("wms:{key}")) {
        return Json(answer.clone()).into_response();
    }
    inner.seq += 1;
    let task_id = format!("wms-task-{}-{}", inner.run, inner.seq);
    inner.tasks.push(Task {
        task_id: task_id.clone(),
        order_id: request.order_id,
        fulfillment_id: request.fulfillment_id,
        node_id: request.node_id,
        lines: request.lines,
        pickup: request.pickup,
        packed: false,
        cancelled: Vec::new(),
    });
    let answer = serde_json::to_value(TaskAccepted { task_id }).unwrap_or_default();
    inner.answers.insert(format!("wms:{key}"), answer.clone());
    Json(answer).into_response()
}

/// `POST /wms/v1/tasks/{task_id}/cancel` (header `Idempotency-Key`): take units out of a task.
/// Refused with 409 `task_packed` once the node has packed it.
async fn cancel_task_lines(
    State(sandbox): State<Sandbox>,
    Path(task_id): Path<String>,
    headers: HeaderMap,
    Json(request): Json<TaskCancel>,
) -> Response {
    let key = key_of(&headers).unwrap_or_else(|| format!("{task_id}:cancel"));
    let mut inner = sandbox.inner();
    if let Some(answer) = inner.answers.get(&format!("wms-cancel:{key}")) {
        return Json(answer.clone()).into_response();
    }
    let Some(task) = inner.tasks.iter_mut().find(|t| t.task_id == task_id) else {
        return problem(StatusCode::NOT_FOUND, format!("no task {task_id}"));
    };
    if task.packed {
        return (
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "code": "task_packed",
                "detail": format!("task {task_id} is packed; its units can no longer be taken out"),
            })),
        )
            .into_response();
    }
    task.cancelled.extend(request.lines);
    let answer = serde_json::json!({ "task_id": task_id, "cancelled": task.cancelled });
    inner
        .answers
        .insert(format!("wms-cancel:{key}"), answer.clone());
    Json(answer).into_response()
}

async fn create_label(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Json(request): Json<LabelRequest>,
) -> Response {
    let key = key_of(&headers).unwrap_or_else(|| request.shipment_id.clone());
    let public = sandbox.config.public_url.clone();
    let hours = sandbox.config.transit_hours_per_zone * (i64::from(request.zone_distance) + 1);
    let mut inner = sandbox.inner();
    if let Some(answer) = inner.answers.get(&format!("label:{key}")) {
        return Json(answer.clone()).into_response();
    }
    inner.seq += 1;
    let prefix: String = request
        .carrier
        .chars()
        .filter(char::is_ascii_alphabetic)
        .take(2)
        .collect::<String>()
        .to_ascii_uppercase();
    let tracking_number = format!("{prefix}{}{:06}", inner.run, inner.seq);
    inner.parcels.push(Parcel {
        tracking_number: tracking_number.clone(),
        order_id: request.order_id,
        shipment_id: request.shipment_id,
        carrier: request.carrier,
        handoff_retries: 0,
        scans: Vec::new(),
    });
    let label = LabelCreated {
        tracking_url: format!("{public}/carrier/track/{tracking_number}"),
        label_url: format!("{public}/carrier/labels/{tracking_number}"),
        tracking_number,
        eta: Utc::now() + Duration::hours(hours),
    };
    let answer = serde_json::to_value(label).unwrap_or_default();
    inner.answers.insert(format!("label:{key}"), answer.clone());
    Json(answer).into_response()
}

/// A prepaid return label; the parcel is listed with the return id as its shipment id.
async fn create_return_label(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Json(request): Json<ReturnLabelRequest>,
) -> Response {
    let key = key_of(&headers).unwrap_or_else(|| format!("{}:label", request.return_id));
    let public = sandbox.config.public_url.clone();
    let mut inner = sandbox.inner();
    if let Some(answer) = inner.answers.get(&format!("return-label:{key}")) {
        return Json(answer.clone()).into_response();
    }
    inner.seq += 1;
    let carrier = if request.carrier.is_empty() {
        "parcelco".to_owned()
    } else {
        request.carrier
    };
    let tracking_number = format!("RT{}{:06}", inner.run, inner.seq);
    inner.parcels.push(Parcel {
        tracking_number: tracking_number.clone(),
        order_id: request.order_id,
        shipment_id: request.return_id,
        carrier: carrier.clone(),
        handoff_retries: 0,
        scans: Vec::new(),
    });
    let label = ReturnLabelCreated {
        carrier,
        tracking_url: format!("{public}/carrier/track/{tracking_number}"),
        label_url: format!("{public}/carrier/labels/{tracking_number}"),
        tracking_number,
    };
    let answer = serde_json::to_value(label).unwrap_or_default();
    inner
        .answers
        .insert(format!("return-label:{key}"), answer.clone());
    Json(answer).into_response()
}

async fn retry_handoff(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Path(tracking): Path<String>,
) -> Response {
    let key = key_of(&headers).unwrap_or_default();
    let mut inner = sandbox.inner();
    if let Some(answer) = inner.answers.get(&format!("retry:{key}")) {
        return Json(answer.clone()).into_response();
    }
    let Some(parcel) = inner
        .parcels
        .iter_mut()
        .find(|p| p.tracking_number == tracking)
    else {
        return problem(StatusCode::NOT_FOUND, format!("no parcel {tracking}"));
    };
    parcel.handoff_retries += 1;
    let answer = serde_json::json!({ "tracking_number": tracking, "handoff_retries": parcel.handoff_retries });
    inner.answers.insert(format!("retry:{key}"), answer.clone());
    Json(answer).into_response()
}

async fn track_page(State(sandbox): State<Sandbox>, Path(tracking): Path<String>) -> Response {
    let inner = sandbox.inner();
    match inner.parcels.iter().find(|p| p.tracking_number == tracking) {
        Some(parcel) => Json(serde_json::json!({
            "simulated": true,
            "parcel": parcel,
        }))
        .into_response(),
        None => problem(StatusCode::NOT_FOUND, format!("no parcel {tracking}")),
    }
}

async fn label_page(Path(tracking): Path<String>) -> String {
    format!("SIMULATED SHIPPING LABEL\nTracking number: {tracking}\n(no parcel moves: this is the Waybill logistics sandbox)\n")
}

#[derive(Debug, Deserialize)]
struct ByOrder {
    order_id: Option<OrderId>,
    /// Skip the first `after` entries (in the order they were created): a driver's cursor.
    after: Option<usize>,
}

async fn list_tasks(State(sandbox): State<Sandbox>, Query(q): Query<ByOrder>) -> Response {
    let inner = sandbox.inner();
    let tasks: Vec<&Task> = inner
        .tasks
        .iter()
        .skip(q.after.unwrap_or(0))
        .filter(|t| q.order_id.is_none_or(|o| o == t.order_id))
        .collect();
    Json(serde_json::json!({ "tasks": tasks })).into_response()
}

async fn list_parcels(State(sandbox): State<Sandbox>, Query(q): Query<ByOrder>) -> Response {
    let inner = sandbox.inner();
    let parcels: Vec<&Parcel> = inner
        .parcels
        .iter()
        .skip(q.after.unwrap_or(0))
        .filter(|p| q.order_id.is_none_or(|o| o == p.order_id))
        .collect();
    Json(serde_json::json!({ "parcels": parcels })).into_response()
}

/// What a node does, as the driver endpoint takes it.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum NodeAction {
    Picked,
    Packed,
    ShortPicked {
        missing: Vec<FulfillmentLine>,
    },
    ReadyForPickup {
        #[serde(default)]
        pickup_code: Option<String>,
        #[serde(default)]
        collect_by: Option<DateTime<Utc>>,
    },
    PickedUp {
        pickup_code: String,
    },
}

#[derive(Debug, Deserialize)]
struct NodeDrive {
    /// Reuse an id to redeliver the same webhook.
    #[serde(default)]
    event_id: Option<String>,
    #[serde(flatten)]
    action: NodeAction,
}

async fn node_report(
    State(sandbox): State<Sandbox>,
    Path(fulfillment_id): Path<String>,
    Json(drive): Json<NodeDrive>,
) -> Response {
    let (order_id, id) = {
        let mut inner = sandbox.inner();
        let packs = matches!(
            drive.action,
            NodeAction::Packed | NodeAction::ReadyForPickup { .. }
        );
        let Some(task) = inner
            .tasks
            .iter_mut()
            .find(|t| t.fulfillment_id == fulfillment_id)
        else {
            return problem(
                StatusCode::NOT_FOUND,
                format!("no task for {fulfillment_id}"),
            );
        };
        task.packed |= packs;
        let order_id = task.order_id;
        inner.seq += 1;
        let id = drive
            .event_id
            .clone()
            .unwrap_or_else(|| format!("wms-ev-{}-{}", inner.run, inner.seq));
        (order_id, id)
    };
    let mut pickup_code = None;
    let report = match drive.action {
        NodeAction::Picked => NodeReport::Picked,
        NodeAction::Packed => NodeReport::Packed,
        NodeAction::ShortPicked { missing } => NodeReport::ShortPicked { missing },
        NodeAction::ReadyForPickup {
            pickup_code: code,
            collect_by,
        } => {
            let code = code.unwrap_or_else(|| format!("{:06}", rand::random::<u32>() % 1_000_000));
            pickup_code = Some(code.clone());
            NodeReport::ReadyForPickup {
                pickup_code: code,
                collect_by: collect_by.unwrap_or_else(|| Utc::now() + Duration::days(7)),
            }
        }
        NodeAction::PickedUp { pickup_code } => NodeReport::PickedUp { pickup_code },
    };
    let webhook = NodeWebhook {
        id: id.clone(),
        order_id,
        fulfillment_id,
        report,
        occurred_at: Utc::now(),
    };
    let url = sandbox.config.wms_webhook_url.clone();
    let (status, answer) = deliver(&sandbox, &url, &webhook).await;
    Json(serde_json::json!({
        "event_id": id,
        "pickup_code": pickup_code,
        "waybill_status": status,
        "waybill_response": answer,
    }))
    .into_response()
}

/// What the receiving node reports about a return.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ReturnAction {
    Received,
    Inspected { lines: Vec<InspectedLine> },
}

#[derive(Debug, Deserialize)]
struct ReturnDrive {
    /// The order the return belongs to (its id is `<order id>-R<n>`, so it may be left out).
    #[serde(default)]
    order_id: Option<OrderId>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(flatten)]
    action: ReturnAction,
}

/// The order id inside a return id `<order id>-R<n>`.
fn order_of_return(return_id: &str) -> Option<OrderId> {
    let (order, _) = return_id.rsplit_once("-R")?;
    OrderId::parse(order).ok()
}

async fn return_report(
    State(sandbox): State<Sandbox>,
    Path(return_id): Path<String>,
    Json(drive): Json<ReturnDrive>,
) -> Response {
    let Some(order_id) = drive.order_id.or_else(|| order_of_return(&return_id)) else {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("{return_id} is not a return id (<order id>-R<n>)"),
        );
    };
    let id = {
        let mut inner = sandbox.inner();
        inner.seq += 1;
        drive
            .event_id
            .clone()
            .unwrap_or_else(|| format!("wms-rt-{}-{}", inner.run, inner.seq))
    };
    let report = match drive.action {
        ReturnAction::Received => NodeReport::ReturnReceived,
        ReturnAction::Inspected { lines } => NodeReport::ReturnInspected { lines },
    };
    let webhook = NodeWebhook {
        id: id.clone(),
        order_id,
        fulfillment_id: return_id,
        report,
        occurred_at: Utc::now(),
    };
    let url = sandbox.config.wms_webhook_url.clone();
    let (status, answer) = deliver(&sandbox, &url, &webhook).await;
    Json(serde_json::json!({
        "event_id": id,
        "waybill_status": status,
        "waybill_response": answer,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct ScanDrive {
    status_code: String,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    carrier_time: Option<DateTime<Utc>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    received_by: Option<String>,
}

async fn carrier_scan(
    State(sandbox): State<Sandbox>,
    Path(tracking): Path<String>,
    Json(drive): Json<ScanDrive>,
) -> Response {
    let webhook = {
        let mut inner = sandbox.inner();
        inner.seq += 1;
        let event_id = format!("scan-{}-{}", inner.run, inner.seq);
        let Some(parcel) = inner
            .parcels
            .iter_mut()
            .find(|p| p.tracking_number == tracking)
        else {
            return problem(StatusCode::NOT_FOUND, format!("no parcel {tracking}"));
        };
        let webhook = CarrierWebhook {
            id: drive.event_id.unwrap_or(event_id),
            order_id: parcel.order_id,
            shipment_id: parcel.shipment_id.clone(),
            tracking_number: tracking.clone(),
            status_code: drive.status_code.clone(),
            carrier_time: drive.carrier_time.unwrap_or_else(Utc::now),
            description: drive
                .description
                .unwrap_or_else(|| format!("Scan {}", drive.status_code)),
            location: drive.location,
            received_by: drive.received_by,
            photo_url: None,
        };
        parcel.scans.push(webhook.clone());
        webhook
    };
    let url = sandbox.config.carrier_webhook_url.clone();
    let (status, answer) = deliver(&sandbox, &url, &webhook).await;
    Json(serde_json::json!({
        "event_id": webhook.id,
        "waybill_status": status,
        "waybill_response": answer,
    }))
    .into_response()
}

/// POSTs a signed webhook; answers Waybill's status and body (0 when unreachable).
async fn deliver<T: Serialize>(sandbox: &Sandbox, url: &str, body: &T) -> (u16, serde_json::Value) {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let signature = sign(
        &sandbox.config.webhook_secret,
        Utc::now().timestamp(),
        &bytes,
    );
    let sent = sandbox
        .http
        .post(url)
        .header(SIGNATURE_HEADER, signature)
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.json().await.unwrap_or(serde_json::Value::Null);
            (status, body)
        }
        Err(error) => (0, serde_json::json!({ "error": error.to_string() })),
    }
}
