//! A view shared by several instances: one durable consumer per partition
//! (`<view>-p<partition>`, filter `<root>.v1.<partition>.>`: a single filter, which
//! nats-server 2.9 honours), run only on the partitions this instance holds a lease on
//! ([`super::leases`]). Every heartbeat renews the leases, starts consumers for partitions
//! gained and stops those given back (the batch in hand is finished and buffered messages are
//! handed back before the lease is released). One owner per partition keeps each order's
//! events in order; a dead instance's partitions are taken over once its leases expire, and
//! its unacknowledged messages come back after `ack_wait`, by then duplicates that the
//! version check drops (the new owner gap-fills from the event log meanwhile).
//!
//! Metrics: `waybill_projector_partitions_owned{view}` (how many this instance consumes) and
//! `waybill_projector_partition_owned{view,partition}` (1 while owned here, else 0); the
//! consumers' lag and stall metrics carry `view="<view>/<partition>"`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use waybill_schemas::EventEnvelope;

use super::leases::Leases;
use super::{run_consumer, ProjectorConfig, Scope, View, ViewWrite};

/// How instances of a view share it.
#[derive(Debug, Clone)]
pub struct Sharing {
    /// The relay's partition count (`WAYBILL_PARTITIONS`): every instance must agree.
    pub partitions: u32,
    /// A lease not renewed for this long is free for another instance.
    pub lease_ttl: Duration,
    /// How often leases are renewed and the partitions rebalanced.
    pub heartbeat: Duration,
    /// This instance's name among the view's instances (unique per process).
    pub instance: String,
}

impl Sharing {
    /// `partitions`, leases of `lease_ttl` renewed three times per lease, a fresh instance name.
    pub fn new(partitions: u32, lease_ttl: Duration) -> Self {
        Self {
            partitions: partitions.max(1),
            lease_ttl,
            heartbeat: lease_ttl / 3,
            instance: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
        }
    }
}

/// A running partition consumer.
struct Runner {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Runs `view` on the partitions this instance holds leases on until `shutdown`, then gives
/// every lease back.
pub(crate) async fn run_partitioned<V: View>(
    config: ProjectorConfig,
    pool: PgPool,
    js: jetstream::Context,
    view: V,
    sharing: Sharing,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let view = Shared(Arc::new(view));
    let name = view.name().to_owned();
    let leases = Leases::new(
        pool.clone(),
        name.clone(),
        sharing.instance.clone(),
        sharing.partitions,
        sharing.lease_ttl,
    );
    tracing::info!(view = %name, instance = leases.instance(), partitions = sharing.partitions, "sharing the view by partition leases");
    let mut runners: BTreeMap<u32, Runner> = BTreeMap::new();
    let mut last_renewed = Instant::now();
    let mut tick = tokio::time::interval(sharing.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        // A consumer that ended by itself (an error) is started again below if still owned.
        let ended: Vec<u32> = runners
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(p, _)| *p)
            .collect();
        for partition in ended {
            if let Some(runner) = runners.remove(&partition) {
                if let Ok(Err(error)) = runner.task.await {
                    tracing::error!(view = %name, partition, error = %format!("{error:#}"), "partition consumer failed; restarting it");
                }
            }
        }
        match leases.heartbeat().await {
            Ok(plan) => {
                last_renewed = Instant::now();
                for partition in &plan.give_back {
                    stop(&mut runners, *partition).await;
                }
                if !plan.give_back.is_empty() {
                    match leases.release(&plan.give_back).await {
                        Ok(()) => {
                            tracing::info!(view = %name, partitions = ?plan.give_back, "partitions given back")
                        }
                        Err(error) => {
                            tracing::warn!(view = %name, %error, "giving partitions back failed; they expire")
                        }
                    }
                }
                let owned = plan.owned();
                for partition in runners.keys().copied().collect::<Vec<_>>() {
                    if !owned.contains(&partition) {
                        // Lost without giving it back (taken after an expiry).
                        stop(&mut runners, partition).await;
                    }
                }
                for partition in &owned {
                    if !runners.contains_key(partition) {
                        runners.insert(*partition, start(&config, &pool, &js, &view, *partition));
                    }
                }
                if !plan.claim.is_empty() {
                    tracing::info!(view = %name, claimed = ?plan.claim, owned = ?owned, "partitions claimed");
                }
                report(&name, sharing.partitions, &owned);
            }
            Err(error) => {
                tracing::warn!(view = %name, %error, "renewing partition leases failed");
                if last_renewed.elapsed() >= sharing.lease_ttl && !runners.is_empty() {
                    // Our leases have run out: others may own these partitions now.
                    tracing::warn!(view = %name, "partition leases expired; stopping their consumers");
                    for partition in runners.keys().copied().collect::<Vec<_>>() {
                        stop(&mut runners, partition).await;
                    }
                    report(&name, sharing.partitions, &[]);
                }
            }
        }
    }
    for partition in runners.keys().copied().collect::<Vec<_>>() {
        stop(&mut runners, partition).await;
    }
    if let Err(error) = leases.leave().await {
        tracing::warn!(view = %name, %error, "leaving the view failed; the leases expire");
    }
    report(&name, sharing.partitions, &[]);
    Ok(())
}

fn start<V: View>(
    config: &ProjectorConfig,
    pool: &PgPool,
    js: &jetstream::Context,
    view: &Shared<V>,
    partition: u32,
) -> Runner {
    let (stop, stopped) = oneshot::channel::<()>();
    let scope = Scope {
        durable: format!("{}-p{partition}", view.name()),
        filter: format!("{}.v1.{partition}.>", config.subject_root),
        label: format!("{}/{partition}", view.name()),
    };
    let task = tokio::spawn(run_consumer(
        config.clone(),
        pool.clone(),
        js.clone(),
        view.clone(),
        scope,
        async move {
            let _ = stopped.await;
        },
    ));
    Runner { stop, task }
}

/// Stops a partition's consumer and waits for it (its batch finished, buffered messages
/// handed back).
async fn stop(runners: &mut BTreeMap<u32, Runner>, partition: u32) {
    if let Some(runner) = runners.remove(&partition) {
        let _ = runner.stop.send(());
        let _ = runner.task.await;
    }
}

fn report(view: &str, partitions: u32, owned: &[u32]) {
    metrics::gauge!("waybill_projector_partitions_owned", "view" => view.to_owned())
        .set(owned.len() as f64);
    for partition in 0..partitions {
        metrics::gauge!(
            "waybill_projector_partition_owned",
            "view" => view.to_owned(),
            "partition" => partition.to_string()
        )
        .set(if owned.contains(&partition) { 1.0 } else { 0.0 });
    }
}

/// One view shared by the partition consumers of this instance.
struct Shared<V>(Arc<V>);

impl<V> Clone for Shared<V> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<V: View> View for Shared<V> {
    type State = V::State;
    type Error = V::Error;

    fn name(&self) -> &str {
        self.0.name()
    }

    fn handles(&self, stream_id: &str) -> bool {
        self.0.handles(stream_id)
    }

    fn version_of(state: &Self::State) -> i64 {
        V::version_of(state)
    }

    fn load(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Self::State>>, Self::Error>> + Send {
        self.0.load(stream_ids)
    }

    fn apply(
        &self,
        state: Option<&Self::State>,
        event: &EventEnvelope,
    ) -> Result<Self::State, Self::Error> {
        self.0.apply(state, event)
    }

    fn store(
        &self,
        writes: Vec<ViewWrite<Self::State>>,
    ) -> impl Future<Output = Result<Vec<bool>, Self::Error>> + Send {
        self.0.store(writes)
    }

    fn scrubs_on_erasure(&self) -> bool {
        self.0.scrubs_on_erasure()
    }

    fn forget(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.forget(stream_ids)
    }

    fn purge(&self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.purge()
    }

    fn commit_interval(&self) -> Option<Duration> {
        self.0.commit_interval()
    }

    fn confirm_stored(&self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.confirm_stored()
    }

    fn commit(&self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.commit()
    }
}
