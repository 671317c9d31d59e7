//! `waybill bench webhooks`: how fast the delivery worker (`serve webhooks`) gets events to an
//! integrator, and that a receiver that goes down loses nothing.
//!
//! A scratch database gets N orders of five events each (real `OrderPlaced` payloads, as
//! `bench log-read` fills the log) and the feed positions the feed view would give them; then
//! S subscriptions (all to one local receiver, [`crate::webhook_receiver`]) are registered from
//! the beginning of the feed and one delivery worker, configured as `serve webhooks` is, drains
//! them. The receiver checks every signature, counts each event once and counts events that
//! arrive after a later version of their order. The run passes when every subscription got
//! every event, none out of order, with no dead letter or retry left.
//!
//! `--outage-secs N`: once a third of the deliveries arrived the receiver stops listening for N
//! seconds, then comes back; the report says how long the worker took to catch up after it.
//!
//! Baseline in the same run: the same events as plain signed POSTs at the worker's concurrency
//! to the same receiver, without the feed reads, leases and the committed outcome: the HTTP
//! ceiling the worker's bookkeeping is measured against. CPU per delivery is reported per
//! process for both (worker, receiver, bench driver, Postgres).

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;
use waybill_write_side::subscriptions::delivery::sender::{Delivery, Sender};
use waybill_write_side::subscriptions::delivery::{self, WorkerConfig};
use waybill_write_side::subscriptions::feed::{self, FeedEntry, StreamAppend};
use waybill_write_side::subscriptions::request::{NewSubscription, Start, Status};
use waybill_write_side::subscriptions::seal::SealingKey;
use waybill_write_side::subscriptions::store;

use super::cpu::{self, CpuReport};
use super::log_read::{self, VERSIONS};
use super::roles::Role;
use super::svg;
use super::Scratch;
use crate::config::{BenchWebhooksArgs, Settings};
use crate::progress::LogProgress;
use crate::shutdown::Shutdown;
use crate::webhook_receiver::{Tally, WebhookReceiver};

/// The issue's goal.
const GOAL_DELIVERIES_PER_SEC: f64 = 5_000.0;
/// Streams per feed append while seeding.
const FEED_CHUNK: usize = 2_000;
/// Deliveries the baseline makes at most (its bodies are held in memory).
const BASELINE_MAX: usize = 50_000;
/// How long the run may go without a single new delivery before it is called stuck.
const STALL: Duration = Duration::from_secs(180);
/// How often the bench looks at the receiver.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Serialize)]
struct Pass {
    deliveries: u64,
    seconds: f64,
    deliveries_per_sec: f64,
}

impl Pass {
    fn new(deliveries: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-6);
        Self {
            deliveries,
            seconds,
            deliveries_per_sec: deliveries as f64 / seconds,
        }
    }
}

/// The receiver outage of `--outage-secs`.
#[derive(Debug, Serialize)]
struct Outage {
    seconds_down: f64,
    /// Distinct events received when the receiver went down.
    received_before: u64,
    /// From the receiver coming back to the first delivery after it (the worker's backoff).
    first_after_seconds: Option<f64>,
    /// From the receiver coming back to the last event received.
    catch_up_seconds: f64,
    /// Deliveries made after the receiver came back.
    delivered_after: u64,
}

#[derive(Debug, Serialize)]
struct WebhooksReport {
    bench: &'static str,
    orders: u64,
    events: u64,
    subscriptions: u64,
    payload_bytes_avg: f64,
    worker: WorkerShape,
    /// Every subscription's events, delivered (distinct) over the whole run.
    pipeline: Pass,
    pipeline_cpu: CpuReport,
    receiver: Tally,
    /// Each subscription got every event, none out of order, nothing dead or waiting.
    lost: u64,
    dead_letters: i64,
    pending_retries: i64,
    outage: Option<Outage>,
    /// Distinct deliveries in each second since the worker started.
    timeline: Vec<u64>,
    baseline_plain_posts: Option<Pass>,
    baseline_cpu: Option<CpuReport>,
    goal_deliveries_per_sec: f64,
    goal_met: bool,
}

#[derive(Debug, Serialize)]
struct WorkerShape {
    batch: i64,
    concurrency: usize,
    max_attempts: i32,
    retry_base_ms: u64,
    max_backoff_ms: u64,
}

pub async fn webhooks(settings: &Settings, args: &BenchWebhooksArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.orders > 0, "--orders must be positive");
    let run = Uuid::now_v7().simple().to_string()[20..].to_owned();
    let scratch = Scratch::new(settings, &run);
    let (scratch_settings, secrets) = scratch.settings(settings, &run);
    let outcome = run_bench(&scratch_settings, secrets.webhook_sealing_key.clone(), args).await;
    if args.keep {
        eprintln!("kept database {}", scratch.database_name());
    } else if let Err(error) = scratch.remove(&scratch_settings).await {
        eprintln!("cleaning up the scratch environment failed: {error:#}");
    }
    let report = outcome?;
    println!("{}", table(&report));
    let svg_path = super::report::write_with_chart(&args.out, &report, &chart(&report))?;
    let mut windows: Vec<(&str, &CpuReport)> = vec![("delivery worker", &report.pipeline_cpu)];
    if let Some(cpu) = &report.baseline_cpu {
        windows.push(("plain signed POSTs (baseline)", cpu));
    }
    cpu::write_chart(
        &args.out,
        &svg_path,
        &format!(
            "bench webhooks: CPU per delivery by process, {} deliveries",
            report.pipeline.deliveries
        ),
        &windows,
    )?;
    println!("report: {}", args.out.display());
    anyhow::ensure!(
        report.lost == 0 && report.receiver.out_of_order == 0 && report.dead_letters == 0,
        "deliveries lost ({}), out of order ({}) or dead ({})",
        report.lost,
        report.receiver.out_of_order,
        report.dead_letters
    );
    Ok(())
}

async fn run_bench(
    settings: &Settings,
    key: SealingKey,
    args: &BenchWebhooksArgs,
) -> anyhow::Result<WebhooksReport> {
    let pool = crate::migrate::migrate(&settings.database_url).await?;
    let events = args.orders * VERSIONS as u64;
    let payload_bytes_avg = log_read::fill(&pool, events, false).await?;
    fill_feed(&pool).await?;

    let mut receiver = Role::WebhookReceiver
        .handle()
        .spawn(WebhookReceiver::start(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            0,
        ))))
        .await
        .context("the receiver panicked")??;
    let subscriptions = subscribe(&pool, &key, &receiver, args.subscriptions).await?;
    let expected = events * args.subscriptions;
    let config = settings.webhooks.worker();
    eprintln!(
        "bench webhooks: {} orders, {events} events, {} subscription(s) on {}: {expected} deliveries; worker batch {}, concurrency {}",
        args.orders,
        args.subscriptions,
        receiver.url(),
        config.batch,
        config.concurrency
    );

    let shutdown = Shutdown::new();
    let before = cpu::Snapshot::start();
    let started = Instant::now();
    let worker = Role::Services.handle().spawn(delivery::run(
        pool.clone(),
        key,
        config.clone(),
        shutdown.wait(),
    ));
    let watched = watch(&mut receiver, expected, args.outage_secs, started).await;
    let elapsed = started.elapsed();
    let pipeline_cpu = cpu::Snapshot::take().since(&before, "delivery", expected);
    shutdown.trigger();
    worker
        .await
        .context("the delivery worker panicked")?
        .context("the delivery worker failed")?;
    let Watched {
        delivered_at,
        outage,
        timeline,
    } = watched?;
    let tally = receiver.tally();
    let (mut dead_letters, mut pending_retries) = (0, 0);
    for (id, _) in &subscriptions {
        let sub = store::get(&pool, *id)
            .await?
            .context("a bench subscription vanished")?;
        dead_letters += sub.dead_letters;
        pending_retries += sub.pending_retries;
    }
    let pipeline = Pass::new(tally.accepted, delivered_at.unwrap_or(elapsed));

    let (baseline, baseline_cpu) = if args.no_baseline {
        (None, None)
    } else {
        let (pass, cpu) = baseline(&pool, &receiver, &config).await?;
        (Some(pass), Some(cpu))
    };
    Ok(WebhooksReport {
        bench: "webhooks",
        orders: args.orders,
        events,
        subscriptions: args.subscriptions,
        payload_bytes_avg,
        worker: WorkerShape {
            batch: config.batch,
            concurrency: config.concurrency,
            max_attempts: config.policy.max_attempts,
            retry_base_ms: config.policy.base.as_millis() as u64,
            max_backoff_ms: config.policy.max_backoff.as_millis() as u64,
        },
        goal_met: pipeline.deliveries_per_sec >= GOAL_DELIVERIES_PER_SEC,
        lost: expected.saturating_sub(tally.accepted),
        pipeline,
        pipeline_cpu,
        receiver: tally,
        dead_letters,
        pending_retries,
        outage,
        timeline,
        baseline_plain_posts: baseline,
        baseline_cpu,
        goal_deliveries_per_sec: GOAL_DELIVERIES_PER_SEC,
    })
}

/// Gives every order stream of the scratch log its feed positions, in the order it was
/// recorded, through the feed's own append (what the feed view does).
async fn fill_feed(pool: &PgPool) -> anyhow::Result<()> {
    let streams: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream_id, max(stream_version) FROM events GROUP BY stream_id \
         ORDER BY min(recorded_at), stream_id",
    )
    .fetch_all(pool)
    .await
    .context("listing the scratch streams")?;
    let mut progress = LogProgress::new("feed", streams.len() as u64);
    let mut done = 0u64;
    for chunk in streams.chunks(FEED_CHUNK) {
        let writes: Vec<StreamAppend> = chunk
            .iter()
            .map(|(stream_id, version)| StreamAppend {
                stream_id: stream_id.clone(),
                expected_version: 0,
                version: *version,
                entries: (1..=*version)
                    .map(|v| FeedEntry {
                        stream_id: stream_id.clone(),
                        stream_version: v,
                        event_type: "OrderPlaced".to_owned(),
                    })
                    .collect(),
            })
            .collect();
        feed::append(pool, &writes)
            .await
            .context("appending to the scratch feed")?;
        done += chunk.len() as u64;
        progress.update(done);
    }
    progress.finish(done);
    // Fresh tables have no statistics yet: plan the worker's reads on real ones.
    sqlx::query("ANALYZE event_feed, event_feed_streams")
        .execute(pool)
        .await
        .context("analyzing the scratch feed")?;
    Ok(())
}

/// Registers `n` subscriptions to `receiver` from the start of the feed, as the admin API does.
async fn subscribe(
    pool: &PgPool,
    key: &SealingKey,
    receiver: &WebhookReceiver,
    n: u64,
) -> anyhow::Result<Vec<(Uuid, String)>> {
    let mut out = Vec::new();
    for i in 0..n {
        let secret = store::generate_secret();
        let description = format!("bench webhooks {i}");
        let ctx = waybill_write_side::commands::CommandContext {
            client_id: "bench".to_owned(),
            role: waybill_schemas::api_keys::Role::Admin,
            actor: waybill_schemas::Actor::service("bench"),
            idempotency_key: format!("bench-subscription-{i}"),
            request_hash: description.clone().into_bytes(),
            correlation_id: Uuid::now_v7(),
        };
        store::create(
            pool,
            key,
            &ctx,
            NewSubscription {
                url: receiver.url(),
                event_types: Vec::new(),
                description: Some(description.clone()),
                secret: Some(secret.clone()),
                status: Status::Active,
                start: Start::Beginning,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("registering a subscription: {e}"))?;
        let id = store::list(pool)
            .await?
            .into_iter()
            .find(|s| s.description.as_deref() == Some(description.as_str()))
            .map(|s| s.subscription_id)
            .context("the registered subscription is not listed")?;
        receiver.trust(id, &secret);
        out.push((id, secret));
    }
    Ok(out)
}

/// What [`watch`] saw.
struct Watched {
    /// When the last delivery arrived (from the start); `None` when the run stalled.
    delivered_at: Option<Duration>,
    outage: Option<Outage>,
    /// Distinct deliveries in each second.
    timeline: Vec<u64>,
}

/// Follows the receiver until it has `expected` distinct deliveries (or none arrive for
/// [`STALL`]), taking it down for `outage_secs` once a third arrived.
async fn watch(
    receiver: &mut WebhookReceiver,
    expected: u64,
    outage_secs: u64,
    started: Instant,
) -> anyhow::Result<Watched> {
    let mut progress = LogProgress::new("deliveries", expected);
    let (mut last, mut last_change) = (0u64, Instant::now());
    let mut outage: Option<Outage> = None;
    let mut back_at: Option<(Instant, u64)> = None;
    let mut timeline: Vec<u64> = Vec::new();
    loop {
        let accepted = receiver.tally().accepted;
        progress.update(accepted);
        let second = started.elapsed().as_secs() as usize;
        if timeline.len() <= second {
            timeline.resize(second + 1, 0);
        }
        timeline[second] += accepted - last;
        if accepted != last {
            (last, last_change) = (accepted, Instant::now());
        }
        if let (Some(outage), Some((back, before))) = (outage.as_mut(), back_at) {
            if outage.first_after_seconds.is_none() && accepted > before {
                outage.first_after_seconds = Some(back.elapsed().as_secs_f64());
            }
        }
        if accepted >= expected {
            progress.finish(accepted);
            let now = Instant::now();
            if let (Some(outage), Some((back, before))) = (outage.as_mut(), back_at) {
                outage.catch_up_seconds = (now - back).as_secs_f64();
                outage.delivered_after = accepted - before;
            }
            return Ok(Watched {
                delivered_at: Some(now - started),
                outage,
                timeline,
            });
        }
        if outage_secs > 0 && outage.is_none() && accepted >= expected / 3 {
            eprintln!("receiver down for {outage_secs} s after {accepted} deliveries");
            let down = Instant::now();
            receiver.go_down().await;
            tokio::time::sleep(Duration::from_secs(outage_secs)).await;
            receiver.come_up().await.context("the receiver came back")?;
            let up = Instant::now();
            let before = receiver.tally().accepted;
            eprintln!(
                "receiver back after {:.1} s ({} deliveries arrived while it went down)",
                (up - down).as_secs_f64(),
                before - accepted
            );
            back_at = Some((up, before));
            last_change = up;
            outage = Some(Outage {
                seconds_down: (up - down).as_secs_f64(),
                received_before: accepted,
                first_after_seconds: None,
                catch_up_seconds: 0.0,
                delivered_after: 0,
            });
        }
        if last_change.elapsed() > STALL {
            eprintln!(
                "no delivery for {} s: {accepted} of {expected} arrived",
                STALL.as_secs()
            );
            return Ok(Watched {
                delivered_at: None,
                outage,
                timeline,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The same events as plain signed POSTs at the worker's concurrency (no feed reads, leases or
/// ledger), on the services runtime.
async fn baseline(
    pool: &PgPool,
    receiver: &WebhookReceiver,
    config: &WorkerConfig,
) -> anyhow::Result<(Pass, CpuReport)> {
    let mut bodies: Vec<(Uuid, String, Bytes)> = Vec::new();
    let mut after = 0;
    while bodies.len() < BASELINE_MAX {
        let page = feed::read_after(pool, after, 1_000, &[])
            .await
            .context("reading the feed for the baseline")?;
        for event in &page.events {
            bodies.push((
                event.event_id,
                event.event_type.clone(),
                Bytes::from(serde_json::to_vec(event)?),
            ));
        }
        if !page.more {
            break;
        }
        after = page.next;
    }
    bodies.truncate(BASELINE_MAX);
    let n = bodies.len() as u64;
    eprintln!(
        "baseline: {n} plain signed POSTs, {} at a time",
        config.concurrency
    );
    let subscription = Uuid::now_v7();
    let secret = store::generate_secret();
    receiver.trust(subscription, &secret);
    receiver.reset();
    let (url, concurrency) = (receiver.url(), config.concurrency.max(1));
    let sender = Sender::new(config.timeout)?;
    let before = cpu::Snapshot::start();
    let started = Instant::now();
    let failed = Role::Services
        .handle()
        .spawn(async move {
            futures::stream::iter(bodies)
                .map(|(event_id, event_type, body)| {
                    let (sender, url, secret) = (&sender, &url, &secret);
                    async move {
                        sender
                            .send(Delivery {
                                url,
                                secret,
                                subscription_id: subscription,
                                event_id,
                                event_type: &event_type,
                                attempt: 1,
                                body,
                            })
                            .await
                            .is_err()
                    }
                })
                .buffer_unordered(concurrency)
                .filter(|failed| std::future::ready(*failed))
                .count()
                .await
        })
        .await
        .context("the baseline panicked")?;
    let elapsed = started.elapsed();
    let cpu = cpu::Snapshot::take().since(&before, "delivery", n);
    anyhow::ensure!(failed == 0, "{failed} baseline POSTs failed");
    Ok((Pass::new(receiver.tally().accepted, elapsed), cpu))
}

fn table(report: &WebhooksReport) -> String {
    let row = |name: &str, pass: &Pass| {
        format!(
            "{name:<36} {:>8} deliveries {:>8.2} s {:>9.0} deliveries/s\n",
            pass.deliveries, pass.seconds, pass.deliveries_per_sec
        )
    };
    let mut out = format!(
        "bench webhooks: {} orders x {VERSIONS} events ({:.0} B payloads), {} subscription(s): {} deliveries\n",
        report.orders,
        report.payload_bytes_avg,
        report.subscriptions,
        report.events * report.subscriptions,
    );
    out.push_str(&row(
        "delivery worker (feed, lease, ledger)",
        &report.pipeline,
    ));
    if let Some(baseline) = &report.baseline_plain_posts {
        out.push_str(&row("baseline: plain signed POSTs", baseline));
    }
    let r = &report.receiver;
    out.push_str(&format!(
        "receiver: {} distinct, {} repeated (at least once), {} out of order, {} bad signatures; lost {}, dead letters {}, retries pending {}\n",
        r.accepted, r.duplicates, r.out_of_order, r.bad_signatures, report.lost, report.dead_letters, report.pending_retries
    ));
    if let Some(outage) = &report.outage {
        out.push_str(&format!(
            "outage: receiver down {:.1} s after {} deliveries; first delivery {:.1} s after it came back, the last {:.1} s after ({} delivered after it came back)\n",
            outage.seconds_down,
            outage.received_before,
            outage.first_after_seconds.unwrap_or(f64::NAN),
            outage.catch_up_seconds,
            outage.delivered_after
        ));
    }
    out.push_str(&format!(
        "goal: >= {:.0} deliveries/s: {}\n",
        report.goal_deliveries_per_sec,
        if report.goal_met { "met" } else { "NOT met" }
    ));
    out.push_str(&report.pipeline_cpu.table("delivery worker"));
    if let Some(cpu) = &report.baseline_cpu {
        out.push_str(&cpu.table("plain signed POSTs"));
    }
    out
}

/// Deliveries per second over the run (the outage shows as a gap), with the baseline's rate
/// and the goal for comparison.
fn chart(report: &WebhooksReport) -> String {
    use std::fmt::Write as _;
    let x = |s: usize| s as f64 + 0.5;
    let mut series = vec![svg::Series {
        name: "delivery worker",
        color: "#1f77b4",
        points: report
            .timeline
            .iter()
            .enumerate()
            .map(|(s, n)| (x(s), Some(*n as f64)))
            .collect(),
    }];
    if let Some(baseline) = &report.baseline_plain_posts {
        series.push(svg::Series {
            name: "plain POSTs (rate)",
            color: "#9e9e9e",
            points: vec![
                (0.0, Some(baseline.deliveries_per_sec)),
                (
                    report.timeline.len() as f64,
                    Some(baseline.deliveries_per_sec),
                ),
            ],
        });
    }
    let height = svg::TOP + svg::PANEL_HEIGHT + 60.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" viewBox="0 0 {w} {height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#,
        w = svg::WIDTH
    );
    let title = format!(
        "waybill bench webhooks: {} deliveries ({} orders, {} subscription(s)) at {:.0}/s{}",
        report.pipeline.deliveries,
        report.orders,
        report.subscriptions,
        report.pipeline.deliveries_per_sec,
        report
            .outage
            .as_ref()
            .map(|o| format!(
                ", receiver down {:.0} s, caught up {:.1} s after",
                o.seconds_down, o.catch_up_seconds
            ))
            .unwrap_or_default()
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="24" font-size="14" font-weight="bold">{}</text>"#,
        svg::LEFT,
        svg::escape(&title)
    );
    svg::panel(
        &mut out,
        svg::TOP,
        "Distinct deliveries per second at the receiver",
        report.timeline.len().max(1) as f64,
        &series,
        Some(report.goal_deliveries_per_sec),
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since the worker started</text>"#,
        svg::LEFT + (svg::WIDTH - svg::LEFT - svg::RIGHT) / 2.0,
        height - 12.0
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_shows_each_second_the_baseline_and_the_outage() {
        let report = WebhooksReport {
            bench: "webhooks",
            orders: 10,
            events: 50,
            subscriptions: 1,
            payload_bytes_avg: 1.0,
            worker: WorkerShape {
                batch: 500,
                concurrency: 64,
                max_attempts: 12,
                retry_base_ms: 1_000,
                max_backoff_ms: 300_000,
            },
            pipeline: Pass::new(50, Duration::from_secs(3)),
            pipeline_cpu: CpuReport::empty(),
            receiver: Tally::default(),
            lost: 0,
            dead_letters: 0,
            pending_retries: 0,
            outage: Some(Outage {
                seconds_down: 1.0,
                received_before: 20,
                first_after_seconds: Some(0.5),
                catch_up_seconds: 1.5,
                delivered_after: 30,
            }),
            timeline: vec![20, 0, 30],
            baseline_plain_posts: Some(Pass::new(50, Duration::from_secs(1))),
            baseline_cpu: None,
            goal_deliveries_per_sec: GOAL_DELIVERIES_PER_SEC,
            goal_met: false,
        };
        let chart = chart(&report);
        assert!(chart.starts_with("<svg") && chart.ends_with("</svg>\n"));
        assert!(chart.contains("receiver down 1 s, caught up 1.5 s after"));
        assert!(chart.contains("plain POSTs (rate)"));
        assert!(!chart.contains("NaN"));
        assert!(table(&report).contains("lost 0, dead letters 0, retries pending 0"));
    }
}
