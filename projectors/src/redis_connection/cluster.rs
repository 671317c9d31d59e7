//! Pipelines on a Redis Cluster. The cluster client sends a whole pipeline to the node of its
//! first key, so a pipeline over several orders (a batch's loads and compare-and-sets) would
//! meet `MOVED` for every key living elsewhere. [`pipeline`] splits it by hash slot instead:
//! keyless commands (`SCRIPT LOAD`, which the client sends to every master) go first, one at a
//! time; then each slot's commands go as one pipeline to that slot's master, all slots
//! concurrently; the answers come back in the pipeline's order. A pipeline whose keys share
//! one slot, and a transaction (`MULTI`, which must stay in one slot anyway), go as they are.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt, TryStreamExt};
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisResult, Value};

/// Number of hash slots of a Redis Cluster.
pub(super) const SLOTS: u16 = 16384;
/// Slot pipelines in flight at once.
const CONCURRENT_SLOTS: usize = 64;

/// The hash slot of `key`: CRC16 (XMODEM) of its hash tag (the part between the first `{` and
/// the next `}`, when not empty) or of the whole key, modulo 16384.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|b| *b == b'}')
                .filter(|close| *close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % SLOTS
}

/// Commands that name no key (sent on their own, where the cluster client routes them).
const KEYLESS: &[&str] = &[
    "PING", "SCRIPT", "INFO", "ECHO", "TIME", "DBSIZE", "CLUSTER", "CONFIG", "CLIENT", "SCAN",
    "KEYS", "FLUSHALL", "FLUSHDB", "FUNCTION",
];

/// The key a command's slot is decided by, `None` for a keyless command.
fn first_key(cmd: &Cmd) -> Option<Vec<u8>> {
    let mut args = cmd.args_iter().map(|arg| match arg {
        redis::Arg::Simple(bytes) => bytes.to_vec(),
        redis::Arg::Cursor => Vec::new(),
    });
    let name = String::from_utf8_lossy(&args.next()?).to_ascii_uppercase();
    if KEYLESS.contains(&name.as_str()) {
        return None;
    }
    if matches!(
        name.as_str(),
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "FCALL" | "FCALL_RO"
    ) {
        let _script = args.next()?;
        let numkeys: usize = String::from_utf8_lossy(&args.next()?).parse().ok()?;
        return if numkeys == 0 { None } else { args.next() };
    }
    args.next()
}

/// Sends `pipeline` (commands `offset..offset + count` of the answer, as the `redis` crate asks
/// of a `ConnectionLike`) over the cluster, split by slot.
pub async fn pipeline(
    connection: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let commands: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let slots: Vec<Option<u16>> = commands
        .iter()
        .map(|cmd| first_key(cmd).map(|key| slot(&key)))
        .collect();
    let distinct: std::collections::BTreeSet<u16> = slots.iter().flatten().copied().collect();
    let keyless = slots.iter().any(Option::is_none);
    if pipeline.is_transaction() || (distinct.len() <= 1 && !keyless) {
        return connection
            .req_packed_commands(pipeline, offset, count)
            .await;
    }

    let mut answers: Vec<Option<Value>> = vec![None; commands.len()];
    for (index, cmd) in commands.iter().enumerate() {
        if slots[index].is_none() {
            answers[index] = Some(connection.req_packed_command(cmd).await?);
        }
    }
    let mut by_slot: BTreeMap<u16, (Vec<usize>, Pipeline)> = BTreeMap::new();
    for (index, cmd) in commands.iter().enumerate() {
        if let Some(slot) = slots[index] {
            let (indexes, part) = by_slot
                .entry(slot)
                .or_insert_with(|| (Vec::new(), redis::pipe()));
            indexes.push(index);
            part.add_command((*cmd).clone());
        }
    }
    let parts: Vec<(Vec<usize>, Vec<Value>)> = stream::iter(by_slot.into_values())
        .map(|(indexes, part)| {
            let mut connection = connection.clone();
            async move {
                let values = connection.req_packed_commands(&part, 0, part.len()).await?;
                Ok::<_, redis::RedisError>((indexes, values))
            }
        })
        .buffer_unordered(CONCURRENT_SLOTS)
        .try_collect()
        .await?;
    for (indexes, values) in parts {
        for (index, value) in indexes.into_iter().zip(values) {
            answers[index] = Some(value);
        }
    }
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or(Value::Nil))
        .skip(offset)
        .take(count)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_specification() {
        // The examples of the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(
            slot(b"foo{}{bar}"),
            slot(b"bar"),
            "an empty tag hashes the whole key"
        );
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(
            slot(b"w:tracking:{abc}"),
            slot(b"w:rebuild-1:tracking:{abc}")
        );
    }

    #[test]
    fn the_slot_key_of_a_script_is_its_first_key_and_keyless_commands_have_none() {
        let script = redis::Script::new("return 1");
        let mut pipe = redis::pipe();
        pipe.load_script(&script);
        pipe.invoke_script(script.key("w:tracking:{o1}").arg(3));
        pipe.hget("w:tracking:{o2}", "view");
        let keys: Vec<Option<Vec<u8>>> = pipe.cmd_iter().map(first_key).collect();
        assert_eq!(
            keys,
            vec![
                None,
                Some(b"w:tracking:{o1}".to_vec()),
                Some(b"w:tracking:{o2}".to_vec())
            ]
        );
    }
}
