//! "Not found" or "catching up": what a reader answers when the tracking views it needs are not
//! in Redis. While the views' store holds a ready generation (its marker, kept by the tracking
//! projector: `waybill_projectors::runtime::self_heal`), a missing view is a missing order. When
//! the store lost its data (a `FLUSHALL`, a restart without persistence) and is being filled
//! again from the event log, an order the log knows is answered 503 `view-catching-up` with
//! `Retry-After`, never 404; answers that list orders (a customer's orders and store credit,
//! the lookup form) are 503 too while anything is in the log, since a partial list would hide
//! orders without saying so.

use waybill_projectors::runtime::StoreState;
use waybill_projectors::views::analytics::AnalyticsStoreMarker;
use waybill_projectors::views::search::{SearchBackend, SearchStoreMarker};
use waybill_projectors::views::store_marker::RedisStoreMarker;
use waybill_projectors::views::tracking;
use waybill_schemas::views::TrackingView;
use waybill_schemas::OrderId;

use crate::http::AppState;
use crate::problem::Problem;

fn marker(state: &AppState) -> RedisStoreMarker {
    tracking::store_marker(state.redis.clone(), &state.config.redis_prefix)
}

async fn store_state(state: &AppState) -> Result<StoreState, Problem> {
    marker(state)
        .read()
        .await
        .map_err(|error| Problem::view_store(&error, "the tracking store's marker"))
}

/// The view of `order`, which a first read did not find: `Ok(None)` when the order is not
/// there (the store is whole, or the log does not know the order), the view when it appeared
/// meanwhile, `Err(CatchingUp)` while the store is being filled and the log knows the order.
///
/// With a ready marker the view is read again and the marker after it: the same ready
/// generation on both sides of a miss means the store was whole when the view was missing.
pub(crate) async fn missing_view(
    state: &AppState,
    key: &str,
    order: OrderId,
) -> Result<Option<TrackingView>, Problem> {
    let before = store_state(state).await?;
    if before.is_ready() {
        let mut redis = state.redis.clone();
        if let Some(view) = crate::tracking::read_view(&mut redis, key).await? {
            return Ok(Some(view));
        }
        if store_state(state).await? == before {
            return Ok(None);
        }
    }
    let Some(events) = &state.config.events else {
        // No event log to ask: a missing view is all there is to say.
        return Ok(None);
    };
    match events.stream_version(&order.stream_id()).await {
        Ok(0) => Ok(None),
        Ok(_) => Err(catching_up()),
        Err(error) => Err(Problem::event_store(&error)),
    }
}

/// `Ok` when lists read from the tracking store are complete: its generation is ready, or
/// the event log holds nothing it could be missing.
pub(crate) async fn lists_complete(state: &AppState) -> Result<(), Problem> {
    if store_state(state).await?.is_ready() {
        return Ok(());
    }
    nothing_to_miss(state, "the order views").await
}

/// `Ok` when searches see every order: the search store's generation is ready, or the event
/// log holds nothing it could be missing. While the store is filled again after a loss (an
/// in-memory search server restarted, a new index directory), a search would miss orders
/// without saying so: 503 `view-catching-up` instead.
pub(crate) async fn search_complete(
    state: &AppState,
    index: &SearchBackend,
) -> Result<(), Problem> {
    let marker = SearchStoreMarker::new(index.clone())
        .read()
        .await
        .map_err(|error| {
            tracing::warn!(%error, "the search store's marker cannot be read");
            Problem::Unavailable {
                what: "the search index",
            }
        })?;
    if marker.is_ready() {
        return Ok(());
    }
    nothing_to_miss(state, "the search index").await
}

/// `Ok` when the finance figures see every event: the analytics tables' generation is ready
/// (their marker in the warehouse, kept by the analytics projector), or the event log holds
/// nothing they could be missing. While the tables are filled again after a loss (a dropped
/// database or table), 503 `view-catching-up`; a warehouse that cannot be read is 503
/// `unavailable`.
pub(crate) async fn analytics_complete(
    state: &AppState,
    warehouse: &waybill_projectors::WarehouseConfig,
) -> Result<(), Problem> {
    let marker = AnalyticsStoreMarker::new(warehouse.clone())
        .read()
        .await
        .map_err(crate::finance::unavailable)?;
    if marker.is_ready() {
        return Ok(());
    }
    nothing_to_miss(state, "the analytics tables").await
}

/// `Ok` when the event log is empty (or not configured), else "catching up" for `what`.
async fn nothing_to_miss(state: &AppState, what: &'static str) -> Result<(), Problem> {
    let Some(events) = &state.config.events else {
        return Ok(());
    };
    match events.read_all_page(None, 1).await {
        Ok((first, _)) if first.is_empty() => Ok(()),
        Ok(_) => Err(Problem::CatchingUp { what }),
        Err(error) => Err(Problem::event_store(&error)),
    }
}

fn catching_up() -> Problem {
    Problem::CatchingUp {
        what: "the order views",
    }
}
