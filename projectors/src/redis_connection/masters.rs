//! The masters of a Redis Cluster, read from `CLUSTER SLOTS`, for what must reach each master by
//! its address: `SCAN` (each master holds its own slots' keys) and `WAIT` (each master is asked
//! for as many confirmations as it has replicas in sync, so not one fan-out with one count).

use redis::{ErrorKind, RedisError, RedisResult, Value};

use super::cluster::SLOTS;
use super::RedisConnection;

/// The masters serving the cluster's slots, as one of its nodes sees them.
pub(super) async fn of(connection: &RedisConnection) -> RedisResult<Vec<(String, u16)>> {
    let answer: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut connection.clone())
        .await?;
    from_cluster_slots(&answer)
}

/// The distinct masters `(host, port)` of a `CLUSTER SLOTS` answer, in the order first named.
/// An answer whose ranges do not cover every slot (a failover under way, a master lost) is an
/// error (`TryAgain`): a write to an uncovered slot could not be confirmed anywhere.
pub(super) fn from_cluster_slots(answer: &Value) -> RedisResult<Vec<(String, u16)>> {
    let Value::Array(ranges) = answer else {
        return Err(unexpected("CLUSTER SLOTS did not answer an array"));
    };
    let mut masters: Vec<(String, u16)> = Vec::new();
    let mut covered = 0;
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(unexpected("a CLUSTER SLOTS range is not an array"));
        };
        let (Some(start), Some(end), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return Err(unexpected(
                "a CLUSTER SLOTS range lacks its slots or master",
            ));
        };
        let start: i64 = redis::from_redis_value(start)?;
        let end: i64 = redis::from_redis_value(end)?;
        let (Some(host), Some(port)) = (master.first(), master.get(1)) else {
            return Err(unexpected("a CLUSTER SLOTS master lacks its host or port"));
        };
        let host: String = redis::from_redis_value(host)?;
        let port: u16 = redis::from_redis_value(port)?;
        covered += end - start + 1;
        if !masters.iter().any(|(h, p)| *h == host && *p == port) {
            masters.push((host, port));
        }
    }
    if covered != i64::from(SLOTS) {
        return Err(RedisError::from((
            ErrorKind::TryAgain,
            "the Redis Cluster does not serve every slot",
            format!("{covered} of {SLOTS} slots have a master"),
        )));
    }
    Ok(masters)
}

fn unexpected(what: &'static str) -> RedisError {
    RedisError::from((ErrorKind::TypeError, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: i64, end: i64, host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(start),
            Value::Int(end),
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ]),
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(9999),
            ]),
        ])
    }

    #[test]
    fn each_master_is_named_once_and_replicas_are_not_masters() {
        let answer = Value::Array(vec![
            range(0, 5460, "127.0.0.1", 7000),
            range(5461, 10922, "127.0.0.1", 7001),
            range(10923, 12000, "127.0.0.1", 7002),
            range(12001, 16383, "127.0.0.1", 7000),
        ]);
        assert_eq!(
            from_cluster_slots(&answer).expect("every slot covered"),
            vec![
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001),
                ("127.0.0.1".to_owned(), 7002)
            ]
        );
    }

    #[test]
    fn slots_without_a_master_are_try_again_and_garbage_is_refused() {
        let partial = Value::Array(vec![range(0, 5460, "127.0.0.1", 7000)]);
        let error = from_cluster_slots(&partial).expect_err("slots uncovered");
        assert_eq!(error.kind(), ErrorKind::TryAgain, "{error}");
        assert!(error.to_string().contains("5461 of 16384"), "{error}");
        let error = from_cluster_slots(&Value::Int(3)).expect_err("not an array");
        assert_eq!(error.kind(), ErrorKind::TypeError, "{error}");
    }
}
