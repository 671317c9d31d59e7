//! Gap filling, written once for the live runtime and every rebuild: bring one stream's state
//! from the version it holds to the events at hand, reading whatever versions are missing from
//! the event store and refusing to apply anything over a hole (the contiguity check).

use waybill_schemas::EventEnvelope;
use waybill_write_side::event_store::{EventStore, EventStoreError};

/// Why a stream's state could not be brought forward (the event store itself answered).
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError<E: std::error::Error> {
    #[error("versions {from}..={to} of {stream_id} are not in the event store")]
    Missing {
        stream_id: String,
        from: i64,
        to: i64,
    },
    #[error("{stream_id} v{version} does not apply: {source}")]
    Apply {
        stream_id: String,
        version: i64,
        source: E,
    },
}

/// The state after versions `last + 1 ..= until - 1` of `stream_id`, read from the event store
/// and applied in order to `state` (at version `last`). Nothing is applied unless every one of
/// those versions is there; the number of events applied comes back with the state.
pub async fn fill_gap<S: Clone, E: std::error::Error>(
    store: &EventStore,
    stream_id: &str,
    state: Option<&S>,
    last: i64,
    until: i64,
    mut apply: impl FnMut(Option<&S>, &EventEnvelope) -> Result<S, E>,
) -> Result<Result<(Option<S>, u64), CatchUpError<E>>, EventStoreError> {
    let mut current = state.cloned();
    if until <= last + 1 {
        return Ok(Ok((current, 0)));
    }
    let missing = store
        .read_stream(stream_id, last + 1, Some(until - 1))
        .await?;
    let contiguous = missing.len() as i64 == until - 1 - last
        && missing
            .iter()
            .zip(last + 1..)
            .all(|(e, expected)| e.stream_version == expected);
    if !contiguous {
        return Ok(Err(CatchUpError::Missing {
            stream_id: stream_id.to_owned(),
            from: last + 1,
            to: until - 1,
        }));
    }
    for event in &missing {
        match apply(current.as_ref(), event) {
            Ok(next) => current = Some(next),
            Err(source) => {
                return Ok(Err(CatchUpError::Apply {
                    stream_id: stream_id.to_owned(),
                    version: event.stream_version,
                    source,
                }))
            }
        }
    }
    Ok(Ok((current, missing.len() as u64)))
}

/// Applies `events` (one stream's, ascending) to `state`: versions it already has are skipped,
/// missing ones are filled from the event store first ([`fill_gap`]).
pub async fn catch_up<S: Clone, E: std::error::Error>(
    store: &EventStore,
    mut state: Option<S>,
    version_of: impl Fn(&S) -> i64,
    events: impl IntoIterator<Item = EventEnvelope>,
    mut apply: impl FnMut(Option<&S>, &EventEnvelope) -> Result<S, E>,
) -> Result<Result<Option<S>, CatchUpError<E>>, EventStoreError> {
    for event in events {
        let last = state.as_ref().map_or(0, &version_of);
        if event.stream_version <= last {
            continue;
        }
        match fill_gap(
            store,
            &event.stream_id,
            state.as_ref(),
            last,
            event.stream_version,
            &mut apply,
        )
        .await?
        {
            Ok((filled, _)) => state = filled,
            Err(err) => return Ok(Err(err)),
        }
        match apply(state.as_ref(), &event) {
            Ok(next) => state = Some(next),
            Err(source) => {
                return Ok(Err(CatchUpError::Apply {
                    stream_id: event.stream_id.clone(),
                    version: event.stream_version,
                    source,
                }))
            }
        }
    }
    Ok(Ok(state))
}
