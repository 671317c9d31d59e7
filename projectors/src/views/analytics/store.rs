//! Reading order facts from and writing a batch's rows to the ClickHouse warehouse.
//!
//! A batch is written table by table: line facts, ledger entries, positions, and the order facts
//! last. The fact's `version` is the view's position, so a crash before the facts are written
//! leaves the old position: the events come again and rewrite the same rows (every table is a
//! ReplacingMergeTree on its natural key), which is what makes redelivery harmless.

use clickhouse::Client;
use waybill_schemas::OrderId;

use super::{AnalyticsError, OrderAnalytics};
use crate::warehouse::rows::{insert_rows, LedgerEntryRow, LineFactRow, OrderFactRow};
use crate::warehouse::WarehouseError;

/// The analytics tables of one warehouse database.
#[derive(Clone)]
pub struct AnalyticsStore {
    client: Client,
}

impl AnalyticsStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The stored analytics of these order streams, in order (`None`: nothing applied yet).
    /// Only the fact row is read; rows already written are not needed to apply further events.
    pub async fn load_streams(
        &self,
        stream_ids: &[String],
    ) -> Result<Vec<Option<OrderAnalytics>>, AnalyticsError> {
        let ids: Vec<String> = stream_ids
            .iter()
            .map(|stream_id| {
                OrderId::from_stream_id(stream_id)
                    .map(|id| id.to_string())
                    .ok_or_else(|| AnalyticsError::NotAnOrder {
                        stream_id: stream_id.clone(),
                    })
            })
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Order ids are parsed UUIDs (hex digits and dashes), safe to inline; ClickHouse 18.16
        // has no server-side parameters and does not take an array after IN.
        let list = ids
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",");
        let facts: Vec<OrderFactRow> = self
            .client
            .query(&format!(
                "SELECT ?fields FROM order_facts FINAL WHERE order_id IN ({list})"
            ))
            .fetch_all()
            .await
            .map_err(WarehouseError::clickhouse("reading order facts"))?;
        let mut by_id: std::collections::HashMap<String, OrderFactRow> = facts
            .into_iter()
            .map(|fact| (fact.order_id.clone(), fact))
            .collect();
        Ok(ids
            .iter()
            .map(|id| {
                by_id.remove(id).map(|fact| OrderAnalytics {
                    fact,
                    lines: Vec::new(),
                    ledger: Vec::new(),
                })
            })
            .collect())
    }

    /// Writes the batch's rows, the order facts last. Returns the number of rows written.
    pub async fn write(&self, states: &[OrderAnalytics]) -> Result<usize, AnalyticsError> {
        let lines: Vec<LineFactRow> = states.iter().flat_map(|s| s.lines.clone()).collect();
        let ledger: Vec<LedgerEntryRow> = states.iter().flat_map(|s| s.ledger.clone()).collect();
        let facts: Vec<OrderFactRow> = states.iter().map(|s| s.fact.clone()).collect();
        insert_rows(&self.client, "line_facts", &lines).await?;
        insert_rows(&self.client, "ledger_entries", &ledger).await?;
        insert_rows(&self.client, "order_facts", &facts).await?;
        Ok(lines.len() + ledger.len() + facts.len())
    }
}
