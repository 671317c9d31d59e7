//! The desk projector's tables in the event store's database: `desk_watches` (one row per
//! stream with its version: the compare-and-set position), `desk_stage_samples` and
//! `desk_signals` (written in the same transaction as the watch that produced them, so a
//! redelivered event adds nothing), and the reads the detector learns and judges from.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;
use waybill_schemas::events::DeskEntryResolved;
use waybill_write_side::desk::entries;
use waybill_write_side::event_store::retry;

use super::learning::StageKey;
use super::watch::{SignalKind, Stage, Watch};
use super::DeskError;
use crate::runtime::ViewWrite;

/// A resolution waiting to be applied to its entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingResolution {
    pub event: DeskEntryResolved,
    pub actor: String,
    pub event_id: Uuid,
}

/// One stream's state in the desk view: an order's watch, or a desk entry's position.
#[derive(Debug, Clone, PartialEq)]
pub enum DeskState {
    Order(Watch),
    Entry {
        version: i64,
        resolution: Option<PendingResolution>,
    },
}

impl DeskState {
    pub fn version(&self) -> i64 {
        match self {
            Self::Order(watch) => watch.version,
            Self::Entry { version, .. } => *version,
        }
    }

    fn active(&self) -> bool {
        matches!(self, Self::Order(w) if w.active())
    }

    fn json(&self) -> Result<Value, DeskError> {
        match self {
            Self::Order(watch) => Ok(serde_json::to_value(watch)?),
            Self::Entry { .. } => Ok(Value::Object(Default::default())),
        }
    }
}

/// Reads and writes the desk's tables.
#[derive(Debug, Clone)]
pub struct DeskStore {
    pool: PgPool,
}

impl DeskStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Current states of `stream_ids`, in order.
    pub async fn load(&self, stream_ids: &[String]) -> Result<Vec<Option<DeskState>>, DeskError> {
        let rows: Vec<(String, i64, Value)> = retry::serializable(|| {
            sqlx::query_as(
                "SELECT stream_id, version, state FROM desk_watches WHERE stream_id = ANY($1)",
            )
            .bind(stream_ids)
            .fetch_all(&self.pool)
        })
        .await?;
        let mut by_id: HashMap<String, (i64, Value)> = rows
            .into_iter()
            .map(|(id, version, state)| (id, (version, state)))
            .collect();
        stream_ids
            .iter()
            .map(|id| match by_id.remove(id) {
                None => Ok(None),
                Some((version, _))
                    if id.starts_with(waybill_schemas::events::desk::DESK_STREAM_PREFIX) =>
                {
                    Ok(Some(DeskState::Entry {
                        version,
                        resolution: None,
                    }))
                }
                Some((_, state)) => Ok(Some(DeskState::Order(serde_json::from_value(state)?))),
            })
            .collect()
    }

    /// Compare-and-set writes of a batch, with their samples, signals and resolutions, in one
    /// transaction. `true` per write that happened.
    pub async fn store(&self, writes: &[ViewWrite<DeskState>]) -> Result<Vec<bool>, DeskError> {
        let mut new = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut moved = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for write in writes {
            let state = write.state.json()?;
            if write.expected_version == 0 {
                new.0.push(write.stream_id.clone());
                new.1.push(write.state.version());
                new.2.push(write.state.active());
                new.3.push(state);
            } else {
                moved.0.push(write.stream_id.clone());
                moved.1.push(write.expected_version);
                moved.2.push(write.state.version());
                moved.3.push(write.state.active());
                moved.4.push(state);
            }
        }
        let written: Vec<String> = retry::serializable_idempotent(|| async {
            let mut tx = retry::begin(&self.pool).await?;
            let mut written: Vec<String> = sqlx::query_scalar(
                "INSERT INTO desk_watches (stream_id, version, active, state) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bool[], $4::jsonb[]) \
                 ON CONFLICT (stream_id) DO NOTHING RETURNING stream_id",
            )
            .bind(&new.0)
            .bind(&new.1)
            .bind(&new.2)
            .bind(&new.3)
            .fetch_all(&mut *tx)
            .await?;
            let updated: Vec<String> = sqlx::query_scalar(
                "UPDATE desk_watches d SET version = w.version, active = w.active, \
                 state = w.state, updated_at = now() \
                 FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bool[], $5::jsonb[]) \
                 AS w(stream_id, expected, version, active, state) \
                 WHERE d.stream_id = w.stream_id AND d.version = w.expected \
                 RETURNING d.stream_id",
            )
            .bind(&moved.0)
            .bind(&moved.1)
            .bind(&moved.2)
            .bind(&moved.3)
            .bind(&moved.4)
            .fetch_all(&mut *tx)
            .await?;
            written.extend(updated);
            let mut samples = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut samples2 = (Vec::new(), Vec::new(), Vec::new());
            let mut signals = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for write in writes.iter().filter(|w| written.contains(&w.stream_id)) {
                match &write.state {
                    DeskState::Order(watch) => {
                        for s in &watch.samples {
                            samples.0.push(write.stream_id.clone());
                            samples.1.push(s.stage.as_str().to_owned());
                            samples.2.push(s.entered_version);
                            samples.3.push(s.channel.clone());
                            samples2.0.push(s.node.clone());
                            samples2.1.push(s.duration_ms);
                            samples2.2.push(s.finished_at);
                        }
                        for s in &watch.signals {
                            signals.0.push(write.stream_id.clone());
                            signals.1.push(s.version);
                            signals.2.push(s.channel.clone());
                            signals.3.push(s.kind.as_str().to_owned());
                            signals.4.push(s.at);
                        }
                    }
                    DeskState::Entry {
                        resolution: Some(pending),
                        ..
                    } => {
                        entries::mark_resolved(
                            &mut tx,
                            &pending.event,
                            &pending.actor,
                            pending.event_id,
                        )
                        .await?;
                    }
                    DeskState::Entry { .. } => {}
                }
            }
            if !samples.0.is_empty() {
                sqlx::query(
                    "INSERT INTO desk_stage_samples (stream_id, stage, entered_version, channel, \
                     node, duration_ms, finished_at) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], \
                     $5::text[], $6::bigint[], $7::timestamptz[]) ON CONFLICT DO NOTHING",
                )
                .bind(&samples.0)
                .bind(&samples.1)
                .bind(&samples.2)
                .bind(&samples.3)
                .bind(&samples2.0)
                .bind(&samples2.1)
                .bind(&samples2.2)
                .execute(&mut *tx)
                .await?;
            }
            if !signals.0.is_empty() {
                sqlx::query(
                    "INSERT INTO desk_signals (stream_id, version, channel, signal, at) \
                     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], \
                     $5::timestamptz[]) ON CONFLICT DO NOTHING",
                )
                .bind(&signals.0)
                .bind(&signals.1)
                .bind(&signals.2)
                .bind(&signals.3)
                .bind(&signals.4)
                .execute(&mut *tx)
                .await?;
            }
            retry::commit(tx).await?;
            Ok(written)
        })
        .await?;
        Ok(writes
            .iter()
            .map(|w| written.contains(&w.stream_id))
            .collect())
    }

    /// Watches of orders still in progress.
    pub async fn active_watches(&self) -> Result<Vec<Watch>, DeskError> {
        let rows: Vec<Value> = retry::serializable(|| {
            sqlx::query_scalar("SELECT state FROM desk_watches WHERE active").fetch_all(&self.pool)
        })
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|state| serde_json::from_value(state).ok())
            .collect())
    }

    /// The watch of one stream (active or not).
    pub async fn watch(&self, stream_id: &str) -> Result<Option<Watch>, DeskError> {
        let state: Option<Value> = retry::serializable(|| {
            sqlx::query_scalar("SELECT state FROM desk_watches WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_optional(&self.pool)
        })
        .await?;
        Ok(state.and_then(|s| serde_json::from_value(s).ok()))
    }

    /// Up to `recent` newest durations per stage, channel and node, finished after `since`.
    ///
    /// Read group by group on `desk_stage_samples_recent` (stage, channel, node, finished_at
    /// DESC): the groups are found by skipping from one to the next on the index, and each
    /// gives its newest rows, so a pass reads at most `recent` rows per group however many
    /// samples the history holds. (Ranking every sample of the history with a window function,
    /// as before, read them all every pass: 140 ms at 48,000 samples, growing with the log.)
    pub async fn recent_samples(
        &self,
        since: DateTime<Utc>,
        recent: usize,
    ) -> Result<HashMap<StageKey, Vec<i64>>, DeskError> {
        let rows: Vec<(String, String, String, i64)> = retry::serializable(|| {
            sqlx::query_as(
                "WITH RECURSIVE grp AS ( \
                   (SELECT stage, channel, node FROM desk_stage_samples \
                    ORDER BY stage, channel, node LIMIT 1) \
                   UNION ALL \
                   SELECT n.stage, n.channel, n.node FROM grp g, LATERAL ( \
                     SELECT stage, channel, node FROM desk_stage_samples d \
                     WHERE (d.stage, d.channel, d.node) > (g.stage, g.channel, g.node) \
                     ORDER BY stage, channel, node LIMIT 1) n \
                 ) \
                 SELECT g.stage, g.channel, g.node, s.duration_ms FROM grp g, LATERAL ( \
                   SELECT duration_ms FROM desk_stage_samples d \
                   WHERE d.stage = g.stage AND d.channel = g.channel AND d.node = g.node \
                     AND d.finished_at > $1 \
                   ORDER BY d.finished_at DESC LIMIT $2) s",
            )
            .bind(since)
            .bind(recent as i64)
            .fetch_all(&self.pool)
        })
        .await?;
        let mut samples: HashMap<StageKey, Vec<i64>> = HashMap::new();
        for (stage, channel, node, duration) in rows {
            let Some(stage) = Stage::parse(&stage) else {
                continue;
            };
            samples
                .entry(StageKey {
                    stage,
                    channel,
                    node,
                })
                .or_default()
                .push(duration);
        }
        Ok(samples)
    }

    /// Signal counts per channel, signal and window (`floor(epoch seconds / window)`) since
    /// `since`.
    pub async fn signal_counts(
        &self,
        window_secs: i64,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, SignalKind, i64, u64)>, DeskError> {
        let rows: Vec<(String, String, i64, i64)> = retry::serializable(|| {
            sqlx::query_as(
                "SELECT channel, signal, floor(extract(epoch FROM at) / $1)::bigint AS bucket, \
                 count(*) FROM desk_signals WHERE at >= $2 GROUP BY 1, 2, 3",
            )
            .bind(window_secs as f64)
            .bind(since)
            .fetch_all(&self.pool)
        })
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(channel, signal, bucket, count)| {
                Some((
                    channel,
                    SignalKind::parse(&signal)?,
                    bucket,
                    count.max(0) as u64,
                ))
            })
            .collect())
    }

    /// Deletes samples finished and signals counted before `before`.
    pub async fn prune(
        &self,
        samples_before: DateTime<Utc>,
        signals_before: DateTime<Utc>,
    ) -> Result<(), DeskError> {
        retry::serializable(|| async {
            let mut tx = retry::begin(&self.pool).await?;
            sqlx::query("DELETE FROM desk_stage_samples WHERE finished_at < $1")
                .bind(samples_before)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM desk_signals WHERE at < $1")
                .bind(signals_before)
                .execute(&mut *tx)
                .await?;
            retry::commit(tx).await
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at, fresh_database};

    async fn sample(pool: &PgPool, stream: &str, stage: &str, node: &str, ms: i64, second: i64) {
        sqlx::query(
            "INSERT INTO desk_stage_samples (stream_id, stage, entered_version, channel, node, \
             duration_ms, finished_at) VALUES ($1, $2, 1, 'web', $3, $4, $5)",
        )
        .bind(stream)
        .bind(stage)
        .bind(node)
        .bind(ms)
        .bind(at(second))
        .execute(pool)
        .await
        .expect("sample");
    }

    #[tokio::test]
    async fn recent_samples_are_the_newest_of_each_group_within_the_history() {
        let pool = fresh_database().await;
        // Payment at node-a: five samples, the oldest before the history starts.
        for (i, second) in [5, 20, 30, 40, 50].into_iter().enumerate() {
            sample(
                &pool,
                &format!("order-a{i}"),
                "payment",
                "node-a",
                100 + second,
                second,
            )
            .await;
        }
        // Payment at node-b: two samples; fulfillment at node-a: one, before the history.
        sample(&pool, "order-b1", "payment", "node-b", 7, 25).await;
        sample(&pool, "order-b2", "payment", "node-b", 8, 45).await;
        sample(&pool, "order-c1", "fulfillment", "node-a", 9, 1).await;

        let store = DeskStore::new(pool);
        let samples = store.recent_samples(at(10), 3).await.expect("samples");
        let key = |stage, node: &str| StageKey {
            stage,
            channel: "web".to_owned(),
            node: node.to_owned(),
        };
        let mut a = samples[&key(Stage::Payment, "node-a")].clone();
        a.sort_unstable();
        assert_eq!(a, [130, 140, 150], "the three newest of node-a");
        let mut b = samples[&key(Stage::Payment, "node-b")].clone();
        b.sort_unstable();
        assert_eq!(b, [7, 8]);
        assert_eq!(
            samples.len(),
            2,
            "nothing learned from before the history: {samples:?}"
        );
    }
}
