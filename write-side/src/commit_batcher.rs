//! Group commit: many commands' rows in one SERIALIZABLE transaction (events, outbox rows,
//! idempotency records, channel references and checkout-flow wake-ups).
//!
//! One transaction per command tops out near 2.6k tx/s on the reference machine, so handlers
//! do everything that needs no write (validation, the domain decision, rendering the response)
//! and then hand a [`CommitRequest`] to the batcher. A worker takes what is queued (up to
//! `max_batch`, waiting at most `linger` after the first for more) and writes the idempotency
//! records, channel references, events and outbox rows of all of them with one multi-row
//! statement per table.
//!
//! The idempotency and channel-reference checks happen inside that transaction (`ON CONFLICT DO
//! NOTHING RETURNING`): a command whose key is already stored gets
//! [`CommitOutcome::IdempotencyKeyTaken`], one whose channel reference is already captured gets
//! [`CommitOutcome::ChannelRefTaken`], and neither writes anything, while the rest of the batch
//! commits. If the batch fails for anything but a serialization failure (retried as a whole),
//! e.g. a stream conflict, every command of it is committed alone in its own transaction so
//! each gets its own exact outcome. A caller is only answered after its rows committed (or
//! definitely did not).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use waybill_schemas::{Channel, EventEnvelope, OrderId};

use crate::channel_orders::{self, ChannelOrder};
use crate::checkout;
use crate::event_store::{self, retry};
use crate::idempotency::{self, IdempotencyRecord};

/// How the batcher groups commands.
#[derive(Debug, Clone)]
pub struct CommitBatcherConfig {
    /// Most commands per transaction; 1 commits every command alone.
    pub max_batch: usize,
    /// How long to wait after the first queued command for more to join its batch.
    pub linger: Duration,
    /// Batches committed concurrently (one connection each).
    pub workers: usize,
    /// Commands that may wait in the queue before submitters wait too.
    pub queue_capacity: usize,
}

impl Default for CommitBatcherConfig {
    fn default() -> Self {
        Self {
            max_batch: 256,
            linger: Duration::from_millis(1),
            workers: 2,
            queue_capacity: 4096,
        }
    }
}

/// The rows one command writes, all or nothing.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub idempotency: IdempotencyRecord,
    pub channel_order: Option<ChannelOrder>,
    pub events: Vec<EventEnvelope>,
    /// The order whose checkout flow these events need (made due now, in the same transaction).
    pub wake_flow: Option<OrderId>,
}

/// What became of one command's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Everything was written.
    Committed,
    /// Another request already stored a record under this idempotency key; nothing written.
    IdempotencyKeyTaken,
    /// The channel reference already belongs to `order_id`; nothing written.
    ChannelRefTaken { order_id: OrderId },
    /// The stream moved past the expected version; nothing written.
    StreamConflict { stream_id: String },
    /// The database failed; nothing written. The message is for logs, not clients.
    Failed(String),
    /// The database could not be used (connections kept failing, no connection to be had);
    /// nothing written. Answered 503: the client retries with the same key.
    Unavailable(String),
}

struct Pending {
    request: CommitRequest,
    reply: oneshot::Sender<CommitOutcome>,
}

/// Submits commands to the batch workers. Cheap to clone; the workers stop once every clone
/// is dropped and the queue is drained.
#[derive(Clone)]
pub struct CommitBatcher {
    queue: mpsc::Sender<Pending>,
}

impl CommitBatcher {
    /// Starts the workers on the current runtime.
    pub fn spawn(pool: PgPool, config: CommitBatcherConfig) -> (Self, Vec<JoinHandle<()>>) {
        let (queue, rx) = mpsc::channel(config.queue_capacity.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let config = Arc::new(config);
        let workers = (0..config.workers.max(1))
            .map(|_| tokio::spawn(worker(rx.clone(), pool.clone(), config.clone())))
            .collect();
        (Self { queue }, workers)
    }

    /// Commits `request` (batched with others) and says what became of it.
    pub async fn commit(&self, request: CommitRequest) -> CommitOutcome {
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Pending { request, reply }).await.is_err() {
            return CommitOutcome::Failed("commit batcher stopped".to_owned());
        }
        answer
            .await
            .unwrap_or_else(|_| CommitOutcome::Failed("commit batcher dropped the command".into()))
    }
}

async fn worker(
    rx: Arc<Mutex<mpsc::Receiver<Pending>>>,
    pool: PgPool,
    config: Arc<CommitBatcherConfig>,
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            match collect(&mut rx, &config).await {
                Some(batch) => batch,
                None => return,
            }
        };
        commit_batch(&pool, batch).await;
    }
}

/// Waits for one command, then gathers more until the batch is full or `linger` has passed.
async fn collect(
    rx: &mut mpsc::Receiver<Pending>,
    config: &CommitBatcherConfig,
) -> Option<Vec<Pending>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + config.linger;
    while batch.len() < config.max_batch {
        match rx.try_recv() {
            Ok(next) => {
                batch.push(next);
                continue;
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if config.linger.is_zero() => break,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(next)) => batch.push(next),
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

async fn commit_batch(pool: &PgPool, batch: Vec<Pending>) {
    let started = Instant::now();
    metrics::histogram!("waybill_commit_batch_size").record(batch.len() as f64);
    if batch.len() > 1 {
        let requests: Vec<&CommitRequest> = batch.iter().map(|p| &p.request).collect();
        match write(pool, &requests).await {
            Ok(outcomes) => {
                for (pending, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = pending.reply.send(outcome);
                }
                metrics::histogram!("waybill_commit_batch_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                return;
            }
            Err(e) => {
                metrics::counter!("waybill_commit_batch_fallbacks_total").increment(1);
                tracing::debug!(error = %e, size = batch.len(), "batch refused, committing its commands one by one");
            }
        }
    }
    for pending in batch {
        let outcome = commit_one(pool, &pending.request).await;
        let _ = pending.reply.send(outcome);
    }
    metrics::histogram!("waybill_commit_batch_duration_seconds")
        .record(started.elapsed().as_secs_f64());
}

/// Commits one command alone; a refusal the statements do not sort out themselves (a stream
/// conflict) is classified by the key it hit.
async fn commit_one(pool: &PgPool, request: &CommitRequest) -> CommitOutcome {
    let error = match write(pool, &[request]).await {
        Ok(mut outcomes) => {
            return outcomes
                .pop()
                .unwrap_or_else(|| CommitOutcome::Failed("no outcome for the command".into()))
        }
        Err(e) => e,
    };
    if event_store::is_stream_conflict(&error) {
        return CommitOutcome::StreamConflict {
            stream_id: request
                .events
                .first()
                .map(|e| e.stream_id.clone())
                .unwrap_or_default(),
        };
    }
    if retry::is_unavailable(&error) {
        tracing::warn!(error = %error, "command commit failed: database unavailable");
        return CommitOutcome::Unavailable(error.to_string());
    }
    tracing::error!(error = %error, "command commit failed");
    CommitOutcome::Failed(error.to_string())
}

/// Writes the rows of `requests` in one SERIALIZABLE transaction, retried on 40001, and says
/// what became of each. A stream conflict (or any database error) fails the whole call.
/// An ambiguous commit (40003) is retried too: every command carries its idempotency record,
/// so a repeat after a commit that did happen finds the keys taken and each caller is answered
/// from its stored response, as if the first attempt had answered.
async fn write(
    pool: &PgPool,
    requests: &[&CommitRequest],
) -> Result<Vec<CommitOutcome>, sqlx::Error> {
    retry::serializable_idempotent(|| async {
        let mut tx = retry::begin(pool).await?;
        let outcomes = write_rows(&mut tx, requests, Utc::now()).await?;
        retry::commit(tx).await?;
        Ok(outcomes)
    })
    .await
}

/// The statements of one group commit, in the caller's transaction:
///
/// 1. the idempotency records, skipping keys already stored (those commands get
///    [`CommitOutcome::IdempotencyKeyTaken`]; a key repeated inside the batch goes to its first
///    command);
/// 2. the channel references of the commands that got their key, skipping references already
///    captured (in the database or by an earlier command of the batch): those commands get
///    [`CommitOutcome::ChannelRefTaken`] with the capturing order and their idempotency record
///    is deleted again, so nothing of theirs is written;
/// 3. the events and outbox rows of every command still standing.
async fn write_rows(
    conn: &mut PgConnection,
    requests: &[&CommitRequest],
    now: DateTime<Utc>,
) -> Result<Vec<CommitOutcome>, sqlx::Error> {
    let mut outcomes: Vec<Option<CommitOutcome>> = vec![None; requests.len()];

    let mut first_of_key: HashSet<(&str, &str)> = HashSet::with_capacity(requests.len());
    let mut keyed: Vec<usize> = Vec::with_capacity(requests.len());
    for (i, request) in requests.iter().enumerate() {
        let key = (
            request.idempotency.scope.as_str(),
            request.idempotency.key.as_str(),
        );
        if first_of_key.insert(key) {
            keyed.push(i);
        } else {
            outcomes[i] = Some(CommitOutcome::IdempotencyKeyTaken);
        }
    }
    let records: Vec<&IdempotencyRecord> =
        keyed.iter().map(|&i| &requests[i].idempotency).collect();
    let stored = idempotency::insert_new(conn, &records, now).await?;
    if stored.len() < keyed.len() {
        let stored: HashSet<(&str, &str)> = stored
            .iter()
            .map(|(scope, key)| (scope.as_str(), key.as_str()))
            .collect();
        keyed.retain(|&i| {
            let record = &requests[i].idempotency;
            let won = stored.contains(&(record.scope.as_str(), record.key.as_str()));
            if !won {
                outcomes[i] = Some(CommitOutcome::IdempotencyKeyTaken);
            }
            won
        });
    }

    let mut first_of_ref: HashSet<(&str, &str)> = HashSet::with_capacity(keyed.len());
    let mut capturing: Vec<usize> = Vec::with_capacity(keyed.len());
    let mut refused: Vec<usize> = Vec::new();
    for &i in &keyed {
        if let Some(row) = &requests[i].channel_order {
            if first_of_ref.insert((row.channel.as_str(), row.channel_order_ref.as_str())) {
                capturing.push(i);
            } else {
                refused.push(i);
            }
        }
    }
    let rows: Vec<&ChannelOrder> = capturing
        .iter()
        .filter_map(|&i| requests[i].channel_order.as_ref())
        .collect();
    let captured = channel_orders::insert_new(conn, &rows).await?;
    if captured.len() < rows.len() {
        let captured: HashSet<(&str, &str)> = captured
            .iter()
            .map(|(channel, r)| (channel.as_str(), r.as_str()))
            .collect();
        refused.extend(capturing.iter().copied().filter(|&i| {
            requests[i].channel_order.as_ref().is_some_and(|row| {
                !captured.contains(&(row.channel.as_str(), row.channel_order_ref.as_str()))
            })
        }));
    }
    if !refused.is_empty() {
        let refs: Vec<(Channel, &str)> = refused
            .iter()
            .filter_map(|&i| requests[i].channel_order.as_ref())
            .map(|row| (row.channel, row.channel_order_ref.as_str()))
            .collect();
        let owners: HashMap<(String, String), OrderId> = channel_orders::find_many(conn, &refs)
            .await?
            .into_iter()
            .map(|(channel, r, order_id)| ((channel, r), order_id))
            .collect();
        for &i in &refused {
            let Some(row) = &requests[i].channel_order else {
                continue;
            };
            let owner = owners.get(&(
                row.channel.as_str().to_owned(),
                row.channel_order_ref.clone(),
            ));
            outcomes[i] = Some(match owner {
                Some(&order_id) => CommitOutcome::ChannelRefTaken { order_id },
                None => CommitOutcome::Failed("channel reference vanished".to_owned()),
            });
        }
        let keys: Vec<(&str, &str)> = refused
            .iter()
            .map(|&i| {
                let record = &requests[i].idempotency;
                (record.scope.as_str(), record.key.as_str())
            })
            .collect();
        idempotency::delete(conn, &keys).await?;
    }

    let events: Vec<&EventEnvelope> = requests
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_none())
        .flat_map(|(request, _)| request.events.iter())
        .collect();
    event_store::rows::insert_events_and_outbox(conn, &events, now).await?;
    let woken: Vec<OrderId> = requests
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_none())
        .filter_map(|(request, _)| request.wake_flow)
        .collect();
    checkout::flows::wake(conn, &woken, now).await?;
    // A return (requested or inspected by an agent) is the fulfillment flow's to move on.
    let mut returns: Vec<OrderId> = events
        .iter()
        .filter(|e| e.event_type.starts_with("Return"))
        .filter_map(|e| OrderId::from_stream_id(&e.stream_id))
        .collect();
    returns.dedup();
    crate::fulfillment::flows::wake(conn, &returns, now).await?;
    // Cancelled units: the fulfillment flow amends the nodes and gives the stock back.
    let withdrawn: Vec<OrderId> = events
        .iter()
        .filter(|e| e.event_type == "OrderLinesCancelled")
        .filter_map(|e| OrderId::from_stream_id(&e.stream_id))
        .collect();
    if !withdrawn.is_empty() {
        crate::fulfillment::flows::wake(conn, &withdrawn, now).await?;
    }
    Ok(outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or(CommitOutcome::Committed))
        .collect())
}
