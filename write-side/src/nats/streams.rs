//! The streams Waybill owns (the event stream and the dead letters) are created with replicas
//! and retention limits from config, and an existing stream whose limits differ is updated to
//! them where the server allows it (a server refusing, such as a single node asked for three
//! replicas of a stream that already exists, is logged and the stream used as it is).

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// Replicas and retention of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Copies of every message on different servers: 1 on one node, 3 on a cluster (R3 keeps
    /// the stream writable and nothing lost while one node is down).
    pub replicas: usize,
    /// Messages older than this are removed; zero keeps them forever.
    pub max_age: Duration,
    /// The stream's size limit in bytes; `None` for no limit.
    pub max_bytes: Option<u64>,
    /// At the size limit: `New` refuses new messages (the relay keeps them in the outbox and
    /// retries, so nothing is lost), `Old` removes the oldest ones.
    pub discard: stream::DiscardPolicy,
}

impl StreamLimits {
    /// The event stream's defaults: one replica, a week of messages (views read it live, and
    /// rebuild from the event store), no size limit.
    pub const EVENTS: StreamLimits = StreamLimits {
        replicas: 1,
        max_age: Duration::from_secs(7 * 24 * 3600),
        max_bytes: None,
        discard: stream::DiscardPolicy::New,
    };
    /// The dead-letter stream's defaults: one replica, kept two weeks for inspection and replay.
    pub const DEAD_LETTERS: StreamLimits = StreamLimits {
        replicas: 1,
        max_age: Duration::from_secs(14 * 24 * 3600),
        max_bytes: None,
        discard: stream::DiscardPolicy::Old,
    };

    /// Writes these limits into `config`.
    pub fn apply(&self, config: &mut stream::Config) {
        config.num_replicas = self.replicas.max(1);
        config.max_age = self.max_age;
        config.max_bytes = self
            .max_bytes
            .map_or(-1, |bytes| i64::try_from(bytes).unwrap_or(i64::MAX));
        config.discard = self.discard;
    }

    /// Whether `config` (as the server reports it) has other limits than these.
    fn differ_from(&self, config: &stream::Config) -> bool {
        let mut wanted = config.clone();
        self.apply(&mut wanted);
        config.num_replicas.max(1) != wanted.num_replicas
            || config.max_age != wanted.max_age
            || config.max_bytes.max(-1) != wanted.max_bytes
            || config.discard != wanted.discard
    }
}

/// Why a stream could not be created or found.
#[derive(Debug, thiserror::Error)]
pub enum StreamSetupError {
    #[error("could not create or find JetStream stream {stream}: {detail}")]
    Unavailable { stream: String, detail: String },
}

/// Creates `config`'s stream with `limits`, or finds it and brings its limits to `limits`.
pub async fn ensure_stream(
    js: &jetstream::Context,
    mut config: stream::Config,
    limits: &StreamLimits,
) -> Result<stream::Stream, StreamSetupError> {
    limits.apply(&mut config);
    let name = config.name.clone();
    let unavailable = |detail: String| StreamSetupError::Unavailable {
        stream: name.clone(),
        detail,
    };
    for _ in 0..2 {
        match js.get_stream(&name).await {
            Ok(existing) => {
                update_limits(js, &existing, limits).await;
                return Ok(existing);
            }
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(unavailable(err.to_string())),
        }
        match js.create_stream(config.clone()).await {
            Ok(created) => {
                tracing::info!(
                    stream = %name,
                    replicas = limits.replicas,
                    max_age_secs = limits.max_age.as_secs(),
                    max_bytes = ?limits.max_bytes,
                    discard = ?limits.discard,
                    "JetStream stream created"
                );
                return Ok(created);
            }
            // Another process created it meanwhile: find it (and align its limits).
            Err(err) if name_taken(&err) => continue,
            Err(err) => return Err(unavailable(err.to_string())),
        }
    }
    Err(unavailable(
        "created by another process but not found".to_owned(),
    ))
}

async fn update_limits(js: &jetstream::Context, existing: &stream::Stream, limits: &StreamLimits) {
    let current = &existing.cached_info().config;
    if !limits.differ_from(current) {
        return;
    }
    let mut updated = current.clone();
    limits.apply(&mut updated);
    match js.update_stream(&updated).await {
        Ok(_) => tracing::info!(
            stream = %current.name,
            replicas = limits.replicas,
            max_age_secs = limits.max_age.as_secs(),
            max_bytes = ?limits.max_bytes,
            discard = ?limits.discard,
            "JetStream stream limits updated"
        ),
        Err(err) => tracing::warn!(
            stream = %current.name,
            error = %err,
            replicas = current.num_replicas,
            "JetStream stream limits could not be updated; the stream is used as it is"
        ),
    }
}

fn is_not_found(err: &jetstream::context::GetStreamError) -> bool {
    matches!(
        err.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(js)
            if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

fn name_taken(err: &jetstream::context::CreateStreamError) -> bool {
    matches!(
        err.kind(),
        jetstream::context::CreateStreamErrorKind::JetStream(js)
            if js.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_written_into_the_stream_config() {
        let mut config = stream::Config::default();
        StreamLimits {
            replicas: 3,
            max_age: Duration::from_secs(3600),
            max_bytes: Some(1 << 30),
            discard: stream::DiscardPolicy::New,
        }
        .apply(&mut config);
        assert_eq!(config.num_replicas, 3);
        assert_eq!(config.max_age, Duration::from_secs(3600));
        assert_eq!(config.max_bytes, 1 << 30);
        assert_eq!(config.discard, stream::DiscardPolicy::New);
    }

    #[test]
    fn no_size_limit_is_minus_one_and_a_server_default_of_zero_replicas_is_one() {
        let mut config = stream::Config::default();
        StreamLimits::EVENTS.apply(&mut config);
        assert_eq!(config.max_bytes, -1);
        let mut reported = config.clone();
        reported.num_replicas = 0;
        assert!(!StreamLimits::EVENTS.differ_from(&reported));
        let mut older = config.clone();
        older.max_age = Duration::ZERO;
        assert!(StreamLimits::EVENTS.differ_from(&older));
    }

    /// Against the machine's single NATS (2.9): a stream created with other limits is brought
    /// to the configured ones; three replicas are refused by a single server, and the stream
    /// is still handed back, usable, with its one replica.
    #[tokio::test]
    async fn an_existing_stream_is_updated_to_the_configured_limits_where_the_server_allows() {
        let client = async_nats::connect("nats://127.0.0.1:4222")
            .await
            .expect("NATS on 4222 (infra/scripts/ensure-services.sh)");
        let js = jetstream::new(client);
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let name = format!("LIMITS_{}", &tag[tag.len() - 12..]);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![format!("limits{}.>", &tag[tag.len() - 12..])],
            ..Default::default()
        };
        js.create_stream(config.clone()).await.expect("create");

        let week = StreamLimits::EVENTS;
        ensure_stream(&js, config.clone(), &week)
            .await
            .expect("ensure");
        let info = js
            .get_stream(&name)
            .await
            .expect("get")
            .cached_info()
            .clone();
        assert_eq!(info.config.max_age, week.max_age);
        assert_eq!(info.config.discard, stream::DiscardPolicy::New);

        let three = StreamLimits {
            replicas: 3,
            max_bytes: Some(1 << 20),
            ..week
        };
        let stream = ensure_stream(&js, config, &three)
            .await
            .expect("still usable");
        assert_eq!(stream.cached_info().config.num_replicas.max(1), 1);
        let _ = js.delete_stream(&name).await;
    }
}
