//! `SCAN` over every key of a pattern. A single node is one cursor; on a cluster each master
//! holds its own slots' keys, so the scan asks `CLUSTER NODES` for the masters and walks each
//! one's cursor in turn (replicas hold copies and are skipped).

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{RedisResult, Value};

use super::{Inner, RedisConnection};

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
            let nodes = match &self.connection.0 {
                Inner::Single(_) => vec![None],
                Inner::Cluster(_) => masters(&mut self.connection)
                    .await?
                    .into_iter()
                    .map(Some)
                    .rev()
                    .collect(),
            };
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
        let (next, keys): (u64, Vec<String>) = match (&mut self.connection.0, node) {
            (Inner::Cluster(cluster), Some((host, port))) => {
                let value = cluster
                    .route_command(
                        &cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
                    )
                    .await?;
                redis::from_owned_redis_value(value)?
            }
            (connection, _) => {
                let mut connection = RedisConnection(connection.clone(), 0);
                cmd.query_async(&mut connection).await?
            }
        };
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

/// The cluster's masters that are not failing, as (host, port).
async fn masters(connection: &mut RedisConnection) -> RedisResult<Vec<(String, u16)>> {
    let nodes: Value = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(connection)
        .await?;
    let text: String = redis::from_owned_redis_value(nodes)?;
    Ok(parse_masters(&text))
}

/// Masters from `CLUSTER NODES` lines: `<id> <ip:port@cport[,hostname]> <flags> …`.
fn parse_masters(text: &str) -> Vec<(String, u16)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _id = fields.next()?;
            let address = fields.next()?;
            let flags = fields.next()?;
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
                return None;
            }
            let host_port = address.split(['@', ',']).next()?;
            let (host, port) = host_port.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_are_read_from_cluster_nodes_skipping_replicas_and_failed_ones() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 connected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001,host-a myself,master - 0 0 1 connected 0-5460
";
        assert_eq!(
            parse_masters(text),
            vec![
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30001)
            ]
        );
    }
}
