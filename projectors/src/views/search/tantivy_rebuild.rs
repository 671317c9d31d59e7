//! `rebuild search` on the embedded index: blue/green between generation directories
//! (`generations.rs`) while the projector keeps writing the live one.
//!
//! 1. **Build.** A new generation `g-<uuid v7>` is filled from the whole log and caught up in
//!    passes, as on Elasticsearch (`rebuild.rs::build`); its marker says ready. Nobody reads it.
//! 2. **Hand over.** When a projector holds the live generation's writer, the rebuild offers
//!    the new one in `NEXT` (with the last event it read) and waits. The projector's search
//!    view adopts it in steps taken between two of its batches (the runtime calls
//!    [`View::between_batches`](crate::runtime::View::between_batches) with nothing
//!    uncommitted), catching it up in the background meanwhile ([`adopt_offered`]); the last
//!    step commits, switches `CURRENT`, drops the old writer and removes the old generation.
//!    When no projector runs (the live writer lock is free), the rebuild catches up and
//!    switches itself, holding that lock so that no projector starts on the old generation.
//!
//! Why the projector switches and not the rebuild: only the writer of the live generation
//! knows what it applied; see [`adopt_offered`] for why the new generation then holds every
//! order at least at the version the old one showed, so no reader sees a document go missing
//! or back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use waybill_write_side::event_store::EventStore;

use crate::runtime::replay::{bring_level, resume_after};
use crate::runtime::{replay_log, ReplayError};

use super::generations::{Generation, NextGeneration};
use super::rebuild::{
    build, replay, SearchRebuildError, SearchRebuildReport, CATCH_UP_MARGIN_SECS,
};
use super::{SearchError, SearchProjection, TantivyIndex};

/// How long a rebuild waits for the running projector to adopt its generation.
const ADOPTION_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a rebuild that gave up waits for an adoption already under way.
const ADOPTION_GRACE: Duration = Duration::from_secs(30);
/// How often a waiting rebuild looks again.
const POLL: Duration = Duration::from_millis(100);

/// Builds a new generation of the index `live` points at and switches it in (see the module
/// doc). `live` is the projector's writer (the switch then happens through it, in this
/// process) or any other handle of the directory.
pub(super) async fn rebuild(
    events: &EventStore,
    live: TantivyIndex,
    page_size: i64,
    progress: &mut impl FnMut(u64),
    report: &mut SearchRebuildReport,
    written: &mut BTreeSet<String>,
) -> Result<(), SearchRebuildError> {
    let layout = live.layout().clone();
    for abandoned in layout.abandoned()? {
        tracing::info!(
            generation = abandoned.name(),
            "removing a generation an earlier rebuild left behind"
        );
        layout.remove(&abandoned)?;
    }
    let generation = layout.create_generation()?;
    let green = TantivyIndex::open_generation_writer(&layout, &generation)?;
    let built = build(events, green.clone(), page_size, progress, report, written).await;
    let (last, done) = match built {
        Ok(built) => built,
        Err(error) => {
            close(green).await;
            layout.remove(&generation)?;
            return Err(error);
        }
    };
    super::marker::mark_generation_ready(&green.dir(), generation.name())?;
    close(green).await;
    report.target = layout.dir(&generation).display().to_string();
    let offer = NextGeneration {
        generation: generation.name().to_owned(),
        resume_from: last,
    };

    if live.writes() {
        // The writer is in this process: adopt through it, as its projector would between
        // batches.
        layout.offer(&offer)?;
        let deadline = Instant::now() + ADOPTION_TIMEOUT;
        while adopt_offered(&live, events, page_size).await?.is_none() {
            if Instant::now() >= deadline || layout.next()?.is_none() {
                return give_up(&layout, &generation).await;
            }
            tokio::time::sleep(POLL).await;
        }
        report.switched_by = "the running projector";
        return Ok(());
    }
    let deadline = Instant::now() + ADOPTION_TIMEOUT;
    let mut offered = false;
    loop {
        let current = layout.current()?;
        if current == generation {
            report.switched_by = "the running projector";
            return Ok(());
        }
        if let Some(lock) = layout.try_lock(&current)? {
            // Taken after the projector had switched and let go of the old generation.
            if layout.current()? != current {
                continue;
            }
            // No projector writes the live generation: catch up and switch here, the lock
            // keeping one from starting on the old generation meanwhile.
            let green = TantivyIndex::open_generation_writer(&layout, &generation)?;
            if let Some(at) = last {
                let from = resume_after(at, chrono::Duration::seconds(CATCH_UP_MARGIN_SECS));
                let caught_up = replay(events, green.clone(), Some(from), page_size, &mut |n| {
                    progress(done + n)
                })
                .await;
                match caught_up {
                    Ok(caught_up) => report.absorb(caught_up, written),
                    Err(error) => {
                        close(green).await;
                        return Err(error);
                    }
                }
            }
            close(green).await;
            layout.switch_to(&generation)?;
            layout.withdraw_offer()?;
            layout.remove(&current)?;
            drop(lock);
            tracing::info!(
                generation = generation.name(),
                retired = current.name(),
                "search index generation switched by the rebuild (no projector was writing)"
            );
            report.switched_by = "the rebuild (no projector was writing)";
            return Ok(());
        }
        if !offered {
            layout.offer(&offer)?;
            offered = true;
            tracing::info!(
                generation = generation.name(),
                "rebuilt generation offered to the running search projector"
            );
        }
        if Instant::now() >= deadline {
            return give_up(&layout, &generation).await;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The projector did not adopt in time: the offer is withdrawn, and the new generation removed
/// unless an adoption is under way after all (it then finishes, and counts).
async fn give_up(
    layout: &super::generations::Layout,
    generation: &Generation,
) -> Result<(), SearchRebuildError> {
    layout.withdraw_offer()?;
    let deadline = Instant::now() + ADOPTION_GRACE;
    while Instant::now() < deadline {
        if layout.current()? == *generation {
            return Ok(());
        }
        if let Some(lock) = layout.try_lock(generation)? {
            drop(lock);
            layout.remove(generation)?;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    Err(SearchRebuildError::NotAdopted {
        generation: generation.name().to_owned(),
        seconds: ADOPTION_TIMEOUT.as_secs(),
    })
}

/// Drops a generation's handle on a blocking thread, its writer once its merges have finished
/// (so no merge of it acts on the directory after the next writer took the lock).
async fn close(index: TantivyIndex) {
    let _ = tokio::task::spawn_blocking(move || {
        index.release_writer();
        drop(index);
    })
    .await;
}

/// An adoption under way in the projector: the offered generation, caught up in the
/// background while the live one keeps being written.
pub(crate) struct Adoption {
    next: NextGeneration,
    green: TantivyIndex,
    /// Background passes begun so far.
    passes: usize,
    task: tokio::task::JoinHandle<Result<(), SearchError>>,
    started: Instant,
}

/// Background passes over the orders the live view wrote meanwhile, before the last one is
/// made between two batches whatever its size.
const BACKGROUND_PASSES: usize = 5;
/// A last pass this small is made between two batches at once.
const LAST_PASS_ORDERS: usize = 200;

/// The projector's side, called between two batches with nothing staged: adopts the
/// generation a rebuild offers in `NEXT` into `live` (the projector's writer), in steps so
/// that the search view keeps applying meanwhile:
/// 1. an offer found: the new generation's writer is opened, the live handle starts
///    remembering the orders it writes, and a background task catches the new generation up
///    from the log (from 10 s before the rebuild's last event to the head);
/// 2. each later call, once that task is done: the orders the live view wrote meanwhile are
///    folded from their whole log into the new generation, in the background while there are
///    many (at most [`BACKGROUND_PASSES`]), else here;
/// 3. then, here: commit, switch `CURRENT`, drop the old writer, remove the old generation.
///
/// Why this holds every order at least at the live version: what the live view wrote before
/// step 1 was committed to the log before the catch-up began (events are published after
/// their commit), so the catch-up reads it; what it wrote since is remembered and refolded
/// from the log by stream, exactly, with no time margin. Returns the generation adopted.
pub(super) async fn adopt_offered(
    live: &TantivyIndex,
    events: &EventStore,
    page_size: i64,
) -> Result<Option<String>, SearchError> {
    let mut slot = live.adoption().lock().await;
    let Some(adoption) = slot.take() else {
        *slot = begin(live, events, page_size).await?;
        return Ok(None);
    };
    if layout_offer(live)?.as_ref() != Some(&adoption.next) {
        tracing::info!(
            generation = adoption.next.generation,
            "the rebuild withdrew its offer; the search view keeps its generation"
        );
        abandon(live, adoption).await;
        return Ok(None);
    }
    if !adoption.task.is_finished() {
        *slot = Some(adoption);
        return Ok(None);
    }
    let Adoption {
        next,
        green,
        passes,
        task,
        started,
    } = adoption;
    let finished = task
        .await
        .map_err(|e| SearchError::Worker(e.to_string()))
        .and_then(|outcome| outcome);
    if let Err(error) = finished {
        live.track_writes(false);
        close(green).await;
        return Err(error);
    }
    let touched = live.track_writes(true);
    if touched.len() > LAST_PASS_ORDERS && passes < BACKGROUND_PASSES {
        let task = tokio::spawn(refold(events.clone(), green.clone(), touched));
        *slot = Some(Adoption {
            next,
            green,
            passes: passes + 1,
            task,
            started,
        });
        return Ok(None);
    }
    let last_pass = touched.len();
    let switched = async {
        refold(events.clone(), green.clone(), touched).await?;
        let generation = Generation::Named(next.generation.clone());
        super::marker::mark_generation_ready(&green.dir(), generation.name())?;
        live.switch_to(green.clone()).await?;
        live.layout().withdraw_offer()
    }
    .await;
    live.track_writes(false);
    if let Err(error) = switched {
        close(green).await;
        return Err(error);
    }
    tracing::info!(
        generation = next.generation,
        background_passes = passes,
        last_pass_orders = last_pass,
        seconds = started.elapsed().as_secs_f64(),
        "search view adopted the rebuilt generation"
    );
    Ok(Some(next.generation))
}

fn layout_offer(live: &TantivyIndex) -> Result<Option<NextGeneration>, SearchError> {
    live.layout().next()
}

/// Step 1: an offer found and usable starts the background catch-up.
async fn begin(
    live: &TantivyIndex,
    events: &EventStore,
    page_size: i64,
) -> Result<Option<Adoption>, SearchError> {
    let layout = live.layout().clone();
    let Some(next) = layout.next()? else {
        return Ok(None);
    };
    let generation = Generation::Named(next.generation.clone());
    if live.generation().as_deref() == Some(generation.name()) {
        layout.withdraw_offer()?;
        return Ok(None);
    }
    if !layout.has_index(&generation) {
        tracing::warn!(
            generation = generation.name(),
            "the offered search index generation holds no index; offer withdrawn"
        );
        layout.withdraw_offer()?;
        return Ok(None);
    }
    match layout.try_lock(&generation)? {
        Some(lock) => drop(lock),
        // The rebuild still holds its writer.
        None => return Ok(None),
    }
    let green = TantivyIndex::open_generation_writer(&layout, &generation)?;
    // Remembering starts before the catch-up reads the log (see `adopt_offered`).
    live.track_writes(true);
    let from = next
        .resume_from
        .map(|at| resume_after(at, chrono::Duration::seconds(CATCH_UP_MARGIN_SECS)));
    let task = tokio::spawn({
        let (events, green) = (events.clone(), green.clone());
        async move {
            replay_log(
                &events,
                &SearchProjection::new(green),
                from,
                page_size,
                |_| {},
            )
            .await
            .map(drop)
            .map_err(replay_error)
        }
    });
    tracing::info!(
        generation = generation.name(),
        "search view adopting a rebuilt generation: catching it up in the background"
    );
    Ok(Some(Adoption {
        next,
        green,
        passes: 0,
        task,
        started: Instant::now(),
    }))
}

async fn abandon(live: &TantivyIndex, adoption: Adoption) {
    live.track_writes(false);
    adoption.task.abort();
    let _ = adoption.task.await;
    close(adoption.green).await;
}

/// Brings these orders in `green` level with their log (read by stream, each brought forward
/// from the version `green` holds: [`bring_level`]), one upsert per chunk.
async fn refold(
    events: EventStore,
    green: TantivyIndex,
    order_ids: Vec<String>,
) -> Result<(), SearchError> {
    let view = SearchProjection::new(green);
    let streams: Vec<String> = order_ids
        .iter()
        .filter_map(|id| waybill_schemas::OrderId::parse(id).ok())
        .map(|id| id.stream_id())
        .collect();
    for chunk in streams.chunks(REFOLD_CHUNK) {
        bring_level(&events, &view, chunk)
            .await
            .map_err(replay_error)?;
    }
    Ok(())
}

/// Orders per read and upsert when bringing remembered orders level.
const REFOLD_CHUNK: usize = 500;

fn replay_error(error: ReplayError<SearchError>) -> SearchError {
    match error {
        ReplayError::View(error) => error,
        ReplayError::EventStore(error) => SearchError::EventLog(error.to_string()),
        contended @ ReplayError::Contended { .. } => SearchError::Worker(contended.to_string()),
    }
}
