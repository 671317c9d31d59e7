//! The single writer of this process's stock changes. Requests arrive on a channel; the writer
//! takes up to `batch_max` of them (waiting at most `batch_linger` for more), and in ONE
//! serializable transaction locks the rows the batch needs (`FOR UPDATE`, in key order), lets
//! the pure [`StockLedger`] decide every request in arrival order in memory against the running
//! availability, writes all changed rows with multi-row `UNNEST` statements, commits, and only
//! then answers the callers. A serialization failure (another process touched the rows) re-runs
//! the whole batch from fresh reads, so no answer is ever given for a decision that did not
//! commit.

use std::time::Instant;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::stock_ledger::{self, Answer, Command, StockLedger};
use super::store;
use super::{InventoryConfig, InventoryError};
use crate::event_store::retry;

/// Requests queued beyond this wait for room (back-pressure on callers).
const QUEUE: usize = 16_384;

pub(super) struct Job {
    pub command: Command,
    pub reply: oneshot::Sender<Result<Answer, InventoryError>>,
}

/// Starts the writer task; it ends when every sender is dropped.
pub(super) fn spawn(pool: PgPool, config: InventoryConfig) -> mpsc::Sender<Job> {
    let (jobs, queue) = mpsc::channel(QUEUE);
    tokio::spawn(run(pool, config, queue));
    jobs
}

async fn run(pool: PgPool, config: InventoryConfig, mut queue: mpsc::Receiver<Job>) {
    let batch_max = config.batch_max.max(1);
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.batch_linger;
        while batch.len() < batch_max {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, queue.recv()).await {
                        Ok(Some(job)) => batch.push(job),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        let (commands, replies): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|j| (j.command, j.reply)).unzip();
        let started = Instant::now();
        let span = tracing::debug_span!("inventory.batch", size = commands.len());
        let result = {
            let _enter = span.enter();
            retry::serializable(|| decide_and_commit(&pool, &config, &commands)).await
        };
        metrics::histogram!("waybill_inventory_batch_size").record(commands.len() as f64);
        metrics::histogram!("waybill_inventory_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                tracing::error!(error = %error, size = commands.len(), "inventory batch failed");
                let error = InventoryError::from(error);
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// One attempt at the whole batch: read and lock what [`stock_ledger`] says the batch needs,
/// decide in memory, write what changed, commit.
async fn decide_and_commit(
    pool: &PgPool,
    config: &InventoryConfig,
    commands: &[Command],
) -> Result<Vec<Result<Answer, InventoryError>>, sqlx::Error> {
    let mut tx = retry::begin(pool).await?;

    let mut claims = Vec::new();
    for command in commands {
        if let Command::ReleaseExpired { now, limit } = command {
            claims.push(store::claim_expired(&mut tx, *now, *limit).await?);
        }
    }
    let claimed = stock_ledger::claimed_once(claims);

    let reservations =
        store::lock_reservations(&mut tx, &stock_ledger::orders_to_lock(commands, &claimed))
            .await?;
    let stock = store::lock_stock(
        &mut tx,
        &stock_ledger::skus_to_lock(commands, &reservations),
    )
    .await?;
    let movements = store::movements(&mut tx, &stock_ledger::movements_to_read(commands)).await?;
    let locations = store::locations_in(&mut tx).await?;

    let mut ledger = StockLedger::new(config, locations, stock, reservations, movements);
    let answers = ledger.decide(commands, claimed);

    let (existing, new) = ledger.changed_stock();
    store::write_stock(&mut tx, &existing, &new).await?;
    store::write_reservations(&mut tx, &ledger.changed_reservations()).await?;
    store::insert_movements(&mut tx, ledger.new_movements()).await?;
    retry::commit(tx).await?;
    metrics::counter!("waybill_inventory_decisions_total").increment(commands.len() as u64);
    Ok(answers)
}
