//! `SCAN` over every key of a pattern. A single node is one cursor; on a cluster each master
//! holds its own slots' keys, so the scan asks for the masters ([`super::masters`]) and walks
//! each one's cursor in turn (replicas hold copies and are skipped).

use redis::RedisResult;

use super::RedisConnection;

/// Keys per `SCAN` call (a hint to the server).
const PAGE: usize = 1000;

/// A scan in progress; [`KeyScan::next_page`] until it answers `None`.
pub struct KeyScan {
    connection: RedisConnection,
    pattern: String,
    /// The masters still to walk (`None` until asked; a single node is one `None` entry).
    nodes: Option<Vec<Option<(String, u16)>>>,
    cursor: u64,
}

impl KeyScan {
    pub(super) fn new(connection: RedisConnection, pattern: String) -> Self {
        Self {
            connection,
            pattern,
            nodes: None,
            cursor: 0,
        }
    }

    /// The next page of keys (possibly empty), or `None` once every node was walked.
    pub async fn next_page(&mut self) -> RedisResult<Option<Vec<String>>> {
        if self.nodes.is_none() {
            let mut nodes = self.connection.key_nodes().await?;
            // Walked from the back: the first node is scanned first.
            nodes.reverse();
            self.nodes = Some(nodes);
        }
        let Some(nodes) = self.nodes.as_mut() else {
            return Ok(None);
        };
        let Some(node) = nodes.last().cloned() else {
            return Ok(None);
        };
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(self.cursor)
            .arg("MATCH")
            .arg(&self.pattern)
            .arg("COUNT")
            .arg(PAGE);
        let (next, keys): (u64, Vec<String>) =
            redis::from_owned_redis_value(self.connection.on_node(&cmd, node).await?)?;
        self.cursor = next;
        if next == 0 {
            nodes.pop();
        }
        Ok(Some(keys))
    }

    /// Every remaining key (for small key sets: tests, cleanup).
    pub async fn collect_all(mut self) -> RedisResult<Vec<String>> {
        let mut all = Vec::new();
        while let Some(mut page) = self.next_page().await? {
            all.append(&mut page);
        }
        Ok(all)
    }
}
