//! Operations samples for the `/ops` page. Every `interval` the sampler reads what the page
//! charts from the systems that know it — JetStream consumer info per view (pending messages,
//! acks pending, how far delivery got), the event and dead-letter streams' sizes, and the
//! backlogs of the outbox and both work lists in Postgres — and appends one row per metric and
//! label to `ops_samples` (a day is kept). Stalls are derived here: a consumer with messages
//! pending whose delivery did not move since the last sample has been stalled since it last
//! moved. Rows rather than a ring in memory, because the page is served by the query API, which
//! may be another process, and because a restart should not blank the charts.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use waybill_write_side::event_store::retry;

use crate::runtime::dead_letter_stream_name;

/// Metric names in `ops_samples`.
pub mod metric {
    /// Messages a view's consumer has not been delivered yet (label: consumer).
    pub const LAG: &str = "lag_messages";
    /// Seconds a view has had work without delivery moving (label: consumer).
    pub const STALL: &str = "stall_seconds";
    /// Messages delivered and not yet acknowledged (label: consumer).
    pub const ACK_PENDING: &str = "ack_pending";
    /// Messages delivered per second since the previous sample (label: consumer).
    pub const THROUGHPUT: &str = "delivered_per_second";
    /// Events appended to the event stream per second (label: stream).
    pub const EVENTS_RATE: &str = "events_per_second";
    /// Messages in a dead-letter stream (label: stream).
    pub const DLQ: &str = "dead_letters";
    /// Rows waiting in a work list (labels: outbox, checkout, fulfillment).
    pub const BACKLOG: &str = "backlog";
}

/// How often to sample and for how long to keep samples.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    pub interval: Duration,
    pub retention: Duration,
    pub stream_name: String,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            retention: Duration::from_secs(24 * 3600),
            stream_name: waybill_schemas::subject::STREAM.to_owned(),
        }
    }
}

/// One sampled value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub metric: &'static str,
    pub label: String,
    pub value: f64,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    delivered: u64,
    at: DateTime<Utc>,
    moved_at: DateTime<Utc>,
}

/// Pure: a consumer's stall in seconds and its delivery rate, from its previous sample.
fn progress(
    previous: Option<Seen>,
    delivered: u64,
    pending: u64,
    now: DateTime<Utc>,
) -> (Seen, f64, f64) {
    let moved = previous.is_none_or(|p| delivered != p.delivered);
    let moved_at = if moved || pending == 0 {
        now
    } else {
        previous.map_or(now, |p| p.moved_at)
    };
    let rate = previous.map_or(0.0, |p| {
        let seconds = (now - p.at).num_milliseconds() as f64 / 1000.0;
        if seconds > 0.0 {
            delivered.saturating_sub(p.delivered) as f64 / seconds
        } else {
            0.0
        }
    });
    let stall = if pending == 0 {
        0.0
    } else {
        (now - moved_at).num_milliseconds().max(0) as f64 / 1000.0
    };
    (
        Seen {
            delivered,
            at: now,
            moved_at,
        },
        stall,
        rate,
    )
}

/// Takes samples; keeps what rates and stalls need between them.
pub struct Sampler {
    config: OpsConfig,
    pool: PgPool,
    js: jetstream::Context,
    consumers: HashMap<String, Seen>,
    events: Option<(u64, DateTime<Utc>)>,
}

impl Sampler {
    pub fn new(config: OpsConfig, pool: PgPool, js: jetstream::Context) -> Self {
        Self {
            config,
            pool,
            js,
            consumers: HashMap::new(),
            events: None,
        }
    }

    /// Reads every source once; a source that cannot be read is left out of this sample.
    pub async fn sample(&mut self, now: DateTime<Utc>) -> Vec<Sample> {
        let mut samples = Vec::new();
        let name = self.config.stream_name.clone();
        if let Ok(stream) = self.js.get_stream(&name).await {
            if let Ok(info) = stream.get_info().await {
                let last = info.state.last_sequence;
                if let Some((previous, at)) = self.events {
                    let seconds = (now - at).num_milliseconds() as f64 / 1000.0;
                    if seconds > 0.0 {
                        samples.push(Sample {
                            metric: metric::EVENTS_RATE,
                            label: name.clone(),
                            value: last.saturating_sub(previous) as f64 / seconds,
                        });
                    }
                }
                self.events = Some((last, now));
            }
            let mut consumers = stream.consumers();
            while let Some(Ok(info)) = consumers.next().await {
                let pending = info.num_pending;
                let (seen, stall, rate) = progress(
                    self.consumers.get(&info.name).copied(),
                    info.delivered.stream_sequence,
                    pending,
                    now,
                );
                self.consumers.insert(info.name.clone(), seen);
                for (metric, value) in [
                    (metric::LAG, pending as f64),
                    (metric::ACK_PENDING, info.num_ack_pending as f64),
                    (metric::STALL, stall),
                    (metric::THROUGHPUT, rate),
                ] {
                    samples.push(Sample {
                        metric,
                        label: info.name.clone(),
                        value,
                    });
                }
            }
        }
        let dlq = dead_letter_stream_name(&name);
        if let Ok(stream) = self.js.get_stream(&dlq).await {
            if let Ok(info) = stream.get_info().await {
                samples.push(Sample {
                    metric: metric::DLQ,
                    label: dlq,
                    value: info.state.messages as f64,
                });
            }
        }
        let backlogs = [
            (
                "outbox",
                waybill_write_side::outbox::pending_count(&self.pool).await,
            ),
            (
                "checkout",
                waybill_write_side::checkout::flows::due_count(&self.pool, now).await,
            ),
            (
                "fulfillment",
                waybill_write_side::fulfillment::flows::due_count(&self.pool, now).await,
            ),
        ];
        for (label, count) in backlogs {
            if let Ok(count) = count {
                samples.push(Sample {
                    metric: metric::BACKLOG,
                    label: label.to_owned(),
                    value: count as f64,
                });
            }
        }
        samples
    }

    /// Samples once and stores the rows, dropping rows past the retention.
    pub async fn record(&mut self, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
        let samples = self.sample(now).await;
        store(&self.pool, &samples, now).await?;
        let cutoff = now - chrono::Duration::from_std(self.config.retention).unwrap_or_default();
        retry::serializable(|| {
            sqlx::query("DELETE FROM ops_samples WHERE at < $1")
                .bind(cutoff)
                .execute(&self.pool)
        })
        .await?;
        Ok(samples.len())
    }
}

/// Appends `samples` taken at `at`.
pub async fn store(
    pool: &PgPool,
    samples: &[Sample],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let metrics: Vec<&str> = samples.iter().map(|s| s.metric).collect();
    let labels: Vec<&str> = samples.iter().map(|s| s.label.as_str()).collect();
    let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    retry::serializable_idempotent(|| {
        sqlx::query(
            "INSERT INTO ops_samples (at, metric, label, value) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::float8[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(at)
        .bind(&metrics)
        .bind(&labels)
        .bind(&values)
        .execute(pool)
    })
    .await?;
    Ok(())
}

/// One metric of one label over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub metric: String,
    pub label: String,
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// Every series sampled since `since`, by metric then label, points oldest first.
pub async fn series(pool: &PgPool, since: DateTime<Utc>) -> Result<Vec<Series>, sqlx::Error> {
    let rows: Vec<(String, String, DateTime<Utc>, f64)> = retry::serializable(|| {
        sqlx::query_as(
            "SELECT metric, label, at, value FROM ops_samples WHERE at >= $1 \
             ORDER BY metric, label, at",
        )
        .bind(since)
        .fetch_all(pool)
    })
    .await?;
    let mut out: Vec<Series> = Vec::new();
    for (metric, label, at, value) in rows {
        match out.last_mut() {
            Some(last) if last.metric == metric && last.label == label => {
                last.points.push((at, value))
            }
            _ => out.push(Series {
                metric,
                label,
                points: vec![(at, value)],
            }),
        }
    }
    Ok(out)
}

/// Samples every `config.interval` until `shutdown`.
pub async fn run_sampler(
    config: OpsConfig,
    pool: PgPool,
    js: jetstream::Context,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let interval = config.interval;
    let mut sampler = Sampler::new(config, pool, js);
    loop {
        if let Err(error) = sampler.record(Utc::now()).await {
            tracing::warn!(%error, "operations sample not stored");
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0)
            .single()
            .unwrap()
    }

    #[test]
    fn a_consumer_with_work_whose_delivery_stands_still_is_stalled_since_it_last_moved() {
        let (first, stall, rate) = progress(None, 100, 5, t(0));
        assert_eq!((stall, rate), (0.0, 0.0));
        let (second, stall, rate) = progress(Some(first), 150, 5, t(10));
        assert_eq!((stall, rate), (0.0, 5.0));
        let (third, stall, _) = progress(Some(second), 150, 5, t(25));
        assert_eq!(stall, 15.0);
        let (_, stall, rate) = progress(Some(third), 150, 5, t(40));
        assert_eq!((stall, rate), (30.0, 0.0));
    }

    #[test]
    fn an_idle_consumer_is_never_stalled() {
        let (first, _, _) = progress(None, 100, 0, t(0));
        let (_, stall, rate) = progress(Some(first), 100, 0, t(60));
        assert_eq!((stall, rate), (0.0, 0.0));
    }
}
