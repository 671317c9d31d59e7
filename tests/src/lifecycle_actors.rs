//! The people and partners around orders, for tests that run many orders through the whole
//! lifecycle while parts of the system are killed: customers placing orders (and cancelling or
//! returning some), nodes packing every WMS task and the carrier delivering every parcel through
//! the logistics sandbox's driver endpoints. Each keeps trying a request, with the same
//! idempotency key, while the stack answers with a broken connection, a 5xx or a 429 (a killed
//! instance, an election, a failover), as real clients and partners do; anything else is an
//! answer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use sqlx::PgPool;

/// How long one request is tried before the test gives up on it.
const REQUEST_DEADLINE: Duration = Duration::from_secs(180);

/// HTTP with retries over outages.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Http {
        Http {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("http client"),
        }
    }

    /// One attempt: the status and the JSON body (`Null` if none), or what went wrong.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        bearer: Option<&str>,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut request = self.client.request(method, url);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// [`Http::send`] again and again while the answer is an outage; the first real answer.
    pub async fn answered(
        &self,
        method: reqwest::Method,
        url: &str,
        bearer: Option<&str>,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let until = tokio::time::Instant::now() + REQUEST_DEADLINE;
        loop {
            let last = match self
                .send(method.clone(), url, bearer, idempotency_key, body)
                .await
            {
                Ok((status, body)) if status < 500 && status != 429 => return (status, body),
                Ok((status, body)) => format!("{status} {body}"),
                Err(error) => error,
            };
            assert!(
                tokio::time::Instant::now() < until,
                "{url} kept failing for {REQUEST_DEADLINE:?}: {last}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Nodes and the carrier: until `stop`, packs every WMS task the logistics sandbox lists and
/// delivers every parcel, each report sent again (with its first event id) until Waybill took
/// it (a 409 "not known yet" means the label's shipment is still being recorded). Answers (tasks packed, parcels
/// delivered).
pub async fn act_as_nodes_and_carrier(
    http: Http,
    sandbox: String,
    stop: Arc<AtomicBool>,
) -> (usize, usize) {
    let (mut tasks_seen, mut parcels_seen) = (0usize, 0usize);
    let (mut packed, mut delivered) = (0usize, 0usize);
    let mut to_pack: Vec<String> = Vec::new();
    let mut to_deliver: Vec<String> = Vec::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let url = format!("{sandbox}/sandbox/tasks?after={tasks_seen}");
        if let Ok((200, body)) = http
            .send(reqwest::Method::GET, &url, None, None, None)
            .await
        {
            let new = strings(&body["tasks"], "fulfillment_id");
            tasks_seen += new.len();
            to_pack.extend(new);
        }
        let before = to_pack.len();
        to_pack = report_all(&http, std::mem::take(&mut to_pack), |id| {
            (
                format!("{sandbox}/sandbox/nodes/{id}/report"),
                json!({"type": "packed", "event_id": format!("chaos-packed-{id}")}),
            )
        })
        .await;
        packed += before - to_pack.len();

        let url = format!("{sandbox}/sandbox/parcels?after={parcels_seen}");
        if let Ok((200, body)) = http
            .send(reqwest::Method::GET, &url, None, None, None)
            .await
        {
            let new = strings(&body["parcels"], "tracking_number");
            parcels_seen += new.len();
            to_deliver.extend(new);
        }
        let before = to_deliver.len();
        to_deliver = report_all(&http, std::mem::take(&mut to_deliver), |tracking| {
            (
                format!("{sandbox}/sandbox/parcels/{tracking}/scan"),
                json!({"status_code": "DL", "received_by": "chaos",
                       "event_id": format!("chaos-delivered-{tracking}")}),
            )
        })
        .await;
        delivered += before - to_deliver.len();
        if stopping {
            return (packed, delivered);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn strings(items: &Value, field: &str) -> Vec<String> {
    items
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item[field].as_str().map(str::to_owned))
        .collect()
}

/// Sends one driver report per id, a few at a time; the ids Waybill did not take (yet).
async fn report_all(
    http: &Http,
    ids: Vec<String>,
    request: impl Fn(&str) -> (String, Value),
) -> Vec<String> {
    futures::stream::iter(ids)
        .map(|id| {
            let (url, body) = request(&id);
            async move {
                let taken = matches!(
                    http.send(reqwest::Method::POST, &url, None, None, Some(&body)).await,
                    Ok((200, answer)) if answer["waybill_status"] == json!(200)
                );
                (!taken).then_some(id)
            }
        })
        .buffer_unordered(8)
        .filter_map(|left| async move { left })
        .collect()
        .await
}

/// Customers who send one unit back: until `stop`, for each order in `returning` (filled as
/// orders are placed) that has
/// closed, opens the return (line 1, one unit, refund) through `command_url` and reports it
/// received and inspected (accepted, resellable) as the receiving node. Answers the orders
/// whose return was opened.
pub async fn act_as_returning_customers(
    http: Http,
    pool: PgPool,
    command_url: String,
    sandbox: String,
    bearer: String,
    returning: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut opened: Vec<String> = Vec::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let closed: Vec<(String, Value)> = sqlx::query_as(
            "SELECT p.payload->>'order_id', p.payload FROM events c \
             JOIN events p ON p.stream_id = c.stream_id AND p.event_type = 'OrderPlaced' \
             WHERE c.event_type = 'OrderClosed'",
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        let mut due: Vec<(String, String)> = Vec::new();
        for (order_id, placed) in closed {
            let picked = returning
                .lock()
                .map(|r| r.contains(&order_id))
                .unwrap_or(false);
            if !picked || opened.contains(&order_id) {
                continue;
            }
            let sku = placed["lines"][0]["sku"].as_str().unwrap_or_default();
            due.push((order_id, sku.to_owned()));
        }
        // Customers act independently: several returns on their way at once.
        futures::stream::iter(&due)
            .for_each_concurrent(8, |(order_id, sku)| {
                send_back(&http, &command_url, &sandbox, &bearer, order_id, sku)
            })
            .await;
        opened.extend(due.into_iter().map(|(order_id, _)| order_id));
        if stopping {
            return opened;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn send_back(
    http: &Http,
    command_url: &str,
    sandbox: &str,
    bearer: &str,
    order_id: &str,
    sku: &str,
) {
    let body = json!({
        "lines": [{"line_no": 1, "quantity": 1, "reason": "wrong_size"}],
        "resolution": "refund",
    });
    let (status, answer) = http
        .answered(
            reqwest::Method::POST,
            &format!("{command_url}/v1/orders/{order_id}/returns"),
            Some(bearer),
            Some(&format!("chaos-return-{order_id}")),
            Some(&body),
        )
        .await;
    assert!(status < 300, "return of {order_id}: {status} {answer}");
    let return_id = answer["return_id"]
        .as_str()
        .expect("a return id")
        .to_owned();
    let url = format!("{sandbox}/sandbox/returns/{return_id}/report");
    // A report sent again carries its first event id, as a node redelivering a webhook does.
    let received = json!({"type": "received", "event_id": format!("chaos-received-{return_id}")});
    let inspected = json!({"type": "inspected", "event_id": format!("chaos-inspected-{return_id}"),
        "lines": [{"line_no": 1, "sku": sku, "accepted": 1, "rejected": 0, "resellable": 1}]});
    for report in [received, inspected] {
        let until = tokio::time::Instant::now() + REQUEST_DEADLINE;
        loop {
            match http
                .send(reqwest::Method::POST, &url, None, None, Some(&report))
                .await
            {
                Ok((200, answer)) if answer["waybill_status"] == json!(200) => break,
                other => assert!(
                    tokio::time::Instant::now() < until,
                    "return report {report} for {order_id} never taken: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
